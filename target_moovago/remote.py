"""The remote side of a run: schema, client, team, entity and key resolution, index reads.

What target-postgres calls its connector. Every request of the run goes through the one client
made here (one rate governor); lists are read only through the shared pager (`list_pager`).

The schema file held against what the target writes, at start: whether the match keys (setting
`match_keys`) can find a row's remote record, with the example every key message ends with, and
the mutations no stream uses.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import typing as t
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence

from graphql import GraphQLField, GraphQLObjectType, get_named_type, is_leaf_type

from moovago_api import documents
from moovago_api.documents import Selection
from moovago_api.errors import ConfigError, MoovagoError
from moovago_api.mutations import (
    EntityWrites,
    check_writes,
)
from moovago_api.pager import Pager
from moovago_api.plan import SETTING as PLANS_SETTING
from moovago_api.plan import InputField
from moovago_api.schema import Entity, MoovagoSchema, load_schema
from moovago_api.settings import client_from_config
from moovago_api.wire import parse_datetime
from moovago_api.write_plan import KINDS, find_mutation
from target_moovago.index import DEFAULT_MATCH_KEYS, KeySpec, RemoteIndex, parse_normalize
from target_moovago.ledger import ReadOnlyStreamError, UnsupportedStreamError
from target_moovago.plan import Mode, Policy
from target_moovago.runlock import RunLock

if t.TYPE_CHECKING:
    from moovago_api.client import MoovagoClient


PAGE_SIZE = 1000


def _selection(gql_type: GraphQLObjectType, names: Iterable[str]) -> list[Selection]:
    """Fields to read for `names`: leaves as is, objects with their leaf sub-fields."""
    selected: list[Selection] = []
    for name in names:
        gql_field = gql_type.fields.get(name)
        if gql_field is None:
            continue
        named = get_named_type(gql_field.type)
        if is_leaf_type(named):
            selected.append(name)
        elif isinstance(named, GraphQLObjectType):
            leaves = [n for n, f in named.fields.items() if is_leaf_type(get_named_type(f.type))]
            selected.append((name, leaves))
    return selected


def list_pager(schema: MoovagoSchema, entity: Entity, fields: Iterable[str]) -> Pager:
    """The shared pager reading `entity`'s `id` and `fields` (the index and reconciliation)."""
    if not entity.filter_arg:
        msg = f"{entity.root_field} takes no filter argument: the target cannot scope it"
        raise MoovagoError(msg)
    gql_type = schema.graphql.get_type(entity.type_name)
    if not isinstance(gql_type, GraphQLObjectType):
        msg = f"the schema file has no object type {entity.type_name} to read {entity.name} from"
        raise MoovagoError(msg)
    names = [entity.id_field, *(f for f in fields if f not in ("id", entity.id_field))]
    return Pager(
        schema,
        entity,
        _selection(gql_type, names),
        operation_name=f"TargetMoovago{entity.type_name}Index",
        label=f"Stream '{entity.stream_name}' (target index)",
    )


def writes_of(entity: Entity) -> EntityWrites:
    """The write side the schema file declares for `entity` (attached when it was loaded)."""
    if entity.writes is None:
        msg = f"entity {entity.name!r} has no write description"
        raise UnsupportedStreamError(msg)
    return entity.writes


def needed_kinds(mode: Mode, hard_delete: bool) -> list[str]:
    """The mutations a stream may send: checked against the file before any row is read."""
    kinds = {Mode.UPSERT: ["create", "update"], Mode.CREATE_ONLY: ["create"]}.get(mode, ["update"])
    return [*kinds, "delete"] if hard_delete else kinds


