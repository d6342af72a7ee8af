"""Bulk jobs on production follow `business_hours` (frozen clock, production flag injected)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from target_moovago.sinks import BusinessHoursError
from tests.target.helpers import mutation_count, stream_messages

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
