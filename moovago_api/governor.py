"""How fast and when the connectors may call Moovago.

Moovago answers 429 above 5 requests per second and asks for bulk jobs outside French business
hours. `RateGovernor` keeps every request of the process inside a rolling window; `bulk_window`
says whether a bulk job may run now.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from moovago_api.errors import ConfigError

__all__ = [
    "BUSINESS_HOURS",
    "MAX_REQUESTS_IN_FLIGHT",
    "MAX_REQUESTS_PER_SECOND",
    "BulkWindow",
    "RateGovernor",
    "bulk_window",
    "check_rate",
    "default_in_flight",
    "max_in_any_window",
    "shared_governor",
]

# Moovago's documented server limit; above it every extra request is a 429.
MAX_REQUESTS_PER_SECOND = 5
#: Most requests one client keeps in flight (`max_requests_in_flight`).
MAX_REQUESTS_IN_FLIGHT = 16
#: Answers may take this long and the rate is still used in full by the default window.
IN_FLIGHT_LATENCY_COVERED = 2.0
_SEND_TIMES_KEPT = 10_000
# The server counts arrivals, not our send times: network and scheduling jitter can pull a sixth
# arrival into the server's second, so the shared governor spaces its windows a little wider.
ARRIVAL_MARGIN = 0.04


class RateGovernor:
    """Never more than N sends in any rolling window, across all threads that share it.

    N is `max_per_second * window` rounded down; a rate below one per window becomes one send
    per `window / max_per_second` seconds. A 429 pauses everyone through `pause_until`.
    `margin` widens each window by that many seconds, a cushion against arrival jitter.
    """

    def __init__(
        self,
        max_per_second: float,
        *,
        window: float = 1.0,
        margin: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if window <= 0:
            raise ValueError("window must be positive")
        self._clock = clock
        self._sleep = sleep
        self._base_window = window
        self._margin = margin
        self._lock = threading.Lock()
        self._paused_until = -math.inf
        self._history: deque[float] = deque(maxlen=_SEND_TIMES_KEPT)
        self._configure(max_per_second)

    def _configure(self, max_per_second: float) -> None:
        if not max_per_second > 0 or math.isinf(max_per_second):
            raise ValueError(f"max_per_second must be a positive number, got {max_per_second!r}")
        self.max_per_second = float(max_per_second)
        per_window = max_per_second * self._base_window
        if per_window >= 1:
            self.limit = math.floor(per_window + 1e-9)
            self.window = self._base_window
        else:
            self.limit = 1
            self.window = 1 / max_per_second
        recent = list(getattr(self, "_recent", ()))[-self.limit :]
        self._recent: deque[float] = deque(recent, maxlen=self.limit)

    def now(self) -> float:
        """The governor's clock, the time base of `acquire` and `pause_until`."""
        return self._clock()

    def acquire(self, stop: threading.Event | None = None) -> float | None:
        """Wait for a free slot, record it as a send and return its time.

        With `stop`, the wait ends early once it is set: None is returned and no slot is taken.
        """
        while True:
            if stop is not None and stop.is_set():
                return None
            with self._lock:
                now = self._clock()
                ready = self._paused_until
                if len(self._recent) == self.limit:
                    ready = max(ready, self._recent[0] + self.window + self._margin)
                if ready <= now:
                    self._recent.append(now)
                    self._history.append(now)
                    return now
            # Sleep outside the lock so pause_until and other threads never block on a sleeper.
            if self._sleep is not None:  # an injected clock's sleep: `stop` is checked after it
                self._sleep(ready - now)
            elif stop is None:
                time.sleep(ready - now)
            elif stop.wait(ready - now):
                return None

    def sent(self, slot: float) -> None:
        """The send granted at `slot` left only now (a new connection, a TLS handshake): count
        it from now, so a send that left late cannot bunch up with the next window's."""
        with self._lock:
            now = self._clock()
            if now <= slot:
                return
            for times in (self._recent, self._history):
                for i in range(len(times) - 1, -1, -1):  # a recent slot: found near the end
                    if times[i] == slot:
                        del times[i]
                        times.append(now)  # the latest time of all: the order stays sorted
                        break

    def pause_until(self, t: float) -> None:
        """Nobody sends before `t` (governor clock), e.g. after a 429 with Retry-After."""
        with self._lock:
            self._paused_until = max(self._paused_until, t)

    def lower_rate(self, max_per_second: float) -> None:
        """Use `max_per_second` if it is lower than the current rate; never raises the rate."""
        with self._lock:
            if max_per_second < self.max_per_second:
                self._configure(max_per_second)

    @property
    def send_times(self) -> list[float]:
        """The recorded send times (the last 10,000), oldest first."""
        with self._lock:
            return list(self._history)

    def __repr__(self) -> str:
        return f"RateGovernor(limit={self.limit}, window={self.window})"