class Remote:
    """Moovago as one run sees it: loaded once, read on demand."""

    def __init__(self, config: Mapping[str, t.Any], logger: logging.Logger) -> None:
        self.config = config
        self.logger = logger
        self._schema: MoovagoSchema | None = None
        self._client: MoovagoClient | None = None
        self._team_id: str | None = None
        self._indexes: dict[str, RemoteIndex] = {}
        self._lock: RunLock | None = None
        # The newest `updatedAt` read this run: the server's clock when no Date header is seen.
        self.newest_updated_at: dt.datetime | None = None
        self._checked: set[str] = set()  # entities whose mutations were validated

    @property
    def schema(self) -> MoovagoSchema:
        if self._schema is None:
            schema = load_schema(self.config.get("schema_path"))
            self._schema = schema.with_plans(self.config.get(PLANS_SETTING))
            # Once per run: mutations of the file the target will never call, each with why.
            for line in unclaimed_mutations(self._schema, self._schema.entities()):
                self.logger.warning(line)
        return self._schema

    @property
    def client(self) -> MoovagoClient:
        if self._client is None:
            self._client = client_from_config(self.config, default_rate=1, logger=self.logger)
        return self._client

    @property
    def requests(self) -> int:
        """Requests sent so far (0 before the client exists)."""
        return self._client.stats.requests if self._client is not None else 0

    def stats(self) -> dict[str, int]:
        if self._client is None:
            return {}
        raw = self._client.stats
        return {k: getattr(raw, k, 0) for k in ("requests", "retries", "rate_limited")}

    def close(self) -> None:
        self.release_lock()
        if self._client is not None:
            self._client.close()

    # one run at a time per account --------------------------------------------------------------

    def take_lock(self) -> None:
        """Before the first read of remote records (so before any write): the run lock of
        this API URL and team, held to the end of the run. A dry run writes nothing: no lock."""
        if self._lock is not None or self.config.get("dry_run"):
            return
        self._lock = RunLock.from_config(self.config, self.team_id, self.logger)

    def release_lock(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    @property
    def team_id(self) -> str:
        if self._team_id is None:
            entity = self.schema.entity("team")
            doc = documents.list_document(
                self.schema, entity, [entity.id_field], name="TargetMoovagoTeam", paged=False
            )
            named = {entity.team_arg: self.config.get("team_id")} if entity.team_arg else {}
            if None in named.values():  # `team(id:)`: the plan names the team, nothing implies it
                msg = f"Query.team({entity.team_arg}:) needs the team id: set team_id"
                raise ConfigError(msg)
            data = self.client.execute(doc, named, operation_name="TargetMoovagoTeam")
            team = data.get("team") or {}
            if not team.get(entity.id_field):
                msg = "the API returned no team for this API key"
                raise MoovagoError(msg)
            self._team_id = str(team[entity.id_field])
        return self._team_id

    # what the config says about an entity ---------------------------------------------------

    def entity_for(self, stream_name: str) -> Entity:
        """The writable entity of a stream; UnsupportedStreamError naming what it can write.
        The mutations its mode needs are built and validated against the file once
        (MutationShapeError: one line naming the mutation and the file)."""
        try:
            entity = self.schema.entity(stream_name)
        except KeyError:
            writable = [e.stream_name for e in self.schema.entities() if writes_of(e).shapes]
            msg = (
                f"stream {stream_name!r} is not a Moovago entity; target-moovago writes "
                f"{', '.join(writable)}"
            )
            raise UnsupportedStreamError(msg) from None
        writes_of(entity)  # UnsupportedStreamError when the file describes no write side
        if self.read_only(stream_name):
            msg = (
                f"stream {stream_name!r} is read-only in the Moovago API (it has no mutations); "
                "remove it from the target's input, or set read_only_streams to skip"
            )
            raise ReadOnlyStreamError(msg)
        if entity.name not in self._checked:
            kinds = needed_kinds(self.mode(entity), bool(self.config.get("hard_delete")))
            check_writes(self.schema, entity, kinds)
            self._checked.add(entity.name)
        return entity

    def read_only(self, stream_name: str) -> bool:
        """The schema file has this entity and declares no mutation for it (e.g. `team`)."""
        entity = self.parent_entity(stream_name)
        writes = entity.writes if entity is not None else None
        return writes is not None and not writes.shapes and not writes.refused

    def parent_entity(self, stream_name: str) -> Entity | None:
        """A parent only needs to be readable (its index resolves natural keys); None when
        the file has no such entity."""
        try:
            return self.schema.entity(stream_name)
        except KeyError:
            return None

    def key_specs(self, entity: Entity) -> list[KeySpec]:
        configured = self.config.get("match_keys") or {}
        names = configured.get(entity.stream_name) or configured.get(entity.name)
        raw = [names] if names else DEFAULT_MATCH_KEYS.get(entity.stream_name, [])
        normalize = self._normalize(entity)
        specs = [KeySpec.parse(list(k), normalize) for k in raw]
        known = set(self.schema.output_json_schema(entity.type_name)["properties"])
        usable = []
        for spec in specs:
            absent = [name for name in spec.fields if name not in known]
            if absent and names:
                msg = (
                    f"match_keys for {entity.stream_name!r} names {absent[0]!r}, "
                    f"which {entity.type_name} does not have in {self.schema.path}; "
                    f"{match_keys_hint(self.schema, entity)}"
                )
                raise ConfigError(msg)
            if not absent:  # a default key the file lacks: the sink warns at start
                usable.append(spec)
        return usable

    def key_fields(self, entity: Entity) -> list[list[str]]:
        """The configured (else default) match keys of `entity`, as written (`name?`)."""
        configured = self.config.get("match_keys") or {}
        names = configured.get(entity.stream_name) or configured.get(entity.name)
        if names:
            return [list(names)]
        return [list(k) for k in DEFAULT_MATCH_KEYS.get(entity.stream_name, [])]

    def _normalize(self, entity: Entity) -> frozenset[str]:
        configured = self.config.get("match_normalize") or {}
        value = configured.get(entity.stream_name, configured.get(entity.name, []))
        try:
            return parse_normalize(entity.stream_name, value)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def stream_setting(self, name: str, entity: Entity) -> t.Any:
        """A per-stream setting's entry for `entity` (by stream or entity name), else None."""
        configured = self.config.get(name) or {}
        if isinstance(configured, list):
            return entity.stream_name in configured or entity.name in configured
        return configured.get(entity.stream_name, configured.get(entity.name))

    def field_policies(self, entity: Entity) -> dict[str, Policy]:
        """Under the stream's name and the entity's (`contact`, `companyContact`) alike."""
        configured = self.config.get("field_policies") or {}
        entry = {**configured.get(entity.name, {}), **configured.get(entity.stream_name, {})}
        return {name: Policy(value) for name, value in entry.items()}

    def mode(self, entity: Entity) -> Mode:
        modes = self.config.get("stream_modes") or {}
        return Mode(modes.get(entity.stream_name) or modes.get(entity.name) or "upsert")

    # reads ----------------------------------------------------------------------------------

    def index(self, entity: Entity, fields: Sequence[str]) -> RemoteIndex:
        """The index of `entity`, prefetched once; tracks at least `fields` and the keys."""
        index = self._indexes.get(entity.name)
        if index is not None and set(fields) <= set(index.fields):
            return index
        self.take_lock()
        previous = index
        tracked = list(dict.fromkeys([*(previous.fields if previous else ()), *fields]))
        index = RemoteIndex(tracked, self.key_specs(entity))
        for record in self.list_records(entity, index.fields):
            index.add(str(record["id"]), record)
        if previous is not None:  # what this run planned (pending creates, updates) stays
            for record_id, values in previous.items():
                index.add(record_id, {**(index.get(record_id) or {}), **values})
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
    ) -> Iterator[dict[str, t.Any]]:
        """Every record of the team (paged, values only in variables), with extra filters."""
        clock = entity.replication_key
        pager = list_pager(self.schema, entity, [*fields, *([clock] if clock else [])])
        flt: dict[str, t.Any] = dict(filters)
        if entity.team_filter_field:
            flt[entity.team_filter_field] = self.team_id
        for record in pager.read(self.client, filter=flt, page_size=PAGE_SIZE):
            record["id"] = record.pop(entity.id_field)  # the target keys records by `id`
            if clock:
                self._saw_update(record.get(clock))
            yield record

    def _saw_update(self, value: t.Any) -> None:
        try:
            seen = parse_datetime(value)
        except ValueError:
            return
        if self.newest_updated_at is None or seen > self.newest_updated_at:
            self.newest_updated_at = seen


