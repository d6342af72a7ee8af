"""The batch writer of one stream: project planned writes into the index, send them as aliased
mutation batches, halve a batch refused as a whole or over the size limit (measured before
sending, or an HTTP 413), reconcile after an ambiguous failure on the server's clock, confirm
or undo each row, and account every row in the ledger."""

from __future__ import annotations

import datetime as dt
import json
import typing as t
from collections.abc import Mapping, Sequence

from graphql import (
    DocumentNode,
    NamedTypeNode,
    NameNode,
    NonNullTypeNode,
    OperationType,
    TypeNode,
    print_ast,
)

from moovago_api.documents import field, operation, operation_name
from moovago_api.errors import MoovagoError, QueryError, RequestTooLarge, TransientError
from moovago_api.wire import format_datetime
from target_moovago.index import KeySpec, RemoteIndex
from target_moovago.mapping import DELETED_AT, SDC_PREFIX
from target_moovago.plan import COUNTER, WRITES, Action, Kind, Row, chunks

if t.TYPE_CHECKING:
    from moovago_api.schema import Entity
    from target_moovago.run import Run

MAX_SPLIT_DEPTH = 7  # 2**7 > 100 mutations: enough to isolate one bad row
MAX_AMBIGUOUS_ROUNDS = 5
# Re-read rows the server dated from this long before its clock at sending: the Date header's
# whole seconds and the request's own time. Never the local clock, which may be minutes off.
RECONCILE_MARGIN = dt.timedelta(minutes=5)
DEFAULT_MAX_REQUEST_BYTES = 1_048_576  # 1 MiB: a common proxy default (nginx, API gateways)
MIN_REQUEST_BYTES = 1024
SAMPLES_PER_KIND = 3
_ALIAS_PREFIX = {Kind.CREATE: "c", Kind.UPDATE: "u", Kind.DELETE: "d"}


def mutation_document(entity: Entity, actions: Sequence[Action]) -> tuple[DocumentNode, dict, list]:
    """`mutation X($i0: CreateInput!, ...) { company { c0: create(input: $i0) { recordId } } }`.

    Returns the document, its variables and the alias of each action, in order.
    """
    input_types = {
        Kind.CREATE: entity.create_input,
        Kind.UPDATE: entity.update_input,
        Kind.DELETE: entity.delete_input,
    }
    variables: dict[str, t.Any] = {}
    var_types: dict[str, TypeNode] = {}
    fields = []
    aliases = []
    for number, action in enumerate(actions):
        var = f"i{number}"
        alias = f"{_ALIAS_PREFIX[action.kind]}{number}"
        type_name = input_types[action.kind]
        if entity.mutation_field is None or type_name is None:
            msg = f"the schema file declares no {action.kind.value} mutation for {entity.name}"
            raise MoovagoError(msg)
        var_types[var] = NonNullTypeNode(type=NamedTypeNode(name=NameNode(value=type_name)))
        variables[var] = action.variables()
        fields.append(
            field(action.kind.value, [field("recordId")], alias=alias, arguments={"input": var})
        )
        aliases.append(alias)
    name = f"TargetMoovago{entity.type_name}Batch"
    root = [field(entity.mutation_field or "", fields)]
    return operation(OperationType.MUTATION, name, var_types, root), variables, aliases


def request_bytes(document: DocumentNode, variables: Mapping[str, t.Any], name: str | None) -> int:
    """The size of the body the client sends for this request (the same JSON form)."""
    body = {"query": print_ast(document), "variables": dict(variables), "operationName": name}
    return len(json.dumps(body, default=str, ensure_ascii=False).encode("utf-8"))


def largest_field(action: Action) -> str | None:
    """The input field holding most of a row's bytes: the one to name when it is too big."""
    sizes = {k: len(json.dumps(v, default=str, ensure_ascii=False)) for k, v in action.data.items()}
    return max(sizes, key=lambda k: sizes[k]) if sizes else None


