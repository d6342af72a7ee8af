"""Reads the Singer input: a broken line is one clear fatal error naming the input line and,
where it has one, the stream (never a traceback); a termination signal stops reading between
two lines.

Checked for every message type the SDK accepts (SCHEMA, RECORD, STATE, ACTIVATE_VERSION,
BATCH): its shape, that its stream had a SCHEMA first, and a nesting depth of at most
MAX_DEPTH levels. A BATCH's files are read and checked like RECORD lines before any of its
rows is handed on, so a missing file or a bad line in one writes nothing of that message.
"""

from __future__ import annotations

import gzip
import json
import stat
import typing as t
import zlib
from collections import Counter, deque
from pathlib import Path

import fsspec
from singer_sdk.exceptions import RecordsWithoutSchemaException
from singer_sdk.io_base import SingerReader
from singer_sdk.singerlib.json import deserialize_json

from moovago_api.errors import MoovagoError
from target_moovago.ledger import UnsupportedStreamError

# What each message type must hold, and the JSON type of each part (None: any value).
_REQUIRED: dict[str, dict[str, type | None]] = {
    "SCHEMA": {"stream": str, "schema": None},  # checked with its "properties" below
    "RECORD": {"stream": str, "record": dict},
    "STATE": {"value": None},
    "ACTIVATE_VERSION": {"stream": str, "version": int},
    "BATCH": {"stream": str, "encoding": dict, "manifest": list},
}
__all__ = ["MAX_DEPTH", "InputError", "MoovagoReader", "RecordBeforeSchemaError"]
# Optional parts the SDK reads, when present: (JSON type, type of each item or None).
_OPTIONAL: dict[str, dict[str, tuple[type, type | None]]] = {
    "SCHEMA": {"key_properties": (list, str), "bookmark_properties": (list, None)},
    "RECORD": {"time_extracted": (str, None), "version": (int, None)},
    "ACTIVATE_VERSION": {"version": (int, None)},
}
_JSON_NAMES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
}
# Deeper than this is refused as broken input: the row-level checks (mapping, validation,
# the rejects file) stay within Python's recursion limit below it, and no Moovago input type
# nests more than a few levels.
MAX_DEPTH = 256
BATCH_FORMATS = ("jsonl",)
BATCH_COMPRESSIONS = (None, "none", "gzip")
# The longest line of a BATCH file read (plain or once inflated): the row-level checks hold
# several copies of a line, and no Moovago row comes near it.
MAX_LINE_BYTES = 16 * 2**20
PROTOCOLS_SETTING = "batch_protocols"
SYSTEM_TREES = (Path("/proc"), Path("/sys"), Path("/dev"))


class InputError(MoovagoError):
    """The Singer input is broken (not a bad row): the run stops."""


class RecordBeforeSchemaError(InputError, RecordsWithoutSchemaException):
    """A RECORD came before its stream's SCHEMA (still the SDK's exception for it)."""


class ReadInterrupted(Exception):
    """Raised by a signal handler while the reader waits for the next line."""


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "AEIOU" else f"a {kind}"


