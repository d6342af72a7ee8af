"""GraphQL documents as graphql-core ASTs: values only ever travel in `variables`.

The tap's list queries, the target's index queries and its batched mutations are all built here,
from the schema file, so nobody concatenates query text and every argument is a variable typed
as the schema declares it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLType,
    ListTypeNode,
    NamedTypeNode,
    NameNode,
    NonNullTypeNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    TypeNode,
    VariableDefinitionNode,
    VariableNode,
    get_named_type,
)

from moovago_api.errors import ConfigError
from moovago_api.schema import Entity, MoovagoSchema

__all__ = ["field", "list_query", "operation", "operation_name", "type_node"]


def _name(value: str) -> NameNode:
    return NameNode(value=value)


def type_node(gql_type: GraphQLType) -> TypeNode:
    """The AST form of a schema type, for the variable definition that feeds it."""
    if isinstance(gql_type, GraphQLNonNull):
        inner = type_node(gql_type.of_type)
        assert isinstance(inner, NamedTypeNode | ListTypeNode)
        return NonNullTypeNode(type=inner)
    if isinstance(gql_type, GraphQLList):
        return ListTypeNode(type=type_node(gql_type.of_type))
    assert isinstance(gql_type, GraphQLNamedType)
    return NamedTypeNode(name=_name(gql_type.name))


def field(
    name: str,
    selections: Sequence[FieldNode] = (),
    *,
    alias: str | None = None,
    arguments: Mapping[str, str] | None = None,
) -> FieldNode:
    """A field node; `arguments` maps each argument name to the variable that feeds it."""
    args = tuple(
        ArgumentNode(name=_name(arg), value=VariableNode(name=_name(var)))
        for arg, var in (arguments or {}).items()
    )
    return FieldNode(
        alias=_name(alias) if alias else None,
        name=_name(name),
        arguments=args,
        directives=(),
        selection_set=SelectionSetNode(selections=tuple(selections)) if selections else None,
    )


def operation(
    kind: OperationType,
    name: str,
    variables: Mapping[str, TypeNode],
    selections: Sequence[FieldNode],
) -> DocumentNode:
    """One named operation; `variables` maps variable names to their types."""
    definitions = tuple(
        VariableDefinitionNode(variable=VariableNode(name=_name(var)), type=var_type, directives=())
        for var, var_type in variables.items()
    )
    return DocumentNode(
        definitions=(
            OperationDefinitionNode(
                operation=kind,
                name=_name(name),
                variable_definitions=definitions,
                directives=(),
                selection_set=SelectionSetNode(selections=tuple(selections)),
            ),
        )
    )


def operation_name(document: DocumentNode) -> str | None:
    """The name of the document's first operation, if it has one."""
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            return definition.name.value if definition.name else None
    return None


def list_query(
    schema: MoovagoSchema,
    entity: Entity,
    selections: Sequence[FieldNode],
    *,
    name: str,
    paged: bool = True,
) -> DocumentNode:
    """`query NAME($filter: FilterMany…!, $skip: Int, $limit: Int) { xList(...) { … } }`.

    The filter (and, when `paged` and the list field has them, the paging arguments) become
    variables named after the arguments, typed as the schema declares them. For `team`, which
    takes no argument, the query has no variable.
    """
    query_type = schema.graphql.query_type
    root = query_type.fields.get(entity.root_field) if query_type else None
    if root is None:
        msg = f"the schema file {schema.path} has no Query.{entity.root_field}"
        raise ConfigError(msg)
    if not isinstance(get_named_type(root.type), GraphQLObjectType):
        msg = f"Query.{entity.root_field} in {schema.path} does not return objects"
        raise ConfigError(msg)
    names = [entity.filter_arg] if entity.filter_arg else []
    if paged and entity.skip_arg and entity.limit_arg:
        names += [entity.skip_arg, entity.limit_arg]
    variables = {arg: type_node(root.args[arg].type) for arg in names}
    root_node = field(entity.root_field, selections, arguments={arg: arg for arg in names})
    return operation(OperationType.QUERY, name, variables, [root_node])
