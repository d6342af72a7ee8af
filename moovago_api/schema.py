"""The Moovago GraphQL schema file: load it, list its streams' plans, convert its types, check
documents. Moovago turns introspection off and hands customers an SDL file instead, so the file
(bundled, or the user's `schema_path`) is all the connectors know of the API."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLSyntaxError,
    GraphQLUnionType,
    Source,
    build_ast_schema,
    is_abstract_type,
    is_introspection_type,
    parse,
    specified_scalar_types,
    validate,
    validate_schema,
)
from graphql.utilities import value_from_ast_untyped
from graphql.validation.validate import validate_sdl

from moovago_api.errors import ConfigError, SchemaFileError
from moovago_api.plan import SETTING, SkippedField, StreamPlan
from moovago_api.read_plan import apply_overrides, read_plans
from moovago_api.write_plan import describe_writes

#: The plan of a stream, under the name its callers have used since before there was a plan.
Entity = StreamPlan

DEFAULT_SCHEMA_PATH: Path = Path(__file__).parent / "schema" / "moovago_api_graphql_schema.gql"


@dataclass(frozen=True)
class Deprecation:
    """Something the schema announces for removal; connectors must stop using it."""

    kind: str  # 'field' | 'argument' | 'enum_value' | 'input_field'
    coordinate: str  # 'Company.zipCode', 'Query.companyList(offset:)', 'CompanyStatus.X'
    reason: str


class MoovagoSchema:
    """A loaded, valid schema file. Build it with `load_schema`."""

    def __init__(
        self, path: Path, sdl: str, graphql: GraphQLSchema, overrides: Mapping[str, Any] = {}
    ) -> None:
        self.path = path
        self.sdl = sdl
        self.graphql = graphql
        self.overrides = overrides
        self._variants: dict[str, MoovagoSchema] = {}

    def __repr__(self) -> str:
        return f"MoovagoSchema(path={str(self.path)!r})"

    @functools.cached_property
    def _plans(self) -> tuple[list[StreamPlan], list[SkippedField]]:
        plans, skipped = read_plans(self)
        plans = [replace(p, writes=describe_writes(self, p)) for p in plans]
        return apply_overrides(self, plans, self.overrides), skipped

    def entities(self) -> list[StreamPlan]:
        """Every stream's plan, `team` first: the conventions, then this schema's overrides."""
        return list(self._plans[0])

    def skipped_fields(self) -> list[SkippedField]:
        """Query root fields that are not streams, with the reason, in schema order."""
        return list(self._plans[1])

    def entity(self, name: str) -> StreamPlan:
        """The plan with this stream name ('contact') or entity name ('companyContact')."""
        for entity in self.entities():
            if name in (entity.stream_name, entity.name):
                return entity
        known = ", ".join(e.stream_name for e in self.entities())
        raise KeyError(f"No entity {name!r} in {self.path.name} (known: {known})")

    def with_plans(self, overrides: Mapping[str, Any] | None) -> MoovagoSchema:
        """This file read with the `stream_plans` setting's overrides (checked on first use)."""
        if not overrides:
            return self
        key = json.dumps(overrides, sort_keys=True, default=str)
        variant = MoovagoSchema(self.path, self.sdl, self.graphql, dict(overrides))
        with _cache_lock:  # one variant per overrides: its plans are built once
            return self._variants.setdefault(key, variant)

    def output_json_schema(
        self, type_name: str, *, scalar_types: Mapping[str, str] | None = None
    ) -> dict:
        """JSON Schema of a record of an object type; a union or interface field is an object
        with `__typename` and the fields of every possible type."""
        return self._json_schema(type_name, scalar_types)

    def input_json_schema(
        self, type_name: str, *, scalar_types: Mapping[str, str] | None = None
    ) -> dict:
        """JSON Schema of an input object; fields that must be given are in `required`."""
        return self._json_schema(type_name, scalar_types, want_input=True)

    def _json_schema(self, type_name: str, scalar_types: Any, *, want_input: bool = False) -> dict:
        gql_type = self.graphql.get_type(type_name)
        if gql_type is None:
            raise KeyError(f"No type {type_name!r} in {self.path.name}")
        wanted = (
            (GraphQLInputObjectType,) if want_input else (GraphQLObjectType, GraphQLInterfaceType)
        )
        if not isinstance(gql_type, wanted):
            kind = "an input" if want_input else "an object"
            raise TypeError(f"{type_name} is not {kind} type in {self.path.name}")
        converter = Converter(self.graphql, self.scalar_kinds(scalar_types))
        return {**converter.object_schema(gql_type, (gql_type.name,)), "type": "object"}

    def custom_scalars(self) -> list[str]:
        """Names of the scalars the file defines (beyond GraphQL's own five)."""
        return [
            name
            for name, gql_type in self.graphql.type_map.items()
            if isinstance(gql_type, GraphQLScalarType) and name not in specified_scalar_types
        ]

    def scalar_kinds(self, scalar_types: Mapping[str, str] | None = None) -> dict[str, str]:
        """Kind of every scalar: the defaults, then the `scalar_types` setting, checked."""
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
                msg = f"Setting scalar_types: {name!r} maps to {kind!r}; use one of "
                raise ConfigError(msg + ", ".join(SCALAR_KINDS))
            kinds[name] = kind
        return kinds

    def validate_document(self, document: str | DocumentNode) -> list[str]:
        """Problems of a query or mutation against this schema, offline; [] when valid."""
        try:
            node = parse(document) if isinstance(document, str) else document
        except GraphQLSyntaxError as err:
            return [_error_text(err)]
        return [_error_text(err) for err in validate(self.graphql, node)]

    def deprecations(self) -> list[Deprecation]:
        """Every deprecated field, argument, enum value and input field, in schema order."""
        found: list[Deprecation] = []
        for name, gql_type in self.graphql.type_map.items():
            if is_introspection_type(gql_type):
                continue
            kind = "input_field" if isinstance(gql_type, GraphQLInputObjectType) else "field"
            for member, item in getattr(gql_type, "fields", {}).items():
                found.append(Deprecation(kind, f"{name}.{member}", item.deprecation_reason))
                for arg, value in getattr(item, "args", {}).items():
                    where = f"{name}.{member}({arg}:)"
                    found.append(Deprecation("argument", where, value.deprecation_reason))
            for member, value in getattr(gql_type, "values", {}).items():
                where = f"{name}.{member}"
                found.append(Deprecation("enum_value", where, value.deprecation_reason))
        return [item for item in found if item.reason is not None]


