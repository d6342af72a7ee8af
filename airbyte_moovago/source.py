"""`source-moovago`: tap-moovago behind the Airbyte source protocol (spec, check, discover, read).

Singer -> Airbyte: the tap's catalog becomes an AirbyteCatalog (full refresh for every stream,
incremental on the tap's replication key, source-defined cursor and primary key); a configured
catalog becomes the tap's selection; per-stream Airbyte state becomes the tap's Singer
bookmarks and every Singer STATE the tap emits becomes one STREAM state per stream it moved.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from airbyte_moovago import singer
from airbyte_moovago.protocol import (
    AirbyteAdapterError,
    child_failed,
    connection_status,
    emit,
    fail,
    log,
    now_ms,
    parser,
    plugin_settings,
    read_config,
    read_json,
    spec_message,
)

FULL_REFRESH = "full_refresh"
INCREMENTAL = "incremental"


def spec() -> dict[str, Any]:
    from tap_moovago.tap import TapMoovago

    return spec_message(
        plugin_settings(TapMoovago),
        title="Moovago source (tap-moovago)",
        supportsIncremental=True,
    )


# -- discover -----------------------------------------------------------------------------------


def _root_metadata(entry: Mapping[str, Any]) -> dict[str, Any]:
    return next((m["metadata"] for m in entry.get("metadata", []) if m["breadcrumb"] == []), {})


def airbyte_stream(entry: Mapping[str, Any]) -> dict[str, Any]:
    """One Singer catalog entry as an AirbyteStream."""
    replication_key = entry.get("replication_key") or _root_metadata(entry).get("replication-key")
    keys = entry.get("key_properties") or []
    stream: dict[str, Any] = {
        "name": entry["stream"],
        "json_schema": entry["schema"],
        "supported_sync_modes": [FULL_REFRESH, INCREMENTAL] if replication_key else [FULL_REFRESH],
        "source_defined_primary_key": [[key] for key in keys],
        "is_resumable": bool(replication_key),
    }
    if replication_key:
        stream["source_defined_cursor"] = True
        stream["default_cursor_field"] = [replication_key]
    return stream


def airbyte_catalog(singer_catalog: Mapping[str, Any]) -> dict[str, Any]:
    streams = [airbyte_stream(entry) for entry in singer_catalog["streams"]]
    return {"type": "CATALOG", "catalog": {"streams": streams}}


# -- read: configured catalog and state -> Singer catalog and state -----------------------------


def singer_catalog_for(
    discovered: Mapping[str, Any], configured: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The tap's catalog selecting exactly the configured streams (and columns), each with the
    replication method of its sync mode; returns it with stream -> sync mode."""
    entries = {entry["stream"]: entry for entry in discovered["streams"]}
    modes: dict[str, str] = {}
    columns: dict[str, set[str] | None] = {}
    for item in configured.get("streams") or []:
        stream = item.get("stream") or {}
        name = str(stream.get("name"))
        if name not in entries:
            known = ", ".join(sorted(entries))
            msg = f"configured catalog: stream {name!r} is not a stream of this source ({known})"
            raise AirbyteAdapterError(msg)
        entry = entries[name]
        mode = item.get("sync_mode")
        supported = airbyte_stream(entry)["supported_sync_modes"]
        if mode == INCREMENTAL and INCREMENTAL not in supported:
            # As the CDK does (PyAirbyte asks incremental of every stream): read it whole.
            log("INFO", f"stream {name!r} has no cursor: read in full refresh")
            mode = FULL_REFRESH
        if mode not in supported:
            msg = (
                f"configured catalog: stream {name!r} has sync_mode {mode!r}; "
                f"it supports {supported}"
            )
            raise AirbyteAdapterError(msg)
        cursor = item.get("cursor_field") or []
        if mode == INCREMENTAL and cursor and cursor != [entry.get("replication_key")]:
            msg = (
                f"configured catalog: stream {name!r} has cursor_field {cursor}; its cursor is "
                f"source-defined: [{entry.get('replication_key')!r}]"
            )
            raise AirbyteAdapterError(msg)
        modes[name] = mode
        props = (stream.get("json_schema") or {}).get("properties")
        columns[name] = set(props) if isinstance(props, dict) and props else None
    if not modes:
        raise AirbyteAdapterError("configured catalog: no stream is configured")

    streams = []
    for name, entry in entries.items():
        entry = json.loads(json.dumps(entry))  # a copy
        selected = name in modes
        wanted = columns.get(name)
        for item in entry.get("metadata", []):
            meta = item["metadata"]
            if item["breadcrumb"] == []:
                meta["selected"] = selected
            elif (
                wanted is not None
                and len(item["breadcrumb"]) == 2  # a top-level column; nested ones follow it
                and meta.get("inclusion") != "automatic"
            ):
                meta["selected"] = item["breadcrumb"][1] in wanted
        if selected:
            incremental = modes[name] == INCREMENTAL
            entry["replication_method"] = "INCREMENTAL" if incremental else "FULL_TABLE"
        streams.append(entry)
    return {"streams": streams}, modes


