"""The write conventions: which mutations create, update and delete each stream, how their
arguments are laid out, what they return and where they report a failure (see
`moovago_api.plan` for the read side; the `stream_plans` setting can name any mutation).

  W1 find      per kind, namespaced first: Mutation.company { create update delete }, then
               root-level createCompany / companyCreate, then graphql-compose companyCreateOne /
               companyUpdateById / companyRemoveById (also with the stream name: createContact).
  W2 args      create: one input object argument, whatever its name (`input`, `data`, `record`);
               update: (id|_id: ID!, input: Data!) | (input: {id, input: Data}) |
               (input: {id, ...fields}); delete: (id|_id: ID!) | (input: {id}).
  W3 id        the payload's `recordId` | `id` | the record itself | a payload object holding the
               record | a bare ID | Boolean (update and delete: the id sent is the id written).
  W4 failure   a payload field named like `error(s)` holding `{ message }` (an object, an
               interface or a list of them): its message is the row's reject reason.

What cannot be used is kept as one sentence naming the mutation and the file, and raised as
`MutationShapeError` when a caller needs that kind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graphql import (
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLUnionType,
    get_named_type,
    is_leaf_type,
)

from moovago_api.plan import InputField, MutationShape, MutationShapeError, Payload
from moovago_api.read_plan import required as is_required

if TYPE_CHECKING:
    from moovago_api.plan import StreamPlan as Entity
    from moovago_api.schema import MoovagoSchema

__all__ = [
    "KINDS",
    "EntityWrites",
    "InputField",
    "MutationShape",
    "MutationShapeError",
    "Payload",
    "describe_writes",
    "find_mutation",
    "kind_of",
]

KINDS = ("create", "update", "delete")
_ID_NAME = "id"


@dataclass(frozen=True)
class EntityWrites:
    """What the file lets the target do to one entity."""

    entity: str  # entity name: 'company', 'companyContact'
    type_name: str
    path: str  # the schema file, for messages
    shapes: Mapping[str, MutationShape] = field(default_factory=dict)
    refused: Mapping[str, str] = field(default_factory=dict)  # kind -> one-line reason

    @property
    def writable(self) -> bool:
        """True when the file declares a usable create."""
        return "create" in self.shapes

    def shape(self, kind: str) -> MutationShape:
        """The mutation for `kind`, or MutationShapeError with the one line saying why not."""
        kind = kind_of(kind)
        found = self.shapes.get(kind)
        if found is not None:
            return found
        reason = self.refused.get(kind) or (
            f"the schema file {self.path} declares no {kind} mutation for {self.type_name} "
            f"(looked for {', '.join(_candidates(self.entity, self.type_name, kind))}; "
            f"set stream_plans.<stream>.writes.{kind} to name another)"
        )
        raise MutationShapeError(reason, self.path)


def describe_writes(schema: MoovagoSchema, entity: Entity) -> EntityWrites:
    """Every mutation of `entity` the file declares, with its layout and payload; what cannot
    be used is kept as one sentence per kind in `refused`."""
    path = str(schema.path)
    shapes: dict[str, MutationShape] = {}
    refused: dict[str, str] = {}
    for kind in KINDS:
        found = find_mutation(schema, entity, kind)
        if found is None:
            continue
        parent, field_path, gql_field = found
        try:
            shapes[kind] = _shape(schema, entity, kind, parent, field_path, gql_field)
        except MutationShapeError as err:
            refused[kind] = str(err)
    return EntityWrites(entity.name, entity.type_name, path, shapes, refused)


def _pascal(name: str) -> str:
    parts = name.replace("-", "_").split("_")
    return "".join(p[:1].upper() + p[1:] for p in parts if p)


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def _bases(entity_name: str, type_name: str) -> list[str]:
    return list(dict.fromkeys([_pascal(entity_name), type_name]))


def _namespaces(entity: Entity) -> list[str]:
    return list(
        dict.fromkeys(
            [entity.name, _lower_first(entity.type_name), _lower_first(_pascal(entity.stream_name))]
        )
    )


def _candidates(entity_name: str, type_name: str, kind: str) -> list[str]:
    bases = _bases(entity_name, type_name)
    spaced = [f"{_lower_first(b)}.{kind}" for b in bases]
    return list(dict.fromkeys(spaced + [n for b in bases for n in _root_names(b, kind)]))


def find_mutation(
    schema: MoovagoSchema, entity: Entity, kind: str
) -> tuple[GraphQLObjectType, tuple[str, ...], GraphQLField] | None:
    mutation = schema.graphql.mutation_type
    if mutation is None:
        return None
    for name in _namespaces(entity):
        namespace_field = mutation.fields.get(name)
        if namespace_field is None:
            continue
        namespace = get_named_type(namespace_field.type)
        if isinstance(namespace, GraphQLObjectType) and kind in namespace.fields:
            return namespace, (name, kind), namespace.fields[kind]
    bases = [*_bases(entity.name, entity.type_name), _pascal(entity.stream_name)]
    for base in dict.fromkeys(bases):
        for name in _root_names(base, kind):
            if name in mutation.fields:
                return mutation, (name,), mutation.fields[name]
    return None


def _root_names(base: str, kind: str) -> list[str]:
    """W1 root-level names: createCompany, companyCreate, companyCreateOne, companyRemoveById."""
    verbs = ("delete", "remove") if kind == "delete" else (kind,)
    suffix = "One" if kind == "create" else "ById"
    names = [f"{kind}{base}", f"{_lower_first(base)}{kind.capitalize()}"]
    return names + [f"{_lower_first(base)}{v.capitalize()}{suffix}" for v in verbs]


def named_write(schema: MoovagoSchema, entity: Entity, kind: str, name: str) -> MutationShape:
    """The `kind` mutation a setting names ('company.create', 'companyCreateOne'), read by
    W2-W4; MutationShapeError when the file has no such field or it cannot be used."""
    mutation = schema.graphql.mutation_type
    path = tuple(name.split("."))
    parent: Any = mutation
    for step in path[:-1]:
        found = parent.fields.get(step) if isinstance(parent, GraphQLObjectType) else None
        parent = get_named_type(found.type) if found is not None else None
    gql_field = parent.fields.get(path[-1]) if isinstance(parent, GraphQLObjectType) else None
    if gql_field is None or len(path) > 2:
        msg = f"the schema file {schema.path} has no mutation Mutation.{name}"
        raise MutationShapeError(msg, str(schema.path))
    return _shape(schema, entity, kind, parent, path, gql_field)


def _shape(
    schema: MoovagoSchema,
    entity: Entity,
    kind: str,
    parent: GraphQLObjectType,
    field_path: tuple[str, ...],
    gql_field: GraphQLField,
) -> MutationShape:
    coordinate = ".".join(("Mutation", *field_path))
    where = f"{coordinate} in {schema.path}"

    def refuse(what: str) -> MutationShapeError:
        return MutationShapeError(f"{where} cannot be used to {kind} {entity.type_name}: {what}")

    if len(field_path) == 2:
        namespace_field = schema.graphql.mutation_type.fields[field_path[0]]  # type: ignore[union-attr]
        required = [n for n, a in namespace_field.args.items() if is_required(a)]
        if required:
            raise refuse(
                f"Mutation.{field_path[0]} requires arguments the target cannot give "
                f"({', '.join(required)})"
            )
    if gql_field.deprecation_reason is not None:
        raise refuse(f"it is deprecated ({gql_field.deprecation_reason})")
    id_names = (_ID_NAME, "_id", f"{entity.name}Id", f"{_lower_first(entity.type_name)}Id")
    layout = _layout(kind, gql_field, refuse, id_names)
    payload, payload_field, payload_type = _payload(kind, gql_field, entity.type_name, refuse)
    fields: tuple[InputField, ...] = ()
    data_type = layout.get("data_type")
    if data_type is not None:
        gql_type = schema.graphql.get_type(data_type)
        if isinstance(gql_type, GraphQLInputObjectType):
            skip = layout.get("id_field") if layout.get("data_field") is None else None
            fields = tuple(
                InputField(name, str(f.type), is_required(f), f.deprecation_reason)
                for name, f in gql_type.fields.items()
                if name != skip
            )
    return MutationShape(
        kind=kind,
        path=field_path,
        parent_type=parent.name,
        fields=fields,
        payload=payload,
        payload_field=payload_field,
        payload_type=payload_type,
        errors_field=_errors_field(gql_field),
        failure_types=_failures(get_named_type(gql_field.type)),
        **layout,
    )


def _is_id(gql_type: GraphQLInputType) -> bool:
    named = get_named_type(gql_type)
    return (
        isinstance(named, GraphQLScalarType)
        and named.name in ("ID", "String", "MongoID")
        and not (
            isinstance(gql_type, GraphQLList)
            or (isinstance(gql_type, GraphQLNonNull) and isinstance(gql_type.of_type, GraphQLList))
        )
    )


def _layout(
    kind: str, gql_field: GraphQLField, refuse: Any, id_names: Sequence[str]
) -> dict[str, str | None]:
    args = gql_field.args
    objects = [
        n for n, a in args.items() if isinstance(get_named_type(a.type), GraphQLInputObjectType)
    ]
    ids = [n for n, a in args.items() if n in id_names and _is_id(a.type)]
    understood: set[str] = set()
    layout: dict[str, str | None] = {}
    if len(objects) > 1:
        preferred = [n for n in objects if n in ("input", "data")]
        if len(preferred) != 1:
            raise refuse(
                f"it takes several input objects ({', '.join(objects)}); which is the data?"
            )
        objects = preferred
    input_arg = objects[0] if objects else None
    if input_arg is not None:
        input_type = get_named_type(args[input_arg].type)
        input_obj = input_type if isinstance(input_type, GraphQLInputObjectType) else None
        layout["input_arg"] = input_arg
        layout["input_type"] = input_type.name
        understood.add(input_arg)
    else:
        input_obj = None
    if kind == "create":
        if input_obj is None:
            raise refuse("it takes no input object argument to carry the new record's fields")
        layout["data_type"] = input_obj.name
    elif ids:
        layout["id_arg"] = ids[0]
        understood.add(ids[0])
        if kind == "update":
            if input_obj is None:
                raise refuse("it takes an id but no input object argument for the changes")
            layout["data_type"] = input_obj.name
    elif (
        input_obj is not None
        and _ID_NAME in input_obj.fields
        and _is_id(input_obj.fields[_ID_NAME].type)
    ):
        layout["id_field"] = _ID_NAME
        others = {n: f for n, f in input_obj.fields.items() if n != _ID_NAME}
        if kind == "delete":
            required = [n for n, f in others.items() if is_required(f)]
            if required:
                raise refuse(
                    f"its input {input_obj.name} requires fields besides id ({', '.join(required)})"
                )
        else:
            nested = [
                n
                for n, f in others.items()
                if isinstance(get_named_type(f.type), GraphQLInputObjectType)
            ]
            if len(others) == 1 and nested:
                layout["data_field"] = nested[0]
                layout["data_type"] = get_named_type(others[nested[0]].type).name
            elif not others:
                raise refuse(f"its input {input_obj.name} holds only the id, no field to change")
            else:
                layout["data_type"] = input_obj.name
    else:
        where = "an `id` argument, nor an input object with an `id` field"
        raise refuse(f"it takes neither {where}, to say which record")
    if kind == "delete":
        layout.pop("data_type", None)
    extra = [n for n, a in args.items() if n not in understood and is_required(a)]
    if extra:
        raise refuse(f"it requires arguments the target cannot give ({', '.join(extra)})")
    return layout


def _errors_field(gql_field: GraphQLField) -> str | None:
    """W4: a payload field holding errors with a `message` (`errors`, `userErrors`, `error`),
    selected so a refusal the server reports inside the payload reaches the rejects file."""
    named = get_named_type(gql_field.type)
    if not isinstance(named, GraphQLObjectType):
        return None
    for name, sub in named.fields.items():
        item = get_named_type(sub.type)
        if (
            isinstance(item, (GraphQLObjectType, GraphQLInterfaceType))
            and "message" in item.fields
            and is_leaf_type(get_named_type(item.fields["message"].type))
            and "error" in name.lower()
        ):
            return name
    return None


def _failures(named: Any) -> tuple[str, ...]:
    """W4: the members of a result union that carry a `message` (a failure, not a write)."""
    members = named.types if isinstance(named, GraphQLUnionType) else ()
    return tuple(m.name for m in members if "message" in m.fields)


def _payload(
    kind: str, gql_field: GraphQLField, type_name: str, refuse: Any
) -> tuple[Payload, str | None, str]:
    out = gql_field.type
    if isinstance(out, GraphQLNonNull):
        out = out.of_type
    if isinstance(out, GraphQLList):
        raise refuse(f"it returns a list ({gql_field.type}), not one result per call")
    named = get_named_type(out)
    if isinstance(named, GraphQLScalarType):
        if named.name in ("ID", "String"):
            return Payload.SCALAR, None, named.name
        if named.name == "Boolean" and kind != "create":
            return Payload.BOOLEAN, None, named.name
        raise refuse(f"it returns {named.name}, which does not name the record written")
    if isinstance(named, GraphQLUnionType):  # W3/W4: one member names the record, others fail
        written = [m for m in named.types if m.name not in _failures(named)]
        named = written[0] if len(written) == 1 else named
    if not isinstance(named, GraphQLObjectType):
        raise refuse(f"it returns {named.name}, which the target cannot read an id from")
    fields = named.fields

    def leaf(name: str) -> bool:
        found = fields.get(name)
        return found is not None and is_leaf_type(get_named_type(found.type))

    if named.name == type_name and leaf(_ID_NAME):
        return Payload.RECORD, _ID_NAME, named.name
    if leaf("recordId"):
        return Payload.RECORD_ID, "recordId", named.name
    if leaf(_ID_NAME):
        return Payload.ID, _ID_NAME, named.name
    for name, sub in fields.items():
        sub_type = get_named_type(sub.type)
        if (
            sub_type.name == type_name
            and isinstance(sub_type, GraphQLObjectType)
            and _ID_NAME in sub_type.fields
            and not isinstance(
                sub.type.of_type if isinstance(sub.type, GraphQLNonNull) else sub.type,
                GraphQLList,
            )
        ):
            return Payload.NESTED, name, named.name
    raise refuse(
        f"its result {named.name} has no recordId, no id and no {type_name} field, "
        "so the id of the record written cannot be known"
    )


def kind_of(kind: Any) -> str:
    value = getattr(kind, "value", kind)
    if value not in KINDS:
        msg = f"{value!r} is not a write (expected one of {', '.join(KINDS)})"
        raise ValueError(msg)
    return str(value)
