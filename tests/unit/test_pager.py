"""The pager against scripted servers: capped and short pages, rows moving between reads.

Each fake answers the variables of the document the pager built for a shape variant, from a
list of rows sorted by id, the way a server that honours (or caps, or ignores) the paging
arguments would. Churn deletes and inserts random rows (anywhere in the order) before reads.
The pager reads through a real MoovagoClient against a stub HTTP server answering from the fake.
"""

from __future__ import annotations

import itertools
import logging
import random
from pathlib import Path
from typing import Any

import pytest
from graphql import print_ast

from moovago_api import reading as reading_module
from moovago_api.documents import (
    ANCHOR_ALIAS,
    ANCHOR_OFFSET_VAR,
    ANCHOR_PAGE_VAR,
    ANCHOR_SIZE_VAR,
)
from moovago_api.errors import ConfigError, PagingError
from moovago_api.pager import Pager
from moovago_api.schema import load_schema
from tests.unit.stub_server import client_for

SHAPES = Path(__file__).resolve().parents[1] / "schema_variants" / "shapes"
FIELDS = ["name"]


class FakeList:
    """One list root field answering like a server; records the variables of each request."""

    def __init__(
        self,
        variant: str | None,
        rows: int,
        *,
        cap: int | None = None,
        ignore_size: int | None = None,
        churn: tuple[int, int, int] | None = None,
        seed: int = 0,
        short: bool = False,
        unstable: bool = False,
        offset_cursors: bool = False,
        entity: str = "company",
        grow_at_end: bool = False,
    ) -> None:
        self.schema = load_schema(SHAPES / variant if variant else None)
        self.entity = self.schema.entity(entity)
        self.paging = self.entity.paging
        self.rows = [{"id": f"r{k * 10:05d}", "name": f"row {k}"} for k in range(rows)]
        self.initial = {row["id"] for row in self.rows}
        self.deleted: set[str] = set()
        self.cap = cap
        self.ignore_size = ignore_size
        self.churn = churn
        self.rng = random.Random(seed)
        self.short = short
        self.unstable = unstable
        self.offset_cursors = offset_cursors
        self.grow_at_end = grow_at_end  # inserted ids sort last, as the sandbox's do
        self.calls: list[dict[str, Any]] = []
        self.submitted: list[dict[str, Any]] = []
        self.inserted = 0

    # -- the whole read must hold every row that existed from start to end ------------------

    def survivors(self) -> set[str]:
        return self.initial - self.deleted

    def _mutate(self) -> None:
        if self.churn is None:
            return
        every, deletes, inserts = self.churn
        if len(self.calls) % every:
            return
        for _ in range(min(deletes, len(self.rows))):
            row = self.rows.pop(self.rng.randrange(len(self.rows)))
            self.deleted.add(row["id"])
        for _ in range(inserts):
            self.inserted += 1
            key = f"r{self.rng.randrange(100000):05d}i{self.inserted}"
            if self.grow_at_end:
                key = f"s{self.inserted:05d}"
            self.rows.append({"id": key, "name": "inserted"})
        self.rows.sort(key=lambda row: row["id"])

    def _size(self, asked: int) -> int:
        if self.ignore_size is not None:
            asked = self.ignore_size
        if self.cap is not None:
            asked = min(asked, self.cap)
        if self.short and asked > 1:
            asked = self.rng.randint(1, asked)
        return asked

    def _ordered(self) -> list[dict[str, Any]]:
        if not self.unstable:
            return self.rows
        shuffled = list(self.rows)
        self.rng.shuffle(shuffled)
        return shuffled

    def execute(
        self, document: Any, variables: dict[str, Any] | None = None, operation_name: Any = None
    ) -> dict[str, Any]:
        variables = dict(variables or {})
        self.calls.append(variables)
        self._mutate()
        rows = self._ordered()
        root = self.entity.root_field
        paging = self.paging
        if paging.kind == "offset":
            start = variables[paging.offset_arg]
            answer = {root: rows[start : start + self._size(variables[paging.size_arg])]}
            if ANCHOR_OFFSET_VAR in variables:  # the row before beside the page (1-row answers)
                anchor = variables[ANCHOR_OFFSET_VAR]
                answer[ANCHOR_ALIAS] = rows[
                    anchor : anchor + self._size(variables[ANCHOR_SIZE_VAR])
                ]
            return answer
        if paging.kind == "page":
            per = self._size(variables[paging.size_arg])
            first = paging.first_page

            def window(number: int) -> list[dict[str, Any]]:
                return rows[(number - first) * per : (number - first + 1) * per]

            anchor_per = self._size(variables[ANCHOR_SIZE_VAR])
            anchor_start = (variables[ANCHOR_PAGE_VAR] - first) * anchor_per
            return {
                root: window(variables[paging.page_arg]),
                ANCHOR_ALIAS: rows[anchor_start : anchor_start + anchor_per],
            }
        if paging.kind == "cursor":
            after = variables[paging.after_arg]
            if self.offset_cursors:
                start = 0 if after is None else int(after) + 1
            else:
                start = 0 if after is None else sum(1 for row in rows if row["id"] <= after)
            size = self._size(variables[paging.size_arg])
            chunk = rows[start : start + size]

            def cursor(index: int) -> str:
                return str(start + index) if self.offset_cursors else chunk[index]["id"]

            has_next = start + len(chunk) < len(rows)
            end_cursor = cursor(len(chunk) - 1) if chunk else after
            if paging.rows == "list":
                return {root: [{**row, "cursor": cursor(i)} for i, row in enumerate(chunk)]}
            info = {"hasNextPage": has_next, "endCursor": end_cursor}
            if paging.rows == "nodes":
                return {root: {"nodes": chunk, "pageInfo": info}}
            edges = [{"cursor": cursor(i), "node": row} for i, row in enumerate(chunk)]
            return {root: {"edges": edges, "pageInfo": info}}
        return {root: rows}

    def read(self, page_size: int = 500, *, window: int = 1) -> list[str]:
        """The ids the pager reads through a real client; `window` > 1: pages asked ahead."""
        with client_for(self.execute, window=window, ahead=window > 1) as client:
            rows = Pager(self.schema, self.entity, FIELDS).read(client, page_size=page_size)
            ids = [row["id"] for row in rows]
        self.submitted = client.submitted  # what the pager asked, sent or cancelled unsent
        assert len(ids) == len(set(ids)), "a row came twice"
        return ids


