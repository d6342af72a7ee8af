"""One read of one list (`Pager.read` makes one): what was emitted, where the read stands, the
proof that each page continues the rows read (pager.py's rules), pages asked ahead, re-reads."""

from __future__ import annotations

import bisect
import itertools
import math
import typing as t
from collections import deque
from concurrent.futures import Future, wait
from dataclasses import dataclass, field

from moovago_api.documents import ANCHOR_OFFSET_VAR, ANCHOR_SIZE_VAR
from moovago_api.errors import MoovagoError, PagingError, QueryError

if t.TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from graphql import DocumentNode

    from moovago_api.client import MoovagoClient
    from moovago_api.pager import OnPage, Page, Pager, Row

#: Re-reads from a safe point in a row (no page in order between them) before a read gives up.
MAX_ROUNDS = 5
#: Re-reads a read may make in all, beside RESYNCS_PER_FRESH_PAGE per page of new rows: a list
#: under steady churn goes on while it progresses, a server that never settles meets MAX_ROUNDS.
MAX_RESYNCS = 200
#: Re-reads each page bringing rows not emitted before adds to the budget of the read.
RESYNCS_PER_FRESH_PAGE = 2
#: A list read in one request (no paging argument) past this many rows gets a warning.
LARGE_UNPAGED_RESPONSE = 5000


@dataclass
class _Sent:
    epoch: int  # the generation of guesses it was sent in
    ask: _Ask
    future: Future[t.Any]


@dataclass
class _Ask:
    purpose: str  # 'first' | 'next' | 'resync'
    start: int = 0  # offset paging: the offset asked; page paging: page number
    early: bool = False  # offset paging: from the row before the page, the page's first row
    after: str | None = None  # cursor paging
    expect: str | None = None  # cursor paging: id of the row the page must begin with


