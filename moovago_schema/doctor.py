"""`moovago-schema doctor`: what the connectors assume about the server, held against what it does.

Read-only and within the configured rate (every request through `moovago_api.client`): see
`moovago_schema.probe` for what is asked. Each assumption becomes one row: what the connector
assumes, what the server did, the verdict, and what to change (a setting or the schema file).
A verdict is `holds`, `does not hold`, or `unproven` (the answers could not show it either way,
e.g. a team too small to fill a page; the row says what would prove it); only `does not hold`
makes the exit code 1, and `unproven` too when `strict`. The JSON report holds the
same rows and a `measured` block for tools (no key, no record value anywhere).
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from moovago_api.errors import ConfigError, SchemaFileError
from moovago_api.schema import MoovagoSchema, load_schema
from moovago_api.settings import client_from_config
from moovago_api.wire import format_datetime
from moovago_schema.probe import Probe, StreamProbe, probe

__all__ = ["DoctorReport", "Row", "load_config", "run_doctor"]

HOLDS, FAILS, UNPROVEN = "holds", "does not hold", "unproven"
ENV = "ENV"
ENV_PREFIX = "TAP_MOOVAGO_"
#: A page must answer within this share of request_timeout: room for a slower day and retries.
LATENCY_SHARE = 1 / 3
#: The server's clock may differ from ours by this much before bookmarks and windows drift.
CLOCK_TOLERANCE_SECONDS = 60.0
#: When no paged stream answered (offset, page number or cursor), paging cannot be measured.
NO_OFFSET_STREAM = "no paged stream answered (offset, page number or cursor paging)"
NOT_MEASURED = "see the stream rows: each paged list that answers is measured"
_ANSWERS_PROVE = "run the doctor again once the API answers (see the auth and schema rows)"
_DIFF_HINT = "`moovago-schema diff OLD NEW` shows what changes for the streams"


@dataclass(frozen=True)
class Row:
    key: str  # 'auth', 'schema:company', 'page_cap', 'limit', 'skip', 'order', 'latency', ...
    assumption: str
    assumes: str
    observed: str
    verdict: str
    change: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "key": self.key,
            "assumption": self.assumption,
            "connector_assumes": self.assumes,
            "server_did": self.observed,
            "verdict": self.verdict,
            "what_to_change": self.change,
        }


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
    rows = judge(seen, schema, rate=rate, request_timeout=client.request_timeout)
    requests = {"team": seen.team_requests, **{s.stream: s.requests for s in seen.streams}}
    requests["total"] = len(seen.answers) or sum(requests.values())
    measured = {"at": format_datetime(datetime.now(timezone.utc)), **_measured(seen, rows)}
    return DoctorReport(str(schema.path), shown, rows, requests, measured)


def _endpoint(url: str) -> str:
    """scheme://host/path: where the report was measured, without any query string."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def judge(seen: Probe, schema: MoovagoSchema, *, rate: float, request_timeout: float) -> list[Row]:
    if seen.auth_error:
        return [
            Row(
                "auth",
                "API key and URL",
                "api_key opens the team query at api_url",
                seen.auth_error,
                FAILS,
                "fix api_key (and api_key_header) as given in the Moovago welcome e-mail",
            )
        ]
    rows = [_auth_row(seen), *_schema_rows(seen, schema)]
    paged = [s for s in seen.streams if s.paged and not s.error and s.big is not None]
    if not paged:
        rows += [
            Row(key, name, assumes, NO_OFFSET_STREAM, UNPROVEN, NOT_MEASURED)
            for key, name, assumes in _PAGING_ROWS
        ]
        rows += [
            _latency_row(seen, request_timeout),
            _rate_row(seen, rate),
            _clock_row(seen),
        ]
        return rows
    rows += [
        _cap_row(paged, seen.page_size),
        _limit_row(paged),
        _skip_row(paged),
        _order_row(paged),
        _latency_row(seen, request_timeout),
        _rate_row(seen, rate),
        _clock_row(seen),
    ]
    return rows


_PAGING_ROWS = [
    ("page_cap", "page cap", "a page of page_size rows comes back whole"),
    ("limit", "limit honoured", "a page holds the rows asked"),
    ("skip", "skip honoured", "a page asked from skip=N starts after the first N rows"),
    ("order", "stable order", "the same page read twice lists the same rows in the same order"),
]


def _auth_row(seen: Probe) -> Row:
    if seen.team_query_error:
        return Row(
            "auth",
            "API key, URL and team",
            "the team query answers the API key's team",
            "the key was accepted; the team query was answered with errors (see its row)",
            FAILS,
            "see the row of stream team",
        )
    if seen.team_error:
        return Row(
            "auth",
            "API key, URL and team",
            "the team query answers the API key's team",
            seen.team_error,
            FAILS,
            "check api_url and api_key; set team_id if the file has no team query",
        )
    return Row(
        "auth",
        "API key, URL and team",
        "the team query answers the API key's team",
        "answered with one team",
        HOLDS,
    )


