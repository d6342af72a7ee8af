"""The write side of the schema file: which mutations create, update and delete each entity,
how their arguments are laid out, what they return, and the aliased batch documents built from
them with `gql.dsl`.

Layouts found (per entity and kind, namespaced first):
  namespaced   Mutation.company { create update delete }
  top-level    Mutation.createCompany / companyCreate (also with the stream name: createContact)
Arguments:
  create       one input object argument, whatever its name (`input`, `data`, ...)
  update       (id: ID!, input: Data!) | (input: {id, input: Data}) | (input: {id, ...fields})
  delete       (id: ID!) | (input: {id})
Payloads:
  `recordId` | `id` | the record itself | a payload object holding the record | a bare ID
  | Boolean (update and delete only: the id sent is the id written)

What cannot be used is kept as one sentence naming the mutation and the file, and raised as
`MutationShapeError` when a caller needs that kind. Values only ever travel in `variables`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

from gql.dsl import DSLField, DSLMutation, DSLSchema, DSLVariableDefinitions, dsl_gql
from graphql import (
    DocumentNode,
    GraphQLArgument,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    get_named_type,
    is_leaf_type,
    validate,
)
from graphql.pyutils import Undefined

from moovago_api.errors import SchemaFileError

if TYPE_CHECKING:
    from moovago_api.schema import Entity, MoovagoSchema

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
    "match_key_problems",
    "match_keys_hint",
    "record_id",
    "unclaimed_mutations",
]

KINDS = ("create", "update", "delete")
_ALIAS_PREFIX = {"create": "c", "update": "u", "delete": "d"}
_ID_NAME = "id"


class MutationShapeError(SchemaFileError):
    """A mutation the schema file declares (or lacks) cannot be used to write an entity."""


class Payload(str, Enum):
    """How a mutation's result names the record it wrote."""

    RECORD_ID = "recordId"  # { recordId }
    ID = "id"  # { id } on a payload object
    RECORD = "record"  # the record itself: { id }
    NESTED = "nested"  # a payload object holding the record: { <field> { id } }
    SCALAR = "scalar"  # the id itself (ID or String)
    BOOLEAN = "boolean"  # true when done; the id is the one sent


@dataclass(frozen=True)
class InputField:
    """A field of a mutation's data input: what the target may write."""

    name: str
    type: str  # as the file spells it: 'String!', '[ID!]'
    required: bool  # non-null without default: a create must give it
    deprecation: str | None = None


