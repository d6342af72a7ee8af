"""I/O of the target: prefetch indexes, send aliased mutation batches, reconcile, account.

One `RunContext` per target run holds what all sinks share: the schema, the one client (so
one rate governor, also when the SDK drains sinks in parallel threads), the ledger, the
indexes of remote records and the business-hours gate.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
import threading
import typing as t
from collections.abc import Callable, Iterable, Mapping, Sequence

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLObjectType,
    NamedTypeNode,
    NameNode,
    NonNullTypeNode,
    OperationType,
    TypeNode,
    get_named_type,
    is_leaf_type,
)
from singer_sdk.sinks import BatchSink

from moovago_api.documents import field, list_query, operation, operation_name
from moovago_api.drift import DEPRECATED, field_report
from moovago_api.errors import ConfigError, MoovagoError, QueryError, TransientError
from moovago_api.governor import bulk_window
from moovago_api.schema import Entity, MoovagoSchema, load_schema
from moovago_api.settings import client_from_config
from moovago_api.wire import is_loopback_url, secret_forms
from target_moovago.ledger import Ledger
from target_moovago.mapping import (
    DELETED_AT,
    SDC_PREFIX,
    FieldMapper,
    InputValidator,
    format_datetime,
)
from target_moovago.plan import (
    DEFAULT_MATCH_KEYS,
    WRITES,
    Action,
    KeySpec,
    Kind,
    Mode,
    Planner,
    RemoteIndex,
    Row,
    chunks,
)

if t.TYPE_CHECKING:
    from singer_sdk import Target

    from moovago_api.client import MoovagoClient

BUSINESS_HOURS_POLICIES = ("refuse", "wait", "ignore")
PAGE_SIZE = 1000
MAX_SPLIT_DEPTH = 7  # 2**7 > 100 mutations: enough to isolate one bad row
MAX_AMBIGUOUS_ROUNDS = 5
RECONCILE_MARGIN = dt.timedelta(minutes=5)  # clock skew between us and the server
SAMPLES_PER_KIND = 3
# Input fields that name a parent record; a row may name it by the parent's match key instead.
PARENT_FIELDS = {"companyId": "company", "mandatorId": "mandator"}
_KIND_COUNTER = {
    Kind.CREATE: "created",
    Kind.UPDATE: "updated",
    Kind.DELETE: "deleted",
    Kind.UNCHANGED: "unchanged",
    Kind.SUPERSEDED: "superseded",
    Kind.SKIP_DELETE: "skipped_deletes",
}
_ALIAS_PREFIX = {Kind.CREATE: "c", Kind.UPDATE: "u", Kind.DELETE: "d"}


class UnsupportedStreamError(MoovagoError):
    """A stream the target cannot write (read-only or not in the schema)."""


class BusinessHoursError(MoovagoError):
    """A bulk job was refused during French business hours."""


class TargetStopped(MoovagoError):
    """A termination signal stopped the run after the requests in flight."""

    def __init__(self, signum: int) -> None:
        super().__init__(
            f"stopped by signal {signum}: every row before the last STATE emitted is written, "
            "rejected or counted; rerun from that STATE (from the start if none was emitted)"
        )


def _json_types(prop: t.Mapping[str, t.Any]) -> set[str]:
    kind = prop.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def mutation_document(entity: Entity, actions: Sequence[Action]) -> tuple[DocumentNode, dict, list]:
    """`mutation X($i0: CreateInput!, ...) { company { c0: create(input: $i0) { recordId } } }`.

    Returns the document, its variables and the alias of each action, in order.
    """
    assert entity.mutation_field is not None
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
        assert type_name is not None
        var_types[var] = NonNullTypeNode(type=NamedTypeNode(name=NameNode(value=type_name)))
        variables[var] = action.variables()
        fields.append(
            field(action.kind.value, [field("recordId")], alias=alias, arguments={"input": var})
        )
        aliases.append(alias)
    name = f"TargetMoovago{entity.type_name}Batch"
    document = operation(
        OperationType.MUTATION, name, var_types, [field(entity.mutation_field, fields)]
    )
    return document, variables, aliases


def _selection(gql_type: GraphQLObjectType, names: Iterable[str]) -> list[FieldNode]:
    """Fields to read for `names`: leaves as is, objects with their leaf sub-fields."""
    selected = []
    for name in names:
        gql_field = gql_type.fields.get(name)
        if gql_field is None:
            continue
        named = get_named_type(gql_field.type)
        if is_leaf_type(named):
            selected.append(field(name))
        elif isinstance(named, GraphQLObjectType):
            leaves = [n for n, f in named.fields.items() if is_leaf_type(get_named_type(f.type))]
            selected.append(field(name, [field(n) for n in leaves]))
    return selected


def list_document(schema: MoovagoSchema, entity: Entity, fields: Iterable[str]) -> DocumentNode:
    """`query($filter: FilterMany...!, $skip: Int, $limit: Int) { xList(...) { id ... } }`."""
    gql_type = schema.graphql.get_type(entity.type_name)
    assert isinstance(gql_type, GraphQLObjectType)
    names = ["id", *(f for f in fields if f != "id")]
    return list_query(
        schema, entity, _selection(gql_type, names), name=f"TargetMoovago{entity.type_name}Index"
    )


class RunContext:
    """What every sink of one run shares."""

    def __init__(
        self,
        target: Target,
        *,
        clock: Callable[[], dt.datetime],
        sleep: Callable[[float], None],
        production: bool | None = None,
    ) -> None:
        self.target = target
        self.config = target.config
        self.logger = target.logger
        self.clock = clock
        self.sleep = sleep
        api_url = str(self.config.get("api_url") or "")
        self.production = not is_loopback_url(api_url) if production is None else production
        self._lock = threading.RLock()
        self._schema: MoovagoSchema | None = None
        self._client: MoovagoClient | None = None
        self._team_id: str | None = None
        self._indexes: dict[str, RemoteIndex] = {}
        self._index_locks: dict[str, threading.Lock] = {}
        self.planned_writes = 0
        self._finished = False
        self.sinks: list[MoovagoSink] = []
        self._bulk_cleared = False
        self.held_writes = 0  # writes of rows held while the bulk rule is undecided
        self.stop_signal: int | None = None  # a termination signal was received
        self.stop_after_request = False  # it came during a drain: send no further request
        self.drains = 0  # sinks draining now
        # Guards the holding decision and every sink's held rows. Held briefly, never while
        # writing rows or waiting for another sink's drain: a parent drained in another thread
        # takes it before writing (lock order: a child's drain and flush locks, then its
        # parents', then this one).
        self.hold_lock = threading.RLock()
        key = str(self.config.get("api_key") or "")
        secrets = secret_forms(key)
        self.ledger = Ledger(
            self.config.get("rejects_path") or "moovago-rejects.jsonl",
            max_rejects=self.config.get("max_rejects"),
            secrets=secrets,
            clock=clock,
        )
        self.ledger.dry_run = bool(self.config.get("dry_run"))
        if self.config.get("api_url") and self.config.get("api_key"):
            self.client  # noqa: B018 - a bad connection setting fails now, not mid-run

    # shared resources ------------------------------------------------------------------

    @property
    def schema(self) -> MoovagoSchema:
        with self._lock:
            if self._schema is None:
                self._schema = load_schema(self.config.get("schema_path"))
            return self._schema

    @property
    def client(self) -> MoovagoClient:
        with self._lock:
            if self._client is None:
                self._client = client_from_config(self.config, default_rate=1, logger=self.logger)
            return self._client

    @property
    def team_id(self) -> str:
        with self._lock:
            if self._team_id is None:
                entity = self.schema.entity("team")
                doc = list_query(self.schema, entity, [field("id")], name="TargetMoovagoTeam")
                data = self.client.execute(doc, operation_name="TargetMoovagoTeam")
                team = data.get("team") or {}
                if not team.get("id"):
                    msg = "the API returned no team for this API key"
                    raise MoovagoError(msg)
                self._team_id = str(team["id"])
            return self._team_id

    def entity_for(self, stream_name: str) -> Entity:
        try:
            entity = self.schema.entity(stream_name)
        except KeyError:
            writable = [e.stream_name for e in self.schema.entities() if e.mutation_field]
            msg = (
                f"stream {stream_name!r} is not a Moovago entity; target-moovago writes "
                f"{', '.join(writable)}"
            )
            raise UnsupportedStreamError(msg) from None
        if entity.mutation_field is None or entity.create_input is None:
            msg = (
                f"stream {stream_name!r} is read-only in the Moovago API (it has no mutations); "
                "remove it from the target's input"
            )
            raise UnsupportedStreamError(msg)
        return entity

    def key_specs(self, entity: Entity) -> list[KeySpec]:
        configured = self.config.get("match_keys") or {}
        names = configured.get(entity.stream_name) or configured.get(entity.name)
        raw = [names] if names else DEFAULT_MATCH_KEYS.get(entity.stream_name, [])
        specs = [KeySpec.parse(list(k)) for k in raw]
        known = set(self.schema.output_json_schema(entity.type_name)["properties"])
        for spec in specs:
            for name in spec.fields:
                if name not in known:
                    msg = (
                        f"match_keys for {entity.stream_name!r} names {name!r}, "
                        f"which {entity.type_name} does not have"
                    )
                    raise ConfigError(msg)
        return specs

    def mode(self, entity: Entity) -> Mode:
        modes = self.config.get("stream_modes") or {}
        return Mode(modes.get(entity.stream_name) or modes.get(entity.name) or "upsert")

    # indexes -------------------------------------------------------------------------------

    def index(self, entity: Entity, fields: Sequence[str]) -> RemoteIndex:
        """The index of `entity`, prefetched once; tracks at least `fields` and the keys."""
        with self._lock:
            lock = self._index_locks.setdefault(entity.name, threading.Lock())
        with lock:
            index = self._indexes.get(entity.name)
            if index is not None and set(fields) <= set(index.fields):
                return index
            tracked = list(dict.fromkeys([*(index.fields if index else ()), *fields]))
            index = RemoteIndex(tracked, self.key_specs(entity))
            for record in self.list_records(entity, index.fields):
                index.add(str(record["id"]), record)
            self.logger.info(
                "Prefetched %d %s records (fields: %s)",
                len(index),
                entity.stream_name,
                ", ".join(index.fields),
            )
            self._indexes[entity.name] = index
            return index

    def list_records(
        self, entity: Entity, fields: Sequence[str], **filters: t.Any
    ) -> Iterable[dict[str, t.Any]]:
        """Every record of the team (paged, values only in variables), with extra filters."""
        document = list_document(self.schema, entity, fields)
        name = operation_name(document)
        assert entity.filter_arg
        flt: dict[str, t.Any] = dict(filters)
        if entity.team_filter_field:
            flt[entity.team_filter_field] = self.team_id
        paged = bool(entity.skip_arg and entity.limit_arg)
        for skip in itertools.count(0, PAGE_SIZE):
            variables: dict[str, t.Any] = {entity.filter_arg: flt}
            if paged:
                variables[t.cast("str", entity.limit_arg)] = PAGE_SIZE
                variables[t.cast("str", entity.skip_arg)] = skip
            data = self.client.execute(document, variables, operation_name=name)
            page: list[dict[str, t.Any]] = data.get(entity.root_field) or []
            yield from page
            if not paged or len(page) < PAGE_SIZE:
                return

    def count_drain(self, change: int) -> None:
        with self._lock:
            self.drains += change

    def check_stop(self) -> None:
        """Before each request: raise once a termination signal asked to stop sending."""
        if self.stop_after_request and self.stop_signal is not None:
            raise TargetStopped(self.stop_signal)

    # business hours --------------------------------------------------------------------

    def _bulk_rule_applies(self) -> bool:
        policy = self.config.get("business_hours") or "refuse"
        return self.production and policy != "ignore" and not self._bulk_cleared

    @property
    def holding(self) -> bool:
        """Writes wait while the bulk rule may still apply: until the run's writes cross
        `bulk_threshold` (then refuse, wait or go) or the input ends under it."""
        return self._bulk_rule_applies()

    def hold(self, writes: int) -> bool:
        """Count the writes of rows a sink just held; crossing the threshold decides the rule
        (refuse raises before any write). True when the rule no longer holds rows: the caller
        then releases them, after letting go of `hold_lock`."""
        with self._lock:
            self.held_writes += writes
            self._check_bulk(self.planned_writes + self.held_writes)
            return self._bulk_cleared

    def release_held(self) -> None:
        """Write every sink's held rows, in stream order (the caller decided the rule). A
        sink whose held rows another thread is writing already is left to it: that thread may
        be waiting for the caller's own drain (a child needing its parent)."""
        with self.hold_lock:
            self._bulk_cleared = True
        for sink in list(self.sinks):
            sink.flush_held(wait=False)

    def authorise_writes(self, count: int) -> None:
        """Count planned writes; a bulk run on production follows `business_hours`."""
        with self._lock:
            self.planned_writes += count
            if count and self._bulk_rule_applies():
                self._check_bulk(self.planned_writes)

    def preflight(self, sinks: Iterable[MoovagoSink]) -> None:
        """At the end of input, before the final drain writes anything: count the writes of
        every stream's held and pending rows together, so a bulk run is refused (or waits)
        before its first write even when its streams are drained in parallel; then write the
        held rows."""
        with self._lock:
            if self._bulk_rule_applies() and not bulk_window(self.clock()).allowed:
                pending = sum(sink.count_pending_writes() for sink in sinks)
                self._check_bulk(self.planned_writes + self.held_writes + pending)
        self.release_held()

    def _check_bulk(self, writes: int) -> None:
        threshold = int(self.config.get("bulk_threshold", 500))
        if writes <= threshold:
            return
        window = bulk_window(self.clock())
        if window.allowed:
            self._bulk_cleared = True
            return
        opens = window.opens_at.isoformat() if window.opens_at else "later"
        if (self.config.get("business_hours") or "refuse") == "refuse":
            msg = (
                f"bulk job refused: {writes} rows to write (bulk_threshold={threshold}) during "
                "Moovago's business hours (Mon-Fri 08:00-18:30 Europe/Paris); the window opens "
                f"at {opens}. Set business_hours to 'wait' or 'ignore' to change this."
            )
            self.finish(failed=True)
            raise BusinessHoursError(msg)
        assert window.opens_at is not None
        seconds = (window.opens_at - self.clock()).total_seconds()
        self.logger.warning(
            "Bulk job of %d rows during business hours: waiting %.0f s until %s",
            writes,
            seconds,
            opens,
        )
        self.sleep(max(0.0, seconds))
        self._bulk_cleared = True

    # end of run --------------------------------------------------------------------------

    def finish(self, *, failed: bool) -> None:
        """Log the summary table and write the JSON summary, once per run."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
        stats: dict[str, t.Any] = {}
        if self._client is not None:
            raw = self._client.stats
            stats = {k: getattr(raw, k, 0) for k in ("requests", "retries", "rate_limited")}
        summary = self.ledger.summary(stats)
        summary["failed"] = failed
        self.logger.info("target-moovago summary\n%s", Ledger.table(summary))
        path = self.config.get("summary_path")
        if path:
            self.ledger.write_summary(path, summary)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class MoovagoSink(BatchSink):
    """Writes one stream: map, plan against the remote index, send batches, account."""

    def __init__(
        self,
        target: Target,
        stream_name: str,
        schema: dict,
        key_properties: t.Sequence[str] | None,
    ) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        self.run: RunContext = target.run  # type: ignore[attr-defined]
        self._target = target
        self.entity = self.run.entity_for(stream_name)
        self.label = self.entity.stream_name
        api_schema = self.run.schema
        entity = self.entity
        assert entity.create_input
        assert entity.update_data_input
        create_schema = api_schema.input_json_schema(entity.create_input)
        update_schema = api_schema.input_json_schema(entity.update_data_input)
        props = {**update_schema["properties"], **create_schema["properties"]}
        output = api_schema.output_json_schema(entity.type_name)["properties"]
        parents = {}
        for name, parent_stream in PARENT_FIELDS.items():
            if name in props and parent_stream != entity.stream_name:
                parent = self.run.entity_for(parent_stream)
                keys = [f for s in self.run.key_specs(parent) for f in s.fields]
                parents[name] = (parent_stream, keys)
        self.mapper = FieldMapper(props, output, parents)
        self.create_validator = InputValidator(create_schema)
        self.update_validator = InputValidator(update_schema)
        self.key_specs = self.run.key_specs(entity)
        self.mode = self.run.mode(entity)
        self.output_fields = set(output)
        self.clearable = frozenset(
            name
            for name, prop in output.items()
            if "null" in _json_types(prop) and "array" not in _json_types(prop)
        )
        columns = [c for c in self.schema.get("properties", {}) if not c.startswith(SDC_PREFIX)]
        self.columns = columns
        cmap = self.mapper.column_map(columns)
        if cmap.unknown:
            self.run.ledger.note_unknown(self.label, cmap.unknown)
            self.logger.warning(
                "Stream %s: columns that are not %s input fields are ignored: %s",
                self.label,
                entity.type_name,
                ", ".join(cmap.unknown),
            )
        self._warned_unknown = bool(cmap.unknown)
        self._warn_deprecated(entity, sorted(set(cmap.fields.values())))
        self._drain_lock = threading.Lock()
        self._index: RemoteIndex | None = None
        self._samples: dict[Kind, int] = {}
        self._rows_seen = 0  # rows of this stream before the current batch, for row numbers
        self._pending: list[dict] | None = None  # the records of the batch not yet drained
        # (row number, record) of the rows held by the bulk rule
        self._held: list[tuple[int, Mapping[str, t.Any]]] = []
        self._held_keys: set[tuple[t.Any, ...]] = set()  # identities of the held rows
        self._flush_lock = threading.RLock()  # one thread writes the held rows
        self._flushing = 0  # flushes of held rows in progress
        self._draining_thread: int | None = None
        self.rows_received = 0
        self.rows_settled = 0  # rows from the first that are written, rejected or counted
        self.run.sinks.append(self)
        self._remove_date_formats()

    def _remove_date_formats(self) -> None:
        # The SDK would parse date strings with `format` into datetimes and stop the whole run
        # on a bad one; we keep the strings and validate them per row against the API input type.
        self.schema = copy.deepcopy(self.schema)

        def strip(node: t.Any) -> None:
            if isinstance(node, dict):
                if node.get("format") in {"date", "date-time", "time"}:
                    node.pop("format")
                for value in node.values():
                    strip(value)
            elif isinstance(node, list):
                for value in node:
                    strip(value)

        strip(self.schema.get("properties", {}))

    def _warn_deprecated(self, entity: Entity, written: Sequence[str]) -> None:
        """One warning per written field the schema file deprecates, with Moovago's reason."""
        reasons: dict[str, str] = {}
        for type_name in (entity.create_input, entity.update_data_input):
            if type_name:
                for issue in field_report(self.run.schema, type_name, written):
                    if issue.status == DEPRECATED:
                        reasons.setdefault(issue.field, issue.detail)
        for name, reason in reasons.items():
            self.logger.warning(
                "Stream %s: column for %s.%s is written, but the schema file deprecates it "
                "(%s); stop writing it before Moovago removes it",
                self.label,
                entity.type_name,
                name,
                reason,
            )

    @property
    def include_sdc_metadata_properties(self) -> bool:
        """Keep `_sdc_deleted_at` on records (the SDK drops it otherwise); never sent."""
        return True

    def get_validator(self) -> None:
        """Rows are validated against the API's input types, row by row, in plan."""
        return

    # draining; a child stream may drain its parent first -----------------------------------

    def start_drain(self) -> dict:
        self._drain_lock.acquire()
        self.run.count_drain(1)
        self._draining_thread = threading.get_ident()
        self._pending = None
        return super().start_drain()

    def mark_drained(self) -> None:
        super().mark_drained()
        self._release_drain()
        self._target.emit_settled_state(drained_one=True)  # type: ignore[attr-defined]

    def _release_drain(self) -> None:
        self._draining_thread = None
        if self._drain_lock.locked():
            self.run.count_drain(-1)
            self._drain_lock.release()

    def drain_pending(self) -> None:
        """Write this sink's held and pending rows now (a child stream needs their ids)."""
        self.flush_held()
        # Inside this sink's own drain (a release it triggered), its batch is already held.
        if self.current_size and self._draining_thread != threading.get_ident():
            self._target.drain_one(self)

    @property
    def has_held(self) -> bool:
        """Rows held, or being written after the hold: no STATE may cover them yet."""
        return bool(self._held) or self._flushing > 0

    def flush_held(self, *, wait: bool = True) -> None:
        """Write the held rows; the sink's later batches wait for them (rows in order).
        With `wait` False, return at once when another thread is writing them."""
        if not self._flush_lock.acquire(blocking=wait):
            return
        try:
            with self.run.hold_lock:
                held, self._held = self._held, []
                self._held_keys.clear()
                self._flushing += 1
            try:
                if held:
                    self._write(held)
            finally:
                with self.run.hold_lock:
                    self._flushing -= 1
        finally:
            self._flush_lock.release()

    # the work --------------------------------------------------------------------------------

    def process_record(self, record: dict, context: dict) -> None:
        super().process_record(record, context)
        self.rows_received += 1
        self._pending = context["records"]

    def count_pending_writes(self) -> int:
        """Writes the pending rows would make, planned without side effects (no request but
        the prefetch). A row whose parent reference does not resolve yet counts as a write."""
        records = self._pending or []
        if not records:
            return 0
        rows = []
        writes = 0
        for number, record in enumerate(records, start=1):
            row = Row(number, record, self.mapper.convert(record))
            resolved = self._resolve_references(row, account=False)
            if resolved:
                rows.append(row)
            else:
                writes += 1
        actions = self._planner().plan(rows)
        return writes + sum(1 for a in actions if a.kind in WRITES)

    def _planner(self) -> Planner:
        return Planner(
            index=self.index(),
            create_validator=self.create_validator,
            update_validator=self.update_validator,
            mode=self.mode,
            hard_delete=bool(self.config.get("hard_delete")),
            clearable=self.clearable,
        )

    def index(self) -> RemoteIndex:
        if self._index is None:
            fields = [f for f in self.mapper.mapped_fields(self.columns) if f in self.output_fields]
            self._index = self.run.index(self.entity, fields)
        return self._index

    def process_batch(self, context: dict) -> None:
        """Write or reject every row of the batch before returning (STATE follows drains)."""
        try:
            records = context.get("records") or []
            if records:
                self._process(records)
            self.rows_settled = self._rows_seen
        except BaseException as exc:
            self._release_drain()
            if isinstance(exc, TargetStopped):
                self._target.emit_settled_state()  # type: ignore[attr-defined]
            # Other sinks may still be writing: the summary says what was done until now.
            self.run.finish(failed=True)
            raise

    def _process(self, records: Sequence[dict]) -> None:
        self.index()
        first = self._rows_seen + 1
        self._rows_seen += len(records)
        numbered = list(enumerate(records, start=first))
        with self.run.hold_lock:
            holding = self.run.holding
            if holding and not self._hold(numbered):
                return
        if holding:
            self.run.release_held()  # this batch crossed bulk_threshold; it is held too
        else:
            self.flush_held()
            self._write(numbered)

    def _row(self, number: int, record: Mapping[str, t.Any]) -> Row:
        row = Row(number, record, self.mapper.convert(record))
        if row.mapped.unknown:
            new = self.run.ledger.note_unknown(self.label, row.mapped.unknown)
            if new and not self._warned_unknown:
                self._warned_unknown = True
                self.logger.warning(
                    "Stream %s: unknown columns ignored: %s", self.label, ", ".join(new)
                )
        return row

    def _hold(self, numbered: Sequence[tuple[int, Mapping[str, t.Any]]]) -> bool:
        """Plan without writing (bulk rule undecided): account now the rows that make no
        write, hold the others until the run's writes cross bulk_threshold or the input ends.
        True when these rows crossed it (the rule is decided: release every held row)."""
        # Memory vs strictness: keep only rows that write (<= bulk_threshold) or share their key.
        planner = self._planner()
        rows, held = [], []
        for number, record in numbered:
            row = self._row(number, record)
            if self._resolve_references(row, account=False):
                rows.append(row)
            else:
                held.append((number, record))  # its parent may be a held create
        writes = len(held)
        for action in planner.plan(rows):
            identity = planner.identity(action.row)
            keys = {identity} if identity is not None else set()
            if action.record_id:
                keys.add(("id", action.record_id))
            if action.kind in WRITES or keys & self._held_keys:
                self._held_keys |= keys
                held.append((action.row.position, action.row.record))
                writes += int(action.kind in WRITES)
            else:
                self._account(action)
        self._held.extend(sorted(held, key=lambda pair: pair[0]))
        return self.run.hold(writes)

    def _account(self, action: Action) -> None:
        if action.kind is Kind.REJECT:
            self._reject(action.row, action.reason, action.field)
        elif action.kind not in WRITES:
            self.run.ledger.add(self.label, _KIND_COUNTER[action.kind])

    def _write(self, numbered: Sequence[tuple[int, Mapping[str, t.Any]]]) -> None:
        """Plan the rows against the index, account them and send the writes in batches."""
        self.index()
        rows = []
        for number, record in numbered:
            row = self._row(number, record)
            if self._resolve_references(row):
                rows.append(row)
        actions = self._planner().plan(rows)
        writes = [a for a in actions if a.kind in WRITES]
        for action in actions:
            self._account(action)
        self.run.authorise_writes(len(writes))
        if self.config.get("dry_run"):
            self._dry_run(writes)
            return
        size = int(self.config.get("mutations_per_request", 25))
        for chunk in chunks(writes, size):
            self._send(chunk, depth=0)

    def _resolve_references(self, row: Row, *, account: bool = True) -> bool:
        """Fill `companyId` from a `companyCustomerCode` column; False when it does not resolve
        (the row is rejected when `account`, else left alone: a preflight writes nothing)."""
        for column, (ref, value) in row.mapped.references.items():
            if value in (None, "") or row.payload.get(ref.target_field) not in (None, ""):
                continue
            parent_entity = self.run.entity_for(ref.parent_stream)
            parent_index = self._parent_index(parent_entity, drain=account)
            ids = parent_index.lookup_field(ref.parent_key_field, value)
            if len(ids) != 1:
                if not account:
                    return False
                what = "no" if not ids else f"{len(ids)}"
                reason = f"{what} {ref.parent_stream} records with {ref.parent_key_field}={value!r}"
                self._reject(row, reason, column)
                return False
            row.payload[ref.target_field] = ids[0]
        return True

    def _parent_index(self, parent: Entity, *, drain: bool = True) -> RemoteIndex:
        for name in {parent.stream_name, parent.name}:
            if self._target.sink_exists(name):
                sink = self._target.get_sink(name)
                if isinstance(sink, MoovagoSink):
                    if drain:
                        sink.drain_pending()
                    return sink.index()
        return self.run.index(parent, [])

    def _reject(self, row: Row, reason: str, field: str | None) -> None:
        record = {
            k: v
            for k, v in row.record.items()
            if not k.startswith(SDC_PREFIX) or (k == DELETED_AT and v is not None)
        }
        self.logger.warning(
            "Stream %s, %s rejected%s: %s",
            self.label,
            row.key_label(self.key_specs),
            f" (field {field})" if field else "",
            reason,
        )
        self.run.ledger.reject(
            self.label, row.key_label(self.key_specs), reason, field=field, row=record
        )

    def _dry_run(self, writes: Sequence[Action]) -> None:
        for action in writes:
            self.run.ledger.add(self.label, _KIND_COUNTER[action.kind])
            shown = self._samples.get(action.kind, 0)
            if shown < SAMPLES_PER_KIND:
                self._samples[action.kind] = shown + 1
                self.logger.info(
                    "dry run: %s %s %s",
                    self.label,
                    action.kind.value,
                    json.dumps(action.variables(), default=str, ensure_ascii=False),
                )

    # sending -------------------------------------------------------------------------------

    def _send(self, chunk: list[Action], depth: int, rounds: int = 0) -> None:
        self.run.check_stop()
        document, variables, aliases = mutation_document(self.entity, chunk)
        has_creates = any(a.kind is Kind.CREATE for a in chunk)
        # The real time, not the injectable business-hours clock: it bounds a query on the server.
        started = dt.datetime.now(dt.timezone.utc)
        errors: dict[str, str] = {}
        try:
            data = self.run.client.execute(
                document,
                variables,
                operation_name=operation_name(document),
                retry_ambiguous=not has_creates,
            )
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
            self._after_ambiguous_failure(chunk, started, rounds, err)
            return
        results = data.get(self.entity.mutation_field or "") or {}
        for alias, action in zip(aliases, chunk, strict=True):
            result = results.get(alias)
            if result and result.get("recordId"):
                self._confirm(action, str(result["recordId"]))
            else:
                reason = errors.get(alias, "the API returned no result for this mutation")
                self._reject(action.row, f"{action.kind.value} failed: {reason}", None)

    def _whole_request_failed(self, chunk: list[Action], depth: int, err: QueryError) -> None:
        """`data: null` rejects every alias: halve to find the rows that cause it."""
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
            self._reject(action.row, f"{action.kind.value} refused: {messages}", None)

    def _after_ambiguous_failure(
        self, chunk: list[Action], started: dt.datetime, rounds: int, err: TransientError
    ) -> None:
        """The request may have been applied: find the creates that landed, resend the rest."""
        creates = [a for a in chunk if a.kind is Kind.CREATE]
        index = self.index()
        fields = list(index.fields)
        since = started - RECONCILE_MARGIN
        recent = RemoteIndex(fields, self.key_specs)
        extra: dict[str, t.Any] = {}
        if self.entity.updated_since_field:
            extra[self.entity.updated_since_field] = format_datetime(since)
        found_records = {}
        for record in self.run.list_records(self.entity, fields, **extra):
            record_id = str(record["id"])
            if record_id not in index:
                recent.add(record_id, record)
                found_records[record_id] = record
        landed = 0
        remaining = []
        for action in chunk:
            if action.kind is not Kind.CREATE:
                remaining.append(action)
                continue
            match = self._find_landed(recent, found_records, action)
            if match is None:
                remaining.append(action)
            else:
                recent.remove(match)
                found_records.pop(match, None)
                landed += 1
                self._confirm(action, match)
        self.logger.warning(
            "Stream %s: request of %d mutations failed ambiguously (%s); %d of %d creates had "
            "landed, resending %d",
            self.label,
            len(chunk),
            err,
            landed,
            len(creates),
            len(remaining),
        )
        if not remaining:
            return
        if rounds + 1 >= MAX_AMBIGUOUS_ROUNDS:
            for action in remaining:
                self._reject(
                    action.row,
                    f"{action.kind.value} not confirmed after {MAX_AMBIGUOUS_ROUNDS} ambiguous "
                    f"failures ({err}); not sent again to avoid a duplicate",
                    None,
                )
            return
        self._send(remaining, depth=0, rounds=rounds + 1)

    def _find_landed(
        self, recent: RemoteIndex, records: Mapping[str, Mapping[str, t.Any]], action: Action
    ) -> str | None:
        spec, ids = recent.find(action.data)
        if spec is not None:
            return ids[0] if ids else None
        for record_id, record in records.items():  # no key: the same values mean the same row
            if all(record.get(k) == v for k, v in action.data.items() if k in record):
                return record_id
        return None

    def _confirm(self, action: Action, record_id: str) -> None:
        index = self.index()
        if action.kind is Kind.CREATE:
            index.add(record_id, action.data)
        elif action.kind is Kind.UPDATE:
            index.update(record_id, action.data)
        elif action.kind is Kind.DELETE:
            index.remove(record_id)
        self.run.ledger.add(self.label, _KIND_COUNTER[action.kind])
