"""How a stream reacts to what the API answers: a real client against a scripted stub server."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Mapping
from typing import Any

import pytest

from moovago_api.errors import QueryError
from tap_moovago import streams as streams_module
from tap_moovago.tap import TapMoovago
from tests.tap.helpers import discover, only_streams
from tests.unit.stub_server import client_for

OFFLINE = {"api_url": "http://127.0.0.1:9/graphql", "api_key": "offline-key"}
TEAM = {
    "id": "team-1",
    "name": "T",
    "members": [],
    "createdAt": "2026-01-01T00:00:00.000Z",
    "updatedAt": "2026-01-01T00:00:00.000Z",
}


def _mandator(n: int) -> dict[str, Any]:
    return {
        "id": f"m{n:04d}",
        "teamId": "team-1",
        "name": f"M{n}",
        "createdAt": "2026-01-01T00:00:00.000Z",
        "updatedAt": "2026-01-02T00:00:00.000Z",
    }


class ScriptedClient:
    """Answers each query from a function of (root field, variables); records the calls."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls: list[tuple[str | None, dict[str, Any]]] = []

    def execute(
        self,
        document: Any,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        self.calls.append((operation_name, dict(variables or {})))
        if operation_name == "TapMoovagoTeam":
            return {"team": TEAM}
        return self.answer(dict(variables or {}))


def _run_mandators(client: ScriptedClient, **config: Any) -> list[str]:
    """The tap's records, read through a real client from a stub server answering as `client`."""
    tap_config = {**OFFLINE, **config}
    tap = TapMoovago(config=tap_config, catalog=only_streams(discover(tap_config), {"mandator"}))
    out = io.StringIO()
    with client_for(client.execute) as real, contextlib.redirect_stdout(out):
        tap._client = real  # private: the tap builds its client from settings, none to pass
        tap.sync_all()
    return [
        line for line in out.getvalue().splitlines() if '"type":"RECORD"' in line.replace(" ", "")
    ]


def test_partial_data_fails_the_run_naming_the_error_path() -> None:
    def answer(_: dict[str, Any]) -> dict[str, Any]:
        raise QueryError(
            "errors in response",
            errors=[{"message": "Internal error", "path": ["mandatorList", 3, "email"]}],
            data={"mandatorList": [_mandator(1)]},
        )

    with pytest.raises(
        QueryError, match=r"Stream 'mandator'.*mandatorList\.3\.email.*Internal error"
    ):
        _run_mandators(ScriptedClient(answer))


def _offset_answer(rows: list[dict[str, Any]]) -> Any:
    """mandatorList as a server honouring skip/limit, the row before the page beside it."""

    def answer(v: dict[str, Any]) -> dict[str, Any]:
        page = rows[v["skip"] : v["skip"] + v["limit"]]
        if "anchorOffset" not in v:  # a page started one row early: no second field
            return {"mandatorList": page}
        anchor = rows[v["anchorOffset"] : v["anchorOffset"] + v["anchorSize"]]
        return {"mandatorList": page, "anchor": anchor}

    return answer


def test_paging_reads_the_row_before_each_page_never_ends_on_a_short_page_and_logs_progress(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [_mandator(n) for n in range(23)]
    monkeypatch.setattr(streams_module, "PROGRESS_EVERY_PAGES", 2)
    client = ScriptedClient(_offset_answer(rows))
    with caplog.at_level(logging.INFO):
        records = _run_mandators(client, page_size=5)
    assert len(records) == 23
    pages = [
        (v["skip"], v["limit"], v.get("anchorOffset"), v.get("anchorSize"))
        for name, v in client.calls
        if name == "TapMoovagoMandator"
    ]
    # After a full page the next starts at the last row read, in one read of the list (its
    # first row must be one read already); the short page (rows 20-22) is not the end: the
    # empty page past row 22 is, with row 22 beside it in the same request.
    assert pages == [
        (0, 5, None, None),
        (4, 5, None, None),
        (8, 5, None, None),
        (12, 5, None, None),
        (16, 5, None, None),
        (20, 5, None, None),
        (23, 5, 22, 1),
    ]
    progress = [r.getMessage() for r in caplog.records if "pages so far" in r.getMessage()]
    assert progress[:3] == [
        "Stream 'mandator': 9 rows in 2 pages so far",
        "Stream 'mandator': 17 rows in 4 pages so far",
        "Stream 'mandator': 23 rows in 6 pages so far",
    ]


def test_a_full_last_page_costs_two_end_requests_the_row_before_then_the_empty_page_beside() -> (
    None
):
    rows = [_mandator(n) for n in range(13)]
    client = ScriptedClient(_offset_answer(rows))
    assert len(_run_mandators(client, page_size=5)) == 13
    # Row 12 alone is the end or a page cut to one row: the empty page beside it decides.
    calls = [
        (v["skip"], v.get("anchorOffset")) for n, v in client.calls if n == "TapMoovagoMandator"
    ]
    assert calls == [(0, None), (4, None), (8, None), (12, None), (13, 12)]


def test_a_server_that_ignores_skip_is_caught_instead_of_looping() -> None:
    rows = [_mandator(n) for n in range(5)]
    client = ScriptedClient(lambda v: {"mandatorList": rows, "anchor": rows})
    with pytest.raises(Exception, match=r"Stream 'mandator'.*previous page again"):
        _run_mandators(client, page_size=5)


def test_a_server_that_drops_the_row_before_each_page_is_refused_not_read_short() -> None:
    rows = [_mandator(n) for n in range(12)]
    client = ScriptedClient(lambda v: {"mandatorList": rows[v["skip"] : v["skip"] + v["limit"]]})
    with pytest.raises(Exception, match=r"Stream 'mandator'.*no longer reaches offset 5"):
        _run_mandators(client, page_size=5)


class _CappedChurningServer:
    """mandatorList as a server capping pages at `cap` and moving rows before some reads."""

    def __init__(self, rows: int, *, cap: int, churn_every: int = 0, seed: int = 0) -> None:
        from tests.unit.test_pager import FakeList

        churn = (churn_every, 1, 1) if churn_every else None
        self.fake = FakeList(None, rows, cap=cap, churn=churn, seed=seed, entity="mandator")
        for row in self.fake.rows:
            row.update(teamId="team-1", updatedAt="2026-01-02T00:00:00.000Z")

    def execute(self, document: Any, variables: Any = None, operation_name: Any = None) -> Any:
        if operation_name == "TapMoovagoTeam":
            return {"team": TEAM}
        answer = self.fake.execute(document, variables, operation_name)
        for row in answer["mandatorList"]:
            row.setdefault("teamId", "team-1")
            row.setdefault("updatedAt", "2026-01-02T00:00:00.000Z")
        return answer


@pytest.mark.parametrize("cap", [100, 1])
def test_the_tap_extracts_every_row_from_a_server_capping_pages(cap: int) -> None:
    server = _CappedChurningServer(250 if cap > 1 else 30, cap=cap)
    records = _run_mandators(server, page_size=500)  # type: ignore[arg-type]
    assert len(records) == len(server.fake.initial)


def test_the_tap_never_misses_a_row_that_stayed_while_rows_move() -> None:
    for seed in range(20):
        server = _CappedChurningServer(120, cap=1000, churn_every=2, seed=seed)
        records = _run_mandators(server, page_size=10)  # type: ignore[arg-type]
        got = {json.loads(line)["record"]["id"] for line in records}
        assert server.fake.survivors() <= got, f"seed {seed}"
