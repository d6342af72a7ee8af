"""Mutations the sandbox serves, read from the SDL: namespaced (`company { create }`) or
top-level (`createCompany`, `companyCreate`), the argument layout of each, and the create
defaults an input field's description gives."""

from __future__ import annotations

from typing import Any

from graphql import (
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLNamedType,
    GraphQLSchema,
    get_named_type,
    is_input_object_type,
    is_leaf_type,
    is_object_type,
)

from moovago_sandbox.model import (
    DEFAULT_HINT,
    ID_NAMES,
    KIND_SYNONYMS,
    EntityModel,
    MutationOp,
    SandboxModel,
)


def find_mutations(schema: GraphQLSchema, model: SandboxModel) -> list[MutationOp]:
    mutation = schema.mutation_type
    ops: list[MutationOp] = []
    for fname, fdef in (mutation.fields if mutation else {}).items():
        named = get_named_type(fdef.type)
        kinds = _namespace_kinds(named)
        if kinds and not fdef.args:
            entity = _entity_by_name(model, fname)
            for kind, op_name in kinds:
                op_def = named.fields[op_name]
                found = entity or _entity_of_op(model, op_def)
                if found is not None:
                    ops.append(_op(found, kind, fname, op_name, op_def))
            continue
        top_kind, rest = _split_kind(fname)
        if top_kind is None:
            continue
        found = _entity_by_name(model, rest) or _entity_of_op(model, fdef)
        if found is not None:
            ops.append(_op(found, top_kind, None, fname, fdef))
    return ops


def _namespace_kinds(named: GraphQLNamedType) -> list[tuple[str, str]]:
    if not is_object_type(named) or "id" in named.fields:
        return []
    return [(KIND_SYNONYMS[n], n) for n in named.fields if n in KIND_SYNONYMS]


def _split_kind(name: str) -> tuple[str | None, str]:
    # graphql-compose: companyCreateOne, companyUpdateById, companyRemoveById
    name = next((name[: -len(s)] for s in ("One", "ById") if name.endswith(s)), name)
    for word, kind in KIND_SYNONYMS.items():
        if name.startswith(word) and name[len(word) : len(word) + 1].isupper():
            return kind, name[len(word) :]
        if name.endswith(word.capitalize()) and len(name) > len(word):
            return kind, name[: -len(word)]
    return None, name


def _entity_by_name(model: SandboxModel, name: str) -> str | None:
    wanted = name.lower()
    return next(
        (
            e.name
            for e in model.entities.values()
            if wanted in (e.name.lower(), e.type_name.lower())
        ),
        None,
    )


def _entity_of_op(model: SandboxModel, fdef: GraphQLField) -> str | None:
    named = get_named_type(fdef.type)
    if (m := model.entity_of_type(named.name)) is not None:
        return m.name
    if is_object_type(named):
        for f in named.fields.values():
            if (m := model.entity_of_type(get_named_type(f.type).name)) is not None:
                return m.name
    for arg in fdef.args.values():
        arg_type = get_named_type(arg.type).name
        prefixes = [e for e in model.entities.values() if arg_type.startswith(e.type_name)]
        if prefixes:
            return max(prefixes, key=lambda e: len(e.type_name)).name
    return None


def _op(entity: str, kind: str, namespace: str | None, name: str, fdef: GraphQLField) -> MutationOp:
    args = fdef.args
    id_arg = next(
        (n for n in ID_NAMES if n in args and is_leaf_type(get_named_type(args[n].type))), None
    )
    objects = [n for n, a in args.items() if is_input_object_type(get_named_type(a.type))]
    values_arg = objects[0] if objects else None
    if kind == "create" or id_arg is not None:
        return MutationOp(entity, kind, namespace, name, values_arg, id_arg)
    # {id, ...}: the id inside the input, the values nested in one field or beside the id
    wrapper = values_arg
    inner = None
    if wrapper is not None:
        wtype = get_named_type(args[wrapper].type)
        assert isinstance(wtype, GraphQLInputObjectType)
        others = [n for n in wtype.fields if n not in ID_NAMES]
        if len(others) == 1 and is_input_object_type(get_named_type(wtype.fields[others[0]].type)):
            inner = others[0]
    return MutationOp(entity, kind, namespace, name, None, None, wrapper, inner)


def with_defaults(entity: EntityModel, model: SandboxModel) -> EntityModel:
    """Values a create takes when the input omits a field the record requires: what the
    input field's description says ("PROSPECT when omitted"), checked against the type."""
    obj = entity.object_type
    create = next(
        (o for o in model.mutations if o.entity == entity.name and o.kind == "create"), None
    )
    if obj is None or create is None or create.values_arg is None:
        return entity
    op_def = op_field(model.schema, create)
    itype = get_named_type(op_def.args[create.values_arg].type)
    defaults: dict[str, Any] = {}
    for fname, ifield in itype.fields.items():  # type: ignore[attr-defined]
        match = DEFAULT_HINT.search(ifield.description or "")
        if match and fname in entity.stored_fields:
            value = match.group(1)
            named = get_named_type(obj.fields[fname].type)
            if hasattr(named, "values") and value not in named.values:
                continue
            if named.name in ("String", "ID") or hasattr(named, "values"):
                defaults[fname] = value
    return EntityModel(**{**entity.__dict__, "create_defaults": defaults})


def op_field(schema: GraphQLSchema, op: MutationOp) -> GraphQLField:
    mutation = schema.mutation_type
    assert mutation is not None
    if op.namespace is None:
        return mutation.fields[op.name]
    return get_named_type(mutation.fields[op.namespace].type).fields[op.name]
