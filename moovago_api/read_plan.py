"""The read conventions R1-R6 (see `moovago_api.plan`): a plan for each Query root field."""

from __future__ import annotations

import re
import typing as t
from dataclasses import replace
from typing import Any

from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    get_named_type,
    is_abstract_type,
    print_ast,
)
from graphql.pyutils import Undefined

from moovago_api.plan import SETTING, Paging, SkippedField, StreamPlan

if t.TYPE_CHECKING:
    from moovago_api.schema import MoovagoSchema

__all__ = ["list_plan", "read_plans", "required"]

_STREAM_NAMES = {"companyContact": "contact"}  # R1
_ID_FIELDS = ("id", "_id")  # R2
_TEAM_FIELD = "teamId"  # R3
_FILTER_ARGS = ("filter", "where", "input")  # R3
_OFFSET_ARGS = ("skip", "offset")  # R4
_SIZE_ARGS = ("limit", "first", "take", "perPage", "pageSize", "per_page", "page_size")  # R4
_PAGE_ARGS = ("page", "pageNumber", "page_number")  # R4
_AFTER_ARGS = ("after", "cursor", "startingAfter")  # R4
_BACKWARD_ARGS = ("before", "last")  # R4: refused
_PAGING_ARGS = frozenset(_OFFSET_ARGS + _SIZE_ARGS + _PAGE_ARGS + _AFTER_ARGS + _BACKWARD_ARGS)
_ROW_LISTS = ("nodes", "items")  # R1: a connection's list of rows
_ROW_CURSOR_FIELD = "cursor"  # R4
_SORT_ARGS = ("orderBy", "sort", "sortBy", "order", "order_by", "sort_by")  # R5
_REPLICATION_KEY = "updatedAt"  # R6
_UPDATED_SINCE_FIELDS = ("updatedSince", "updatedAfter", "updatedAtFrom", "updatedFrom")  # R6
_OPERATORS = ("_operators", _REPLICATION_KEY)  # R6, then gte | gt


def read_plans(schema: MoovagoSchema) -> tuple[list[StreamPlan], list[SkippedField]]:
    """The read side of every stream (R1), `team` first, and the root fields that are none."""
    query = schema.graphql.query_type
    if query is None:
        return [], []
    plans: list[StreamPlan] = []
    skipped: list[SkippedField] = []
    taken: dict[str, str] = {}
    team = query.fields.get("team")
    if team is not None and isinstance(get_named_type(team.type), GraphQLObjectType):
        team_type = get_named_type(team.type)
        team_arg = next((n for n, a in team.args.items() if required(a)), None)
        if not _is_list(team.type):
            id_field = next((n for n in _ID_FIELDS if n in team_type.fields), "id")
            plans.append(
                StreamPlan("team", "team", team_type.name, "team", id_field, team_arg=team_arg)
            )
            taken["team"] = "team"
    for field_name, gql_field in query.fields.items():
        if field_name == "team" and taken.get("team") == "team":
            continue
        coordinate = f"{query.name}.{field_name}"
        plan = list_plan(field_name, gql_field)
        if isinstance(plan, str):
            rows = _is_list(gql_field.type) and is_abstract_type(get_named_type(gql_field.type))
            skipped.append(SkippedField(coordinate, plan, lists_rows=rows))
        elif plan.name in taken:
            first = next(i for i, p in enumerate(plans) if p.name == plan.name)
            if plans[first].deprecated is not None and plan.deprecated is None:
                # A live root field reads the type: it replaces the deprecated one.
                old = f"{query.name}.{taken[plan.name]}"
                why = f"deprecated; {coordinate} reads {plan.type_name}"
                skipped.append(SkippedField(old, why, lists_rows=True))
                plans[first] = plan
                taken[plan.name] = field_name
                continue
            why = f"{query.name}.{taken[plan.name]} already reads {plan.type_name}"
            skipped.append(SkippedField(coordinate, why, lists_rows=True))
        else:
            taken[plan.name] = field_name
            plans.append(plan)
    return plans, skipped


