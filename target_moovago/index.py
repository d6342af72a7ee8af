"""A row and a record as data (pure, no I/O): values as the API takes them, a warehouse row
mapped onto input fields, match keys, the index of remote records."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLInputObjectType, get_named_type

from moovago_api.wire import format_datetime, parse_datetime

NORMALIZATIONS = ("trim", "case")
DEFAULT_MATCH_KEYS: dict[str, list[list[str]]] = {
    "company": [["customerCode"]],
    "contact": [["companyId", "email"]],
    "mandator": [["code"], ["name"]],
    "turnover": [["companyId", "mandatorId?", "startDate", "endDate"]],
}
SDC_PREFIX = "_sdc_"
DELETED_AT = "_sdc_deleted_at"
_SEPARATORS = re.compile(r"[^0-9a-z]")
_NON_FINITE = "NaN and Infinity are not JSON numbers, so the API cannot be sent this value"
_NOT_A_TIMESTAMP = (
    "{} is not a timestamp; _sdc_deleted_at deletes a record only when it holds an ISO-8601 "
    "date-time with a time zone (null or '' mean not deleted)"
)


def json_types(prop: Mapping[str, Any]) -> set[str]:
    kind = prop.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def to_api_value(value: Any, prop: Mapping[str, Any]) -> Any:
    """One Python value serialised the way the API expects it for the input field `prop`."""
    fmt = prop.get("format")
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if fmt == "date" else format_datetime(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str) and fmt == "date-time":
        try:
            return format_datetime(parse_datetime(value))
        except ValueError:
            return value  # left as is: validation rejects it with the field's name
    if isinstance(value, decimal.Decimal):
        integral = "integer" in json_types(prop) and value == value.to_integral_value()
        return int(value) if integral else float(value)
    if isinstance(value, list):
        return [to_api_value(item, prop.get("items", {})) for item in value]
    if isinstance(value, dict):
        props = prop.get("properties", {})
        return {k: to_api_value(v, props.get(k, {})) for k, v in value.items()}
    return value


def comparable(value: Any) -> Any:
    """A form equal for two values that mean the same: id lists as sets, numbers by value."""
    if isinstance(value, list):
        items = [comparable(v) for v in value]
        try:
            return tuple(sorted(items))
        except TypeError:
            return tuple(items)
    if isinstance(value, dict):
        return tuple(sorted((k, comparable(v)) for k, v in value.items()))
    if isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool):
        return float(value)
    return value


def is_finite(value: Any) -> bool:
    """False for NaN and Infinity (float or Decimal): JSON cannot carry them."""
    if isinstance(value, decimal.Decimal):
        return value.is_finite()
    return not isinstance(value, float) or math.isfinite(value)


def leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of each scalar inside `value`, paths as `a.b.0`."""
    if isinstance(value, Mapping | list | tuple):
        items = value.items() if isinstance(value, Mapping) else enumerate(value)
        for key, item in items:
            yield from leaves(item, f"{path}.{key}" if path else str(key))
    else:
        yield path, value


def non_finite(value: Any, path: str) -> str | None:
    """The path of the first NaN or Infinity in `value`, else None."""
    if isinstance(value, str | int) or value is None:
        return None  # the common case, without a walk
    return next((where for where, item in leaves(value, path) if not is_finite(item)), None)


def normalise_name(name: str) -> str:
    """`Postal_Code`, `postal-code`, `POSTALCODE` -> `postalcode`."""
    return _SEPARATORS.sub("", name.casefold())


def shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class Problem:
    field: str | None
    reason: str


def _conflict(name: str, first: str, second: str, one: Any, other: Any) -> Problem:
    return Problem(
        f"{first},{second}",
        f"columns {first} and {second} both fill {name} with different values "
        f"({shown(one)} and {shown(other)}); keep one of them",
    )


@dataclass(frozen=True)
class Reference:
    """A column naming a parent record by its match key: `companyCustomerCode` fills
    `companyId` from the `company` whose `customerCode` it holds."""

    target_field: str
    parent_stream: str
    parent_key_field: str


@dataclass
class ColumnMap:
    """How each column of a stream maps onto the entity's input fields."""

    fields: dict[str, str] = field(default_factory=dict)  # column -> input field
    references: dict[str, Reference] = field(default_factory=dict)
    id_column: str | None = None
    read_only: list[str] = field(default_factory=list)  # output-only fields (createdAt, ...)
    unknown: list[str] = field(default_factory=list)


@dataclass
class MappedRow:
    payload: dict[str, Any] = field(default_factory=dict)
    references: dict[str, tuple[Reference, Any]] = field(default_factory=dict)
    record_id: str | None = None
    id_column: str | None = None
    deleted: bool = False
    unknown: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # each rejects the row


