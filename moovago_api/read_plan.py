"""The read conventions R1-R6 (docs/stream-plan.md): a plan for each Query root field (one they
cannot read keeps a `problem` naming the setting that fixes it); and the `stream_plans` setting's
corrections, each wrong part one ConfigError naming `stream_plans.<stream>.<part>`."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLObjectType,
    coerce_input_value,
    get_named_type,
    is_abstract_type,
    is_object_type,
    is_required_argument,
    is_required_input_field,
    print_ast,
)
from graphql.pyutils import Undefined

from moovago_api.errors import ConfigError
from moovago_api.plan import (
    SETTING,
    Paging,
    SkippedField,
    StreamPlan,
    child,
    first_live,
    is_list,
)
from moovago_api.write_plan import describe_writes

if TYPE_CHECKING:
    from collections.abc import Mapping

    from moovago_api.schema import MoovagoSchema

_STREAM_NAMES = {"companyContact": "contact"}  # R1
_ROW_LISTS = ("nodes", "items", "edges")  # R1: a connection's rows (`edges { node }`)
_ID_FIELDS = ("id", "_id")  # R2
_TEAM_FIELD = "teamId"  # R3
_FILTER_ARGS = ("filter", "where", "input")  # R3
_OFFSET_ARGS = ("skip", "offset")  # R4
_SIZE_ARGS = ("limit", "first", "take", "perPage", "pageSize", "per_page", "page_size")  # R4
_PAGE_ARGS = ("page", "pageNumber", "page_number")  # R4
_AFTER_ARGS = ("after", "cursor", "startingAfter")  # R4
_BACKWARD_ARGS = ("before", "last")  # R4: refused
_PAGING_ARGS = frozenset(_OFFSET_ARGS + _SIZE_ARGS + _PAGE_ARGS + _AFTER_ARGS + _BACKWARD_ARGS)
_ROW_CURSOR = "cursor"  # R4
_SORT_ARGS = ("orderBy", "sort", "sortBy", "order", "order_by", "sort_by")  # R5
_ID_ORDERS = (r"_?id_?asc(ending)?", r"_?id")  # R5, in this order of preference
_CLOCK = "updatedAt"  # R6
_UPDATED_SINCE_FIELDS = ("updatedSince", "updatedAfter", "updatedAtFrom", "updatedFrom")  # R6
_OPERATORS = ("_operators", _CLOCK)  # R6, then gte | gt


def read_plans(schema: MoovagoSchema) -> tuple[list[StreamPlan], list[SkippedField]]:
    """The read side of every stream (R1), `team` first, and the root fields that are none."""
    query = schema.graphql.query_type
    if query is None:
        return [], []
    plans: dict[str, StreamPlan] = {}  # by entity name, in the order first found
    skipped: list[SkippedField] = []
    team = query.fields.get("team")
    team_type = get_named_type(team.type) if team else None
    if team and isinstance(team_type, GraphQLObjectType) and not is_list(team.type):
        team_arg = next((n for n, a in team.args.items() if is_required_argument(a)), None)
        id_field = next((n for n in _ID_FIELDS if n in team_type.fields), "id")
        plans["team"] = StreamPlan("team", "team", team_type.name, "team", id_field, team_arg)
    for field_name, gql_field in query.fields.items():
        if field_name == "team" and "team" in plans and plans["team"].root_field == "team":
            continue
        coordinate = f"{query.name}.{field_name}"
        plan = list_plan(field_name, gql_field)
        if isinstance(plan, str):
            rows = is_list(gql_field.type) and is_abstract_type(get_named_type(gql_field.type))
            skipped.append(SkippedField(coordinate, plan, lists_rows=rows))
            continue
        first = plans.setdefault(plan.name, plan)
        if first is plan:
            continue
        if first.deprecated is not None and plan.deprecated is None:
            # A live root field reads the type: it replaces the deprecated one.
            why = f"deprecated; {coordinate} reads {plan.type_name}"
            skipped.append(SkippedField(f"{query.name}.{first.root_field}", why, lists_rows=True))
            plans[plan.name] = plan
        else:
            why = f"{query.name}.{first.root_field} already reads {plan.type_name}"
            skipped.append(SkippedField(coordinate, why, lists_rows=True))
    return list(plans.values()), skipped


def list_plan(field_name: str, gql_field: GraphQLField) -> StreamPlan | str:
    """The plan of a root list field (R1-R6), or why it lists no object rows."""
    rows, node_type, why = _row_shape(gql_field.type)
    if node_type is None:
        return why
    name = node_type.name[0].lower() + node_type.name[1:]
    stream_name = _STREAM_NAMES.get(name, _snake_case(name))
    fix = f"set {SETTING}.{stream_name}"
    id_field = next((n for n in _ID_FIELDS if n in node_type.fields), None)
    problem = None  # the rest is still planned, so that setting the id field is enough
    if id_field is None:
        problem = f"Query.{field_name}: {node_type.name} has no id or _id field ({fix}.id_field)"
    plan = StreamPlan(name, stream_name, node_type.name, field_name, id_field or "id")
    plan = replace(plan, deprecated=gql_field.deprecation_reason, problem=problem)
    filter_arg, why = _filter_argument(gql_field)
    for arg_name, arg in gql_field.args.items():
        known = arg_name == filter_arg or arg_name in _PAGING_ARGS or arg_name in _SORT_ARGS
        if not why and not known and is_required_argument(arg):
            why = f"required argument {arg_name}: {arg.type} the tap cannot fill"
    if why:
        return replace(plan, problem=problem or f"Query.{field_name}: {why} ({fix})")
    filter_type = get_named_type(gql_field.args[filter_arg].type) if filter_arg else None
    filter_fields = filter_type.fields if isinstance(filter_type, GraphQLInputObjectType) else {}
    bound, full_table = _bound(filter_fields, node_type, filter_arg)
    return replace(
        plan,
        filter_arg=filter_arg,
        filter_type=filter_type.name if filter_type else None,
        team_filter_field=_TEAM_FIELD if _TEAM_FIELD in filter_fields else None,
        bound_path=bound,
        replication_key=_CLOCK if bound and first_live(node_type.fields, [_CLOCK]) else None,
        full_table_reason=full_table,
        paging=_paging(field_name, gql_field, rows, node_type, fix),
    )


def _row_shape(gql_type: Any) -> tuple[str, GraphQLObjectType | None, str]:
    """Where the rows of a root field's answer are (R1): ('list'|'nodes'|'items'|'edges', type)."""
    named = get_named_type(gql_type)
    if is_list(gql_type):
        if isinstance(named, GraphQLObjectType):
            return "list", named, ""
        return "list", None, f"returns a list of {named.name}, not of object rows"
    if not isinstance(named, GraphQLObjectType):
        return "list", None, f"returns {gql_type}, not a list of objects"
    for rows in _ROW_LISTS:
        found = named.fields.get(rows)
        row_type = child(named, rows)
        if rows == "edges":
            row_type = child(row_type, "node") if is_object_type(row_type) else None
        if found is not None and is_list(found.type) and isinstance(row_type, GraphQLObjectType):
            return rows, row_type, ""
    return "list", None, f"returns one {named.name}, not a list or a connection of rows"


