"""Warehouse NULLs on update: a NULL clears a nullable scalar, and leaves non-null and list fields
alone (never sent as null, never counted as a change)."""

from __future__ import annotations

import pytest

from tests.target.helpers import entity_rows, mutation_count, stream_messages


@pytest.fixture
def box(sandbox_factory):
    return sandbox_factory(companies=3)


def by_code(handle, code):
    return next(c for c in entity_rows(handle, "company") if c.get("customerCode") == code)


def test_null_lists_are_created_then_left_alone_on_rerun(box, run_target):
    rows = [
        {
            "customerCode": f"NULL-{n}",
            "name": f"Null lists {n}",
            "city": "Niort",
            "note": None,
            "ownerIds": None,
            "mandatorIds": None,
        }
        for n in range(3)
    ]
    first = run_target(box, stream_messages("company", rows))
    assert first.counts("company")["created"] == 3
    assert first.rejects == []
    mutations = mutation_count(box)
    second = run_target(box, stream_messages("company", rows))
    assert second.rejects == []
    assert second.counts("company")["unchanged"] == 3
    assert second.counts("company")["rejected"] == 0
    assert mutation_count(box) == mutations


def test_null_in_a_non_null_field_keeps_the_stored_value(box, run_target):
    owner = next(c["ownerIds"] for c in entity_rows(box, "company") if c["ownerIds"])
    row = {"customerCode": "KEEP-1", "name": "Kept", "ownerIds": owner, "note": "x"}
    run_target(box, stream_messages("company", [row]))
    nulls = {"customerCode": "KEEP-1", "name": None, "ownerIds": None, "mandatorIds": None}
    mutations = mutation_count(box)
    result = run_target(box, stream_messages("company", [nulls]))
    assert result.rejects == []
    assert result.counts("company")["unchanged"] == 1
    assert mutation_count(box) == mutations
    stored = by_code(box, "KEEP-1")
    assert stored["name"] == "Kept"
    assert stored["ownerIds"] == owner


def test_null_in_a_nullable_scalar_clears_it(box, run_target):
    row = {"customerCode": "CLEAR-1", "name": "Cleared", "note": "call back", "city": "Niort"}
    run_target(box, stream_messages("company", [row]))
    assert by_code(box, "CLEAR-1")["note"] == "call back"
    result = run_target(box, stream_messages("company", [{**row, "note": None, "ownerIds": None}]))
    assert result.rejects == []
    assert result.counts("company")["updated"] == 1
    update = [r for r in box.requests() if "mutation" in str(r.get("query"))][-1]
    inputs = [v["input"] for v in update["variables"].values() if isinstance(v, dict)]
    assert inputs == [{"note": None}]
    stored = by_code(box, "CLEAR-1")
    assert stored["note"] is None
    assert stored["city"] == "Niort"
    again = run_target(box, stream_messages("company", [{**row, "note": None}]))
    assert again.counts("company")["unchanged"] == 1
