"""The sink, wiring the SDK to the row's path (map, resolve parents, decide, gate, write), and
the run every sink of one target shares (`Run`).

The target drains a parent stream's pending rows before a child's batch, so a child never
drains its parent from inside its own drain.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import logging
import time
import typing as t
from collections.abc import Callable, Mapping, Sequence

from singer_sdk.sinks import BatchSink

from moovago_api.errors import MoovagoError
from moovago_api.wire import is_loopback_url, secret_forms
from target_moovago.decide import KEYLESS_SETTING, WRITES, Decider, InputValidator, PendingIds, Row
from target_moovago.index import SDC_PREFIX, FieldMapper, RemoteIndex, id_input_fields
from target_moovago.ledger import ChangeLog, Ledger, Tally, check_writable
from target_moovago.reader import batch_records
from target_moovago.remote import Remote, match_key_problems, match_keys_hint, writes_of
from target_moovago.runlock import BulkGate
from target_moovago.writer import BatchWriter

if t.TYPE_CHECKING:
    from singer_sdk import Target

    from moovago_api.plan import MutationShape
    from moovago_api.schema import Entity, MoovagoSchema
    from target_moovago.index import RemoteIndex

DEFAULT_MAX_REQUEST_BYTES = 1_048_576  # 1 MiB: a common proxy default (nginx, API gateways)
# Input fields that name a parent record; a row may name it by the parent's match key instead.
PARENT_FIELDS = {"companyId": "company", "mandatorId": "mandator"}


class TargetStopped(MoovagoError):
    """A termination signal stopped the run after the request in flight."""

    def __init__(self, signum: int) -> None:
        super().__init__(
            f"stopped by signal {signum}: every row before the last STATE emitted is written, "
            "rejected or counted; rerun from that STATE (from the start if none was emitted)"
        )


class Run:
    """What every sink of one run shares, its settings parsed once: the remote side, the
    ledger, the change log, the business-hours gate, the pending creates and progress; and
    the run's lifecycle (stop on a signal, finish once)."""

    def __init__(
        self,
        config: Mapping[str, t.Any],
        logger: logging.Logger,
        *,
        clock: Callable[[], dt.datetime],
        sleep: Callable[[float], None],
        production: bool | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        drain_streams: Callable[[Sequence[str]], None] = lambda _names: None,
        emit_state: Callable[[], None] = lambda: None,
    ) -> None:
        self.logger = logger
        self.drain_streams = drain_streams  # drains the pending rows of the named streams
        self.emit_state = emit_state  # emits the newest STATE whose rows are all settled
        self.summary_path: str | None = config.get("summary_path")
        self.dry_run = bool(config.get("dry_run"))
        self.hard_delete = bool(config.get("hard_delete"))
        self.skip_read_only = (config.get("read_only_streams") or "skip") == "skip"
        self.mutations_per_request = int(config.get("mutations_per_request", 25))
        self.max_request_bytes = int(config.get("max_request_bytes") or DEFAULT_MAX_REQUEST_BYTES)
        self.request_limit = self.max_request_bytes  # lowered when the server answers 413
        self.remote = Remote(config, logger)
        secrets = secret_forms(str(config.get("api_key") or ""))
        rejects = config.get("rejects_path") or "moovago-rejects.jsonl"
        self.ledger = Ledger(rejects, config.get("max_rejects"), secrets, clock, logger, monotonic)
        self.ledger.dry_run = self.dry_run
        changes = None if self.dry_run else config.get("changes_path")
        self.changes = ChangeLog(changes, clock=clock, secrets=secrets)
        # Checked before any request: a run must not fail on its outputs after writing rows.
        check_writable("rejects_path", self.ledger.rejects_path)
        if self.summary_path:
            check_writable("summary_path", self.summary_path)
        if production is None:
            production = not is_loopback_url(str(config.get("api_url") or ""))
        self.gate = BulkGate(
            production=production,
            policy=config.get("business_hours") or "refuse",
            threshold=int(config.get("bulk_threshold", 500)),
            clock=clock,
            sleep=sleep,
            logger=logger,
        )
        self.pending = PendingIds()
        self.tallies: list[Tally] = []  # one per sink, in the order they were opened
        self.draining = False  # a sink is draining now
        self.draining_all = False  # the target is draining every sink
        self.stop_signal: int | None = None  # a termination signal was received
        self.stopping = False  # and asked to send no further request
        self._finished = False
        if config.get("api_url") and config.get("api_key"):
            self.remote.client  # noqa: B018 - a bad connection setting fails now, not mid-run

    def tally(self, stream: str) -> Tally:
        """A new sink's tally: its rows received and settled, for STATE and progress."""
        tally = self.ledger.tally(stream)
        self.tallies.append(tally)
        return tally

    def skips(self, stream: str, *, rows: int = 0) -> bool:
        """A read-only stream under `read_only_streams: skip`: warned about once, its rows
        counted in the summary and never written."""
        skipped = self.ledger.read_only_skipped
        if stream not in skipped:
            if not (self.skip_read_only and self.remote.read_only(stream)):
                return False
            self.logger.warning(
                "Stream '%s' is read-only in the Moovago API (it has no mutations): its rows "
                "are skipped and counted in the summary (read_only_streams=error refuses it).",
                stream,
            )
        skipped[stream] = skipped.get(stream, 0) + rows
        return True

    def marks(self) -> dict[Tally, int]:
        """Rows received by each sink so far: a STATE received now covers them."""
        return {tally: tally.received for tally in self.tallies}

    def settled(self, marks: Mapping[Tally, int]) -> bool:
        """Every row counted in `marks` is written, rejected or counted, and none is held."""
        return not self.gate.holding and all(tally.settled >= n for tally, n in marks.items())

    def stop(self, signum: int, *, at_once: bool) -> None:
        """A termination signal: `at_once` (inside a drain, or input all read) sends no
        further request; otherwise the rows read so far are written first."""
        self.stop_signal = signum
        self.stopping = self.stopping or at_once

    def check_stop(self) -> None:
        """Before each request: raise once a termination signal asked to stop sending."""
        if self.stopping and self.stop_signal is not None:
            raise TargetStopped(self.stop_signal)

    def failed(self, exc: BaseException) -> None:
        """A drain failed: after a signal, emit the STATE its settled rows allow; then write
        the summary of what was done until now."""
        if isinstance(exc, TargetStopped):
            self.emit_state()
        self.finish(failed=True)

    def finish(self, *, failed: bool) -> None:
        """Log the summary table and write the JSON summary, once per run."""
        if self._finished:
            return
        self._finished = True
        self.changes.close()
        summary = {**self.ledger.summary(self.remote.stats()), "failed": failed}
        if self.changes.path is not None:  # what `moovago-revert --run` takes
            summary["changes"] = {"path": str(self.changes.path), "run_id": self.changes.run_id}
        self.logger.info("target-moovago summary\n%s", Ledger.table(summary))
        if self.summary_path:
            self.ledger.write_summary(self.summary_path, summary)

    def close(self) -> None:
        self.remote.close()