def _filter_argument(gql_field: GraphQLField) -> tuple[str | None, str]:
    """The input-object argument that scopes the list (R3), or why none fits."""
    inputs: dict[str, GraphQLInputObjectType] = {
        name: input_type
        for name, arg in gql_field.args.items()
        if isinstance(input_type := get_named_type(arg.type), GraphQLInputObjectType)
        and arg.deprecation_reason is None
        and name not in _SORT_ARGS
    }

    def rank(name: str) -> int:
        if _TEAM_FIELD in inputs[name].fields:
            return 0
        if first_live(inputs[name].fields, _UPDATED_SINCE_FIELDS):
            return 1
        return 2 if name in _FILTER_ARGS else 3

    chosen = min(inputs, key=rank, default=None)
    for name, input_type in inputs.items():
        arg = gql_field.args[name]
        if name != chosen and is_required_argument(arg):
            return None, f"required argument {name}: {arg.type} the tap cannot fill"
        needed = [f for f, x in input_type.fields.items() if is_required_input_field(x)]
        unknown = [f for f in needed if f != _TEAM_FIELD]
        if name == chosen and unknown:
            what = f"requires {', '.join(unknown)}, which the tap cannot fill"
            return None, f"argument {name}: {arg.type} {what}"
    return chosen, ""


def _bound(
    fields: dict[str, Any], node_type: GraphQLObjectType, filter_arg: str | None
) -> tuple[tuple[str, ...], str | None]:
    """Where the incremental lower bound goes (R6), or why the stream reads full table."""
    plain = first_live(fields, _UPDATED_SINCE_FIELDS)
    if plain is not None:
        return (plain,), None
    operators = fields.get(_OPERATORS[0])
    clock = child(get_named_type(operators.type), _CLOCK) if operators else None
    op = first_live(getattr(clock, "fields", None), ("gte", "gt"))
    if op is not None:
        return (*_OPERATORS, op), None
    if not first_live(node_type.fields, [_CLOCK]):
        return (), None
    where = f"argument {filter_arg}" if filter_arg else "no filter argument"
    return (), (
        f"{node_type.name}.{_CLOCK} exists but {where} takes no lower bound "
        f"({', '.join(_UPDATED_SINCE_FIELDS)} or {'.'.join(_OPERATORS)}.gte)"
    )


