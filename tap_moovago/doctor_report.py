"""A `moovago-schema doctor --format json` report read back by the tap (setting doctor_report;
what it changes: docs/schema-tool.md)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import typing as t
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator

from moovago_api.errors import ConfigError
from moovago_api.wire import parse_datetime

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from moovago_api.schema import Entity

#: A clock offset the tap widens incremental starts by, beyond this many seconds.
CLOCK_TOLERANCE_SECONDS = 60.0

_FIGURES = {"stable_order": "boolean", "skip_honoured": "boolean", "clock_offset_seconds": "number"}
_REPORT = Draft202012Validator(
    {
        "type": "object",
        "required": ["settings", "measured"],
        "properties": {
            "settings": {
                "type": "object",
                "required": ["api_url"],
                "properties": {"api_url": {"type": "string"}},
            },
            "measured": {
                "type": "object",
                "properties": {
                    "page_cap": {"type": ["integer", "null"], "minimum": 1},
                    **{name: {"type": [kind, "null"]} for name, kind in _FIGURES.items()},
                },
            },
        },
    }
)


@dataclass(frozen=True)
class Measured:
    """The figures of one doctor report the tap acts on (None: not measured)."""

    path: str
    when: str
    page_cap: int | None = None
    stable_order: bool | None = None
    skip_honoured: bool | None = None
    clock_offset_seconds: float | None = None

    def refuse_unsafe(self, page_size: int, entities: Iterable[Entity]) -> None:
        """Refuse settings this report shows unsafe at this api_url (one line each)."""
        seen = f"the doctor measured on {self.when} ({self.path})"
        if self.page_cap is not None and page_size > self.page_cap:
            msg = f"Setting page_size {page_size} is above the page cap of {self.page_cap} rows"
            raise ConfigError(f"{msg} {seen}: set page_size to {self.page_cap} or less")
        flags = {"the list order is not stable": self.stable_order}
        flags["skip is not honoured"] = self.skip_honoured
        broken = " and ".join(text for text, flag in flags.items() if flag is False)
        for entity in entities:
            paging = entity.paging
            unsorted = not (paging.sort_arg and paging.sort_value is not None)
            if broken and paging.kind == "offset" and unsorted:
                msg = (
                    f"Stream '{entity.stream_name}' pages Query.{entity.root_field} by "
                    f"{paging.offset_arg}/{paging.size_arg} with no sort argument, and {seen}: "
                    f"{broken}; offset paging would skip or repeat rows: declare the list's "
                    "sort argument in the schema file (schema_path) or ask Moovago for a "
                    "stable order"
                )
                raise ConfigError(msg)


def _endpoint(url: str) -> str:
    parts = urlsplit(str(url).strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def load_doctor_report(
    path: str | Path, *, api_url: str, logger: logging.Logger | None = None
) -> Measured | None:
    """The report at `path` for `api_url`; None (with a warning) when measured elsewhere."""
    where = f"Setting doctor_report: {path}"
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{where} cannot be read ({err.strerror or err})") from None
    except ValueError:
        msg = f"{where} is not JSON; write it with `moovago-schema doctor --format json`"
        raise ConfigError(msg) from None
    for error in _REPORT.iter_errors(payload):
        field = ".".join(map(str, error.absolute_path)) or "the document"
        raise ConfigError(f"{where} is not a doctor report: {field}: {error.message}")
    measured, report_url = payload["measured"], payload["settings"]["api_url"]
    try:
        at = parse_datetime(measured.get("at"))
    except ValueError:
        raise ConfigError(f"{where}: measured.at is not an ISO-8601 instant") from None
    if _endpoint(report_url) != _endpoint(api_url):
        (logger or logging.getLogger(__name__)).warning(
            "%s was measured at %s, not at api_url %s: ignored; run `moovago-schema doctor` "
            "against this api_url",
            where,
            _endpoint(report_url),
            _endpoint(api_url),
        )
        return None
    figures = {name: measured.get(name) for name in ("page_cap", *_FIGURES)}
    return Measured(str(path), at.strftime("%Y-%m-%d %H:%M UTC"), **figures)


def widened_start(measured: Measured | None, start: dt.datetime | None) -> dt.datetime | None:
    """An incremental start moved back by the measured clock offset, when it exceeds 60 s."""
    if start is None or measured is None or measured.clock_offset_seconds is None:
        return start
    offset = abs(measured.clock_offset_seconds)
    return start if offset <= CLOCK_TOLERANCE_SECONDS else start - dt.timedelta(seconds=offset)
