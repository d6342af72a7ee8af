"""The remote side of a run (target-postgres' connector): schema, the one client, team,
entities and their settings, index reads; the schema file's checks at start."""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import typing as t
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence

from graphql import GraphQLObjectType, get_named_type, is_leaf_type

from moovago_api.documents import Selection, check_writes
from moovago_api.errors import ConfigError, MoovagoError
from moovago_api.pager import Pager
from moovago_api.plan import KINDS, EntityWrites, InputField
from moovago_api.schema import Entity, MoovagoSchema, schema_from_config
from moovago_api.settings import client_from_config
from moovago_api.wire import parse_datetime
from moovago_api.write_plan import find_mutation
from target_moovago.decide import Mode, Policy
from target_moovago.index import DEFAULT_MATCH_KEYS, KeySpec, RemoteIndex
from target_moovago.ledger import ReadOnlyStreamError, UnsupportedStreamError
from target_moovago.runlock import RunLock

if t.TYPE_CHECKING:
    from moovago_api.client import MoovagoClient

PAGE_SIZE = 1000


def list_pager(schema: MoovagoSchema, entity: Entity, fields: Iterable[str]) -> Pager:
    """The shared pager reading `entity`'s `id` and `fields` (objects: their leaf sub-fields)."""
    if not entity.filter_arg:
        msg = f"{entity.root_field} takes no filter argument: the target cannot scope it"
        raise MoovagoError(msg)
    # Not an object type: no field, and the pager refuses it naming the root field.
    gql_fields = getattr(schema.graphql.get_type(entity.type_name), "fields", {})
    selected: list[Selection] = []
    for name in [entity.id_field, *(f for f in fields if f not in ("id", entity.id_field))]:
        named = get_named_type(gql_fields[name].type) if name in gql_fields else None
        if named is not None and is_leaf_type(named):
            selected.append(name)
        elif isinstance(named, GraphQLObjectType):
            leaves = [n for n, f in named.fields.items() if is_leaf_type(get_named_type(f.type))]
            selected.append((name, leaves))
    return Pager(
        schema,
        entity,
        selected,
        operation_name=f"TargetMoovago{entity.type_name}Index",
        label=f"Stream '{entity.stream_name}' (target index)",
    )


def writes_of(entity: Entity) -> EntityWrites:
    if entity.writes is None:
        msg = f"entity {entity.name!r} has no write description"
        raise UnsupportedStreamError(msg)
    return entity.writes


