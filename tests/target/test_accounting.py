"""Rejects file, max_rejects, summary, dry run, STATE timing and secrets."""

from __future__ import annotations

import logging

import pytest

from target_moovago.ledger import TooManyRejectsError
from tests.target.helpers import entity_rows, mutation_count, stream_messages

STATE = {"type": "STATE", "value": {"bookmarks": {"company": {"updated_at": "2026-11-28"}}}}


@pytest.fixture
def box(sandbox_factory):
    return sandbox_factory(companies=3)


def mixed_rows():
    return [
        {"customerCode": "OK-1", "name": "Fine"},
        {"customerCode": "BAD-1", "name": "Bad status", "status": "FRIEND"},
        {"customerCode": "BAD-2", "name": None},
        {"customerCode": "OK-2", "name": "Also fine"},
    ]


def test_bad_rows_go_to_the_rejects_file_and_the_run_goes_on(box, run_target):
    result = run_target(box, [*stream_messages("company", mixed_rows()), STATE])
    counts = result.counts("company")
    assert (counts["created"], counts["rejected"]) == (2, 2)
    assert {r["row_key"] for r in result.rejects} == {
        "customerCode='BAD-1'",
        "customerCode='BAD-2'",
    }
    by_key = {r["row_key"]: r for r in result.rejects}
    assert by_key["customerCode='BAD-1'"]["field"] == "status"
    assert "FRIEND" in by_key["customerCode='BAD-1'"]["reason"]
    assert by_key["customerCode='BAD-2'"]["field"] == "name"
    for reject in result.rejects:
        assert reject["stream"] == "company"
        assert reject["row"]["customerCode"].startswith("BAD")
        assert reject["time"]
    assert result.states == [STATE["value"]]


def test_max_rejects_fails_the_run_and_no_state_is_emitted(box, run_target):
    result = run_target(
        box, [*stream_messages("company", mixed_rows()), STATE], raises=False, max_rejects=1
    )
    assert isinstance(result.error, TooManyRejectsError)
    assert result.states == []
    assert result.summary["failed"] is True


def test_state_is_emitted_only_after_its_rows_are_written(box, run_target):
    rows = [{"customerCode": f"ST-{n}", "name": f"S{n}"} for n in range(3)]
    messages = [*stream_messages("company", rows), STATE]
    result = run_target(box, messages)
    assert result.states == [STATE["value"]]
    assert {c.get("customerCode") for c in entity_rows(box, "company")} >= {"ST-0", "ST-1", "ST-2"}


def test_state_is_not_emitted_when_the_run_crashes_before_writing(box, run_target):
    rows = [{"customerCode": f"CR-{n}", "name": f"C{n}"} for n in range(3)]
    result = run_target(
        box, [*stream_messages("company", rows), STATE], raises=False, api_key="wrong-key"
    )
    assert result.error is not None
    assert result.states == []
    assert "wrong-key" not in str(result.error)


def test_summary_counts_requests_and_streams(box, run_target, caplog):
    with caplog.at_level(logging.INFO):
        result = run_target(box, stream_messages("company", mixed_rows()))
    summary = result.summary
    assert summary["streams"]["company"]["created"] == 2
    assert summary["requests"] >= 2  # team + index page + one mutation batch
    assert {"retries", "rate_limited", "duration_seconds"} <= set(summary)
    table = next(r.getMessage() for r in caplog.records if "summary" in r.getMessage())
    assert "created" in table
    assert "company" in table


def test_dry_run_plans_but_writes_nothing(box, run_target, caplog):
    existing = next(c for c in entity_rows(box, "company") if c.get("customerCode"))
    rows = [
        {"customerCode": "DRY-1", "name": "Dry"},
        {"customerCode": existing["customerCode"], "name": "Renamed in a dry run"},
    ]
    before = mutation_count(box)
    with caplog.at_level(logging.INFO):
        result = run_target(box, stream_messages("company", rows), dry_run=True)
    assert mutation_count(box) == before == 0
    assert result.summary["dry_run"] is True
    assert result.counts("company")["created"] == 1
    assert result.counts("company")["updated"] == 1
    samples = [r.getMessage() for r in caplog.records if r.getMessage().startswith("dry run")]
    assert any("DRY-1" in s for s in samples)
    assert all(c.get("customerCode") != "DRY-1" for c in entity_rows(box, "company"))


def test_the_api_key_never_reaches_rejects_summary_or_log(box, run_target, caplog):
    rows = [{"customerCode": "SEC-1", "name": None, "note": f"key is {box.api_key}"}]
    with caplog.at_level(logging.INFO):
        result = run_target(box, stream_messages("company", rows))
    assert result.rejects
    everything = (
        "\n".join(r.getMessage() for r in caplog.records)
        + str(result.rejects)
        + str(result.summary)
    )
    assert box.api_key not in everything


def test_a_row_without_id_or_key_is_named_by_its_position(box, run_target):
    rows = [{"customerCode": "POS-1", "name": "One"}, {"customerCode": "POS-2", "name": "Two"}]
    rows.append({"name": "No key at all"})
    result = run_target(box, stream_messages("company", rows))
    (reject,) = result.rejects
    assert reject["row_key"] == "row #3"
    assert reject["field"] == "customerCode"
    assert "match key" in reject["reason"]
