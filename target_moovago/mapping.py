"""Warehouse row -> Moovago mutation input: column names, values, validation. Pure, no I/O.

Column names are compared case- and separator-insensitively with the fields of the entity's
input types, so `postal_code`, `postalcode` and `POSTAL_CODE` all land on `postalCode`; two
such columns holding different values reject the row. Values JSON cannot carry (NaN,
Infinity), an `_sdc_deleted_at` that is not a timestamp and `''` in a non-string field are
decided here, row by row: `''` means "no value" there unless the stream keeps it.

Values of one field, as the API takes them: serialising (dates, decimals), comparing with a
stored value, what JSON cannot carry (NaN, Infinity), which fields take free text (so `''` is a
value there), and what `_sdc_deleted_at` may hold. Pure, no I/O.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLInputObjectType, get_named_type
from jsonschema import Draft202012Validator, FormatChecker

from moovago_api.wire import (
    format_datetime,
    is_datetime_text,
    normalise_datetime_text,
    parse_datetime,
)

__all__ = [
    "DELETED_AT",
    "SDC_PREFIX",
    "ColumnMap",
    "FieldMapper",
    "InputValidator",
    "MappedRow",
    "Problem",
    "Reference",
    "comparable",
    "id_input_fields",
    "normalise_name",
    "to_api_value",
]


_SEPARATORS = re.compile(r"[^0-9a-z]")
SDC_PREFIX = "_sdc_"
DELETED_AT = "_sdc_deleted_at"


def normalise_name(name: str) -> str:
    """`Postal_Code`, `postal-code`, `POSTALCODE` -> `postalcode`."""
    return _SEPARATORS.sub("", name.casefold())


@dataclass(frozen=True)
class Reference:
    """A column naming a parent record by its match key, e.g. `companyCustomerCode`."""

    target_field: str  # the input field it fills: 'companyId'
    parent_stream: str  # 'company'
    parent_key_field: str  # 'customerCode'


@dataclass
class ColumnMap:
    """How each column of a stream maps onto the entity's input fields."""

    fields: dict[str, str] = field(default_factory=dict)  # column -> input field
    references: dict[str, Reference] = field(default_factory=dict)  # column -> reference
    id_column: str | None = None
    read_only: list[str] = field(default_factory=list)  # output-only fields (id, createdAt, ...)
    unknown: list[str] = field(default_factory=list)


