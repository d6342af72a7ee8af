"""GraphQL types of the schema file to JSON Schema: one scalar mapping, one deprecation rule."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import (
    GraphQLEnumType,
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
    GraphQLUnionType,
)
from graphql.utilities import value_from_ast_untyped

__all__ = ["DEFAULT_SCALAR_KINDS", "SCALAR_KINDS", "Converter"]

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


class Converter:
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
