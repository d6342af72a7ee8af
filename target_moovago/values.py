"""Values of one field, as the API takes them: serialising (dates, decimals), comparing with a
stored value, what JSON cannot carry (NaN, Infinity), which fields take free text (so `''` is a
value there), and what `_sdc_deleted_at` may hold. Pure, no I/O."""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Iterable, Mapping
from typing import Any

from graphql import GraphQLInputObjectType, get_named_type
from jsonschema import FormatChecker

from moovago_api.wire import (
    format_datetime,
    is_datetime_text,
    normalise_datetime_text,
    parse_datetime,
)


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
