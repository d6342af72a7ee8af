"""What both Airbyte adapters share: the command line, message output, config files and errors.

The Airbyte protocol is JSON lines on stdout (SPEC, CONNECTION_STATUS, CATALOG, RECORD, STATE,
LOG, TRACE). Written with the standard library only: no CDK at run time.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from moovago_api.wire import redact, secret_forms

PROTOCOL_VERSION = "0.5.2"

_out_lock = threading.Lock()


class AirbyteAdapterError(Exception):
    """Input the adapter does not understand: one line naming it, then exit code 1."""


def emit(message: Mapping[str, Any], out: TextIO | None = None) -> None:
    """One Airbyte message as a JSON line on stdout (thread-safe, flushed at once)."""
    line = json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=str)
    stream = out or sys.stdout
    with _out_lock:
        stream.write(line + "\n")
        stream.flush()


def now_ms() -> int:
    return int(time.time() * 1000)


def log(level: str, text: str) -> None:
    emit({"type": "LOG", "log": {"level": level, "message": text}})


def fail(text: str) -> int:
    """The Airbyte way to end with an error: a TRACE of type ERROR, the same line on stderr."""
    emit(
        {
            "type": "TRACE",
            "trace": {
                "type": "ERROR",
                "emitted_at": now_ms(),
                "error": {"message": text, "failure_type": "config_error"},
            },
        }
    )
    sys.stderr.write(text + "\n")
    return 1


def plugin_settings(plugin: Any) -> dict[str, Any]:
    """The settings a Singer SDK plugin class declares itself, without the SDK's built-in ones
    (stream_maps, batch_config, ...: their JSON Schema refers to itself, which Airbyte clients
    cannot read). A copy without them whatever ran before: the SDK appends the built-ins to the
    class's own schema in place once a plugin is made."""
    builtins: dict[str, Any] = {"type": "object", "properties": {}}
    plugin.append_builtin_config(builtins)
    schema = copy.deepcopy(plugin.config_jsonschema)
    for name in builtins["properties"]:
        schema["properties"].pop(name, None)
    return dict(schema)


def spec_message(
    plugin_schema: Mapping[str, Any],
    *,
    title: str,
    **extra: Any,
) -> dict[str, Any]:
    """SPEC: the plugin's config JSON Schema, its secrets marked `airbyte_secret`."""
    properties = {}
    for name, prop in plugin_schema["properties"].items():
        prop = dict(prop)
        if prop.pop("secret", False):
            prop["airbyte_secret"] = True
        properties[name] = prop
    connection_spec = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": title,
        "type": "object",
        "required": list(plugin_schema.get("required", [])),
        "properties": properties,
        "additionalProperties": True,
    }
    spec = {
        "connectionSpecification": connection_spec,
        "protocol_version": PROTOCOL_VERSION,
        **extra,
    }
    return {"type": "SPEC", "spec": spec}


def read_json(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise AirbyteAdapterError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        msg = f"the {what} file {path} is not JSON (line {exc.lineno}: {exc.msg})"
        raise AirbyteAdapterError(msg) from None


def read_config(path: str) -> dict[str, Any]:
    config = read_json(path, "config")
    if not isinstance(config, dict):
        raise AirbyteAdapterError(f"the config file {path} must hold a JSON object")
    return config


def connection_status(code: int, error: str | None) -> dict[str, Any]:
    """CONNECTION_STATUS for a check that exited `code` (its last error line as the reason)."""
    if code == 0:
        return {"type": "CONNECTION_STATUS", "connectionStatus": {"status": "SUCCEEDED"}}
    status = {"status": "FAILED", "message": error or f"the check exited {code}"}
    return {"type": "CONNECTION_STATUS", "connectionStatus": status}


def child_failed(prog: str, child: str, code: int, error: str | None) -> int:
    return fail(f"{prog}: {child} failed (exit {code}): {error or 'see its log above'}")


def scrub(text: str, config: Mapping[str, Any]) -> str:
    """`text` with every form of the configured API key replaced."""
    return str(redact(text, secret_forms(str(config.get("api_key") or ""))))


def parser(prog: str, commands: Mapping[str, Sequence[str]]) -> argparse.ArgumentParser:
    """`prog COMMAND [--config F] [--catalog F] [--state F]` as the Airbyte protocol names them."""
    top = argparse.ArgumentParser(prog=prog, description=f"{prog}: Airbyte protocol adapter")
    sub = top.add_subparsers(dest="command", required=True)
    for command, options in commands.items():
        cmd = sub.add_parser(command)
        for option in options:
            required = option != "state"
            cmd.add_argument(f"--{option}", required=required, metavar="FILE")
    return top
