"""Several requests of one planned batch in flight, answered in input order.

The chunks of one planned batch are key-disjoint (the planner keeps one action per key), so
their requests may overlap. `send_window` hands them to `client.execute_many`, which alone is
concurrent (the governor still decides when each leaves); this module stays in the drain's one
thread and takes no lock. Each answer goes to the writer's own per-chunk handling, in input
order, so confirmations, rejects, halving and reconciliation happen exactly as with one request
at a time.

After an ambiguous failure (the request may have been applied): which of its creates landed;
after a kill, which writes of the change log's journal landed.

Records are re-read from the server's clock on (its `Date` header as last seen, else the newest
`updatedAt` read this run, a lower bound of it), minus a margin; never from the local clock,
which may be minutes off the server's. With no server clock at all, every record is read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import typing as t
from collections import deque
from collections.abc import Collection, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from moovago_api.errors import MoovagoError
from moovago_api.wire import format_datetime
from target_moovago.index import KeySpec, PendingId, RemoteIndex
from target_moovago.ledger import TargetStopped
from target_moovago.mapping import comparable
from target_moovago.plan import Action, Kind

if TYPE_CHECKING:
    from moovago_api.client import Request
    from moovago_api.mutations import Alias
    from moovago_api.schema import Entity
    from target_moovago.remote import Remote
    from target_moovago.run import ChangeLog, Run


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


# The Date header's whole seconds and the request's own time; a wider margin only re-reads more.
RECONCILE_MARGIN = dt.timedelta(minutes=5)


def server_clock(remote: Remote) -> dt.datetime | None:
    """The server's time now, as far as this run has seen it; None when it has seen nothing."""
    return remote.client.server_time() or remote.newest_updated_at


def landed_creates(
    remote: Remote,
    entity: Entity,
    index: RemoteIndex,
    key_specs: Sequence[KeySpec],
    creates: Sequence[Action],
    reference: dt.datetime | None,
) -> list[str | None]:
    """For each create, the id of the record it made, or None when it did not land: the
    records created since `reference` (the server's clock before sending) that the index does
    not hold yet, matched by key, else by the same values."""
    fields = list(index.fields)
    extra: dict[str, t.Any] = {}
    if entity.bound_path and reference is not None:  # where the plan puts a lower bound
        extra = entity.filter_value(None, format_datetime(reference - RECONCILE_MARGIN))
    elif entity.bound_path:
        remote.logger.info(
            "%s: no server clock seen (no Date header, no updatedAt read): reconciling by "
            "reading every record",
            entity.stream_name,
        )
    recent = RemoteIndex(fields, key_specs)
    found: dict[str, dict[str, t.Any]] = {}
    for record in remote.list_records(entity, fields, **extra):
        record_id = str(record["id"])
        if record_id not in index:
            recent.add(record_id, record)
            found[record_id] = record
    landed: list[str | None] = []
    for action in creates:
        match = _find_landed(recent, found, action)
        if match is not None:
            recent.remove(match)
            found.pop(match, None)
        landed.append(match)
    return landed


def _find_landed(
    recent: RemoteIndex, records: Mapping[str, Mapping[str, t.Any]], action: Action
) -> str | None:
    spec, ids = recent.find(action.data)
    if spec is not None:
        return ids[0] if ids else None
    for record_id, record in records.items():  # no key: the same values mean the same row
        if all(record.get(k) == v for k, v in action.data.items() if k in record):
            return record_id
    return None


def landed_write(
    index: RemoteIndex, entry: Mapping[str, t.Any], readable: Collection[str]
) -> str | None:
    """The record a write of the change log's journal made or changed, when the index shows
    it landed; None when it did not, or its values are not read back to tell."""
    record_id = entry.get("record_id")
    after = {k: v.get("after") for k, v in (entry.get("fields") or {}).items()}
    operation = entry.get("operation")
    if operation == "delete":
        return str(record_id) if record_id and record_id not in index else None
    if operation == "update":
        stored = index.get(str(record_id))
        shown = {k: v for k, v in after.items() if k in readable}
        if stored is None or not shown:
            return None
        same = all(comparable(stored.get(k)) == comparable(v) for k, v in shown.items())
        return str(record_id) if same else None
    spec, ids = index.find(after)
    return ids[0] if spec is not None and len(ids) == 1 else None


def settle_killed_writes(
    remote: Remote,
    changes: ChangeLog,
    entity: Entity,
    fields: Sequence[str],
    readable: Collection[str],
) -> None:
    """Before a stream's first plan: the writes a killed run sent and never saw answered go
    to the change log, once, where Moovago shows they landed."""
    entries = changes.unsettled.pop(entity.stream_name, [])
    if not entries:
        return
    wanted = sorted({f for e in entries for f in e.get("fields") or {} if f in readable})
    index = remote.index(entity, [*fields, *wanted])
    landed = 0
    for entry in entries:
        record_id = landed_write(index, entry, readable)
        changes.settled(entry, record_id)
        landed += record_id is not None
    remote.logger.info(
        "Stream %s: %d writes of a stopped run were never answered; %d had landed (logged now)",
        entity.stream_name,
        len(entries),
        landed,
    )