_ID_NAME = "id"


def match_key_problems(
    schema: MoovagoSchema,
    entity: Entity,
    keys: Sequence[Sequence[str]] | None,
    *,
    written: Collection[str] | None = None,
) -> list[str]:
    """Sentences saying why the match keys of `entity` will not find existing records in this
    file: none at all, a key field the record type lacks, deprecated, not writable, or absent
    from the input (`written`: the fields the input maps to). Each names `match_keys` with an
    example. [] when the keys are usable."""
    stream = entity.stream_name
    record_type = schema.graphql.get_type(entity.type_name)
    record_fields = record_type.fields if isinstance(record_type, GraphQLObjectType) else {}
    create = entity.writes.shapes.get("create") if entity.writes else None
    inputs = {f.name: f for f in create.fields} if create is not None else None
    fix = match_keys_hint(schema, entity)
    if not keys:
        return [
            f"stream {stream!r} has no match key: rows without an id cannot be matched to "
            f"existing {entity.type_name} records (they are rejected); {fix}"
        ]
    problems: list[str] = []
    for key in keys:
        for raw in key:
            name = raw.rstrip("?")
            label = f"match key {'+'.join(key)} of stream {stream!r}"
            found = record_fields.get(name)
            if found is None:
                problems.append(
                    f"{label}: {entity.type_name} has no field {name!r} in {schema.path}; {fix}"
                )
                continue
            reason = found.deprecation_reason
            if reason is None and inputs is not None and name in inputs:
                reason = inputs[name].deprecation
            if reason is not None:
                problems.append(
                    f"{label}: {entity.type_name}.{name} is deprecated in {schema.path} "
                    f"({reason}); {fix}"
                )
            elif inputs is not None and name not in inputs and name != _ID_NAME:
                problems.append(
                    f"{label}: {entity.type_name}.{name} is not writable in {schema.path} "
                    f"({create.data_type if create else 'the create input'} has no {name!r}), "
                    f"so created records cannot be found by it; {fix}"
                )
            elif written is not None and name not in written and not raw.endswith("?"):
                problems.append(
                    f"{label}: the input has no column for {name!r}, so every row without an "
                    f"id is rejected; add the column or {fix}"
                )
    return problems


