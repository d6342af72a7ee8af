"""Running source-moovago and destination-moovago as Airbyte runs them, and checking every
message they print against the Airbyte protocol models (airbyte-protocol-models-pdv2)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airbyte_protocol.models import AirbyteMessage

SOURCE = Path(sys.executable).with_name("source-moovago")
DESTINATION = Path(sys.executable).with_name("destination-moovago")


@dataclass
class Output:
    code: int
    messages: list[dict[str, Any]]
    stderr: str

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    def records(self, stream: str | None = None) -> list[dict[str, Any]]:
        return [
            m["record"]["data"]
            for m in self.of_type("RECORD")
            if stream is None or m["record"]["stream"] == stream
        ]


def parse(stdout: str) -> list[dict[str, Any]]:
    """Every stdout line as a message, each validated by the protocol's own model."""
    messages = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        message = json.loads(line)
        AirbyteMessage.model_validate(message)  # raises on anything the protocol refuses
        messages.append(message)
    return messages


def run(
    executable: Path, args: Sequence[str], *, stdin: str | None = None, timeout: float = 300
) -> Output:
    proc = subprocess.run(
        [str(executable), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Output(proc.returncode, parse(proc.stdout), proc.stderr)


def write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def configured_catalog(
    catalog: Mapping[str, Any],
    streams: Sequence[str] | None = None,
    *,
    sync_mode: str = "incremental",
    destination_sync_mode: str = "append_dedup",
) -> dict[str, Any]:
    """The configured catalog Airbyte would send: the named streams (default: all), in
    `sync_mode` where the stream supports it, else full refresh."""
    chosen = []
    for stream in catalog["streams"]:
        if streams is not None and stream["name"] not in streams:
            continue
        stream = json.loads(json.dumps(stream))  # a copy the test may change
        mode = sync_mode if sync_mode in stream["supported_sync_modes"] else "full_refresh"
        chosen.append(
            {
                "stream": stream,
                "sync_mode": mode,
                "destination_sync_mode": destination_sync_mode,
                "cursor_field": stream.get("default_cursor_field", []),
                "primary_key": stream.get("source_defined_primary_key", []),
            }
        )
    return {"streams": chosen}


def stream_states(output: Output) -> dict[str, Any]:
    """The newest per-stream state of each stream in the output."""
    states: dict[str, Any] = {}
    for message in output.of_type("STATE"):
        state = message["state"]
        assert state["type"] == "STREAM", state
        states[state["stream"]["stream_descriptor"]["name"]] = state
    return states
