"""moovago_api.governor: rolling-window rate governor and the bulk-job window."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moovago_api.governor import (
    BulkWindow,
    RateGovernor,
    bulk_window,
    shared_governor,
)
from tests.unit.stub_server import busiest_window

PARIS = ZoneInfo("Europe/Paris")
UTC = timezone.utc


class FakeClock:
    """A clock that only moves when someone sleeps: deterministic send times."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()  # sleepers on several threads never lose a step

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


def test_twenty_requests_at_five_per_second_fake_clock():
    clock = FakeClock()
    governor = RateGovernor(5, clock=clock, sleep=clock.sleep)
    returned = [governor.acquire() for _ in range(20)]
    times = governor.send_times
    assert times == returned
    assert len(times) == 20
    assert busiest_window(times) == 5
    # And it does not dawdle: 20 sends at 5 per second fill four windows, three seconds apart.
    assert times[-1] - times[0] == pytest.approx(3.0)


def _arrivals(margin: float) -> list[float]:
    """Send 20 at 5/s; the fifth request of the first second reaches the server 40 ms late."""
    clock = FakeClock()
    governor = RateGovernor(5, margin=margin, clock=clock, sleep=clock.sleep)
    times = [governor.acquire() for _ in range(20)]
    times[4] += 0.04
    return sorted(times)


def test_margin_keeps_arrivals_inside_the_limit_despite_jitter():
    # Without a margin, one late arrival makes six in the server's rolling second...
    assert busiest_window(_arrivals(0.0)) == 6
    # ...with the shared governor's margin it does not, at a cost of 4% of the bound.
    with_margin = _arrivals(0.04)
    assert busiest_window(with_margin) == 5
    assert with_margin[-1] - with_margin[0] == pytest.approx(3 * 1.04)


def test_twenty_requests_at_five_per_second_from_four_threads():
    clock = FakeClock()  # each thread's waits move it: the windows are the governor's own
    governor = RateGovernor(5, clock=clock, sleep=clock.sleep)
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        for _ in range(5):
            governor.acquire()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    times = governor.send_times
    assert len(times) == 20
    assert busiest_window(times) <= 5


def test_pause_until_holds_every_sender_back():
    clock = FakeClock()
    governor = RateGovernor(5, clock=clock, sleep=clock.sleep)
    first = governor.acquire()
    governor.pause_until(first + 2.5)
    second = governor.acquire()
    assert second >= first + 2.5
    # An earlier pause never shortens a later one.
    governor.pause_until(second + 1.0)
    governor.pause_until(second + 0.2)
    assert governor.acquire() >= second + 1.0


def test_pause_from_another_thread_does_not_wait_for_a_sleeper():
    clock = FakeClock()
    asleep, wake = threading.Event(), threading.Event()

    def sleep(seconds: float) -> None:  # a sleeper that wakes only when told
        asleep.set()
        wake.wait(30)
        clock.sleep(seconds)

    governor = RateGovernor(1, clock=clock, sleep=sleep)
    governor.acquire()
    sleeper = threading.Thread(target=governor.acquire)
    sleeper.start()
    assert asleep.wait(30)  # the sleeper now waits a second for the next slot
    pauser = threading.Thread(target=governor.pause_until, args=(clock.now + 1.2,))
    pauser.start()
    pauser.join(30)
    assert not pauser.is_alive(), "pause_until waited for the sleeping thread"
    wake.set()
    sleeper.join(30)
    times = governor.send_times
    assert len(times) == 2
    assert times[1] == pytest.approx(1000.0 + 1.2)  # the pause held the sleeper back too


@pytest.mark.parametrize(
    ("rate", "limit", "window"),
    [(5, 5, 1.0), (4, 4, 1.0), (1, 1, 1.0), (2.5, 2, 1.0), (0.5, 1, 2.0), (0.25, 1, 4.0)],
)
def test_fractional_rates_round_down(rate, limit, window):
    clock = FakeClock()
    governor = RateGovernor(rate, clock=clock, sleep=clock.sleep)
    assert (governor.limit, governor.window) == (limit, window)
    for _ in range(12):
        governor.acquire()
    assert busiest_window(governor.send_times, window) <= limit
    # Average rate never exceeds what was asked for.
    times = governor.send_times
    assert (len(times) - limit) / (times[-1] - times[0]) <= rate + 1e-9


@pytest.mark.parametrize("rate", [0, -1, float("nan"), float("inf")])
def test_bad_rates_are_refused(rate):
    with pytest.raises(ValueError, match="max_per_second"):
        RateGovernor(rate)


def test_shared_governor_is_one_per_url_and_lowest_rate_wins():
    url = "https://api.example.test/graphql-shared-1"
    first = shared_governor(url, 4)
    assert shared_governor(url + "/", 5) is first
    assert first.limit == 4
    assert shared_governor(url, 1) is first
    assert first.limit == 1
    assert shared_governor(url, 4).limit == 1
    assert shared_governor("https://api.example.test/other", 4) is not first


def test_lower_rate_keeps_the_recent_sends():
    clock = FakeClock()
    governor = RateGovernor(5, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        governor.acquire()
    governor.lower_rate(2)
    before = clock.now
    governor.acquire()
    assert clock.now == pytest.approx(before + 1.0)
    assert busiest_window(governor.send_times[-3:]) <= 2


# -- bulk window -----------------------------------------------------------------------------


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)