def _schema_rows(seen: Probe, schema: MoovagoSchema) -> list[Row]:
    name = schema.path.name
    change = f"set schema_path to the schema file Moovago serves now; {_DIFF_HINT}"
    rows = []
    if not seen.team_error:
        team = _schema_row("team", seen.team_problems, seen.team_query_error, name, change)
        rows.append(team)
    for stream in seen.streams:
        if stream.unsupported:
            rows.append(
                Row(
                    f"schema:{stream.stream}",
                    f"stream {stream.stream} answers as {name} declares",
                    "the doctor can read the list",
                    stream.unsupported,
                    FAILS,
                    "the connectors cannot read this list either: fix the schema file or"
                    " report it to the connector maintainers",
                )
            )
            continue
        rows.append(_schema_row(stream.stream, stream.problems, stream.error, name, change))
    return rows


def _schema_row(
    stream: str, problems: Mapping[str, int], error: str, file_name: str, change: str
) -> Row:
    assumption = f"stream {stream} answers as {file_name} declares"
    assumes = "every selected field is served, typed as declared"
    if error:
        return Row(f"schema:{stream}", assumption, assumes, error, FAILS, change)
    if problems:
        listed = "; ".join(f"{text} ({n}x)" for text, n in sorted(problems.items())[:5])
        more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        return Row(f"schema:{stream}", assumption, assumes, listed + more, FAILS, change)
    return Row(f"schema:{stream}", assumption, assumes, "every answer as declared", HOLDS)


def _cap_row(streams: Sequence[StreamProbe], page_size: int) -> Row:
    assumption = "page cap"
    assumes = f"a page of page_size ({page_size}) rows comes back whole"
    if not streams:
        return Row("page_cap", assumption, assumes, NO_OFFSET_STREAM, UNPROVEN, NOT_MEASURED)
    capped: list[tuple[int, str, int, str]] = []  # rows, stream, asked, refusal note
    whole: list[tuple[int, str, str]] = []  # rows, stream, note
    ends: list[tuple[int, str]] = []  # every row of the stream fitted one page
    for s in streams:
        if s.big is None:
            continue
        refused = f" (it refused {2 * page_size}: {s.big_refused})" if s.big_refused else ""
        if s.big.rows < s.big_asked and s.after_big_rows:
            capped.append((s.big.rows, s.stream, s.big_asked, refused))
            whole.append((s.big.rows, s.stream, f", capped at {s.big.rows}{refused}"))
        elif s.big.rows >= s.big_asked:
            whole.append((s.big.rows, s.stream, refused))
        else:
            ends.append((s.big.rows, s.stream))
    low = [c for c in capped if c[0] < page_size]
    if low:
        cap, stream, asked, refused = min(low)
        return Row(
            "page_cap",
            assumption,
            assumes,
            f"{stream}: asked {asked} rows, got {cap}, and the next page had more: a cap of"
            f" {cap}{refused}",
            FAILS,
            f"set page_size to {cap} or less (now {page_size})",
        )
    if whole:
        rows, stream, note = max(whole)
        return Row(
            "page_cap",
            assumption,
            assumes,
            f"{stream}: a page of {rows} rows came back whole{note}",
            HOLDS,
        )
    if not ends:
        return Row("page_cap", assumption, assumes, NO_OFFSET_STREAM, UNPROVEN, NOT_MEASURED)
    most, stream = max(ends)
    if most >= page_size:
        return Row(
            "page_cap",
            assumption,
            assumes,
            f"{stream}: all {most} rows came back in one page",
            HOLDS,
        )
    return Row(
        "page_cap",
        assumption,
        assumes,
        f"every stream holds fewer rows than page_size (most: {most} in {stream})",
        UNPROVEN,
        f"run the doctor with page_size below {max(most, 2)} to measure the cap (the tap reads"
        " these streams in one page today)",
    )


