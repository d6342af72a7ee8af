"""GraphQL execution of the sandbox: the schema (built once), its resolvers and the document cache.

Two paths give the same answers (tests compare them, random queries included): graphql-core's
`execute` runs every document; `fastpath` serves plain list queries from SQL. Parsed and
validated documents, with their fast-path plans, are cached by text (LRU).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    execute,
    parse,
    specified_rules,
    validate,
)
from graphql.validation import NoSchemaIntrospectionCustomRule

from moovago_sandbox.fastpath import FastPath, RootPlan, dump_json
from moovago_sandbox.model import EntityModel, SandboxModel, build_model
from moovago_sandbox.resolvers import (
    NOT_AUTHORIZED,
    AuthorizationError,
    ListModes,
    Reader,
    RequestContext,
    bind,
)
from moovago_sandbox.scalars import bind_scalars
from moovago_sandbox.store import Store

__all__ = [
    "NOT_AUTHORIZED",
    "Answer",
    "Engine",
    "RequestContext",
    "dump_json",
    "graphql_error",
]

INTROSPECTION_DISABLED = "Introspection is disabled on this server: use the schema file instead"
VALIDATION_RULES = (*specified_rules, NoSchemaIntrospectionCustomRule)


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
class Answer:
    """A response body, as JSON text (fast path) or as a dict (graphql-core), or both."""

    text: str | None = None
    body: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        if self.body is None:
            import json

            self.body = json.loads(self.text or "{}")
        return self.body

    def as_text(self) -> str:
        return self.text if self.text is not None else dump_json(self.body)

    @property
    def error_count(self) -> int:
        return len(self.body.get("errors") or ()) if self.body is not None else 0


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


class Engine:
    """Executes GraphQL requests of one team against the store."""

    def __init__(
        self,
        store: Store,
        schema: GraphQLSchema,
        *,
        model: SandboxModel | None = None,
        fast_path: bool = True,
        cache_size: int = 256,
        modes: ListModes | None = None,
        before_read: Callable[[RequestContext, str], None] | None = None,
    ) -> None:
        self.store = store
        self.schema = schema
        self.model = model or build_model(schema)
        self.models: dict[str, EntityModel] = self.model.entities
        self.fast_path = fast_path
        self.cache_size = cache_size
        self._cache: OrderedDict[str, Prepared] = OrderedDict()
        bind_scalars(schema)
        self.reader = Reader(self.model, modes or ListModes(), before_read)
        roots = bind(schema, self.model, self.reader)
        self.fast = FastPath(schema, self.model, self.reader, roots)

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
        except RecursionError:
            message = "The query is nested too deeply"
            return Prepared(None, [graphql_error(message, error_type="InvalidSyntax")], {})
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
                prepared.plans[name] = self.fast.plan(op)
        return prepared

    def root_keys(self, query: str, operation_name: str | None) -> list[str]:
        """Response keys of the operation's root fields (for errors that refuse the request)."""
        op = self.prepare(query).operation(operation_name)
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
                text = self.fast.run(ctx, op, plans, dict(variables or {}))
                if text is not None:
                    return Answer(text=text)
        result = execute(
            self.schema,
            prepared.document,
            context_value=ctx,
            variable_values=dict(variables or {}),
            operation_name=operation_name,
        )
        if not isinstance(result, ExecutionResult):  # no resolver here is async
            raise TypeError("graphql-core answered asynchronously")
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
