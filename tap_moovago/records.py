"""What enters the tap from outside, checked where it enters: STATE bookmarks, and records
against the SCHEMA the tap emitted (the rules: docs/reliability.md). A refusal is one line."""

from __future__ import annotations

import datetime as dt
import json
import re
import typing as t

from moovago_api.errors import ConfigError, MoovagoError
from moovago_api.wire import format_datetime, parse_datetime

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Mapping

FUTURE_ALLOWANCE = dt.timedelta(minutes=10)
API_FORM = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
STATE_FIX = "fix or remove this stream's bookmark in the state"


class RecordError(MoovagoError):
    """A record the API answered does not fit the stream's SCHEMA and cannot be converted."""


def _shown(value: object) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def checked_bookmark(
    stream: str,
    key: str,
    value: object,
    *,
    started: dt.datetime,
    logger: logging.Logger,
) -> dt.datetime:
    """The instant a stream's bookmark `value` stands for, capped to `started`."""
    where = f"Stream '{stream}': the bookmark of {key} in the state is {_shown(value)}"
    try:
        instant = parse_datetime(value)
    except ValueError:
        msg = f"{where}, not an ISO-8601 date-time with a time zone; {STATE_FIX}"
        raise ConfigError(msg) from None
    if instant <= started:
        return instant
    if instant - started > FUTURE_ALLOWANCE:
        msg = (
            f"{where}, after this run's start ({format_datetime(started)}): every change "
            f"until then would be hidden; {STATE_FIX}"
        )
        raise ConfigError(msg)
    logger.warning(
        "%s, after this run's start; reading from %s (a server clock ahead of this one)",
        where,
        format_datetime(started),
    )
    return started


def _is_date(text: str) -> bool:
    try:
        return len(text) == len("2026-01-31") and bool(dt.date.fromisoformat(text))
    except ValueError:
        return False


class RecordFit:
    """Makes each record fit the stream's SCHEMA: undeclared fields dropped, an integer where a
    plain string is declared made text, date-times in the API's form; else a RecordError."""

    def __init__(self, stream: str, schema: Mapping[str, t.Any], replication_key: str | None):
        self.stream = stream
        self.schema = {"type": "object", "properties": schema.get("properties") or {}}
        self.replication_key = replication_key
        self.label = ""  # the record being fitted, as errors name it

    def fit(self, record: dict[str, t.Any]) -> dict[str, t.Any]:
        self.label = f"id={_shown(record.get('id'))}"
        key = self.replication_key
        if key and record.get(key) is not None:  # before the types: never a number made text
            record = {**record, key: self._instant(record[key], key)}
        return t.cast("dict[str, t.Any]", self._value(record, self.schema, ""))

    def _instant(self, value: object, path: str) -> str:
        if isinstance(value, str) and API_FORM.fullmatch(value):
            return value  # already the API's form: most rows, not worth a parse
        try:
            return format_datetime(parse_datetime(value))
        except ValueError:
            msg = (
                f"Stream '{self.stream}': record {self.label}: {path} is {_shown(value)}, not "
                "an ISO-8601 date-time with a time zone (a number could be seconds or "
                "milliseconds); the stream stops here"
            )
            raise RecordError(msg) from None

    def _value(self, value: t.Any, prop: Mapping[str, t.Any], path: str) -> t.Any:
        kind, form = prop.get("type"), prop.get("format")
        types = {kind} if isinstance(kind, str) else set(kind or ())
        if not types:  # anyOf, or a scalar of any JSON value: nothing declared to check
            return value
        ok = False
        if value is None:
            ok = "null" in types
        elif isinstance(value, bool):
            ok = "boolean" in types
        elif isinstance(value, int | float):
            if form == "date-time":
                return self._instant(value, path)  # refused, naming why
            if "number" in types or ("integer" in types and float(value).is_integer()):
                return value
            if "string" in types and isinstance(value, int) and not form:
                return str(value)
        elif isinstance(value, str):
            ok = "string" in types and (form != "date" or _is_date(value))
            if ok and form == "date-time":
                return self._instant(value, path)
        elif isinstance(value, dict) and "object" in types and "properties" in prop:
            props = prop["properties"]
            return {
                name: self._value(item, props[name], f"{path}.{name}" if path else name)
                for name, item in value.items()
                if name in props
            }
        elif isinstance(value, dict):
            ok = "object" in types
        elif isinstance(value, list) and "array" in types:
            items = prop.get("items") or {}
            return [self._value(v, items, f"{path}.{n}") for n, v in enumerate(value)]
        if ok:
            return value
        msg = (
            f"Stream '{self.stream}': record {self.label}: {path} is {_shown(value)}, which the "
            f"SCHEMA declares {'/'.join(sorted(types))}; the stream stops here"
        )
        raise RecordError(msg)