class FieldMapper:
    """Maps columns onto input fields, case- and separator-insensitively; output fields are
    read-only columns, not unknown; `keep_empty`: where `''` stays a value (`*`: all)."""

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
        ids, keep = set(id_fields), set(keep_empty)
        # '' is no value in a field that does not take free text (enum, number, date, ID, list).
        self._empty_is_none = frozenset(
            name
            for name, prop in self.input_props.items()
            if "*" not in keep and name not in keep and not _takes_text(prop, name in ids)
        )
        # normalised name -> (kind, detail), by rising precedence: read-only, ref, field, id
        self._kinds: dict[str, tuple[str, Any]] = {
            normalise_name(name): ("read_only", None) for name in output_fields
        }
        for target_field, (parent_stream, key_fields) in (parents or {}).items():
            for key_field in key_fields:
                norm = normalise_name(target_field.removesuffix("Id") + key_field)
                self._kinds[norm] = ("ref", Reference(target_field, parent_stream, key_field))
        self._kinds.update({normalise_name(n): ("field", n) for n in self.input_props})
        self._kinds["id"] = ("id", None)
        self._cache: dict[str, tuple[str, Any]] = {}

    def classify(self, column: str) -> tuple[str, Any]:
        """('sdc'|'id'|'field'|'ref'|'read_only'|'unknown', detail) for one column name."""
        hit = self._cache.get(column)
        if hit is None:
            hit = self._kinds.get(normalise_name(column), ("unknown", None))
            if column.startswith(SDC_PREFIX):
                hit = ("sdc", None)
            self._cache[column] = hit
        return hit

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
            elif kind in ("read_only", "unknown"):
                getattr(cmap, kind).append(column)
        return cmap

    def mapped_fields(self, columns: Iterable[str]) -> list[str]:
        cmap = self.column_map(columns)
        hit = {*cmap.fields.values(), *(r.target_field for r in cmap.references.values())}
        return [name for name in self.input_props if name in hit]

    def convert(self, record: Mapping[str, Any]) -> MappedRow:
        """One record mapped; what makes it unwritable is in `problems`."""
        row = MappedRow()
        sources: dict[str, str] = {}  # input field -> the column filling it
        for column, value in record.items():
            kind, detail = self.classify(column)
            bad = non_finite(value, column) if kind in ("field", "ref") else None
            if bad is not None:
                row.problems.append(Problem(bad if kind == "field" else column, _NON_FINITE))
            elif kind == "field":
                value = None if value == "" and detail in self._empty_is_none else value
                value = to_api_value(value, self.input_props[detail])
                held, earlier = row.payload.get(detail), sources.get(detail)
                # Two spellings of one field: a value wins over an empty one, two values clash.
                clash = held is not None and value is not None
                if earlier is not None and clash and comparable(held) != comparable(value):
                    row.problems.append(_conflict(detail, earlier, column, held, value))
                elif earlier is None or value is not None:
                    row.payload[detail], sources[detail] = value, column
            elif kind == "ref":
                row.references[column] = (detail, value)
            elif kind == "id" and value not in (None, ""):
                _convert_id(row, column, value)
            elif column == DELETED_AT:
                try:  # a date-time with a time zone; not `"NULL"`, `"false"`, `true`, `0`
                    row.deleted = value not in (None, "") and (
                        isinstance(value, dt.datetime) or bool(parse_datetime(value))
                    )
                except ValueError:
                    row.problems.append(Problem(column, _NOT_A_TIMESTAMP.format(shown(value))))
            elif kind == "unknown":
                row.unknown.append(column)
        return row


def id_input_fields(graphql_schema: Any, type_names: Iterable[str | None]) -> set[str]:
    """Fields of these input types whose GraphQL type is ID (`''` there is no id)."""
    types = [graphql_schema.get_type(name) for name in type_names if name]
    return {
        name
        for gql_type in types
        if isinstance(gql_type, GraphQLInputObjectType)
        for name, input_field in gql_type.fields.items()
        if get_named_type(input_field.type).name == "ID"
    }


def _takes_text(prop: Mapping[str, Any], is_id: bool) -> bool:
    """A free-text input field: a String, not an enum, date, number, list or ID."""
    types = json_types(prop)
    plain = "enum" not in prop and prop.get("format") not in ("date", "date-time")
    return not is_id and plain and "string" in types and types <= {"string", "null"}


def _convert_id(row: MappedRow, column: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        row.problems.append(Problem(column, f"an id must be a string, got {shown(value)}"))
        row.record_id = str(value)  # only to name the row in messages
    elif row.id_column is not None and row.record_id != str(value):
        row.problems.append(_conflict("id", row.id_column, column, row.record_id, str(value)))
    else:
        row.record_id, row.id_column = str(value), column


class BadKeyError(ValueError):
    """A value that cannot be (part of) a match key."""


def key_part(value: Any, normalize: Iterable[str] = ()) -> Any:
    """One part of a key ('' is none, 1.0 is 1, trim/case on opt-in), else BadKeyError."""
    if isinstance(value, str):
        if "trim" in normalize:
            value = value.strip()
        if "case" in normalize:
            value = value.casefold()
        return value or None
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float | decimal.Decimal):
        if not is_finite(value):
            raise BadKeyError("NaN and Infinity cannot be key values")
        return int(value) if value == int(value) else float(value)
    kinds = {dict: "an object", list: "a list"}
    kind = next((k for t, k in kinds.items() if isinstance(value, t)), type(value).__name__)
    raise BadKeyError(f"{kind} cannot be a key value")


