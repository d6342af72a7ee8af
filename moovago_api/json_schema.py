"""GraphQL types of the schema file to JSON Schema: one scalar mapping; a deprecated field stays,
marked `deprecated` with its reason (the tap leaves it unselected by default)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    is_abstract_type,
)
from graphql.utilities import value_from_ast_untyped

__all__ = ["DEFAULT_SCALAR_KINDS", "SCALAR_KINDS", "Converter"]

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
