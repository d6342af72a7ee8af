"""What the sandbox serves, read once from the SDL it is given: entities, list fields (paging
shape, filter, connection), mutations (layout, payload) and the team query.

Nothing here knows the bundled file: an entity is an object type with an `id` that a root
field lists (a plain list or a connection of `edges { node }` / `nodes`); paging, filter and
mutation layouts are recognised by argument names and types, the way a client reads them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    get_named_type,
    is_input_object_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
)

OFFSET_ARGS = ("skip", "offset")
SIZE_ARGS = ("limit", "first", "take", "perPage", "pageSize", "per_page", "size")
PAGE_ARGS = ("page", "pageNumber")
AFTER_ARGS = ("after", "cursor")
SORT_ARGS = ("sort", "orderBy", "order", "sortBy")
KINDS = ("create", "update", "delete")
KIND_SYNONYMS = {"create": "create", "update": "update", "delete": "delete", "remove": "delete"}
ID_NAMES = ("id", "recordId", "_id")
SPECIAL_SCALARS = ("DateTime", "Date")  # stored as their string form; other custom ones as JSON
DEFAULT_HINT = re.compile(r"^\s*`?([A-Za-z0-9_-]+)`? when omitted", re.MULTILINE)


def nullable(type_: Any) -> Any:
    return type_.of_type if isinstance(type_, GraphQLNonNull) else type_


def lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def table_name(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


@dataclass(frozen=True)
class EntityModel:
    """What the store needs to know about one entity, read from the schema."""

    name: str  # 'company' (the object type's name, lower camel case)
    type_name: str  # 'Company'
    table: str
    stored_fields: tuple[str, ...]
    non_null: frozenset[str]
    list_fields: frozenset[str]
    references: Mapping[str, str]  # 'companyId' -> 'company', 'mandatorIds' -> 'mandator'
    computed: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # 'mandators' -> ids
    mirrors: Mapping[str, str] = field(default_factory=dict)  # deprecated copy -> its source
    json_fields: frozenset[str] = frozenset()  # lists, objects, floats, JSON: kept as JSON text
    cursor_field: str | None = None  # a field the server fills with the row's cursor
    create_defaults: Mapping[str, Any] = field(default_factory=dict)
    object_type: GraphQLObjectType | None = field(default=None, compare=False, repr=False)

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns holding the row's values (JSON text for `json_fields`); `teamId` always."""
        extra = () if "teamId" in self.stored_fields else ("teamId",)
        return (*self.stored_fields, *self.mirrors, *extra)

    @property
    def json_shadows(self) -> tuple[str, ...]:
        """Columns holding the JSON text of each plain value (`"Niort"`, `null`), so SQL can
        print a row as JSON without quoting every value on every read."""
        return tuple(json_shadow(c) for c in self.columns if c not in self.json_fields)

    @property
    def has_updated_at(self) -> bool:
        return "updatedAt" in self.stored_fields


def json_shadow(column: str) -> str:
    return column + ":json"


@dataclass(frozen=True)
class Paging:
    """The paging arguments of one list field, by role (None when the field has none)."""

    offset: str | None = None
    offset_alias: str | None = None  # a second offset argument meaning the same (deprecated)
    size: str | None = None
    page: str | None = None
    page_base: int = 1
    after: str | None = None
    sort: str | None = None

    @property
    def kind(self) -> str:
        if self.after:
            return "cursor"
        if self.page:
            return "page"
        if self.offset:
            return "offset"
        return "limit" if self.size else "none"


@dataclass(frozen=True)
class Connection:
    """A connection type's field names (None when absent)."""

    type_name: str
    edges: str | None
    edge_type: str | None
    nodes: str | None
    page_info: str | None
    total: str | None


@dataclass(frozen=True)
class ListField:
    name: str
    entity: str
    paging: Paging
    filter_arg: str | None  # the argument holding an input object filter
    filter_team: bool  # that filter has a teamId field
    team_arg: str | None  # a teamId argument on the field itself
    connection: Connection | None = None


@dataclass(frozen=True)
class MutationOp:
    """One create/update/delete field and where its id and values come from."""

    entity: str
    kind: str
    namespace: str | None  # the Mutation field holding it, or None at the top level
    name: str
    values_arg: str | None  # argument holding the values (create, update)
    id_arg: str | None  # a plain id argument (update(id:, input:), delete(id:))
    wrapper_arg: str | None = None  # argument holding {id, <inner>} or {id, ...fields}
    inner: str | None = None  # the field of the wrapper holding the values


