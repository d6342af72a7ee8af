"""Reads the Singer input: a broken line is one clear fatal error naming the input line and,
where it has one, the stream (never a traceback); a termination signal stops reading between
two lines."""

from __future__ import annotations

import json
import typing as t
from collections import Counter

from singer_sdk.exceptions import RecordsWithoutSchemaException
from singer_sdk.io_base import SingerReader
from singer_sdk.singerlib.json import deserialize_json

from target_moovago.errors import InputError, RecordBeforeSchemaError, UnsupportedStreamError

# What each message type must hold, and the JSON type of each part (None: any value).
_REQUIRED: dict[str, dict[str, type | None]] = {
    "SCHEMA": {"stream": str, "schema": None},  # checked with its "properties" below
    "RECORD": {"stream": str, "record": dict},
    "STATE": {"value": None},
    "ACTIVATE_VERSION": {"stream": str, "version": None},
    "BATCH": {"stream": str, "encoding": dict, "manifest": list},
}
__all__ = ["InputError", "MoovagoReader", "RecordBeforeSchemaError"]
_JSON_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}


class ReadInterrupted(Exception):
    """Raised by a signal handler while the reader waits for the next line."""


def _json_name(value: t.Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return _JSON_NAMES.get(type(value), type(value).__name__)


class MoovagoReader(SingerReader):
    """The SDK's reader, checking each message's shape before the target handles it."""

    def __init__(self) -> None:
        super().__init__()
        self.line_number = 0
        self.waiting = False  # blocked reading the next line: no message is half handled
        self.stop_requested = False
        self.reading = False  # the input is not all read yet

    def interrupt(self) -> None:
        """Called from a signal handler: read no further line. Blocked on input, it raises
        ReadInterrupted there at once; inside a message, reading stops after it."""
        self.stop_requested = True
        if self.waiting:
            raise ReadInterrupted

    def process_lines(
        self,
        file_input: t.IO[str] | None,
        callbacks: dict[str, t.Callable[[dict], None]],
    ) -> t.Counter[str]:
        self.reading = True
        try:
            return self._process_lines(file_input, callbacks)
        finally:
            self.reading = False

    def _process_lines(
        self,
        file_input: t.IO[str] | None,
        callbacks: dict[str, t.Callable[[dict], None]],
    ) -> t.Counter[str]:
        stats: t.Counter[str] = Counter()
        lines = iter(file_input or self.default_input)
        while not self.stop_requested:
            try:
                line = self._next_line(lines)
            except ReadInterrupted:
                break
            if line is None:
                break
            self.line_number += 1
            self._current_message = line
            message = self._message(line)
            kind = message["type"]
            try:
                callbacks[kind](message)
            except RecordsWithoutSchemaException:
                msg = self._where(message, f"a RECORD before the SCHEMA of {message['stream']!r}")
                raise RecordBeforeSchemaError(msg) from None
            except UnsupportedStreamError as exc:
                msg = f"input line {self.line_number}: {exc}"  # it names the stream
                raise UnsupportedStreamError(msg) from None
            stats[kind] += 1
        return stats

    def _next_line(self, lines: t.Iterator[str]) -> str | None:
        try:
            self.waiting = True
            if self.stop_requested:
                return None
            return next(lines)
        except StopIteration:
            return None
        except UnicodeDecodeError:
            msg = f"input line {self.line_number + 1} is not UTF-8 text, so not Singer JSON"
            raise InputError(msg) from None
        finally:
            self.waiting = False

    def deserialize_json(self, line: str) -> dict:
        """Parse one line; the SDK's version logs the whole line with a traceback."""
        try:
            value = deserialize_json(line)
        except json.JSONDecodeError as exc:
            msg = (
                f"input line {self.line_number} is not valid JSON "
                f"({exc.msg.removesuffix(' at')} at column "
                f"{exc.colno}); each line must be one Singer message"
            )
            raise InputError(msg) from None
        return t.cast("dict", value)

    def _message(self, line: str) -> dict[str, t.Any]:
        message: t.Any = self.deserialize_json(line)
        if not isinstance(message, dict):
            msg = (
                f"input line {self.line_number} is {_json_name(message)}; a Singer message "
                'is a JSON object with a "type"'
            )
            raise InputError(msg)
        kind = message.get("type")
        if kind is None:
            msg = f'input line {self.line_number}: the message has no "type"'
            raise InputError(msg)
        if kind not in _REQUIRED:
            msg = (
                f"input line {self.line_number}: unknown message type {kind!r}; "
                f"expected one of {', '.join(_REQUIRED)}"
            )
            raise InputError(msg)
        for part, expected in _REQUIRED[kind].items():
            if part not in message:
                msg = self._where(message, f'the {kind} message has no "{part}"')
                raise InputError(msg)
            value = message[part]
            if expected is not None and not isinstance(value, expected):
                msg = self._where(
                    message,
                    f'the "{part}" of a {kind} message must be {_JSON_NAMES[expected]}, '
                    f"not {_json_name(value)}",
                )
                raise InputError(msg)
        schema = message.get("schema")
        if kind == "SCHEMA" and not (
            isinstance(schema, dict) and isinstance(schema.get("properties"), dict)
        ):
            got = _json_name(schema.get("properties") if isinstance(schema, dict) else schema)
            msg = self._where(
                message, f'the SCHEMA needs a "schema" object with "properties", got {got}'
            )
            raise InputError(msg)
        return message

    def _where(self, message: dict[str, t.Any], text: str) -> str:
        stream = message.get("stream")
        named = f", stream {stream!r}" if isinstance(stream, str) else ""
        return f"input line {self.line_number}{named}: {text}"
