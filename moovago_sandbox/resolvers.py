"""Resolvers bound to the schema the sandbox serves, generated from its model: the team, every
list field (any paging shape, plain list or connection), lookups by id, and mutations in the
layout and payload the file declares. The fast path reads lists through `Reader` too, so both
paths apply the same team check, filters, paging and server modes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
    is_union_type,
)

from moovago_sandbox.model import (
    ID_NAMES,
    EntityModel,
    ListField,
    MutationOp,
    SandboxModel,
    op_field,
)
from moovago_sandbox.model import nullable as _nullable
from moovago_sandbox.scalars import ceil_to_millisecond, format_datetime, parse_datetime
from moovago_sandbox.store import Store, StoreError, cursor_of, id_of_cursor

NOT_AUTHORIZED = "You are not authorized to access this data"
MAX_LIMIT = 1000
OPERATORS = "_operators"
SINCE_NAMES = ("updatedSince", "updatedAfter", "updatedAtFrom", "updatedAtGte", "since")
IDS_NAMES = ("ids", "idIn", "id_in")


class AuthorizationError(GraphQLError):
    """A filter names another team than the key's."""


@dataclass
class RequestContext:
    """Who is asking (the key's team and user) and what the request changed."""

    store: Store
    team_id: str
    owner_id: str | None
    mutations: list[tuple[str, str]] = field(default_factory=list)  # (entity, create|update|delete)
    lookups: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: Entities whose list this request has read: `before_read` (the churn fault) runs once per
    #: entity and request, before its first read, so one request reads one state of the list.
    read_entities: set[str] = field(default_factory=set)

    def rows_by_ids(self, entity: str, ids: list[str]) -> list[dict[str, Any]]:
        """Rows of `ids` in this team, memoised for the request (Company.mandators)."""
        cache = self.lookups.setdefault(entity, {})
        missing = [i for i in ids if i not in cache]
        if missing:
            for row in self.store.by_ids(entity, self.team_id, missing):
                cache[row["id"]] = row
        return [cache[i] for i in ids if i in cache]


@dataclass(frozen=True)
class ListModes:
    """How lists are served: `--max-page-size`, `--ignore-limit`, `--default-page-size`,
    `--unstable-order` (seeded by `seed`)."""

    max_page_size: int | None = None
    ignore_limit: bool = False
    default_page_size: int = 50
    unstable_order: bool = False
    seed: int = 0


@dataclass
class PageRead:
    """One list read, checked: the store keywords and the page size the server applies."""

    entity: str
    query: dict[str, Any]
    size: int | None
    paged: bool  # skip/after/page given: a later page