@dataclass(frozen=True)
class MutationShape:
    """One mutation of an entity, as the file declares it."""

    kind: str  # create | update | delete
    path: tuple[str, ...]  # ('company', 'create') or ('createCompany',)
    parent_type: str  # the object type holding the mutation field: 'CompanyMutation', 'Mutation'
    id_arg: str | None = None  # the id as its own argument: update(id:, input:), delete(id:)
    input_arg: str | None = None  # the argument holding an input object
    input_type: str | None = None  # its named type
    id_field: str | None = None  # the id as a field of that input object: { id, ... }
    data_field: str | None = None  # the data nested in that input object: { id, input: {...} }
    data_type: str | None = None  # the input object holding the writable fields
    fields: tuple[InputField, ...] = ()  # writable fields of data_type (the id excluded)
    payload: Payload = Payload.RECORD_ID
    payload_field: str | None = None  # recordId / id / the nested record field
    payload_type: str = ""  # the named return type
    errors_field: str | None = None  # a list of { message } in the payload: `userErrors`

    @property
    def coordinate(self) -> str:
        """How messages name it: 'Mutation.company.create', 'Mutation.createCompany'."""
        return ".".join(("Mutation", *self.path))

    def arguments(self, record_id: str | None, data: Mapping[str, Any] | None) -> dict[str, Any]:
        """The argument values of one call, keyed by argument name (they go in variables)."""
        values: dict[str, Any] = {}
        if self.id_arg is not None:
            values[self.id_arg] = record_id
        if self.input_arg is not None:
            if self.id_field is None:
                values[self.input_arg] = dict(data or {})
            elif self.data_field is not None:
                values[self.input_arg] = {
                    self.id_field: record_id,
                    self.data_field: dict(data or {}),
                }
            else:
                values[self.input_arg] = {self.id_field: record_id, **(data or {})}
        return values

    def record_id(self, result: Any, *, sent_id: str | None = None) -> str | None:
        """The id of the record this call wrote, from its alias result; None when it says none."""
        if result is None:
            return None
        if self.payload is Payload.BOOLEAN:
            return sent_id if result is True else None
        if self.payload is Payload.SCALAR:
            value = result
        elif not isinstance(result, Mapping):
            return None
        elif self.payload is Payload.NESTED:
            nested = result.get(self.payload_field or "")
            value = nested.get(_ID_NAME) if isinstance(nested, Mapping) else None
        else:
            value = result.get(self.payload_field or _ID_NAME)
        if value is None or isinstance(value, (bool, Mapping, list)) or value == "":
            return None
        return str(value)

    def error_messages(self, result: Any) -> list[str]:
        """The messages of the payload's own error list (HTTP 200, no GraphQL error), if any."""
        if self.errors_field is None or not isinstance(result, Mapping):
            return []
        found = result.get(self.errors_field) or []
        if not isinstance(found, list):
            return []
        return [str(e.get("message")) for e in found if isinstance(e, Mapping) and e.get("message")]

    def writable(self) -> list[str]:
        return [f.name for f in self.fields]

    def required(self) -> list[str]:
        return [f.name for f in self.fields if f.required]


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
        kind = _kind(kind)
        found = self.shapes.get(kind)
        if found is not None:
            return found
        reason = self.refused.get(kind) or (
            f"the schema file {self.path} declares no {kind} mutation for {self.type_name} "
            f"(looked for {', '.join(_candidates(self.entity, self.type_name, kind))})"
        )
        raise MutationShapeError(reason, self.path)

    def json_schema(self, schema: MoovagoSchema, kind: str) -> dict[str, Any]:
        """JSON Schema of the data a `kind` call writes (the id excluded), for row validation."""
        shape = self.shape(kind)
        if shape.data_type is None:
            return {"type": "object", "properties": {}, "additionalProperties": False}
        result = schema.input_json_schema(shape.data_type)
        if shape.id_field is not None and shape.data_field is None:
            result["properties"].pop(shape.id_field, None)
            required = [n for n in result.get("required", []) if n != shape.id_field]
            if required:
                result["required"] = required
            else:
                result.pop("required", None)
        return result