class FieldMapper:
    """Maps a stream's columns onto an entity's input fields and serialises values.

    `input_props`: the union of the create and update-data input JSON Schema properties.
    `output_fields`: fields of the entity's object type (read-only columns are not unknown).
    `parents`: for reference columns, {input field: (parent stream, parent key fields)}.
    `id_fields`: input fields of GraphQL type ID (JSON Schema says only "string").
    `keep_empty`: input fields where `''` stays a value (`"*"`: every field); elsewhere `''`
    in a field that does not take free text (enum, number, date, ID, list) means no value.
    """

    def __init__(
        self,
        input_props: Mapping[str, Mapping[str, Any]],
        output_fields: Iterable[str] = (),
        parents: Mapping[str, tuple[str, Iterable[str]]] | None = None,
        *,
        id_fields: Iterable[str] = (),
        keep_empty: Iterable[str] = (),
    ) -> None:
        self.input_props = dict(input_props)
        ids = set(id_fields)
        keep = set(keep_empty)
        # Input fields where '' is no value; every other '' is sent as it is.
        self._empty_is_none = frozenset(
            name
            for name, prop in self.input_props.items()
            if "*" not in keep and name not in keep and not takes_text(prop, is_id=name in ids)
        )
        self._by_norm = {normalise_name(name): name for name in self.input_props}
        self._output = {normalise_name(name) for name in output_fields}
        self._refs: dict[str, Reference] = {}
        for target_field, (parent_stream, key_fields) in (parents or {}).items():
            prefix = target_field.removesuffix("Id")
            for key_field in key_fields:
                norm = normalise_name(prefix + key_field)
                if norm not in self._by_norm:
                    self._refs[norm] = Reference(target_field, parent_stream, key_field)
        self._cache: dict[str, tuple[str, Any]] = {}

    def classify(self, column: str) -> tuple[str, Any]:
        """('sdc'|'id'|'field'|'ref'|'read_only'|'unknown', detail) for one column name."""
        hit = self._cache.get(column)
        if hit is not None:
            return hit
        norm = normalise_name(column)
        result: tuple[str, Any]
        if column.startswith(SDC_PREFIX):
            result = ("sdc", None)
        elif norm == "id":
            result = ("id", None)
        elif norm in self._by_norm:
            result = ("field", self._by_norm[norm])
        elif norm in self._refs:
            result = ("ref", self._refs[norm])
        elif norm in self._output:
            result = ("read_only", None)
        else:
            result = ("unknown", None)
        self._cache[column] = result
        return result

    def column_map(self, columns: Iterable[str]) -> ColumnMap:
        cmap = ColumnMap()
        for column in columns:
            kind, detail = self.classify(column)
            if kind == "field":
                cmap.fields[column] = detail
            elif kind == "ref":
                cmap.references[column] = detail
            elif kind == "id":
                cmap.id_column = column
            elif kind == "read_only":
                cmap.read_only.append(column)
            elif kind == "unknown":
                cmap.unknown.append(column)
        return cmap

    def mapped_fields(self, columns: Iterable[str]) -> list[str]:
        """Input fields the given columns fill, in input-type order."""
        hit = {self.classify(c)[1] for c in columns if self.classify(c)[0] == "field"}
        hit |= {self.classify(c)[1].target_field for c in columns if self.classify(c)[0] == "ref"}
        return [name for name in self.input_props if name in hit]

    def convert(self, record: Mapping[str, Any]) -> MappedRow:
        """Split one record into its API payload, id, references, delete flag and unknowns;
        what makes the row unwritable is in `problems`, each naming its column."""
        row = MappedRow()
        for column, value in record.items():
            kind, detail = self.classify(column)
            if kind == "field":
                if value == "" and detail in self._empty_is_none:
                    value = None
                bad = non_finite(value, column)
                if bad is not None:
                    row.problems.append(Problem(bad, _NON_FINITE))
                    continue
                converted = to_api_value(value, self.input_props[detail])
                earlier = row.sources.get(detail)
                if earlier is not None:
                    held = row.payload[detail]
                    if converted is None:
                        continue  # two spellings of one field: a value wins over an empty one
                    if held is not None and comparable(held) != comparable(converted):
                        row.problems.append(_conflict(detail, earlier, column, held, converted))
                        continue
                row.payload[detail] = converted
                row.sources[detail] = column
            elif kind == "ref":
                if non_finite(value, column) is not None:
                    row.problems.append(Problem(column, _NON_FINITE))
                    continue
                row.references[column] = (detail, value)
            elif kind == "id":
                self._convert_id(row, column, value)
            elif kind == "sdc":
                if column == DELETED_AT:
                    try:
                        row.deleted = deletion_time(value) is not None
                    except ValueError:
                        row.problems.append(Problem(column, _not_a_timestamp(value)))
            elif kind == "unknown":
                row.unknown.append(column)
        return row

    @staticmethod
    def _convert_id(row: MappedRow, column: str, value: Any) -> None:
        if value in (None, ""):
            return
        if isinstance(value, bool) or not isinstance(value, str | int):
            shown = _shown(value)
            row.problems.append(Problem(column, f"an id must be a string, got {shown}"))
            row.record_id = str(value)  # only to name the row in messages
            return
        if row.id_column is not None and row.record_id != str(value):
            row.problems.append(_conflict("id", row.id_column, column, row.record_id, str(value)))
            return
        row.record_id, row.id_column = str(value), column


_NON_FINITE = "NaN and Infinity are not JSON numbers, so the API cannot be sent this value"


