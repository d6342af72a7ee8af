"""One stream's batches: aliased mutations, several requests in flight, halving, reconciliation
on the server's clock; every row confirmed or undone, and accounted (docs/reliability.md)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import typing as t
from collections import Counter, deque
from collections.abc import Collection, Generator, Iterator, Sequence

from moovago_api.documents import Alias, batch_document, operation_name
from moovago_api.errors import MoovagoError, QueryError, RequestTooLarge, TransientError
from moovago_api.transport import encode_request
from moovago_api.wire import format_datetime
from target_moovago.decide import COUNTER, WRITES, Action, Kind, Row
from target_moovago.index import DELETED_AT, SDC_PREFIX, KeySpec, RemoteIndex
from target_moovago.ledger import landed_write
from target_moovago.remote import writes_of

if t.TYPE_CHECKING:
    from moovago_api.client import Request
    from moovago_api.schema import Entity
    from target_moovago.sinks import Run

MAX_SPLIT_DEPTH = 7  # 2**7 > 100 mutations: enough to isolate one bad row
MAX_AMBIGUOUS_ROUNDS = 5
SAMPLES_PER_KIND = 3
# The Date header's whole seconds and the request's own time; a wider margin only re-reads more.
RECONCILE_MARGIN = dt.timedelta(minutes=5)

#: A request in flight: its chunk, aliases, the server's clock before it left, its bytes.
Sent = tuple[list[Action], list[Alias], dt.datetime | None, int]
Answer = dict[str, t.Any] | MoovagoError  # a request's `data`, or the error it raised


class BatchWriter:
    """Writes the planned actions of one stream against its index."""

    def __init__(
        self, run: Run, entity: Entity, key_specs: Sequence[KeySpec], fields: Sequence[str]
    ) -> None:
        self.run = run
        self.entity = entity
        self.writes = writes_of(entity)
        self.label = entity.stream_name
        self.key_specs = key_specs
        self.fields = list(fields)  # what the stream's rows may change, tracked in the index
        self.logger = run.logger
        self._samples: Counter[Kind] = Counter()

    @property
    def index(self) -> RemoteIndex:
        return self.run.remote.index(self.entity, self.fields)

    def account(self, action: Action) -> None:
        """Settle an action that writes nothing."""
        if action.kind is Kind.REJECT:
            self.reject(action.row, action.reason, action.field)
        elif action.kind not in WRITES:
            if action.kind is Kind.SUPERSEDED:
                where = f"{action.row.key_label(self.key_specs)} (row #{action.row.position})"
                self.logger.info("Stream %s, %s %s", self.label, where, action.reason)
            self.run.ledger.add(self.label, COUNTER[action.kind])

    def reject(self, row: Row, reason: str, field: str | None) -> None:
        record = {
            k: v
            for k, v in row.record.items()
            if not k.startswith(SDC_PREFIX) or (k == DELETED_AT and v is not None)
        }
        label = row.key_label(self.key_specs)
        where = f" (field {field})" if field else ""
        self.logger.warning("Stream %s, %s rejected%s: %s", self.label, label, where, reason)
        self.run.ledger.reject(self.label, label, reason, field=field, row=record)

    def project(self, actions: Sequence[Action]) -> None:
        """Apply decided writes to the index now: later rows are decided on the state they make."""
        for action in actions:
            if action.kind is Kind.CREATE:
                action.record_id = self.run.pending.new(self.label)
                self.index.add(action.record_id, action.data)
            elif action.kind in WRITES and action.record_id is not None:
                action.before = self.index.get(action.record_id)
                if action.kind is Kind.UPDATE:
                    self.index.update(action.record_id, action.data)
                else:
                    self.index.remove(action.record_id)

    def _refuse(self, action: Action, reason: str, field: str | None = None) -> None:
        """Undo a write's projection and reject its row."""
        self.run.changes.dropped(action)
        if action.kind is Kind.CREATE and action.record_id is not None:
            self.index.remove(action.record_id)
            self.run.pending.settle(action.record_id, None)
        elif action.record_id is not None and action.before is not None:
            self.index.add(action.record_id, action.before)
        self.reject(action.row, reason, field)

    def _confirm(self, action: Action, record_id: str) -> None:
        if action.kind is Kind.CREATE:
            pending = action.record_id
            if pending is not None and pending != record_id:
                self.index.rename(pending, record_id)
                self.run.pending.settle(pending, record_id)
            else:
                self.index.add(record_id, action.data)
            action.record_id = record_id
        self.run.changes.confirmed(self.label, action, self.key_specs)
        self.run.ledger.add(self.label, COUNTER[action.kind])

    def write(self, actions: Sequence[Action]) -> None:
        """Send the planned writes in batches of `mutations_per_request` (log them on a dry run)."""
        if not self.run.dry_run:
            size = self.run.mutations_per_request
            self.send([list(actions[i : i + size]) for i in range(0, len(actions), size)])
            return
        for action in actions:
            self.run.ledger.add(self.label, COUNTER[action.kind])
            self._samples[action.kind] += 1
            if self._samples[action.kind] <= SAMPLES_PER_KIND:  # what the call would send
                held = f" (kept by field_policies: {action.held})" if action.held else ""
                arguments = self.writes.shape(action.kind).arguments(action.record_id, action.data)
                sample = json.dumps(arguments, default=str, ensure_ascii=False)
                self.logger.info("dry run: %s %s %s%s", self.label, action.kind.value, sample, held)

    def send(self, batches: Sequence[list[Action]], depth: int = 0, rounds: int = 0) -> None:
        """Send the chunks, several in flight, answers in order (`depth`, `rounds`: of a split or a
        resend). After a failure or a stop the answers in flight are handled, then it raises."""
        todo = deque(batches)
        sent: deque[Sent] = deque()
        failures: list[Exception] = []

        def requests(creates: bool) -> Iterator[Request]:
            """Requests from `todo` as slots free up, until a chunk must wait for the rest."""
            while todo and not failures and not self.run.stopping:
                chunk = self._resolved(todo[0], wait=bool(sent))
                if chunk is None:
                    return
                todo.popleft()
                if not chunk:
                    continue
                if _has_creates(chunk) is not creates:
                    todo.appendleft(chunk)  # resolving it again changes nothing
                    return
                try:
                    document, variables, aliases = batch_document(
                        self.run.remote.schema, self.entity, chunk
                    )
                except MoovagoError:
                    if not sent:
                        raise
                    todo.appendleft(chunk)  # raised again once nothing is in flight
                    return
                self.run.changes.sending(self.label, chunk, self.key_specs)  # before it can land
                name = operation_name(document)
                size = len(encode_request(document, variables, name))
                # Too large: split (by sends of their own) once nothing is in flight.
                if size > self.run.request_limit:
                    if sent:
                        todo.appendleft(chunk)
                        return
                    self.too_large(chunk, depth, rounds, size, refused=False)
                    continue
                clock = self.run.remote.client.server_time() or self.run.remote.newest_updated_at
                sent.append((chunk, aliases, clock, size))
                yield document, variables, name

        while todo and not failures:
            self.run.check_stop()  # nothing is in flight here
            # One retry rule per call: a chunk with creates is never retried blind.
            creates = _has_creates(todo[0])
            answers = self.run.remote.client.execute_many(
                requests(creates), retry_ambiguous=not creates
            )
            with contextlib.closing(t.cast("Generator[Answer, None, None]", answers)):
                for answer in answers:
                    done = sent.popleft()
                    try:
                        self.answered(done, answer, depth, rounds)
                    except Exception as exc:  # noqa: BLE001 - raised below, once nothing is in flight
                        failures.append(exc)
        if failures:
            raise failures[0]

    def _resolved(self, chunk: Sequence[Action], *, wait: bool) -> list[Action] | None:
        """Real ids for pending ones; one naming an unconfirmed create: None, or refused."""
        ready = []
        for action in chunk:
            try:
                if action.kind is not Kind.CREATE:
                    action.record_id = self.run.pending.resolve(action.record_id)
                action.data = {k: self.run.pending.resolve(v) for k, v in action.data.items()}
            except KeyError as missing:
                if wait:
                    return None
                what = f"{missing.args[0]}, a planned create that was refused"
                self._refuse(action, f"{action.kind.value} not sent: it names {what}")
                continue
            ready.append(action)
        return ready

    def answered(self, sent: Sent, answer: Answer, depth: int = 0, rounds: int = 0) -> None:
        """Confirm, refuse, halve or reconcile a chunk's rows from its request's answer."""
        chunk, aliases, reference, size = sent
        if isinstance(answer, RequestTooLarge):
            self.too_large(chunk, depth, rounds, size, refused=True)
            return
        if isinstance(answer, TransientError) and answer.ambiguous and _has_creates(chunk):
            self._after_ambiguous_failure(chunk, reference, rounds, answer)
            return
        if isinstance(answer, BaseException) and not isinstance(answer, QueryError):
            raise answer
        data = (answer.data or {}) if isinstance(answer, QueryError) else answer
        errors: dict[str, str] = {}
        for error in answer.errors if isinstance(answer, QueryError) else ():
            path = error.get("path") or []
            owner = next((a for a in aliases if path and a.owns(path)), None)
            if owner is not None:
                errors.setdefault(owner.name, str(error.get("message", "error")))
        results = [alias.result(data) for alias in aliases]
        if isinstance(answer, QueryError) and not errors and results.count(None) == len(results):
            self._whole_request_failed(chunk, depth, answer)
            return
        written = [
            self.writes.shape(a.kind).record_id(result, sent_id=a.record_id)
            for a, result in zip(chunk, results, strict=True)
        ]
        created = Counter(w for a, w in zip(chunk, written, strict=True) if a.kind is Kind.CREATE)
        contradicted: list[tuple[Action, str]] = []
        for alias, action, result, record_id in zip(aliases, chunk, results, written, strict=True):
            # A create's answered id cannot be true when answered for two creates, or when the
            # index holds it for another record.
            creates = action.kind is Kind.CREATE and record_id is not None
            if creates and created[record_id] > 1:
                why = f"the API answered record id {record_id} for {created[record_id]} creates"
                contradicted.append((action, why))
            elif creates and record_id in self.index and record_id != action.record_id:
                why = f"the API answered record id {record_id}, which is an existing record"
                contradicted.append((action, why))
            elif record_id is not None:
                self._confirm(action, record_id)
            else:
                reason = (
                    errors.get(alias.name)
                    or "; ".join(self.writes.shape(action.kind).error_messages(result))
                    or "the API returned no result for this mutation"
                )
                self._refuse(action, f"{action.kind.value} failed: {reason}")
        # Answers that contradict each other prove nothing: each such create is looked up like
        # after an ambiguous failure, else rejected (never sent again: it may have landed).
        for action, why in contradicted:
            label = action.row.key_label(self.key_specs)
            self.logger.warning("Stream %s, %s: %s; reconciling", self.label, label, why)
        missing = {id(a) for a in self.reconcile([a for a, _ in contradicted], reference)}
        for action, why in (c for c in contradicted if id(c[0]) in missing):
            self._refuse(
                action,
                f"create not confirmed: {why}, and no record it made was found after "
                "reconciling; not sent again to avoid a duplicate",
            )
        self.run.ledger.request_done(self.label, self.run.remote.requests)

    def too_large(
        self, chunk: list[Action], depth: int, rounds: int, size: int, *, refused: bool
    ) -> None:
        """Halve down to one row; a row too large alone is rejected naming its largest field."""
        run = self.run
        if refused:  # a 413 lowers the limit for the rest of the run
            run.ledger.request_done(self.label, self.run.remote.requests)
            run.request_limit = min(run.request_limit, size - 1)
        if len(chunk) > 1:
            self.halve(chunk, depth, rounds, f"is {size} bytes{' (HTTP 413)' * refused}")
            return
        (action,) = chunk
        alone = f"the request for this row alone is {size} bytes"
        setting = f"max_request_bytes={run.max_request_bytes}"
        reason = f"{action.kind.value} not sent: {alone}, over the limit of {run.request_limit} "
        reason += f"bytes ({setting})"
        if refused:
            reason = f"{action.kind.value} refused by the server with HTTP 413: {alone}, over "
            reason += f"the server's limit ({setting})"
        data = action.data.items()
        sizes = {k: len(json.dumps(v, default=str, ensure_ascii=False)) for k, v in data}
        self._refuse(action, reason, max(sizes, key=sizes.__getitem__) if sizes else None)

    def halve(self, chunk: list[Action], depth: int, rounds: int, why: str) -> None:
        """Send each half of a chunk as a window of its own."""
        self.logger.info(
            "Stream %s: request of %d mutations %s; splitting", self.label, len(chunk), why
        )
        middle = len(chunk) // 2
        self.send([chunk[:middle]], depth, rounds)
        self.send([chunk[middle:]], depth, rounds)

    def _whole_request_failed(self, chunk: list[Action], depth: int, err: QueryError) -> None:
        """`data: null` rejects every alias: halve to find the rows that cause it."""
        self.run.ledger.request_done(self.label, self.run.remote.requests)
        if len(chunk) > 1 and depth < MAX_SPLIT_DEPTH:
            self.halve(chunk, depth + 1, 0, "refused as a whole")
            return
        messages = "; ".join(str(e.get("message", "")) for e in err.errors) or str(err)
        for action in chunk:
            self._refuse(action, f"{action.kind.value} refused: {messages}")

    def _after_ambiguous_failure(
        self, chunk: list[Action], reference: dt.datetime | None, rounds: int, err: TransientError
    ) -> None:
        """The request may have been applied: find the creates that landed, resend the rest."""
        creates = [a for a in chunk if a.kind is Kind.CREATE]
        missing = {id(a) for a in self.reconcile(creates, reference)}
        remaining = [a for a in chunk if a.kind is not Kind.CREATE or id(a) in missing]
        self.logger.warning(
            "Stream %s: request of %d mutations failed ambiguously (%s); %d of %d creates had "
            "landed, resending %d",
            self.label,
            len(chunk),
            err,
            len(chunk) - len(remaining),
            len(creates),
            len(remaining),
        )
        if rounds + 1 >= MAX_AMBIGUOUS_ROUNDS:
            for action in remaining:
                self._refuse(
                    action,
                    f"{action.kind.value} not confirmed after {MAX_AMBIGUOUS_ROUNDS} ambiguous "
                    f"failures ({err}); not sent again to avoid a duplicate",
                )
        elif remaining:
            self.send([remaining], depth=0, rounds=rounds + 1)

    def reconcile(self, creates: Sequence[Action], reference: dt.datetime | None) -> list[Action]:
        """Confirm each create found among the records new since `reference` (by key, else by
        values); the creates not found."""
        if not creates:
            return []
        extra: dict[str, t.Any] = {}
        if self.entity.bound_path and reference is not None:  # where the plan puts a lower bound
            extra = self.entity.filter_value(None, format_datetime(reference - RECONCILE_MARGIN))
        elif self.entity.bound_path:
            self.logger.info(
                "%s: no server clock seen (no Date header, no updatedAt read): reconciling by "
                "reading every record",
                self.label,
            )
        recent = RemoteIndex(self.index.fields, self.key_specs)
        for record in self.run.remote.list_records(self.entity, recent.fields, **extra):
            if (record_id := str(record["id"])) not in self.index:
                recent.add(record_id, record)
        missing = []
        for action in creates:
            spec, ids = recent.find(action.data)
            match = ids[0] if ids else None
            if spec is None:  # no key: the same values mean the same row
                data = action.data.items()
                same = (
                    i for i, r in recent.items() if all(r.get(k) == v for k, v in data if k in r)
                )
                match = next(same, None)
            if match is None:
                missing.append(action)
                continue
            recent.remove(match)
            self._confirm(action, match)
        return missing

    def settle_killed_writes(self, readable: Collection[str]) -> None:
        """Before the first plan: a killed run's unanswered writes are logged where they landed."""
        entries = self.run.changes.unsettled.pop(self.label, [])
        if not entries:
            return
        wanted = sorted({f for e in entries for f in e.get("fields") or {} if f in readable})
        index = self.run.remote.index(self.entity, [*self.fields, *wanted])
        landed = [landed_write(index, entry, readable) for entry in entries]
        for entry, record_id in zip(entries, landed, strict=True):
            self.run.changes.settled(entry, record_id)
        self.logger.info(
            "Stream %s: %d writes of a stopped run were never answered; %d had landed (logged now)",
            self.label,
            len(entries),
            len(landed) - landed.count(None),
        )


def _has_creates(chunk: Sequence[Action]) -> bool:
    return any(a.kind is Kind.CREATE for a in chunk)
