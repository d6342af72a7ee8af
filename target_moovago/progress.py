"""Progress while writing: one log line per stream at least every 30 s and every N requests."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from target_moovago.ledger import Ledger, StreamCounts

EVERY_SECONDS = 30.0
EVERY_REQUESTS = 10


@dataclass(eq=False)
class Tally:
    """Rows of one stream: received so far, and settled from the first on (STATE needs it)."""

    stream: str
    received: int = 0
    settled: int = 0


def settled_rows(counts: StreamCounts) -> int:
    """Every row ends in exactly one counter."""
    return (
        counts.created
        + counts.updated
        + counts.unchanged
        + counts.deleted
        + counts.rejected
        + counts.superseded
        + counts.skipped_deletes
    )


def duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Progress:
    """Logs where a stream stands after a mutation request, when the last line is
    `every_seconds` old or `every_requests` requests ago."""

    def __init__(
        self,
        ledger: Ledger,
        requests: Callable[[], int],
        logger: logging.Logger,
        *,
        clock: Callable[[], float] = time.monotonic,
        every_seconds: float = EVERY_SECONDS,
        every_requests: int = EVERY_REQUESTS,
    ) -> None:
        self.ledger = ledger
        self.requests = requests
        self.logger = logger
        self.clock = clock
        self.every_seconds = every_seconds
        self.every_requests = every_requests
        self.tallies: dict[str, Tally] = {}
        self._started: dict[str, float] = {}
        self._last = clock()
        self._since_last = 0

    def tally(self, stream: str) -> Tally:
        """The stream's tally (a new one per sink: the SDK may open a stream again)."""
        tally = Tally(stream)
        self.tallies[stream] = tally
        self._started.setdefault(stream, self.clock())
        return tally

    def request_done(self, stream: str) -> None:
        self._since_last += 1
        now = self.clock()
        if self._since_last >= self.every_requests or now - self._last >= self.every_seconds:
            self._last = now
            self._since_last = 0
            self.logger.info("%s", self.line(stream, now))

    def line(self, stream: str, now: float) -> str:
        counts = self.ledger.counts(stream)
        settled = settled_rows(counts)
        tally = self.tallies.get(stream)
        received = max(tally.received if tally else 0, settled)
        elapsed = now - self._started.get(stream, now)
        rate = settled / elapsed if elapsed > 0 else 0.0
        left = received - settled
        if not left:
            eta = "no row left to write"
        elif rate:
            eta = f"about {duration(left / rate)} left at {rate:.1f} rows/s"
        else:
            eta = "time left unknown yet"
        return (
            f"Progress {stream}: {settled} of {received} rows read settled (created "
            f"{counts.created}, updated {counts.updated}, unchanged {counts.unchanged}, "
            f"rejected {counts.rejected}); {self.requests()} requests; {eta}"
        )
