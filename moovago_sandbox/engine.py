"""GraphQL execution of the sandbox: the bundled SDL with resolvers bound to it.

Two paths give the same answers (tests compare them, random queries included). graphql-core's
`execute` can run every document. A fast path serves the common case (a query of plain fields,
no fragments or directives): for list fields SQLite prints each row's JSON text straight from
the stored columns, and the response is assembled from those texts. graphql-core resolves the
10,000 values of a 500-row page one by one, far too slow for a server that must never be what
a benchmark measures. Argument and variable coercion use graphql-core's own functions, and
anything the fast path does not handle (or any error) goes back to `execute`. Parsed and
validated documents are cached by text (LRU).
"""

from __future__ import annotations

import json
import random
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLError,
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    build_schema,
    execute,
    get_named_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
    parse,
    specified_rules,
    validate,
)
from graphql.execution.values import get_argument_values, get_variable_values
from graphql.validation import NoSchemaIntrospectionCustomRule

from moovago_sandbox.scalars import bind_scalars, ceil_to_millisecond, format_datetime
from moovago_sandbox.store import EntityModel, Store, StoreError, build_models, json_shadow

NOT_AUTHORIZED = "You are not authorized to access this data"
INTROSPECTION_DISABLED = "Introspection is disabled on this server: use the schema file instead"
MAX_LIMIT = 1000
MAX_SQL_FUNCTION_ARGS = 100  # SQLite's default SQLITE_MAX_FUNCTION_ARG is 127
PAGING_ARGS = ("skip", "limit", "offset")
FILTER_SPECIAL = ("teamId", "updatedSince", "ids")
VALIDATION_RULES = (*specified_rules, NoSchemaIntrospectionCustomRule)


class AuthorizationError(GraphQLError):
    """A filter names another team than the key's."""


def graphql_error(
    message: str,
    *,
    error_type: str,
    path: list[Any] | None = None,
    locations: list[dict[str, int]] | None = None,
) -> dict[str, Any]:
    """An error as Moovago shapes it (see the vendor page): message, locations, errorType, path."""
    return {
        "message": message,
        "locations": locations or [],
        "errorType": error_type,
        "path": path,
        "extensions": None,
    }


def format_error(error: GraphQLError, default_type: str) -> dict[str, Any]:
    locations = [{"line": loc.line, "column": loc.column} for loc in error.locations or ()]
    if isinstance(error.original_error, AuthorizationError):
        locations = []  # the vendor page's exact shape for this error
    if error.path is not None:
        error_type = "DataFetchingException"
    elif "introspection" in error.message:
        error_type = "ValidationError"
        error = GraphQLError(INTROSPECTION_DISABLED, error.nodes)
    else:
        error_type = default_type
    return graphql_error(error.message, error_type=error_type, path=error.path, locations=locations)


@dataclass
class RequestContext:
    """Who is asking (the key's team and user) and what the request changed."""

    store: Store
    team_id: str
    owner_id: str | None
    mutations: list[tuple[str, str]] = field(default_factory=list)  # (entity, create|update|delete)
    lookups: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def rows_by_ids(self, entity: str, ids: list[str]) -> list[dict[str, Any]]:
        """Rows of `ids` in this team, memoised for the request (Company.mandators)."""
        cache = self.lookups.setdefault(entity, {})
        missing = [i for i in ids if i not in cache]
        if missing:
            for row in self.store.by_ids(entity, self.team_id, missing):
                cache[row["id"]] = row
        return [cache[i] for i in ids if i in cache]


# -- fast path plans -------------------------------------------------------------------------

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


@dataclass
class Answer:
    """A response body, as JSON text (fast path) or as a dict (graphql-core), or both."""

    text: str | None = None
    body: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        if self.body is None:
            self.body = json.loads(self.text or "{}")
        return self.body

    def as_text(self) -> str:
        return self.text if self.text is not None else dump_json(self.body)

    @property
    def error_count(self) -> int:
        return len(self.body.get("errors") or ()) if self.body is not None else 0


def dump_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass
class Prepared:
    """A request text parsed and validated once, kept in the LRU cache."""

    document: DocumentNode | None
    errors: list[dict[str, Any]]
    operations: dict[str | None, OperationDefinitionNode]
    plans: dict[str | None, tuple[RootPlan, ...] | None] = field(default_factory=dict)

    def operation(self, name: str | None) -> OperationDefinitionNode | None:
        if name:
            return self.operations.get(name)
        if len(self.operations) == 1:
            return next(iter(self.operations.values()))
        return None


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


