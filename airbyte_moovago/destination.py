"""`destination-moovago`: target-moovago behind the Airbyte destination protocol (spec, check,
write).

Airbyte -> Singer: each configured stream's first RECORD is preceded by a Singer SCHEMA (its
json_schema), every RECORD becomes a Singer RECORD and every Airbyte STATE a Singer STATE that
carries all the Airbyte states received so far (the newest per stream, as JSON text). The
target emits a STATE only once every row before it is written, rejected or counted; each
Airbyte state in it that was not echoed yet is echoed then. So an Airbyte STATE comes back
only after every earlier record is settled, by the target's own rule.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from airbyte_moovago import singer
from airbyte_moovago.protocol import (
    AirbyteAdapterError,
    child_failed,
    connection_status,
    emit,
    fail,
    parser,
    plugin_settings,
    read_config,
    read_json,
    spec_message,
)

#: Airbyte's `overwrite` would mean deleting every Moovago record first: never done.
SUPPORTED_SYNC_MODES = ("append", "append_dedup")
STATE_KEY = "airbyte_states"
IGNORED_TYPES = frozenset({"LOG", "TRACE", "CONTROL"})  # no data in them


def spec() -> dict[str, Any]:
    from target_moovago.target import TargetMoovago

    return spec_message(
        plugin_settings(TargetMoovago),
        title="Moovago destination (target-moovago)",
        supportsIncremental=True,
        supported_destination_sync_modes=list(SUPPORTED_SYNC_MODES),
    )


def _state_key(state: Mapping[str, Any]) -> str:
    kind = state.get("type") or "LEGACY"
    if kind == "STREAM":
        descriptor = (state.get("stream") or {}).get("stream_descriptor") or {}
        return json.dumps(["STREAM", descriptor.get("namespace"), descriptor.get("name")])
    return json.dumps([kind])


class WriteTranslator:
    """Airbyte input lines -> Singer lines for the target; the target's STATEs -> Airbyte."""

    def __init__(self, configured: Mapping[str, Any]) -> None:
        self.streams: dict[str, dict[str, Any]] = {}
        for item in configured.get("streams") or []:
            stream = item.get("stream") or {}
            name = str(stream.get("name"))
            mode = item.get("destination_sync_mode", "append")
            if mode not in SUPPORTED_SYNC_MODES:
                msg = (
                    f"configured catalog: stream {name!r} has destination_sync_mode {mode!r}; "
                    f"supported: {', '.join(SUPPORTED_SYNC_MODES)} (Moovago records are upserted, "
                    "never deleted wholesale)"
                )
                raise AirbyteAdapterError(msg)
            self.streams[name] = item
        if not self.streams:
            raise AirbyteAdapterError("configured catalog: no stream is configured")
        self.schema_sent: set[str] = set()
        self.states: dict[str, dict[str, Any]] = {}  # newest Airbyte state per key, in order
        self.echoed: dict[str, str] = {}

    def _schema(self, name: str) -> dict[str, Any]:
        """No key_properties: the target finds a row's record by `id`, else by its match keys,
        and a row to create has no `id` yet (the SDK would refuse it as missing its key)."""
        json_schema = self.streams[name]["stream"].get("json_schema") or {"type": "object"}
        return {"type": "SCHEMA", "stream": name, "schema": json_schema, "key_properties": []}

    def to_singer(self, line: str, number: int) -> Iterator[dict[str, Any]]:
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            raise AirbyteAdapterError(f"input line {number} is not JSON: {line[:120]!r}") from None
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "RECORD":
            record = message.get("record") or {}
            name = record.get("stream")
            if name not in self.streams:
                msg = (
                    f"input line {number}: a record of stream {name!r}, which the configured "
                    "catalog does not have"
                )
                raise AirbyteAdapterError(msg)
            data = record.get("data")
            if not isinstance(data, dict):
                msg = f"input line {number}: stream {name!r} record data is not an object"
                raise AirbyteAdapterError(msg)
            if name not in self.schema_sent:
                self.schema_sent.add(name)
                yield self._schema(name)
            yield {"type": "RECORD", "stream": name, "record": data}
        elif kind == "STATE":
            state = message.get("state")
            if not isinstance(state, dict):
                msg = f"input line {number}: a STATE message without a state object"
                raise AirbyteAdapterError(msg)
            key = _state_key(state)
            self.states.pop(key, None)
            self.states[key] = state
            # As JSON text: the SDK reads numbers in a STATE as Decimal and cannot write them
            # back (sourceStats.recordCount is a float), and text keeps every value exact.
            states = json.dumps(list(self.states.values()), separators=(",", ":"))
            yield {"type": "STATE", "value": {STATE_KEY: states}}
        elif kind in IGNORED_TYPES:
            return
        else:
            msg = f"input line {number}: message type {kind!r} is not understood"
            raise AirbyteAdapterError(msg)

    def to_airbyte(self, line: str) -> Iterator[dict[str, Any]]:
        """The target's STATE line -> the Airbyte states in it not echoed yet."""
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            msg = f"target-moovago printed a line that is not JSON: {line[:120]!r}"
            raise AirbyteAdapterError(msg) from None
        # A Singer target prints each STATE as its bare value.
        value = message.get("value") if message.get("type") == "STATE" else message
        if not isinstance(value, dict) or not isinstance(value.get(STATE_KEY), str):
            msg = f"target-moovago printed a line that is no state of ours: {line[:120]!r}"
            raise AirbyteAdapterError(msg)
        for state in json.loads(value[STATE_KEY]):
            key, text = _state_key(state), json.dumps(state, sort_keys=True)
            if self.echoed.get(key) != text:
                self.echoed[key] = text
                yield {"type": "STATE", "state": state}