def list_plan(field_name: str, gql_field: GraphQLField) -> StreamPlan | str:
    """The plan of a root list field (R1-R6), or why it lists no object rows."""
    rows, node_type, why = _row_shape(gql_field.type)
    if node_type is None:
        return why
    name = node_type.name[0].lower() + node_type.name[1:]
    plan = StreamPlan(
        name=name,
        stream_name=_STREAM_NAMES.get(name, _snake_case(name)),
        type_name=node_type.name,
        root_field=field_name,
        deprecated=gql_field.deprecation_reason,
    )
    fix = f"set {SETTING}.{plan.stream_name}"
    id_field = next((n for n in _ID_FIELDS if n in node_type.fields), None)
    problem = None  # the rest is still planned, so that setting the id field is enough
    if id_field is None:
        why = f"{node_type.name} has no id or _id field"
        problem = f"Query.{field_name}: {why} ({fix}.id_field)"
    filter_arg, why = _filter_argument(gql_field)
    if not why:
        for arg_name, arg in gql_field.args.items():
            taken = arg_name == filter_arg or arg_name in _PAGING_ARGS or arg_name in _SORT_ARGS
            if not taken and required(arg):
                why = f"required argument {arg_name}: {arg.type} the tap cannot fill"
    if why:
        why = problem or f"Query.{field_name}: {why} ({fix})"
        return replace(plan, id_field=id_field or "id", problem=why)
    filter_fields: dict[str, GraphQLInputField] = {}
    filter_type = None
    if filter_arg is not None:
        found = get_named_type(gql_field.args[filter_arg].type)
        if isinstance(found, GraphQLInputObjectType):
            filter_fields, filter_type = found.fields, found.name
    bound, full_table = _bound(filter_fields, node_type, filter_arg)
    has_clock = _live(node_type.fields.get(_REPLICATION_KEY))
    return replace(
        plan,
        id_field=id_field or "id",
        problem=problem,
        filter_arg=filter_arg,
        filter_type=filter_type,
        team_filter_field=_TEAM_FIELD if _TEAM_FIELD in filter_fields else None,
        bound_path=bound,
        replication_key=_REPLICATION_KEY if bound and has_clock else None,
        full_table_reason=full_table,
        paging=_paging(field_name, gql_field, rows, node_type, fix),
    )


def _row_shape(gql_type: GraphQLOutputType) -> tuple[str, GraphQLObjectType | None, str]:
    """Where the rows of a root field's answer are (R1): ('list'|'nodes'|'items'|'edges', type)."""
    named = get_named_type(gql_type)
    if _is_list(gql_type):
        if isinstance(named, GraphQLObjectType):
            return "list", named, ""
        return "list", None, f"returns a list of {named.name}, not of object rows"
    if not isinstance(named, GraphQLObjectType):
        return "list", None, f"returns {gql_type}, not a list of objects"
    for rows in _ROW_LISTS:
        found = named.fields.get(rows)
        row_type = get_named_type(found.type) if found is not None else None
        if found is not None and _is_list(found.type) and isinstance(row_type, GraphQLObjectType):
            return rows, row_type, ""
    edges = named.fields.get("edges")
    if edges is not None and _is_list(edges.type):
        edge_type = get_named_type(edges.type)
        node = edge_type.fields.get("node") if isinstance(edge_type, GraphQLObjectType) else None
        if node is not None and isinstance(get_named_type(node.type), GraphQLObjectType):
            return "edges", t.cast("GraphQLObjectType", get_named_type(node.type)), ""
    return "list", None, f"returns one {named.name}, not a list or a connection of rows"


def _filter_argument(gql_field: GraphQLField) -> tuple[str | None, str]:
    """The input-object argument that scopes the list (R3), or why none fits."""
    inputs = {
        name: t.cast("GraphQLInputObjectType", get_named_type(arg.type))
        for name, arg in gql_field.args.items()
        if isinstance(get_named_type(arg.type), GraphQLInputObjectType)
        and arg.deprecation_reason is None
        and name not in _SORT_ARGS
    }

    def rank(item: tuple[str, GraphQLInputObjectType]) -> int:
        name, input_type = item
        if _TEAM_FIELD in input_type.fields:
            return 0
        if _first_live(input_type.fields, _UPDATED_SINCE_FIELDS):
            return 1
        return 2 if name in _FILTER_ARGS else 3

    chosen = min(inputs.items(), key=rank)[0] if inputs else None
    for name, input_type in inputs.items():
        arg = gql_field.args[name]
        if name != chosen:
            if required(arg):
                return None, f"required argument {name}: {arg.type} the tap cannot fill"
            continue
        needed = [f for f, input_field in input_type.fields.items() if required(input_field)]
        unknown = [f for f in needed if f != _TEAM_FIELD]
        if unknown:
            return None, (
                f"argument {name}: {arg.type} requires {', '.join(unknown)}, "
                "which the tap cannot fill"
            )
    return chosen, ""


def _bound(
    fields: dict[str, GraphQLInputField], node_type: GraphQLObjectType, filter_arg: str | None
) -> tuple[tuple[str, ...], str | None]:
    """Where the incremental lower bound goes (R6), or why the stream reads full table."""
    plain = _first_live(fields, _UPDATED_SINCE_FIELDS)
    if plain is not None:
        return (plain,), None
    node: Any = fields
    for step in _OPERATORS:
        found = node.get(step) if isinstance(node, dict) else None
        named = get_named_type(found.type) if found is not None else None
        node = named.fields if isinstance(named, GraphQLInputObjectType) else None
    op = _first_live(node, ("gte", "gt")) if isinstance(node, dict) else None
    if op is not None:
        return (*_OPERATORS, op), None
    if not _live(node_type.fields.get(_REPLICATION_KEY)):
        return (), None
    where = f"argument {filter_arg}" if filter_arg else "no filter argument"
    return (), (
        f"{node_type.name}.{_REPLICATION_KEY} exists but {where} takes no lower bound "
        f"({', '.join(_UPDATED_SINCE_FIELDS)} or {'.'.join(_OPERATORS)}.gte)"
    )


