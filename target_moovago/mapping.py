"""Warehouse row -> Moovago mutation input: column names, values, validation. Pure, no I/O.

Column names are compared case- and separator-insensitively with the fields of the entity's
input types, so `postal_code`, `postalcode` and `POSTAL_CODE` all land on `postalCode`.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from moovago_api.wire import format_datetime, is_datetime_text, normalise_datetime_text

_SEPARATORS = re.compile(r"[^0-9a-z]")
SDC_PREFIX = "_sdc_"
DELETED_AT = "_sdc_deleted_at"


def normalise_name(name: str) -> str:
    """`Postal_Code`, `postal-code`, `POSTALCODE` -> `postalcode`."""
    return _SEPARATORS.sub("", name.casefold())


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
    """

    def __init__(
        self,
        input_props: Mapping[str, Mapping[str, Any]],
        output_fields: Iterable[str] = (),
        parents: Mapping[str, tuple[str, Iterable[str]]] | None = None,
    ) -> None:
        self.input_props = dict(input_props)
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
        """Split one record into its API payload, id, references, delete flag and unknowns."""
        row = MappedRow()
        for column, value in record.items():
            kind, detail = self.classify(column)
            if kind == "field":
                if detail in row.payload and row.payload[detail] is not None and value is None:
                    continue  # two spellings of one field: a value wins over an empty one
                row.payload[detail] = to_api_value(value, self.input_props[detail])
                row.sources[detail] = column
            elif kind == "ref":
                row.references[column] = (detail, value)
            elif kind == "id":
                row.record_id = None if value in (None, "") else str(value)
            elif kind == "sdc":
                if column == DELETED_AT and value not in (None, ""):
                    row.deleted = True
            elif kind == "unknown":
                row.unknown.append(column)
        return row


@dataclass
class MappedRow:
    payload: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # input field -> column it came from
    references: dict[str, tuple[Reference, Any]] = field(default_factory=dict)
    record_id: str | None = None
    deleted: bool = False
    unknown: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Problem:
    field: str | None
    reason: str


class InputValidator:
    """Validates payloads against one input type's JSON Schema (from the SDL)."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._validator = Draft202012Validator(schema, format_checker=FORMAT_CHECKER)

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