class MoovagoSink(BatchSink):
    """Writes one stream: map, decide against the remote index, gate, write, account."""

    def __init__(
        self,
        target: Target,
        stream_name: str,
        schema: dict,
        key_properties: t.Sequence[str] | None,
    ) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        run = getattr(target, "run", None)
        if not isinstance(run, Run):
            msg = "MoovagoSink is the sink of TargetMoovago (a target with a run)"
            raise TypeError(msg)
        self.run = run
        remote = run.remote
        self.entity = entity = remote.entity_for(stream_name)
        self.label = entity.stream_name
        self.writes = writes_of(entity)
        create_schema = input_schema(remote.schema, self.writes.shapes.get("create"))
        update_schema = input_schema(remote.schema, self.writes.shapes.get("update"))
        props = {**update_schema["properties"], **create_schema["properties"]}
        output = remote.schema.output_json_schema(entity.type_name)["properties"]
        parents = self._parents(props)
        # The streams whose pending rows the target drains before this one's batch.
        self.parent_streams = tuple(stream for stream, _ in parents.values())
        data_types = [s.data_type for kind, s in self.writes.shapes.items() if kind != "delete"]
        self.mapper = FieldMapper(
            props,
            output,
            parents,
            id_fields=id_input_fields(remote.schema.graphql, data_types),
            keep_empty=remote.stream_setting("keep_empty_strings", entity) or (),
        )
        self.key_specs = remote.key_specs(entity)
        self.output_fields = set(output)
        types = {name: prop.get("type", []) for name, prop in output.items()}  # str or list
        self.decider = functools.partial(
            Decider,
            create_validator=InputValidator(create_schema),
            update_validator=InputValidator(update_schema),
            mode=remote.mode(entity),
            hard_delete=run.hard_delete,
            clearable=frozenset(n for n, k in types.items() if "null" in k and "array" not in k),
            keyless_creates=bool(remote.stream_setting(KEYLESS_SETTING, entity)),
            key_hint=match_keys_hint(remote.schema, entity),
            policies=remote.field_policies(entity),
        )
        # The SDK would parse a column's date strings (its `format`, or one of its `anyOf`) into
        # datetimes and stop the run on a bad one; we keep the strings, checked per row in decide.
        self.schema = copy.deepcopy(self.schema)
        for column in self.schema.get("properties", {}).values():
            for node in [column, *column.get("anyOf", [])] if isinstance(column, dict) else []:
                if isinstance(node, dict):
                    node.pop("format", None)
        columns = [c for c in self.schema.get("properties", {}) if not c.startswith(SDC_PREFIX)]
        cmap = self.mapper.column_map(columns)
        if cmap.unknown:
            run.ledger.note_unknown(self.label, cmap.unknown)
            self.logger.warning(
                "Stream %s: columns that are not %s input fields are ignored: %s",
                self.label,
                entity.type_name,
                ", ".join(cmap.unknown),
            )
        self._warned_unknown = bool(cmap.unknown)
        self._warned_key_properties = False
        self._warn_deprecated(entity, set(cmap.fields.values()))
        written = None
        if not cmap.id_column:
            written = {*cmap.fields.values(), *(r.target_field for r in cmap.references.values())}
        keys = remote.key_fields(entity)
        for problem in match_key_problems(remote.schema, entity, keys, written=written):
            self.logger.warning("Stream %s: %s", self.label, problem)
        fields = [f for f in self.mapper.mapped_fields(columns) if f in self.output_fields]
        if run.changes.path is not None and run.hard_delete:  # to create it again
            fields += [f for f in create_schema["properties"] if f in output and f not in fields]
        self.writer = BatchWriter(run, entity, self.key_specs, fields)
        self._rows_seen = 0  # rows of this stream before the current batch, for row numbers
        self.tally = run.tally(self.label)

    def _parents(self, props: Mapping[str, t.Any]) -> dict[str, tuple[str, list[str]]]:
        """Parents a row may name by their match key (`companyCustomerCode`). A parent the
        file lacks, or whose keys it cannot read, only disables that, with a warning."""
        remote = self.run.remote
        parents = {}
        for name, parent_stream in PARENT_FIELDS.items():
            if name not in props or parent_stream == self.entity.stream_name:
                continue
            parent = remote.parent_entity(parent_stream)
            keys = [f for s in remote.key_specs(parent) for f in s.fields] if parent else []
            if keys:
                parents[name] = (parent_stream, keys)
                continue
            why = "no such entity" if parent is None else "no usable match key"
            self.logger.warning(
                "Stream %s: %s cannot be resolved by natural key (%s has %s in %s); rows must "
                "give %s",
                self.label,
                name,
                parent_stream,
                why,
                remote.schema.path,
                name,
            )
        return parents

    def _warn_deprecated(self, entity: Entity, written: t.Collection[str]) -> None:
        """One warning per written field the schema file deprecates, with Moovago's reason."""
        shapes = [self.writes.shapes.get(k) for k in ("create", "update")]
        reasons: dict[str, str] = {}
        for field in [f for shape in shapes if shape is not None for f in shape.fields]:
            if field.name in written and field.deprecation is not None:
                reasons.setdefault(field.name, field.deprecation)
        for name, reason in reasons.items():
            self.logger.warning(
                "Stream %s: column for %s.%s is written, but the schema file deprecates it "
                "(%s); stop writing it before Moovago removes it",
                self.label,
                entity.type_name,
                name,
                reason,
            )

    # the SDK's hooks ----------------------------------------------------------------------------

    @property
    def include_sdc_metadata_properties(self) -> bool:
        """Keep `_sdc_deleted_at` on records (the SDK drops it otherwise); never sent."""
        return True

    def get_validator(self) -> None:
        """Rows are validated against the API's input types, row by row, in decide."""
        return

    # Private: the SDK's only hook for key_properties; its MissingKeyPropertiesError ends runs.
    def _singer_validate_message(self, record: dict) -> None:
        """key_properties naming columns a record lacks: one warning per stream, the row goes
        on (the target matches on id and its own match keys, never on key_properties)."""
        missing = [k for k in self.key_properties if k not in record]
        if missing and not self._warned_key_properties:
            self._warned_key_properties = True
            self.logger.warning(
                "Stream %s: key_properties name columns records lack (%s); ignored: the target "
                "matches rows by id and match_keys",
                self.label,
                ", ".join(missing),
            )

    def process_batch_files(self, encoding: t.Any, files: t.Sequence[str]) -> None:
        """Each file as the reader checked it (resolved, lines bounded); the SDK's version
        would open it again relative to a `batch_config` storage root instead."""
        for path in files:
            records = list(batch_records(path, gzipped=encoding.compression == "gzip"))
            self.record_counter_metric.increment(len(records))
            self.process_batch({"records": records})

    def process_record(self, record: dict, context: dict) -> None:
        super().process_record(record, context)
        self.tally.received += 1
        if self.is_full and self.parent_streams:
            self.run.drain_streams(self.parent_streams)  # parents first: the SDK drains us next

    def start_drain(self) -> dict:
        self.run.draining = True
        return super().start_drain()

    def mark_drained(self) -> None:
        super().mark_drained()
        self.run.draining = False

    def process_batch(self, context: dict) -> None:
        """Write or reject every row of the batch before returning (STATE follows drains)."""
        try:
            records = context.get("records") or []
            if records:
                self._process(records)
            self.tally.settled = self._rows_seen
            if not self.run.draining_all:  # else the SDK writes the STATE once all are drained
                self.run.emit_state()
        except BaseException as exc:
            self.run.draining = False
            self.run.failed(exc)
            raise

    # the row's path -------------------------------------------------------------------------

    def index(self) -> RemoteIndex:
        """The entity's remote index, prefetched at the stream's first drain."""
        return self.run.remote.index(self.entity, self.writer.fields)

    def _process(self, records: Sequence[dict]) -> None:
        """Plan the batch once against the index as the planned writes will leave it, settle
        what writes nothing, and hand the writes to the business-hours gate."""
        writer = self.writer
        writer.settle_killed_writes(self.output_fields)
        index = self.index()
        rows = []
        for number, record in enumerate(records, start=self._rows_seen + 1):
            row = self._row(number, record)
            if self._resolve_references(row, writer):
                rows.append(row)
        self._rows_seen += len(records)
        actions = self.decider(index=index).decide(rows)
        writes = [a for a in actions if a.kind in WRITES]
        writer.project(writes)
        for action in actions:
            if action.held:
                self.run.ledger.note_held(self.label, action.held)
            writer.account(action)
        if writes:
            self.run.gate.admit(writer.write, writes)

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

    def _resolve_references(self, row: Row, writer: BatchWriter) -> bool:
        """Fill `companyId` from a `companyCustomerCode` column; a reference that does not
        resolve to exactly one parent rejects the row (False)."""
        remote = self.run.remote
        for column, (ref, value) in row.mapped.references.items():
            if value in (None, "") or row.payload.get(ref.target_field) not in (None, ""):
                continue
            parent = remote.parent_entity(ref.parent_stream)
            if parent is None:  # mapped only for parents the file has
                continue
            parent_index = remote.index(parent, [])
            ids = parent_index.lookup_field(ref.parent_key_field, value)
            if len(ids) != 1:
                what = "no" if not ids else f"{len(ids)}"
                reason = f"{what} {ref.parent_stream} records with {ref.parent_key_field}={value!r}"
                writer.reject(row, reason, column)
                return False
            row.payload[ref.target_field] = ids[0]
        return True


def input_schema(schema: MoovagoSchema, shape: MutationShape | None) -> dict[str, t.Any]:
    """JSON Schema of the data a call writes (the id excluded), for row validation."""
    if shape is None or shape.data_type is None:
        return {"type": "object", "properties": {}, "additionalProperties": False}
    result = schema.input_json_schema(shape.data_type)
    if shape.id_field is not None and shape.data_field is None:
        result["properties"].pop(shape.id_field, None)
        required = [n for n in result.get("required", []) if n != shape.id_field]
        result.pop("required", None)
        if required:
            result["required"] = required
    return result
