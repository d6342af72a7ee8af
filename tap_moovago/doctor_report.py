"""What `moovago-schema doctor --format json` measured, read back by the connectors.

The tap cannot import `moovago_schema`; this module reads the report file it writes and keeps
only the figures the connectors act on (the page cap, the order, skip, the clock offset). A
report that is not a doctor report is one clear ConfigError naming the file and the field; a
report measured at another api_url is ignored with a warning (it says nothing about this one).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from moovago_api.errors import ConfigError
from moovago_api.wire import parse_datetime

__all__ = ["CLOCK_TOLERANCE_SECONDS", "Measured", "load_doctor_report", "widened_start"]

#: A clock offset the connectors widen incremental starts by, beyond this many seconds.
CLOCK_TOLERANCE_SECONDS = 60.0

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Measured:
    """The figures of one doctor report the connectors may act on (None: not measured)."""

    path: str
    api_url: str
    at: dt.datetime
    page_cap: int | None
    stable_order: bool | None
    skip_honoured: bool | None
    clock_offset_seconds: float | None

    @property
    def when(self) -> str:
        return self.at.strftime("%Y-%m-%d %H:%M UTC")


def _endpoint(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def load_doctor_report(
    path: str | Path, *, api_url: str, logger: logging.Logger | None = None
) -> Measured | None:
    """The report at `path` for `api_url`; None (with a warning) when measured elsewhere."""
    logger = logger or _log
    where = f"Setting doctor_report: {path}"
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{where} cannot be read ({err.strerror or err})") from None
    except ValueError:
        msg = f"{where} is not JSON; write it with `moovago-schema doctor --format json`"
        raise ConfigError(msg) from None
    if not isinstance(payload, dict):
        raise ConfigError(f"{where} is not a doctor report (not a JSON object)")
    settings = payload.get("settings")
    measured = payload.get("measured")
    if not isinstance(settings, dict) or not isinstance(settings.get("api_url"), str):
        raise ConfigError(f"{where} is not a doctor report: no settings.api_url")
    if not isinstance(measured, dict):
        raise ConfigError(f"{where} is not a doctor report: no measured block")
    try:
        at = parse_datetime(measured.get("at"))
    except ValueError:
        raise ConfigError(f"{where}: measured.at is not an ISO-8601 instant") from None
    page_cap = measured.get("page_cap")
    if page_cap is not None and (
        not isinstance(page_cap, int) or isinstance(page_cap, bool) or page_cap < 1
    ):
        raise ConfigError(f"{where}: measured.page_cap is not a whole number of rows")
    flags: dict[str, bool | None] = {}
    for name in ("stable_order", "skip_honoured"):
        value = measured.get(name)
        if value is not None and not isinstance(value, bool):
            raise ConfigError(f"{where}: measured.{name} is not true, false or null")
        flags[name] = value
    offset = measured.get("clock_offset_seconds")
    if offset is not None and (not isinstance(offset, (int, float)) or isinstance(offset, bool)):
        raise ConfigError(f"{where}: measured.clock_offset_seconds is not a number")
    report_url = settings["api_url"]
    if _endpoint(report_url) != _endpoint(api_url):
        logger.warning(
            "%s was measured at %s, not at api_url %s: ignored; run `moovago-schema doctor` "
            "against this api_url",
            where,
            _endpoint(report_url),
            _endpoint(api_url),
        )
        return None
    return Measured(
        path=str(path),
        api_url=report_url,
        at=at,
        page_cap=page_cap,
        stable_order=flags["stable_order"],
        skip_honoured=flags["skip_honoured"],
        clock_offset_seconds=None if offset is None else float(offset),
    )


def widened_start(measured: Measured | None, start: dt.datetime | None) -> dt.datetime | None:
    """An incremental start moved back by the measured clock offset, when it exceeds 60 s."""
    if start is None or measured is None or measured.clock_offset_seconds is None:
        return start
    offset = abs(measured.clock_offset_seconds)
    if offset <= CLOCK_TOLERANCE_SECONDS:
        return start
    return start - dt.timedelta(seconds=offset)
