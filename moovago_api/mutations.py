"""The aliased batch documents writing what the plan's write side (`moovago_api.write_plan`)
declares, built with `gql.dsl`, values only in `variables`; and the check run at sink start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gql.dsl import (
    DSLField,
    DSLInlineFragment,
    DSLMetaField,
    DSLMutation,
    DSLSchema,
    DSLVariableDefinitions,
    dsl_gql,
)
from graphql import DocumentNode, get_named_type, validate

from moovago_api.write_plan import (
    KINDS,
    EntityWrites,
    MutationShapeError,
    Payload,
    describe_writes,
    kind_of,
)

if TYPE_CHECKING:
    from moovago_api.plan import StreamPlan as Entity
    from moovago_api.schema import MoovagoSchema


@dataclass(frozen=True)
class WriteOp:
    """A write of a batch (the target's actions have the same attributes)."""

    kind: str
    record_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Alias:
    """Where one aliased mutation of a batch answers: data[path[0]][path[1]]..."""

    name: str  # 'c0'
    kind: str
    path: tuple[str, ...]  # ('company', 'c0') or ('c0',)

    def result(self, data: Mapping[str, Any] | None) -> Any:
        node: Any = data
        for step in self.path:
            node = node.get(step) if isinstance(node, Mapping) else None
        return node

    def owns(self, error_path: Sequence[Any]) -> bool:
        """True when a GraphQL error with this `path` belongs to this mutation."""
        return tuple(str(p) for p in error_path[: len(self.path)]) == self.path


def batch_document(
    schema: MoovagoSchema, entity: Entity, ops: Sequence[Any], *, validate_document: bool = False
) -> tuple[DocumentNode, dict[str, Any], list[Alias]]:
    """One mutation document writing every op, aliased in order, built with gql.dsl.

    Call N is aliased `c<N>`/`u<N>`/`d<N>` and gets its own variables (`i<N>`, plus `i<N>_id`
    when the id is an argument of its own). Raises MutationShapeError (one line naming the
    mutation and the file) when a kind cannot be written or the document is invalid.
    """
    writes = entity.writes or describe_writes(schema, entity)
    if not ops:
        raise ValueError(f"no write to put in a {entity.type_name} batch")
    dsl = DSLSchema(schema.graphql)
    var_defs = DSLVariableDefinitions()
    variables: dict[str, Any] = {}
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
    document = dsl_gql(operation).document
    errors = validate(schema.graphql, document) if validate_document else []
    if errors:
        kinds = dict.fromkeys(kind_of(op.kind) for op in ops)
        names = ", ".join(writes.shape(k).coordinate for k in kinds)
        msg = f"the {writes.type_name} mutation document ({names}) is not valid against "
        raise MutationShapeError(f"{msg}{schema.path}: {errors[0].message}", str(schema.path))
    return document, variables, aliases


def check_writes(
    schema: MoovagoSchema, entity: Entity, kinds: Iterable[str] = KINDS
) -> EntityWrites:
    """At sink start: build and validate one batch holding a call of each kind in `kinds`.

    Raises MutationShapeError with one line naming the mutation and the file when a kind is
    missing, unusable or builds an invalid document.
    """
    writes = entity.writes or describe_writes(schema, entity)
    ops = [WriteOp(kind, None if kind == "create" else "0") for kind in kinds]
    names = ", ".join(writes.shape(op.kind).coordinate for op in ops)
    if ops:
        try:
            batch_document(schema, entity, ops, validate_document=True)
        except (AttributeError, KeyError, TypeError) as err:  # gql.dsl refusing a field
            msg = f"the {entity.type_name} mutations ({names}) in {schema.path} cannot be built"
            raise MutationShapeError(f"{msg}: {err}", str(schema.path)) from err
    return writes
