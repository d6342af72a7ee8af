"""The one way to read a list: every paging shape the SDL declares, checked page by page.

Rules (README, "Paging"):
- advance by the rows actually received, never by the size asked for;
- a short page is never the end: the end is an empty page, or an end the server declares
  (`hasNextPage: false`);
- each page after the first is read with proof that it continues the rows already read:
  offset paging reads the row just before the page, page-number paging the page before it,
  both in the same request as the page (alias `anchor`), and that row must be one already
  emitted; cursor paging starts after the second-to-last row when rows carry cursors and must
  find a row it already has. So the end (an empty page after a row already read) is proven by
  one answer. When the proof fails, rows moved under the pager: it re-reads from a safe point
  (further back each round, at worst the start) and emits only rows it has not emitted yet.
  Too many re-reads end the read with a PagingError naming the stream;
- rows come in a stable order: the pager asks for ascending ids when the field has a sort
  argument, and otherwise assumes the server's order does not change between reads;
- a list whose paging arguments the pager cannot drive is refused, never read once.

`read_all` is what the tap's streams, the target's index and any other list read use.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import typing as t
from collections import deque
from concurrent.futures import Future, wait
from dataclasses import dataclass, field

from moovago_api.documents import (
    ANCHOR_ALIAS,
    ANCHOR_OFFSET_VAR,
    ANCHOR_PAGE_VAR,
    ANCHOR_SIZE_VAR,
    has_aliases,
    list_document,
    restore_aliases,
)
from moovago_api.errors import ConfigError, MoovagoError, QueryError

if t.TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from moovago_api.client import MoovagoClient
    from moovago_api.documents import Selection
    from moovago_api.schema import Entity, MoovagoSchema

__all__ = ["DEFAULT_PAGE_SIZE", "Pager", "PagingError", "read_all"]

DEFAULT_PAGE_SIZE = 500
#: Re-reads from a safe point in a row (no page in order between them) before a read gives up.
MAX_ROUNDS = 5
#: Re-reads from a safe point a read may make in all before it gives up, beside the ones that
#: pages bringing new rows pay for (RESYNCS_PER_FRESH_PAGE each): a long list under steady
#: churn keeps going while it makes progress, a server that never settles meets MAX_ROUNDS.
MAX_RESYNCS = 200
#: Re-reads each page bringing rows not emitted before adds to the budget of the read.
RESYNCS_PER_FRESH_PAGE = 2
#: A list read in one request (no paging argument) past this many rows gets a warning.
LARGE_UNPAGED_RESPONSE = 5000

Row = dict[str, t.Any]
OnPage = t.Callable[[int, int], None]

_log = logging.getLogger(__name__)


class PagingError(MoovagoError):
    """A list cannot be read completely: unsupported paging, or rows that keep moving."""


@dataclass
class _Page:
    rows: list[Row]
    cursors: list[str | None] = field(default_factory=list)
    has_next: bool | None = None
    end_cursor: str | None = None
    anchor: list[Row] = field(default_factory=list)


@dataclass
class _Sent:
    """A request of the read: its ask, the guesses' generation it belongs to, its answer."""

    epoch: int
    ask: _Ask
    variables: dict[str, t.Any]
    future: Future[t.Any]


@dataclass
class _Ask:
    """One request of the read: what it is for, and where it starts."""

    purpose: str  # 'first' | 'next' | 'resync'
    start: int = 0  # offset paging: first row position; page paging: page number
    after: str | None = None  # cursor paging
    expect: str | None = None  # cursor paging: id of the row the page must begin with