VARIANTS = [
    None,
    "offset_first.gql",
    "page_paging.gql",
    "cursor_paging.gql",
    "connection_nodes.gql",
    "connection_edges.gql",
]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("cap", [100, 7, 1])
def test_a_capped_server_still_gives_every_row(variant, cap):
    fake = FakeList(variant, 300 if cap > 1 else 40, cap=cap)
    assert fake.read(page_size=500) == sorted(fake.initial)


@pytest.mark.parametrize("variant", VARIANTS)
def test_short_pages_are_never_taken_as_the_end(variant):
    fake = FakeList(variant, 120, short=True, seed=3)
    if variant == "page_paging.gql":
        # Page numbers with varying page sizes cannot be read safely: refused, not guessed.
        with pytest.raises(PagingError, match=r"page sizes vary"):
            fake.read(page_size=10)
        return
    assert fake.read(page_size=10) == sorted(fake.initial)


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_server_ignoring_the_size_argument_still_gives_every_row(variant):
    fake = FakeList(variant, 130, ignore_size=50)
    assert fake.read(page_size=500) == sorted(fake.initial)


def test_offset_pages_advance_by_rows_received_and_read_the_row_before_in_the_same_request():
    fake = FakeList(None, 250, cap=100)
    assert len(fake.read(page_size=500)) == 250
    asked = [
        (c["skip"], c["limit"], c.get(ANCHOR_OFFSET_VAR), c.get(ANCHOR_SIZE_VAR))
        for c in fake.calls
    ]
    # 100 rows (short: a cap, or the end), so the next page from row 100 has row 99 beside it
    # (it must be one already read); 100 rows, a full page, so the next one starts one row
    # early, at row 199 (the page's first row must be the row read last); 51 rows, short: the
    # end is an empty page after row 249 with row 249 beside it, proven by the same answer.
    assert asked == [
        (0, 500, None, None),
        (100, 500, 99, 1),
        (199, 500, None, None),
        (250, 500, 249, 1),
    ]