_cache_lock = threading.Lock()


def load_schema(path: str | Path | None = None) -> MoovagoSchema:
    """Load the bundled schema file, or the user's, once per file version per process; raises
    SchemaFileError naming the file (and the line, when the problem has one)."""
    resolved = Path(path).expanduser().resolve() if path is not None else DEFAULT_SCHEMA_PATH
    try:
        stat = resolved.stat()
    except OSError as err:
        msg = f"Cannot read schema file {resolved}: {err.strerror or err}"
        raise SchemaFileError(msg, str(resolved)) from err
    with _cache_lock:
        return _build(resolved, stat.st_mtime_ns, stat.st_size)


def schema_from_config(config: Mapping[str, Any]) -> MoovagoSchema:
    """The schema file of the `schema_path` setting (else the bundled one) with its plans."""
    try:
        schema = load_schema(config.get("schema_path"))
    except SchemaFileError as exc:
        raise ConfigError(f"Setting schema_path: {exc}") from None
    return schema.with_plans(config.get(SETTING))


@functools.cache  # keyed by the file's version: an edited file is parsed again
def _build(path: Path, _mtime_ns: int, _size: int) -> MoovagoSchema:
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
    if not errors:
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
    msg = f"Invalid GraphQL schema file {where}: {first.message}{more}"
    return SchemaFileError(msg, str(path), line)


def _error_text(err: GraphQLError) -> str:
    where = ", ".join(f"line {loc.line} column {loc.column}" for loc in err.locations or ())
    return f"{err.message} ({where})" if where else err.message