class Pager:
    """Reads one entity's list with the document built for `fields` (built and checked once)."""

    def __init__(
        self,
        schema: MoovagoSchema,
        entity: Entity,
        fields: Sequence[Selection],
        *,
        operation_name: str | None = None,
        label: str | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.schema = schema
        self.entity = entity
        self.label = label or f"Stream '{entity.stream_name}'"
        self.logger = logger or _log
        self.operation_name = operation_name or f"MoovagoRead{entity.type_name}"
        self.document = list_document(schema, entity, fields, name=self.operation_name)
        problems = schema.validate_document(self.document)
        if problems:
            msg = (
                f"{self.label}: the query built for the selected fields does not validate "
                f"against {schema.path}: {'; '.join(problems)}"
            )
            raise ConfigError(msg)
        self._aliased = has_aliases(self.document)

    def read(
        self,
        client: MoovagoClient,
        *,
        filter: Mapping[str, t.Any] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        on_page: OnPage | None = None,
    ) -> Iterator[Row]:
        """Every row of the list, each once, in the server's order (see the module rules)."""
        paging = self.entity.paging
        problem = self.entity.read_problem()
        if problem is not None:
            raise PagingError(f"{self.label} cannot be read: {problem}")
        if page_size < 1:
            msg = f"{self.label}: page size must be at least 1, not {page_size}"
            raise ConfigError(msg)
        if paging.sort_arg and paging.sort_value is None:
            self.logger.warning(
                "%s: cannot ask Query.%s(%s:) for ascending ids; assuming the server's own "
                "order does not change between pages",
                self.label,
                self.entity.root_field,
                paging.sort_arg,
            )
        read = _Read(self, client, dict(filter or {}), page_size, on_page)
        if paging.kind == "none":
            return read.unpaged()
        return read.run()

    # -- answers -------------------------------------------------------------------------------

    def execute(self, client: MoovagoClient, variables: Mapping[str, t.Any]) -> dict[str, t.Any]:
        try:
            return client.execute(self.document, variables, self.operation_name)
        except QueryError as exc:
            raise self.labelled(exc) from exc

    def labelled(self, exc: QueryError) -> QueryError:
        """The API's errors for this list, naming the stream and where they are."""
        where = ", ".join(".".join(str(p) for p in path) or "(no path)" for path in exc.paths())
        messages = "; ".join(str(err.get("message", "")) for err in exc.errors)
        msg = f"{self.label}: the API returned errors at {where}: {messages}"
        return QueryError(msg, exc.errors, exc.data)

    def page_variables(
        self,
        *,
        filter: Mapping[str, t.Any] | None = None,
        size: int | None = None,
        start: int = 0,
        after: str | None = None,
    ) -> dict[str, t.Any]:
        """The variables of one page of `size` rows from row `start` (cursor paging: `after`).

        The pager's own requests, and readers that pick their own pages (the doctor); `size=None`
        leaves paging out. With page-number paging `start` must be a whole number of pages.
        """
        paging = self.entity.paging
        variables: dict[str, t.Any] = {}
        if self.entity.filter_arg is not None:
            variables[self.entity.filter_arg] = dict(filter or {})
        if paging.sort_arg and paging.sort_value is not None:
            variables[paging.sort_arg] = paging.sort_value
        if size is None or paging.kind in ("none", "unsupported"):
            return variables
        variables[t.cast("str", paging.size_arg)] = size
        if paging.kind == "offset":
            variables[t.cast("str", paging.offset_arg)] = start
            variables[ANCHOR_OFFSET_VAR] = max(0, start - 1)
            variables[ANCHOR_SIZE_VAR] = 1
        elif paging.kind == "page":
            number = paging.first_page + start // size
            variables[t.cast("str", paging.page_arg)] = number
            variables[ANCHOR_PAGE_VAR] = max(paging.first_page, number - 1)
            variables[ANCHOR_SIZE_VAR] = size
        else:
            variables[t.cast("str", paging.after_arg)] = after
        return variables

    def page(self, data: Mapping[str, t.Any]) -> _Page:
        """The rows (and cursors, pageInfo, anchor rows) of one answer."""
        paging = self.entity.paging
        root = self.entity.root_field
        value = data.get(root)
        page = _Page(rows=[])
        if value is None:
            return page
        if paging.rows == "list":
            page.rows = self._rows(value, root)
            if paging.row_cursor:
                page.cursors = [row.get(paging.row_cursor) for row in page.rows]
        else:
            if not isinstance(value, dict):
                raise self._bad(f"{root} is not a connection object")
            if paging.rows != "edges":
                page.rows = self._rows(value.get(paging.rows) or [], f"{root}.{paging.rows}")
            else:
                edges = value.get("edges") or []
                if not isinstance(edges, list) or not all(isinstance(e, dict) for e in edges):
                    raise self._bad(f"{root}.edges is not a list of edges")
                page.rows = self._rows([e.get("node") for e in edges], f"{root}.edges.node")
                if paging.row_cursor:
                    page.cursors = [e.get(paging.row_cursor) for e in edges]
            if paging.page_info:
                info = value.get(paging.page_info) or {}
                has_next = info.get("hasNextPage")
                page.has_next = has_next if isinstance(has_next, bool) else None
                page.end_cursor = info.get("endCursor")
        anchor = data.get(ANCHOR_ALIAS)
        if anchor is not None:
            anchor_value = anchor
            if paging.rows not in ("list", "edges"):
                anchor_value = anchor.get(paging.rows) or []
            elif paging.rows == "edges":
                anchor_value = [e.get("node") for e in anchor.get("edges") or []]
            page.anchor = self._rows(anchor_value, ANCHOR_ALIAS)
        return page

    def _rows(self, value: t.Any, where: str) -> list[Row]:
        if not isinstance(value, list):
            raise self._bad(f"{where} is not a list")
        for index, row in enumerate(value):
            if not isinstance(row, dict) or row.get(self.entity.id_field) is None:
                raise self._bad(f"row {index} of {where} has no id")
        if self._aliased:
            return [restore_aliases(row) for row in value]
        return value

    def _bad(self, what: str) -> PagingError:
        return PagingError(f"{self.label}: the API answered a list the pager cannot read: {what}")


def read_all(
    client: MoovagoClient,
    schema: MoovagoSchema,
    entity: Entity,
    fields: Sequence[Selection],
    *,
    filter: Mapping[str, t.Any] | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    on_page: OnPage | None = None,
    operation_name: str | None = None,
    label: str | None = None,
) -> Iterator[Row]:
    """Every row of `entity`'s list for `filter`, each once: the one way to read a list."""
    pager = Pager(schema, entity, fields, operation_name=operation_name, label=label)
    return pager.read(client, filter=filter, page_size=page_size, on_page=on_page)


class _Read:
    """The state of one read of one list: what was emitted, where the read stands."""

    def __init__(
        self,
        pager: Pager,
        client: MoovagoClient,
        filter: dict[str, t.Any],
        page_size: int,
        on_page: OnPage | None,
    ) -> None:
        self.pager = pager
        self.client = client
        self.filter = filter
        self.base = pager.page_variables(filter=filter)  # the filter and sort, no paging
        self.size = page_size
        self.on_page = on_page
        self.paging = pager.entity.paging
        self.id = pager.entity.id_field  # the plan's id field: rows are told apart by it
        self.seen: dict[t.Any, float] = {}  # id of each row emitted: its place in the list
        self.order: list[float] = []  # offset paging: those places, sorted
        self.ranks: dict[t.Any, float] | None = None  # offset paging: places of the page's rows
        self.want: _Ask | None = None  # the request the read needs next
        self.epoch = 0  # generation of the guesses in flight; bumped when they stop holding
        self.full = False  # the last page held as many rows as the longest: ask ahead of it
        self.emitted = 0
        self.pages = 0
        self.resyncs = 0
        self.fresh_pages = 0  # pages that brought rows not emitted before: the read's progress
        # Offset paging: a page's new rows pay for re-reads only when it reached further into
        # the list than any before (rows inserted at an end that keeps moving are no progress).
        self.advanced = True
        self.furthest = 0
        self.round = 0  # rounds of the current re-read, 0 when the last page was in order
        # Offset and page paging: rows of the list read so far (the last one's position + 1).
        self.pos = 0
        self.last: t.Any = None  # page paging: id of the last row of the page read last
        self.page_rows = 0  # page paging: rows per page as the server cuts them
        self.previous_short = False
        self.max_rows = 0  # most rows the server sent in one page
        self.previous_ids: list[t.Any] = []  # offset paging: ids of the page read before
        self.history: list[str] = []  # cursor paging: cursors of the latest rows, oldest first

    # -- driving -------------------------------------------------------------------------------

    def unpaged(self) -> Iterator[Row]:
        entity = self.pager.entity
        self.pager.logger.info(
            "%s: Query.%s has no paging argument: read in one request",
            self.pager.label,
            entity.root_field,
        )
        page = self.pager.page(self.pager.execute(self.client, self.base))
        if page.has_next:
            msg = (
                f"{self.pager.label}: Query.{entity.root_field} says more rows follow "
                "(hasNextPage) but takes no argument to ask for them"
            )
            raise PagingError(msg)
        if len(page.rows) > LARGE_UNPAGED_RESPONSE:
            self.pager.logger.warning(
                "%s: %d rows in one response because Query.%s has no paging arguments in the "
                "schema file; large teams may hit server limits",
                self.pager.label,
                len(page.rows),
                entity.root_field,
            )
        yield from self._emit(page.rows)
        self._counted()

    def run(self) -> Iterator[Row]:
        """Each answer decides the next request. With offset and page-number paging the pages
        after it are asked ahead, as many as the client finds worth keeping in flight
        (`useful_in_flight`: the rate times the answer time), on the guess that each page is as
        long as the longest so far; an answer to a guess that did not hold (a short page, a
        re-read) is dropped unread. Rows go out in order, each once, exactly as when pages are
        read one by one; only the client runs requests concurrently.
        """
        self.want = _Ask("first", start=self._first_start())
        # Ahead of the first answer too when answers take more than a slot or two: the guesses
        # cost a few requests on a list of one page, and save one answer time on every list.
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
                rows, self.want = self._handle(sent.ask, self.pager.page(answer))
                # Guesses follow a full page read in order, never a re-read: rows moving near the
                # end would make every guess a wasted request (and, against a list that grows
                # as fast as it is read, keep the end from ever being proven).
                self.full = (
                    sent.ask.purpose != "resync"
                    and bool(rows)
                    and len(rows) >= max(self.max_rows, self.page_rows)
                )
                if ahead and self.want is not None and ahead[0].ask != self.want:
                    self._drop(ahead)
                if rows:
                    yield from self._emit(
                        rows, self.ranks if self.paging.kind == "offset" else None
                    )
                self._counted()
        finally:
            # Once the read is over none of its requests is left running: guesses not sent are
            # cancelled, the ones in flight are waited for (their answers are not needed).
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
            variables = self._variables(ask)
            future = self.client.submit(self.pager.document, variables, self.pager.operation_name)
            ahead.append(_Sent(self.epoch, ask, variables, future))

    def _window(self) -> int:
        if self.paging.kind not in ("offset", "page"):
            return 1  # cursor paging: each cursor comes from the answer before
        return self.client.useful_in_flight()

    def _guess(self, ask: _Ask) -> _Ask | None:
        if self.paging.kind == "page":
            return _Ask("next", start=ask.start + 1)
        if self.paging.kind == "offset":
            return _Ask("next", start=ask.start + (self.max_rows or self.size))
        return None

    def _drop(self, ahead: deque[_Sent]) -> None:
        """The guesses in flight no longer hold: cancel those not sent yet, ignore the rest."""
        self.epoch += 1
        for sent in ahead:
            sent.future.cancel()

    def _answer(self, sent: _Sent) -> dict[str, t.Any]:
        if sent.future.cancelled():
            if sent.epoch == self.epoch:  # never: only dropped guesses are cancelled
                raise PagingError(f"{self.pager.label}: a page request was cancelled unanswered")
            return {}
        result = sent.future.result()
        if isinstance(result, MoovagoError):
            if sent.epoch != self.epoch:
                return {}  # a guess dropped meanwhile: its failure does not matter
            if isinstance(result, QueryError):
                raise self.pager.labelled(result) from result
            raise result
        return result

    def _first_start(self) -> int:
        return self.paging.first_page if self.paging.kind == "page" else 0

    def _variables(self, ask: _Ask) -> dict[str, t.Any]:
        first = self.paging.first_page if self.paging.kind == "page" else 0
        return self.pager.page_variables(
            filter=self.filter,
            size=self.size,
            start=(ask.start - first) * self.size if self.paging.kind == "page" else ask.start,
            after=ask.after,
        )

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
        """Offset paging: places in the list's order for the rows of `keys` not read before,
        between the rows read before around them; None when the rows read before among `keys`
        are not in their order (rows moving only shift, so in a stable order they always are).
        """
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

    def _handle(self, ask: _Ask, page: _Page) -> tuple[list[Row], _Ask | None]:
        if self.paging.kind == "offset":
            return self._offset(ask, page)
        if self.paging.kind == "page":
            return self._page_number(ask, page)
        return self._cursor(ask, page)

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
                "new rows). "
                "The server's order may not be stable between reads; run again later"
            )
            raise PagingError(msg)
        self.pager.logger.warning(
            "%s: %s; re-reading from an earlier point (round %d)",
            self.pager.label,
            what,
            self.round,
        )
        return 4 ** (self.round - 1)

    # -- offset paging -------------------------------------------------------------------------

    def _offset(self, ask: _Ask, page: _Page) -> tuple[list[Row], _Ask | None]:
        """One answer: the page at `ask.start` and, in the same request, the row before it.

        The page continues what was read when that row is one already emitted (or the page
        starts the list): rows come in one stable order, every row emitted lies at or before
        the last one emitted, so a row that stayed and was not emitted yet lies after any
        emitted row, in this page or past it. Deletes and inserts before the page only move
        the page's start; an emitted row before it still proves nothing was skipped.
        """
        rows = page.rows
        start = ask.start
        anchor = page.anchor[0][self.id] if page.anchor else None  # the row at start - 1
        ids = [row[self.id] for row in rows]
        if (
            ask.purpose == "next"
            and len(ids) >= 2
            and ids == self.previous_ids
            and anchor == self.previous_ids[0]
        ):
            # The page after the last one is that page again, and the row "before" it is its
            # first row: the server answers every offset from the start.
            msg = (
                f"{self.pager.label}: the API returned the rows of the previous page again at "
                f"{self.paging.offset_arg}={start}; it does not honour "
                f"{self.paging.offset_arg}/{self.paging.size_arg} paging"
            )
            raise PagingError(msg)
        what = None
        if start > 0 and anchor is None:
            what = f"the list no longer reaches offset {start}"
        elif start > 0 and anchor not in self.seen:
            what = f"the row before offset {start} is not one read before"
        ranks = None if what else self._ranked([*([anchor] if start else []), *ids])
        if what is None and ranks is None:
            what = f"rows read before came back in another order at offset {start}"
        if what is not None or ranks is None:
            back = self._resync_back(str(what)) * max(1, self.max_rows)
            return [], _Ask("resync", start=max(0, start - back))
        if ask.purpose == "next" or ranks:
            self.round = 0  # in order again: a page after the last one, or rows not read before
        if not rows:
            return [], None  # nothing after a row already read: the end, in one answer
        self.previous_ids = ids
        self.max_rows = max(self.max_rows, len(rows))  # rows per page as the server cuts them
        self.pos = start + len(rows)  # advance by the rows received, never by the size asked
        self.advanced, self.furthest = self.pos > self.furthest, max(self.furthest, self.pos)
        self.ranks = ranks
        return rows, _Ask("next", start=self.pos)

    # -- page-number paging --------------------------------------------------------------------

    def _page_number(self, ask: _Ask, page: _Page) -> tuple[list[Row], _Ask | None]:
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
                msg = (
                    f"{self.pager.label}: page {number - 1} of Query."
                    f"{self.pager.entity.root_field} was short but page {number} is not: the "
                    "server's page sizes vary, so pages cannot be read safely"
                )
                raise PagingError(msg)
        if not rows:
            return [], None
        if number == first or ask.purpose == "resync":
            self.page_rows = max(self.page_rows, len(rows))
        self.round = 0
        self.previous_short = len(rows) < self.page_rows
        self.pos = (number - first) * self.page_rows + len(rows)
        self.last = rows[-1][self.id]
        return rows, _Ask("next", start=number + 1)

    # -- cursor paging -------------------------------------------------------------------------

    def _cursor(self, ask: _Ask, page: _Page) -> tuple[list[Row], _Ask | None]:
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
        return PagingError(
            f"{self.pager.label}: Query.{self.pager.entity.root_field} says more rows follow "
            f"but its cursor does not move past {ask.after!r}"
        )

    def _cursor_of(self, page: _Page, index: int) -> str:
        if self.paging.row_cursor:
            cursor = page.cursors[index] if index < len(page.cursors) else None
        else:
            cursor = page.end_cursor if index == len(page.rows) - 1 else None
        if cursor is None:
            msg = (
                f"{self.pager.label}: Query.{self.pager.entity.root_field} sent a page without "
                "the cursor needed to ask for the next one"
            )
            raise PagingError(msg)
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