def _paging(
    field_name: str, gql_field: GraphQLField, rows: str, node_type: GraphQLObjectType, fix: str
) -> Paging:
    """The paging of a list root field (R4) and its order (R5)."""
    args = {name: arg for name, arg in gql_field.args.items() if arg.deprecation_reason is None}
    offset_arg, size_arg, page_arg, after_arg = (
        first_live(args, names) for names in (_OFFSET_ARGS, _SIZE_ARGS, _PAGE_ARGS, _AFTER_ARGS)
    )
    connection = get_named_type(gql_field.type)
    info = child(connection, "pageInfo") if rows != "list" else None
    page_info = None
    if isinstance(info, GraphQLObjectType) and {"hasNextPage", "endCursor"} <= set(info.fields):
        page_info = "pageInfo"
    row_cursor = None
    if rows == "edges" and _ROW_CURSOR in child(connection, "edges").fields:
        row_cursor = _ROW_CURSOR
    elif rows == "list":
        row_cursor = first_live(node_type.fields, [_ROW_CURSOR])
    sort_arg, sort_value = _sort(args)
    common: dict[str, Any] = {"rows": rows, "page_info": page_info, "row_cursor": row_cursor}
    common.update(sort_arg=sort_arg, sort_value=sort_value)

    def unsupported(what: str) -> Paging:
        signature = ", ".join(_argument_text(name, arg) for name, arg in gql_field.args.items())
        return Paging("unsupported", problem=f"Query.{field_name}({signature}) {what}", **common)

    if any(name in args and is_required_argument(args[name]) for name in _BACKWARD_ARGS):
        return unsupported("requires backward paging (before/last), which the tap does not do")
    if after_arg and size_arg and (row_cursor or page_info):
        return Paging("cursor", after_arg=after_arg, size_arg=size_arg, **common)
    if offset_arg and size_arg:
        return Paging("offset", offset_arg=offset_arg, size_arg=size_arg, **common)
    if page_arg and size_arg:
        default = args[page_arg].default_value
        first_page = default if default in (0, 1) else 1
        return Paging("page", page_arg=page_arg, size_arg=size_arg, first_page=first_page, **common)
    if any(name in _PAGING_ARGS for name in args):
        return unsupported(
            "has paging-like arguments the tap cannot drive: it pages with skip/offset + "
            "limit/first/take, page + perPage/pageSize, or after + first/limit with a cursor "
            f"({fix}.paging)"
        )
    return Paging("none", **common)


def _argument_text(name: str, arg: GraphQLArgument) -> str:
    default = arg.ast_node.default_value if arg.ast_node is not None else None
    return f"{name}: {arg.type}" + (f" = {print_ast(default)}" if default is not None else "")


def _sort(args: dict[str, GraphQLArgument]) -> tuple[str | None, Any]:
    """The sort argument and the value asking for ascending ids (R5; None when none fits)."""
    sort_arg = first_live(args, _SORT_ARGS)
    enum = get_named_type(args[sort_arg].type) if sort_arg else None
    if sort_arg is None or not isinstance(enum, GraphQLEnumType):
        return sort_arg, None
    live = [n for n, v in enum.values.items() if v.deprecation_reason is None]
    matches = (n for p in _ID_ORDERS for n in live if re.fullmatch(p, n, re.IGNORECASE))
    value = next(matches, None)
    if value is not None and is_list(args[sort_arg].type):
        return sort_arg, [value]
    return sort_arg, value


def _snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


PARTS = ("root_field", "id_field", "paging", "order", "incremental", "team_field", "writes")
_PAGING_KEYS = ("kind", "rows", "offset_arg", "size_arg", "page_arg", "after_arg", "first_page")
_PAGING_KINDS = ("offset", "page", "cursor", "none")


def apply_overrides(
    schema: MoovagoSchema, plans: list[StreamPlan], overrides: Mapping[str, Any]
) -> list[StreamPlan]:
    """`plans` with each stream's overrides applied, new streams appended, all checked."""
    if not isinstance(overrides, dict):
        raise ConfigError(f"Setting {SETTING} must be an object keyed by stream name")
    out = list(plans)
    for stream, parts in overrides.items():
        index = next((i for i, p in enumerate(out) if stream in (p.stream_name, p.name)), len(out))
        found = out[index] if index < len(out) else None
        out[index : index + 1] = [_override(schema, stream, found, parts)]
    return out


