"""Rolling-window request counting: the 429 rule and the peak-rate statistic."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class RollingLimiter:
    """At most `limit` accepted requests per key in any rolling `window` seconds (0 = off)."""

    def __init__(
        self, limit: int, *, window: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}

    def acquire(self, key: str) -> float | None:
        """None when the request may go; else the seconds until a slot frees up."""
        if self.limit <= 0:
            return None
        now = self.clock()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return max(hits[0] + self.window - now, 0.0)
        hits.append(now)
        return None

    def reset(self) -> None:
        self._hits.clear()


class PeakMeter:
    """Highest number of events seen in any rolling window.

    The busiest window can always be slid to end on an event, so checking at each event is
    enough.
    """

    def __init__(self, *, window: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self.peak = 0
        self._times: deque[float] = deque()

    def hit(self) -> None:
        now = self.clock()
        times = self._times
        while times and times[0] <= now - self.window:
            times.popleft()
        times.append(now)
        self.peak = max(self.peak, len(times))