def _paging(
    field_name: str, gql_field: GraphQLField, rows: str, node_type: GraphQLObjectType, fix: str
) -> Paging:
    """The paging of a list root field (R4) and its order (R5)."""
    args = {name: arg for name, arg in gql_field.args.items() if arg.deprecation_reason is None}
    offset_arg = _first_live(args, _OFFSET_ARGS)
    size_arg = _first_live(args, _SIZE_ARGS)
    page_arg = _first_live(args, _PAGE_ARGS)
    after_arg = _first_live(args, _AFTER_ARGS)
    connection = get_named_type(gql_field.type)
    page_info = None
    row_cursor = None
    if rows != "list" and isinstance(connection, GraphQLObjectType):
        info = connection.fields.get("pageInfo")
        info_type = get_named_type(info.type) if info is not None else None
        if isinstance(info_type, GraphQLObjectType) and {
            "hasNextPage",
            "endCursor",
        } <= set(info_type.fields):
            page_info = "pageInfo"
        if rows == "edges":
            edge_type = get_named_type(connection.fields["edges"].type)
            if isinstance(edge_type, GraphQLObjectType) and _ROW_CURSOR_FIELD in edge_type.fields:
                row_cursor = _ROW_CURSOR_FIELD
    elif rows == "list" and _live(node_type.fields.get(_ROW_CURSOR_FIELD)):
        row_cursor = _ROW_CURSOR_FIELD
    sort_arg, sort_value = _sort(args)
    common: dict[str, Any] = {"rows": rows, "page_info": page_info, "row_cursor": row_cursor}
    common.update(sort_arg=sort_arg, sort_value=sort_value)
    signature = ", ".join(_argument_text(name, arg) for name, arg in gql_field.args.items())
    if any(name in args and required(args[name]) for name in _BACKWARD_ARGS):
        what = "requires backward paging (before/last), which the tap does not do"
        return Paging(
            kind="unsupported", problem=f"Query.{field_name}({signature}) {what}", **common
        )
    if after_arg and size_arg and (row_cursor or page_info):
        return Paging(kind="cursor", after_arg=after_arg, size_arg=size_arg, **common)
    if offset_arg and size_arg:
        return Paging(kind="offset", offset_arg=offset_arg, size_arg=size_arg, **common)
    if page_arg and size_arg:
        default = args[page_arg].default_value
        first_page = default if default in (0, 1) else 1
        return Paging("page", page_arg=page_arg, size_arg=size_arg, first_page=first_page, **common)
    if any(name in _PAGING_ARGS for name in args):
        what = (
            "has paging-like arguments the tap cannot drive: it pages with skip/offset + "
            "limit/first/take, page + perPage/pageSize, or after + first/limit with a cursor "
            f"({fix}.paging)"
        )
        return Paging(
            kind="unsupported", problem=f"Query.{field_name}({signature}) {what}", **common
        )
    return Paging(kind="none", **common)


def _argument_text(name: str, arg: GraphQLArgument) -> str:
    text = f"{name}: {arg.type}"
    if arg.ast_node is not None and arg.ast_node.default_value is not None:
        text += f" = {print_ast(arg.ast_node.default_value)}"
    return text


def _sort(args: dict[str, GraphQLArgument]) -> tuple[str | None, Any]:
    """The sort argument and the value asking for ascending ids (R5; None when none fits)."""
    sort_arg = _first_live(args, _SORT_ARGS)
    if sort_arg is None:
        return None, None
    named = get_named_type(args[sort_arg].type)
    value: Any = None
    if isinstance(named, GraphQLEnumType):
        live = [n for n, v in named.values.items() if v.deprecation_reason is None]
        for pattern in (r"_?id_?asc(ending)?", r"_?id"):
            value = next((n for n in live if re.fullmatch(pattern, n, re.IGNORECASE)), None)
            if value is not None:
                break
    if value is not None and _is_list(args[sort_arg].type):
        value = [value]
    return sort_arg, value


def required(arg: GraphQLArgument | GraphQLInputField) -> bool:
    return isinstance(arg.type, GraphQLNonNull) and arg.default_value is Undefined


def _is_list(gql_type: GraphQLOutputType | GraphQLInputType) -> bool:
    if isinstance(gql_type, GraphQLNonNull):
        gql_type = gql_type.of_type
    return isinstance(gql_type, GraphQLList)


def _live(item: GraphQLField | GraphQLArgument | GraphQLInputField | None) -> bool:
    return item is not None and item.deprecation_reason is None


def _first_live(items: t.Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    """The first of `names` present and not deprecated (deprecated spellings are dropped)."""
    return next((name for name in names if _live(items.get(name))), None)


def _snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()
