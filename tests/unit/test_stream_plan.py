"""The plan per stream: the conventions on the graphql-compose family, and one override test per
plan part (a right override shows in the plan; a wrong one is one line naming the part)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from graphql import print_ast

from moovago_api.documents import WriteOp, batch_document
from moovago_api.errors import ConfigError
from moovago_api.pager import Pager
from moovago_api.schema import load_schema
from tests.unit.stub_server import client_for

FAMILIES = Path(__file__).resolve().parents[1] / "schema_variants" / "families"
COMPOSE = FAMILIES / "compose.gql"


@pytest.fixture(scope="module")
def compose():
    return load_schema(COMPOSE)


def test_the_compose_family_is_planned_without_configuration(compose):
    assert [p.stream_name for p in compose.entities()] == ["team", "company", "mandator"]
    team = compose.entity("team")
    assert (team.root_field, team.team_arg, team.id_field) == ("team", "id", "_id")
    company = compose.entity("company")
    assert company.id_field == "_id"
    assert (company.paging.kind, company.paging.rows) == ("page", "items")
    assert (company.paging.page_arg, company.paging.size_arg) == ("page", "perPage")
    assert (company.paging.sort_arg, company.paging.sort_value) == ("sort", "_ID_ASC")
    assert company.bound_path == ("_operators", "updatedAt", "gte")
    assert company.replication_key == "updatedAt"
    assert company.filter_value("t1", "2026-01-01T00:00:00.000Z") == {
        "teamId": "t1",
        "_operators": {"updatedAt": {"gte": "2026-01-01T00:00:00.000Z"}},
    }
    shapes = company.writes.shapes
    assert {k: s.coordinate for k, s in shapes.items()} == {
        "create": "Mutation.companyCreateOne",
        "update": "Mutation.companyUpdateById",
        "delete": "Mutation.companyRemoveById",
    }
    assert (shapes["update"].id_arg, shapes["update"].input_arg) == ("_id", "record")
    assert {s.errors_field for s in shapes.values()} == {"error"}
    assert [(f.coordinate, f.reason) for f in compose.skipped_fields()] == [
        ("Query.teams", "Query.team already reads Team")
    ]


def test_a_deprecated_root_list_stays_a_stream_marked_and_full_table_says_why(compose):
    mandator = compose.entity("mandator")
    assert mandator.deprecated == "Use mandatorPagination; mandatorMany goes on 2027-06-30."
    assert mandator.read_problem() is None
    assert mandator.replication_key is None
    assert mandator.full_table_reason == (
        "Mandator.updatedAt exists but argument filter takes no lower bound (updatedSince, "
        "updatedAfter, updatedAtFrom, updatedFrom or _operators.updatedAt.gte)"
    )
    assert "DEPRECATED (Use mandatorPagination" in mandator.summary()


def test_a_payload_error_is_a_failure_with_the_servers_message(compose):
    create = compose.entity("company").writes.shape("create")
    failed = {"recordId": "x1", "error": {"message": "name is required"}}
    assert create.record_id(failed) is None, "an answered error is never a write"
    assert create.error_messages(failed) == ["name is required"]
    assert create.record_id({"recordId": "x1", "error": None}) == "x1"


def test_the_compose_batch_document_asks_for_the_error_and_sends_the_id_as_id(compose):
    company = compose.entity("company")
    ops = [WriteOp("create", None, {"name": "A"}), WriteOp("update", "m1", {"city": "Niort"})]
    document, variables, aliases = batch_document(compose, company, ops)
    assert compose.validate_document(document) == []
    text = print_ast(document)
    assert "c0: companyCreateOne(record: $i0)" in text
    assert "u1: companyUpdateById(_id: $i1__id, record: $i1)" in text
    assert "error {\n      message" in text
    assert variables == {"i0": {"name": "A"}, "i1__id": "m1", "i1": {"city": "Niort"}}
    assert [a.path for a in aliases] == [("c0",), ("u1",)]


class _Shuffling:
    """A server answering pages of `{ count items pageInfo }` in a new order at every read
    unless `sort` is sent, as MongoDB's find() does."""

    def __init__(self, rows: int) -> None:
        self.rows = [{"_id": f"m{k:04d}", "name": f"row {k}"} for k in range(rows)]
        self.rng = random.Random(7)
        self.calls: list[dict[str, Any]] = []

    def execute(self, document: Any, variables: Any = None, operation_name: Any = None) -> Any:
        variables = dict(variables or {})
        self.calls.append(variables)
        rows = list(self.rows)
        if variables.get("sort") != "_ID_ASC":
            self.rng.shuffle(rows)

        def page(number: int, size: int) -> dict[str, Any]:
            items = rows[(number - 1) * size : number * size]
            more = number * size < len(rows)
            return {"items": items, "pageInfo": {"hasNextPage": more}}

        answer = {"companyPagination": page(variables["page"], variables["perPage"])}
        if "anchorPage" in variables:
            answer["anchor"] = page(variables["anchorPage"], variables["anchorSize"])
        return answer


