"""The Moovago GraphQL schema file: load it, list its entities, convert its types, check documents.

Moovago turns introspection off and hands customers an SDL file instead, so everything the
connectors know about the API comes from that file (the bundled reconstruction, or the user's own
copy through `schema_path`). All GraphQL work is done by graphql-core; nothing here parses SDL.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphql import (
    DocumentNode,
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLSyntaxError,
    GraphQLUnionType,
    Source,
    build_ast_schema,
    get_named_type,
    is_introspection_type,
    parse,
    validate,
    validate_schema,
)
from graphql.utilities import value_from_ast_untyped
from graphql.validation.validate import validate_sdl

from moovago_api.errors import SchemaFileError

if TYPE_CHECKING:
    from moovago_api.mutations import EntityWrites

__all__ = [
    "DEFAULT_SCHEMA_PATH",
    "Deprecation",
    "Entity",
    "MoovagoSchema",
    "load_schema",
]

DEFAULT_SCHEMA_PATH: Path = Path(__file__).parent / "schema" / "moovago_api_graphql_schema.gql"

# Stream names are the singular entity names; 'companyContact' reads better as 'contact'.
_STREAM_NAMES = {"companyContact": "contact"}

# JSON Schema of each scalar; custom scalars not listed here travel as strings.
_SCALARS: dict[str, dict[str, Any]] = {
    "Int": {"type": "integer"},
    "Float": {"type": "number"},
    "Boolean": {"type": "boolean"},
    "String": {"type": "string"},
    "ID": {"type": "string"},
    "DateTime": {"type": "string", "format": "date-time"},
    "Date": {"type": "string", "format": "date"},
    "Time": {"type": "string", "format": "time"},
    "Long": {"type": "integer"},
    "BigInt": {"type": "integer"},
    "Decimal": {"type": "number"},
}

# Argument and filter-field spellings recognised for paging and incremental reads, best first.
_SKIP_ARGS = ("skip", "offset")
_LIMIT_ARGS = ("limit", "first", "take", "pageSize")
_UPDATED_SINCE_FIELDS = ("updatedSince", "updatedAfter", "updatedAtFrom", "updatedFrom")
_REPLICATION_KEY = "updatedAt"
_TEAM_FIELD = "teamId"


@dataclass(frozen=True)
class Entity:
    """One readable entity: a stream for the tap, a sink for the target."""

    name: str
    stream_name: str
    type_name: str
    root_field: str
    filter_arg: str | None = None
    filter_type: str | None = None
    team_filter_field: str | None = None
    updated_since_field: str | None = None
    replication_key: str | None = None
    skip_arg: str | None = None
    limit_arg: str | None = None
    mutation_field: str | None = None
    # The write side as the file declares it (moovago_api.mutations), attached by entities().
    writes: EntityWrites | None = dataclasses.field(default=None, compare=False, repr=False)
    create_input: str | None = None
    update_input: str | None = None
    update_data_input: str | None = None
    delete_input: str | None = None


@dataclass(frozen=True)
class Deprecation:
    """Something the schema announces for removal; connectors must stop using it."""

    kind: str  # 'field' | 'argument' | 'enum_value' | 'input_field'
    coordinate: str  # 'Company.zipCode', 'Query.companyList(offset:)', 'CompanyStatus.X'
    reason: str


class MoovagoSchema:
    """A loaded, valid schema file. Build it with `load_schema`."""

    def __init__(self, path: Path, sdl: str, graphql_schema: GraphQLSchema) -> None:
        self.path = path
        self.sdl = sdl
        self.graphql = graphql_schema
        self._entities: list[Entity] | None = None

    def __repr__(self) -> str:
        return f"MoovagoSchema(path={str(self.path)!r})"

    # -- entities ----------------------------------------------------------------------------

    def entities(self) -> list[Entity]:
        """`team` first, then every root field `<name>List(filter: FilterMany<Name>Input!)`."""
        if self._entities is None:
            self._entities = [_with_writes(self, e) for e in self._find_entities()]
        return list(self._entities)

    def entity(self, name: str) -> Entity:
        """The entity with this stream name ('contact') or entity name ('companyContact')."""
        for entity in self.entities():
            if name in (entity.stream_name, entity.name):
                return entity
        known = ", ".join(e.stream_name for e in self.entities())
        raise KeyError(f"No entity {name!r} in {self.path.name} (known: {known})")

    def _find_entities(self) -> Iterator[Entity]:
        query = self.graphql.query_type
        if query is None:
            return
        team = query.fields.get("team")
        if team is not None and isinstance(get_named_type(team.type), GraphQLObjectType):
            yield Entity(
                name="team",
                stream_name="team",
                type_name=get_named_type(team.type).name,
                root_field="team",
            )
        for field_name, field in query.fields.items():
            entity = self._list_entity(field_name, field)
            if entity is not None:
                yield entity

    def _list_entity(self, field_name: str, field: GraphQLField) -> Entity | None:
        if not field_name.endswith("List") or len(field_name) == len("List"):
            return None
        name = field_name[: -len("List")]
        node_type = get_named_type(field.type)
        if not _is_list(field.type) or not isinstance(node_type, GraphQLObjectType):
            return None
        filter_type_name = f"FilterMany{name[0].upper()}{name[1:]}Input"
        filter_arg = next(
            (
                arg_name
                for arg_name, arg in field.args.items()
                if isinstance(arg.type, GraphQLNonNull)
                and get_named_type(arg.type).name == filter_type_name
            ),
            None,
        )
        if filter_arg is None:
            return None
        filter_type = get_named_type(field.args[filter_arg].type)
        if not isinstance(filter_type, GraphQLInputObjectType):
            return None
        filter_fields = filter_type.fields
        updated_since = _first_live(filter_fields, _UPDATED_SINCE_FIELDS)
        has_updated_at = _live(node_type.fields.get(_REPLICATION_KEY))
        mutation_field, inputs = self._mutations(name)
        return Entity(
            name=name,
            stream_name=_STREAM_NAMES.get(name, _snake_case(name)),
            type_name=node_type.name,
            root_field=field_name,
            filter_arg=filter_arg,
            filter_type=filter_type_name,
            team_filter_field=_TEAM_FIELD if _TEAM_FIELD in filter_fields else None,
            updated_since_field=updated_since,
            replication_key=_REPLICATION_KEY if updated_since and has_updated_at else None,
            skip_arg=_first_live(field.args, _SKIP_ARGS),
            limit_arg=_first_live(field.args, _LIMIT_ARGS),
            mutation_field=mutation_field,
            **inputs,
        )

    def _mutations(self, name: str) -> tuple[str | None, dict[str, Any]]:
        inputs: dict[str, Any] = {
            "create_input": None,
            "update_input": None,
            "update_data_input": None,
            "delete_input": None,
        }
        mutation = self.graphql.mutation_type
        field = mutation.fields.get(name) if mutation is not None else None
        namespace = get_named_type(field.type) if field is not None else None
        if not isinstance(namespace, GraphQLObjectType):
            return None, inputs
        for action in ("create", "update", "delete"):
            inputs[f"{action}_input"] = _input_arg_type(namespace.fields.get(action))
        update_input = inputs["update_input"]
        if update_input is not None:
            update_type = self.graphql.get_type(update_input)
            if isinstance(update_type, GraphQLInputObjectType) and "input" in update_type.fields:
                inputs["update_data_input"] = get_named_type(update_type.fields["input"].type).name
        return name, inputs

    # -- JSON Schema -------------------------------------------------------------------------

    def output_json_schema(self, type_name: str, *, include_deprecated: bool = True) -> dict:
        """JSON Schema of a record of an object type (the record itself is never null)."""
        gql_type = self._named_type(type_name)
        if not isinstance(gql_type, (GraphQLObjectType, GraphQLInterfaceType)):
            raise TypeError(f"{type_name} is not an object type in {self.path.name}")
        schema = _object_schema(gql_type, include_deprecated, (gql_type.name,))
        schema["type"] = "object"
        return schema

    def input_json_schema(self, type_name: str) -> dict:
        """JSON Schema of an input object; fields that must be given are in `required`."""
        gql_type = self._named_type(type_name)
        if not isinstance(gql_type, GraphQLInputObjectType):
            raise TypeError(f"{type_name} is not an input type in {self.path.name}")
        schema = _input_object_schema(gql_type, (gql_type.name,))
        schema["type"] = "object"
        return schema

    def _named_type(self, type_name: str) -> GraphQLNamedType:
        gql_type = self.graphql.get_type(type_name)
        if gql_type is None:
            raise KeyError(f"No type {type_name!r} in {self.path.name}")
        return gql_type

    # -- documents and deprecations ----------------------------------------------------------

    def validate_document(self, document: str | DocumentNode) -> list[str]:
        """Problems of a query or mutation against this schema, offline; [] when valid."""
        if isinstance(document, str):
            try:
                document = parse(document)
            except GraphQLSyntaxError as err:
                return [_error_text(err)]
        return [_error_text(err) for err in validate(self.graphql, document)]

    def deprecations(self) -> list[Deprecation]:
        """Every deprecated field, argument, enum value and input field, in schema order."""
        found: list[Deprecation] = []
        for type_name, gql_type in self.graphql.type_map.items():
            if is_introspection_type(gql_type):
                continue
            if isinstance(gql_type, (GraphQLObjectType, GraphQLInterfaceType)):
                for field_name, field in gql_type.fields.items():
                    coordinate = f"{type_name}.{field_name}"
                    if field.deprecation_reason is not None:
                        found.append(Deprecation("field", coordinate, field.deprecation_reason))
                    for arg_name, arg in field.args.items():
                        if arg.deprecation_reason is not None:
                            found.append(
                                Deprecation(
                                    "argument", f"{coordinate}({arg_name}:)", arg.deprecation_reason
                                )
                            )
            elif isinstance(gql_type, GraphQLInputObjectType):
                for field_name, input_field in gql_type.fields.items():
                    if input_field.deprecation_reason is not None:
                        found.append(
                            Deprecation(
                                "input_field",
                                f"{type_name}.{field_name}",
                                input_field.deprecation_reason,
                            )
                        )
            elif isinstance(gql_type, GraphQLEnumType):
                for value_name, value in gql_type.values.items():
                    if value.deprecation_reason is not None:
                        found.append(
                            Deprecation(
                                "enum_value", f"{type_name}.{value_name}", value.deprecation_reason
                            )
                        )
        return found


# -- loading ---------------------------------------------------------------------------------

_cache: dict[tuple[Path, int, int], MoovagoSchema] = {}
_cache_lock = threading.Lock()


def load_schema(path: str | Path | None = None) -> MoovagoSchema:
    """Load the bundled schema file, or the user's; one parse per file version per process.

    Raises SchemaFileError naming the file (and the line, when the problem has one).
    """
    resolved = Path(path).expanduser().resolve() if path is not None else DEFAULT_SCHEMA_PATH
    try:
        stat = resolved.stat()
    except OSError as err:
        raise SchemaFileError(
            f"Cannot read schema file {resolved}: {err.strerror or err}", str(resolved)
        ) from err
    key = (resolved, stat.st_mtime_ns, stat.st_size)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is None:
            cached = _build(resolved)
            _cache[key] = cached
        return cached


def _build(path: Path) -> MoovagoSchema:
    try:
        sdl = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise SchemaFileError(f"Cannot read schema file {path}: {reason}", str(path)) from err
    try:
        document = parse(Source(sdl, str(path)))
    except GraphQLSyntaxError as err:
        raise _schema_file_error(path, [err]) from err
    errors = validate_sdl(document)
    if errors:
        raise _schema_file_error(path, errors)
    graphql_schema = build_ast_schema(document, assume_valid_sdl=True)
    errors = validate_schema(graphql_schema)
    if errors:
        raise _schema_file_error(path, errors)
    return MoovagoSchema(path, sdl, graphql_schema)


def _schema_file_error(path: Path, errors: list[GraphQLError]) -> SchemaFileError:
    first = errors[0]
    line = first.locations[0].line if first.locations else None
    where = f"{path}:{line}" if line is not None else str(path)
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return SchemaFileError(
        f"Invalid GraphQL schema file {where}: {first.message}{more}", str(path), line
    )


def _error_text(err: GraphQLError) -> str:
    if err.locations:
        where = ", ".join(f"line {loc.line} column {loc.column}" for loc in err.locations)
        return f"{err.message} ({where})"
    return err.message


# -- type conversion -------------------------------------------------------------------------


def _object_schema(
    gql_type: GraphQLObjectType | GraphQLInterfaceType,
    include_deprecated: bool,
    seen: tuple[str, ...],
) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for field_name, field in gql_type.fields.items():
        if field.deprecation_reason is not None and not include_deprecated:
            continue
        prop = _output_schema(field.type, include_deprecated, seen)
        _describe(prop, field.description, field.deprecation_reason)
        properties[field_name] = prop
    schema: dict[str, Any] = {"type": ["object", "null"], "properties": properties}
    _describe(schema, gql_type.description, None)
    return schema


def _output_schema(
    gql_type: GraphQLOutputType, include_deprecated: bool, seen: tuple[str, ...]
) -> dict[str, Any]:
    if isinstance(gql_type, GraphQLNonNull):
        return _non_null(_output_schema(gql_type.of_type, include_deprecated, seen))
    if isinstance(gql_type, GraphQLList):
        return {
            "type": ["array", "null"],
            "items": _output_schema(gql_type.of_type, include_deprecated, seen),
        }
    if isinstance(gql_type, (GraphQLObjectType, GraphQLInterfaceType)):
        if gql_type.name in seen:
            # A cycle (A.b: B, B.a: A): stop at an object of unknown shape.
            return {"type": ["object", "null"]}
        return _object_schema(gql_type, include_deprecated, (*seen, gql_type.name))
    if isinstance(gql_type, GraphQLUnionType):
        return {"type": ["object", "null"]}
    return _leaf_schema(gql_type)


def _input_object_schema(gql_type: GraphQLInputObjectType, seen: tuple[str, ...]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field_name, field in gql_type.fields.items():
        prop = _input_schema(field.type, seen)
        _describe(prop, field.description, field.deprecation_reason)
        default = field.ast_node.default_value if field.ast_node is not None else None
        if default is not None:
            prop["default"] = value_from_ast_untyped(default)
        elif isinstance(field.type, GraphQLNonNull):
            required.append(field_name)
        properties[field_name] = prop
    schema: dict[str, Any] = {
        "type": ["object", "null"],
        "properties": properties,
        # GraphQL refuses unknown input fields, so the JSON Schema does too.
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    _describe(schema, gql_type.description, None)
    return schema


def _input_schema(gql_type: GraphQLInputType, seen: tuple[str, ...]) -> dict[str, Any]:
    if isinstance(gql_type, GraphQLNonNull):
        return _non_null(_input_schema(gql_type.of_type, seen))
    if isinstance(gql_type, GraphQLList):
        return {"type": ["array", "null"], "items": _input_schema(gql_type.of_type, seen)}
    if isinstance(gql_type, GraphQLInputObjectType):
        if gql_type.name in seen:
            return {"type": ["object", "null"]}
        return _input_object_schema(gql_type, (*seen, gql_type.name))
    return _leaf_schema(gql_type)


def _leaf_schema(gql_type: GraphQLNamedType) -> dict[str, Any]:
    if isinstance(gql_type, GraphQLEnumType):
        return {"type": ["string", "null"], "enum": [*gql_type.values, None]}
    if isinstance(gql_type, GraphQLScalarType):
        base = _SCALARS.get(gql_type.name, {"type": "string"})
        return {**base, "type": [base["type"], "null"]}
    raise TypeError(f"Unexpected GraphQL type {gql_type}")  # pragma: no cover


def _non_null(schema: dict[str, Any]) -> dict[str, Any]:
    """The same schema without null: non-null in GraphQL is "no null" in JSON Schema."""
    types = [t for t in schema["type"] if t != "null"]
    schema["type"] = types[0] if len(types) == 1 else types
    if "enum" in schema:
        schema["enum"] = [v for v in schema["enum"] if v is not None]
    return schema


def _describe(schema: dict[str, Any], description: str | None, deprecation: str | None) -> None:
    if description:
        schema["description"] = description
    if deprecation is not None:
        schema["deprecated"] = True
        schema["x-deprecation-reason"] = deprecation


# -- helpers ---------------------------------------------------------------------------------


def _is_list(gql_type: GraphQLOutputType) -> bool:
    if isinstance(gql_type, GraphQLNonNull):
        gql_type = gql_type.of_type
    return isinstance(gql_type, GraphQLList)


def _live(item: GraphQLField | GraphQLArgument | GraphQLInputField | None) -> bool:
    return item is not None and item.deprecation_reason is None


def _first_live(
    items: dict[str, GraphQLArgument] | dict[str, GraphQLInputField], names: tuple[str, ...]
) -> str | None:
    """The first of `names` present and not deprecated (deprecated spellings are dropped)."""
    return next((name for name in names if _live(items.get(name))), None)


def _input_arg_type(field: GraphQLField | None) -> str | None:
    """Type of a mutation's `input` argument (or of its only argument)."""
    if field is None:
        return None
    arg = field.args.get("input")
    if arg is None and len(field.args) == 1:
        arg = next(iter(field.args.values()))
    return get_named_type(arg.type).name if arg is not None else None


def _with_writes(schema: MoovagoSchema, entity: Entity) -> Entity:
    from moovago_api.mutations import describe_writes  # the write side has its own module

    return dataclasses.replace(entity, writes=describe_writes(schema, entity))


def _snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()
