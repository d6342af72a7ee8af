"""The schema's custom scalars: DateTime (ISO-8601 instant, UTC, milliseconds) and Date.

Stored values are always the serialized form (`2026-11-29T08:30:00.000Z`, `2026-11-01`), so a
value read from the store is already what the response carries.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from graphql import GraphQLError, GraphQLScalarType, GraphQLSchema, StringValueNode, ValueNode

from moovago_api.wire import UTC, format_datetime, parse_datetime

__all__ = ["UTC", "bind_scalars", "ceil_to_millisecond", "format_datetime", "parse_datetime"]


def ceil_to_millisecond(value: datetime) -> datetime:
    """Stored instants have millisecond precision: `>= value` equals `>= ceil(value)` on them."""
    extra = value.microsecond % 1000
    return value + timedelta(microseconds=1000 - extra) if extra else value


def _serialize_datetime(value: Any) -> str:
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, str):
        try:
            return format_datetime(parse_datetime(value))
        except ValueError as exc:
            raise GraphQLError(f"DateTime cannot represent {value!r}: {exc}") from exc
    raise GraphQLError(f"DateTime cannot represent {value!r}")


def _parse_datetime_value(value: Any) -> datetime:
    try:
        return parse_datetime(value)
    except (ValueError, TypeError) as exc:
        raise GraphQLError(
            f"DateTime cannot represent {value!r}: expected an ISO-8601 instant such as "
            "'2026-11-29T08:30:00.000Z'"
        ) from exc


def _serialize_date(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return _parse_date_value(value).isoformat()
    raise GraphQLError(f"Date cannot represent {value!r}")


def _parse_date_value(value: Any) -> date:
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise GraphQLError(f"Date cannot represent {value!r}: expected YYYY-MM-DD such as '2026-11-01'")


def _literal(parse: Any) -> Any:
    def coerce_literal(node: ValueNode, _variables: Any = None) -> Any:
        if not isinstance(node, StringValueNode):
            raise GraphQLError("expected a string literal")
        return parse(node.value)

    return coerce_literal


def bind_scalars(schema: GraphQLSchema) -> None:
    """Give DateTime and Date real coercion (graphql-core 3.2 and 3.3 attribute names)."""
    coercers = {
        "DateTime": (_serialize_datetime, _parse_datetime_value),
        "Date": (_serialize_date, _parse_date_value),
    }
    for name, (serialize, parse_value) in coercers.items():
        scalar = schema.type_map.get(name)
        if not isinstance(scalar, GraphQLScalarType):
            continue
        literal = _literal(parse_value)
        scalar.serialize = serialize  # type: ignore[method-assign]
        scalar.parse_value = parse_value  # type: ignore[method-assign]
        scalar.parse_literal = literal  # type: ignore[method-assign]
        if hasattr(scalar, "coerce_output_value"):
            scalar.coerce_output_value = serialize
            scalar.coerce_input_value = parse_value
            scalar.coerce_input_literal = literal
