"""Documents built from the schema: arguments are variables typed as the schema declares them."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import print_ast

from moovago_api.documents import (
    has_aliases,
    list_document,
    operation_name,
    page_variables,
    restore_aliases,
)
from moovago_api.errors import ConfigError
from moovago_api.schema import load_schema


@pytest.fixture(scope="module")
def schema():
    return load_schema()


# -- list_document: gql.dsl from the loaded schema --------------------------------------------

SHAPES = Path(__file__).resolve().parents[1] / "schema_variants" / "shapes"


def test_list_document_pages_with_variables_typed_by_the_schema_and_reads_the_row_before(schema):
    document = list_document(schema, schema.entity("company"), ["name"], name="Companies")
    # Offset paging: one read of the list (the pager starts a page one row early for its proof).
    assert print_ast(document) == (
        "query Companies($filter: FilterManyCompanyInput!, $skip: Int, $limit: Int) {\n"
        "  companyList(filter: $filter, skip: $skip, limit: $limit) {\n"
        "    id\n"
        "    name\n"
        "  }\n"
        "}"
    )
    assert schema.validate_document(document) == []
    assert operation_name(document) == "Companies"
    # `anchored`: the row before the page beside it, for answers one row cannot decide.
    company = schema.entity("company")
    anchored = list_document(schema, company, ["name"], name="Companies", anchored=True)
    assert print_ast(anchored) == (
        "query Companies($filter: FilterManyCompanyInput!, $skip: Int, $limit: Int, "
        "$anchorOffset: Int, $anchorSize: Int) {\n"
        "  companyList(filter: $filter, skip: $skip, limit: $limit) {\n"
        "    id\n"
        "    name\n"
        "  }\n"
        "  anchor: companyList(filter: $filter, skip: $anchorOffset, limit: $anchorSize) {\n"
        "    id\n"
        "  }\n"
        "}"
    )
    assert schema.validate_document(anchored) == []
    team = list_document(schema, schema.entity("team"), ["name"], name="Team")
    assert print_ast(team) == "query Team {\n  team {\n    id\n    name\n  }\n}"


def test_list_document_refuses_a_root_field_the_schema_lacks(schema):
    entity = schema.entity("company")
    missing = type(entity)(**{**entity.__dict__, "root_field": "companyListV2"})
    with pytest.raises(ConfigError, match=r"no Query\.companyListV2"):
        list_document(schema, missing, ["id"], name="X")


def test_list_document_selects_nested_objects_fully_or_as_asked(schema):
    entity = schema.entity("company")
    full = print_ast(list_document(schema, entity, ["coordinates"], name="A"))
    assert "coordinates {\n      latitude\n      longitude\n    }" in full
    some = print_ast(list_document(schema, entity, [("coordinates", ["latitude"])], name="B"))
    assert "coordinates {\n      latitude\n    }" in some
    assert "longitude" not in some


def test_list_document_refuses_a_field_the_schema_lacks(schema):
    with pytest.raises(ConfigError, match=r"Query\.companyList: cannot select"):
        list_document(schema, schema.entity("company"), ["faxNumber"], name="X")


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        (
            "connection_nodes.gql",
            "companyList(filter: $filter, after: $after, first: $first) {\n"
            "    nodes {\n      id\n      name\n    }\n"
            "    pageInfo {\n      hasNextPage\n      endCursor\n    }\n  }",
        ),
        (
            "connection_edges.gql",
            "companyList(filter: $filter, after: $after, first: $first) {\n"
            "    edges {\n      cursor\n      node {\n        id\n        name\n      }\n    }\n"
            "    pageInfo {\n      hasNextPage\n      endCursor\n    }\n  }",
        ),
        (
            "cursor_paging.gql",
            "companyList(filter: $filter, after: $after, first: $first) {\n"
            "    cursor\n    id\n    name\n  }",
        ),
        (
            "page_paging.gql",
            "companyList(filter: $filter, page: $page, perPage: $perPage) {\n"
            "    id\n    name\n  }\n"
            "  anchor: companyList(filter: $filter, page: $anchorPage, perPage: $anchorSize) {\n"
            "    id\n  }",
        ),
        (
            "nullable_filter.gql",
            "companyList(where: $where, skip: $skip, limit: $limit) {\n    id\n    name\n  }\n"
            "  anchor: companyList(where: $where, skip: $anchorOffset, limit: $anchorSize) {\n"
            "    id\n  }",
        ),
        (
            "renamed_roots.gql",
            "companyList(filter: $filter, skip: $skip, limit: $limit) {\n    id\n    name\n  }\n"
            "  anchor: companyList(filter: $filter, skip: $anchorOffset, limit: $anchorSize) {",
        ),
    ],
)
def test_list_document_follows_each_paging_shape(variant, expected):
    shaped = load_schema(SHAPES / variant)
    entity = shaped.entity("company")
    document = list_document(shaped, entity, ["name"], name="Q", anchored=True)
    assert expected in print_ast(document)
    assert shaped.validate_document(document) == []
    plain = print_ast(list_document(shaped, entity, ["name"], name="Q"))  # page numbers: beside
    assert ("anchor:" in plain) == (entity.paging.kind == "page")


def test_unions_and_interfaces_get_typename_and_fragments_aliasing_clashing_fields():
    shaped = load_schema(SHAPES / "unions.gql")
    document = list_document(
        shaped, shaped.entity("company"), ["mainParty", "activities"], name="Q"
    )
    text = print_ast(document)
    assert shaped.validate_document(document) == []
    assert "mainParty {\n      __typename\n      ... on CompanyContact {" in text
    # CompanyContact.lastName is String!, TeamMember.lastName String: GraphQL wants aliases.
    assert "lastName__on_CompanyContact: lastName" in text
    assert "lastName__on_TeamMember: lastName" in text
    assert "activities {\n      __typename\n      ... on Visit {" in text
    assert has_aliases(document)
    row = {"mainParty": {"__typename": "TeamMember", "lastName__on_TeamMember": "Doe"}}
    assert restore_aliases(row) == {"mainParty": {"__typename": "TeamMember", "lastName": "Doe"}}


def test_values_never_reach_the_document_text(schema):
    document = list_document(schema, schema.entity("company"), ["name"], name="Q")
    assert "teamId" not in print_ast(document)
    assert page_variables(schema.entity("company")) == ["filter", "skip", "limit"]