class Reader:
    """Turns a list field's arguments into a store read (team, filter, paging, modes)."""

    def __init__(
        self,
        model: SandboxModel,
        modes: ListModes,
        before_read: Callable[[RequestContext, str], None] | None = None,
    ) -> None:
        self.model = model
        self.modes = modes
        self.before_read = before_read
        self.order_rng = random.Random(modes.seed)  # noqa: S311 (replayable order, not secrets)

    def reset(self) -> None:
        self.order_rng = random.Random(self.modes.seed)  # noqa: S311

    def page(self, ctx: RequestContext, lf: ListField, args: Mapping[str, Any]) -> PageRead:
        model = self.model.entities[lf.entity]
        filt = (args.get(lf.filter_arg) if lf.filter_arg else None) or {}
        for team in (filt.get("teamId"), args.get(lf.team_arg) if lf.team_arg else None):
            if team is not None and team != ctx.team_id:
                raise AuthorizationError(NOT_AUTHORIZED)
        query = _filter_query(model, filt)
        p, modes = lf.paging, self.modes
        size = args.get(p.size) if p.size else None
        if size is not None and not 1 <= size <= MAX_LIMIT:
            raise GraphQLError(f"{p.size} must be between 1 and {MAX_LIMIT}, got {size}")
        if modes.ignore_limit and p.size:
            size = modes.default_page_size
        if modes.max_page_size is not None:
            size = min(size or modes.max_page_size, modes.max_page_size)
        skip = _offset(lf, args)
        if p.page:
            page = args.get(p.page)
            page = p.page_base if page is None else page
            if page < p.page_base:
                raise GraphQLError(f"{p.page} must be {p.page_base} or more, got {page}")
            size = size or modes.default_page_size
            skip = (page - p.page_base) * size
        after = args.get(p.after) if p.after else None
        if after is not None:
            try:
                query["after_id"] = id_of_cursor(after)
            except StoreError as exc:
                raise GraphQLError(str(exc)) from exc
        sorted_by_client = p.sort is not None and args.get(p.sort) is not None
        # A file declaring a sort promises no order without it (MongoDB's find()): none given.
        if (modes.unstable_order or p.sort is not None) and not sorted_by_client:
            query["order_salt"] = self.order_rng.getrandbits(32)
        query.update(skip=skip, limit=size)
        if self.before_read is not None and lf.entity not in ctx.read_entities:
            self.before_read(ctx, lf.entity)
        ctx.read_entities.add(lf.entity)
        return PageRead(lf.entity, query, size, bool(skip or after))

    def rows(self, ctx: RequestContext, lf: ListField, args: Mapping[str, Any]) -> Any:
        read = self.page(ctx, lf, args)
        try:
            if lf.connection is None:
                return ctx.store.select(read.entity, ctx.team_id, **read.query)
            return self._connection(ctx, lf, read)
        except StoreError as exc:
            raise GraphQLError(str(exc)) from exc

    def _connection(self, ctx: RequestContext, lf: ListField, read: PageRead) -> dict[str, Any]:
        query = dict(read.query)
        if read.size is not None:
            query["limit"] = read.size + 1  # one more row tells whether a next page exists
        rows = ctx.store.select(read.entity, ctx.team_id, **query)
        has_next = read.size is not None and len(rows) > read.size
        rows = rows[: read.size] if read.size is not None else rows
        cursors = [cursor_of(r["id"]) for r in rows]
        out: dict[str, Any] = {
            "edges": [{"node": r, "cursor": c} for r, c in zip(rows, cursors, strict=True)],
            "nodes": rows,
            "items": rows,
            "pageInfo": {
                "hasNextPage": has_next,
                "hasPreviousPage": read.paged,
                "endCursor": cursors[-1] if cursors else None,
                "startCursor": cursors[0] if cursors else None,
                # graphql-compose's PaginationInfo (pageCount, itemCount: see `count`)
                "perPage": read.size,
                "currentPage": 1 + int(read.query.get("skip") or 0) // (read.size or 1),
            },
        }
        conn = lf.connection
        assert conn is not None
        if conn.page_info:
            out[conn.page_info] = out["pageInfo"]
        if conn.total:
            count_query = {k: v for k, v in read.query.items() if k not in ("skip", "limit")}
            count_query.pop("after_id", None)
            count_query.pop("order_salt", None)
            out[conn.total] = ctx.store.count(read.entity, ctx.team_id, **count_query)
        return out


def _offset(lf: ListField, args: Mapping[str, Any]) -> int:
    p = lf.paging
    skip = (args.get(p.offset) if p.offset else None) or 0
    alias = args.get(p.offset_alias) if p.offset_alias else None
    if alias is not None:
        if skip and skip != alias:
            raise GraphQLError(f"Give {p.offset} or {p.offset_alias} (deprecated), not both")
        skip = alias
    if skip < 0:
        raise GraphQLError(f"{p.offset} must be 0 or more, got {skip}")
    return int(skip)