def test_a_sort_argument_is_sent_so_a_shuffling_server_is_read_once(compose):
    server = _Shuffling(23)
    pager = Pager(compose, compose.entity("company"), ["name"], operation_name="T")
    with client_for(server.execute) as client:
        rows = list(pager.read(client, filter={"teamId": "t1"}, page_size=5))
    assert [r["_id"] for r in rows] == [r["_id"] for r in server.rows]
    assert all(call["sort"] == "_ID_ASC" for call in server.calls)


# -- overrides: one per plan part ---------------------------------------------------------------


def _with(schema, overrides):
    return schema.with_plans(overrides)


def test_override_root_field_id_field_and_paging_of_a_new_stream(compose):
    plans = _with(
        compose,
        {
            "firm": {
                "root_field": "companyPagination",
                "id_field": "_id",
                "paging": {"kind": "page", "page_arg": "page", "size_arg": "perPage"},
            }
        },
    )
    firm = plans.entity("firm")
    assert (firm.type_name, firm.root_field, firm.id_field) == (
        "Company",
        "companyPagination",
        "_id",
    )
    assert firm.overridden == ("root_field", "id_field", "paging")
    assert "overridden: root_field, id_field, paging" in firm.summary()
    assert compose.entity("company").overridden == (), "the plain file keeps its own plans"


@pytest.mark.parametrize(
    ("part", "value", "line"),
    [
        ("root_field", "nope", "stream_plans.company.root_field: Query has no field 'nope'"),
        ("id_field", "uid", "stream_plans.company.id_field: Company has no field 'uid'"),
        (
            "paging",
            {"kind": "offset", "offset_arg": "skip", "size_arg": "perPage"},
            "stream_plans.company.paging.offset_arg: Query.companyPagination has no argument "
            "'skip'",
        ),
        ("paging", {"kind": "sideways"}, "stream_plans.company.paging.kind: 'sideways' is not"),
        (
            "order",
            {"arg": "sort", "value": "NAME_ASC"},
            "stream_plans.company.order.value: 'NAME_ASC' is not a SortFindManyCompanyInput",
        ),
        (
            "incremental",
            {"bound_path": ["_operators", "createdAt", "gte"]},
            "stream_plans.company.incremental.bound_path: FilterFindManyCompanyOperatorsInput "
            "has no input field 'createdAt'",
        ),
        (
            "team_field",
            "team",
            "stream_plans.company.team_field: FilterFindManyCompanyInput has no input field 'team'",
        ),
        (
            "writes",
            {"delete": "companyDeleteOne"},
            "stream_plans.company.writes.delete: the schema file",
        ),
        ("colour", "red", "stream_plans.company.colour: is not one of root_field, id_field"),
    ],
)
def test_a_wrong_override_is_one_line_naming_the_setting_and_part(compose, part, value, line):
    with pytest.raises(ConfigError) as caught:
        _with(compose, {"company": {part: value}}).entities()
    message = str(caught.value)
    assert message.startswith(f"Setting {line}"), message
    assert "\n" not in message


def test_override_id_field(compose):
    plan = _with(compose, {"mandator": {"id_field": "teamId"}}).entity("mandator")
    assert plan.id_field == "teamId"


