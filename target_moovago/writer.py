"""The batch writer of one stream: project planned writes into the index, send them as aliased
mutation batches, halve a batch refused as a whole or over the size limit (or HTTP 413),
reconcile after an ambiguous failure, confirm or undo each row, account every row."""

from __future__ import annotations

import datetime as dt
import json
import typing as t
from collections import Counter
from collections.abc import Sequence

from graphql import DocumentNode

from moovago_api.documents import operation_name
from moovago_api.errors import QueryError, RequestTooLarge, TransientError
from moovago_api.mutations import Alias, batch_document
from target_moovago.index import KeySpec, RemoteIndex
from target_moovago.mapping import DELETED_AT, SDC_PREFIX
from target_moovago.plan import (
    COUNTER,
    WRITES,
    Action,
    Kind,
    Row,
    chunks,
    largest_field,
    request_bytes,
    too_large_reason,
)
from target_moovago.remote import writes_of
from target_moovago.window import Answer, Sent, landed_creates, send_window

if t.TYPE_CHECKING:
    from moovago_api.client import Request
    from moovago_api.schema import Entity, MoovagoSchema
    from target_moovago.run import Run

MAX_SPLIT_DEPTH = 7  # 2**7 > 100 mutations: enough to isolate one bad row
MAX_AMBIGUOUS_ROUNDS = 5
SAMPLES_PER_KIND = 3


