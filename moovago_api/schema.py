"""The Moovago GraphQL schema file: load it, list its entities, convert its types, check documents.

Moovago turns introspection off and hands customers an SDL file instead, so everything the
connectors know about the API comes from that file (the bundled reconstruction, or the user's own
copy through `schema_path`). All GraphQL work is done by graphql-core; nothing here parses SDL.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLSyntaxError,
    Source,
    build_ast_schema,
    is_introspection_type,
    parse,
    specified_scalar_types,
    validate,
    validate_schema,
)
from graphql.validation.validate import validate_sdl

from moovago_api.errors import ConfigError, SchemaFileError
from moovago_api.json_schema import DEFAULT_SCALAR_KINDS, SCALAR_KINDS, Converter
from moovago_api.plan import Paging, SkippedField, StreamPlan
from moovago_api.read_plan import apply_overrides, read_plans
from moovago_api.write_plan import describe_writes

#: The plan of a stream, under the name its callers have used since before there was a plan.
Entity = StreamPlan

__all__ = [
    "DEFAULT_SCALAR_KINDS",
    "DEFAULT_SCHEMA_PATH",
    "SCALAR_KINDS",
    "Deprecation",
    "Entity",
    "MoovagoSchema",
    "Paging",
    "SkippedField",
    "StreamPlan",
    "load_schema",
]

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
        self,
        path: Path,
        sdl: str,
        graphql_schema: GraphQLSchema,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.sdl = sdl
        self.graphql = graphql_schema
        self.overrides: Mapping[str, Any] = overrides or {}
        self._entities: list[StreamPlan] | None = None
        self._skipped: list[SkippedField] = []
        self._variants: dict[str, MoovagoSchema] = {}

    def __repr__(self) -> str:
        return f"MoovagoSchema(path={str(self.path)!r})"

    def entities(self) -> list[StreamPlan]:
        """Every stream's plan, `team` first: the conventions (`moovago_api.read_plan`,
        `moovago_api.write_plan`), then the `stream_plans` setting this schema was loaded with.
        Root fields that are not streams are in `skipped_fields()`, each with its reason."""
        if self._entities is None:
            plans, self._skipped = read_plans(self)
            plans = [replace(p, writes=describe_writes(self, p)) for p in plans]
            self._entities = apply_overrides(self, plans, self.overrides)
        return list(self._entities)

    def skipped_fields(self) -> list[SkippedField]:
        """Query root fields that are not streams, with the reason, in schema order."""
        self.entities()
        return list(self._skipped)

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
        with _cache_lock:
            found = self._variants.get(key)
            if found is None:
                found = MoovagoSchema(self.path, self.sdl, self.graphql, dict(overrides))
                self._variants[key] = found
            return found

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
        converter = Converter(self.graphql, self.scalar_kinds(scalar_types), include_deprecated)
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
        converter = Converter(self.graphql, self.scalar_kinds(scalar_types), True)
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
                found.append(
                    Deprecation("enum_value", f"{name}.{member}", value.deprecation_reason)
                )
        return [item for item in found if item.reason is not None]


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