def _filter_query(model: EntityModel, filt: Mapping[str, Any]) -> dict[str, Any]:
    """A filter object as store keywords; a field the sandbox cannot apply is an error."""
    query: dict[str, Any] = {}
    equals: dict[str, Any] = {}
    for name, value in filt.items():
        if name == "teamId" or value is None:
            continue
        if name == OPERATORS:  # graphql-compose: only `{ updatedAt: { gte } }` is served
            bound = value.get("updatedAt") if set(value) == {"updatedAt"} else None
            if not isinstance(bound, Mapping) or set(bound) != {"gte"}:
                raise GraphQLError(f"The sandbox serves {name} {{ updatedAt {{ gte }} }} only")
            name, value = SINCE_NAMES[0], bound["gte"]
        if name in SINCE_NAMES:
            instant = value if isinstance(value, datetime) else parse_datetime(str(value))
            query["updated_since"] = format_datetime(ceil_to_millisecond(instant))
        elif name in IDS_NAMES:
            query["ids"] = list(value)
        elif name == "id":
            query["ids"] = [value]
        elif name in model.stored_fields and name not in model.json_fields:
            equals[name] = stored_form(value)
        else:
            raise GraphQLError(f"The sandbox cannot filter {model.name} rows on {name!r}")
    query["equals"] = equals
    return query


def stored_form(value: Any) -> Any:
    """Coerced input values as the store keeps them (DateTime and Date as their strings)."""
    if isinstance(value, dict):
        return {k: stored_form(v) for k, v in value.items()}
    if isinstance(value, list):
        return [stored_form(v) for v in value]
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


# -- binding ---------------------------------------------------------------------------------


def bind(schema: GraphQLSchema, model: SandboxModel, reader: Reader) -> dict[str, Callable]:
    """Set every resolver of the schema; the root resolvers by field name (for the fast path)."""
    roots: dict[str, Callable[..., Any]] = {}
    query = schema.query_type
    fields = query.fields if query else {}
    if model.team_field:
        roots[model.team_field] = _team
    for name, lf in model.lists.items():
        roots[name] = _lister(reader, lf)
    for name, entity in model.by_id.items():
        roots[name] = _by_id(entity)
    for name, resolve in roots.items():
        fields[name].resolve = _with_context(resolve)
    mutation = schema.mutation_type
    for op in model.mutations:
        if op.namespace is not None and mutation is not None:
            mutation.fields[op.namespace].resolve = _namespace
        fdef = op_field(schema, op)
        fdef.resolve = _mutator(model, op, fdef)
    for em in model.entities.values():
        obj = schema.type_map[em.type_name]
        assert isinstance(obj, GraphQLObjectType)
        for fname, (ids_field, target) in em.computed.items():
            obj.fields[fname].resolve = _computed(ids_field, target)
    for named in schema.type_map.values():
        if is_object_type(named) and "_id" in named.fields:  # graphql-compose's id
            named.fields["_id"].resolve = lambda row, _info: row.get("id")
        if is_abstract_type(named):
            named.resolve_type = _resolve_type
    return roots


def _team(ctx: RequestContext, **args: Any) -> Any:
    """The key's team; `team(id:)` naming another team answers null, as graphql-compose does."""
    team = ctx.store.team(ctx.team_id)
    named = next(iter(args.values()), None)
    return team if team is None or named is None or str(named) == str(team.get("id")) else None


def _resolve_type(value: Any, *_args: Any) -> str | None:
    return value.get("__typename") if isinstance(value, dict) else None


def _with_context(resolve: Callable[..., Any]) -> Callable[..., Any]:
    def resolver(_root: Any, info: Any, **args: Any) -> Any:
        return resolve(info.context, **args)

    return resolver


def _lister(reader: Reader, lf: ListField) -> Callable[..., Any]:
    def list_rows(ctx: RequestContext, **args: Any) -> Any:
        return reader.rows(ctx, lf, args)

    return list_rows


def _by_id(entity: str) -> Callable[..., Any]:
    def by_id(ctx: RequestContext, **args: Any) -> dict[str, Any] | None:
        record_id = next((args[n] for n in ID_NAMES if args.get(n) is not None), None)
        rows = ctx.rows_by_ids(entity, [record_id]) if record_id is not None else []
        return rows[0] if rows else None

    return by_id


def _namespace(_root: Any, _info: Any) -> dict[str, Any]:
    return {}


def _computed(ids_field: str, entity: str) -> Callable[..., Any]:
    def resolver(row: dict[str, Any], info: Any) -> list[dict[str, Any]]:
        return info.context.rows_by_ids(entity, row.get(ids_field) or [])

    return resolver


