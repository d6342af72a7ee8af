"""Progress while writing: a line at least every 30 s and every N requests (injected clock)."""

from __future__ import annotations

import logging
import re

import pytest

from target_moovago.ledger import Ledger, duration
from tests.target.helpers import stream_messages


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def rejects(tmp_path):
    return tmp_path / "rejects.jsonl"


def progress(rejects, clock, caplog, **kwargs):
    caplog.set_level(logging.INFO, logger="progress-test")
    return Ledger(rejects, logger=logging.getLogger("progress-test"), monotonic=clock, **kwargs)


def lines(caplog):
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("Progress")]


def test_a_line_every_n_requests_with_counts_and_time_left(rejects, caplog):
    clock = Clock()
    report = progress(rejects, clock, caplog, every_requests=3)
    tally = report.tally("company")
    tally.received = 100
    for number in range(1, 7):
        clock.advance(2)  # 2 s per request of 5 rows: 2.5 rows/s
        report.add("company", "created", 4)
        report.add("company", "unchanged", 1)
        report.request_done("company", number)  # the client's requests so far
        assert len(lines(caplog)) == number // 3
    first, second = lines(caplog)
    assert first == (
        "Progress company: 15 of 100 rows read settled (created 12, updated 0, unchanged 3, "
        "rejected 0); 3 requests; about 34s left at 2.5 rows/s"
    )
    assert "30 of 100 rows read settled (created 24" in second
    assert second.endswith("about 28s left at 2.5 rows/s")


def test_a_line_at_least_every_30_seconds(rejects, caplog):
    clock = Clock()
    report = progress(rejects, clock, caplog, every_requests=1000)
    report.tally("company").received = 10
    report.add("company", "created")
    clock.advance(29)
    report.request_done("company", 1)
    assert lines(caplog) == []
    clock.advance(1)
    report.request_done("company", 1)
    (line,) = lines(caplog)
    assert line.startswith("Progress company: 1 of 10 rows read settled")
    clock.advance(31)
    report.request_done("company", 1)
    assert len(lines(caplog)) == 2


def test_nothing_settled_yet_says_so_instead_of_dividing_by_zero(rejects, caplog):
    report = progress(rejects, Clock(), caplog, every_requests=1)
    report.tally("company").received = 5
    report.request_done("company", 1)
    (line,) = lines(caplog)
    assert line.endswith("time left unknown yet")


@pytest.mark.parametrize(
    ("seconds", "text"), [(5, "5s"), (65, "1m05s"), (3725, "1h02m"), (0.4, "0s")]
)
def test_durations_read_as_people_write_them(seconds, text):
    assert duration(seconds) == text


@pytest.fixture
def box(sandbox_factory):
    return sandbox_factory(companies=0)


def test_the_target_logs_progress_while_it_writes(box, run_target, caplog):
    clock = Clock()

    def ticking() -> float:
        clock.advance(31)  # every reading of the clock is 31 s later: a line per request
        return clock.now

    rows = [{"customerCode": f"PRG-{i}", "name": f"Progress {i}"} for i in range(4)]
    with caplog.at_level(logging.INFO):
        result = run_target(
            box,
            stream_messages("company", rows),
            mutations_per_request=1,
            target_kwargs={"monotonic": ticking},
        )
    assert result.counts("company")["created"] == 4
    found = [m for m in (r.getMessage() for r in caplog.records) if m.startswith("Progress")]
    assert len(found) == 4
    pattern = (
        r"Progress company: (\d) of 4 rows read settled \(created \1, updated 0, unchanged 0, "
        r"rejected 0\); (\d+) requests; "
    )
    settled = [int(re.match(pattern, line).group(1)) for line in found]
    assert settled == [1, 2, 3, 4]
    assert found[0].endswith("rows/s")
    assert found[-1].endswith("no row left to write")