def test_offset_pages_after_a_full_page_are_one_list_read_starting_at_the_row_before():
    fake = FakeList(None, 250)
    assert fake.read(page_size=100) == sorted(fake.initial)
    # Each page after a full one is one read of the list (no second root field), from the
    # row read last (never more rows than the page size: servers refuse a limit past theirs);
    # the short page's end is the empty page beside row 249.
    asked = [(c["skip"], c["limit"], c.get(ANCHOR_OFFSET_VAR)) for c in fake.calls]
    assert asked == [(0, 100, None), (99, 100, None), (198, 100, None), (250, 100, 249)]


def test_a_full_last_page_then_only_the_row_before_is_checked_by_an_empty_page_beside_it():
    # 199 rows in full pages: the page from row 198 holds only row 198, the end or a server
    # cutting that page to one row; an empty page with row 198 beside it tells them apart.
    fake = FakeList(None, 199)
    assert fake.read(page_size=100) == sorted(fake.initial)
    asked = [(c["skip"], c["limit"], c.get(ANCHOR_OFFSET_VAR)) for c in fake.calls]
    assert asked == [(0, 100, None), (99, 100, None), (198, 100, None), (199, 100, 198)]


@pytest.mark.parametrize("cap", [1, None])
def test_one_row_lists_and_servers_capping_pages_at_one_row_end_on_an_empty_page_beside(cap):
    # One row cannot tell the end from a cap at one row: the next page is read from the offset
    # with the row before beside it, and only an empty page beside a row read ends the list.
    one = FakeList(None, 1, cap=cap)
    assert one.read(page_size=500) == sorted(one.initial)
    assert [(c["skip"], c.get(ANCHOR_OFFSET_VAR)) for c in one.calls] == [(0, None), (1, 0)]
    capped = FakeList(None, 4, cap=1)
    assert capped.read(page_size=500 if cap else 1) == sorted(capped.initial)
    assert [(c["skip"], c.get(ANCHOR_OFFSET_VAR)) for c in capped.calls] == [
        (0, None),
        (1, 0),
        (2, 1),
        (3, 2),
        (4, 3),
    ]


def test_the_end_of_a_list_that_fits_one_page_costs_one_more_request():
    fake = FakeList(None, 10)
    assert len(fake.read(page_size=500)) == 10
    assert [call["skip"] for call in fake.calls] == [0, 10]


def test_an_end_whose_row_before_was_deleted_is_re_read_not_taken():
    # Row 9 deleted between the two reads: the empty page at 10 comes with no row at 9, so the
    # pager cannot tell whether rows slid before 10; it re-reads from earlier, then ends.
    fake = FakeList(None, 10)

    def delete_row_9_before_the_second_read() -> None:
        if len(fake.calls) == 2:
            fake.deleted.add(fake.rows.pop(9)["id"])

    fake._mutate = delete_row_9_before_the_second_read  # type: ignore[method-assign]
    got = fake.read(page_size=500)
    assert len(got) == len(set(got)) == 10  # each row once, row 9 read before it went
    # the first page, the empty page without row 9 beside it, a re-read from the start, the end
    assert [call["skip"] for call in fake.calls] == [0, 10, 0, 9]


def test_an_empty_list_is_one_request():
    fake = FakeList(None, 0)
    assert fake.read() == []
    assert len(fake.calls) == 1


@pytest.mark.parametrize(
    ("variant", "offset_cursors"),
    [
        (None, False),
        ("offset_first.gql", False),
        ("page_paging.gql", False),
        ("cursor_paging.gql", True),
        ("connection_edges.gql", True),
        ("connection_nodes.gql", False),  # keyset cursors: rows moving do not shift a page
    ],
)
@pytest.mark.parametrize("cap", [None, 1])
def test_rows_moving_between_reads_never_lose_a_row_that_stayed(variant, offset_cursors, cap):
    if cap == 1 and offset_cursors:
        pytest.skip("pages of one row cannot overlap: cursors are trusted not to shift (README)")
    for seed in range(20):
        fake = FakeList(
            variant,
            60 if cap else 200,
            cap=cap,
            churn=(10, 1, 1) if cap else (2, 2, 2),
            seed=seed,
            offset_cursors=offset_cursors,
        )
        got = set(fake.read(page_size=25))
        missing = fake.survivors() - got
        assert not missing, f"seed {seed}: rows that stayed were never read: {sorted(missing)}"
        assert got <= fake.initial | {row["id"] for row in fake.rows} | fake.deleted