def _shown(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _not_a_timestamp(value: Any) -> str:
    return (
        f"{_shown(value)} is not a timestamp; _sdc_deleted_at deletes a record only when it "
        "holds an ISO-8601 date-time with a time zone (null or '' mean not deleted)"
    )


def _conflict(name: str, first: str, second: str, one: Any, other: Any) -> Problem:
    return Problem(
        f"{first},{second}",
        f"columns {first} and {second} both fill {name} with different values "
        f"({_shown(one)} and {_shown(other)}); keep one of them",
    )


@dataclass
class MappedRow:
    payload: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # input field -> column it came from
    references: dict[str, tuple[Reference, Any]] = field(default_factory=dict)
    record_id: str | None = None
    id_column: str | None = None
    deleted: bool = False
    unknown: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # each rejects the row


@dataclass(frozen=True)
class Problem:
    field: str | None
    reason: str


class InputValidator:
    """Validates payloads against one input type's JSON Schema (from the SDL)."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._validator = Draft202012Validator(schema, format_checker=FORMAT_CHECKER)
        self.properties: Mapping[str, Mapping[str, Any]] = schema.get("properties", {})

    def problems(self, payload: Mapping[str, Any]) -> list[Problem]:
        found = [
            Problem(name, "text holds a lone surrogate, which cannot be encoded as UTF-8")
            for name in _unencodable(payload)
        ]
        for err in sorted(self._validator.iter_errors(payload), key=lambda e: list(e.path)):
            path = [str(p) for p in err.absolute_path]
            if err.validator == "required" and not path:
                missing = re.search(r"'([^']+)' is a required property", err.message)
                name = missing.group(1) if missing else None
                found.append(Problem(name, f"required field {name} is missing or null"))
                continue
            name = ".".join(path) or None
            shown = repr(err.instance)
            if len(shown) > 80:
                shown = shown[:77] + "..."
            reason = err.message
            if err.validator == "format":
                reason = f"{shown} is not a valid {err.validator_value}"
            found.append(Problem(name, reason))
        return found


def _unencodable(value: Any, path: str = "") -> Iterator[str]:
    """Paths of the strings the request body could not carry (lone UTF-16 surrogates)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            yield path
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _unencodable(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for number, item in enumerate(value):
            yield from _unencodable(item, f"{path}.{number}" if path else str(number))


def _is_datetime_string(value: object) -> bool:
    return not isinstance(value, str) or is_datetime_text(value)


def _is_date_string(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


FORMAT_CHECKER = FormatChecker()
FORMAT_CHECKER.checks("date-time")(_is_datetime_string)
FORMAT_CHECKER.checks("date", raises=())(_is_date_string)


def _formats(prop: Mapping[str, Any]) -> str | None:
    fmt = prop.get("format")
    return fmt if isinstance(fmt, str) else None


def _types(prop: Mapping[str, Any]) -> set[str]:
    kind = prop.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def id_input_fields(graphql_schema: Any, type_names: Iterable[str | None]) -> set[str]:
    """Fields of these input types whose GraphQL type is ID (`''` is no id, not an id)."""
    found = set()
    for name in type_names:
        gql_type = graphql_schema.get_type(name) if name else None
        if isinstance(gql_type, GraphQLInputObjectType):
            found |= {
                field_name
                for field_name, input_field in gql_type.fields.items()
                if get_named_type(input_field.type).name == "ID"
            }
    return found


def takes_text(prop: Mapping[str, Any], *, is_id: bool = False) -> bool:
    """True for a free-text input field: a String, not an enum, date, number, list or ID."""
    return (
        not is_id
        and _types(prop) <= {"string", "null"}
        and "string" in _types(prop)
        and "enum" not in prop
        and _formats(prop) not in {"date", "date-time"}
    )


def non_finite(value: Any, path: str) -> str | None:
    """The path of the first NaN or Infinity in `value` (JSON cannot carry them), else None.
    Iterative: a deep value must not exhaust the stack."""
    if isinstance(value, str | int | bool) or value is None:
        return None  # the common case, without a walk
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, float | decimal.Decimal) and not _is_finite(item):
            return where
        if isinstance(item, Mapping):
            stack.extend((v, f"{where}.{k}") for k, v in item.items())
        elif isinstance(item, list | tuple):
            stack.extend((v, f"{where}.{n}") for n, v in enumerate(item))
    return None


def _is_finite(number: float | decimal.Decimal) -> bool:
    if isinstance(number, decimal.Decimal):
        return number.is_finite()
    return math.isfinite(number)


def deletion_time(value: Any) -> dt.datetime | None:
    """The instant an `_sdc_deleted_at` value names: None for no value (null or ''),
    ValueError for anything that is not a timestamp (`"NULL"`, `"false"`, `true`, `0`)."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    return parse_datetime(value)


def to_api_value(value: Any, prop: Mapping[str, Any]) -> Any:
    """Serialise one Python value the way the API expects it for the input field `prop`."""
    fmt = _formats(prop)
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if fmt == "date" else format_datetime(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str) and fmt == "date-time":
        try:
            return normalise_datetime_text(value)
        except ValueError:
            return value  # left as is: validation rejects it with the field's name
    if isinstance(value, decimal.Decimal):
        if "integer" in _types(prop) and value == value.to_integral_value():
            return int(value)
        return float(value)
    if isinstance(value, list):
        items = prop.get("items", {})
        return [to_api_value(item, items) for item in value]
    if isinstance(value, dict):
        props = prop.get("properties", {})
        return {k: to_api_value(v, props.get(k, {})) for k, v in value.items()}
    return value


def comparable(value: Any) -> Any:
    """A form in which an input value and the stored value compare equal when they mean the same.

    Lists of ids are sets to the API (order carries no meaning), numbers compare by value.
    """
    if isinstance(value, list):
        items = [comparable(v) for v in value]
        try:
            return tuple(sorted(items))
        except TypeError:
            return tuple(items)
    if isinstance(value, dict):
        return tuple(sorted((k, comparable(v)) for k, v in value.items()))
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float | decimal.Decimal):
        return float(value)
    return value