def _json_name(value: t.Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return _JSON_NAMES.get(type(value), type(value).__name__)


_TOO_DEEP = f"more than {MAX_DEPTH} levels of objects and arrays"


def _check_depth(value: t.Any, limit: int) -> None:
    """RecursionError when `value` nests objects and arrays deeper than `limit` (iterative)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                raise RecursionError
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def batch_file(entry: str, protocols: t.Collection[str]) -> str:
    """The file a BATCH manifest entry names, as it will be opened: a local regular file
    (`file://` URL or plain path, resolved, outside /proc, /sys and /dev), or a URL of a
    protocol `batch_protocols` lists. ValueError saying why the entry is refused."""
    scheme, sep, rest = entry.partition("://")
    protocol = scheme.lower() if sep else "file"
    if protocol != "file":
        if protocol not in protocols:
            msg = (
                f"is a {protocol}:// URL; target-moovago reads local files only unless the "
                f"setting {PROTOCOLS_SETTING} lists {protocol!r}"
            )
            raise ValueError(msg)
        return entry
    local = Path(rest if sep else entry)
    if sep and not rest.startswith("/"):
        msg = "is a file:// URL naming a host; only file:///absolute/path is read"
        raise ValueError(msg)
    try:
        resolved = local.resolve(strict=True)
        mode = resolved.stat().st_mode
    except FileNotFoundError:
        raise ValueError("does not exist") from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise ValueError(f"cannot be read ({exc})") from None
    if any(resolved.is_relative_to(tree) for tree in SYSTEM_TREES) or not stat.S_ISREG(mode):
        msg = f"is not a regular data file ({resolved}); device, /proc and /sys files are refused"
        raise ValueError(msg)
    return str(resolved)


def _bounded_lines(stream: t.BinaryIO | gzip.GzipFile) -> t.Iterator[tuple[int, bytes]]:
    """Numbered lines of at most MAX_LINE_BYTES each (ValueError beyond: never read whole)."""
    number = 0
    while line := stream.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(line) > MAX_LINE_BYTES:
            msg = f"line {number} is longer than {MAX_LINE_BYTES // 2**20} MiB, the limit of a line"
            raise ValueError(msg)
        yield number, line


def batch_records(path: str, *, gzipped: bool) -> t.Iterator[dict[str, t.Any]]:
    """The records of a BATCH file, read the bounded way; ValueError naming its first bad line."""
    with fsspec.open(path, mode="rb") as raw, gzip.open(raw) if gzipped else raw as lines:
        for number, line in _bounded_lines(lines):
            try:
                record = deserialize_json(line)
                _check_depth(record, MAX_DEPTH - 1)
            except RecursionError:
                raise ValueError(f"line {number} is nested too deeply ({_TOO_DEEP})") from None
            except (ValueError, UnicodeDecodeError):
                raise ValueError(f"line {number} is not valid JSON") from None
            if not isinstance(record, dict):
                raise ValueError(f"line {number} is {_json_name(record)}, not a record object")
            yield record


class MoovagoReader(SingerReader):
    """The SDK's reader, checking each message's shape before the target handles it."""

    def __init__(self) -> None:
        super().__init__()
        self.line_number = 0
        self.streams: set[str] = set()  # streams whose SCHEMA was handled
        self.on_failure: t.Callable[[], None] = lambda: None  # the run ends on broken input
        self.waiting = False  # blocked reading the next line: no message is half handled
        self.stop_requested = False
        self.reading = False  # the input is not all read yet
        self.protocols: frozenset[str] = frozenset()  # BATCH URL protocols beyond file://
        self.skips: t.Callable[..., bool] = lambda _stream, rows=0: False  # read, not handled

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
        stats: t.Counter[str] = Counter()
        lines = iter(file_input or self.default_input)
        self.reading = True
        try:
            while (line := self._next_line(lines)) is not None:
                self.line_number += 1
                self._current_message = line
                message = self._message(line)
                kind = message["type"]
                stream = str(message.get("stream"))  # every type but STATE has a string one
                if kind in {"ACTIVATE_VERSION", "BATCH"} and stream not in self.streams:
                    # (a RECORD before its SCHEMA: the SDK's own exception, wrapped below)
                    raise self._error(message, f"{_a(kind)} before the SCHEMA of {stream!r}")
                if kind == "BATCH":
                    self._check_batch_files(message)
                try:
                    if kind == "STATE" or not self.skips(stream, rows=kind == "RECORD"):
                        callbacks[kind](message)
                except RecordsWithoutSchemaException:
                    text = f"a RECORD before the SCHEMA of {stream!r}"
                    raise self._error(message, text, RecordBeforeSchemaError) from None
                except UnsupportedStreamError as exc:
                    msg = f"input line {self.line_number}: {exc}"  # it names the stream
                    raise UnsupportedStreamError(msg) from None
                if kind == "SCHEMA":
                    self.streams.add(stream)
                stats[kind] += 1
        except ReadInterrupted:  # a signal while waiting for the next line
            pass
        except BaseException:
            self.on_failure()
            raise
        finally:
            self.reading = False
        return stats

    def _check_batch_files(self, message: dict[str, t.Any]) -> None:
        """Read every file of a BATCH and check its lines before any row of it is written."""
        encoding = message["encoding"]
        fmt, compression = encoding.get("format"), encoding.get("compression")
        extra = sorted(set(encoding) - {"format", "compression"})
        if fmt not in BATCH_FORMATS or compression not in BATCH_COMPRESSIONS or extra:
            raise self._error(
                message,
                f"unsupported BATCH encoding {json.dumps(encoding, default=str)[:200]}; "
                'target-moovago reads {"format": "jsonl"} files, plain or gzip',
            )
        files = []
        for entry in message["manifest"]:
            if not isinstance(entry, str) or not entry:
                got = _json_name(entry)
                raise self._error(message, f"a BATCH manifest entry must be a file URL, not {got}")
            try:
                path = batch_file(entry, self.protocols)
                deque(batch_records(path, gzipped=compression == "gzip"), maxlen=0)  # all read
            except FileNotFoundError:
                problem = "does not exist"
            except ValueError as exc:
                problem = str(exc)
            except (OSError, EOFError, zlib.error) as exc:
                problem = f"cannot be read ({exc})"
            else:
                files.append(path)
                continue
            raise self._error(message, f"BATCH file {entry} {problem}")
        message["manifest"] = files  # the SDK opens exactly the files checked

    def _next_line(self, lines: t.Iterator[str]) -> str | None:
        try:
            self.waiting = True
            return None if self.stop_requested else next(lines, None)
        except UnicodeDecodeError:
            msg = f"input line {self.line_number + 1} is not UTF-8 text, so not Singer JSON"
            raise InputError(msg) from None
        finally:
            self.waiting = False

    def deserialize_json(self, line: str) -> dict:
        """Parse one line; the SDK's version logs the whole line with a traceback."""
        try:
            value = deserialize_json(line)
            _check_depth(value, MAX_DEPTH)
        except RecursionError:
            msg = f"input line {self.line_number} is nested too deeply ({_TOO_DEEP})"
            raise InputError(msg) from None
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
                raise self._error(message, f'the {kind} message has no "{part}"')
            value = message[part]
            if expected is not None and not isinstance(value, expected):
                raise self._error(
                    message,
                    f'the "{part}" of {_a(kind)} message must be {_JSON_NAMES[expected]}, '
                    f"not {_json_name(value)}",
                )
        for part, (expected, item) in _OPTIONAL.get(kind, {}).items():
            value = message.get(part)
            if value is None:
                continue
            wrong = not isinstance(value, expected) or isinstance(value, bool)
            if not wrong and item is not None:
                wrong = not all(isinstance(v, item) for v in value)
            if wrong:
                what = _JSON_NAMES[expected] + (" of strings" if item is str else "")
                raise self._error(
                    message,
                    f'the "{part}" of {_a(kind)} message must be {what}, not {_json_name(value)}',
                )
        schema = message.get("schema")
        if kind == "SCHEMA" and not (
            isinstance(schema, dict) and isinstance(schema.get("properties"), dict)
        ):
            got = _json_name(schema.get("properties") if isinstance(schema, dict) else schema)
            text = f'the SCHEMA needs a "schema" object with "properties", got {got}'
            raise self._error(message, text)
        return message

    def _error(
        self, message: dict[str, t.Any], text: str, kind: type[InputError] = InputError
    ) -> InputError:
        """The error `text` about this message, naming its input line and stream."""
        stream = message.get("stream")
        named = f", stream {stream!r}" if isinstance(stream, str) else ""
        return kind(f"input line {self.line_number}{named}: {text}")
