"""The sink: wires the SDK to the row's path (map, resolve parents, plan, gate, write).

Each sink gets its run (`Run`) from the target; the target drains a parent stream's pending
rows before a child's batch, so a child never drains its parent from inside its own drain.
"""

from __future__ import annotations

import copy
import functools
import typing as t
from collections.abc import Mapping, Sequence

from singer_sdk.sinks import BatchSink

from target_moovago.index import SDC_PREFIX, FieldMapper, RemoteIndex, id_input_fields
from target_moovago.plan import KEYLESS_SETTING, WRITES, InputValidator, Planner, Row
from target_moovago.reader import batch_records
from target_moovago.remote import match_key_problems, match_keys_hint, writes_of
from target_moovago.run import HasRun
from target_moovago.writer import BatchWriter

if t.TYPE_CHECKING:
    from singer_sdk import Target

    from moovago_api.plan import MutationShape
    from moovago_api.schema import Entity, MoovagoSchema

# Input fields that name a parent record; a row may name it by the parent's match key instead.
PARENT_FIELDS = {"companyId": "company", "mandatorId": "mandator"}


def _json_types(prop: t.Mapping[str, t.Any]) -> set[str]:
    kind = prop.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def _strip_date_formats(node: t.Any) -> None:
    if isinstance(node, dict):
        if node.get("format") in {"date", "date-time", "time"}:
            node.pop("format")
        for value in node.values():
            _strip_date_formats(value)
    elif isinstance(node, list):
        for value in node:
            _strip_date_formats(value)


class MoovagoSink(BatchSink):
    """Writes one stream: map, plan against the remote index, gate, write, account."""

    def __init__(
        self,
        target: Target,
        stream_name: str,
        schema: dict,
        key_properties: t.Sequence[str] | None,
    ) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        if not isinstance(target, HasRun):
            msg = "MoovagoSink is the sink of TargetMoovago (a target with a run)"
            raise TypeError(msg)
        self.run = target.run
        remote = self.run.remote
        self.entity = entity = remote.entity_for(stream_name)
        self.label = entity.stream_name
        api_schema = remote.schema
        self.writes = writes_of(entity)
        create_schema = self._input_schema("create")
        update_schema = self._input_schema("update")
        props = {**update_schema["properties"], **create_schema["properties"]}
        output = api_schema.output_json_schema(entity.type_name)["properties"]
        parents = self._parents(props)
        # The streams whose pending rows the target drains before this one's batch.
        self.parent_streams = tuple(stream for stream, _ in parents.values())
        self.mapper = FieldMapper(
            props,
            output,
            parents,
            id_fields=id_input_fields(
                api_schema.graphql,
                [shape.data_type for kind, shape in self.writes.shapes.items() if kind != "delete"],
            ),
            keep_empty=remote.stream_setting("keep_empty_strings", entity) or (),
        )
        self.key_specs = remote.key_specs(entity)
        self.output_fields = set(output)
        clearable = frozenset(
            name
            for name, prop in output.items()
            if "null" in _json_types(prop) and "array" not in _json_types(prop)
        )
        self.planner = functools.partial(
            Planner,
            create_validator=InputValidator(create_schema),
            update_validator=InputValidator(update_schema),
            mode=remote.mode(entity),
            hard_delete=self.run.hard_delete,
            clearable=clearable,
            keyless_creates=bool(remote.stream_setting(KEYLESS_SETTING, entity)),
            key_hint=match_keys_hint(api_schema, entity),
            policies=remote.field_policies(entity),
        )
        # The SDK would parse date strings with `format` into datetimes and stop the whole run
        # on a bad one; we keep the strings and validate them per row against the API input type.
        self.schema = copy.deepcopy(self.schema)
        _strip_date_formats(self.schema.get("properties", {}))
        self.columns = [
            c for c in self.schema.get("properties", {}) if not c.startswith(SDC_PREFIX)
        ]
        cmap = self.mapper.column_map(self.columns)
        if cmap.unknown:
            self.run.ledger.note_unknown(self.label, cmap.unknown)
            self.logger.warning(
                "Stream %s: columns that are not %s input fields are ignored: %s",
                self.label,
                entity.type_name,
                ", ".join(cmap.unknown),
            )
        self._warned_unknown = bool(cmap.unknown)
        self._warned_key_properties = False
        self._warn_deprecated(entity, sorted(set(cmap.fields.values())))
        written = None
        if not cmap.id_column:
            written = {*cmap.fields.values(), *(r.target_field for r in cmap.references.values())}
        keys = remote.key_fields(entity)
        for problem in match_key_problems(api_schema, entity, keys, written=written):
            self.logger.warning("Stream %s: %s", self.label, problem)
        fields = [f for f in self.mapper.mapped_fields(self.columns) if f in self.output_fields]
        if self.run.changes.path is not None and self.run.hard_delete:  # to create it again
            fields += [f for f in create_schema["properties"] if f in output and f not in fields]
        self.writer = BatchWriter(self.run, entity, self.key_specs, fields)
        self._rows_seen = 0  # rows of this stream before the current batch, for row numbers
        self.tally = self.run.tally(self.label)

    def _input_schema(self, kind: str) -> dict[str, t.Any]:
        """JSON Schema of what a `kind` call writes; empty when the file has no such call
        (the stream's mode never sends it: checked at start)."""
        shape = self.writes.shapes.get(kind)
        return input_schema(self.run.remote.schema, shape)

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

    def _warn_deprecated(self, entity: Entity, written: Sequence[str]) -> None:
        """One warning per written field the schema file deprecates, with Moovago's reason."""
        reasons: dict[str, str] = {}
        shapes = self.writes.shapes
        for shape in [shapes[k] for k in ("create", "update") if k in shapes]:
            for field in shape.fields:  # the plan's input fields carry their deprecation
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
        """Rows are validated against the API's input types, row by row, in plan."""
        return

    # Private SDK hook (no public one): its MissingKeyPropertiesError would end the run.
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
            records = batch_records(path, gzipped=encoding.compression == "gzip")
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
        actions = self.planner(index=index).plan(rows)
        writes = [a for a in actions if a.kind in WRITES]
        writer.project(writes)
        for action in actions:
            if action.held:
                self.run.ledger.note_held(self.label, action.held)
            writer.account(action)
        if writes:
            self.run.gate.admit(writer, writes)

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