def test_a_row_deleted_before_the_page_between_two_page_reads_is_caught_and_re_read():
    # The sandbox's churn: before every third read a random row goes and one is added at the
    # end. A delete before the page moves the row before it: the page's first row is then not
    # the row read last, so the pager goes back; each row that stayed comes once.
    went_back = 0
    for seed in range(20):
        fake = FakeList(None, 30, churn=(3, 1, 1), seed=seed, grow_at_end=True)
        got = fake.read(page_size=5)  # read() asserts no row came twice
        assert not fake.survivors() - set(got), f"seed {seed}"
        skips = [call["skip"] for call in fake.calls]
        went_back += any(b < a for a, b in itertools.pairwise(skips))
    assert went_back >= 10, "the churn moved rows under most reads"


def test_a_server_that_never_sends_the_row_before_a_page_is_refused_after_bounded_re_reads():
    fake = FakeList(None, 30)
    real = fake.execute

    def without_anchor(*args: Any, **kwargs: Any) -> dict[str, Any]:
        answer = real(*args, **kwargs)
        answer.pop(ANCHOR_ALIAS, None)
        return answer

    fake.execute = without_anchor  # type: ignore[method-assign]
    with pytest.raises(PagingError, match=r"the list no longer reaches offset 10"):
        fake.read(page_size=10)
    assert len(fake.calls) < 20


def test_a_server_whose_order_changes_at_every_read_is_refused_naming_the_stream():
    fake = FakeList(None, 200, unstable=True, seed=1)
    with pytest.raises(PagingError, match=r"Stream 'company': rows kept moving while paging"):
        fake.read(page_size=20)
    assert len(fake.calls) < 100, "bounded re-reads"


@pytest.mark.parametrize("variant", [None, "page_paging.gql", "cursor_paging.gql"])
@pytest.mark.parametrize("per_page", [2, 0])
def test_a_long_list_under_steady_churn_is_read_past_the_fixed_re_read_budget(
    variant, per_page, monkeypatch
):
    # Rows move before every second read, for far more re-reads than the fixed budget (10
    # here): each page of new rows pays for re-reads, so the read goes on; without that (0 per
    # page) the same read is refused loudly, never cut short.
    monkeypatch.setattr(reading_module, "MAX_RESYNCS", 10)
    monkeypatch.setattr(reading_module, "RESYNCS_PER_FRESH_PAGE", per_page)
    fake = FakeList(
        variant, 1500, churn=(2, 1, 1), seed=5, offset_cursors=variant == "cursor_paging.gql"
    )
    if per_page == 0:
        with pytest.raises(PagingError, match=r"re-read from a safe point 10 times"):
            fake.read(page_size=10)
        return
    got = set(fake.read(page_size=10))
    assert not fake.survivors() - got


def test_a_list_the_pager_cannot_drive_is_refused_with_one_line():
    fake = FakeList("unsupported_paging.gql", 10, entity="mandator")
    with pytest.raises(PagingError) as caught:
        fake.read()
    assert str(caught.value) == (
        "Stream 'mandator' cannot be read: Query.mandatorList(filter: FilterManyMandatorInput!, "
        "limit: Int = 100) has paging-like arguments the tap cannot drive: it pages with "
        "skip/offset + limit/first/take, page + perPage/pageSize, or after + first/limit with a "
        "cursor (set stream_plans.mandator.paging)"
    )
    assert fake.calls == [], "never read once and taken as complete"


UNPAGED_SDL = """
type Query {
  noteList: [Note!]!
  eventList(orderBy: EventOrder, skip: Int, limit: Int): [Event!]!
  feed: FeedPage
}
type Note { id: ID! }
type Event { id: ID! }
enum EventOrder { CREATED_DESC ID_ASC }
type PageInfo { hasNextPage: Boolean! endCursor: String }
type FeedPage { nodes: [Note!]! pageInfo: PageInfo! }
"""


