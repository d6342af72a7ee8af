"""The write conventions W1-W4 (docs/stream-plan.md): per entity, the mutations that create,
update and delete it; what cannot be used is kept as one sentence, raised when that kind is needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from graphql import (
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLUnionType,
    get_named_type,
    is_input_object_type,
    is_leaf_type,
    is_object_type,
    is_required_argument,
    is_required_input_field,
)

from moovago_api.plan import (
    KINDS,
    SETTING,
    EntityWrites,
    InputField,
    MutationShape,
    MutationShapeError,
    Payload,
    StreamPlan,
    child,
    is_list,
)

if TYPE_CHECKING:
    from moovago_api.schema import MoovagoSchema

_ID_NAME = "id"
_DATA_ARGS = ("input", "data")  # W2: the data among several input objects
_ID_TYPES = ("ID", "String", "MongoID")  # W2
Found = tuple[GraphQLObjectType, tuple[str, ...], GraphQLField]


def describe_writes(
    schema: MoovagoSchema, entity: StreamPlan, named: Mapping[str, str] | None = None
) -> EntityWrites:
    """Every mutation of `entity` the file declares (W1-W4), or why a kind cannot be written;
    `named`: per kind, the mutation a setting names ('company.create', 'companyCreateOne')."""
    shapes: dict[str, MutationShape] = {}
    refused: dict[str, str] = {}
    missing: dict[str, str] = {}
    for kind in KINDS:
        name = (named or {}).get(kind)
        paths = [tuple(name.split("."))] if name else _candidates(entity, kind)
        found = next(filter(None, (_resolve(schema, path) for path in paths)), None)
        if found is None:
            looked_for = ", ".join(".".join(p) for p in paths)
            missing[kind] = (
                f"the schema file {schema.path} has no mutation Mutation.{name}"
                if name
                else f"the schema file {schema.path} declares no {kind} mutation for "
                f"{entity.type_name} (looked for {looked_for}; "
                f"set {SETTING}.{entity.stream_name}.writes.{kind} to name another)"
            )
            continue
        try:
            shapes[kind] = _shape(schema, entity, kind, *found)
        except MutationShapeError as err:
            refused[kind] = str(err)
    return EntityWrites(entity.name, entity.type_name, str(schema.path), shapes, refused, missing)


def _pascal(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in name.replace("-", "_").split("_") if p)


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def _candidates(entity: StreamPlan, kind: str) -> list[tuple[str, ...]]:
    """W1: the mutation paths that may do `kind` to `entity`, in the order they are tried:
    company.create, createCompany, companyCreate, companyCreateOne, companyRemoveById."""
    stream = _pascal(entity.stream_name)
    spaces = dict.fromkeys((entity.name, _lower_first(entity.type_name), _lower_first(stream)))
    verbs = ("delete", "remove") if kind == "delete" else (kind,)
    suffix = "One" if kind == "create" else "ById"
    roots = []
    for base in dict.fromkeys((_pascal(entity.name), entity.type_name, stream)):
        roots += [f"{kind}{base}", f"{_lower_first(base)}{kind.capitalize()}"]
        roots += [f"{_lower_first(base)}{verb.capitalize()}{suffix}" for verb in verbs]
    return [(space, kind) for space in spaces] + [(name,) for name in dict.fromkeys(roots)]


def _resolve(schema: MoovagoSchema, path: tuple[str, ...]) -> Found | None:
    """The mutation field at `path` ('company', 'create') or ('createCompany',), if declared."""
    parent: Any = schema.graphql.mutation_type
    if len(path) == 2:
        parent = child(parent, path[0])
    found = parent.fields.get(path[-1]) if is_object_type(parent) else None
    return None if found is None or len(path) > 2 else (parent, path, found)


def find_mutation(schema: MoovagoSchema, entity: StreamPlan, kind: str) -> Found | None:
    """W1: the first mutation the conventions find for `kind`, as (parent, path, field)."""
    return next(filter(None, (_resolve(schema, p) for p in _candidates(entity, kind))), None)


def _shape(
    schema: MoovagoSchema,
    entity: StreamPlan,
    kind: str,
    parent: GraphQLObjectType,
    field_path: tuple[str, ...],
    gql_field: GraphQLField,
) -> MutationShape:
    where = f"{'.'.join(('Mutation', *field_path))} in {schema.path}"

    def refuse(what: str) -> MutationShapeError:
        return MutationShapeError(f"{where} cannot be used to {kind} {entity.type_name}: {what}")

    if len(field_path) == 2:
        namespace = schema.graphql.mutation_type.fields[field_path[0]]  # type: ignore[union-attr]
        needed = [n for n, a in namespace.args.items() if is_required_argument(a)]
        if needed:
            what = f"requires arguments the target cannot give ({', '.join(needed)})"
            raise refuse(f"Mutation.{field_path[0]} {what}")
    if gql_field.deprecation_reason is not None:
        raise refuse(f"it is deprecated ({gql_field.deprecation_reason})")
    id_names = (_ID_NAME, "_id", f"{entity.name}Id", f"{_lower_first(entity.type_name)}Id")
    layout = _layout(kind, gql_field, refuse, id_names)
    layout.update(_payload(kind, gql_field, entity.type_name, refuse))
    data = schema.graphql.get_type(layout.get("data_type") or "")
    skip = layout.get("id_field") if layout.get("data_field") is None else None
    fields = tuple(
        InputField(name, str(f.type), is_required_input_field(f), f.deprecation_reason)
        for name, f in (data.fields.items() if isinstance(data, GraphQLInputObjectType) else ())
        if name != skip
    )
    layout.update(errors_field=_errors_field(gql_field), failure_types=_failures(gql_field.type))
    return MutationShape(kind, field_path, parent.name, fields=fields, **layout)


def _is_id(gql_type: Any) -> bool:
    named = get_named_type(gql_type)
    return (
        isinstance(named, GraphQLScalarType) and named.name in _ID_TYPES and not is_list(gql_type)
    )


def _layout(
    kind: str, gql_field: GraphQLField, refuse: Any, id_names: Sequence[str]
) -> dict[str, Any]:
    """W2: where the id and the data go among the mutation's arguments."""
    args = gql_field.args
    objects = [n for n, a in args.items() if is_input_object_type(get_named_type(a.type))]
    inputs = [n for n in objects if n in _DATA_ARGS] if len(objects) > 1 else objects
    if len(objects) > 1 and len(inputs) != 1:
        raise refuse(f"it takes several input objects ({', '.join(objects)}); which is the data?")
    input_arg = inputs[0] if inputs else None
    data: Any = get_named_type(args[input_arg].type) if input_arg else None
    layout: dict[str, Any] = {}
    if data is not None:
        layout.update(input_arg=input_arg, input_type=data.name)
    ids = [n for n, a in args.items() if n in id_names and _is_id(a.type)]
    if kind == "create":
        if data is None:
            raise refuse("it takes no input object argument to carry the new record's fields")
        layout["data_type"] = data.name
    elif ids:
        layout["id_arg"] = ids[0]
        if kind == "update":
            if data is None:
                raise refuse("it takes an id but no input object argument for the changes")
            layout["data_type"] = data.name
    elif data is not None and _ID_NAME in data.fields and _is_id(data.fields[_ID_NAME].type):
        layout["id_field"] = _ID_NAME
        others = {n: f for n, f in data.fields.items() if n != _ID_NAME}
        nested = [n for n, f in others.items() if is_input_object_type(get_named_type(f.type))]
        needed = [n for n, f in others.items() if is_required_input_field(f)]
        if kind == "delete" and needed:
            raise refuse(f"its input {data.name} requires fields besides id ({', '.join(needed)})")
        if kind == "update" and len(others) == 1 and nested:
            layout.update(data_field=nested[0], data_type=child(data, nested[0]).name)
        elif kind == "update" and not others:
            raise refuse(f"its input {data.name} holds only the id, no field to change")
        elif kind == "update":
            layout["data_type"] = data.name
    else:
        where = "an `id` argument, nor an input object with an `id` field"
        raise refuse(f"it takes neither {where}, to say which record")
    given = (input_arg, layout.get("id_arg"))
    extra = [n for n, a in args.items() if n not in given and is_required_argument(a)]
    if extra:
        raise refuse(f"it requires arguments the target cannot give ({', '.join(extra)})")
    return layout