def default_in_flight(max_requests_per_second: float) -> int:
    """Requests kept in flight when `max_requests_in_flight` is unset: enough to use every slot
    of the rate while answers take up to 2 s (at least 2, at most 16)."""
    wanted = math.ceil(max_requests_per_second * IN_FLIGHT_LATENCY_COVERED - 1e-9)
    return max(2, min(MAX_REQUESTS_IN_FLIGHT, wanted))


def check_rate(max_requests_per_second: object) -> float:
    """The rate as a float; ConfigError unless 0 < rate <= 5."""
    rate = max_requests_per_second
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
        raise ConfigError(f"max_requests_per_second must be a number above 0, got {rate!r}.")
    if rate > MAX_REQUESTS_PER_SECOND:
        raise ConfigError(
            "max_requests_per_second must be at most 5 "
            "(Moovago answers 429 above 5 requests per second)."
        )
    return float(rate)


_shared: dict[str, RateGovernor] = {}
_shared_lock = threading.Lock()


def shared_governor(api_url: str, max_per_second: float) -> RateGovernor:
    """The one governor of `api_url` in this process; the lowest rate ever requested wins."""
    key = api_url.strip().rstrip("/").lower()
    with _shared_lock:
        governor = _shared.get(key)
        if governor is None:
            governor = _shared[key] = RateGovernor(max_per_second, margin=ARRIVAL_MARGIN)
        else:
            governor.lower_rate(max_per_second)
        return governor


def max_in_any_window(times: Iterable[float], window: float = 1.0) -> int:
    """The most sends found in any half-open window [t, t + window) of `times`."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


# -- business hours --------------------------------------------------------------------------

PARIS = ZoneInfo("Europe/Paris")


@dataclass(frozen=True)
class BusinessHours:
    """Days and local hours during which Moovago asks that no bulk job runs on production."""

    zone: ZoneInfo
    weekdays: frozenset[int]  # Monday is 0
    start: tuple[int, int]
    end: tuple[int, int]


BUSINESS_HOURS = BusinessHours(PARIS, frozenset(range(5)), (8, 0), (18, 30))


@dataclass(frozen=True)
class BulkWindow:
    """Whether a bulk job may run at a given instant.

    allowed    False inside business hours
    opens_at   when bulk jobs may run again (end of today's business hours), None when allowed
    closes_at  when the next business hours begin, None when not allowed
    """

    allowed: bool
    opens_at: datetime | None
    closes_at: datetime | None = None


def bulk_window(now: datetime | None = None, hours: BusinessHours = BUSINESS_HOURS) -> BulkWindow:
    """Monday-Friday 08:00-18:30 Europe/Paris is closed to bulk jobs; a naive `now` is UTC."""
    if now is None:
        now = datetime.now(timezone.utc)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    local = now.astimezone(hours.zone)
    start = _at(local, hours.start)
    end = _at(local, hours.end)
    if local.weekday() in hours.weekdays and start <= local < end:
        return BulkWindow(allowed=False, opens_at=end)
    day = local if local < start else local + timedelta(days=1)
    for _ in range(7):
        if day.weekday() in hours.weekdays:
            return BulkWindow(allowed=True, opens_at=None, closes_at=_at(day, hours.start))
        day += timedelta(days=1)
    return BulkWindow(allowed=True, opens_at=None)


def _at(day: datetime, hour_minute: tuple[int, int]) -> datetime:
    """That calendar day at that local wall time (re-resolving the UTC offset for DST)."""
    naive = datetime(day.year, day.month, day.day, *hour_minute)
    return naive.replace(tzinfo=day.tzinfo)