def _limit_row(streams: Sequence[StreamProbe]) -> Row:
    assumption = "limit honoured"
    assumes = "a page holds at most the rows asked, and all of them while more exist"
    ignored: list[tuple[str, int, int]] = []  # stream, asked, got
    short: list[tuple[str, int, int]] = []
    honoured: list[StreamProbe] = []
    for s in streams:
        if s.small is None or s.big is None:
            continue
        if s.small.rows > s.small_asked:
            ignored.append((s.stream, s.small_asked, s.small.rows))
        elif s.small.rows == s.small_asked:
            honoured.append(s)
        elif s.big.rows > s.small.rows:
            short.append((s.stream, s.small_asked, s.small.rows))
    if ignored:
        stream, asked, got = ignored[0]
        return Row(
            "limit",
            assumption,
            assumes,
            f"{stream}: asked {asked} rows, got {got}",
            FAILS,
            f"the server ignores the page-size argument: set page_size to {got}, the page it"
            " answers",
        )
    if short:
        stream, asked, got = short[0]
        return Row(
            "limit",
            assumption,
            assumes,
            f"{stream}: asked {asked} rows, got {got} though more exist",
            FAILS,
            f"set page_size to {got} or less",
        )
    if honoured:
        names = ", ".join(s.stream for s in honoured)
        return Row("limit", assumption, assumes, f"honoured ({names})", HOLDS)
    return Row(
        "limit",
        assumption,
        assumes,
        "no stream has enough rows to tell",
        UNPROVEN,
        "run the doctor again when a stream holds a few rows",
    )


def _order_changes(s: StreamProbe) -> str:
    """Why this stream's order is not stable, '' when it is (or cannot be told)."""
    if s.small is None or s.small_again is None:
        return ""
    if s.small.rows >= 2 and s.small.ids != s.small_again.ids:
        return f"{s.stream}: the same page of {s.small.rows} rows came back in another order"
    if s.big is not None and s.small.rows >= 2 and s.big.ids[: s.small.rows] != s.small.ids:
        return f"{s.stream}: a larger page did not start with the rows of the small one"
    return ""


def _order_row(streams: Sequence[StreamProbe]) -> Row:
    assumption = "stable order"
    assumes = "the same page read twice lists the same rows in the same order"
    changed = [text for s in streams if (text := _order_changes(s))]
    if changed:
        return Row(
            "order",
            assumption,
            assumes,
            "; ".join(changed),
            FAILS,
            "offset paging skips or repeats rows when the order moves: if the list takes a sort"
            " argument, declare it in the schema file; otherwise report it to Moovago",
        )
    compared = [s.stream for s in streams if s.small is not None and s.small.rows >= 2]
    if compared:
        return Row("order", assumption, assumes, f"stable ({', '.join(compared)})", HOLDS)
    return Row(
        "order",
        assumption,
        assumes,
        "no stream has 2 rows to compare",
        UNPROVEN,
        "run the doctor again when a stream holds 2 rows or more",
    )


def _skip_row(streams: Sequence[StreamProbe]) -> Row:
    assumption = "skip honoured"
    assumes = "a page asked from skip=N starts after the first N rows"
    broken: list[tuple[str, int, int]] = []  # stream, skip, rows repeated
    proven: list[str] = []
    blurred: list[str] = []
    for s in streams:
        if s.big is None:
            continue
        if _order_changes(s):
            blurred.append(s.stream)
            continue
        if s.after_big is not None and s.after_big.rows:
            again = len(set(s.after_big.ids) & set(s.big.ids))
            if again:
                broken.append((s.stream, s.big.rows, again))
            else:
                proven.append(s.stream)
        elif s.offset_page is not None:
            start = s.offset_page.start or s.small_asked
            expected = s.big.ids[start : start + s.small_asked]
            if s.offset_page.ids != expected:
                again = len(set(s.offset_page.ids) & set(s.big.ids[:start]))
                broken.append((s.stream, start, again))
            elif s.offset_page.rows:
                proven.append(s.stream)
    if broken:
        stream, start, repeated = broken[0]
        return Row(
            "skip",
            assumption,
            assumes,
            f"{stream}: the page from skip={start} was not the rows after the first {start}"
            f" ({repeated} repeated)",
            FAILS,
            "the server does not honour the skip argument: no setting fixes it; report it to"
            " Moovago (the tap stops with an error rather than repeat rows)",
        )
    if proven:
        return Row(
            "skip",
            assumption,
            assumes,
            f"honoured ({', '.join(proven)})",
            HOLDS,
        )
    why = "the order is not stable" if blurred else "no stream has enough rows to tell"
    return Row("skip", assumption, assumes, why, UNPROVEN, "see the stable order row")


def _latency_row(seen: Probe, request_timeout: float) -> Row:
    limit = request_timeout * LATENCY_SHARE
    assumption = "page latency"
    assumes = f"a page answers within {limit:.1f} s (a third of request_timeout)"
    pages = [
        (page.seconds, page.rows, s.stream)
        for s in seen.streams
        for page in (s.small, s.small_again, s.big, s.after_big, s.offset_page)
        if page is not None and page.seconds is not None
    ]
    if not pages:
        return Row("latency", assumption, assumes, "no page answered", UNPROVEN, _ANSWERS_PROVE)
    seconds, rows, stream = max(pages)
    median = statistics.median(p[0] for p in pages)
    observed = f"slowest {seconds:.2f} s ({rows} rows of {stream}); median {median:.2f} s"
    if seconds > limit:
        return Row(
            "latency",
            assumption,
            assumes,
            observed,
            FAILS,
            f"raise request_timeout to at least {math.ceil(seconds / LATENCY_SHARE)} s, or"
            " lower page_size",
        )
    return Row("latency", assumption, assumes, observed, HOLDS)


