"""How fast (Moovago answers 429 above 5 requests/s) and when (bulk jobs outside French
business hours) the connectors may call Moovago."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from moovago_api.errors import ConfigError

MAX_REQUESTS_PER_SECOND = 5  # Moovago's documented limit: above it every request is a 429
MAX_REQUESTS_IN_FLIGHT = 16  # most requests one client keeps in flight
# The server counts arrivals, not our send times: network and scheduling jitter can pull a sixth
# arrival into the server's second, so the shared governor spaces its windows a little wider.
ARRIVAL_MARGIN = 0.04


class RateGovernor:
    """Never more than N sends (the rate rounded down; below 1, one per 1/rate seconds) in
    any rolling second, across all threads; `margin` widens each window against jitter."""

    def __init__(
        self,
        max_per_second: float,
        *,
        margin: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._clock, self._sleep, self._margin = clock, sleep, margin
        self._lock = threading.Lock()
        self._paused_until = -math.inf
        self._sent: deque[float] = deque(maxlen=10_000)  # send times, oldest first
        self.max_per_second = math.inf
        self.lower_rate(max_per_second)

    def lower_rate(self, max_per_second: float) -> None:
        """Use `max_per_second` if it is lower than the current rate; never raises the rate."""
        if not 0 < max_per_second < math.inf:
            raise ValueError(f"max_per_second must be a positive number, got {max_per_second!r}")
        with self._lock:
            if max_per_second < self.max_per_second:
                self.max_per_second = float(max_per_second)
                self.limit = max(1, math.floor(max_per_second + 1e-9))
                self.window = 1.0 if max_per_second >= 1 else 1 / max_per_second

    def now(self) -> float:
        """The governor's clock, the time base of `acquire` and `pause_until`."""
        return self._clock()

    def acquire(self, stop: threading.Event | None = None) -> float | None:
        """Wait for a free slot, record it as a send and return its time; None (no slot taken)
        once `stop` is set."""
        while True:
            if stop is not None and stop.is_set():
                return None
            with self._lock:
                now = self._clock()
                ready = self._paused_until
                if len(self._sent) >= self.limit:
                    ready = max(ready, self._sent[-self.limit] + self.window + self._margin)
                if ready <= now:
                    self._sent.append(now)
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
            for i in range(len(self._sent) - 1, -1, -1):  # a recent slot: found near the end
                if self._sent[i] == slot < now:
                    del self._sent[i]
                    self._sent.append(now)  # the latest time of all: the order stays sorted
                    return

    def pause_until(self, t: float) -> None:
        """Nobody sends before `t` (governor clock), e.g. after a 429 with Retry-After."""
        with self._lock:
            self._paused_until = max(self._paused_until, t)

    @property
    def send_times(self) -> list[float]:
        """The recorded send times (the last 10,000), oldest first."""
        with self._lock:
            return list(self._sent)

    def __repr__(self) -> str:
        return f"RateGovernor(limit={self.limit}, window={self.window})"


def default_in_flight(max_requests_per_second: float) -> int:
    """Requests kept in flight by default: enough to use the rate while answers take up to
    2 s (at least 2, at most 16)."""
    wanted = math.ceil(max_requests_per_second * 2.0 - 1e-9)
    return max(2, min(MAX_REQUESTS_IN_FLIGHT, wanted))


def check_rate(rate: object) -> float:
    """The rate as a float; ConfigError unless 0 < rate <= 5."""
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
        if key not in _shared:
            _shared[key] = RateGovernor(max_per_second, margin=ARRIVAL_MARGIN)
        _shared[key].lower_rate(max_per_second)
        return _shared[key]


PARIS = ZoneInfo("Europe/Paris")
OPENS, CLOSES = (8, 0), (18, 30)  # Monday to Friday, Paris time: no bulk job on production


@dataclass(frozen=True)
class BulkWindow:
    """Whether a bulk job may run: if not, when it may (`opens_at`); if so, until when."""

    allowed: bool
    opens_at: datetime | None
    closes_at: datetime | None = None


def bulk_window(now: datetime | None = None) -> BulkWindow:
    """Monday-Friday 08:00-18:30 Europe/Paris is closed to bulk jobs; a naive `now` is UTC."""
    now = now or datetime.now(timezone.utc)
    local = (now if now.tzinfo else now.replace(tzinfo=timezone.utc)).astimezone(PARIS)
    start, end = _at(local, OPENS), _at(local, CLOSES)
    if local.weekday() < 5 and start <= local < end:
        return BulkWindow(allowed=False, opens_at=end)
    day = local if local < start else local + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return BulkWindow(allowed=True, opens_at=None, closes_at=_at(day, OPENS))


def _at(day: datetime, hour_minute: tuple[int, int]) -> datetime:
    """That calendar day at that local wall time (re-resolving the UTC offset for DST)."""
    return datetime(day.year, day.month, day.day, *hour_minute, tzinfo=day.tzinfo)