def mutation_document(
    schema: MoovagoSchema, entity: Entity, actions: Sequence[Action]
) -> tuple[DocumentNode, dict, list[Alias]]:
    """One aliased batch in the layout the schema file declares (moovago_api.mutations)."""
    return batch_document(schema, entity, actions)


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
        self._samples: dict[Kind, int] = {}

    @property
    def index(self) -> RemoteIndex:
        """The entity's index (the run keeps one per entity, read again if it must grow)."""
        return self.run.remote.index(self.entity, self.fields)

    # accounting -------------------------------------------------------------------------------

    def account(self, action: Action) -> None:
        """Settle an action that writes nothing: a rejection or a counter."""
        if action.kind is Kind.REJECT:
            self.reject(action.row, action.reason, action.field)
        elif action.kind not in WRITES:
            if action.kind is Kind.SUPERSEDED:
                row = action.row
                where = f"{row.key_label(self.key_specs)} (row #{row.position})"
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

    # the index as it will be ------------------------------------------------------------------

    def project(self, actions: Sequence[Action]) -> None:
        """Apply planned writes to the index at once, so later rows (held or not) plan against
        the state these writes make; a create stands under a pending id until confirmed."""
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

    def _undo(self, action: Action) -> None:
        self.run.changes.dropped(action)
        if action.record_id is None:
            return
        if action.kind is Kind.CREATE:
            self.index.remove(action.record_id)
            self.run.pending.settle(action.record_id, None)
        elif action.before is not None:
            self.index.add(action.record_id, action.before)

    def _refuse(self, action: Action, reason: str) -> None:
        self._undo(action)
        self.reject(action.row, reason, None)

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

    # sending ----------------------------------------------------------------------------------

    def write(self, actions: Sequence[Action]) -> None:
        """Send the planned writes in batches of `mutations_per_request` (log them on a dry run)."""
        if self.run.dry_run:
            self._dry_run(actions)
            return
        send_window(self, self.run, list(chunks(actions, self.run.mutations_per_request)))

    def _request(self, chunk: Sequence[Action]) -> tuple[Request, list[Alias], int]:
        """The request of one chunk for `send_window`, and the alias of each action."""
        schema = self.run.remote.schema
        document, variables, aliases = mutation_document(schema, self.entity, chunk)
        name = operation_name(document)
        self.run.changes.sending(self.label, chunk, self.key_specs)  # before it can land
        return (document, variables, name), aliases, request_bytes(document, variables, name)

    def _resolved(self, chunk: Sequence[Action]) -> list[Action]:
        """The actions with real ids in place of pending ones; one naming a create that was
        refused is rejected here."""
        ready = []
        for action in chunk:
            try:
                if action.kind is not Kind.CREATE:
                    action.record_id = self.run.pending.resolve(action.record_id)
                action.data = {k: self.run.pending.resolve(v) for k, v in action.data.items()}
            except KeyError as missing:
                what = f"{missing.args[0]}, a planned create that was refused"
                self._refuse(action, f"{action.kind.value} not sent: it names {what}")
                continue
            ready.append(action)
        return ready

    def _send(self, chunk: list[Action], depth: int, rounds: int = 0) -> None:
        send_window(self, self.run, [chunk], depth, rounds)

    def _answered(self, sent: Sent, answer: Answer, depth: int = 0, rounds: int = 0) -> None:
        """Confirm, refuse, halve or reconcile a chunk's rows from its request's answer."""
        chunk, aliases, reference = sent.chunk, sent.aliases, sent.reference
        has_creates = any(a.kind is Kind.CREATE for a in chunk)
        errors: dict[str, str] = {}
        try:
            if isinstance(answer, BaseException):
                raise answer
            data = answer
        except RequestTooLarge:
            self._too_large(chunk, depth, rounds, sent.size, refused=True)
            return
        except QueryError as err:
            data = err.data or {}
            for error in err.errors:
                path = error.get("path") or []
                owner = next((a for a in aliases if path and a.owns(path)), None)
                if owner is not None:
                    errors.setdefault(owner.name, str(error.get("message", "error")))
            if not errors and all(a.result(data) is None for a in aliases):
                self._whole_request_failed(chunk, depth, err)
                return
        except TransientError as err:
            if not (has_creates and err.ambiguous):
                raise
            self._after_ambiguous_failure(chunk, reference, rounds, err)
            return
        answers = []
        for alias, action in zip(aliases, chunk, strict=True):
            result = alias.result(data)
            shape = self.writes.shape(action.kind)
            written = shape.record_id(result, sent_id=action.record_id)
            answers.append((alias, action, result, shape, written))
        created = Counter(a[4] for a in answers if a[1].kind is Kind.CREATE)
        contradicted: list[tuple[Action, str]] = []
        for alias, action, result, shape, written in answers:
            why = self._contradiction(action, written, created)
            if why is not None:
                contradicted.append((action, why))
            elif written is not None:
                self._confirm(action, written)
            else:
                reason = (
                    errors.get(alias.name)
                    or "; ".join(shape.error_messages(result))
                    or "the API returned no result for this mutation"
                )
                self._refuse(action, f"{action.kind.value} failed: {reason}")
        if contradicted:
            self._reconcile_contradictions(contradicted, reference)
        self.run.progress.request_done(self.label)

    def _contradiction(
        self, action: Action, written: str | None, created: Counter[str | None]
    ) -> str | None:
        """Why a create's answered id cannot be true (None: it can): the same id answered
        for two creates, or an id the index already holds for another record."""
        if action.kind is not Kind.CREATE or written is None:
            return None
        if created[written] > 1:
            return f"the API answered record id {written} for {created[written]} creates"
        if written in self.index and written != action.record_id:
            return f"the API answered record id {written}, which is an existing record"
        return None

    def _reconcile_contradictions(
        self, contradicted: Sequence[tuple[Action, str]], reference: dt.datetime | None
    ) -> None:
        """Answers that contradict each other prove nothing: each such create is looked up
        like after an ambiguous failure, confirmed with the record found, else rejected (never
        sent again: the server may have made it)."""
        actions = [action for action, _ in contradicted]
        landed = landed_creates(
            self.run.remote, self.entity, self.index, self.key_specs, actions, reference
        )
        for (action, why), match in zip(contradicted, landed, strict=True):
            self.logger.warning(
                "Stream %s, %s: %s; reconciling",
                self.label,
                action.row.key_label(self.key_specs),
                why,
            )
            if match is not None:
                self._confirm(action, match)
            else:
                self._refuse(
                    action,
                    f"create not confirmed: {why}, and no record it made was found after "
                    "reconciling; not sent again to avoid a duplicate",
                )

    def _too_large(
        self, chunk: list[Action], depth: int, rounds: int, size: int, *, refused: bool
    ) -> None:
        """Over `max_request_bytes` (or refused with HTTP 413, which lowers the limit): halve
        by rows down to one; a row too large alone is rejected naming its size and the limit."""
        if refused:
            self.run.progress.request_done(self.label)
            self.run.request_limit = min(self.run.request_limit, size - 1)
        if len(chunk) > 1:
            self._halve(chunk, depth, rounds, f"is {size} bytes{' (HTTP 413)' * refused}")
            return
        (action,) = chunk
        self._undo(action)
        reason = too_large_reason(action, size, self.run, refused=refused)
        self.reject(action.row, reason, largest_field(action))

    def _halve(self, chunk: list[Action], depth: int, rounds: int, why: str) -> None:
        self.logger.info(
            "Stream %s: request of %d mutations %s; splitting", self.label, len(chunk), why
        )
        middle = len(chunk) // 2
        self._send(chunk[:middle], depth, rounds)
        self._send(chunk[middle:], depth, rounds)

    def _whole_request_failed(self, chunk: list[Action], depth: int, err: QueryError) -> None:
        """`data: null` rejects every alias: halve to find the rows that cause it."""
        self.run.progress.request_done(self.label)
        if len(chunk) > 1 and depth < MAX_SPLIT_DEPTH:
            self._halve(chunk, depth + 1, 0, "refused as a whole")
            return
        messages = "; ".join(str(e.get("message", "")) for e in err.errors) or str(err)
        for action in chunk:
            self._refuse(action, f"{action.kind.value} refused: {messages}")

    def _after_ambiguous_failure(
        self,
        chunk: list[Action],
        reference: dt.datetime | None,
        rounds: int,
        err: TransientError,
    ) -> None:
        """The request may have been applied: find the creates that landed, resend the rest."""
        creates = [a for a in chunk if a.kind is Kind.CREATE]
        remaining = [a for a in chunk if a.kind is not Kind.CREATE]
        landed = landed_creates(
            self.run.remote, self.entity, self.index, self.key_specs, creates, reference
        )
        for action, match in zip(creates, landed, strict=True):
            if match is None:
                remaining.append(action)
            else:
                self._confirm(action, match)
        order = {id(a): n for n, a in enumerate(chunk)}
        remaining.sort(key=lambda a: order[id(a)])
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
            self._send(remaining, depth=0, rounds=rounds + 1)

    def _arguments(self, action: Action) -> dict[str, t.Any]:
        """What the call would send, in the file's layout (a dry run shows it)."""
        return self.writes.shape(action.kind).arguments(action.record_id, action.data)

    def _dry_run(self, writes: Sequence[Action]) -> None:
        for action in writes:
            self.run.ledger.add(self.label, COUNTER[action.kind])
            shown = self._samples.get(action.kind, 0)
            if shown < SAMPLES_PER_KIND:
                self._samples[action.kind] = shown + 1
                held = f" (kept by field_policies: {action.held})" if action.held else ""
                self.logger.info(
                    "dry run: %s %s %s%s",
                    self.label,
                    action.kind.value,
                    json.dumps(self._arguments(action), default=str, ensure_ascii=False),
                    held,
                )