def match_keys_hint(schema: MoovagoSchema, entity: Entity) -> str:
    """'set match_keys, e.g. {"visit": ["companyId", ...]}': the fix every key message ends with."""
    record_type = schema.graphql.get_type(entity.type_name)
    record_fields = record_type.fields if isinstance(record_type, GraphQLObjectType) else {}
    create = entity.writes.shapes.get("create") if entity.writes else None
    inputs = {f.name: f for f in create.fields} if create is not None else None
    example = _example(record_fields, inputs)
    return f'set match_keys, e.g. {{"{entity.stream_name}": {json.dumps(example)}}}'


def _example(
    record_fields: Mapping[str, GraphQLField], inputs: Mapping[str, InputField] | None
) -> list[str]:
    """A key to suggest: a live field the record has and a create may write, required first."""

    def usable(name: str) -> bool:
        found = record_fields.get(name)
        return (
            found is not None
            and found.deprecation_reason is None
            and is_leaf_type(get_named_type(found.type))
            and name not in (_ID_NAME, "teamId", "createdAt", "updatedAt")
        )

    if inputs is not None:
        live = [f for f in inputs.values() if f.deprecation is None and usable(f.name)]
        chosen = [f.name for f in live if f.required][:3] or [f.name for f in live][:1]
        if chosen:
            return chosen
    names = [n for n in record_fields if usable(n)]
    return names[:1] or ["<field>"]


def unclaimed_mutations(schema: MoovagoSchema, entities: Iterable[Entity]) -> list[str]:
    """One sentence per Mutation field no entity uses (a write the target cannot do)."""
    mutation = schema.graphql.mutation_type
    if mutation is None:
        return []
    claimed: set[str] = set()
    for entity in entities:
        claimed.update(s.path[0] for s in (entity.writes.shapes if entity.writes else {}).values())
        for kind in KINDS:
            found = find_mutation(schema, entity, kind)
            if found is not None:
                claimed.add(found[1][0])
    return [
        f"Mutation.{name} in {schema.path} is not used: it matches no entity's "
        "create, update or delete"
        for name in mutation.fields
        if name not in claimed
    ]