@dataclass
class ListRead:
    """The state of one read of one list: what was emitted, where the read stands."""

    pager: Pager
    client: MoovagoClient
    filter: dict[str, t.Any]
    size: int
    on_page: OnPage | None
    seen: dict[t.Any, float] = field(default_factory=dict)  # id of each row emitted: its place
    order: list[float] = field(default_factory=list)  # offset paging: those places, sorted
    ranks: dict[t.Any, float] | None = None  # offset paging: places of the page's rows
    want: _Ask | None = None  # the request the read needs next
    epoch: int = 0  # generation of the guesses in flight; bumped when they stop holding
    full: bool = False  # the last page held as many rows as the longest: ask ahead of it
    emitted: int = 0
    pages: int = 0
    resyncs: int = 0
    fresh_pages: int = 0  # pages that brought rows not emitted before: the read's progress
    # Offset paging: new rows pay for re-reads only from a page further than any before.
    advanced: bool = True
    furthest: int = 0
    round: int = 0  # rounds of the current re-read, 0 when the last page was in order
    last: t.Any = None  # page paging: id of the last row of the page read last
    page_rows: int = 0  # page paging: rows per page as the server cuts them
    previous_short: bool = False
    max_rows: int = 0  # most rows the server sent in one answer
    previous_ids: list[t.Any] = field(default_factory=list)  # offset paging: the answer before
    history: list[str] = field(default_factory=list)  # cursor paging: latest cursors, oldest 1st

    def __post_init__(self) -> None:
        self.paging = self.pager.entity.paging
        self.where = f"{self.pager.label}: Query.{self.pager.entity.root_field}"
        handlers = {"offset": self._offset, "page": self._page_number, "none": self._unpaged}
        self.handle = handlers.get(self.paging.kind, self._cursor)
        self.id = self.pager.entity.id_field  # the plan's id field: rows are told apart by it

    # -- driving -------------------------------------------------------------------------------

    def run(self) -> Iterator[Row]:
        """Each answer decides the next request; offset and page-number pages are also asked
        ahead on a guess (each page as long as the longest); an answer to a guess that failed is
        dropped unread."""
        self.want = _Ask("first", start=self.paging.first_page if self.paging.kind == "page" else 0)
        # Ahead of the first answer too when answers are slow: one answer time saved per list.
        self.full = self._window() >= 3
        ahead: deque[_Sent] = deque()
        try:
            while self.want is not None:
                self._fill(ahead)
                sent = ahead.popleft()
                answer = self._answer(sent)
                if sent.epoch != self.epoch:
                    continue  # asked ahead on a guess that no longer holds
                if sent.ask != self.want:
                    self._drop(ahead)
                    continue
                page = self.pager.page(answer)
                rows, self.want = self.handle(sent.ask, page)
                # Guesses follow a full page read in order, never a re-read: rows moving near the
                # end would make every guess a wasted request (or keep the end from being proven).
                self.full = (
                    sent.ask.purpose != "resync"
                    and bool(rows)
                    and len(page.rows) >= max(self.max_rows, self.page_rows)
                )
                if ahead and self.want is not None and ahead[0].ask != self.want:
                    self._drop(ahead)
                yield from self._emit(rows, self.ranks)  # ranks: offset paging only
                self._counted()
        finally:
            # No request of the read outlives it: unsent guesses cancelled, sent ones waited for.
            futures = [sent.future for sent in ahead]
            for future in futures:
                future.cancel()
            wait(futures)

    def _fill(self, ahead: deque[_Sent]) -> None:
        """Send what is wanted next, then guesses after it while they are worth sending."""
        while True:
            current = [sent for sent in ahead if sent.epoch == self.epoch]
            if not current:
                ask = self.want
            elif not self.full or len(ahead) >= self._window():
                return  # guesses only after a page as long as the longest: else the end is near
            else:
                ask = self._guess(current[-1].ask)
            if ask is None:
                return
            document, variables = self._request(ask)
            future = self.client.submit(document, variables, self.pager.operation_name)
            ahead.append(_Sent(self.epoch, ask, future))

    def _window(self) -> int:
        if self.paging.kind not in ("offset", "page"):
            return 1  # cursor paging: each cursor comes from the answer before
        return self.client.useful_in_flight()

    def _guess(self, ask: _Ask) -> _Ask | None:
        if self.paging.kind == "page":
            return _Ask("next", start=ask.start + 1)
        if self.paging.kind == "offset":  # a full page: as asked, or as long as the longest
            rows = min(self.size, self.max_rows or self.size)
            return self._at("next", ask.start + rows, early=rows >= 2)
        return None

    def _at(self, purpose: str, pos: int, *, early: bool) -> _Ask:
        """Offset paging: the rows from `pos`, from one row early or the row before beside."""
        if pos and early:
            return _Ask(purpose, start=pos - 1, early=True)
        return _Ask(purpose, start=pos)

    def _drop(self, ahead: deque[_Sent]) -> None:
        """The guesses in flight no longer hold: cancel those not sent yet, ignore the rest."""
        self.epoch += 1
        for sent in ahead:
            sent.future.cancel()

    def _answer(self, sent: _Sent) -> dict[str, t.Any]:
        if sent.epoch != self.epoch:  # a guess dropped meanwhile: its answer or failure is moot
            wait([sent.future])  # no request of the read outlives it
            return {}
        result = sent.future.result()
        if isinstance(result, QueryError):
            raise self.pager.labelled(result) from result
        if isinstance(result, MoovagoError):
            raise result
        return result

    def _request(self, ask: _Ask) -> tuple[DocumentNode, dict[str, t.Any]]:
        start = ask.start
        if self.paging.kind == "page":
            start = (ask.start - self.paging.first_page) * self.size
        variables = self.pager.page_variables(
            filter=self.filter, size=self.size, start=start, after=ask.after
        )
        if self.paging.kind != "offset" or ask.early or not start:
            return self.pager.document, variables
        variables |= {ANCHOR_OFFSET_VAR: start - 1, ANCHOR_SIZE_VAR: 1}
        return self.pager.anchored, variables

    def _emit(self, rows: list[Row], ranks: Mapping[t.Any, float] | None = None) -> Iterator[Row]:
        if self.advanced and any(row[self.id] not in self.seen for row in rows):
            self.fresh_pages += 1
        for row in rows:
            key = row[self.id]
            if key in self.seen:
                continue
            if ranks is None:
                self.seen[key] = float(self.emitted)
            else:
                self.seen[key] = ranks[key]
                bisect.insort(self.order, ranks[key])
            self.emitted += 1
            yield row

    def _ranked(self, keys: list[t.Any]) -> dict[t.Any, float] | None:
        """Offset paging: places for the rows of `keys` not read before, between the rows read
        before around them; None when those are out of their order (moving rows only shift)."""
        known = [self.seen[key] for key in keys if key in self.seen]
        if any(a >= b for a, b in itertools.pairwise(known)):
            return None
        ranks: dict[t.Any, float] = {}
        low, pending = -math.inf, []
        for key in keys:
            if key not in self.seen:
                pending.append(key)
                continue
            _between(ranks, pending, low, self.seen[key])
            low, pending = self.seen[key], []
        above = bisect.bisect_right(self.order, low)
        _between(ranks, pending, low, self.order[above] if above < len(self.order) else math.inf)
        return ranks

    def _counted(self) -> None:
        self.pages += 1
        if self.on_page is not None:
            self.on_page(self.pages, self.emitted)

    # -- re-reads ------------------------------------------------------------------------------

    def _resync_back(self, what: str) -> int:
        """How far back the next re-read starts (rows or pages); raises past MAX_RESYNCS."""
        self.resyncs += 1
        self.round += 1
        budget = MAX_RESYNCS + RESYNCS_PER_FRESH_PAGE * self.fresh_pages
        if self.round > MAX_ROUNDS or self.resyncs > budget:
            msg = (
                f"{self.pager.label}: rows kept moving while paging Query."
                f"{self.pager.entity.root_field} ({what}); re-read from a safe point "
                f"{self.resyncs - 1} times ({self.round - 1} in a row, {self.fresh_pages} pages of "
                "new rows). The server's order may not be stable between reads; run again later"
            )
            raise PagingError(msg)
        message = "%s: %s; re-reading from an earlier point (round %d)"
        self.pager.logger.warning(message, self.pager.label, what, self.round)
        return 4 ** (self.round - 1)

    def _unpaged(self, ask: _Ask, page: Page) -> tuple[list[Row], _Ask | None]:
        if page.has_next:
            why = "says more rows follow (hasNextPage) but takes no argument to ask for them"
            raise PagingError(f"{self.where} {why}")
        if len(page.rows) > LARGE_UNPAGED_RESPONSE:
            message = "%s: %d rows in one response: no paging arguments, may hit server limits"
            self.pager.logger.warning(message, self.where, len(page.rows))
        return page.rows, None

    # -- offset paging -------------------------------------------------------------------------

    def _offset(self, ask: _Ask, page: Page) -> tuple[list[Row], _Ask | None]:
        """The rows from `start` continue what was read when the row before them (the page's
        first, `early`, or beside it) is one emitted: in one order a row that stayed and was not
        emitted lies after it. Deletes and inserts before the page only move its start."""
        start = ask.start + ask.early  # the position of the first row not read before
        rows = page.rows[1:] if ask.early else page.rows
        before = [row[self.id] for row in (page.rows[:1] if ask.early else page.anchor[:1])]
        ids = [*(before if start else []), *(row[self.id] for row in rows)]
        what = None
        answered = [row[self.id] for row in page.rows]
        if ask.purpose == "next" and len(answered) >= 2 and answered == self.previous_ids:
            what = f"the API returned the previous page again at {self.paging.offset_arg}={start}"
        elif start and not before:
            what = f"the list no longer reaches offset {start}"
        elif start and before[0] not in self.seen:
            what = f"the row before offset {start} is not one read before"
        ranks = None if what else self._ranked(ids)
        if what is None and ranks is None:
            what = f"rows read before came back in another order at offset {start}"
        if what is not None or ranks is None:
            back = self._resync_back(str(what)) * max(1, self.max_rows - 1)  # pages of new rows
            return [], self._at("resync", max(0, start - back), early=self.max_rows >= 2)
        if not rows and ask.early:
            # The end, or a page cut short to one row: an empty page beside that row tells.
            return [], self._at("next", start, early=False)
        if ranks:
            self.round = 0  # in order again: rows not read before
        if not rows:
            return [], None  # an empty page after a row already read: the end, in one answer
        self.previous_ids = answered
        # After a full page read in order (as asked, or as the longest) the next starts one row
        # early; after a re-read, the end is likely near: it is read in one request, beside.
        early = ask.purpose != "resync" and len(page.rows) >= max(
            2, min(self.size, self.max_rows or self.size)
        )
        self.max_rows = max(self.max_rows, len(page.rows))  # rows per answer as the server cuts
        pos = start + len(rows)  # advance by the rows received, never by the size asked
        self.advanced, self.furthest = pos > self.furthest, max(self.furthest, pos)
        self.ranks = ranks
        return rows, self._at("next", pos, early=early)

    # -- page-number paging --------------------------------------------------------------------

    def _page_number(self, ask: _Ask, page: Page) -> tuple[list[Row], _Ask | None]:
        first = self.paging.first_page
        rows = page.rows
        number = ask.start
        if number != first:
            anchor_ok = bool(page.anchor) and page.anchor[-1][self.id] == self.last
            if ask.purpose == "resync":
                anchor_ok = any(row[self.id] in self.seen for row in rows)
            if not anchor_ok:
                back = self._resync_back(f"the page before page {number} changed")
                return [], _Ask("resync", start=max(first, number - 1 - back))
            if rows and self.previous_short and ask.purpose == "next":
                msg = f"{self.where}: page {number - 1} was short but page {number} is not: the "
                raise PagingError(msg + "server's page sizes vary, so pages cannot be read safely")
        if not rows:
            return [], None
        if number == first or ask.purpose == "resync":
            self.page_rows = max(self.page_rows, len(rows))
        self.round = 0
        self.previous_short = len(rows) < self.page_rows
        self.last = rows[-1][self.id]
        return rows, _Ask("next", start=number + 1)

    # -- cursor paging -------------------------------------------------------------------------

    def _cursor(self, ask: _Ask, page: Page) -> tuple[list[Row], _Ask | None]:
        rows = page.rows
        self.max_rows = max(self.max_rows, len(rows))
        if ask.expect is not None and not any(row[self.id] in self.seen for row in rows):
            if ask.purpose == "next":
                what = (
                    f"the page after cursor {ask.after!r} does not begin with the row read before"
                )
            else:
                what = f"no row read before follows cursor {ask.after!r} any more"
            back = self._resync_back(what) * max(1, self.max_rows)
            # The cursor of a row read `back` rows earlier, or the start of the list.
            older = self.history[:-1]
            after = older[len(older) - back] if back <= len(older) else None
            return [], _Ask("resync", after=after, expect=None if after is None else "known")
        if ask.purpose == "next" and ask.expect is not None:
            self.round = 0
        if page.has_next is False:
            return rows, None  # the server declares the end
        if not rows:
            if page.has_next and page.end_cursor not in (None, ask.after):
                return rows, _Ask("next", after=page.end_cursor)
            if page.has_next:
                raise self._stuck(ask)
            return rows, None  # an empty page: the end
        cursors: list[str] = []
        if self.paging.row_cursor:
            cursors = [self._cursor_of(page, i) for i in range(len(rows))]
            self.history = (self.history + cursors)[-4 * self.size :]
        if len(cursors) >= 2:
            # Start after the second-to-last row: the next page must begin with the last one.
            return rows, _Ask("next", after=cursors[-2], expect=rows[-1][self.id])
        after = self._cursor_of(page, len(rows) - 1)
        if after == ask.after:
            raise self._stuck(ask)
        return rows, _Ask("next", after=after)

    def _stuck(self, ask: _Ask) -> PagingError:
        why = f"says more rows follow but its cursor does not move past {ask.after!r}"
        return PagingError(f"{self.where} {why}")

    def _cursor_of(self, page: Page, index: int) -> str:
        if self.paging.row_cursor:
            cursor = page.cursors[index] if index < len(page.cursors) else None
        else:
            cursor = page.end_cursor if index == len(page.rows) - 1 else None
        if cursor is None:
            why = "sent a page without the cursor needed to ask for the next one"
            raise PagingError(f"{self.where} {why}")
        return cursor


def _between(ranks: dict[t.Any, float], keys: list[t.Any], low: float, high: float) -> None:
    """Spread `keys` evenly between the places `low` and `high` (either may be unbounded)."""
    if not keys:
        return
    if low == -math.inf:
        low = (0.0 if high == math.inf else high) - len(keys) - 1
    if high == math.inf:
        high = low + len(keys) + 1
    step = (high - low) / (len(keys) + 1)
    for index, key in enumerate(keys, start=1):
        ranks[key] = low + step * index
