"""The `stream_plans` setting: a user's corrections of the plans the conventions built.

Keyed by stream name, the same in tap and target (parts and example in docs/stream-plan.md); an
unknown stream name adds a stream and needs `root_field`. A part that does not fit the schema file
is one ConfigError naming `stream_plans.<stream>.<part>` and what the file has.
"""

from __future__ import annotations

import typing as t
from dataclasses import replace
from typing import Any

from graphql import GraphQLInputObjectType, coerce_input_value, get_named_type
from graphql.pyutils import Undefined

from moovago_api.errors import ConfigError, SchemaFileError
from moovago_api.plan import SETTING, SchemaFile, StreamPlan, child
from moovago_api.read_plan import list_plan
from moovago_api.write_plan import describe_writes, named_write

if t.TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["PARTS", "apply_overrides"]

PARTS = ("root_field", "id_field", "paging", "order", "incremental", "team_field", "writes")
_PAGING_KEYS = ("kind", "rows", "offset_arg", "size_arg", "page_arg", "after_arg", "first_page")
_PAGING_KINDS = ("offset", "page", "cursor", "none")


def apply_overrides(
    schema: SchemaFile, plans: list[StreamPlan], overrides: Mapping[str, Any]
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
    schema: SchemaFile, stream: str, plan: StreamPlan | None, parts: Mapping[str, Any]
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
        writes = plan.writes or describe_writes(schema, plan)
        shapes, refused, missing = dict(writes.shapes), dict(writes.refused), dict(writes.missing)
        for kind, name in given.items():
            try:
                shapes[kind] = named_write(schema, plan, kind, str(name))
            except SchemaFileError as err:
                raise fail(f"writes.{kind}", str(err)) from None
            refused.pop(kind, None)
            missing.pop(kind, None)
        writes = replace(writes, shapes=shapes, refused=refused, missing=missing)
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
