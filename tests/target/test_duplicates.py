"""No duplicates when a request holding creates fails after it may have been applied."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.target.helpers import entity_rows, stream_messages


def new_rows(n, prefix):
    return [{"customerCode": f"{prefix}-{i:04d}", "name": f"Company {i}"} for i in range(n)]


def codes(handle, prefix):
    return Counter(
        c["customerCode"]
        for c in entity_rows(handle, "company")
        if (c.get("customerCode") or "").startswith(prefix)
    )


@pytest.mark.slow
def test_commit_then_fail_at_20_percent_creates_each_row_exactly_once(sandbox_factory, run_target):
    box = sandbox_factory(companies=5, faults={"commit_then_fail": 0.2, "seed": 7})
    before = len(entity_rows(box, "company"))
    result = run_target(
        box, stream_messages("company", new_rows(500, "CTF")), mutations_per_request=25
    )
    found = codes(box, "CTF")
    assert len(found) == 500
    assert set(found.values()) == {1}
    assert len(entity_rows(box, "company")) == before + 500
    assert result.counts("company")["created"] == 500
    assert result.rejects == []
    assert box.stats()["faults"]["commit_then_fail"] > 0


def test_failures_before_the_commit_are_resent_once(sandbox_factory, run_target):
    faults = {"error_5xx": 0.2, "drop_connection": 0.1, "seed": 3}
    box = sandbox_factory(companies=2, faults=faults)
    result = run_target(
        box, stream_messages("company", new_rows(60, "PRE")), mutations_per_request=10
    )
    found = codes(box, "PRE")
    assert len(found) == 60
    assert set(found.values()) == {1}
    assert result.counts("company")["created"] == 60


def test_rows_without_match_key_are_found_by_their_values(sandbox_factory, run_target):
    box = sandbox_factory(companies=2, faults={"commit_then_fail": 0.3, "seed": 11})
    rows = [{"name": f"Keyless {i}", "city": f"City {i}"} for i in range(40)]
    result = run_target(
        box,
        stream_messages("company", rows),
        mutations_per_request=5,
        stream_modes={"company": "create_only"},
        allow_keyless_creates=["company"],  # keyless creates are an opt-in now
    )
    names = Counter(
        c["name"] for c in entity_rows(box, "company") if c["name"].startswith("Keyless")
    )
    assert len(names) == 40
    assert set(names.values()) == {1}
    assert result.counts("company")["created"] == 40
    assert box.stats()["faults"]["commit_then_fail"] > 0


@pytest.mark.slow
def test_updates_are_retried_after_server_errors(sandbox_factory, run_target):
    box = sandbox_factory(companies=30, faults={"error_5xx": 0.4, "seed": 5})
    existing = [c for c in entity_rows(box, "company") if c.get("customerCode")][:8]
    assert len(existing) == 8
    rows = [
        {"customerCode": c["customerCode"], "city": f"Retry {n}"} for n, c in enumerate(existing)
    ]
    result = run_target(box, stream_messages("company", rows), mutations_per_request=1)
    assert result.counts("company")["updated"] == len(existing)
    assert box.stats()["faults"]["error_5xx"] > 0
    assert result.summary["retries"] > 0
    cities = {c["customerCode"]: c["city"] for c in entity_rows(box, "company")}
    assert [cities[c["customerCode"]] for c in existing] == [f"Retry {n}" for n in range(8)]
