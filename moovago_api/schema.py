"""The Moovago GraphQL schema file: load it, list its entities, convert its types, check documents.

Moovago turns introspection off and hands customers an SDL file instead, so everything the
connectors know about the API comes from that file (the bundled reconstruction, or the user's own
copy through `schema_path`). All GraphQL work is done by graphql-core; nothing here parses SDL.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import typing as t
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    print_ast,
    specified_scalar_types,
    validate,
    validate_schema,
)
from graphql.pyutils import Undefined
from graphql.utilities import value_from_ast_untyped
from graphql.validation.validate import validate_sdl

from moovago_api.errors import ConfigError, SchemaFileError

if t.TYPE_CHECKING:
    from moovago_api.mutations import EntityWrites

__all__ = [
    "DEFAULT_SCALAR_KINDS",
    "DEFAULT_SCHEMA_PATH",
    "SCALAR_KINDS",
    "Deprecation",
    "Entity",
    "MoovagoSchema",
    "Paging",
    "SkippedField",
    "load_schema",
]

DEFAULT_SCHEMA_PATH: Path = Path(__file__).parent / "schema" / "moovago_api_graphql_schema.gql"

# Stream names are the singular entity names; 'companyContact' reads better as 'contact'.
_STREAM_NAMES = {"companyContact": "contact"}

#: JSON Schema of each kind a scalar can be mapped to (the `scalar_types` setting's values).
SCALAR_KINDS: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "date-time": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
    "time": {"type": "string", "format": "time"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "object": {"type": "object"},
    "array": {"type": "array"},
    "any": {"type": ["object", "array", "string", "number", "boolean"]},
}

#: Kind of each scalar by name; custom scalars not listed here (and not in `scalar_types`)
#: travel as strings.
DEFAULT_SCALAR_KINDS: dict[str, str] = {
    "Int": "integer",
    "Float": "number",
    "Boolean": "boolean",
    "String": "string",
    "ID": "string",
    "DateTime": "date-time",
    "Date": "date",
    "Time": "time",
    "Long": "integer",
    "BigInt": "integer",
    "Decimal": "number",
    "JSON": "any",
    "JSONObject": "object",
}

# Argument and filter-field spellings recognised for paging, sorting and incremental reads,
# best first. Any other argument is left to its default (or refuses the field when required).
_OFFSET_ARGS = ("skip", "offset")
_SIZE_ARGS = ("limit", "first", "take", "perPage", "pageSize", "per_page", "page_size")
_PAGE_ARGS = ("page", "pageNumber", "page_number")
_AFTER_ARGS = ("after", "cursor", "startingAfter")
_BACKWARD_ARGS = ("before", "last")
_PAGING_ARGS = frozenset(_OFFSET_ARGS + _SIZE_ARGS + _PAGE_ARGS + _AFTER_ARGS + _BACKWARD_ARGS)
_SORT_ARGS = ("orderBy", "sort", "sortBy", "order", "order_by", "sort_by")
_FILTER_ARGS = ("filter", "where", "input")
_UPDATED_SINCE_FIELDS = ("updatedSince", "updatedAfter", "updatedAtFrom", "updatedFrom")
_REPLICATION_KEY = "updatedAt"
_TEAM_FIELD = "teamId"
_ROW_CURSOR_FIELD = "cursor"


@dataclass(frozen=True)
class Paging:
    """How a list root field pages, as its arguments and return type declare it.

    `kind` is 'offset' (offset_arg + size_arg), 'page' (page_arg + size_arg, pages counted
    from first_page), 'cursor' (after_arg + size_arg), 'none' (no paging argument: one read)
    or 'unsupported' (paging-like arguments the pager cannot drive: `problem` says which).
    `rows` is where the rows are in the answer: 'list' (the field is the list), 'nodes' or
    'edges' (a connection). `row_cursor` is the field holding a row's own cursor ('cursor' on
    the edge, or on the row of a plain list); `page_info` names the connection's pageInfo field.
    """

    kind: str = "none"
    rows: str = "list"
    offset_arg: str | None = None
    size_arg: str | None = None
    page_arg: str | None = None
    first_page: int = 1
    after_arg: str | None = None
    row_cursor: str | None = None
    page_info: str | None = None
    sort_arg: str | None = None
    sort_value: Any = None
    problem: str | None = None


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
    # The write side as the file declares it (moovago_api.mutations), attached by entities().
    writes: EntityWrites | None = dataclasses.field(default=None, compare=False, repr=False)
    paging: Paging = Paging()


@dataclass(frozen=True)
class SkippedField:
    """A root field discovery did not take as a stream, and why (logged once at discovery)."""

    coordinate: str  # 'Query.noteList'
    reason: str


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
        self._skipped: list[SkippedField] = []

    def __repr__(self) -> str:
        return f"MoovagoSchema(path={str(self.path)!r})"

    # -- entities ----------------------------------------------------------------------------

    def entities(self) -> list[Entity]:
        """`team` first, then every root field returning a list (or connection) of rows with an id.

        The root types are the ones `schema { query mutation }` names. Root fields that are
        not taken are in `skipped_fields()`, each with its reason.
        """
        if self._entities is None:
            entities, self._skipped = self._find_entities()
            self._entities = [_with_writes(self, e) for e in entities]
        return list(self._entities)

    def skipped_fields(self) -> list[SkippedField]:
        """Query root fields that are not streams, with the reason, in schema order."""
        self.entities()
        return list(self._skipped)

    def entity(self, name: str) -> Entity:
        """The entity with this stream name ('contact') or entity name ('companyContact')."""
        for entity in self.entities():
            if name in (entity.stream_name, entity.name):
                return entity
        known = ", ".join(e.stream_name for e in self.entities())
        raise KeyError(f"No entity {name!r} in {self.path.name} (known: {known})")

    def _find_entities(self) -> tuple[list[Entity], list[SkippedField]]:
        query = self.graphql.query_type
        if query is None:
            return [], []
        entities: list[Entity] = []
        skipped: list[SkippedField] = []
        taken: dict[str, str] = {}
        team = query.fields.get("team")
        team_type = get_named_type(team.type) if team is not None else None
        if isinstance(team_type, GraphQLObjectType) and not _is_list(team.type):
            entities.append(
                Entity(name="team", stream_name="team", type_name=team_type.name, root_field="team")
            )
            taken["team"] = "team"
        for field_name, field in query.fields.items():
            if field_name == "team" and taken.get("team") == "team":
                continue
            coordinate = f"{query.name}.{field_name}"
            entity_or_reason = self._list_entity(field_name, field)
            if isinstance(entity_or_reason, str):
                skipped.append(SkippedField(coordinate, entity_or_reason))
                continue
            entity = entity_or_reason
            if entity.name in taken:
                reason = f"{query.name}.{taken[entity.name]} already reads {entity.type_name}"
                skipped.append(SkippedField(coordinate, reason))
                continue
            taken[entity.name] = field_name
            entities.append(entity)
        return entities, skipped

    def _list_entity(self, field_name: str, field: GraphQLField) -> Entity | str:
        """The entity a root field reads, or the reason it is not one."""
        if field.deprecation_reason is not None:
            return f"deprecated ({field.deprecation_reason})"
        rows, node_type, why = _row_shape(field.type)
        if node_type is None:
            return why
        if "id" not in node_type.fields:
            return f"{node_type.name} has no id field"
        filter_arg, why = _filter_argument(field)
        if why:
            return why
        for arg_name, arg in field.args.items():
            if arg_name == filter_arg or arg_name in _PAGING_ARGS or arg_name in _SORT_ARGS:
                continue
            if _required(arg):
                return f"required argument {arg_name}: {arg.type} the tap cannot fill"
        paging = _paging(field_name, field, rows, node_type)
        filter_fields: dict[str, GraphQLInputField] = {}
        filter_type_name = None
        if filter_arg is not None:
            filter_type = get_named_type(field.args[filter_arg].type)
            if isinstance(filter_type, GraphQLInputObjectType):
                filter_fields = filter_type.fields
                filter_type_name = filter_type.name
        updated_since = _first_live(filter_fields, _UPDATED_SINCE_FIELDS)
        has_updated_at = _live(node_type.fields.get(_REPLICATION_KEY))
        name = node_type.name[0].lower() + node_type.name[1:]
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
            skip_arg=paging.offset_arg if paging.kind == "offset" else None,
            limit_arg=paging.size_arg if paging.kind == "offset" else None,
            paging=paging,
        )

    # -- JSON Schema -------------------------------------------------------------------------

    def output_json_schema(
        self,
        type_name: str,
        *,
        include_deprecated: bool = True,
        scalar_types: Mapping[str, str] | None = None,
    ) -> dict:
        """JSON Schema of a record of an object type (the record itself is never null).

        Union and interface fields become objects with `__typename` and the fields of every
        possible type; `scalar_types` maps custom scalar names to kinds of SCALAR_KINDS.
        """
        gql_type = self._named_type(type_name)
        if not isinstance(gql_type, (GraphQLObjectType, GraphQLInterfaceType)):
            raise TypeError(f"{type_name} is not an object type in {self.path.name}")
        converter = _Converter(self.graphql, self.scalar_kinds(scalar_types), include_deprecated)
        schema = converter.object_schema(gql_type, (gql_type.name,))
        schema["type"] = "object"
        return schema

    def input_json_schema(
        self, type_name: str, *, scalar_types: Mapping[str, str] | None = None
    ) -> dict:
        """JSON Schema of an input object; fields that must be given are in `required`."""
        gql_type = self._named_type(type_name)
        if not isinstance(gql_type, GraphQLInputObjectType):
            raise TypeError(f"{type_name} is not an input type in {self.path.name}")
        converter = _Converter(self.graphql, self.scalar_kinds(scalar_types), True)
        schema = converter.input_object_schema(gql_type, (gql_type.name,))
        schema["type"] = "object"
        return schema

    def custom_scalars(self) -> list[str]:
        """Names of the scalars the file defines (beyond GraphQL's own five)."""
        return [
            name
            for name, gql_type in self.graphql.type_map.items()
            if isinstance(gql_type, GraphQLScalarType) and name not in specified_scalar_types
        ]

    def scalar_kinds(self, scalar_types: Mapping[str, str] | None = None) -> dict[str, str]:
        """Kind of every scalar of the file: the defaults, then `scalar_types` over them.

        Raises ConfigError naming the entry when `scalar_types` names a scalar the file does
        not define or a kind that is not one of SCALAR_KINDS.
        """
        kinds = dict(DEFAULT_SCALAR_KINDS)
        custom = self.custom_scalars()
        for name, kind in (scalar_types or {}).items():
            if name not in custom:
                msg = (
                    f"Setting scalar_types: {name!r} is not a custom scalar of {self.path.name} "
                    f"(its custom scalars: {', '.join(custom) or 'none'})"
                )
                raise ConfigError(msg)
            if kind not in SCALAR_KINDS:
                msg = (
                    f"Setting scalar_types: {name!r} maps to {kind!r}; use one of "
                    f"{', '.join(SCALAR_KINDS)}"
                )
                raise ConfigError(msg)
            kinds[name] = kind
        return kinds

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


class _Converter:
    """GraphQL types to JSON Schema, with one scalar mapping and one deprecation rule."""

    def __init__(
        self, graphql_schema: GraphQLSchema, scalar_kinds: Mapping[str, str], deprecated: bool
    ) -> None:
        self.graphql = graphql_schema
        self.scalar_kinds = scalar_kinds
        self.include_deprecated = deprecated

    def object_schema(
        self, gql_type: GraphQLObjectType | GraphQLInterfaceType, seen: tuple[str, ...]
    ) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        for field_name, field in gql_type.fields.items():
            if field.deprecation_reason is not None and not self.include_deprecated:
                continue
            prop = self.output_schema(field.type, seen)
            _describe(prop, field.description, field.deprecation_reason)
            properties[field_name] = prop
        schema: dict[str, Any] = {"type": ["object", "null"], "properties": properties}
        _describe(schema, gql_type.description, None)
        return schema

    def abstract_schema(
        self, gql_type: GraphQLUnionType | GraphQLInterfaceType, seen: tuple[str, ...]
    ) -> dict[str, Any]:
        """`__typename` plus the fields of every possible type (each selected on its type)."""
        possible = self.graphql.get_possible_types(gql_type)
        properties: dict[str, Any] = {
            "__typename": {"type": "string", "enum": [member.name for member in possible]}
        }
        for member in possible:
            if member.name in seen:
                continue
            member_schema = self.object_schema(member, (*seen, member.name))
            for name, prop in member_schema["properties"].items():
                if name not in properties:
                    properties[name] = prop
                elif properties[name] != prop:
                    properties[name] = _either(properties[name], prop)
        schema: dict[str, Any] = {"type": ["object", "null"], "properties": properties}
        _describe(schema, gql_type.description, None)
        return schema

    def output_schema(self, gql_type: GraphQLOutputType, seen: tuple[str, ...]) -> dict[str, Any]:
        if isinstance(gql_type, GraphQLNonNull):
            return _non_null(self.output_schema(gql_type.of_type, seen))
        if isinstance(gql_type, GraphQLList):
            return {"type": ["array", "null"], "items": self.output_schema(gql_type.of_type, seen)}
        if isinstance(gql_type, GraphQLObjectType):
            if gql_type.name in seen:
                # A cycle (A.b: B, B.a: A): stop at an object of unknown shape.
                return {"type": ["object", "null"]}
            return self.object_schema(gql_type, (*seen, gql_type.name))
        if isinstance(gql_type, (GraphQLUnionType, GraphQLInterfaceType)):
            return self.abstract_schema(gql_type, (*seen, gql_type.name))
        return self.leaf_schema(gql_type)

    def input_object_schema(
        self, gql_type: GraphQLInputObjectType, seen: tuple[str, ...]
    ) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field_name, field in gql_type.fields.items():
            prop = self.input_schema(field.type, seen)
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

    def input_schema(self, gql_type: GraphQLInputType, seen: tuple[str, ...]) -> dict[str, Any]:
        if isinstance(gql_type, GraphQLNonNull):
            return _non_null(self.input_schema(gql_type.of_type, seen))
        if isinstance(gql_type, GraphQLList):
            return {"type": ["array", "null"], "items": self.input_schema(gql_type.of_type, seen)}
        if isinstance(gql_type, GraphQLInputObjectType):
            if gql_type.name in seen:
                return {"type": ["object", "null"]}
            return self.input_object_schema(gql_type, (*seen, gql_type.name))
        return self.leaf_schema(gql_type)

    def leaf_schema(self, gql_type: GraphQLNamedType) -> dict[str, Any]:
        if isinstance(gql_type, GraphQLEnumType):
            return {"type": ["string", "null"], "enum": [*gql_type.values, None]}
        if isinstance(gql_type, GraphQLScalarType):
            base = SCALAR_KINDS[self.scalar_kinds.get(gql_type.name, "string")]
            types = base["type"] if isinstance(base["type"], list) else [base["type"]]
            return {**base, "type": [*types, "null"]}
        raise TypeError(f"Unexpected GraphQL type {gql_type}")  # pragma: no cover


def _either(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """A property two possible types declare differently: any value either allows, or null."""
    types: list[str] = []
    for schema in (first, second):
        found = schema.get("type", [])
        for name in [found] if isinstance(found, str) else found:
            if name not in types and name != "null":
                types.append(name)
    merged: dict[str, Any] = {"type": [*types, "null"]}
    if "description" in first:
        merged["description"] = first["description"]
    return merged


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


def _row_shape(gql_type: GraphQLOutputType) -> tuple[str, GraphQLObjectType | None, str]:
    """Where the rows of a root field's answer are: ('list'|'nodes'|'edges', row type, '')."""
    inner = gql_type.of_type if isinstance(gql_type, GraphQLNonNull) else gql_type
    named = get_named_type(gql_type)
    if isinstance(inner, GraphQLList):
        if isinstance(named, GraphQLObjectType):
            return "list", named, ""
        return "list", None, f"returns a list of {named.name}, not of object rows"
    if not isinstance(named, GraphQLObjectType):
        return "list", None, f"returns {gql_type}, not a list of objects"
    nodes = named.fields.get("nodes")
    if nodes is not None and _is_list(nodes.type):
        node_type = get_named_type(nodes.type)
        if isinstance(node_type, GraphQLObjectType):
            return "nodes", node_type, ""
    edges = named.fields.get("edges")
    if edges is not None and _is_list(edges.type):
        edge_type = get_named_type(edges.type)
        node = edge_type.fields.get("node") if isinstance(edge_type, GraphQLObjectType) else None
        if node is not None and isinstance(get_named_type(node.type), GraphQLObjectType):
            return "edges", t.cast("GraphQLObjectType", get_named_type(node.type)), ""
    return "list", None, f"returns one {named.name}, not a list or a connection of rows"


def _required(arg: GraphQLArgument | GraphQLInputField) -> bool:
    return isinstance(arg.type, GraphQLNonNull) and arg.default_value is Undefined


def _filter_argument(field: GraphQLField) -> tuple[str | None, str]:
    """The input-object argument that scopes the list (team, updatedSince), or why none fits."""
    inputs = {
        name: t.cast("GraphQLInputObjectType", get_named_type(arg.type))
        for name, arg in field.args.items()
        if isinstance(get_named_type(arg.type), GraphQLInputObjectType)
        and arg.deprecation_reason is None
        and name not in _SORT_ARGS
    }

    def rank(item: tuple[str, GraphQLInputObjectType]) -> int:
        name, input_type = item
        if _TEAM_FIELD in input_type.fields:
            return 0
        if _first_live(input_type.fields, _UPDATED_SINCE_FIELDS):
            return 1
        return 2 if name in _FILTER_ARGS else 3

    chosen = min(inputs.items(), key=rank)[0] if inputs else None
    for name, input_type in inputs.items():
        arg = field.args[name]
        if name != chosen:
            if _required(arg):
                return None, f"required argument {name}: {arg.type} the tap cannot fill"
            continue
        needed = [f for f, input_field in input_type.fields.items() if _required(input_field)]
        unknown = [f for f in needed if f != _TEAM_FIELD]
        if unknown:
            return None, (
                f"argument {name}: {arg.type} requires {', '.join(unknown)}, "
                "which the tap cannot fill"
            )
    return chosen, ""


def _paging(
    field_name: str, field: GraphQLField, rows: str, node_type: GraphQLObjectType
) -> Paging:
    """The paging shape of a list root field, read from its arguments and return type."""
    args = {name: arg for name, arg in field.args.items() if arg.deprecation_reason is None}
    offset_arg = _first_live(args, _OFFSET_ARGS)
    size_arg = _first_live(args, _SIZE_ARGS)
    page_arg = _first_live(args, _PAGE_ARGS)
    after_arg = _first_live(args, _AFTER_ARGS)
    connection = get_named_type(field.type)
    page_info = None
    row_cursor = None
    if rows != "list" and isinstance(connection, GraphQLObjectType):
        info = connection.fields.get("pageInfo")
        info_type = get_named_type(info.type) if info is not None else None
        if isinstance(info_type, GraphQLObjectType) and {
            "hasNextPage",
            "endCursor",
        } <= set(info_type.fields):
            page_info = "pageInfo"
        if rows == "edges":
            edge_type = get_named_type(connection.fields["edges"].type)
            if isinstance(edge_type, GraphQLObjectType) and _ROW_CURSOR_FIELD in edge_type.fields:
                row_cursor = _ROW_CURSOR_FIELD
    elif rows == "list" and _live(node_type.fields.get(_ROW_CURSOR_FIELD)):
        row_cursor = _ROW_CURSOR_FIELD
    sort_arg, sort_value = _sort(args)
    common: dict[str, Any] = {
        "rows": rows,
        "page_info": page_info,
        "row_cursor": row_cursor,
        "sort_arg": sort_arg,
        "sort_value": sort_value,
    }
    paging_like = [name for name in args if name in _PAGING_ARGS]
    backward = [name for name in _BACKWARD_ARGS if name in args and _required(args[name])]
    if backward:
        return Paging(kind="unsupported", problem=_refusal(field_name, field, "backward"), **common)
    if after_arg and size_arg and (row_cursor or page_info):
        return Paging(kind="cursor", after_arg=after_arg, size_arg=size_arg, **common)
    if offset_arg and size_arg:
        return Paging(kind="offset", offset_arg=offset_arg, size_arg=size_arg, **common)
    if page_arg and size_arg:
        default = args[page_arg].default_value
        first_page = default if default in (0, 1) else 1
        return Paging(
            kind="page", page_arg=page_arg, size_arg=size_arg, first_page=first_page, **common
        )
    if paging_like:
        return Paging(kind="unsupported", problem=_refusal(field_name, field, "drive"), **common)
    return Paging(kind="none", **common)


def _refusal(field_name: str, field: GraphQLField, why: str) -> str:
    args = ", ".join(_argument_text(name, arg) for name, arg in field.args.items())
    if why == "backward":
        what = "requires backward paging (before/last), which the tap does not do"
    else:
        what = (
            "has paging-like arguments the tap cannot drive: it pages with skip/offset + "
            "limit/first/take, page + perPage/pageSize, or after + first/limit with a cursor"
        )
    return f"Query.{field_name}({args}) {what}"


def _argument_text(name: str, arg: GraphQLArgument) -> str:
    text = f"{name}: {arg.type}"
    if arg.ast_node is not None and arg.ast_node.default_value is not None:
        text += f" = {print_ast(arg.ast_node.default_value)}"
    return text


def _sort(args: dict[str, GraphQLArgument]) -> tuple[str | None, Any]:
    """The sort argument and the value asking for ascending ids (None when none fits)."""
    sort_arg = _first_live(args, _SORT_ARGS)
    if sort_arg is None:
        return None, None
    arg_type = args[sort_arg].type
    inner = arg_type.of_type if isinstance(arg_type, GraphQLNonNull) else arg_type
    named = get_named_type(arg_type)
    value: Any = None
    if isinstance(named, GraphQLEnumType):
        value = _id_ascending(named)
    elif isinstance(named, GraphQLInputObjectType):
        value = _id_ascending_input(named)
    if value is not None and isinstance(inner, GraphQLList):
        value = [value]
    return sort_arg, value


def _id_ascending(enum: GraphQLEnumType) -> str | None:
    live = [name for name, value in enum.values.items() if value.deprecation_reason is None]
    for pattern in (r"id_?asc(ending)?", r"id"):
        found = next((name for name in live if re.fullmatch(pattern, name, re.IGNORECASE)), None)
        if found is not None:
            return found
    return None


def _direction(gql_type: GraphQLInputType) -> str | None:
    named = get_named_type(gql_type)
    if isinstance(named, GraphQLEnumType):
        return next((n for n in named.values if n.lower() in ("asc", "ascending")), None)
    return None


def _id_ascending_input(input_type: GraphQLInputObjectType) -> dict[str, Any] | None:
    fields = input_type.fields
    id_field = fields.get("id")
    if id_field is not None and _direction(id_field.type) is not None:
        return {"id": _direction(id_field.type)}  # orderBy: { id: ASC }
    keys = ("field", "by", "key", "sortBy", "orderBy", "column")
    key = next((n for n in keys if n in fields), None)
    if key is None:
        return None
    key_type = get_named_type(fields[key].type)
    key_value: str | None = None
    if isinstance(key_type, GraphQLEnumType):
        key_value = next((n for n in key_type.values if n.lower() == "id"), None)
    elif isinstance(key_type, GraphQLScalarType) and key_type.name in ("String", "ID"):
        key_value = "id"
    if key_value is None:
        return None
    value: dict[str, Any] = {key: key_value}
    direction = next((n for n in ("direction", "order", "dir") if n in fields), None)
    if direction is not None:
        asc = _direction(fields[direction].type)
        if asc is None:
            return None
        value[direction] = asc
    return value


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


def _with_writes(schema: MoovagoSchema, entity: Entity) -> Entity:
    from moovago_api.mutations import describe_writes  # the write side has its own module

    return dataclasses.replace(entity, writes=describe_writes(schema, entity))


def _snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()
