"""Documents built as ASTs: arguments are variables typed as the schema declares them."""

from __future__ import annotations

import pytest
from graphql import OperationType, print_ast

from moovago_api.documents import field, list_query, operation, operation_name, type_node
from moovago_api.errors import ConfigError
from moovago_api.schema import load_schema


@pytest.fixture(scope="module")
def schema():
    return load_schema()


def test_list_query_pages_with_variables_typed_by_the_schema(schema):
    entity = schema.entity("company")
    document = list_query(schema, entity, [field("id"), field("name")], name="Companies")
    text = print_ast(document)
    assert text == (
        "query Companies($filter: FilterManyCompanyInput!, $skip: Int, $limit: Int) {\n"
        "  companyList(filter: $filter, skip: $skip, limit: $limit) {\n"
        "    id\n"
        "    name\n"
        "  }\n"
        "}"
    )
    assert schema.validate_document(document) == []
    assert operation_name(document) == "Companies"


def test_list_query_without_paging_and_for_team(schema):
    unpaged = list_query(
        schema, schema.entity("contact"), [field("id")], name="Contacts", paged=False
    )
    assert "$skip" not in print_ast(unpaged)
    assert schema.validate_document(unpaged) == []
    team = list_query(schema, schema.entity("team"), [field("id")], name="Team")
    assert print_ast(team) == "query Team {\n  team {\n    id\n  }\n}"


def test_list_query_refuses_a_root_field_the_schema_lacks(schema):
    entity = schema.entity("company")
    missing = type(entity)(**{**entity.__dict__, "root_field": "companyListV2"})
    with pytest.raises(ConfigError, match=r"no Query\.companyListV2"):
        list_query(schema, missing, [field("id")], name="X")


def test_aliased_mutations_take_their_input_from_variables(schema):
    create = schema.graphql.mutation_type.fields["company"].type.fields["create"]
    document = operation(
        OperationType.MUTATION,
        "Batch",
        {"i0": type_node(create.args["input"].type), "i1": type_node(create.args["input"].type)},
        [
            field(
                "company",
                [
                    field("create", [field("recordId")], alias="c0", arguments={"input": "i0"}),
                    field("create", [field("recordId")], alias="c1", arguments={"input": "i1"}),
                ],
            )
        ],
    )
    text = print_ast(document)
    assert "mutation Batch($i0: CompanyCreateInput!, $i1: CompanyCreateInput!)" in text
    assert "c1: create(input: $i1)" in text
    assert schema.validate_document(document) == []