def _rate_row(seen: Probe, rate: float) -> Row:
    assumption = "rate limit"
    assumes = f"{rate:g} requests/s draw no 429 (Moovago's limit is 5/s)"
    limited = [a for a in seen.answers if a.status == 429]
    if not seen.answers:
        observed = "no answer could be observed"
        return Row("rate_limit", assumption, assumes, observed, UNPROVEN, _ANSWERS_PROVE)
    if not limited:
        return Row(
            "rate_limit",
            assumption,
            assumes,
            f"no 429 in {len(seen.answers)} answers (never provoked)",
            HOLDS,
        )
    retry_after = sorted({a.retry_after for a in limited if a.retry_after})
    shapes = sorted({a.shape for a in limited if a.shape})
    return Row(
        "rate_limit",
        assumption,
        assumes,
        f"{len(limited)} answers 429; Retry-After: {', '.join(retry_after) or 'none'};"
        f" body: {'; '.join(shapes) or 'empty'}",
        FAILS,
        f"lower max_requests_per_second below {rate:g} (another job may share the key)",
    )


def _clock_offsets(seen: Probe) -> list[float]:
    offsets = [
        (a.date - a.received).total_seconds() + 0.5  # Date is whole seconds, rounded down
        for a in seen.answers
        if a.date is not None
    ]
    if not offsets and not seen.answers and seen.server_offset is not None:
        offsets = [seen.server_offset]
    return offsets


def _clock_row(seen: Probe) -> Row:
    assumption = "server clock"
    assumes = f"answers carry a Date header within {CLOCK_TOLERANCE_SECONDS:g} s of this clock"
    offsets = _clock_offsets(seen)
    if not offsets and not seen.answers:
        observed = "no answer could be observed"
        return Row("clock", assumption, assumes, observed, UNPROVEN, _ANSWERS_PROVE)
    if not offsets:
        return Row(
            "clock",
            assumption,
            assumes,
            f"no Date header in {len(seen.answers)} answers",
            FAILS,
            "the connectors then judge time by this machine's clock alone: keep it on NTP and"
            " set start_date with a margin",
        )
    offset = statistics.median(offsets)
    observed = f"offset {offset:+.1f} s (median of {len(offsets)} answers)"
    if abs(offset) > CLOCK_TOLERANCE_SECONDS:
        side = "ahead of" if offset > 0 else "behind"
        return Row(
            "clock",
            assumption,
            assumes,
            f"the server is {abs(offset):.0f} s {side} this machine",
            FAILS,
            "fix the clock that is wrong (NTP); until then set start_date with that margin",
        )
    return Row("clock", assumption, assumes, observed, HOLDS)


def _measured(seen: Probe, rows: Sequence[Row]) -> dict[str, Any]:
    """Figures a connector may use (e.g. refuse a page_size above a measured cap)."""
    verdicts = {row.key: row.verdict for row in rows}
    caps = [
        s.big.rows
        for s in seen.streams
        if s.big is not None and s.big.rows < s.big_asked and s.after_big_rows
    ]
    fixed = [
        s.small.rows for s in seen.streams if s.small is not None and s.small.rows > s.small_asked
    ]
    offsets = _clock_offsets(seen)
    seconds = [
        p.seconds
        for s in seen.streams
        for p in (s.small, s.small_again, s.big, s.after_big, s.offset_page)
        if p is not None and p.seconds is not None
    ]
    return {
        "page_cap": min(caps) if caps else None,
        "limit_honoured": _verdict_bool(verdicts.get("limit")),
        "fixed_page_size": min(fixed) if fixed else None,
        "stable_order": _verdict_bool(verdicts.get("order")),
        "skip_honoured": _verdict_bool(verdicts.get("skip")),
        "max_page_seconds": round(max(seconds), 3) if seconds else None,
        "clock_offset_seconds": round(statistics.median(offsets), 1) if offsets else None,
        "date_header": bool(offsets) if seen.answers else None,
        "rate_limited_answers": sum(a.status == 429 for a in seen.answers),
    }


def _verdict_bool(verdict: str | None) -> bool | None:
    return {HOLDS: True, FAILS: False}.get(verdict or "")