def _override(
    schema: MoovagoSchema, stream: str, plan: StreamPlan | None, parts: Mapping[str, Any]
) -> StreamPlan:
    query = schema.graphql.query_type
    fields = query.fields if query is not None else {}

    def fail(part: str, what: str) -> ConfigError:
        where = ".".join(filter(None, (f"Setting {SETTING}.{stream}", part)))
        return ConfigError(f"{where}: {what} in {schema.path}")

    _object(parts, "", fail, PARTS)
    if "root_field" in parts or plan is None:
        root = parts.get("root_field")
        if root not in fields:
            raise fail("root_field", f"Query has no field {root!r} (a new stream needs one)")
        found = list_plan(str(root), fields[str(root)])
        if isinstance(found, str):
            raise fail("root_field", f"Query.{root} {found}")
        plan = replace(found, stream_name=stream)
        plan = replace(plan, writes=describe_writes(schema, plan))
    args = fields[plan.root_field].args
    row_fields = getattr(schema.graphql.get_type(plan.type_name), "fields", {})
    changes: dict[str, Any] = {"overridden": tuple(k for k in PARTS if k in parts)}
    if "id_field" in parts:
        if parts["id_field"] not in row_fields:
            raise fail("id_field", f"{plan.type_name} has no field {parts['id_field']!r}")
        changes.update(id_field=parts["id_field"], problem=None)
    paging = plan.paging
    if "paging" in parts:
        given = _object(parts["paging"], "paging", fail, _PAGING_KEYS)
        if given.get("kind", paging.kind) not in _PAGING_KINDS:
            raise fail("paging.kind", f"{given['kind']!r} is not one of {', '.join(_PAGING_KINDS)}")
        for key, value in given.items():
            if key.endswith("_arg") and value not in args:
                raise fail(f"paging.{key}", f"Query.{plan.root_field} has no argument {value!r}")
        paging = replace(paging, **given, problem=None)
    if "order" in parts:
        given = _object(parts["order"], "order", fail, ("arg", "value"))
        sort_arg = given.get("arg", paging.sort_arg)
        if sort_arg not in args:
            raise fail("order.arg", f"Query.{plan.root_field} has no argument {given.get('arg')!r}")
        if coerce_input_value(given.get("value"), args[sort_arg].type) is Undefined:
            raise fail("order.value", f"{given.get('value')!r} is not a {args[sort_arg].type}")
        paging = replace(paging, sort_arg=sort_arg, sort_value=given["value"])
    changes["paging"] = paging
    filter_arg = plan.filter_arg
    if "incremental" in parts:
        given = _object(parts["incremental"], "incremental", fail, ("filter_arg", "bound_path"))
        filter_arg = given.get("filter_arg", filter_arg)
        path = tuple(given.get("bound_path") or ())
        _input_path(args, filter_arg, path, fail, "incremental.bound_path")
        if "updatedAt" not in row_fields:
            raise fail("incremental", f"{plan.type_name} has no updatedAt field to keep as a state")
        changes.update(bound_path=path, replication_key="updatedAt", full_table_reason=None)
    if "team_field" in parts:
        _input_path(args, filter_arg, (parts["team_field"],), fail, "team_field")
        changes["team_filter_field"] = parts["team_field"]
    if filter_arg != plan.filter_arg:
        changes.update(
            filter_arg=filter_arg, filter_type=get_named_type(args[filter_arg].type).name
        )
    plan = replace(plan, **changes)
    if "writes" in parts:
        given = _object(parts["writes"], "writes", fail, ("create", "update", "delete"))
        writes = describe_writes(schema, plan, {kind: str(name) for kind, name in given.items()})
        for kind in given:
            if kind not in writes.shapes:
                raise fail(f"writes.{kind}", writes.refused.get(kind) or writes.missing[kind])
        plan = replace(plan, writes=writes)
    return plan


def _object(value: Any, part: str, fail: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(part, f"must be an object with some of {', '.join(keys)}")
    unknown = [key for key in value if key not in keys]
    if unknown:
        raise fail(f"{part}.{unknown[0]}".lstrip("."), f"is not one of {', '.join(keys)}")
    return value


def _input_path(args: Any, filter_arg: str | None, path: tuple, fail: Any, part: str) -> None:
    """Check that `filter_arg` then `path` lead through input objects to a field."""
    if filter_arg not in args:
        raise fail(part, f"the list has no filter argument {filter_arg!r}")
    if not path:
        raise fail(part, "is empty")
    node: Any = get_named_type(args[filter_arg].type)
    for step in path:
        if not isinstance(node, GraphQLInputObjectType) or step not in node.fields:
            raise fail(part, f"{getattr(node, 'name', node)} has no input field {step!r}")
        node = child(node, step)