@dataclass(frozen=True)
class KeySpec:
    """One match key: its fields, the optional ones (`field?`), its text normalisation."""

    fields: tuple[str, ...]
    optional: frozenset[str] = frozenset()
    normalize: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, names: Sequence[str], normalize: Iterable[str] = ()) -> KeySpec:
        optional = frozenset(n.rstrip("?") for n in names if n.endswith("?"))
        return cls(tuple(n.rstrip("?") for n in names), optional, frozenset(normalize))

    def __str__(self) -> str:
        return "+".join(f + ("?" if f in self.optional else "") for f in self.fields)

    def value(self, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """None when a required part is empty or cannot be a key (such a record is not indexed)."""
        parts = []
        for name in self.fields:
            try:
                part = key_part(values.get(name), self.normalize)
            except BadKeyError:
                return None
            if part is None and name not in self.optional:
                return None
            parts.append(part)
        return None if all(p is None for p in parts) else tuple(parts)

    def missing(self, values: Mapping[str, Any]) -> list[str]:
        return [n for n in self.fields if n not in self.optional and values.get(n) in (None, "")]


class RemoteIndex:
    """One entity's remote records: id -> tracked values (a tuple, for memory); key -> ids."""

    def __init__(self, fields: Iterable[str], key_specs: Sequence[KeySpec]) -> None:
        names = [*fields, *(f for spec in key_specs for f in spec.fields)]
        self.fields: tuple[str, ...] = tuple(dict.fromkeys(names))
        self.key_specs = tuple(key_specs)
        self._values: dict[str, tuple[Any, ...]] = {}
        # key -> one id, or a list when records share it (rare): a list each costs ~70 bytes
        self._keys: list[dict[Any, str | list[str]]] = [{} for _ in self.key_specs]

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._values

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        return [(i, dict(zip(self.fields, v, strict=True))) for i, v in self._values.items()]

    def get(self, record_id: str) -> dict[str, Any] | None:
        values = self._values.get(record_id)
        return None if values is None else dict(zip(self.fields, values, strict=True))

    def add(self, record_id: str, values: Mapping[str, Any]) -> None:
        if record_id in self._values:
            self._unlink(record_id)
        self._values[record_id] = tuple(values.get(f) for f in self.fields)
        for spec, keys in zip(self.key_specs, self._keys, strict=True):
            key = _compact(spec.value(values))
            if key is None:
                continue
            held = keys.get(key)
            if held is None:
                keys[key] = record_id
            elif isinstance(held, list):
                held.append(record_id)
            else:
                keys[key] = [held, record_id]

    def update(self, record_id: str, changes: Mapping[str, Any]) -> None:
        self.add(record_id, {**(self.get(record_id) or {}), **changes})

    def remove(self, record_id: str) -> None:
        self._unlink(record_id)
        self._values.pop(record_id, None)

    def _unlink(self, record_id: str) -> None:
        values = self.get(record_id)
        if values is None:
            return
        for spec, keys in zip(self.key_specs, self._keys, strict=True):
            key = _compact(spec.value(values))
            held = keys.get(key) if key is not None else None
            if held == record_id:
                del keys[key]
            elif isinstance(held, list) and record_id in held:
                held.remove(record_id)
                if len(held) == 1:
                    keys[key] = held[0]

    def rename(self, old_id: str, new_id: str) -> None:
        values = self.get(old_id)
        if values is not None:
            self.remove(old_id)
            self.add(new_id, values)

    def lookup(self, spec_index: int, key: tuple[Any, ...]) -> list[str]:
        held = self._keys[spec_index].get(_compact(key), [])
        return list(held) if isinstance(held, list) else [held]

    def lookup_field(self, name: str, value: Any) -> list[str]:
        """Ids whose `name` equals `value` as keys compare (a parent's customerCode)."""
        normalize = next((s.normalize for s in self.key_specs if name in s.fields), frozenset())
        single = KeySpec((name,), normalize=normalize)
        key = single.value({name: value})
        if key is None or name not in self.fields:  # every key field is tracked
            return []
        for number, spec in enumerate(self.key_specs):
            if spec.fields == (name,):
                return self.lookup(number, key)
        position = self.fields.index(name)
        return [i for i, v in self._values.items() if single.value({name: v[position]}) == key]

    def find(self, values: Mapping[str, Any]) -> tuple[KeySpec | None, list[str]]:
        """Ids matching the first key spec the values fill."""
        for number, spec in enumerate(self.key_specs):
            key = spec.value(values)
            if key is not None:
                return spec, self.lookup(number, key)
        return None, []


def _compact(key: tuple[Any, ...] | None) -> Any:
    return key[0] if key is not None and len(key) == 1 else key