class BatchWriter:
    """Writes the planned actions of one stream against its index."""

    def __init__(
        self, run: Run, entity: Entity, key_specs: Sequence[KeySpec], fields: Sequence[str]
    ) -> None:
        self.run = run
        self.entity = entity
        self.label = entity.stream_name
        self.key_specs = key_specs
        self.fields = list(fields)  # what the stream's rows may change, tracked in the index
        self.logger = run.logger
        self._samples: dict[Kind, int] = {}
        self._warned_clock = False

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
        self.run.ledger.add(self.label, COUNTER[action.kind])

    # sending ----------------------------------------------------------------------------------

    def write(self, actions: Sequence[Action]) -> None:
        """Send the planned writes in batches of `mutations_per_request` (log them on a dry run)."""
        if self.run.dry_run:
            self._dry_run(actions)
            return
        for chunk in chunks(actions, self.run.mutations_per_request):
            self._send(chunk, depth=0)

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
        chunk = self._resolved(chunk)
        if not chunk:
            return
        self.run.check_stop()
        document, variables, aliases = mutation_document(self.entity, chunk)
        name = operation_name(document)
        size = request_bytes(document, variables, name)
        if size > self.run.request_limit:
            self._too_large(chunk, depth, rounds, size, refused=False)
            return
        has_creates = any(a.kind is Kind.CREATE for a in chunk)
        reference = self._server_clock()  # before sending: a create lands after it
        errors: dict[str, str] = {}
        try:
            data = self.run.remote.client.execute(
                document, variables, operation_name=name, retry_ambiguous=not has_creates
            )
        except RequestTooLarge as err:
            self.run.progress.request_done(self.label)
            self.run.request_limit = min(self.run.request_limit, err.size - 1)
            self._too_large(chunk, depth, rounds, size, refused=True)
            return
        except QueryError as err:
            field_data = (err.data or {}).get(self.entity.mutation_field or "")
            if field_data is None:
                self._whole_request_failed(chunk, depth, err)
                return
            data = err.data or {}
            for error in err.errors:
                path = error.get("path") or []
                if len(path) >= 2:
                    errors[str(path[1])] = str(error.get("message", "error"))
        except TransientError as err:
            if not (has_creates and err.ambiguous):
                raise
            self._after_ambiguous_failure(chunk, reference, rounds, err)
            return
        results = data.get(self.entity.mutation_field or "") or {}
        for alias, action in zip(aliases, chunk, strict=True):
            result = results.get(alias)
            if result and result.get("recordId"):
                self._confirm(action, str(result["recordId"]))
            else:
                reason = errors.get(alias, "the API returned no result for this mutation")
                self._refuse(action, f"{action.kind.value} failed: {reason}")
        self.run.progress.request_done(self.label)

    def _server_clock(self) -> dt.datetime | None:
        """The server's time: its Date header as last seen, else the newest `updatedAt` read
        this run (a lower bound of it), else None. Never the local clock."""
        return self.run.remote.client.server_time() or self.run.remote.newest_updated_at

    def _too_large(
        self, chunk: list[Action], depth: int, rounds: int, size: int, *, refused: bool
    ) -> None:
        """Over `max_request_bytes` (or refused with HTTP 413): halve by rows down to one; a
        row too large alone is rejected naming its size and the limit."""
        if len(chunk) > 1:
            middle = len(chunk) // 2
            self.logger.info(
                "Stream %s: request of %d mutations is %d bytes (%s); splitting",
                self.label,
                len(chunk),
                size,
                "refused with HTTP 413" if refused else f"limit {self.run.request_limit}",
            )
            self._send(chunk[:middle], depth, rounds)
            self._send(chunk[middle:], depth, rounds)
            return
        (action,) = chunk
        configured = self.run.max_request_bytes
        if refused:
            reason = (
                f"{action.kind.value} refused by the server with HTTP 413: the request for this "
                f"row alone is {size} bytes, over the server's limit (max_request_bytes="
                f"{configured})"
            )
        else:
            reason = (
                f"{action.kind.value} not sent: the request for this row alone is {size} bytes, "
                f"over the limit of {self.run.request_limit} bytes (max_request_bytes="
                f"{configured})"
            )
        self._undo(action)
        self.reject(action.row, reason, largest_field(action))

    def _whole_request_failed(self, chunk: list[Action], depth: int, err: QueryError) -> None:
        """`data: null` rejects every alias: halve to find the rows that cause it."""
        self.run.progress.request_done(self.label)
        if len(chunk) > 1 and depth < MAX_SPLIT_DEPTH:
            middle = len(chunk) // 2
            self.logger.info(
                "Stream %s: request of %d mutations refused as a whole; splitting",
                self.label,
                len(chunk),
            )
            self._send(chunk[:middle], depth + 1)
            self._send(chunk[middle:], depth + 1)
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
        """The request may have been applied: find the creates that landed, resend the rest.
        Rows are re-read from `reference` (the server's clock) on; without it, all of them."""
        fields = list(self.index.fields)
        recent = RemoteIndex(fields, self.key_specs)
        extra: dict[str, t.Any] = {}
        if self.entity.updated_since_field and reference is not None:
            since = reference - RECONCILE_MARGIN
            extra[self.entity.updated_since_field] = format_datetime(since)
        elif self.entity.updated_since_field and not self._warned_clock:
            self._warned_clock = True
            self.logger.info(
                "Stream %s: no server clock seen (no Date header, no updatedAt read): "
                "reconciling by reading every record",
                self.label,
            )
        found: dict[str, dict[str, t.Any]] = {}
        for record in self.run.remote.list_records(self.entity, fields, **extra):
            record_id = str(record["id"])
            if record_id not in self.index:
                recent.add(record_id, record)
                found[record_id] = record
        creates = [a for a in chunk if a.kind is Kind.CREATE]
        remaining = [a for a in chunk if a.kind is not Kind.CREATE]
        for action in creates:
            match = _find_landed(recent, found, action)
            if match is None:
                remaining.append(action)
            else:
                recent.remove(match)
                found.pop(match, None)
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

    def _dry_run(self, writes: Sequence[Action]) -> None:
        for action in writes:
            self.run.ledger.add(self.label, COUNTER[action.kind])
            shown = self._samples.get(action.kind, 0)
            if shown < SAMPLES_PER_KIND:
                self._samples[action.kind] = shown + 1
                self.logger.info(
                    "dry run: %s %s %s",
                    self.label,
                    action.kind.value,
                    json.dumps(action.variables(), default=str, ensure_ascii=False),
                )


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
