"""Syncs against the sandbox: completeness, rate, incremental state, paging, selection."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from typing import Any

import pytest

from moovago_api.client import MoovagoClient
from moovago_api.errors import AuthError, ConfigError
from tests.tap.helpers import (
    ENTITY_STREAMS,
    discover,
    export_rows,
    only_streams,
    run_sync,
    set_selected,
    tap_config,
)

LIST_STREAMS = [name for name in ENTITY_STREAMS if name != "team"]

UPDATE_COMPANY = (
    "mutation TestUpdateCompany($input: CompanyUpdateInput!) "
    "{ company { update(input: $input) { recordId } } }"
)
UPDATE_CONTACT = (
    "mutation TestUpdateContact($input: CompanyContactUpdateInput!) "
    "{ companyContact { update(input: $input) { recordId } } }"
)
CREATE_MANDATOR = (
    "mutation TestCreateMandator($input: MandatorCreateInput!) "
    "{ mandator { create(input: $input) { recordId } } }"
)


@pytest.fixture
def sandbox(sandbox_factory):
    """A sandbox of the test's own (rebuilt from the pool): these tests read the request log,
    which the shared sandbox fills with other tests' requests."""
    return sandbox_factory(companies=30)


def _new_requests(handle: Any, before: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Requests logged since `before` was read (the log keeps the most recent ones)."""
    after = handle.requests()
    return after[len(before) :] if after[: len(before)] == before else after


def test_full_sync_extracts_every_sandbox_row_without_a_429(sandbox) -> None:
    limited_before = sandbox.stats()["rate_limited"]
    out = run_sync(tap_config(sandbox))
    export = sandbox.export()

    assert [row["id"] for row in out.records["team"]] == [sandbox.team_id]
    for stream in LIST_STREAMS:
        expected = sorted(row["id"] for row in export_rows(export, stream, sandbox.team_id))
        assert expected, f"the sandbox has no {stream} rows for the key's team"
        assert sorted(out.ids(stream)) == expected, stream
        assert {row["teamId"] for row in out.records[stream]} == {sandbox.team_id}
    assert sandbox.stats()["rate_limited"] == limited_before

    bookmarks = out.final_state["bookmarks"]
    for stream in LIST_STREAMS:
        assert set(bookmarks[stream]) == {"replication_key", "replication_key_value"}, stream
        newest = max(row["updatedAt"] for row in out.records[stream])
        assert bookmarks[stream]["replication_key_value"] == newest


@pytest.mark.slow
def test_second_run_returns_only_rows_changed_after_the_bookmark(sandbox_factory) -> None:
    handle = sandbox_factory()
    config = tap_config(handle)
    first = run_sync(config)
    state = first.final_state

    client = MoovagoClient(api_url=handle.url, api_key=handle.api_key)
    try:
        companies = first.ids("company")[:2]
        for company_id in companies:
            client.execute(
                UPDATE_COMPANY, {"input": {"id": company_id, "input": {"note": "changed by test"}}}
            )
        contact = first.ids("contact")[-1]
        client.execute(UPDATE_CONTACT, {"input": {"id": contact, "input": {"position": "CFO"}}})
        created = client.execute(CREATE_MANDATOR, {"input": {"name": "Mandator from test"}})
        mandator = created["mandator"]["create"]["recordId"]
    finally:
        client.close()

    second = run_sync(config, state=state)
    changed = {"company": set(companies), "contact": {contact}, "mandator": {mandator}}
    for stream in LIST_STREAMS:
        bookmark = state["bookmarks"][stream]["replication_key_value"]
        # updatedSince is inclusive: rows exactly at the bookmark come again (at least once).
        at_bookmark = {r["id"] for r in first.records[stream] if r["updatedAt"] == bookmark}
        assert set(second.ids(stream)) == changed.get(stream, set()) | at_bookmark, stream
        assert all(r["updatedAt"] >= bookmark for r in second.records.get(stream, []))
    assert {r["id"] for r in second.records["company"] if r["note"] == "changed by test"} == set(
        companies
    )
    new_company_bookmark = second.final_state["bookmarks"]["company"]["replication_key_value"]
    assert new_company_bookmark > state["bookmarks"]["company"]["replication_key_value"]

    sent = [r for r in handle.requests() if "companyList" in r["query"]]
    assert (
        sent[-1]["variables"]["filter"]["updatedSince"]
        == (state["bookmarks"]["company"]["replication_key_value"])
    )


def test_start_date_bounds_the_first_run(sandbox) -> None:
    rows = export_rows(sandbox.export(), "company", sandbox.team_id)
    stamps = sorted(row["updatedAt"] for row in rows)
    start = stamps[len(stamps) // 2]
    config = tap_config(sandbox, start_date=start)
    out = run_sync(config, catalog=only_streams(discover(config), {"company"}))
    expected = sorted(row["id"] for row in rows if row["updatedAt"] >= start)
    assert 0 < len(expected) < len(rows)
    assert sorted(out.ids("company")) == expected

    future = tap_config(sandbox, start_date="2999-01-01T00:00:00Z")
    out = run_sync(future, catalog=only_streams(discover(future), {"company", "turnover"}))
    assert out.records.get("company", []) == []
    assert out.records.get("turnover", []) == []
    sent = [r for r in sandbox.requests() if "turnoverList" in r["query"]]
    assert sent[-1]["variables"]["filter"] == {
        "teamId": sandbox.team_id,
        "updatedSince": "2999-01-01T00:00:00.000Z",
    }


def test_pages_read_the_row_before_them_and_end_on_an_empty_page(sandbox) -> None:
    config = tap_config(sandbox, page_size=7, max_requests_in_flight=1)  # no page asked ahead
    before = sandbox.requests()
    out = run_sync(config, catalog=only_streams(discover(config), {"company"}))
    expected = sorted(r["id"] for r in export_rows(sandbox.export(), "company", sandbox.team_id))
    assert sorted(out.ids("company")) == expected
    assert len(set(out.ids("company"))) == len(expected), "no row twice"

    sent = [r for r in _new_requests(sandbox, before) if "companyList" in r["query"]]
    pages = [r["variables"] for r in sent]
    # One request a page, one read of the list: after a full page the next starts at the last
    # row read (its first row must be that row), so it brings 6 rows not read before. The end
    # is the empty page after the last row with that row beside it (alias `anchor`), in one
    # answer; a full last page is first followed by the last row alone (the end, or a page
    # cut to one row).
    total = len(expected)
    asked = [(0, 7, None)] + [(start - 1, 7, None) for start in range(7, total, 6)]
    if total >= 7 and (total - 7) % 6 == 0:
        asked.append((total - 1, 7, None))
    asked.append((total, 7, total - 1))
    assert [(p["skip"], p["limit"], p.get("anchorOffset")) for p in pages] == asked
    assert ["anchor:" in r["query"] for r in sent] == [False] * (len(asked) - 1) + [True]
    assert pages[-1]["anchorSize"] == 1


def test_pages_asked_ahead_give_the_same_rows_in_the_same_order(sandbox) -> None:
    catalog = only_streams(discover(tap_config(sandbox)), {"company"})
    before = sandbox.requests()
    one = run_sync(tap_config(sandbox, page_size=7, max_requests_in_flight=1), catalog=catalog)
    one_by_one = [r for r in _new_requests(sandbox, before) if "companyList" in r["query"]]
    before = sandbox.requests()
    ahead = run_sync(tap_config(sandbox, page_size=7, max_requests_in_flight=4), catalog=catalog)
    assert ahead.ids("company") == one.ids("company")
    assert ahead.final_state == one.final_state
    pages = [r["variables"] for r in _new_requests(sandbox, before) if "companyList" in r["query"]]
    skips = [p["skip"] for p in pages]
    assert len(one.ids("company")) // 7 + 1 <= len(one_by_one) <= len(one.ids("company")) // 7 + 2
    assert {r["variables"]["skip"] for r in one_by_one} <= set(skips)
    assert len(skips) <= len(one_by_one) + 3  # at most 3 unused guesses


def test_deselected_fields_are_not_in_the_query_sent(sandbox) -> None:
    config = tap_config(sandbox)
    catalog = only_streams(discover(config), {"company"})
    set_selected(catalog, "company", ("properties", "note"), selected=False)
    set_selected(catalog, "company", ("properties", "mandators"), selected=False)
    set_selected(
        catalog, "company", ("properties", "coordinates", "properties", "latitude"), selected=False
    )
    before = sandbox.requests()
    out = run_sync(config, catalog=catalog)
    query = next(r["query"] for r in _new_requests(sandbox, before) if "companyList" in r["query"])
    assert not re.search(r"\bnote\b", query)
    assert not re.search(r"\bmandators\b", query)
    assert not re.search(r"\blatitude\b", query)
    assert re.search(r"\blongitude\b", query)
    assert re.search(r"\bpostalCode\b", query)
    assert all("note" not in row and "mandators" not in row for row in out.records["company"])


def test_team_id_setting_must_be_the_key_s_team(sandbox) -> None:
    config = tap_config(sandbox, team_id=sandbox.team_id)
    out = run_sync(config, catalog=only_streams(discover(config), {"mandator"}))
    assert out.records["mandator"]

    wrong = tap_config(sandbox, team_id="not-my-team")
    with pytest.raises(
        ConfigError, match=r"team_id is 'not-my-team' but the API key belongs to team"
    ):
        run_sync(wrong, catalog=only_streams(discover(wrong), {"mandator"}))


def test_a_refused_key_stops_the_run_naming_the_settings_not_the_key(sandbox) -> None:
    config = tap_config(sandbox, api_key="wrong-key-123")
    with pytest.raises(AuthError) as caught:
        run_sync(config)
    assert "api_key" in str(caught.value)
    assert "wrong-key-123" not in str(caught.value)


def test_sdk_stream_maps_and_flattening_apply_to_moovago_streams(sandbox) -> None:
    config = tap_config(
        sandbox,
        flattening_enabled=True,
        flattening_max_depth=1,
        stream_maps={"company": {"email": None, "phone": None}},
    )
    out = run_sync(config, catalog=only_streams(discover(config), {"company"}))
    row = out.records["company"][0]
    assert "email" not in row
    assert "phone" not in row
    assert "coordinates__latitude" in row
    assert "coordinates" not in row
    assert "coordinates__latitude" in out.schemas["company"]["properties"]


@pytest.mark.slow
def test_pages_asked_ahead_under_slow_and_failing_answers_give_every_row_once_in_order(
    sandbox_factory,
) -> None:
    # Answers take 300 ms (so pages are asked ahead from the first one), one in ten fails with
    # a 5xx or a dropped connection and is retried: the same rows in the same order, each once,
    # and the same bookmark as one request at a time against a plain sandbox.
    plain = sandbox_factory(companies=60, rate_limit=0)
    catalog = only_streams(discover(tap_config(plain)), {"company", "contact"})
    one = run_sync(tap_config(plain, page_size=10, max_requests_in_flight=1), catalog=catalog)
    faulty = sandbox_factory(
        companies=60,
        rate_limit=5,
        extra_args=[
            "--latency-read",
            "300",
            "--fault-5xx",
            "0.05",
            "--fault-drop",
            "0.05",
            "--fault-seed",
            "5",
        ],
    )
    config = tap_config(faulty, page_size=10, max_requests_per_second=5, max_retry_seconds=60)
    ahead = run_sync(config, catalog=catalog)
    for stream in ("company", "contact"):
        assert ahead.ids(stream) == one.ids(stream), stream
    assert faulty.stats()["rate_limited"] == 0
    bookmarks = [
        s.get("bookmarks", {}).get("company") for s in (one.final_state, ahead.final_state)
    ]
    assert bookmarks[0] == bookmarks[1]
    # and pages were in flight together: a page asked less than one answer time after another
    sent = [
        dt.datetime.fromisoformat(r["time"])
        for r in faulty.requests()
        if r.get("operationName") == "TapMoovagoCompany"
    ]
    assert min(b - a for a, b in itertools.pairwise(sent)) < dt.timedelta(milliseconds=290)


def _catalog_of(config: dict[str, Any], streams: set[str]) -> dict[str, Any]:
    """A catalog listing only `streams`, all selected (as hand-written and Airbyte-made ones)."""
    catalog = only_streams(discover(config), streams)
    catalog["streams"] = [s for s in catalog["streams"] if s["tap_stream_id"] in streams]
    return catalog


def test_a_catalog_without_team_syncs_the_streams_it_lists(sandbox) -> None:
    config = tap_config(sandbox)
    before = sandbox.requests()
    out = run_sync(config, catalog=_catalog_of(config, {"company"}))
    expected = sorted(r["id"] for r in export_rows(sandbox.export(), "company", sandbox.team_id))
    assert expected
    assert sorted(out.ids("company")) == expected
    assert set(out.records) == {"company"}  # the team query's row is not emitted
    sent = [r.get("operationName") for r in _new_requests(sandbox, before)]
    assert sent.count("TapMoovagoTeamId") == 1

    wrong = tap_config(sandbox, team_id="not-my-team")
    with pytest.raises(ConfigError, match=r"team_id is 'not-my-team' but the API key belongs"):
        run_sync(wrong, catalog=_catalog_of(wrong, {"company"}))
