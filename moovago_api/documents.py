"""GraphQL documents built with gql.dsl from the loaded schema: values only ever in `variables`.

Reads are built by `list_document` from a selection spec that gql.dsl checks against the schema
file at build time; each item of a spec is one of:
- `"name"`: a field; an object, union or interface field gets every field it can;
- `("name", [items])`: a field with the sub-selection `items`;
- `{"TypeName": [items]}` (under a union or interface): `... on TypeName { items }`.
`__typename` is always selected on union and interface fields.
Writes are aliased batches built by `batch_document`, checked at sink start by `check_writes`.
"""

from __future__ import annotations

import functools
import typing as t
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gql.dsl import (
    DSLField,
    DSLInlineFragment,
    DSLMetaField,
    DSLMutation,
    DSLQuery,
    DSLSchema,
    DSLSelectable,
    DSLType,
    DSLVariableDefinitions,
    dsl_gql,
)
from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    get_named_type,
    get_operation_ast,
    is_required_argument,
    print_ast,
    validate,
)

from moovago_api.errors import ConfigError
from moovago_api.plan import KINDS, EntityWrites, MutationShapeError, Paging, Payload, kind_of
from moovago_api.schema import Entity, MoovagoSchema
from moovago_api.write_plan import describe_writes

#: One item of a selection spec (see the module docstring).
Selection = str | tuple[str, Sequence["Selection"]] | Mapping[str, Sequence["Selection"]]

#: The read, beside the page, of the ids just before it: the page before (page-number paging)
#: or the row before (offset paging, `anchored=True`); its variables cannot clash with arguments.
ANCHOR_ALIAS = "anchor"
ANCHOR_PAGE_VAR = "anchorPage"
ANCHOR_OFFSET_VAR = "anchorOffset"
ANCHOR_SIZE_VAR = "anchorSize"


@functools.lru_cache(maxsize=16)
def _dsl(schema: MoovagoSchema) -> DSLSchema:
    return DSLSchema(schema.graphql)


def _type_of(dsl: DSLSchema, dsl_field: DSLField) -> DSLType:
    return getattr(dsl, get_named_type(dsl_field.field.type).name)


def page_variables(entity: Entity) -> list[str]:
    """Argument names of `entity`'s root field that `list_document` turns into variables."""
    paging = entity.paging
    names = [n for n in (entity.team_arg, entity.filter_arg) if n]
    if paging.start_arg:
        names += [paging.start_arg, t.cast("str", paging.size_arg)]
    if paging.sort_arg and paging.sort_value is not None:
        names.append(paging.sort_arg)
    return names


def list_document(
    schema: MoovagoSchema,
    entity: Entity,
    fields: Sequence[Selection],
    *,
    name: str,
    anchored: bool = False,
) -> DocumentNode:
    """`query NAME($filter: …, $skip: Int, $limit: Int) { xList(...) { … } }`: the rows get
    `fields` plus the id (and the row cursor cursor paging reads); page-number paging (offset
    paging with `anchored=True`) also reads the ids just before the page, alias `anchor`."""
    dsl, paging, query = _dsl(schema), entity.paging, schema.graphql.query_type
    if query is None or entity.root_field not in query.fields:
        raise ConfigError(f"the schema file {schema.path} has no Query.{entity.root_field}")
    needed = [paging.row_cursor] if paging.kind == "cursor" and paging.rows == "list" else []
    items = [n for n in dict.fromkeys([*needed, entity.id_field]) if n and n not in fields]
    try:
        row_type = getattr(dsl, entity.type_name)
        rows = _select(dsl, row_type._type, [*items, *fields], (entity.type_name,))
    except (AttributeError, GraphQLError) as err:
        msg = f"Query.{entity.root_field}: cannot select {err} in {schema.path}"
        raise ConfigError(msg) from None
    query_root, variables = getattr(dsl, query.name), DSLVariableDefinitions()
    args = {arg: getattr(variables, arg) for arg in page_variables(entity)}
    root = getattr(query_root, entity.root_field).args(**args)
    selections = [root.select(*_in_connection(dsl, root, paging, rows))]
    if paging.kind == "page" or (anchored and paging.kind == "offset"):
        start = getattr(variables, ANCHOR_PAGE_VAR if paging.kind == "page" else ANCHOR_OFFSET_VAR)
        size = getattr(variables, ANCHOR_SIZE_VAR)
        args |= {t.cast("str", paging.start_arg): start, t.cast("str", paging.size_arg): size}
        anchor = getattr(query_root, entity.root_field).alias(ANCHOR_ALIAS).args(**args)
        ids = [getattr(row_type, entity.id_field)]
        selections.append(anchor.select(*_in_connection(dsl, anchor, paging, ids)))
    operation = DSLQuery(*selections)
    operation.variable_definitions = variables
    return dsl_gql(**{name: operation}).document