class _Echo(threading.Thread):
    def __init__(self, stream: IO[str], translator: WriteTranslator) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.translator = translator
        self.error: AirbyteAdapterError | None = None

    def run(self) -> None:
        try:
            for line in self.stream:
                if line.strip():
                    for message in self.translator.to_airbyte(line):
                        emit(message)
        except AirbyteAdapterError as exc:
            self.error = exc


def write(config_path: str, catalog_path: str, source: IO[str]) -> int:
    config = read_config(config_path)
    translator = WriteTranslator(read_json(catalog_path, "catalog"))
    proc = singer.start(singer.TARGET, ["--config", config_path], stdin=subprocess.PIPE)
    assert proc.stdin is not None  # Popen made the three pipes
    assert proc.stdout is not None
    assert proc.stderr is not None
    relay = singer.StderrRelay(proc.stderr, config)
    relay.start()
    echo = _Echo(proc.stdout, translator)
    echo.start()
    failure: AirbyteAdapterError | None = None
    try:
        for number, line in enumerate(source, start=1):
            if not line.strip():
                continue
            for message in translator.to_singer(line, number):
                proc.stdin.write(json.dumps(message, separators=(",", ":")) + "\n")
    except AirbyteAdapterError as exc:
        failure = exc
        proc.kill()
    except BrokenPipeError:
        pass  # the target stopped early: its own error line says why
    finally:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
    code = proc.wait()
    echo.join()
    relay.join()
    if failure is not None:
        return fail(f"destination-moovago: {failure}")
    if echo.error is not None:
        return fail(f"destination-moovago: {echo.error}")
    if code != 0:
        return child_failed("destination-moovago", "target-moovago", code, relay.last_error)
    return 0


def _dry_run_settings(tmp: str) -> dict[str, Any]:
    return {
        "dry_run": True,
        "summary_path": str(Path(tmp) / "summary.json"),
        "rejects_path": str(Path(tmp) / "rejects.jsonl"),
    }


def check(config_path: str) -> dict[str, Any]:
    """The target's settings as the target checks them (an empty dry run), then the
    connection as the tap tests it (one `team` query with the same connection settings)."""
    from moovago_api.settings import connection_properties

    config = read_config(config_path)
    with tempfile.TemporaryDirectory(prefix="destination-moovago-") as tmp:
        dry = Path(tmp) / "dry-run.json"
        dry.write_text(json.dumps({**config, **_dry_run_settings(tmp)}), encoding="utf-8")
        code, _, error = singer.run_captured(singer.TARGET, ["--config", str(dry)], config)
        if code == 0:
            shared = set(connection_properties(default_rate=1))
            connection = Path(tmp) / "connection.json"
            subset = {k: v for k, v in config.items() if k in shared}
            connection.write_text(json.dumps(subset), encoding="utf-8")
            args = ["--config", str(connection), "--test"]
            code, _, error = singer.run_captured(singer.TAP, args, config)
    return connection_status(code, error)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser(
        "destination-moovago", {"spec": [], "check": ["config"], "write": ["config", "catalog"]}
    ).parse_args(argv)
    try:
        if args.command == "spec":
            emit(spec())
        elif args.command == "check":
            emit(check(args.config))
        else:
            return write(args.config, args.catalog, sys.stdin)
    except AirbyteAdapterError as exc:
        return fail(f"destination-moovago: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