def _errors_field(gql_field: GraphQLField) -> str | None:
    """W4: a payload field holding errors with a `message` (`errors`, `userErrors`, `error`),
    selected so a refusal the server reports inside the payload reaches the rejects file."""
    named = get_named_type(gql_field.type)
    for name in named.fields if isinstance(named, GraphQLObjectType) else ():
        item = child(named, name)
        if (
            isinstance(item, (GraphQLObjectType, GraphQLInterfaceType))
            and is_leaf_type(child(item, "message"))
            and "error" in name.lower()
        ):
            return name
    return None


def _failures(gql_type: Any) -> tuple[str, ...]:
    """W4: the members of a result union that carry a `message` (a failure, not a write)."""
    named = get_named_type(gql_type)
    members = named.types if isinstance(named, GraphQLUnionType) else ()
    return tuple(m.name for m in members if "message" in m.fields)


def _payload(kind: str, gql_field: GraphQLField, type_name: str, refuse: Any) -> dict[str, Any]:
    """W3: where the result names the record written."""
    if is_list(gql_field.type):
        raise refuse(f"it returns a list ({gql_field.type}), not one result per call")
    named = get_named_type(gql_field.type)

    def found(payload: Payload, field: str | None = None) -> dict[str, Any]:
        return {"payload": payload, "payload_field": field, "payload_type": named.name}

    if isinstance(named, GraphQLScalarType):
        if named.name in ("ID", "String"):
            return found(Payload.SCALAR)
        if named.name == "Boolean" and kind != "create":
            return found(Payload.BOOLEAN)
        raise refuse(f"it returns {named.name}, which does not name the record written")
    if isinstance(named, GraphQLUnionType):  # one member names the record, the others fail
        written = [m for m in named.types if m.name not in _failures(named)]
        named = written[0] if len(written) == 1 else named
    if not isinstance(named, GraphQLObjectType):
        raise refuse(f"it returns {named.name}, which the target cannot read an id from")
    if named.name == type_name and is_leaf_type(child(named, _ID_NAME)):
        return found(Payload.RECORD, _ID_NAME)
    if is_leaf_type(child(named, "recordId")):
        return found(Payload.RECORD_ID, "recordId")
    if is_leaf_type(child(named, _ID_NAME)):
        return found(Payload.ID, _ID_NAME)
    for name, sub in named.fields.items():
        record = get_named_type(sub.type)
        nested = isinstance(record, GraphQLObjectType) and _ID_NAME in record.fields
        if nested and record.name == type_name and not is_list(sub.type):
            return found(Payload.NESTED, name)
    raise refuse(
        f"its result {named.name} has no recordId, no id and no {type_name} field, "
        "so the id of the record written cannot be known"
    )
