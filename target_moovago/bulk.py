"""The business-hours gate: one decision per run, over planned rows held in arrival order.

A run writing more than `bulk_threshold` rows to a production API is a bulk job, and Moovago
asks for none Monday-Friday 08:00-18:30 Paris. Until the run's planned writes cross the
threshold (or the input ends under it) the gate holds every planned batch; when they cross it
the gate decides once (refuse, wait or go) and releases the held batches, in the order they
arrived, exactly as they were planned.
"""

from __future__ import annotations

import datetime as dt
import logging
import typing as t
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from moovago_api.governor import bulk_window
from target_moovago.errors import BusinessHoursError

if t.TYPE_CHECKING:
    from target_moovago.plan import Action

POLICIES = ("refuse", "wait", "ignore")


class Writes(t.Protocol):
    """What the gate releases a batch to (a stream's writer)."""

    def write(self, actions: Sequence[Action]) -> None: ...


@dataclass
class HeldBatch:
    writer: Writes
    actions: Sequence[Action]


class BulkGate:
    """Holds planned write batches while the bulk rule is undecided."""

    def __init__(
        self,
        *,
        production: bool,
        policy: str,
        threshold: int,
        clock: Callable[[], dt.datetime],
        sleep: Callable[[float], None],
        logger: logging.Logger,
    ) -> None:
        self.policy = policy
        self.threshold = threshold
        self.clock = clock
        self.sleep = sleep
        self.logger = logger
        self.decided = not production or policy == "ignore"
        self.writes = 0  # writes of the batches held so far
        self._held: deque[HeldBatch] = deque()
        self._until_end = False  # the input has ended: decide on the whole run only

    @property
    def holding(self) -> bool:
        """Rows are held: no STATE may cover them yet."""
        return bool(self._held)

    def admit(self, writer: Writes, actions: Sequence[Action]) -> None:
        """Write a planned batch now, or hold it until the rule is decided."""
        if self.decided:
            writer.write(actions)
            return
        self._held.append(HeldBatch(writer, actions))
        self.writes += len(actions)
        if not self._until_end and self.writes > self.threshold:
            self._decide()
            self.release()

    def hold_until_end(self) -> None:
        """The final drain plans every stream before the rule is decided on their sum."""
        self._until_end = True

    def end_of_input(self) -> None:
        """Decide on the whole run (nothing to decide under the threshold) and release."""
        if not self.decided and self.writes > self.threshold:
            self._decide()
        self.decided = True
        self.release()

    def release(self) -> None:
        while self._held:
            batch = self._held.popleft()
            batch.writer.write(batch.actions)

    def _decide(self) -> None:
        """Refuse (raise before any write), wait until the window opens, or go."""
        window = bulk_window(self.clock())
        if window.allowed:
            self.decided = True
            return
        opens = window.opens_at.isoformat() if window.opens_at else "later"
        if self.policy == "refuse" or window.opens_at is None:
            msg = (
                f"bulk job refused: {self.writes} rows to write (bulk_threshold="
                f"{self.threshold}) during Moovago's business hours (Mon-Fri 08:00-18:30 "
                f"Europe/Paris); the window opens at {opens}. Set business_hours to 'wait' or "
                "'ignore' to change this."
            )
            raise BusinessHoursError(msg)
        seconds = (window.opens_at - self.clock()).total_seconds()
        self.logger.warning(
            "Bulk job of %d rows during business hours: waiting %.0f s until %s",
            self.writes,
            seconds,
            opens,
        )
        self.sleep(max(0.0, seconds))
        self.decided = True
