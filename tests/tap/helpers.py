"""Running tap-moovago in process or as a CLI, and reading what it wrote."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moovago_api.schema import load_schema
from tap_moovago.tap import TapMoovago

ROOT = Path(__file__).resolve().parents[2]
TAP_CLI = [str(Path(sys.executable).with_name("tap-moovago"))]
ENTITY_STREAMS = ["team", "company", "contact", "mandator", "turnover"]


def tap_config(handle: Any, **overrides: Any) -> dict[str, Any]:
    """Config pointing at a sandbox, with the tap's defaults for everything else."""
    config: dict[str, Any] = {"api_url": handle.url, "api_key": handle.api_key}
    config.update(overrides)
    return {key: value for key, value in config.items() if value is not None}


@dataclass
class SyncOutput:
    """Singer messages of one run, sorted by kind."""

    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    states: list[dict[str, Any]] = field(default_factory=list)

    @property
    def final_state(self) -> dict[str, Any]:
        return self.states[-1] if self.states else {}

    def ids(self, stream: str) -> list[str]:
        return [row["id"] for row in self.records.get(stream, [])]


def parse_messages(text: str) -> SyncOutput:
    out = SyncOutput()
    for line in text.splitlines():
        if not line.strip():
            continue
        message = json.loads(line)
        kind = message["type"]
        if kind == "RECORD":
            out.records.setdefault(message["stream"], []).append(message["record"])
        elif kind == "SCHEMA":
            out.schemas[message["stream"]] = message["schema"]
        elif kind == "STATE":
            out.states.append(message["value"])
    return out


def run_sync(
    config: dict[str, Any],
    *,
    catalog: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
) -> SyncOutput:
    """Run a whole sync in this process and return what it wrote to stdout."""
    tap = TapMoovago(config=config, catalog=catalog, state=state)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        tap.sync_all()
    return parse_messages(buffer.getvalue())


def discover(config: dict[str, Any]) -> dict[str, Any]:
    """The catalog discovery writes, as a dict."""
    return copy.deepcopy(TapMoovago(config=config, validate_config=False).catalog_dict)


def stream_entry(catalog: dict[str, Any], stream: str) -> dict[str, Any]:
    return next(entry for entry in catalog["streams"] if entry["tap_stream_id"] == stream)


def set_selected(
    catalog: dict[str, Any], stream: str, breadcrumb: tuple[str, ...], *, selected: bool
) -> None:
    """Select or deselect a stream (empty breadcrumb) or a property in a catalog dict."""
    for item in stream_entry(catalog, stream)["metadata"]:
        if tuple(item["breadcrumb"]) == breadcrumb:
            item["metadata"]["selected"] = selected
            return
    raise KeyError(f"No metadata for {stream} {breadcrumb}")


def only_streams(catalog: dict[str, Any], streams: set[str]) -> dict[str, Any]:
    """The catalog with only `streams` selected (team stays as the parent, deselected)."""
    for entry in catalog["streams"]:
        set_selected(
            catalog, entry["tap_stream_id"], (), selected=entry["tap_stream_id"] in streams
        )
    return catalog


def run_cli(
    args: list[str], config: dict[str, Any] | None, tmp_path: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the tap's CLI in a subprocess; `config` is written to a file first."""
    command = [*TAP_CLI, *args]
    if config is not None:
        config_file = tmp_path / "config.json"
        config_file.write_text(json.dumps(config))
        command += ["--config", str(config_file)]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False
    )


def error_lines(stderr: str) -> list[str]:
    """Log lines at ERROR level, without the SDK's closing summary line."""
    return [
        line
        for line in stderr.splitlines()
        if "ERROR" in line and "Config validation failed" not in line
    ]


def export_rows(export: dict[str, list[dict[str, Any]]], stream: str, team_id: str) -> list[dict]:
    """Rows of one stream and team in the sandbox's /_sandbox/export."""
    entity = load_schema().entity(stream).name
    return [row for row in export[entity] if row.get("teamId") == team_id]
