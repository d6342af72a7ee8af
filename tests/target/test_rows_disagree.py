"""Rows that disagree (issue 23 item 1): rows addressing one remote record, by id or by match
key, merge in input order, the later value winning field by field, whatever the run."""

from __future__ import annotations

import logging

from tests.target.helpers import entity_rows, mutation_count, stream_messages


def _stored(box, record_id):
    (row,) = [c for c in entity_rows(box, "company") if c["id"] == record_id]
    return row


def test_a_record_named_by_id_and_by_key_stores_the_same_values_on_every_run(
    sandbox_factory, run_target, caplog
):
    box = sandbox_factory(companies=6)
    target = next(c for c in entity_rows(box, "company") if c.get("customerCode"))
    rows = [
        {"id": target["id"], "name": "By id", "city": "Niort"},
        {"customerCode": target["customerCode"], "name": "By key", "note": "from the key row"},
    ]
    messages = stream_messages("company", rows)
    with caplog.at_level(logging.INFO):
        first = run_target(box, messages)
    stored = _stored(box, target["id"])
    # The later row wins where both speak; each row's own fields are kept.
    assert (stored["name"], stored["city"], stored["note"]) == (
        "By key",
        "Niort",
        "from the key row",
    )
    assert first.counts("company")["superseded"] == 1
    assert first.counts("company")["updated"] == 1
    assert any(
        f"id={target['id']} (row #1) merged into a later row (#2)" in r.getMessage()
        and r.levelno == logging.INFO
        for r in caplog.records
    )
    mutations = mutation_count(box)
    second = run_target(box, messages)
    assert _stored(box, target["id"]) == stored
    assert mutation_count(box) == mutations  # the rerun writes nothing
    assert second.counts("company")["unchanged"] == 1
    assert second.counts("company")["updated"] == 0


def test_the_key_row_first_and_the_id_row_last_merge_the_other_way(sandbox_factory, run_target):
    box = sandbox_factory(companies=4)
    target = next(c for c in entity_rows(box, "company") if c.get("customerCode"))
    rows = [
        {"customerCode": target["customerCode"], "name": "By key", "city": "Melle"},
        {"id": target["id"], "name": "By id"},
    ]
    for _ in range(2):
        run_target(box, stream_messages("company", rows))
        stored = _stored(box, target["id"])
        assert (stored["name"], stored["city"]) == ("By id", "Melle")


def test_two_rows_creating_one_new_record_merge_field_by_field(sandbox_factory, run_target):
    box = sandbox_factory(companies=2)
    rows = [
        {"customerCode": "MERGE-1", "name": "first", "city": "Paris"},
        {"customerCode": "MERGE-1", "name": "last"},
    ]
    result = run_target(box, stream_messages("company", rows))
    (made,) = [c for c in entity_rows(box, "company") if c.get("customerCode") == "MERGE-1"]
    assert (made["name"], made["city"]) == ("last", "Paris")
    assert result.counts("company")["created"] == 1
    assert result.counts("company")["superseded"] == 1


def test_a_merged_row_rejected_for_an_earlier_rows_value_shows_both_rows_columns(
    sandbox_factory, run_target
):
    box = sandbox_factory(companies=2)
    rows = [
        {"customerCode": "MERGE-BAD", "name": "first", "status": "NOT_A_STATUS"},
        {"customerCode": "MERGE-BAD", "name": "last"},
    ]
    result = run_target(box, stream_messages("company", rows))
    (reject,) = result.rejects
    assert reject["field"] == "status"
    assert reject["row"] == {"customerCode": "MERGE-BAD", "name": "last", "status": "NOT_A_STATUS"}
    assert result.counts("company")["superseded"] == 1
