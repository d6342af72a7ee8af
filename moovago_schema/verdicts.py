"""The doctor's verdict rows: each assumption judged from what `moovago_schema.probe` saw.

A verdict is `holds`, `does not hold`, or `unproven` (the answers could not show it either way,
e.g. a team too small to fill a page; the row says what would prove it).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from moovago_schema.probe import Probe, StreamProbe

__all__ = ["FAILS", "HOLDS", "UNPROVEN", "Row", "judge", "measured"]

HOLDS, FAILS, UNPROVEN = "holds", "does not hold", "unproven"
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


def judge(seen: Probe, *, rate: float, request_timeout: float) -> list[Row]:
    if seen.auth_error:
        change = "fix api_key (and api_key_header) as given in the Moovago welcome e-mail"
        assumes = "api_key opens the team query at api_url"
        return [Row("auth", "API key and URL", assumes, seen.auth_error, FAILS, change)]
    paged = [s for s in seen.streams if s.paged and not s.error and s.big is not None]
    if paged:
        paging = [
            _cap_row(paged, seen.page_size),
            _limit_row(paged),
            _skip_row(paged),
            _order_row(paged),
        ]
    else:
        paging = [
            Row(key, name, assumes, NO_OFFSET_STREAM, UNPROVEN, NOT_MEASURED)
            for key, name, assumes in _PAGING_ROWS
        ]
    return [
        _auth_row(seen),
        *_schema_rows(seen),
        *paging,
        _latency_row(seen, request_timeout),
        _rate_row(seen, rate),
        _clock_row(seen),
    ]


_PAGING_ROWS = [
    ("page_cap", "page cap", "a page of page_size rows comes back whole"),
    ("limit", "limit honoured", "a page holds the rows asked"),
    ("skip", "skip honoured", "a page asked from skip=N starts after the first N rows"),
    ("order", "stable order", "the same page read twice lists the same rows in the same order"),
]


def _auth_row(seen: Probe) -> Row:
    row = partial(Row, "auth", "API key, URL and team", "the team query answers the API key's team")
    if seen.team_query_error:
        observed = "the key was accepted; the team query was answered with errors (see its row)"
        return row(observed, FAILS, "see the row of stream team")
    if seen.team_error:
        change = "check api_url and api_key; set team_id if the file has no team query"
        return row(seen.team_error, FAILS, change)
    return row("answered with one team", HOLDS)


def _schema_rows(seen: Probe) -> list[Row]:
    name = seen.schema.path.name
    change = f"set schema_path to the schema file Moovago serves now; {_DIFF_HINT}"
    rows = []
    if not seen.team_error:
        rows.append(_schema_row("team", seen.team_problems, seen.team_query_error, name, change))
    for stream in seen.streams:
        if stream.unsupported:
            assumption = f"stream {stream.stream} answers as {name} declares"
            fix = (
                "the connectors cannot read this list either: fix the schema file or"
                " report it to the connector maintainers"
            )
            key, assumes = f"schema:{stream.stream}", "the doctor can read the list"
            rows.append(Row(key, assumption, assumes, stream.unsupported, FAILS, fix))
            continue
        rows.append(_schema_row(stream.stream, stream.problems, stream.error, name, change))
    return rows


def _schema_row(
    stream: str, problems: Mapping[str, int], error: str, file_name: str, change: str
) -> Row:
    assumption = f"stream {stream} answers as {file_name} declares"
    row = partial(
        Row, f"schema:{stream}", assumption, "every selected field is served, typed as declared"
    )
    if error:
        return row(error, FAILS, change)
    if problems:
        listed = "; ".join(f"{text} ({n}x)" for text, n in sorted(problems.items())[:5])
        more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        return row(listed + more, FAILS, change)
    return row("every answer as declared", HOLDS)


def _capped(s: StreamProbe) -> bool:
    """The large page came back short and the page after it had more: a cap."""
    return s.big is not None and s.big.rows < s.big_asked and bool(s.after_big_rows)


def _cap_row(streams: Sequence[StreamProbe], page_size: int) -> Row:
    assumes = f"a page of page_size ({page_size}) rows comes back whole"
    row = partial(Row, "page_cap", "page cap", assumes)
    capped: list[tuple[int, str, int, str]] = []  # rows, stream, asked, refusal note
    whole: list[tuple[int, str, str]] = []  # rows, stream, note
    ends: list[tuple[int, str]] = []  # every row of the stream fitted one page
    for s in streams:
        if s.big is None:
            continue
        refused = f" (it refused {2 * page_size}: {s.big_refused})" if s.big_refused else ""
        if _capped(s):
            capped.append((s.big.rows, s.stream, s.big_asked, refused))
            whole.append((s.big.rows, s.stream, f", capped at {s.big.rows}{refused}"))
        elif s.big.rows >= s.big_asked:
            whole.append((s.big.rows, s.stream, refused))
        else:
            ends.append((s.big.rows, s.stream))
    low = [c for c in capped if c[0] < page_size]
    if low:
        cap, stream, asked, refused = min(low)
        observed = (
            f"{stream}: asked {asked} rows, got {cap}, and the next page had more: a cap of"
            f" {cap}{refused}"
        )
        return row(observed, FAILS, f"set page_size to {cap} or less (now {page_size})")
    if whole:
        rows, stream, note = max(whole)
        return row(f"{stream}: a page of {rows} rows came back whole{note}", HOLDS)
    most, stream = max(ends)
    if most >= page_size:
        return row(f"{stream}: all {most} rows came back in one page", HOLDS)
    return row(
        f"every stream holds fewer rows than page_size (most: {most} in {stream})",
        UNPROVEN,
        f"run the doctor with page_size below {max(most, 2)} to measure the cap (the tap reads"
        " these streams in one page today)",
    )


def _limit_row(streams: Sequence[StreamProbe]) -> Row:
    assumes = "a page holds at most the rows asked, and all of them while more exist"
    row = partial(Row, "limit", "limit honoured", assumes)
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
        return row(
            f"{stream}: asked {asked} rows, got {got}",
            FAILS,
            f"the server ignores the page-size argument: set page_size to {got}, the page it"
            " answers",
        )
    if short:
        stream, asked, got = short[0]
        observed = f"{stream}: asked {asked} rows, got {got} though more exist"
        return row(observed, FAILS, f"set page_size to {got} or less")
    if honoured:
        return row(f"honoured ({', '.join(s.stream for s in honoured)})", HOLDS)
    change = "run the doctor again when a stream holds a few rows"
    return row("no stream has enough rows to tell", UNPROVEN, change)


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
    assumes = "the same page read twice lists the same rows in the same order"
    row = partial(Row, "order", "stable order", assumes)
    changed = [text for s in streams if (text := _order_changes(s))]
    if changed:
        return row(
            "; ".join(changed),
            FAILS,
            "offset paging skips or repeats rows when the order moves: if the list takes a sort"
            " argument, declare it in the schema file; otherwise report it to Moovago",
        )
    compared = [s.stream for s in streams if s.small is not None and s.small.rows >= 2]
    if compared:
        return row(f"stable ({', '.join(compared)})", HOLDS)
    change = "run the doctor again when a stream holds 2 rows or more"
    return row("no stream has 2 rows to compare", UNPROVEN, change)


def _skip_row(streams: Sequence[StreamProbe]) -> Row:
    assumes = "a page asked from skip=N starts after the first N rows"
    row = partial(Row, "skip", "skip honoured", assumes)
    broken: list[tuple[str, int, int]] = []  # stream, skip, rows repeated
    proven: list[str] = []
    blurred: list[str] = []
    for s in streams:
        if s.big is None:
            continue
        if _order_changes(s):
            blurred.append(s.stream)
        elif s.after_big is not None and s.after_big.rows:
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
        return row(
            f"{stream}: the page from skip={start} was not the rows after the first {start}"
            f" ({repeated} repeated)",
            FAILS,
            "the server does not honour the skip argument: no setting fixes it; report it to"
            " Moovago (the tap stops with an error rather than repeat rows)",
        )
    if proven:
        return row(f"honoured ({', '.join(proven)})", HOLDS)
    why = "the order is not stable" if blurred else "no stream has enough rows to tell"
    return row(why, UNPROVEN, "see the stable order row")


def _pages(seen: Probe) -> list[tuple[float, int, str]]:
    """Every timed page: seconds, rows, stream."""
    return [
        (page.seconds, page.rows, s.stream)
        for s in seen.streams
        for page in (s.small, s.small_again, s.big, s.after_big, s.offset_page)
        if page is not None and page.seconds is not None
    ]


def _latency_row(seen: Probe, request_timeout: float) -> Row:
    limit = request_timeout * LATENCY_SHARE
    assumes = f"a page answers within {limit:.1f} s (a third of request_timeout)"
    row = partial(Row, "latency", "page latency", assumes)
    pages = _pages(seen)
    if not pages:
        return row("no page answered", UNPROVEN, _ANSWERS_PROVE)
    seconds, rows, stream = max(pages)
    median = statistics.median(p[0] for p in pages)
    observed = f"slowest {seconds:.2f} s ({rows} rows of {stream}); median {median:.2f} s"
    if seconds > limit:
        return row(
            observed,
            FAILS,
            f"raise request_timeout to at least {math.ceil(seconds / LATENCY_SHARE)} s, or"
            " lower page_size",
        )
    return row(observed, HOLDS)


def _rate_row(seen: Probe, rate: float) -> Row:
    assumes = f"{rate:g} requests/s draw no 429 (Moovago's limit is 5/s)"
    row = partial(Row, "rate_limit", "rate limit", assumes)
    limited = [a for a in seen.answers if a.status == 429]
    if not seen.answers:
        return row("no answer could be observed", UNPROVEN, _ANSWERS_PROVE)
    if not limited:
        return row(f"no 429 in {len(seen.answers)} answers (never provoked)", HOLDS)
    retry_after = sorted({a.retry_after for a in limited if a.retry_after})
    shapes = sorted({a.shape for a in limited if a.shape})
    return row(
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
    assumes = f"answers carry a Date header within {CLOCK_TOLERANCE_SECONDS:g} s of this clock"
    row = partial(Row, "clock", "server clock", assumes)
    offsets = _clock_offsets(seen)
    if not offsets and not seen.answers:
        return row("no answer could be observed", UNPROVEN, _ANSWERS_PROVE)
    if not offsets:
        return row(
            f"no Date header in {len(seen.answers)} answers",
            FAILS,
            "the connectors then judge time by this machine's clock alone: keep it on NTP and"
            " set start_date with a margin",
        )
    offset = statistics.median(offsets)
    if abs(offset) > CLOCK_TOLERANCE_SECONDS:
        side = "ahead of" if offset > 0 else "behind"
        change = "fix the clock that is wrong (NTP); until then set start_date with that margin"
        return row(f"the server is {abs(offset):.0f} s {side} this machine", FAILS, change)
    return row(f"offset {offset:+.1f} s (median of {len(offsets)} answers)", HOLDS)


def measured(seen: Probe, rows: Sequence[Row]) -> dict[str, Any]:
    """Figures a connector may use (e.g. refuse a page_size above a measured cap)."""
    verdicts = {row.key: {HOLDS: True, FAILS: False}.get(row.verdict) for row in rows}
    caps = [s.big.rows for s in seen.streams if s.big is not None and _capped(s)]
    fixed = [
        s.small.rows for s in seen.streams if s.small is not None and s.small.rows > s.small_asked
    ]
    offsets = _clock_offsets(seen)
    seconds = [page[0] for page in _pages(seen)]
    return {
        "page_cap": min(caps) if caps else None,
        "limit_honoured": verdicts.get("limit"),
        "fixed_page_size": min(fixed) if fixed else None,
        "stable_order": verdicts.get("order"),
        "skip_honoured": verdicts.get("skip"),
        "max_page_seconds": round(max(seconds), 3) if seconds else None,
        "clock_offset_seconds": round(statistics.median(offsets), 1) if offsets else None,
        "date_header": bool(offsets) if seen.answers else None,
        "rate_limited_answers": sum(a.status == 429 for a in seen.answers),
    }