# -- JSON Schema of the file's types: one scalar mapping; a deprecated field stays, marked
# `deprecated` with its reason (the tap leaves it unselected by default).

_FORMATS = ("date-time", "date", "time")
#: JSON Schema of each kind a scalar can be mapped to (the `scalar_types` setting's values).
SCALAR_KINDS: dict[str, dict[str, Any]] = {
    kind: {"type": "string", "format": kind} if kind in _FORMATS else {"type": kind}
    for kind in ("string", *_FORMATS, "integer", "number", "boolean", "object", "array")
}
SCALAR_KINDS["any"] = {"type": ["object", "array", "string", "number", "boolean"]}

#: Kind of each scalar by name; custom scalars not listed here (and not in `scalar_types`)
#: travel as strings.
DEFAULT_SCALAR_KINDS: dict[str, str] = {
    **dict.fromkeys(("Int", "Long", "BigInt"), "integer"),
    **dict.fromkeys(("Float", "Decimal"), "number"),
    **dict.fromkeys(("String", "ID"), "string"),
    "Boolean": "boolean",
    "DateTime": "date-time",
    "Date": "date",
    "Time": "time",
    "JSON": "any",
    "JSONObject": "object",
}


@dataclass(frozen=True)
class Converter:
    graphql: GraphQLSchema
    scalar_kinds: Mapping[str, str]

    def object_schema(
        self,
        gql_type: GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType,
        seen: tuple[str, ...],
    ) -> dict[str, Any]:
        """An object's or an input object's schema; `seen`: the types above it (cycles stop)."""
        properties = {name: self._field(field, seen) for name, field in gql_type.fields.items()}
        schema: dict[str, Any] = {"type": ["object", "null"], "properties": properties}
        if isinstance(gql_type, GraphQLInputObjectType):  # GraphQL refuses unknown input fields
            schema["additionalProperties"] = False
            required = [
                name
                for name, field in gql_type.fields.items()
                if isinstance(field.type, GraphQLNonNull) and "default" not in properties[name]
            ]
            if required:
                schema["required"] = required
        return _described(schema, gql_type.description)

    def _abstract_schema(
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
                differs = properties.get(name, prop) != prop
                properties[name] = _either(properties[name], prop) if differs else prop
        return _described(
            {"type": ["object", "null"], "properties": properties}, gql_type.description
        )

    def _field(self, field: GraphQLField | GraphQLInputField, seen: tuple[str, ...]) -> dict:
        prop = self._schema(field.type, seen)
        if field.description:
            prop["description"] = field.description
        if field.deprecation_reason is not None:
            prop["deprecated"] = True
            prop["x-deprecation-reason"] = field.deprecation_reason
        default = getattr(field.ast_node, "default_value", None)
        if default is not None:
            prop["default"] = value_from_ast_untyped(default)
        return prop

    def _schema(self, gql_type: Any, seen: tuple[str, ...]) -> dict[str, Any]:
        """The schema of an output or input type (their kinds do not overlap)."""
        if isinstance(gql_type, GraphQLNonNull):
            return _non_null(self._schema(gql_type.of_type, seen))
        if isinstance(gql_type, GraphQLList):
            return {"type": ["array", "null"], "items": self._schema(gql_type.of_type, seen)}
        if isinstance(gql_type, (GraphQLObjectType, GraphQLInputObjectType)):
            if gql_type.name in seen:
                # A cycle (A.b: B, B.a: A): stop at an object of unknown shape.
                return {"type": ["object", "null"]}
            return self.object_schema(gql_type, (*seen, gql_type.name))
        if is_abstract_type(gql_type):
            return self._abstract_schema(gql_type, (*seen, gql_type.name))
        if isinstance(gql_type, GraphQLEnumType):
            return {"type": ["string", "null"], "enum": [*gql_type.values, None]}
        base = SCALAR_KINDS[self.scalar_kinds.get(gql_type.name, "string")]
        types = base["type"] if isinstance(base["type"], list) else [base["type"]]
        return {**base, "type": [*types, "null"]}


def _described(schema: dict[str, Any], description: str | None) -> dict[str, Any]:
    if description:
        schema["description"] = description
    return schema


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