def _project_one(
    row: dict[str, Any], sub: tuple[Projection, ...], ctx: RequestContext
) -> dict[str, Any]:
    return _project([row], sub, ctx)[0]


def _fill_nested(
    row: dict[str, Any], out: dict[str, Any], nested: list[Projection], ctx: RequestContext
) -> None:
    for p in nested:
        if p.kind == TYPENAME:
            out[p.key] = p.name
        elif p.kind == COMPUTED:
            assert p.computed is not None
            ids_field, entity = p.computed
            out[p.key] = _project(ctx.rows_by_ids(entity, row.get(ids_field) or []), p.sub, ctx)
        elif (value := row.get(p.name)) is not None:
            out[p.key] = _project([value] if p.kind == OBJECT else value, p.sub, ctx)
            if p.kind == OBJECT:
                out[p.key] = out[p.key][0]


class Engine:
    """Executes GraphQL requests of one team against the store."""

    def __init__(
        self, store: Store, sdl: str, *, fast_path: bool = True, cache_size: int = 256
    ) -> None:
        self.store = store
        self.schema: GraphQLSchema = build_schema(sdl)
        self.fast_path = fast_path
        self.cache_size = cache_size
        self._cache: OrderedDict[str, Prepared] = OrderedDict()
        self.models: dict[str, EntityModel] = build_models(self.schema)
        self._models_by_type = {m.type_name: m for m in self.models.values()}
        bind_scalars(self.schema)
        self._bind_resolvers()

    # -- resolvers ------------------------------------------------------------------------

    def _bind_resolvers(self) -> None:
        query = self.schema.query_type
        assert query is not None
        self._root_resolvers: dict[str, Callable[..., Any]] = {}
        for name, fdef in query.fields.items():
            if name == "team":
                resolve: Callable[..., Any] = self._team
            elif name.endswith("List") and name[: -len("List")] in self.models:
                resolve = self._lister(name[: -len("List")])
            else:
                continue
            self._root_resolvers[name] = resolve
            fdef.resolve = _with_context(resolve)
        mutation = self.schema.mutation_type
        for name, fdef in mutation.fields.items() if mutation else ():
            if name not in self.models:
                continue
            fdef.resolve = _namespace(name)
            ns_type = get_named_type(fdef.type)
            assert isinstance(ns_type, GraphQLObjectType)
            for kind, op_def in ns_type.fields.items():
                if kind in ("create", "update", "delete"):
                    op_def.resolve = self._mutator(name, kind)
        for model in self.models.values():
            obj = self.schema.type_map[model.type_name]
            assert isinstance(obj, GraphQLObjectType)
            for fname, (ids_field, entity) in model.computed.items():
                obj.fields[fname].resolve = _computed(ids_field, entity)

    def _team(self, ctx: RequestContext) -> dict[str, Any] | None:
        return self.store.team(ctx.team_id)

    def _list_query(
        self,
        ctx: RequestContext,
        filter: dict[str, Any],
        skip: int | None = 0,
        limit: int | None = None,
        offset: int | None = None,
    ) -> dict[str, Any]:
        """Checked arguments of a `<name>List` field, as `Store.select` keywords."""
        if filter.get("teamId") != ctx.team_id:
            raise AuthorizationError(NOT_AUTHORIZED)
        skip = skip or 0
        if offset is not None:
            if skip and skip != offset:
                raise GraphQLError("Give skip or offset (deprecated), not both")
            skip = offset
        if skip < 0:
            raise GraphQLError(f"skip must be 0 or more, got {skip}")
        if limit is not None and not 1 <= limit <= MAX_LIMIT:
            raise GraphQLError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
        since = filter.get("updatedSince")
        return {
            "updated_since": format_datetime(ceil_to_millisecond(since)) if since else None,
            "ids": filter.get("ids"),
            "equals": {
                k: v for k, v in filter.items() if k not in FILTER_SPECIAL and v is not None
            },
            "skip": skip,
            "limit": limit,
        }

    def _lister(self, entity: str) -> Callable[..., list[dict[str, Any]]]:
        def list_rows(ctx: RequestContext, **args: Any) -> list[dict[str, Any]]:
            query = self._list_query(ctx, **args)
            try:
                return ctx.store.select(entity, ctx.team_id, **query)
            except StoreError as exc:
                raise GraphQLError(str(exc)) from exc

        return list_rows

    def _mutator(self, entity: str, kind: str) -> Callable[..., Any]:
        def mutate(_root: Any, info: Any, input: dict[str, Any]) -> dict[str, Any]:
            ctx: RequestContext = info.context
            values = _stored_form(input)
            try:
                if kind == "create":
                    row = ctx.store.create(entity, ctx.team_id, values, owner_id=ctx.owner_id)
                elif kind == "update":
                    row = ctx.store.update(entity, ctx.team_id, values["id"], values["input"])
                else:
                    ctx.store.delete(entity, ctx.team_id, values["id"])
                    ctx.mutations.append((entity, kind))
                    return {"recordId": values["id"], "record": None}
            except StoreError as exc:
                raise GraphQLError(str(exc)) from exc
            ctx.mutations.append((entity, kind))
            return {"recordId": row["id"], "record": row}

        return mutate

    # -- requests ---------------------------------------------------------------------------

    def prepare(self, query: str) -> Prepared:
        """Parse and validate once per distinct text (LRU)."""
        prepared = self._cache.get(query)
        if prepared is not None:
            self._cache.move_to_end(query)
            return prepared
        prepared = self._prepare(query)
        self._cache[query] = prepared
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return prepared

    def _prepare(self, query: str) -> Prepared:
        try:
            document = parse(query)
        except GraphQLError as exc:
            return Prepared(None, [format_error(exc, "InvalidSyntax")], {})
        operations = {
            d.name.value if d.name else None: d
            for d in document.definitions
            if isinstance(d, OperationDefinitionNode)
        }
        errors = validate(self.schema, document, VALIDATION_RULES)
        prepared = Prepared(
            document, [format_error(e, "ValidationError") for e in errors], operations
        )
        if not errors and self.fast_path:
            for name, op in operations.items():
                prepared.plans[name] = self._plan(op)
        return prepared

    def root_keys(self, query: str, operation_name: str | None) -> list[str]:
        """Response keys of the operation's root fields (for errors that refuse the request)."""
        prepared = self.prepare(query)
        op = prepared.operation(operation_name)
        if op is None:
            return []
        return [
            (s.alias or s.name).value
            for s in op.selection_set.selections
            if isinstance(s, FieldNode)
        ]

    def operation_type(self, query: str, operation_name: str | None) -> str:
        op = self.prepare(query).operation(operation_name)
        return op.operation.value if op is not None else "query"

    def answer(
        self,
        ctx: RequestContext,
        query: str,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
        *,
        fast: bool | None = None,
    ) -> Answer:
        """The response body for one request: `data`, and `errors` when there are any."""
        prepared = self.prepare(query)
        if prepared.errors or prepared.document is None:
            return Answer(body={"data": None, "errors": prepared.errors})
        if fast if fast is not None else self.fast_path:
            op = prepared.operation(operation_name)
            plans = prepared.plans.get(op.name.value if op and op.name else None) if op else None
            if op is not None and plans is not None:
                text = self._run_fast(ctx, op, plans, dict(variables or {}))
                if text is not None:
                    return Answer(text=text)
        result = execute(
            self.schema,
            prepared.document,
            context_value=ctx,
            variable_values=dict(variables or {}),
            operation_name=operation_name,
        )
        assert isinstance(result, ExecutionResult)
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [format_error(e, "ValidationError") for e in result.errors]
        return Answer(body=body)

    def run(
        self,
        ctx: RequestContext,
        query: str,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
        *,
        fast: bool | None = None,
    ) -> dict[str, Any]:
        """`answer` as a dict."""
        return self.answer(ctx, query, variables, operation_name, fast=fast).as_dict()

    # -- fast path ----------------------------------------------------------------------------

    def _plan(self, op: OperationDefinitionNode) -> tuple[RootPlan, ...] | None:
        if op.operation != OperationType.QUERY or op.directives:
            return None
        query = self.schema.query_type
        assert query is not None
        roots: list[RootPlan] = []
        seen: set[str] = set()
        for sel in op.selection_set.selections:
            if not isinstance(sel, FieldNode) or sel.directives:
                return None
            key = (sel.alias or sel.name).value
            resolve = self._root_resolvers.get(sel.name.value)
            if key in seen or resolve is None or sel.selection_set is None:
                return None
            seen.add(key)
            fdef = query.fields[sel.name.value]
            sub = self._plan_selection(get_named_type(fdef.type), sel.selection_set)
            if sub is None:
                return None
            nullable = fdef.type.of_type if isinstance(fdef.type, GraphQLNonNull) else fdef.type
            model = self._models_by_type.get(get_named_type(fdef.type).name)
            entity = sql = None
            if model is not None and is_list_type(nullable):
                entity, sql = model.name, self._sql_text(model, sub)
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
            fdef = parent.fields[name]
            named = get_named_type(fdef.type)
            if is_leaf_type(named):
                out.append(Projection(key, name, LEAF))
                continue
            assert sel.selection_set is not None
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
        if p.kind == COMPUTED and alias == "t":
            assert p.computed is not None
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

    def _run_fast(
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
                    query = self._list_query(ctx, **args)
                    rows = ctx.store.select_json(plan.entity, ctx.team_id, plan.sql, **query)
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
                value = _project_one(value, plan.sub, ctx)
            parts.append(f"{dump_json(plan.key)}:{dump_json(value)}")
        return '{"data":{' + ",".join(parts) + "}}"

    # -- faults ---------------------------------------------------------------------------

    def inject_partial_error(
        self,
        body: dict[str, Any],
        query: str,
        operation_name: str | None,
        rng: random.Random,
    ) -> bool:
        """Turn an answer into a partial one: one nullable value of one row becomes null with
        an error beside it (the whole root field when no nullable value is selected)."""
        data = body.get("data")
        op = self.prepare(query).operation(operation_name)
        query_type = self.schema.query_type
        if not data or op is None or query_type is None:
            return False
        for sel in op.selection_set.selections:
            if not isinstance(sel, FieldNode) or sel.name.value not in query_type.fields:
                continue
            key = (sel.alias or sel.name).value
            rows = data.get(key)
            if not isinstance(rows, list) or not rows:
                continue
            row_type = get_named_type(query_type.fields[sel.name.value].type)
            assert isinstance(row_type, GraphQLObjectType)
            candidates = [
                s
                for s in (sel.selection_set.selections if sel.selection_set else ())
                if isinstance(s, FieldNode)
                and s.name.value in row_type.fields
                and not is_non_null_type(row_type.fields[s.name.value].type)
            ]
            index = rng.randrange(len(rows))
            if candidates:
                node = rng.choice(candidates)
                field_key = (node.alias or node.name).value
                path: list[Any] = [key, index, field_key]
                rows[index][field_key] = None
            else:
                node, path = sel, [key]
                body["data"] = None
            loc = node.loc.source.get_location(node.loc.start) if node.loc else None
            where = "/" + "/".join(f"{p}" if isinstance(p, str) else f"[{p}]" for p in path)
            body.setdefault("errors", []).append(
                graphql_error(
                    f"Exception while fetching data ({where.replace('/[', '[')}) : "
                    "Internal server error",
                    error_type="DataFetchingException",
                    path=path,
                    locations=[{"line": loc.line, "column": loc.column}] if loc else [],
                )
            )
            return True
        return False


def _with_context(resolve: Callable[..., Any]) -> Callable[..., Any]:
    def resolver(_root: Any, info: Any, **args: Any) -> Any:
        return resolve(info.context, **args)

    return resolver


def _namespace(entity: str) -> Callable[..., Any]:
    def resolver(_root: Any, _info: Any) -> str:
        return entity

    return resolver


def _computed(ids_field: str, entity: str) -> Callable[..., Any]:
    def resolver(row: dict[str, Any], info: Any) -> list[dict[str, Any]]:
        return info.context.rows_by_ids(entity, row.get(ids_field) or [])

    return resolver


def _stored_form(value: Any) -> Any:
    """Coerced input values as the store keeps them (DateTime and Date as their strings)."""
    if isinstance(value, dict):
        return {k: _stored_form(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stored_form(v) for v in value]
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    return value