@dataclass
class SandboxModel:
    schema: GraphQLSchema
    entities: dict[str, EntityModel]
    lists: dict[str, ListField]  # by root field name
    mutations: list[MutationOp]
    team_field: str | None
    team_type: str | None
    by_id: dict[str, str] = field(default_factory=dict)  # root field -> entity (field(id:))

    def entity_of_type(self, type_name: str) -> EntityModel | None:
        return next((m for m in self.entities.values() if m.type_name == type_name), None)


def build_model(schema: GraphQLSchema) -> SandboxModel:
    query = schema.query_type
    entity_types: dict[str, str] = {}  # type name -> entity name
    lists: dict[str, ListField] = {}
    team_field = team_type = None
    pending: list[tuple[str, GraphQLField, GraphQLObjectType, Connection | None]] = []
    by_id: dict[str, GraphQLObjectType] = {}
    for fname, fdef in (query.fields if query else {}).items():
        inner = nullable(fdef.type)
        named = get_named_type(fdef.type)
        if is_list_type(inner) and _is_entity_type(named):
            assert isinstance(named, GraphQLObjectType)
            pending.append((fname, fdef, named, None))
        elif is_object_type(named) and (conn := _connection(named)) is not None:
            node = _connection_node(named, conn)
            if node is not None:
                pending.append((fname, fdef, node, conn))
        elif fname == "team" and is_object_type(named):
            team_field, team_type = fname, named.name
        elif _is_entity_type(named) and any(
            is_leaf_type(get_named_type(a.type)) and n in ID_NAMES for n, a in fdef.args.items()
        ):
            assert isinstance(named, GraphQLObjectType)
            by_id[fname] = named
    for _fname, _fdef, node, _conn in pending:
        if node.name != team_type:
            entity_types.setdefault(node.name, lower_camel(node.name))
    for fname, fdef, node, conn in pending:
        if node.name in entity_types:
            lists[fname] = _list_field(fname, fdef, entity_types[node.name], conn)
    cursor_entities = {
        lf.entity for lf in lists.values() if lf.paging.after and lf.connection is None
    }
    entities = {
        name: _entity(schema, schema.type_map[t], name, entity_types, name in cursor_entities)  # type: ignore[arg-type]
        for t, name in entity_types.items()
    }
    model = SandboxModel(
        schema=schema,
        entities=entities,
        lists=lists,
        mutations=[],
        team_field=team_field,
        team_type=team_type,
        by_id={f: entity_types[t.name] for f, t in by_id.items() if t.name in entity_types},
    )
    from moovago_sandbox.writes import find_mutations, with_defaults  # needs these classes

    model.mutations = find_mutations(schema, model)
    model.entities = {n: with_defaults(m, model) for n, m in model.entities.items()}
    return model


def _is_entity_type(named: GraphQLNamedType) -> bool:
    return is_object_type(named) and ("id" in named.fields or "_id" in named.fields)


def _connection(obj: GraphQLObjectType) -> Connection | None:
    fields = obj.fields
    edges = next((n for n in ("edges",) if n in fields), None)
    nodes = next((n for n in ("nodes", "items") if n in fields), None)
    if edges is None and nodes is None:
        return None
    edge_type = get_named_type(fields[edges].type).name if edges else None
    page_info = next(
        (
            n
            for n, f in fields.items()
            if is_object_type(get_named_type(f.type))
            and "hasNextPage" in get_named_type(f.type).fields
        ),
        None,
    )
    total = next((n for n in ("totalCount", "total", "count") if n in fields), None)
    return Connection(obj.name, edges, edge_type, nodes, page_info, total)


def _connection_node(obj: GraphQLObjectType, conn: Connection) -> GraphQLObjectType | None:
    if conn.nodes is not None:
        node = get_named_type(obj.fields[conn.nodes].type)
    else:
        assert conn.edges is not None
        edge = get_named_type(obj.fields[conn.edges].type)
        if not is_object_type(edge) or "node" not in edge.fields:
            return None
        node = get_named_type(edge.fields["node"].type)
    return node if _is_entity_type(node) else None


