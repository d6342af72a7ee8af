"""The fast path: a query of plain fields (no fragments or directives) over plain list fields
and the team, answered without graphql-core's per-value resolution.

For list fields SQLite prints each row's JSON text straight from the stored columns, and the
response is assembled from those texts: graphql-core resolves the 10,000 values of a 500-row
page one by one, far too slow for a server that must never be what a benchmark measures.
Argument and variable coercion use graphql-core's own functions; anything the fast path does
not handle (or any error) goes back to `execute`, which gives the same answers (tests compare).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLField,
    GraphQLNonNull,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
)
from graphql.execution.values import get_argument_values, get_variable_values

from moovago_sandbox.model import EntityModel, SandboxModel, json_shadow
from moovago_sandbox.resolvers import Reader, RequestContext
from moovago_sandbox.store import StoreError

MAX_SQL_FUNCTION_ARGS = 100  # SQLite's default SQLITE_MAX_FUNCTION_ARG is 127
LEAF, OBJECT, OBJECT_LIST, COMPUTED, TYPENAME = range(5)


@dataclass(frozen=True)
class Projection:
    key: str
    name: str
    kind: int
    sub: tuple[Projection, ...] = ()
    computed: tuple[str, str] | None = None  # (ids field, entity)


@dataclass(frozen=True)
class RootPlan:
    key: str
    field_def: GraphQLField
    node: FieldNode
    resolve: Callable[..., Any]
    sub: tuple[Projection, ...]
    is_list: bool
    entity: str | None = None
    sql: str | None = None  # SQL building each row's JSON, for list fields


def dump_json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _project(
    rows: list[dict[str, Any]], sub: tuple[Projection, ...], ctx: RequestContext
) -> list[dict[str, Any]]:
    """Rows cut down to the selection, keys in selection order (as graphql-core answers)."""
    pairs = [(p.key, p.name) for p in sub]
    nested = [p for p in sub if p.kind != LEAF]
    out = [{k: r.get(n) for k, n in pairs} for r in rows]
    if nested:
        for row, projected in zip(rows, out, strict=True):
            _fill_nested(row, projected, nested, ctx)
    return out


def _fill_nested(
    row: dict[str, Any], out: dict[str, Any], nested: list[Projection], ctx: RequestContext
) -> None:
    for p in nested:
        if p.kind == TYPENAME:
            out[p.key] = p.name
        elif p.kind == COMPUTED and p.computed is not None:
            ids_field, entity = p.computed
            out[p.key] = _project(ctx.rows_by_ids(entity, row.get(ids_field) or []), p.sub, ctx)
        elif (value := row.get(p.name)) is not None:
            out[p.key] = _project([value] if p.kind == OBJECT else value, p.sub, ctx)
            if p.kind == OBJECT:
                out[p.key] = out[p.key][0]


class FastPath:
    """Plans (once per cached document) and runs plain list and team queries."""

    def __init__(
        self,
        schema: GraphQLSchema,
        model: SandboxModel,
        reader: Reader,
        roots: dict[str, Callable[..., Any]],
    ) -> None:
        self.schema = schema
        self.model = model
        self.reader = reader
        self.roots = roots
        self.models = model.entities
        self._models_by_type = {m.type_name: m for m in self.models.values()}

    def plan(self, op: OperationDefinitionNode) -> tuple[RootPlan, ...] | None:
        query = self.schema.query_type
        if op.operation != OperationType.QUERY or op.directives or query is None:
            return None
        roots: list[RootPlan] = []
        seen: set[str] = set()
        for sel in op.selection_set.selections:
            if not isinstance(sel, FieldNode) or sel.directives:
                return None
            key, name = (sel.alias or sel.name).value, sel.name.value
            resolve = self.roots.get(name)
            plain = name == self.model.team_field or (
                name in self.model.lists and self.model.lists[name].connection is None
            )
            if key in seen or resolve is None or not plain or sel.selection_set is None:
                return None
            seen.add(key)
            fdef = query.fields[name]
            sub = self._plan_selection(get_named_type(fdef.type), sel.selection_set)
            if sub is None:
                return None
            nullable = fdef.type.of_type if isinstance(fdef.type, GraphQLNonNull) else fdef.type
            entity = sql = None
            if name in self.model.lists:
                entity = self.model.lists[name].entity
                sql = self._sql_text(self.models[entity], sub)
            roots.append(
                RootPlan(key, fdef, sel, resolve, sub, is_list_type(nullable), entity, sql)
            )
        return tuple(roots)

    def _plan_selection(
        self, parent: Any, selection_set: SelectionSetNode
    ) -> tuple[Projection, ...] | None:
        if not is_object_type(parent):
            return None
        model = self._models_by_type.get(parent.name)
        out: list[Projection] = []
        seen: set[str] = set()
        for sel in selection_set.selections:
            if not isinstance(sel, FieldNode) or sel.directives or sel.arguments:
                return None
            key, name = (sel.alias or sel.name).value, sel.name.value
            if key in seen:
                return None
            seen.add(key)
            if name == "__typename":
                out.append(Projection(key, parent.name, TYPENAME))
                continue
            if name == "_id":  # resolved from the row's id: left to `execute`
                return None
            fdef = parent.fields[name]
            named = get_named_type(fdef.type)
            if is_leaf_type(named):
                out.append(Projection(key, name, LEAF))
                continue
            if sel.selection_set is None:
                return None
            sub = self._plan_selection(named, sel.selection_set)
            if sub is None:
                return None
            nullable = fdef.type.of_type if isinstance(fdef.type, GraphQLNonNull) else fdef.type
            if model is not None and name in model.computed:
                out.append(Projection(key, name, COMPUTED, sub, model.computed[name]))
            else:
                out.append(
                    Projection(key, name, OBJECT_LIST if is_list_type(nullable) else OBJECT, sub)
                )
        return tuple(out)

    def _sql_value(
        self, model: EntityModel, p: Projection, alias: str, *, shadows: bool
    ) -> tuple[str, str] | None:
        """SQL for one selected field and what it yields: 'value' (a plain SQL value), 'json'
        (JSON text or NULL) or 'text' (JSON text, never NULL; the stored shadow columns).

        Keys and names are GraphQL names ([_A-Za-z][_0-9A-Za-z]*, checked by the parser), so
        quoting them inline is safe. JSON-text columns are embedded as they are stored, so
        numbers keep their exact digits. None when the field needs Python (object lists).
        """
        column = f'{alias}."{p.name}"'
        if p.kind == TYPENAME:
            return f"'{p.name}'", "value"
        if p.kind == LEAF:
            if p.name in model.json_fields:
                return column, "json"
            return (f'{alias}."{json_shadow(p.name)}"', "text") if shadows else (column, "value")
        if p.kind == OBJECT and all(q.kind == LEAF for q in p.sub):
            inner = ", ".join(f"'{q.key}', {column} -> '$.{q.name}'" for q in p.sub)
            return f"CASE WHEN {column} IS NULL THEN NULL ELSE json_object({inner}) END", "json"
        if p.kind == COMPUTED and alias == "t" and p.computed is not None:
            ids_field, target = p.computed
            target_model = self.models[target]
            inner_sql = self._sql_object(target_model, p.sub, "m")
            if inner_sql is None:
                return None
            # CROSS JOIN keeps json_each as the outer loop: rows come in mandatorIds order.
            ids_column = f'{alias}."{ids_field}"'
            return (
                f"(SELECT json_group_array({inner_sql}) FROM json_each({ids_column}) "  # noqa: S608
                f"AS j CROSS JOIN {target_model.table} AS m "
                f"WHERE m.id = j.value AND m.teamId = {alias}.teamId)",
                "json",
            )
        return None

    def _sql_object(
        self, model: EntityModel, sub: tuple[Projection, ...], alias: str
    ) -> str | None:
        """SQL building the selection's JSON object with json_object (nested rows)."""
        parts: list[str] = []
        for p in sub:
            value = self._sql_value(model, p, alias, shadows=False)
            if value is None:
                return None
            sql, kind = value
            parts.append(f"'{p.key}', " + (f"json({sql})" if kind == "json" else sql))
        if len(parts) * 2 > MAX_SQL_FUNCTION_ARGS:
            return None
        return "json_object(" + ", ".join(parts) + ")"

    def _sql_text(self, model: EntityModel, sub: tuple[Projection, ...]) -> str | None:
        """SQL printing the selection's JSON text for a row of table `t` with one printf,
        from stored JSON text: several times faster than json_object."""
        template: list[str] = []
        args: list[str] = []
        for i, p in enumerate(sub):
            value = self._sql_value(model, p, "t", shadows=True)
            if value is None:
                return None
            sql, kind = value
            template.append(("{" if i == 0 else ",") + f'"{p.key}":%s')
            args.append(
                sql
                if kind == "text"
                else f"coalesce({sql}, 'null')"
                if kind == "json"
                else f"json_quote({sql})"
            )
        if len(args) + 1 > MAX_SQL_FUNCTION_ARGS:
            return None
        return f"printf('{''.join(template)}}}', {', '.join(args)})"

    def run(
        self,
        ctx: RequestContext,
        op: OperationDefinitionNode,
        plans: tuple[RootPlan, ...],
        variables: dict[str, Any],
    ) -> str | None:
        """The response text, or None to let graphql-core answer (errors included)."""
        coerced = get_variable_values(self.schema, op.variable_definitions or (), variables)
        if isinstance(coerced, list):
            return None
        parts: list[str] = []
        for plan in plans:
            try:
                args = get_argument_values(plan.field_def, plan.node, coerced)
                if plan.sql is not None and plan.entity is not None:
                    lf = self.model.lists[plan.node.name.value]
                    read = self.reader.page(ctx, lf, args)
                    rows = ctx.store.select_json(plan.entity, ctx.team_id, plan.sql, **read.query)
                    parts.append(f"{dump_json(plan.key)}:[{','.join(rows)}]")
                    continue
                value = plan.resolve(ctx, **args)
            except (GraphQLError, StoreError):
                return None
            if value is None:
                if is_non_null_type(plan.field_def.type):
                    return None
            elif plan.is_list:
                value = _project(value, plan.sub, ctx)
            else:
                value = _project([value], plan.sub, ctx)[0]
            parts.append(f"{dump_json(plan.key)}:{dump_json(value)}")
        return '{"data":{' + ",".join(parts) + "}}"