class Scripted:
    """Answers each request with `answer(variables)`; records the variables."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls: list[dict[str, Any]] = []

    def execute(self, document: Any, variables: Any = None, operation_name: Any = None) -> Any:
        self.calls.append(dict(variables or {}))
        return self.answer(dict(variables or {}))

    def read(self, schema: Any, entity: Any, fields: Any, **options: Any) -> list[dict]:
        with client_for(self.execute) as client:
            return list(Pager(schema, entity, fields).read(client, **options))


def test_a_list_without_paging_is_read_once_and_logged(tmp_path, caplog):
    path = tmp_path / "unpaged.gql"
    path.write_text(UNPAGED_SDL, encoding="utf-8")
    schema = load_schema(path)
    client = Scripted(lambda _: {"noteList": [{"id": "a"}, {"id": "b"}]})
    with caplog.at_level(logging.INFO):
        rows = client.read(schema, schema.entity("note"), ["id"])
    assert [row["id"] for row in rows] == ["a", "b"]
    assert client.calls == [{}]
    assert "Stream 'note': Query.noteList has no paging argument: read in one request" in (
        caplog.text
    )


def test_an_unpaged_connection_that_says_more_follows_is_refused(tmp_path):
    path = tmp_path / "unpaged.gql"
    path.write_text(UNPAGED_SDL.replace("noteList: [Note!]!\n", ""), encoding="utf-8")
    schema = load_schema(path)
    client = Scripted(
        lambda _: {"feed": {"nodes": [{"id": "a"}], "pageInfo": {"hasNextPage": True}}}
    )
    with pytest.raises(PagingError, match=r"Query\.feed says more rows follow"):
        client.read(schema, schema.entity("note"), ["id"])


def test_the_sort_argument_asks_for_ascending_ids(tmp_path):
    path = tmp_path / "sorted.gql"
    path.write_text(UNPAGED_SDL, encoding="utf-8")
    schema = load_schema(path)
    client = Scripted(
        lambda v: {"eventList": [{"id": "e1"}] if v["skip"] == 0 else [], "anchor": [{"id": "e1"}]}
    )
    rows = client.read(schema, schema.entity("event"), ["id"], page_size=5)
    assert [row["id"] for row in rows] == ["e1"]
    assert {call["orderBy"] for call in client.calls} == {"ID_ASC"}
    document = print_ast(Pager(schema, schema.entity("event"), ["id"]).document)
    assert "eventList(skip: $skip, limit: $limit, orderBy: $orderBy)" in document


def test_rows_without_an_id_are_an_error_not_a_skip():
    fake = FakeList(None, 3)
    fake.rows[1] = {"id": None, "name": "x"}
    with pytest.raises(PagingError, match=r"row 1 of companyList has no id"):
        fake.read()


def test_a_cursor_that_does_not_move_is_an_error():
    schema = load_schema(SHAPES / "connection_nodes.gql")
    entity = schema.entity("company")
    client = Scripted(
        lambda v: {
            "companyList": {
                "nodes": [] if v["after"] else [{"id": "a", "name": "A"}],
                "pageInfo": {"hasNextPage": True, "endCursor": "a"},
            }
        }
    )
    with pytest.raises(PagingError, match=r"cursor does not move past 'a'"):
        client.read(schema, entity, FIELDS)


def test_page_size_below_one_is_a_config_error():
    fake = FakeList(None, 3)
    with pytest.raises(ConfigError, match="at least 1"):
        fake.read(page_size=0)
    assert fake.calls == []


def test_on_page_reports_pages_and_rows():
    fake = FakeList(None, 23)
    seen: list[tuple[int, int]] = []
    with client_for(fake.execute) as client:
        pager = Pager(fake.schema, fake.entity, FIELDS)
        rows = list(pager.read(client, page_size=5, on_page=lambda p, n: seen.append((p, n))))
    assert len(rows) == 23
    assert seen[0] == (1, 5)
    assert seen[-1][1] == 23
    assert [p for p, _ in seen] == list(range(1, len(seen) + 1))


# -- asking pages ahead: several requests in flight -------------------------------------------


@pytest.mark.parametrize("variant", [None, "page_paging.gql"])
def test_pages_asked_ahead_give_every_row_in_order_and_cost_at_most_the_window_at_the_end(variant):
    sequential = FakeList(variant, 95)
    expected = sequential.read(page_size=10)
    fake = FakeList(variant, 95)
    assert fake.read(page_size=10, window=4) == expected  # same rows, same order
    assert len(fake.calls) <= len(sequential.calls) + 3
    if variant is None:  # every page read one by one is asked; guesses past 95 go unused
        assert {c["skip"] for c in sequential.calls} <= {c["skip"] for c in fake.calls}


@pytest.mark.parametrize("cap", [7, 1])
@pytest.mark.parametrize("window", [2, 4])
def test_pages_asked_ahead_of_a_capping_server_follow_the_rows_it_sends(cap, window):
    fake = FakeList(None, 40, cap=cap)
    assert sorted(fake.read(page_size=10, window=window)) == sorted(fake.initial)
    asked = [c["skip"] for c in fake.submitted]  # in the order the pager asked for them
    one_by_one = FakeList(None, 40, cap=cap)
    one_by_one.read(page_size=10)
    sequential = len(one_by_one.calls)
    assert sequential == {7: 8, 1: 41}[cap]  # 7: then 7 more beside row 6, then 6 new a page
    if window == 2:  # answers within a slot or two: nothing asked ahead of the first answer
        # the page after the short first one has the row before beside it, then from one row
        # early: cap rows, cap - 1 of them new (a cap of 1: always the row before beside)
        assert asked[:3] == {7: [0, 7, 13], 1: [0, 1, 2]}[cap]
        assert len(asked) <= sequential + 1
    else:  # slow answers: guesses of full pages (from one row early) from the start, then
        assert asked[:4] == [0, 9, 18, 27]  # of the rows sent
        assert len(asked) <= sequential + 2 * (window - 1)
    assert len(fake.calls) <= len(asked)  # guesses cancelled before they left cost nothing


@pytest.mark.parametrize("variant", [None, "offset_first.gql", "page_paging.gql"])
def test_pages_asked_ahead_never_lose_a_row_that_stayed_while_rows_move(variant):
    for seed in range(20):
        fake = FakeList(variant, 120, churn=(3, 1, 1), seed=seed)
        got = set(fake.read(page_size=10, window=4))
        missing = fake.survivors() - got
        assert not missing, f"seed {seed}: rows that stayed were never read: {sorted(missing)}"


def test_cursor_pages_are_never_asked_ahead():
    fake = FakeList("cursor_paging.gql", 30, offset_cursors=True)
    assert len(fake.read(page_size=10, window=4)) == 30
    sequential = FakeList("cursor_paging.gql", 30, offset_cursors=True)
    sequential.read(page_size=10)
    assert len(fake.calls) == len(sequential.calls)


def test_the_team_read_refuses_a_team_id_naming_another_team():
    schema = load_schema()
    pager, server = (
        Pager(schema, schema.entity("team"), ["id"]),
        Scripted(lambda _: {"team": {"id": "T1"}}),
    )
    with client_for(server.execute) as client:
        assert pager.team(client, None) == pager.team(client, "T1") == {"id": "T1"}
        with pytest.raises(
            ConfigError, match="team_id is 'T2' but the API key belongs to team 'T1'"
        ):
            pager.team(client, "T2")
    assert server.calls == [{}, {}, {}]


def test_a_team_read_by_id_needs_the_team_id():
    schema = load_schema(SHAPES.parent / "families" / "compose.gql")
    entity = schema.entity("team")
    server = Scripted(lambda variables: {"team": {entity.id_field: variables["id"]}})
    with client_for(server.execute) as client:
        with pytest.raises(ConfigError, match=r"Query\.team\(id:\) needs the team id: set team_id"):
            Pager(schema, entity, [entity.id_field]).team(client, None)
        assert Pager(schema, entity, [entity.id_field]).team(client, "T7") == {
            entity.id_field: "T7"
        }
    assert server.calls == [{"id": "T7"}]
