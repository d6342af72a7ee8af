"""Bulk jobs on production follow `business_hours` (frozen clock, production flag injected)."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import pytest

from target_moovago.ledger import BusinessHoursError
from target_moovago.target import TargetMoovago
from tests.target import helpers
from tests.target.helpers import entity_rows, mutation_count, record_messages, stream_messages

PARIS = ZoneInfo("Europe/Paris")
MONDAY_10 = dt.datetime(2026, 11, 30, 10, 0, tzinfo=PARIS)
SATURDAY_10 = dt.datetime(2026, 11, 28, 10, 0, tzinfo=PARIS)
MONDAY_CLOSE = dt.datetime(2026, 11, 30, 18, 30, tzinfo=PARIS)


@pytest.fixture
def box(sandbox_factory):
    return sandbox_factory(companies=2)


def rows(n, prefix="BH"):
    return stream_messages(
        "company", [{"customerCode": f"{prefix}-{i}", "name": f"Bulk {i}"} for i in range(n)]
    )


def frozen(at):
    return {"clock": lambda: at, "production": True}


def test_refuse_stops_before_any_write_and_says_when_the_window_opens(box, run_target):
    result = run_target(
        box, rows(4), raises=False, bulk_threshold=3, target_kwargs=frozen(MONDAY_10)
    )
    assert isinstance(result.error, BusinessHoursError)
    assert "2026-11-30T18:30:00+01:00" in str(result.error)
    assert mutation_count(box) == 0


def test_wait_sleeps_until_the_window_opens_then_writes(box, run_target):
    slept = []
    kwargs = {**frozen(MONDAY_10), "sleep": slept.append}
    result = run_target(box, rows(4), bulk_threshold=3, business_hours="wait", target_kwargs=kwargs)
    assert slept == [(MONDAY_CLOSE - MONDAY_10).total_seconds()]
    assert result.counts("company")["created"] == 4


def test_ignore_writes_at_once(box, run_target):
    result = run_target(
        box, rows(4), bulk_threshold=3, business_hours="ignore", target_kwargs=frozen(MONDAY_10)
    )
    assert result.counts("company")["created"] == 4


@pytest.mark.parametrize(
    ("when", "production", "count"),
    [
        (SATURDAY_10, True, 4),  # outside business hours
        (MONDAY_10, True, 3),  # not more than bulk_threshold
        (MONDAY_10, None, 4),  # loopback URL: not production
    ],
)
def test_the_rule_only_applies_to_bulk_production_runs_in_business_hours(
    box, run_target, when, production, count
):
    kwargs = {"clock": lambda: when, "production": production}
    result = run_target(box, rows(count), bulk_threshold=3, target_kwargs=kwargs)
    assert result.counts("company")["created"] == count


def test_unchanged_rows_do_not_count_as_writes(box, run_target):
    run_target(box, rows(4))
    again = run_target(box, rows(4), bulk_threshold=3, target_kwargs=frozen(MONDAY_10))
    assert again.counts("company")["unchanged"] == 4


def test_streams_drained_in_parallel_are_counted_together_before_any_write(box, run_target):
    messages = [
        *rows(3, "PAR"),
        *stream_messages("mandator", [{"code": f"BM-{i}", "name": f"M {i}"} for i in range(3)]),
    ]
    result = run_target(
        box, messages, raises=False, bulk_threshold=4, target_kwargs=frozen(MONDAY_10)
    )
    assert isinstance(result.error, BusinessHoursError)
    assert "6 rows to write" in str(result.error)
    assert mutation_count(box) == 0
    assert result.summary["failed"] is True


def test_wait_applies_once_to_the_whole_run(box, run_target):
    slept = []
    messages = [
        *rows(3, "WAIT"),
        *stream_messages("mandator", [{"code": f"WM-{i}", "name": f"M {i}"} for i in range(3)]),
    ]
    kwargs = {**frozen(MONDAY_10), "sleep": slept.append}
    result = run_target(
        box, messages, bulk_threshold=4, business_hours="wait", target_kwargs=kwargs
    )
    assert len(slept) == 1
    assert result.counts("company")["created"] == 3
    assert result.counts("mandator")["created"] == 3


def mandators(n, prefix="BM"):
    return stream_messages(
        "mandator", [{"code": f"{prefix}-{i}", "name": f"M {i}"} for i in range(n)]
    )


@pytest.mark.parametrize(
    ("threshold", "counted"),
    [(3, 4), (4, 6)],  # crossed by the mandators' first batch; crossed only at end of input
)
def test_batches_drained_mid_run_are_counted_with_the_whole_run_before_any_write(
    box, run_target, threshold, counted
):
    # batch_size_rows 2: each stream drains full batches while the input is still being read.
    result = run_target(
        box,
        [*rows(3, "MID"), *mandators(3, "MID")],
        raises=False,
        bulk_threshold=threshold,
        batch_size_rows=2,
        target_kwargs=frozen(MONDAY_10),
    )
    assert isinstance(result.error, BusinessHoursError)
    assert f"{counted} rows to write" in str(result.error)
    assert mutation_count(box) == 0
    assert result.summary["failed"] is True


def test_wait_mid_run_sleeps_once_before_any_write_then_writes_every_held_row(box, run_target):
    slept = []
    kwargs = {**frozen(MONDAY_10), "sleep": lambda s: slept.append((s, mutation_count(box)))}
    result = run_target(
        box,
        [*rows(3, "MIDW"), *mandators(3, "MIDW")],
        bulk_threshold=3,
        batch_size_rows=2,
        business_hours="wait",
        target_kwargs=kwargs,
    )
    assert slept == [((MONDAY_CLOSE - MONDAY_10).total_seconds(), 0)]
    assert result.counts("company")["created"] == 3
    assert result.counts("mandator")["created"] == 3


def test_a_run_under_the_threshold_writes_its_held_batches_at_the_end(box, run_target):
    run_target(box, rows(2, "SEEN"))
    messages = [*rows(2, "SEEN"), *rows(2, "HELD"), *mandators(2, "HELD")]
    result = run_target(
        box, messages, bulk_threshold=4, batch_size_rows=2, target_kwargs=frozen(MONDAY_10)
    )
    assert result.error is None
    assert result.counts("company")["unchanged"] == 2
    assert result.counts("company")["created"] == 2
    assert result.counts("mandator")["created"] == 2


def test_a_held_row_and_a_later_row_with_its_key_are_written_in_order(box, run_target):
    first = {"customerCode": "ORDER-1", "name": "First"}
    last = {"customerCode": "ORDER-1", "name": "Last"}
    result = run_target(
        box,
        stream_messages("company", [first, {"customerCode": "ORDER-2", "name": "x"}, last]),
        bulk_threshold=4,
        batch_size_rows=2,
        target_kwargs=frozen(MONDAY_10),
    )
    assert result.counts("company")["created"] == 2
    assert result.counts("company")["updated"] == 1
    stored = [c for c in box.export()["company"] if c.get("customerCode") == "ORDER-1"]
    assert [c["name"] for c in stored] == ["Last"]


def test_a_contact_naming_a_held_company_by_its_code_resolves(box, run_target):
    company = {"customerCode": "PARENT-1", "name": "Parent"}
    contact = {"companyCustomerCode": "PARENT-1", "lastName": "Child", "email": "c@example.test"}
    messages = [
        *rows(2, "P"),
        *stream_messages("company", [company]),
        *stream_messages("contact", [contact]),
    ]
    result = run_target(
        box, messages, bulk_threshold=10, batch_size_rows=2, target_kwargs=frozen(MONDAY_10)
    )
    assert result.rejects == []
    assert result.counts("contact")["created"] == 1


class _AgedTarget(TargetMoovago):
    """On each STATE, the records count as older than the SDK's max record age, so the SDK
    drains every sink in parallel threads mid-run (what a production run longer than five
    minutes does)."""

    def _process_state_message(self, message_dict: dict) -> None:
        super()._process_state_message(message_dict)
        self._last_full_drain_at = 0.0
        self._handle_max_record_age()


@pytest.mark.timeout(60)
def test_held_parents_and_children_drained_in_parallel_write_without_a_deadlock(
    box, run_target, monkeypatch
):
    # Two rows of each stream are held (batch_size_rows 2, bulk_threshold 6); then one more
    # row each is drained in parallel: whichever stream takes the hold first crosses the
    # threshold and writes the held turnovers, which need the companies and mandators the
    # other threads are draining at that moment.
    monkeypatch.setattr(helpers, "TargetMoovago", _AgedTarget)
    companies = [{"customerCode": f"DL-C{i}", "name": f"Company {i}"} for i in range(3)]
    mands = [{"code": f"DL-M{i}", "name": f"Mandator {i}"} for i in range(3)]
    turnovers = [
        {
            "companyCustomerCode": f"DL-C{i}",
            "mandator_code": f"DL-M{i}",
            "amount": 10.0 + i,
            "startDate": "2026-10-01",
            "endDate": "2026-10-31",
        }
        for i in range(3)
    ]
    schemas = [
        stream_messages(name, rows)[0]
        for name, rows in (("company", companies), ("mandator", mands), ("turnover", turnovers))
    ]
    messages = [
        *schemas,
        *record_messages("company", companies[:2]),
        *record_messages("mandator", mands[:2]),
        *record_messages("turnover", turnovers[:2]),
        *record_messages("company", companies[2:]),
        *record_messages("mandator", mands[2:]),
        *record_messages("turnover", turnovers[2:]),
        {"type": "STATE", "value": {"bookmarks": {"turnover": {"n": 3}}}},
    ]
    slept = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(0.5)  # the other streams' drains start meanwhile

    result = run_target(
        box,
        messages,
        bulk_threshold=6,
        batch_size_rows=2,
        business_hours="wait",
        target_kwargs={**frozen(MONDAY_10), "sleep": sleep},
    )
    assert slept == [(MONDAY_CLOSE - MONDAY_10).total_seconds()]
    assert result.rejects == []
    for stream in ("company", "mandator", "turnover"):
        assert result.counts(stream)["created"] == 3
    codes = {c["id"]: c.get("customerCode") for c in entity_rows(box, "company")}
    written = [codes.get(t["companyId"]) for t in entity_rows(box, "turnover")]
    assert sorted(c for c in written if c and c.startswith("DL-")) == ["DL-C0", "DL-C1", "DL-C2"]
