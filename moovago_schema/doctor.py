"""`moovago-schema doctor`: what the connectors assume about the server, held against what it does.

Read-only and within the configured rate: `moovago_schema.probe` asks, `moovago_schema.verdicts`
judges each assumption as one row (what the connector assumes, what the server did, the verdict,
what to change). Only `does not hold` makes the exit code 1, and `unproven` too when `strict`.
The JSON report holds the same rows and a `measured` block for tools (no key, no record value).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from moovago_api.errors import ConfigError, SchemaFileError
from moovago_api.schema import load_schema
from moovago_api.settings import client_from_config
from moovago_api.wire import format_datetime
from moovago_schema.probe import probe
from moovago_schema.verdicts import FAILS, UNPROVEN, Row, judge, measured

__all__ = ["DoctorReport", "load_config", "run_doctor"]

ENV = "ENV"
ENV_PREFIX = "TAP_MOOVAGO_"


@dataclass
class DoctorReport:
    schema_path: str
    settings: dict[str, Any]
    rows: list[Row]
    requests: dict[str, int]
    measured: dict[str, Any] = field(default_factory=dict)
    strict: bool = False  # `unproven` fails the exit code too

    @property
    def exit_code(self) -> int:
        bad = {FAILS, UNPROVEN} if self.strict else {FAILS}
        return 0 if self.rows and not any(row.verdict in bad for row in self.rows) else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema_path,
            "settings": self.settings,
            "exit_code": self.exit_code,
            "rows": [row.to_dict() for row in self.rows],
            "requests": self.requests,
            "measured": self.measured,
        }


# -- configuration ---------------------------------------------------------------------------


def tap_defaults() -> dict[str, Any]:
    """The tap's own defaults (its declared settings): the doctor assumes what the tap would."""
    from tap_moovago.tap import TapMoovago

    properties = TapMoovago.config_jsonschema["properties"]
    return {
        name: prop["default"]
        for name, prop in properties.items()
        if isinstance(prop, Mapping) and prop.get("default") is not None
    }


def load_config(source: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The tap's config from a JSON file, or from TAP_MOOVAGO_* variables when `source` is ENV."""
    from tap_moovago.tap import TapMoovago

    if source == ENV:
        environ = os.environ if environ is None else environ
        names = TapMoovago.config_jsonschema["properties"]
        config: dict[str, Any] = {
            name: _env_value(environ[f"{ENV_PREFIX}{name.upper()}"], names[name])
            for name in names
            if f"{ENV_PREFIX}{name.upper()}" in environ
        }
        if not config:
            raise ConfigError(f"--config=ENV: no {ENV_PREFIX}* variable is set.")
        return config
    try:
        text = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise ConfigError(f"Cannot read config {source}: {reason}") from err
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"Invalid config {source}:{err.lineno}: {err.msg}") from err
    if not isinstance(config, dict):
        raise ConfigError(f"Invalid config {source}: not a JSON object")
    return config


def _env_value(text: str, prop: Mapping[str, Any]) -> Any:
    """A TAP_MOOVAGO_* text as the tap reads it: numbers and objects by their declared type.

    Text that does not parse stays text, so the setting's own check names it in one line.
    """
    kinds = prop.get("type") or [
        kind for option in prop.get("anyOf", []) for kind in [option.get("type")] if kind
    ]
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    try:
        if "integer" in kinds and text.strip().lstrip("-").isdigit():
            return int(text)
        if "number" in kinds:
            return float(text)
        if "object" in kinds or "array" in kinds:
            return json.loads(text)
    except ValueError:
        return text
    return text


def _page_size(value: Any) -> int:
    try:
        number = int(str(value))
    except ValueError:
        number = 0
    if number < 1:
        raise ConfigError(f"page_size must be a whole number of 1 or more, got {value!r}.")
    return number


def _flag(value: Any) -> bool:
    """A boolean setting, which arrives as text from TAP_MOOVAGO_* variables."""
    if isinstance(value, bool) or value is None:
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", ""):
        return False
    raise ConfigError(f"include_deprecated_fields must be true or false, got {value!r}.")


# -- the run ---------------------------------------------------------------------------------


def run_doctor(config: Mapping[str, Any]) -> DoctorReport:
    """Probe the API these settings point at and judge each assumption."""
    defaults = tap_defaults()
    settings = {**defaults, **config}
    settings["page_size"] = _page_size(settings.get("page_size"))
    settings["include_deprecated_fields"] = _flag(settings.get("include_deprecated_fields"))
    try:
        schema = load_schema(settings.get("schema_path") or None)
    except SchemaFileError as err:
        raise ConfigError(f"Setting schema_path: {err}") from err
    schema = schema.with_plans(settings.get("stream_plans"))  # the plans the tap reads by
    rate_default = float(defaults.get("max_requests_per_second", 4))
    client = client_from_config(settings, default_rate=rate_default)
    try:
        seen = probe(client, schema, settings)
    finally:
        client.close()
    rate = client.max_requests_per_second
    shown = {
        "api_url": _endpoint(client.api_url),
        "page_size": settings["page_size"],
        "max_requests_per_second": rate,
        "request_timeout": client.request_timeout,
        "schema_path": str(schema.path),
    }
    rows = judge(seen, rate=rate, request_timeout=client.request_timeout)
    requests = {"team": seen.team_requests, **{s.stream: s.requests for s in seen.streams}}
    requests["total"] = len(seen.answers) or sum(requests.values())
    figures = {"at": format_datetime(datetime.now(timezone.utc)), **measured(seen, rows)}
    return DoctorReport(str(schema.path), shown, rows, requests, figures)


def _endpoint(url: str) -> str:
    """scheme://host/path: where the report was measured, without any query string."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