class Op(Protocol):
    """One write of a batch: the target's planned action has these attributes."""

    @property
    def kind(self) -> Any: ...  # 'create' | 'update' | 'delete', or an Enum with that value

    @property
    def record_id(self) -> str | None: ...

    @property
    def data(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class WriteOp:
    """A plain write, for callers that have no action object of their own."""

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


# -- detection --------------------------------------------------------------------------------


def describe_writes(schema: MoovagoSchema, entity: Entity) -> EntityWrites:
    """Every mutation of `entity` the file declares, with its layout and payload; what cannot
    be used is kept as one sentence per kind in `refused`."""
    path = str(schema.path)
    shapes: dict[str, MutationShape] = {}
    refused: dict[str, str] = {}
    for kind in KINDS:
        found = _find(schema, entity, kind)
        if found is None:
            continue
        parent, field_path, gql_field = found
        try:
            shapes[kind] = _shape(schema, entity, kind, parent, field_path, gql_field)
        except MutationShapeError as err:
            refused[kind] = str(err)
    return EntityWrites(entity.name, entity.type_name, path, shapes, refused)


def unclaimed_mutations(schema: MoovagoSchema, entities: Iterable[Entity]) -> list[str]:
    """One sentence per Mutation field no entity uses (a write the target cannot do)."""
    mutation = schema.graphql.mutation_type
    if mutation is None:
        return []
    claimed: set[str] = set()
    for entity in entities:
        for kind in KINDS:
            found = _find(schema, entity, kind)
            if found is not None:
                claimed.add(found[1][0])
    return [
        f"Mutation.{name} in {schema.path} is not used: it matches no entity's "
        "create, update or delete"
        for name in mutation.fields
        if name not in claimed
    ]


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
    spaced = [f"{_lower_first(b)}.{kind}" for b in _bases(entity_name, type_name)]
    top = [f"{kind}{b}" for b in _bases(entity_name, type_name)]
    top += [f"{_lower_first(b)}{kind.capitalize()}" for b in _bases(entity_name, type_name)]
    return list(dict.fromkeys(spaced + top))


def _find(
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
        for name in (f"{kind}{base}", f"{_lower_first(base)}{kind.capitalize()}"):
            if name in mutation.fields:
                return mutation, (name,), mutation.fields[name]
    return None


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
        required = [n for n, a in namespace_field.args.items() if _is_required(a)]
        if required:
            raise refuse(
                f"Mutation.{field_path[0]} requires arguments the target cannot give "
                f"({', '.join(required)})"
            )
    if gql_field.deprecation_reason is not None:
        raise refuse(f"it is deprecated ({gql_field.deprecation_reason})")
    id_names = (_ID_NAME, f"{entity.name}Id", f"{_lower_first(entity.type_name)}Id")
    layout = _layout(kind, gql_field, refuse, id_names)
    payload, payload_field, payload_type = _payload(kind, gql_field, entity.type_name, refuse)
    fields: tuple[InputField, ...] = ()
    data_type = layout.get("data_type")
    if data_type is not None:
        gql_type = schema.graphql.get_type(data_type)
        if isinstance(gql_type, GraphQLInputObjectType):
            skip = layout.get("id_field") if layout.get("data_field") is None else None
            fields = tuple(
                InputField(
                    name,
                    str(input_field.type),
                    _is_required(input_field),
                    input_field.deprecation_reason,
                )
                for name, input_field in gql_type.fields.items()
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
        **layout,
    )


def _is_required(arg: GraphQLArgument | GraphQLInputField) -> bool:
    return isinstance(arg.type, GraphQLNonNull) and arg.default_value is Undefined


def _is_id(gql_type: GraphQLInputType) -> bool:
    named = get_named_type(gql_type)
    return (
        isinstance(named, GraphQLScalarType)
        and named.name in ("ID", "String")
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
            required = [n for n, f in others.items() if _is_required(f)]
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
    extra = [n for n, a in args.items() if n not in understood and _is_required(a)]
    if extra:
        raise refuse(f"it requires arguments the target cannot give ({', '.join(extra)})")
    return layout


def _errors_field(gql_field: GraphQLField) -> str | None:
    """A payload field listing errors with a `message` (`errors`, `userErrors`), selected so a
    refusal the server reports inside the payload reaches the rejects file."""
    named = get_named_type(gql_field.type)
    if not isinstance(named, GraphQLObjectType):
        return None
    for name, sub in named.fields.items():
        item = get_named_type(sub.type)
        inner = sub.type.of_type if isinstance(sub.type, GraphQLNonNull) else sub.type
        if (
            isinstance(inner, GraphQLList)
            and isinstance(item, GraphQLObjectType)
            and "message" in item.fields
            and is_leaf_type(get_named_type(item.fields["message"].type))
            and "error" in name.lower()
        ):
            return name
    return None


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


# -- documents --------------------------------------------------------------------------------


def _kind(kind: Any) -> str:
    value = getattr(kind, "value", kind)
    if value not in KINDS:
        msg = f"{value!r} is not a write (expected one of {', '.join(KINDS)})"
        raise ValueError(msg)
    return str(value)


def _writes_of(schema: MoovagoSchema, entity: Entity) -> EntityWrites:
    attached = getattr(entity, "writes", None)
    if isinstance(attached, EntityWrites) and attached.path == str(schema.path):
        return attached
    return describe_writes(schema, entity)


def batch_document(
    schema: MoovagoSchema, entity: Entity, ops: Sequence[Op], *, validate_document: bool = False
) -> tuple[DocumentNode, dict[str, Any], list[Alias]]:
    """One mutation document writing every op, aliased in order, built with gql.dsl.

    Call N is aliased `c<N>`/`u<N>`/`d<N>` and gets its own variables (`i<N>`, plus `i<N>_id`
    when the id is an argument of its own); nothing but variable references is in the document.
    Raises MutationShapeError (one line naming the mutation and the file) when a kind the ops
    need cannot be written, or when `validate_document` finds the document invalid.
    """
    writes = _writes_of(schema, entity)
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
        kind = _kind(op.kind)
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
    schema: MoovagoSchema, writes: EntityWrites, document: DocumentNode, ops: Sequence[Op]
) -> None:
    errors = validate(schema.graphql, document)
    if errors:
        kinds = list(dict.fromkeys(_kind(op.kind) for op in ops))
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
    writes = _writes_of(schema, entity)
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


def record_id(
    entity: Entity | EntityWrites, kind: Any, alias_result: Any, *, sent_id: str | None = None
) -> str | None:
    """The id of the record one aliased call wrote, whatever payload the file declares; None
    when the result does not name one (the call is then not confirmed)."""
    writes = entity if isinstance(entity, EntityWrites) else getattr(entity, "writes", None)
    if not isinstance(writes, EntityWrites):
        msg = f"entity {getattr(entity, 'name', entity)!r} has no write description attached"
        raise MutationShapeError(msg)
    return writes.shape(kind).record_id(alias_result, sent_id=sent_id)


# -- match keys -------------------------------------------------------------------------------


def match_key_problems(
    schema: MoovagoSchema,
    entity: Entity,
    keys: Sequence[Sequence[str]] | None,
    *,
    written: Collection[str] | None = None,
) -> list[str]:
    """Sentences saying why the match keys of `entity` will not find existing records in this
    file: none at all, a key field the record type lacks, deprecated, not writable, or absent
    from the input (`written`: the fields the input maps to). Each names `match_keys` with an
    example. [] when the keys are usable."""
    stream = entity.stream_name
    record_type = schema.graphql.get_type(entity.type_name)
    record_fields = record_type.fields if isinstance(record_type, GraphQLObjectType) else {}
    create = _writes_of(schema, entity).shapes.get("create")
    inputs = {f.name: f for f in create.fields} if create is not None else None
    fix = match_keys_hint(schema, entity)
    if not keys:
        return [
            f"stream {stream!r} has no match key: rows without an id cannot be matched to "
            f"existing {entity.type_name} records (they are rejected); {fix}"
        ]
    problems: list[str] = []
    for key in keys:
        for raw in key:
            name = raw.rstrip("?")
            label = f"match key {'+'.join(key)} of stream {stream!r}"
            found = record_fields.get(name)
            if found is None:
                problems.append(
                    f"{label}: {entity.type_name} has no field {name!r} in {schema.path}; {fix}"
                )
                continue
            reason = found.deprecation_reason
            if reason is None and inputs is not None and name in inputs:
                reason = inputs[name].deprecation
            if reason is not None:
                problems.append(
                    f"{label}: {entity.type_name}.{name} is deprecated in {schema.path} "
                    f"({reason}); {fix}"
                )
            elif inputs is not None and name not in inputs and name != _ID_NAME:
                problems.append(
                    f"{label}: {entity.type_name}.{name} is not writable in {schema.path} "
                    f"({create.data_type if create else 'the create input'} has no {name!r}), "
                    f"so created records cannot be found by it; {fix}"
                )
            elif written is not None and name not in written and not raw.endswith("?"):
                problems.append(
                    f"{label}: the input has no column for {name!r}, so every row without an "
                    f"id is rejected; add the column or {fix}"
                )
    return problems


def match_keys_hint(schema: MoovagoSchema, entity: Entity) -> str:
    """'set match_keys, e.g. {"visit": ["companyId", ...]}': the fix every key message ends with."""
    record_type = schema.graphql.get_type(entity.type_name)
    record_fields = record_type.fields if isinstance(record_type, GraphQLObjectType) else {}
    create = _writes_of(schema, entity).shapes.get("create")
    inputs = {f.name: f for f in create.fields} if create is not None else None
    example = _example(record_fields, inputs)
    return f'set match_keys, e.g. {{"{entity.stream_name}": {json.dumps(example)}}}'


def _example(
    record_fields: Mapping[str, GraphQLField], inputs: Mapping[str, InputField] | None
) -> list[str]:
    """A key to suggest: a live field the record has and a create may write, required first."""

    def usable(name: str) -> bool:
        found = record_fields.get(name)
        return (
            found is not None
            and found.deprecation_reason is None
            and is_leaf_type(get_named_type(found.type))
            and name not in (_ID_NAME, "teamId", "createdAt", "updatedAt")
        )

    if inputs is not None:
        live = [f for f in inputs.values() if f.deprecation is None and usable(f.name)]
        chosen = [f.name for f in live if f.required][:3] or [f.name for f in live][:1]
        if chosen:
            return chosen
    names = [n for n in record_fields if usable(n)]
    return names[:1] or ["<field>"]
