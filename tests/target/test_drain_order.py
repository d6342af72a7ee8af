"""One drain thread: the target drains a parent stream's pending rows before a child's batch,
never from inside the child's drain."""

from __future__ import annotations

import pytest

from target_moovago import sinks
from tests.target.helpers import record_messages, schema_message


@pytest.fixture
def box(sandbox_factory):
    return sandbox_factory(companies=1)


@pytest.fixture
def drains(monkeypatch):
    """(event, stream) of every drain, in order."""
    events: list[tuple[str, str]] = []
    start, done = sinks.MoovagoSink.start_drain, sinks.MoovagoSink.mark_drained

    def start_drain(self):
        events.append(("start", self.stream_name))
        return start(self)

    def mark_drained(self):
        done(self)
        events.append(("end", self.stream_name))

    monkeypatch.setattr(sinks.MoovagoSink, "start_drain", start_drain)
    monkeypatch.setattr(sinks.MoovagoSink, "mark_drained", mark_drained)
    return events


def contacts(code, n):
    return [
        {"companyCustomerCode": code, "lastName": f"Child {i}", "email": f"{code}-{i}@x.test"}
        for i in range(n)
    ]


def test_a_full_child_batch_drains_its_pending_parent_first_not_inside(box, run_target, drains):
    messages = [
        schema_message("company", ["customerCode", "name"]),
        schema_message("contact", ["companyCustomerCode", "lastName", "email"]),
        *record_messages("company", [{"customerCode": "PF-1", "name": "Parent"}]),
        *record_messages("contact", contacts("PF-1", 3)),  # full at 3: drained mid-input
    ]
    result = run_target(box, messages, batch_size_rows=3)
    assert result.rejects == []
    assert result.counts("contact")["created"] == 3
    assert drains == [
        ("start", "company"),
        ("end", "company"),
        ("start", "contact"),
        ("end", "contact"),
    ]


def test_the_final_drain_takes_parents_before_children_whatever_the_input_order(
    box, run_target, drains
):
    messages = [
        schema_message("contact", ["companyCustomerCode", "lastName", "email"]),
        schema_message("company", ["customerCode", "name"]),
        *record_messages("contact", contacts("PF-2", 2)),
        *record_messages("company", [{"customerCode": "PF-2", "name": "Parent"}]),
    ]
    result = run_target(box, messages)
    assert result.rejects == []
    assert result.counts("contact")["created"] == 2
    assert [stream for event, stream in drains if event == "start"] == ["company", "contact"]