def singer_state_for(airbyte_state: Any, modes: Mapping[str, str]) -> dict[str, Any]:
    """Per-stream Airbyte state -> the tap's bookmarks, for the incremental streams only (a
    full refresh starts from nothing)."""
    if airbyte_state in (None, [], {}):
        return {}
    if not isinstance(airbyte_state, list):
        msg = (
            "state: expected a list of per-stream state messages (type STREAM); "
            "legacy state objects are not understood"
        )
        raise AirbyteAdapterError(msg)
    bookmarks: dict[str, Any] = {}
    for item in airbyte_state:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind != "STREAM":
            msg = f"state: a message of type {kind!r}; this source keeps per-stream state (STREAM)"
            raise AirbyteAdapterError(msg)
        stream = item.get("stream") or {}
        name = (stream.get("stream_descriptor") or {}).get("name")
        value = stream.get("stream_state")
        if not isinstance(name, str) or not isinstance(value, (dict, type(None))):
            msg = f"state: stream state without a stream name or object: {item}"
            raise AirbyteAdapterError(msg)
        if modes.get(name) == INCREMENTAL and value:
            bookmarks[name] = value
    return {"bookmarks": bookmarks} if bookmarks else {}


# -- read: Singer output -> Airbyte messages ----------------------------------------------------


class ReadTranslator:
    """Maps the tap's Singer messages to Airbyte RECORD and per-stream STATE messages."""

    def __init__(self, modes: Mapping[str, str], initial: Mapping[str, Any]) -> None:
        self.modes = modes
        self.bookmarks: dict[str, Any] = dict(initial.get("bookmarks") or {})
        self.emitted: dict[str, Any] = {}
        self.counts: dict[str, int] = dict.fromkeys(modes, 0)

    def translate(self, line: str, number: int) -> Iterator[dict[str, Any]]:
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            msg = f"tap output line {number} is not JSON: {line[:120]!r}"
            raise AirbyteAdapterError(msg) from None
        kind = message.get("type")
        if kind == "RECORD":
            stream = message["stream"]
            if stream not in self.modes:
                msg = f"tap output line {number}: a record of unselected stream {stream!r}"
                raise AirbyteAdapterError(msg)
            self.counts[stream] += 1
            record = {"stream": stream, "data": message["record"], "emitted_at": now_ms()}
            yield {"type": "RECORD", "record": record}
        elif kind == "STATE":
            value = message.get("value") or {}
            for stream, bookmark in (value.get("bookmarks") or {}).items():
                if stream in self.modes:
                    self.bookmarks[stream] = bookmark
            yield from self.state_messages(self.modes)
        elif kind in ("SCHEMA", "ACTIVATE_VERSION"):
            return  # the configured catalog already holds the schema; versions are Singer-only
        else:
            msg = f"tap output line {number}: message type {kind!r} is not understood"
            raise AirbyteAdapterError(msg)

    def state_messages(
        self, streams: Iterable[str], *, final: bool = False
    ) -> Iterator[dict[str, Any]]:
        for stream in streams:
            bookmark = self.bookmarks.get(stream, {}) if self.modes[stream] == INCREMENTAL else {}
            if stream in self.emitted and self.emitted[stream] == bookmark:
                continue
            if not final and stream not in self.bookmarks:
                continue
            self.emitted[stream] = bookmark
            yield {
                "type": "STATE",
                "state": {
                    "type": "STREAM",
                    "stream": {"stream_descriptor": {"name": stream}, "stream_state": bookmark},
                    "sourceStats": {"recordCount": float(self.counts[stream])},
                },
            }
            self.counts[stream] = 0


def read(config_path: str, catalog_path: str, state_path: str | None) -> int:
    config = read_config(config_path)
    configured = read_json(catalog_path, "catalog")
    airbyte_state = read_json(state_path, "state") if state_path else None
    discovered = _discover(config_path, config)
    catalog, modes = singer_catalog_for(discovered, configured)
    state = singer_state_for(airbyte_state, modes)
    with tempfile.TemporaryDirectory(prefix="source-moovago-") as tmp:
        catalog_file = Path(tmp) / "catalog.json"
        catalog_file.write_text(json.dumps(catalog), encoding="utf-8")
        args = ["--config", config_path, "--catalog", str(catalog_file)]
        if state:
            state_file = Path(tmp) / "state.json"
            state_file.write_text(json.dumps(state), encoding="utf-8")
            args += ["--state", str(state_file)]
        proc = singer.start(singer.TAP, args)
        assert proc.stdout is not None  # Popen made both pipes
        assert proc.stderr is not None
        relay = singer.StderrRelay(proc.stderr, config)
        relay.start()
        translator = ReadTranslator(modes, state)
        try:
            for number, line in enumerate(proc.stdout, start=1):
                if line.strip():
                    for message in translator.translate(line, number):
                        emit(message)
        except AirbyteAdapterError:
            proc.kill()
            raise
        finally:
            code = proc.wait()
            relay.join()
    if code != 0:
        return child_failed("source-moovago", "tap-moovago", code, relay.last_error)
    for message in translator.state_messages(modes, final=True):
        emit(message)
    return 0


def _discover(config_path: str, config: Mapping[str, Any]) -> dict[str, Any]:
    args = ["--config", config_path, "--discover"]
    code, out, error = singer.run_captured(singer.TAP, args, config)
    if code != 0:
        raise AirbyteAdapterError(f"discovery failed: {error or f'tap-moovago exited {code}'}")
    return json.loads(out)


def check(config_path: str) -> dict[str, Any]:
    config = read_config(config_path)
    code, _, error = singer.run_captured(singer.TAP, ["--config", config_path, "--test"], config)
    return connection_status(code, error)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser(
        "source-moovago",
        {
            "spec": [],
            "check": ["config"],
            "discover": ["config"],
            "read": ["config", "catalog", "state"],
        },
    ).parse_args(argv)
    try:
        if args.command == "spec":
            emit(spec())
        elif args.command == "check":
            emit(check(args.config))
        elif args.command == "discover":
            emit(airbyte_catalog(_discover(args.config, read_config(args.config))))
        else:
            return read(args.config, args.catalog, args.state)
    except AirbyteAdapterError as exc:
        return fail(f"source-moovago: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