def _list_field(fname: str, fdef: GraphQLField, entity: str, conn: Connection | None) -> ListField:
    args = fdef.args

    def first(names: tuple[str, ...]) -> str | None:
        live = [n for n in names if n in args and not args[n].deprecation_reason]
        found = live or [n for n in names if n in args]
        return found[0] if found else None

    offset = first(OFFSET_ARGS)
    offset_alias = next((n for n in OFFSET_ARGS if n in args and n != offset), None)
    page = first(PAGE_ARGS)
    base = args[page].default_value if page else 1
    paging = Paging(
        offset=offset,
        offset_alias=offset_alias,
        size=first(SIZE_ARGS),
        page=page,
        page_base=base if base in (0, 1) else 1,
        after=first(AFTER_ARGS),
        sort=first(SORT_ARGS),
    )
    filter_arg = next(
        (n for n, a in args.items() if is_input_object_type(get_named_type(a.type))), None
    )
    filter_team = False
    if filter_arg is not None:
        ftype = get_named_type(args[filter_arg].type)
        filter_team = "teamId" in ftype.fields  # type: ignore[attr-defined]
    team_arg = "teamId" if "teamId" in args else None
    return ListField(fname, entity, paging, filter_arg, filter_team, team_arg, conn)


def _entity(
    schema: GraphQLSchema,
    obj: GraphQLObjectType,
    name: str,
    entity_types: Mapping[str, str],
    cursor_paged: bool,
) -> EntityModel:
    stored, non_null, lists, json_fields = [], set(), set(), set()
    references: dict[str, str] = {}
    computed: dict[str, tuple[str, str]] = {}
    mirrors: dict[str, str] = {}
    cursor_field = "cursor" if cursor_paged and "cursor" in obj.fields else None
    for fname, fdef in obj.fields.items():
        if fname == "_id":  # graphql-compose's id: stored as the row's id, resolved from it
            stored.append("id")
            non_null.add("id")
            continue
        named = get_named_type(fdef.type)
        source = _mirror_source(obj, fname)
        if source is not None:
            mirrors[fname] = source
            continue
        if named.name in entity_types:
            ids_field = entity_types[named.name] + "Ids"
            if ids_field in obj.fields and is_list_type(nullable(fdef.type)):
                computed[fname] = (ids_field, entity_types[named.name])
                continue
        stored.append(fname)
        if is_non_null_type(fdef.type):
            non_null.add(fname)
        if is_list_type(nullable(fdef.type)):
            lists.add(fname)
        # Floats too: SQLite would print them with 15 digits, JSON text keeps them exact.
        if (
            is_list_type(nullable(fdef.type))
            or not is_leaf_type(named)
            or named.name == "Float"
            or (named.name not in SPECIAL_SCALARS and _is_custom_scalar(schema, named))
        ):
            json_fields.add(fname)
        for target in entity_types.values():
            if fname in (target + "Id", target + "Ids"):
                references[fname] = target
    return EntityModel(
        name=name,
        type_name=obj.name,
        table=table_name(name),
        stored_fields=tuple(stored),
        non_null=frozenset(non_null),
        list_fields=frozenset(lists),
        references=references,
        computed=computed,
        mirrors=mirrors,
        json_fields=frozenset(json_fields),
        cursor_field=cursor_field,
        object_type=obj,
    )


def _is_custom_scalar(schema: GraphQLSchema, named: GraphQLNamedType) -> bool:
    return (
        is_leaf_type(named)
        and not hasattr(named, "values")
        and named.name
        not in (
            "String",
            "Int",
            "Float",
            "Boolean",
            "ID",
        )
    )


def _mirror_source(obj: GraphQLObjectType, fname: str) -> str | None:
    """A deprecated field whose reason says `Use X` (X a field of the same type) mirrors X."""
    reason = obj.fields[fname].deprecation_reason or ""
    match = re.match(r"\s*Use `?(\w+)`?", reason)
    if match and match.group(1) in obj.fields and match.group(1) != fname:
        source, mirror = obj.fields[match.group(1)].type, obj.fields[fname].type
        # the source's values must be valid for the mirror: same type, as null-free
        same = str(nullable(source)) == str(nullable(mirror))
        if same and (is_non_null_type(source) or not is_non_null_type(mirror)):
            return match.group(1)
    return None


def op_field(schema: GraphQLSchema, op: MutationOp) -> GraphQLField:
    """The GraphQL field of a mutation (inside its namespace when it has one)."""
    mutation = schema.mutation_type
    assert mutation is not None  # ops exist only when the schema has a mutation type
    if op.namespace is None:
        return mutation.fields[op.name]
    return get_named_type(mutation.fields[op.namespace].type).fields[op.name]