def _mutator(model: SandboxModel, op: MutationOp, fdef: GraphQLField) -> Callable[..., Any]:
    entity = model.entities[op.entity]

    def mutate(_root: Any, info: Any, **args: Any) -> Any:
        ctx: RequestContext = info.context
        record_id, values = _id_and_values(op, args)
        values = _unmirrored(entity, stored_form(values or {}))
        try:
            if op.kind == "create":
                row = ctx.store.create(op.entity, ctx.team_id, values, owner_id=ctx.owner_id)
            elif record_id is None:
                raise StoreError(f"A {op.kind} of a {op.entity} needs the record's id")
            elif op.kind == "update":
                row = ctx.store.update(op.entity, ctx.team_id, str(record_id), values)
            else:
                row = ctx.store.delete(op.entity, ctx.team_id, str(record_id))
        except StoreError as exc:
            failed = failure(model.schema, fdef.type, str(exc))
            if failed is None:
                raise GraphQLError(str(exc)) from exc
            return failed  # nothing was written: the store refuses before it writes
        ctx.mutations.append((op.entity, op.kind))
        return payload(fdef.type, entity, row, deleted=op.kind == "delete")

    return mutate


def _id_and_values(op: MutationOp, args: Mapping[str, Any]) -> tuple[Any, Any]:
    if op.kind == "create" or op.id_arg is not None:
        values = args.get(op.values_arg) if op.values_arg else None
        return (args.get(op.id_arg) if op.id_arg else None), values
    wrapper = (args.get(op.wrapper_arg) if op.wrapper_arg else None) or {}
    record_id = next((wrapper[n] for n in ID_NAMES if wrapper.get(n) is not None), None)
    if op.inner is not None:
        return record_id, wrapper.get(op.inner)
    return record_id, {k: v for k, v in wrapper.items() if k not in ID_NAMES}


def _unmirrored(entity: EntityModel, values: dict[str, Any]) -> dict[str, Any]:
    """A deprecated mirror written in an input sets the field it mirrors."""
    for mirror, source in entity.mirrors.items():
        if mirror in values:
            value = values.pop(mirror)
            values.setdefault(source, value)
    return values


def failure(schema: Any, type_: Any, message: str) -> Any:
    """A refusal as graphql-compose answers it: in the payload's `error { message }` (or an
    `errors` list), or as the failure member of a result union; None when the type has none."""
    named = get_named_type(type_)
    if is_union_type(named):
        member = next((m for m in named.types if "message" in m.fields), None)
        return {"__typename": member.name, "message": message} if member else None
    found = [(n, f) for n, f in getattr(named, "fields", {}).items() if "error" in n.lower()]
    if not found:
        return None
    name, error_field = found[0]
    error_type = get_named_type(error_field.type)
    concrete = (
        schema.get_possible_types(error_type)[0] if is_abstract_type(error_type) else error_type
    )
    error = {"__typename": concrete.name, "message": message}
    return {name: [error] if is_list_type(_nullable(error_field.type)) else error}


def payload(type_: Any, entity: EntityModel, row: dict[str, Any], *, deleted: bool) -> Any:
    """The mutation's answer in the shape its return type declares: the record itself, its
    id, a Boolean, or an object holding any of them (`recordId`, `id`, `record`, ...)."""
    named = get_named_type(type_)
    if is_union_type(named):  # the member that names the record written
        member = next(m for m in named.types if "message" not in m.fields)
        return {"__typename": member.name, **payload(member, entity, row, deleted=deleted)}
    if named.name == entity.type_name:
        return row
    if is_leaf_type(named):
        return True if named.name == "Boolean" else row["id"]
    if not is_object_type(named):
        return None
    out: dict[str, Any] = {}
    for fname, fdef in named.fields.items():
        inner = get_named_type(fdef.type)
        if inner.name == entity.type_name:
            out[fname] = None if deleted and not is_non_null_type(fdef.type) else row
        elif inner.name == "Boolean":
            out[fname] = True
        elif is_leaf_type(inner) and (fname in ID_NAMES or fname.endswith("Id")):
            out[fname] = row["id"]
        elif is_list_type(_nullable(fdef.type)):
            out[fname] = []
        else:
            out[fname] = None
    return out
