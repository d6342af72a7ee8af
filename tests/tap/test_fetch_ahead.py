"""Pages asked ahead (issue 15 item 2): with offset and page-number paging, the pages after a page
in order are asked ahead through the client's in-flight window; records, their order, STATE and
bookmarks are exactly those of one request at a time, and the guesses follow a server that
cuts pages short or moves rows."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from moovago_api.client import MoovagoClient
from tests.tap.helpers import discover, run_sync, tap_config


class InFlight:
    """The most list requests under way at once (wraps MoovagoClient.execute)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = self.peak = 0
        self._lock = threading.Lock()
        original = MoovagoClient.execute

        def execute(client, *args, **kwargs):
            with self._lock:
                self.now += 1
                self.peak = max(self.peak, self.now)
            try:
                return original(client, *args, **kwargs)
            finally:
                with self._lock:
                    self.now -= 1

        monkeypatch.setattr(MoovagoClient, "execute", execute)


def companies_only(config):
    catalog = discover(config)
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if not item["breadcrumb"]:
                item["metadata"]["selected"] = entry["tap_stream_id"] == "company"
    return catalog


@pytest.mark.slow
def test_pages_asked_ahead_give_what_one_at_a_time_gives(sandbox_factory, monkeypatch):
    box = sandbox_factory(companies=900, rate_limit=0, latency_read=150)
    results = {}
    for in_flight in (1, 6):
        meter = InFlight(monkeypatch)
        config = tap_config(
            box, page_size=100, max_requests_per_second=5, max_requests_in_flight=in_flight
        )
        results[in_flight] = (run_sync(config, catalog=companies_only(config)), meter.peak)
    (one, one_peak), (ahead, ahead_peak) = results[1], results[6]
    assert one_peak == 1
    assert ahead_peak >= 2, "no page was asked ahead"
    assert ahead.ids("company") == one.ids("company")
    assert len(set(ahead.ids("company"))) == 900
    assert ahead.final_state == one.final_state


def test_a_server_cutting_pages_short_is_followed(sandbox_factory, monkeypatch):
    box = sandbox_factory(companies=300, rate_limit=0, latency_read=100, max_page_size=40)
    meter = InFlight(monkeypatch)
    config = tap_config(box, page_size=100, max_requests_per_second=5, max_requests_in_flight=6)
    before = box.stats()["requests"]
    out = run_sync(config, catalog=companies_only(config))
    ids = out.ids("company")
    assert len(ids) == 300
    assert set(Counter(ids).values()) == {1}
    assert meter.peak >= 2
    # 300 rows in pages of 40 that overlap by one: 8 pages, the end checks, and at most one
    # window of pages asked past the end (the team read and its checks besides)
    assert box.stats()["requests"] - before <= 8 + 2 + 6 + 4


@pytest.mark.slow
def test_rows_moving_while_pages_are_asked_ahead_never_lose_a_row_that_stayed(
    sandbox_factory, monkeypatch
):
    churn = {"fault_churn": "3:1:1", "extra_args": ["--fault-seed", "7"]}
    box = sandbox_factory(companies=60, rate_limit=0, latency_read=50, **churn)
    meter = InFlight(monkeypatch)
    config = tap_config(box, page_size=10, max_requests_per_second=5, max_requests_in_flight=6)
    catalog = companies_only(config)
    for run in range(2):
        before = {r["id"] for r in box.export()["company"] if r.get("teamId") == box.team_id}
        out = run_sync(config, catalog=catalog)
        after = {r["id"] for r in box.export()["company"] if r.get("teamId") == box.team_id}
        ids = out.ids("company")
        assert set(Counter(ids).values()) == {1}, f"run {run}: a row was emitted twice"
        assert not (before & after) - set(ids), f"run {run}: a row that stayed was missed"
    assert meter.peak >= 2
    assert box.stats()["churn"]["inserted"] > 0
