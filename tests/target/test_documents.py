"""Mutation and list documents are built as ASTs, hold no values, and validate offline."""

from __future__ import annotations

import pytest
from graphql import print_ast

from moovago_api.documents import batch_document
from moovago_api.schema import load_schema
from moovago_api.wire import is_loopback_url as is_loopback
from target_moovago.decide import Action, Kind, Row
from target_moovago.index import MappedRow
from target_moovago.remote import list_pager


@pytest.fixture(scope="module")
def schema():
    return load_schema()


def action(kind, data=None, record_id=None):
    row = Row(1, {}, MappedRow())
    return Action(kind, row, record_id=record_id, data=data or {})


def test_batch_document_aliases_each_mutation_and_keeps_values_in_variables(schema):
    entity = schema.entity("company")
    actions = [
        action(Kind.CREATE, {"name": "Secret Value Co"}),
        action(Kind.UPDATE, {"city": "Niort"}, "c-1"),
        action(Kind.DELETE, record_id="c-2"),
    ]
    document, variables, aliases = batch_document(schema, entity, actions)
    text = print_ast(document)
    assert schema.validate_document(document) == []
    assert [alias.name for alias in aliases] == ["c0", "u1", "d2"]
    assert "c0: create(input: $i0)" in text
    assert "$i1: CompanyUpdateInput!" in text
    assert "Secret Value Co" not in text
    assert "Niort" not in text
    assert variables == {
        "i0": {"name": "Secret Value Co"},
        "i1": {"id": "c-1", "input": {"city": "Niort"}},
        "i2": {"id": "c-2"},
    }


@pytest.mark.parametrize("stream", ["company", "contact", "mandator", "turnover"])
def test_list_documents_validate(schema, stream):
    entity = schema.entity(stream)
    fields = list(schema.input_json_schema(entity.writes.shape("create").input_type)["properties"])
    document = list_pager(schema, entity, fields).document
    assert schema.validate_document(document) == []
    assert "$skip" in print_ast(document)


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8080/graphql", True),
        ("http://localhost/graphql", True),
        ("http://[::1]:9/graphql", True),
        ("https://api.example.test/graphql", False),
        ("https://10.0.0.5/graphql", False),
    ],
)
def test_loopback_detection(url, loopback):
    assert is_loopback(url) is loopback
