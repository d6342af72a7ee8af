"""Several requests of one planned batch in flight, answered in input order.

The chunks of one planned batch are key-disjoint (the planner keeps one action per key), so
their requests may overlap. `send_window` hands them to `client.execute_many`, which alone is
concurrent (the governor still decides when each leaves); this module stays in the drain's one
thread and takes no lock. Each answer goes to the writer's own per-chunk handling, in input
order, so confirmations, rejects, halving and reconciliation happen exactly as with one request
at a time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import typing as t
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass

from moovago_api.errors import MoovagoError
from target_moovago.errors import TargetStopped
from target_moovago.index import PendingId
from target_moovago.plan import Action, Kind
from target_moovago.reconcile import server_clock

if t.TYPE_CHECKING:
    from moovago_api.client import Request
    from moovago_api.mutations import Alias
    from target_moovago.run import Run

#: What one request ended with: its `data`, or the MoovagoError it raised.
Answer = dict[str, t.Any] | MoovagoError


class Sender(t.Protocol):
    """What the window asks of a stream's writer (BatchWriter)."""

    def _resolved(self, chunk: Sequence[Action]) -> list[Action]: ...

    def _request(self, chunk: Sequence[Action]) -> tuple[Request, list[Alias], int]: ...

    def _too_large(
        self, chunk: list[Action], depth: int, rounds: int, size: int, *, refused: bool
    ) -> None: ...

    def _answered(self, sent: Sent, answer: Answer, depth: int = 0, rounds: int = 0) -> None: ...


@dataclass
class Sent:
    """A chunk whose request the client has, awaiting its answer."""

    chunk: list[Action]
    aliases: Sequence[Alias]
    reference: dt.datetime | None  # the server's clock before it left: reconciliation's start
    size: int  # bytes of the request body


def send_window(
    sender: Sender, run: Run, batches: Sequence[list[Action]], depth: int = 0, rounds: int = 0
) -> None:
    """Send the chunks with up to `max_requests_in_flight` requests in flight; hand each answer
    to `sender._answered` in input order (`depth` and `rounds`: of a split or a resend).

    A chunk naming a create not yet confirmed (in flight, or refused) waits until nothing is in
    flight, so the pending id is settled and any refusal lands in order. After a failure or a
    stop no further chunk is sent, and the answers of those in flight are still handled
    (confirmed, refused or reconciled; nothing is resent) before the first failure is raised:
    no request of the batch is in flight once this returns or raises.
    """
    todo = deque(batches)
    sent: deque[Sent] = deque()
    failures: list[Exception] = []
    while todo and not failures:
        run.check_stop()  # nothing is in flight here
        # One retry rule per call: a chunk with creates is never retried blind.
        creates = _has_creates(todo[0])
        answers = run.remote.client.execute_many(
            _requests(sender, run, todo, sent, creates, failures, depth, rounds),
            retry_ambiguous=not creates,
        )
        with contextlib.closing(t.cast("Generator[Answer, None, None]", answers)):
            for answer in answers:
                done = sent.popleft()
                try:
                    sender._answered(done, answer, depth, rounds)
                except Exception as exc:  # noqa: BLE001 - raised below, once nothing is in flight
                    failures.append(exc)
    if failures:
        raise failures[0]


def _requests(
    sender: Sender,
    run: Run,
    todo: deque[list[Action]],
    sent: deque[Sent],
    creates: bool,
    failures: list[Exception],
    depth: int,
    rounds: int,
) -> Iterator[Request]:
    """The requests, taken from `todo` as slots free up, each noted in `sent`; ends at a chunk
    of the other retry rule, one that must wait for the answers in flight, a failure or a stop.
    Nothing here raises while a request is in flight."""
    while todo and not failures and not _stopping(run):
        if sent and _unresolved(run, todo[0]):
            return
        chunk = sender._resolved(todo.popleft())
        if not chunk:
            continue
        if _has_creates(chunk) is not creates:
            todo.appendleft(chunk)  # resolving it again changes nothing
            return
        try:
            request, aliases, size = sender._request(chunk)
        except MoovagoError:
            if not sent:
                raise
            todo.appendleft(chunk)  # raised again once nothing is in flight
            return
        if size > run.request_limit:  # split (by sends of their own) once nothing is in flight
            if sent:
                todo.appendleft(chunk)
                return
            sender._too_large(chunk, depth, rounds, size, refused=False)
            continue
        sent.append(Sent(chunk, aliases, server_clock(run.remote), size))
        yield request


def _has_creates(chunk: Sequence[Action]) -> bool:
    return any(a.kind is Kind.CREATE for a in chunk)


def _unresolved(run: Run, chunk: Sequence[Action]) -> bool:
    """Whether an action names a create not confirmed (in flight, or refused)."""
    for action in chunk:
        named = list(action.data.values())
        if action.kind is not Kind.CREATE:
            named.append(action.record_id)
        for value in named:
            if isinstance(value, PendingId):
                try:
                    run.pending.resolve(value)
                except KeyError:
                    return True
    return False


def _stopping(run: Run) -> bool:
    try:
        run.check_stop()
    except TargetStopped:
        return True
    return False
