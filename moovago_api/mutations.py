"""The aliased batch documents writing what the plan's write side (`moovago_api.write_plan`)
declares, built with `gql.dsl`, values only in `variables`; and the match-key checks.
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
from graphql import (
    DocumentNode,
    get_named_type,
    validate,
)

from moovago_api.write_plan import (
    KINDS,
    EntityWrites,
    InputField,
    MutationShape,
    MutationShapeError,
    Payload,
    describe_writes,
    kind_of,
)

if TYPE_CHECKING:
    from moovago_api.plan import StreamPlan as Entity
    from moovago_api.schema import MoovagoSchema

__all__ = [
    "KINDS",
    "Alias",
    "EntityWrites",
    "InputField",
    "MutationShape",
    "MutationShapeError",
    "Payload",
    "WriteOp",
    "batch_document",
    "check_writes",
    "describe_writes",
]

_ALIAS_PREFIX = {"create": "c", "update": "u", "delete": "d"}
_ID_NAME = "id"


@dataclass(frozen=True)
class WriteOp:
    """A write of a batch (the target's actions have the same three attributes; the kind may
    be an Enum with that value)."""

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
            if not isinstance(node, Mapping):
                return None
            node = node.get(step)
        return node

    def owns(self, error_path: Sequence[Any]) -> bool:
        """True when a GraphQL error with this `path` belongs to this mutation."""
        return tuple(str(p) for p in error_path[: len(self.path)]) == self.path


# -- documents --------------------------------------------------------------------------------


def batch_document(
    schema: MoovagoSchema, entity: Entity, ops: Sequence[Any], *, validate_document: bool = False
) -> tuple[DocumentNode, dict[str, Any], list[Alias]]:
    """One mutation document writing every op, aliased in order, built with gql.dsl.

    Call N is aliased `c<N>`/`u<N>`/`d<N>` and gets its own variables (`i<N>`, plus `i<N>_id`
    when the id is an argument of its own); nothing but variable references is in the document.
    Raises MutationShapeError (one line naming the mutation and the file) when a kind the ops
    need cannot be written, or when `validate_document` finds the document invalid.
    """
    writes = entity.writes or describe_writes(schema, entity)
    if not ops:
        msg = f"no write to put in a {entity.type_name} batch"
        raise ValueError(msg)
    dsl = DSLSchema(schema.graphql)
    var_defs = DSLVariableDefinitions()
    variables: dict[str, Any] = {}
    aliases: list[Alias] = []
    top: list[DSLField] = []
    grouped: dict[str, list[DSLField]] = {}  # namespace field -> its aliased calls
    for number, op in enumerate(ops):
        kind = kind_of(op.kind)
        shape = writes.shape(kind)
        alias = f"{_ALIAS_PREFIX[kind]}{number}"
        parent = getattr(dsl, shape.parent_type)
        call = getattr(parent, shape.path[-1])
        args = {}
        for arg_name, value in shape.arguments(op.record_id, op.data).items():
            var_name = f"i{number}" if arg_name == shape.input_arg else f"i{number}_{arg_name}"
            variables[var_name] = value
            args[arg_name] = getattr(var_defs, var_name)
        call = call.args(**args).alias(alias)
        payload_type = getattr(dsl, shape.payload_type, None)
        selected = []
        if shape.payload in (Payload.RECORD_ID, Payload.ID, Payload.RECORD):
            selected.append(getattr(payload_type, shape.payload_field or _ID_NAME))
        elif shape.payload is Payload.NESTED:
            nested = getattr(payload_type, shape.payload_field or "")
            record_type = getattr(dsl, writes.type_name)
            selected.append(nested.select(getattr(record_type, _ID_NAME)))
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
            aliases.append(Alias(alias, kind, (shape.path[0], alias)))
        else:
            top.append(call)
            aliases.append(Alias(alias, kind, (alias,)))
    mutation_root = getattr(dsl, schema.graphql.mutation_type.name)  # type: ignore[union-attr]
    selections = [getattr(mutation_root, name).select(*calls) for name, calls in grouped.items()]
    operation = DSLMutation(*selections, *top)
    operation.variable_definitions = var_defs
    operation.name = f"TargetMoovago{entity.type_name}Batch"
    document = dsl_gql(operation).document
    if validate_document:
        _check_valid(schema, writes, document, ops)
    return document, variables, aliases


def _check_valid(
    schema: MoovagoSchema, writes: EntityWrites, document: DocumentNode, ops: Sequence[Any]
) -> None:
    errors = validate(schema.graphql, document)
    if errors:
        kinds = list(dict.fromkeys(kind_of(op.kind) for op in ops))
        names = ", ".join(writes.shape(k).coordinate for k in kinds)
        msg = (
            f"the {writes.type_name} mutation document ({names}) is not valid against "
            f"{schema.path}: {errors[0].message}"
        )
        raise MutationShapeError(msg, str(schema.path))


def check_writes(
    schema: MoovagoSchema, entity: Entity, kinds: Iterable[str] = KINDS
) -> EntityWrites:
    """At sink start: build and validate one batch holding a call of each kind in `kinds`.

    Raises MutationShapeError with one line naming the mutation and the file when a kind is
    missing, unusable or builds an invalid document.
    """
    writes = entity.writes or describe_writes(schema, entity)
    ops = [WriteOp(kind, None if kind == "create" else "0", {}) for kind in kinds]
    for op in ops:
        writes.shape(op.kind)
    if ops:
        try:
            batch_document(schema, entity, ops, validate_document=True)
        except (AttributeError, KeyError, TypeError) as err:  # gql.dsl refusing a field
            names = ", ".join(writes.shape(op.kind).coordinate for op in ops)
            msg = (
                f"the {entity.type_name} mutations ({names}) in {schema.path} cannot be "
                f"built: {err}"
            )
            raise MutationShapeError(msg, str(schema.path)) from err
    return writes
