"""The business-hours gate holds planned batches in arrival order and releases them as planned:
each row is mapped and planned once, however long it was held."""

from __future__ import annotations

import datetime as dt
import logging
from zoneinfo import ZoneInfo

import pytest

from target_moovago.decide import Decider
from target_moovago.index import FieldMapper
from target_moovago.ledger import BusinessHoursError
from target_moovago.runlock import BulkGate
from tests.target.helpers import mutation_count, stream_messages
from tests.target.test_batching import loosened_schema

PARIS = ZoneInfo("Europe/Paris")
MONDAY_10 = dt.datetime(2026, 11, 30, 10, 0, tzinfo=PARIS)
SATURDAY_10 = dt.datetime(2026, 11, 28, 10, 0, tzinfo=PARIS)


class Writer:
    def __init__(self, name, log):
        self.name, self.log = name, log

    def write(self, actions):
        self.log.append((self.name, list(actions)))


def gate(at=MONDAY_10, policy="refuse", threshold=4, slept=None):
    return BulkGate(
        production=True,
        policy=policy,
        threshold=threshold,
        clock=lambda: at,
        sleep=(slept.append if slept is not None else lambda _s: None),
        logger=logging.getLogger("test"),
    )


def test_batches_are_held_then_released_in_arrival_order_once_decided():
    log, slept = [], []
    g = gate(policy="wait", slept=slept)
    a, b = Writer("a", log), Writer("b", log)
    g.admit(a.write, [1, 2])
    g.admit(b.write, [3])
    g.admit(a.write, [4])
    assert log == []
    assert g.holding
    g.admit(b.write, [5])  # 5 writes > 4: decided (wait), then everything goes in arrival order
    assert len(slept) == 1
    assert log == [("a", [1, 2]), ("b", [3]), ("a", [4]), ("b", [5])]
    assert not g.holding
    g.admit(a.write, [6])  # decided: written at once, never counted again
    assert log[-1] == ("a", [6])
    assert len(slept) == 1


def test_refuse_raises_before_any_write_naming_the_writes():
    log = []
    g = gate()
    g.admit(Writer("a", log).write, [1, 2, 3])
    with pytest.raises(BusinessHoursError, match="5 rows to write"):
        g.admit(Writer("b", log).write, [4, 5])
    assert log == []
    assert g.holding  # nothing held may be covered by a STATE


def test_at_the_end_of_input_the_whole_run_is_counted_before_deciding():
    log = []
    g = gate()
    g.hold_until_end()
    g.admit(Writer("a", log).write, [1, 2, 3])
    g.admit(Writer("b", log).write, [4, 5])  # over the threshold, but the other streams may follow
    g.admit(Writer("c", log).write, [6])
    with pytest.raises(BusinessHoursError, match="6 rows to write"):
        g.end_of_input()
    assert log == []


def test_a_run_under_the_threshold_is_released_at_the_end_of_input():
    log = []
    g = gate()
    g.admit(Writer("a", log).write, [1, 2])
    g.end_of_input()
    assert log == [("a", [1, 2])]


@pytest.mark.parametrize(
    ("production", "policy", "at"),
    [(False, "refuse", MONDAY_10), (True, "ignore", MONDAY_10), (True, "refuse", SATURDAY_10)],
)
def test_nothing_is_held_when_the_rule_cannot_apply(production, policy, at):
    log = []
    g = BulkGate(
        production=production,
        policy=policy,
        threshold=0,
        clock=lambda: at,
        sleep=lambda _s: None,
        logger=logging.getLogger("test"),
    )
    g.admit(Writer("a", log).write, [1])  # over threshold 0: decided at once, and allowed
    assert log == [("a", [1])]
    assert not g.holding


@pytest.fixture
def box(sandbox_factory):
    return sandbox_factory(companies=2)


def test_held_rows_are_mapped_and_planned_once(box, run_target, monkeypatch):
    mapped, planned = [], []
    convert, decide = FieldMapper.convert, Decider.decide

    def counting_convert(self, record):
        mapped.append(record.get("customerCode"))
        return convert(self, record)

    def counting_decide(self, rows):
        planned.extend(r.record.get("customerCode") for r in rows)
        return decide(self, rows)

    monkeypatch.setattr(FieldMapper, "convert", counting_convert)
    monkeypatch.setattr(Decider, "decide", counting_decide)
    codes = [f"ONCE-{i}" for i in range(5)]
    messages = stream_messages("company", [{"customerCode": c, "name": c} for c in codes])
    slept = []
    result = run_target(
        box,
        messages,
        bulk_threshold=3,
        batch_size_rows=2,
        business_hours="wait",
        target_kwargs={"clock": lambda: MONDAY_10, "production": True, "sleep": slept.append},
    )
    assert len(slept) == 1
    assert result.counts("company")["created"] == 5
    assert mutation_count(box) == 5
    assert sorted(mapped) == codes
    assert sorted(planned) == codes


def test_a_held_row_naming_a_held_create_that_is_refused_is_rejected_not_sent(
    box, run_target, tmp_path
):
    company = {"customerCode": "REF-1", "name": "Refused", "status": "FRIEND"}  # server refuses
    contact = {"companyCustomerCode": "REF-1", "lastName": "Orphan", "email": "o@x.test"}
    messages = [*stream_messages("company", [company]), *stream_messages("contact", [contact])]
    result = run_target(
        box,
        messages,
        schema_path=str(loosened_schema(tmp_path)),
        bulk_threshold=10,
        target_kwargs={"clock": lambda: MONDAY_10, "production": True},
    )
    assert mutation_count(box) == 0
    by_stream = {r["stream"]: r for r in result.rejects}
    assert by_stream["company"]["reason"].startswith("create refused")
    assert by_stream["contact"]["reason"] == (
        "create not sent: it names pending-company-1, a planned create that was refused"
    )
    assert result.summary["failed"] is False


def test_a_new_sink_of_a_stream_keeps_the_held_creates_of_the_old_one(box, run_target):
    # A second SCHEMA with more columns opens a new sink whose index tracks more fields: the
    # index is read again, and the create still held under a pending id is not planned twice.
    first = stream_messages("company", [{"customerCode": "NEW-1", "name": "First"}])
    again = stream_messages(
        "company", [{"customerCode": "NEW-1", "name": "First", "city": "Niort"}]
    )
    result = run_target(
        box,
        [*first, *again],
        bulk_threshold=10,
        target_kwargs={"clock": lambda: MONDAY_10, "production": True},
    )
    assert result.counts("company")["created"] == 1
    assert result.counts("company")["updated"] == 1
    stored = [c for c in box.export()["company"] if c.get("customerCode") == "NEW-1"]
    assert [(c["name"], c["city"]) for c in stored] == [("First", "Niort")]