def _in_connection(
    dsl: DSLSchema, root: DSLField, paging: Paging, rows: list[DSLSelectable]
) -> list[DSLSelectable]:
    """The rows' selection inside the connection (`nodes`, `edges { node }`), if there is one."""
    if paging.rows == "list":
        return rows
    conn = _type_of(dsl, root)
    if paging.rows == "edges":
        edge = _type_of(dsl, conn.edges)
        cursor = [getattr(edge, paging.row_cursor)] if paging.row_cursor else []
        rows = [conn.edges.select(*cursor, edge.node.select(*rows))]
    else:
        rows = [getattr(conn, paging.rows).select(*rows)]
    if paging.page_info:
        info = getattr(conn, paging.page_info)
        info_type = _type_of(dsl, info)
        rows.append(info.select(info_type.hasNextPage, info_type.endCursor))
    return rows


def _every_field(
    graphql_schema: GraphQLSchema, gql_type: GraphQLNamedType, seen: tuple[str, ...]
) -> list[Selection]:
    """What a field selected without sub-selection gets: every field a read can ask for
    (cycles stop); a union or interface gets an inline fragment per possible type."""
    if isinstance(gql_type, (GraphQLUnionType, GraphQLInterfaceType)):
        return [
            {member.name: _every_field(graphql_schema, member, (*seen, member.name))}
            for member in graphql_schema.get_possible_types(gql_type)
            if member.name not in seen
        ]
    items: list[Selection] = []
    for name, gql_field in t.cast("GraphQLObjectType", gql_type).fields.items():
        deprecated = gql_field.deprecation_reason is not None
        required = any(is_required_argument(arg) for arg in gql_field.args.values())
        if not (deprecated or required or get_named_type(gql_field.type).name in seen):
            items.append(name)
    return items


def _select(
    dsl: DSLSchema,
    gql_type: GraphQLNamedType,
    items: Sequence[Selection] | None,
    seen: tuple[str, ...],
) -> list[DSLSelectable]:
    """gql.dsl selections of a selection spec on `gql_type` (None: `_every_field`)."""
    # gql.dsl has no DSLType for a union: its items are inline fragments only.
    dsl_type = None if isinstance(gql_type, GraphQLUnionType) else getattr(dsl, gql_type.name)
    if items is None:
        items = _every_field(dsl._schema, gql_type, seen)
        if not items:
            return []
    abstract = isinstance(gql_type, (GraphQLUnionType, GraphQLInterfaceType))
    out: list[DSLSelectable] = [DSLMetaField("__typename")] if abstract else []
    conflicts = _conflicting_fields(dsl._schema, gql_type) if abstract else set()
    for item in items:
        if isinstance(item, Mapping):
            for type_name, sub in item.items():
                member = getattr(dsl, type_name)
                selected = _select(dsl, member._type, sub, (*seen, type_name))
                for node in selected:
                    # Same name, other type on another member: GraphQL needs an alias.
                    if isinstance(node, DSLField) and node.name in conflicts:
                        node.alias(f"{node.name}{_ALIAS_MARK}{type_name}")
                out.append(DSLInlineFragment().on(member).select(*selected))
            continue
        name, sub_items = (item, None) if isinstance(item, str) else item
        if name == "__typename":
            if not abstract:
                out.append(DSLMetaField("__typename"))
            continue
        if dsl_type is None:
            msg = f"field {name!r} directly on union {gql_type.name} (use an inline fragment)"
            raise ConfigError(msg)
        dsl_field: DSLField = getattr(dsl_type, name)
        named = get_named_type(dsl_field.field.type)
        if isinstance(named, (GraphQLObjectType, GraphQLInterfaceType, GraphQLUnionType)):
            selected = _select(dsl, named, sub_items, (*seen, named.name))
            if not selected:
                continue
            dsl_field.select(*selected)
        out.append(dsl_field)
    return out


_ALIAS_MARK = "__on_"


def _conflicting_fields(graphql_schema: GraphQLSchema, gql_type: GraphQLNamedType) -> set[str]:
    """Field names the possible types of a union or interface declare with different types."""
    types: dict[str, set[str]] = {}
    abstract = t.cast("GraphQLUnionType | GraphQLInterfaceType", gql_type)
    for member in graphql_schema.get_possible_types(abstract):
        for name, member_field in member.fields.items():
            types.setdefault(name, set()).add(str(member_field.type))
    return {name for name, found in types.items() if len(found) > 1}


def has_aliases(document: DocumentNode) -> bool:
    """True when `list_document` had to alias union or interface fields (see restore_aliases)."""
    return _ALIAS_MARK in print_ast(document)


def restore_aliases(value: t.Any) -> t.Any:
    """Give aliased union/interface fields (`lastName__on_TeamMember`) their own names back."""
    if isinstance(value, list):
        return [restore_aliases(item) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, t.Any] = {}
    for key, item in value.items():
        name, mark, _ = key.partition(_ALIAS_MARK)
        out[name if mark else key] = restore_aliases(item)
    return out


def operation_name(document: DocumentNode) -> str | None:
    """The name of the document's operation, if it has one."""
    operation = get_operation_ast(document)
    return operation.name.value if operation and operation.name else None