class Remote:
    """Moovago as one run sees it: loaded once, read on demand."""

    def __init__(self, config: Mapping[str, t.Any], logger: logging.Logger) -> None:
        self.config = config
        self.logger = logger
        self._indexes: dict[str, RemoteIndex] = {}
        self._lock: RunLock | None = None
        # The newest `updatedAt` read this run: the server's clock when no Date header is seen.
        self.newest_updated_at: dt.datetime | None = None
        self._checked: set[str] = set()  # entities whose mutations were validated

    @functools.cached_property
    def schema(self) -> MoovagoSchema:
        schema = schema_from_config(self.config)
        for line in unclaimed_mutations(schema, schema.entities()):
            self.logger.warning(line)
        return schema

    @functools.cached_property
    def client(self) -> MoovagoClient:
        return client_from_config(self.config, default_rate=1, logger=self.logger)

    @property
    def requests(self) -> int:
        return self.stats().get("requests", 0)

    def stats(self) -> dict[str, int]:
        if "client" not in self.__dict__:  # no client made yet: nothing sent
            return {}
        return {
            k: getattr(self.client.stats, k, 0) for k in ("requests", "retries", "rate_limited")
        }

    def close(self) -> None:
        self.release_lock()
        if "client" in self.__dict__:
            self.client.close()

    def release_lock(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    @functools.cached_property
    def team_id(self) -> str:
        entity = self.schema.entity("team")
        name, label = "TargetMoovagoTeam", "The team query"
        pager = Pager(self.schema, entity, [entity.id_field], operation_name=name, label=label)
        return str(pager.team(self.client, self.config.get("team_id"))[entity.id_field])

    def entity_for(self, stream_name: str) -> Entity:
        """The writable entity of a stream; the mutations its mode needs are checked once."""
        entity = self.parent_entity(stream_name)
        if entity is None:
            writable = [e.stream_name for e in self.schema.entities() if writes_of(e).shapes]
            msg = (
                f"stream {stream_name!r} is not a Moovago entity; target-moovago writes "
                f"{', '.join(writable)}"
            )
            raise UnsupportedStreamError(msg)
        writes_of(entity)  # UnsupportedStreamError when the file describes no write side
        if self.read_only(stream_name):
            msg = (
                f"stream {stream_name!r} is read-only in the Moovago API (it has no mutations); "
                "remove it from the target's input, or set read_only_streams to skip"
            )
            raise ReadOnlyStreamError(msg)
        if entity.name not in self._checked:
            modes = {Mode.UPSERT: ["create", "update"], Mode.CREATE_ONLY: ["create"]}
            kinds = modes.get(self.mode(entity), ["update"])
            deletes = ["delete"] if self.config.get("hard_delete") else []
            check_writes(self.schema, entity, [*kinds, *deletes])
            self._checked.add(entity.name)
        return entity

    def read_only(self, stream_name: str) -> bool:
        """The schema file has this entity and declares no mutation for it (`team`)."""
        entity = self.parent_entity(stream_name)
        writes = entity.writes if entity is not None else None
        return writes is not None and not writes.shapes and not writes.refused

    def parent_entity(self, stream_name: str) -> Entity | None:
        try:
            return self.schema.entity(stream_name)
        except KeyError:
            return None

    def stream_setting(self, name: str, entity: Entity) -> t.Any:
        """A per-stream setting's entry, under the stream or the entity name (a list: whether it
        names either; two objects: merged, the stream's winning)."""
        configured = self.config.get(name) or {}
        if isinstance(configured, list):
            return entity.stream_name in configured or entity.name in configured
        by_stream, by_entity = configured.get(entity.stream_name), configured.get(entity.name)
        if isinstance(by_stream, dict) and isinstance(by_entity, dict):
            return {**by_entity, **by_stream}
        return by_stream if by_stream is not None else by_entity

    def key_fields(self, entity: Entity) -> list[list[str]]:
        """The configured, else default, match keys as written (`name?`)."""
        names = self.stream_setting("match_keys", entity)
        defaults = DEFAULT_MATCH_KEYS.get(entity.stream_name, [])
        return [list(names)] if names else [list(k) for k in defaults]

    def key_specs(self, entity: Entity) -> list[KeySpec]:
        """The match keys the file can read; a configured one it cannot is a ConfigError."""
        normalize = self.stream_setting("match_normalize", entity) or ()  # checked as a setting
        known = set(self.schema.output_json_schema(entity.type_name)["properties"])
        usable = []
        for spec in (KeySpec.parse(k, normalize) for k in self.key_fields(entity)):
            absent = [name for name in spec.fields if name not in known]
            if absent and self.stream_setting("match_keys", entity):
                msg = (
                    f"match_keys for {entity.stream_name!r} names {absent[0]!r}, "
                    f"which {entity.type_name} does not have in {self.schema.path}; "
                    f"{match_keys_hint(self.schema, entity)}"
                )
                raise ConfigError(msg)
            if not absent:  # a default key the file lacks: the sink warns at start
                usable.append(spec)
        return usable

    def field_policies(self, entity: Entity) -> dict[str, Policy]:
        entry = self.stream_setting("field_policies", entity) or {}
        return {name: Policy(value) for name, value in entry.items()}

    def mode(self, entity: Entity) -> Mode:
        return Mode(self.stream_setting("stream_modes", entity) or "upsert")

    def index(self, entity: Entity, fields: Sequence[str]) -> RemoteIndex:
        """The index of `entity`, read once (again to track more `fields`), after taking the run
        lock (held to the end; a dry run writes nothing: no lock)."""
        index = self._indexes.get(entity.name)
        if index is not None and set(fields) <= set(index.fields):
            return index
        if self._lock is None and not self.config.get("dry_run"):
            wait = float(self.config.get("lock_wait_seconds") or 0)
            url, where = str(self.config.get("api_url") or ""), self.config.get("lock_dir")
            lock = RunLock(url, self.team_id, lock_dir=where, wait_seconds=wait)
            if wait:
                self.logger.info("Run lock %s: waiting up to %g s", lock.path, wait)
            lock.acquire()
            self._lock = lock
        previous = index
        tracked = list(dict.fromkeys([*(previous.fields if previous else ()), *fields]))
        index = RemoteIndex(tracked, self.key_specs(entity))
        for record in self.list_records(entity, index.fields):
            index.add(str(record["id"]), record)
        if previous is not None:  # what this run planned (pending creates, updates) stays
            for record_id, values in previous.items():
                index.add(record_id, {**(index.get(record_id) or {}), **values})
        names = ", ".join(index.fields)
        self.logger.info(
            "Prefetched %d %s records (fields: %s)", len(index), entity.stream_name, names
        )
        self._indexes[entity.name] = index
        return index

    def list_records(
        self, entity: Entity, fields: Sequence[str], **filters: t.Any
    ) -> Iterator[dict[str, t.Any]]:
        """Every record of the team, with extra filters."""
        clock = entity.replication_key
        pager = list_pager(self.schema, entity, [*fields, *([clock] if clock else [])])
        flt: dict[str, t.Any] = dict(filters)
        if entity.team_filter_field:
            flt[entity.team_filter_field] = self.team_id
        for record in pager.read(self.client, filter=flt, page_size=PAGE_SIZE):
            record["id"] = record.pop(entity.id_field)  # the target keys records by `id`
            try:
                seen = parse_datetime(record.get(clock)) if clock else None
            except ValueError:
                seen = None
            if seen is not None and (
                self.newest_updated_at is None or seen > self.newest_updated_at
            ):
                self.newest_updated_at = seen
            yield record


def _key_context(
    schema: MoovagoSchema, entity: Entity
) -> tuple[Mapping[str, t.Any], dict[str, InputField] | None, str]:
    """The record type's fields, the create's input fields (None: no create), the fix."""
    record_type = schema.graphql.get_type(entity.type_name)
    record_fields = record_type.fields if isinstance(record_type, GraphQLObjectType) else {}
    create = entity.writes.shapes.get("create") if entity.writes else None
    inputs = {f.name: f for f in create.fields} if create is not None else None

    def usable(name: str) -> bool:  # a live leaf the record has, and not the server's own
        found = record_fields.get(name)
        return (
            found is not None
            and found.deprecation_reason is None
            and is_leaf_type(get_named_type(found.type))
            and name not in ("id", "teamId", "createdAt", "updatedAt")
        )

    # The example: fields a create may write, required first, else any usable field.
    live = [f for f in (inputs or {}).values() if f.deprecation is None and usable(f.name)]
    example = [f.name for f in live if f.required][:3] or [f.name for f in live][:1]
    example = example or [n for n in record_fields if usable(n)][:1] or ["<field>"]
    fix = f'set match_keys, e.g. {{"{entity.stream_name}": {json.dumps(example)}}}'
    return record_fields, inputs, fix


def match_keys_hint(schema: MoovagoSchema, entity: Entity) -> str:
    """'set match_keys, e.g. {"visit": ["companyId", ...]}': the fix every key message ends with."""
    return _key_context(schema, entity)[2]


def match_key_problems(
    schema: MoovagoSchema,
    entity: Entity,
    keys: Sequence[Sequence[str]] | None,
    *,
    written: Collection[str] | None = None,
) -> list[str]:
    """Why the match keys will not find existing records in this file (`written`: the fields the
    input maps to)."""
    stream, type_name, path = entity.stream_name, entity.type_name, schema.path
    record_fields, inputs, fix = _key_context(schema, entity)
    if not keys:
        return [
            f"stream {stream!r} has no match key: rows without an id cannot be matched to "
            f"existing {type_name} records (they are rejected); {fix}"
        ]
    problems: list[str] = []
    for key in keys:
        label = f"match key {'+'.join(key)} of stream {stream!r}"
        for raw in key:
            name = raw.rstrip("?")
            found = record_fields.get(name)
            reason = found.deprecation_reason if found is not None else None
            if reason is None and inputs is not None and name in inputs:
                reason = inputs[name].deprecation
            if found is None:
                problems.append(f"{label}: {type_name} has no field {name!r} in {path}; {fix}")
            elif reason is not None:
                problems.append(
                    f"{label}: {type_name}.{name} is deprecated in {path} ({reason}); {fix}"
                )
            elif inputs is not None and name not in inputs and name != "id":
                create = writes_of(entity).shapes["create"].data_type
                problems.append(
                    f"{label}: {type_name}.{name} is not writable in {path} ({create} has no "
                    f"{name!r}), so created records cannot be found by it; {fix}"
                )
            elif written is not None and name not in written and not raw.endswith("?"):
                problems.append(
                    f"{label}: the input has no column for {name!r}, so every row without an "
                    f"id is rejected; add the column or {fix}"
                )
    return problems


def unclaimed_mutations(schema: MoovagoSchema, entities: Iterable[Entity]) -> list[str]:
    """One sentence per Mutation field no entity uses."""
    mutation = schema.graphql.mutation_type
    claimed: set[str] = set()
    for entity in entities:
        claimed.update(s.path[0] for s in (entity.writes.shapes if entity.writes else {}).values())
        found = (find_mutation(schema, entity, kind) for kind in KINDS)
        claimed.update(f[1][0] for f in found if f is not None)
    return [
        f"Mutation.{name} in {schema.path} is not used: it matches no entity's "
        "create, update or delete"
        for name in (mutation.fields if mutation is not None else ())
        if name not in claimed
    ]