@pytest.mark.parametrize(
    ("now", "allowed"),
    [
        (paris(2026, 11, 30, 7, 59, 59), True),  # Monday, just before
        (paris(2026, 11, 30, 8, 0), False),  # Monday 08:00 sharp
        (paris(2026, 11, 30, 12, 0), False),
        (paris(2026, 12, 4, 18, 29, 59), False),  # Friday, last second
        (paris(2026, 12, 4, 18, 30), True),  # Friday 18:30 sharp
        (paris(2026, 12, 5, 12, 0), True),  # Saturday noon
        (paris(2026, 12, 6, 12, 0), True),  # Sunday noon
        (paris(2026, 12, 1, 23, 0), True),  # Tuesday night
    ],
)
def test_bulk_window_business_hours(now, allowed):
    assert bulk_window(now).allowed is allowed


def test_bulk_window_inside_hours_says_when_it_opens():
    window = bulk_window(paris(2026, 12, 2, 9, 15))
    assert window == BulkWindow(allowed=False, opens_at=paris(2026, 12, 2, 18, 30))


def test_bulk_window_outside_hours_says_when_it_closes():
    # Friday evening: open until Monday 08:00.
    window = bulk_window(paris(2026, 12, 4, 19, 0))
    assert window.allowed
    assert window.opens_at is None
    assert window.closes_at == paris(2026, 12, 7, 8, 0)
    # Early Monday: closes the same morning.
    assert bulk_window(paris(2026, 12, 7, 6, 0)).closes_at == paris(2026, 12, 7, 8, 0)


def test_bulk_window_converts_other_zones_and_naive_utc():
    # 07:30 UTC on a winter Monday is 08:30 in Paris (UTC+1).
    monday = datetime(2026, 11, 30, 7, 30, tzinfo=UTC)
    assert not bulk_window(monday).allowed
    assert not bulk_window(monday.replace(tzinfo=None)).allowed
    assert bulk_window(datetime(2026, 11, 30, 6, 30, tzinfo=UTC)).allowed
    new_york = datetime(2026, 11, 30, 2, 30, tzinfo=ZoneInfo("America/New_York"))
    assert not bulk_window(new_york).allowed  # 08:30 in Paris


def test_bulk_window_follows_daylight_saving_time():
    # Spring forward on Sunday 2026-03-29: 06:30 UTC is 07:30 in Paris the Monday before,
    # 08:30 the Monday after.
    assert bulk_window(datetime(2026, 3, 23, 6, 30, tzinfo=UTC)).allowed
    assert not bulk_window(datetime(2026, 3, 30, 6, 30, tzinfo=UTC)).allowed
    # Fall back on Sunday 2026-10-25: 17:00 UTC is 19:00 in Paris before, 18:00 after.
    assert bulk_window(datetime(2026, 10, 23, 17, 0, tzinfo=UTC)).allowed
    inside = bulk_window(datetime(2026, 10, 26, 17, 0, tzinfo=UTC))
    assert not inside.allowed
    assert inside.opens_at is not None
    assert inside.opens_at.astimezone(UTC) == datetime(2026, 10, 26, 17, 30, tzinfo=UTC)
    # The weekend of each change is open throughout, including the hour that is skipped.
    assert bulk_window(datetime(2026, 3, 29, 1, 30, tzinfo=UTC)).allowed
    assert bulk_window(datetime(2026, 10, 25, 0, 30, tzinfo=UTC)).allowed
    # Friday before spring forward: the next close is Monday 08:00 CEST, i.e. 06:00 UTC.
    friday = bulk_window(datetime(2026, 3, 27, 18, 0, tzinfo=UTC))
    assert friday.closes_at is not None
    assert friday.closes_at.astimezone(UTC) == datetime(2026, 3, 30, 6, 0, tzinfo=UTC)


def test_bulk_window_defaults_to_now():
    def closed_now() -> bool:
        now = datetime.now(PARIS)
        return now.weekday() < 5 and (8, 0) <= (now.hour, now.minute) < (18, 30)

    before = closed_now()
    window = bulk_window()
    if closed_now() == before:  # not straddling an edge of business hours
        assert window.allowed is not before


@settings(max_examples=200, deadline=None)
@given(
    rate=st.sampled_from([0.5, 1, 2, 3.5, 4, 5]),
    steps=st.lists(
        st.tuples(st.floats(0, 1.5), st.one_of(st.none(), st.floats(0, 3))), max_size=40
    ),
)
def test_no_window_ever_holds_more_than_the_limit(rate, steps):
    clock = FakeClock()
    governor = RateGovernor(rate, clock=clock, sleep=clock.sleep)
    pauses: list[float] = []
    for idle, pause in steps:
        clock.now += idle
        if pause is not None:
            governor.pause_until(clock.now + pause)
            pauses.append(clock.now + pause)
        sent = governor.acquire()
        assert all(sent >= p for p in pauses)
    times = governor.send_times
    if times:
        assert busiest_window(times, governor.window) <= governor.limit


def test_a_send_that_left_late_is_counted_from_when_it_left():
    clock = FakeClock()
    governor = RateGovernor(5, clock=clock, sleep=clock.sleep)
    slots = [governor.acquire() for _ in range(5)]
    clock.now += 0.5  # the first request's connection took half a second to open
    governor.sent(slots[0])
    later = [governor.acquire() for _ in range(5)]
    times = governor.send_times
    assert 1000.5 in times
    assert busiest_window(times) == 5
    # Four slots free at 1001.0; the fifth only a window after the late send.
    assert later[:4] == [1001.0] * 4
    assert later[4] == pytest.approx(1001.5)
    governor.sent(later[0] - 10)  # an unknown or earlier slot changes nothing
    assert governor.send_times == times