@dataclass(frozen=True)
class WriteOp:
    """A write of a batch (the target's actions have the same attributes)."""

    kind: str
    record_id: str | None = None
    data: Mapping[str, t.Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Alias:
    """Where one aliased mutation of a batch answers: data[path[0]][path[1]]..."""

    name: str  # 'c0'
    kind: str
    path: tuple[str, ...]  # ('company', 'c0') or ('c0',)

    def result(self, data: Mapping[str, t.Any] | None) -> t.Any:
        node: t.Any = data
        for step in self.path:
            node = node.get(step) if isinstance(node, Mapping) else None
        return node

    def owns(self, error_path: Sequence[t.Any]) -> bool:
        """True when a GraphQL error with this `path` belongs to this mutation."""
        return tuple(str(p) for p in error_path[: len(self.path)]) == self.path


def batch_document(
    schema: MoovagoSchema, entity: Entity, ops: Sequence[t.Any]
) -> tuple[DocumentNode, dict[str, t.Any], list[Alias]]:
    """One mutation writing every op in order: call N is aliased `c<N>`/`u<N>`/`d<N>`, its values
    in variables `i<N>` (`i<N>_<arg>` for an id argument); MutationShapeError when unwritable."""
    writes = entity.writes or describe_writes(schema, entity)
    if not ops:
        raise ValueError(f"no write to put in a {entity.type_name} batch")
    dsl = _dsl(schema)
    var_defs = DSLVariableDefinitions()
    variables: dict[str, t.Any] = {}
    aliases: list[Alias] = []
    top: list[DSLField] = []
    grouped: dict[str, list[DSLField]] = {}  # namespace field -> its aliased calls
    for number, op in enumerate(ops):
        kind = kind_of(op.kind)
        shape = writes.shape(kind)
        alias = f"{kind[0]}{number}"
        args = {}
        for arg_name, value in shape.arguments(op.record_id, op.data).items():
            var_name = f"i{number}" if arg_name == shape.input_arg else f"i{number}_{arg_name}"
            variables[var_name] = value
            args[arg_name] = getattr(var_defs, var_name)
        call = getattr(getattr(dsl, shape.parent_type), shape.path[-1]).args(**args).alias(alias)
        payload_type = getattr(dsl, shape.payload_type, None)
        selected = []
        if shape.payload in (Payload.RECORD_ID, Payload.ID, Payload.RECORD):
            selected.append(getattr(payload_type, shape.payload_field or "id"))
        elif shape.payload is Payload.NESTED:
            nested = getattr(payload_type, shape.payload_field or "")
            selected.append(nested.select(getattr(dsl, writes.type_name).id))
        if shape.errors_field is not None:
            errors = getattr(payload_type, shape.errors_field)
            item_type = getattr(dsl, get_named_type(errors.field.type).name)
            selected.append(errors.select(item_type.message))
        if shape.failure_types:  # a result union: the written member, and each failure's message
            written = DSLInlineFragment().on(getattr(dsl, shape.payload_type)).select(*selected)
            failures = [getattr(dsl, name) for name in shape.failure_types]
            selected = [DSLMetaField("__typename"), written]
            selected += [DSLInlineFragment().on(f).select(f.message) for f in failures]
        if selected:
            call = call.select(*selected)
        if len(shape.path) == 2:
            grouped.setdefault(shape.path[0], []).append(call)
        else:
            top.append(call)
        aliases.append(Alias(alias, kind, (*shape.path[:-1], alias)))
    mutation_root = getattr(dsl, schema.graphql.mutation_type.name)  # type: ignore[union-attr]
    selections = [getattr(mutation_root, name).select(*calls) for name, calls in grouped.items()]
    operation = DSLMutation(*selections, *top)
    operation.variable_definitions = var_defs
    operation.name = f"TargetMoovago{entity.type_name}Batch"
    return dsl_gql(operation).document, variables, aliases


def check_writes(
    schema: MoovagoSchema, entity: Entity, kinds: Iterable[str] = KINDS
) -> EntityWrites:
    """At sink start: one batch with a call of each kind, built and validated, or
    MutationShapeError naming the mutations and the file."""
    writes = entity.writes or describe_writes(schema, entity)
    ops = [WriteOp(kind, None if kind == "create" else "0") for kind in dict.fromkeys(kinds)]
    names = ", ".join(writes.shape(op.kind).coordinate for op in ops)
    if not ops:
        return writes
    try:
        errors = validate(schema.graphql, batch_document(schema, entity, ops)[0])
    except (AttributeError, KeyError, TypeError) as err:  # gql.dsl refusing a field
        msg = f"the {entity.type_name} mutations ({names}) in {schema.path} cannot be built"
        raise MutationShapeError(f"{msg}: {err}", str(schema.path)) from err
    if errors:
        msg = f"the {writes.type_name} mutation document ({names}) is not valid against "
        raise MutationShapeError(f"{msg}{schema.path}: {errors[0].message}", str(schema.path))
    return writes