def test_override_paging(compose):
    paging = {"kind": "page", "page_arg": "page", "size_arg": "perPage", "first_page": 0}
    plan = _with(compose, {"company": {"paging": paging}}).entity("company")
    assert (plan.paging.kind, plan.paging.first_page, plan.paging.rows) == ("page", 0, "items")


def test_override_order(compose):
    plan = _with(compose, {"company": {"order": {"value": "UPDATEDAT_ASC"}}}).entity("company")
    assert (plan.paging.sort_arg, plan.paging.sort_value) == ("sort", "UPDATEDAT_ASC")


def test_override_incremental(compose):
    override = {"incremental": {"bound_path": ["_operators", "updatedAt", "gt"]}}
    plan = _with(compose, {"company": override}).entity("company")
    assert plan.bound_path == ("_operators", "updatedAt", "gt")
    assert plan.filter_value(None, "T") == {"_operators": {"updatedAt": {"gt": "T"}}}


def test_override_team_field(compose):
    plan = _with(compose, {"company": {"team_field": "name"}}).entity("company")
    assert plan.filter_value("t9") == {"name": "t9"}


def test_override_writes_names_a_mutation_the_conventions_did_not_pick(tmp_path):
    sdl = COMPOSE.read_text(encoding="utf-8").replace(
        "companyRemoveById(_id: MongoID!)", "eraseFirm(_id: MongoID!)"
    )
    path = tmp_path / "renamed.gql"
    path.write_text(sdl, encoding="utf-8")
    schema = load_schema(path)
    assert "delete" not in schema.entity("company").writes.shapes
    plan = schema.with_plans({"company": {"writes": {"delete": "eraseFirm"}}}).entity("company")
    assert plan.writes.shape("delete").coordinate == "Mutation.eraseFirm"
    assert plan.writes.shape("delete").id_arg == "_id"


def test_an_override_makes_an_unreadable_list_readable(tmp_path):
    path = tmp_path / "noid.gql"
    path.write_text(
        "type Query { notes(skip: Int, limit: Int): [Note!]! }\n"
        "type Note { uid: ID! text: String }\n",
        encoding="utf-8",
    )
    schema = load_schema(path)
    assert schema.entity("note").read_problem() == (
        "Query.notes: Note has no id or _id field (set stream_plans.note.id_field)"
    )
    fixed = schema.with_plans({"note": {"id_field": "uid"}}).entity("note")
    assert (fixed.read_problem(), fixed.id_field) == (None, "uid")


UNION_SDL = """
type Query { companyMany(skip: Int, limit: Int): [Company!]! }
type Company { _id: MongoID! name: String }
scalar MongoID
input CreateOneCompanyInput { name: String! }
type CreateOneCompanyPayload { recordId: MongoID }
type ValidationError { message: String! }
type DuplicateError { message: String! }
union CreateOneCompanyResult = CreateOneCompanyPayload | ValidationError | DuplicateError
type Mutation { companyCreateOne(record: CreateOneCompanyInput!): CreateOneCompanyResult }
"""


def test_a_result_union_is_read_its_failures_are_rejects_with_the_message(tmp_path):
    path = tmp_path / "union.gql"
    path.write_text(UNION_SDL, encoding="utf-8")
    schema = load_schema(path)
    company = schema.entity("company")
    create = company.writes.shape("create")
    assert (create.payload_type, create.failure_types) == (
        "CreateOneCompanyPayload",
        ("ValidationError", "DuplicateError"),
    )
    ops = [WriteOp("create", None, {"name": "A"})]
    document, _, _ = batch_document(schema, company, ops)
    assert schema.validate_document(document) == []
    text = print_ast(document)
    assert "... on CreateOneCompanyPayload {\n      recordId" in text
    assert "... on DuplicateError {\n      message" in text
    failed = {"__typename": "DuplicateError", "message": "name is taken"}
    assert (create.record_id(failed), create.error_messages(failed)) == (None, ["name is taken"])
    done = {"__typename": "CreateOneCompanyPayload", "recordId": "m1"}
    assert (create.record_id(done), create.error_messages(done)) == ("m1", [])
