"""moovago_api.schema: loading, entities, JSON Schema conversion, validation, deprecations."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from graphql import parse
from graphql.execution.values import get_variable_values
from graphql.language import OperationDefinitionNode

from moovago_api.errors import ConfigError, SchemaFileError
from moovago_api.plan import Paging
from moovago_api.schema import DEFAULT_SCHEMA_PATH, Deprecation, Entity, load_schema

# Request bodies exactly as the vendor's getting-started page prints them (JSON, as sent).
VENDOR_BODIES = [
    r'{ "query": "{ team { id name members { id alias } } }" }',
    r'{ "query": "query MyTeamQuery { team { id name members { id alias } } }" }',
    r'{ "query": "{ companyList(filter: { teamId: \"XYZ\" }) { id name ownerIds } }" }',
    r'{ "query": "query MyCompanyListQuery($filter: FilterManyCompanyInput!) { companyList(filter: $filter) { id name ownerIds } }", "variables": { "filter": { "teamId": "XYZ" } } }',  # noqa: E501
    r'{ "query": "mutation { company { create( input: { ownerIds: [\"XYZ\"], name: \"Moovago\", city: \"Niort\", address: \"46 Rue du 14 Juillet\", postalCode: \"79000\", phone: \"07 68 45 46 74\", email: \"support@moovago.com\", note: \"L application du commercial\" } ) { recordId } } }" }',  # noqa: E501
    r'{ "query": "mutation MyCompanyCreate($input: CompanyCreateInput!) { company { create(input: $input) { recordId } } }", "variables": { "input": { "ownerIds": ["XYZ"], "name": "Moovago", "city": "Niort", "address": "46 Rue du 14 Juillet", "postalCode": "79000", "phone": "07 68 45 46 74", "email": "support@moovago.com", "note": "L application du commercial" } } }',  # noqa: E501
    r'{ "query": "query MyMandatorList($filter: FilterManyMandatorInput!) { mandatorList(filter: $filter) { id name }  }", "variables": { "filter": { "teamId": "<your-teamId>" } } }',  # noqa: E501
    r'{ "query": "mutation MyCompanyUpdate($input: CompanyUpdateInput!) { company { update(input: $input) { recordId } } }", "variables": { "input": { "id": "<companyId-value>", "input": { "note": "Here is my new note"} } } }',  # noqa: E501
]

SCALARS_SDL = """
scalar DateTime
scalar Date

"Every scalar, nullable and not."
type Query {
  "An integer."
  i: Int
  iNN: Int!
  f: Float
  fNN: Float!
  b: Boolean
  bNN: Boolean!
  s: String
  sNN: String!
  id: ID
  idNN: ID!
  dt: DateTime
  dtNN: DateTime!
  d: Date
  dNN: Date!
  e: Colour
  eNN: Colour!
  nullableList: [Int]
  listNN: [ID!]!
  nested: Outer
  old: String @deprecated(reason: "Use s.")
}

enum Colour { RED GREEN }

type Outer { inner: Inner!, label: String }
type Inner { depth: Int! }

input ThingInput {
  "Must be given."
  name: String!
  size: Int
  count: Int! = 1
  tags: [String!]!
  where: PointInput
  colour: Colour = GREEN
}

input PointInput { x: Float!, y: Float! }
"""


@pytest.fixture(scope="module")
def bundled():
    return load_schema()


@pytest.fixture
def scalars(tmp_path: Path):
    path = tmp_path / "scalars.gql"
    path.write_text(SCALARS_SDL, encoding="utf-8")
    return load_schema(path)


# -- vendor documents ------------------------------------------------------------------------


@pytest.mark.parametrize("body", VENDOR_BODIES, ids=range(len(VENDOR_BODIES)))
def test_every_vendor_document_validates(bundled, body):
    payload = json.loads(body)
    assert bundled.validate_document(payload["query"]) == []
    # The vendor's variables coerce to the declared variable types too (e.g. update {id, input}).
    operation = parse(payload["query"]).definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    coerced = get_variable_values(
        bundled.graphql, operation.variable_definitions or (), payload.get("variables", {})
    )
    assert not isinstance(coerced, list), coerced  # a list holds the coercion errors


def test_validate_accepts_a_parsed_document(bundled):
    assert bundled.validate_document(parse("{ team { id } }")) == []


@pytest.mark.parametrize(
    ("document", "culprit"),
    [
        ("{ team { id nmae members { id alias } } }", "nmae"),
        ('{ companyList(filter: { teamId: "XYZ" }) { id name ownrIds } }', "ownrIds"),
        ('{ companyList(filter: { temId: "XYZ" }) { id } }', "temId"),
        ("{ mandatorList { id } }", "filter"),
    ],
)
def test_misspelt_document_fails_validation(bundled, document, culprit):
    problems = bundled.validate_document(document)
    assert problems
    assert any(culprit in p for p in problems)
    assert any("line 1" in p for p in problems)


def test_syntax_error_is_reported_not_raised(bundled):
    problems = bundled.validate_document("{ team { id ")
    assert len(problems) == 1
    assert "Syntax Error" in problems[0]


# -- JSON Schema: outputs --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("i", {"type": ["integer", "null"], "description": "An integer."}),
        ("iNN", {"type": "integer"}),
        ("f", {"type": ["number", "null"]}),
        ("fNN", {"type": "number"}),
        ("b", {"type": ["boolean", "null"]}),
        ("bNN", {"type": "boolean"}),
        ("s", {"type": ["string", "null"]}),
        ("sNN", {"type": "string"}),
        ("id", {"type": ["string", "null"]}),
        ("idNN", {"type": "string"}),
        ("dt", {"type": ["string", "null"], "format": "date-time"}),
        ("dtNN", {"type": "string", "format": "date-time"}),
        ("d", {"type": ["string", "null"], "format": "date"}),
        ("dNN", {"type": "string", "format": "date"}),
        ("e", {"type": ["string", "null"], "enum": ["RED", "GREEN", None]}),
        ("eNN", {"type": "string", "enum": ["RED", "GREEN"]}),
        ("nullableList", {"type": ["array", "null"], "items": {"type": ["integer", "null"]}}),
        ("listNN", {"type": "array", "items": {"type": "string"}}),
        (
            "nested",
            {
                "type": ["object", "null"],
                "properties": {
                    "inner": {"type": "object", "properties": {"depth": {"type": "integer"}}},
                    "label": {"type": ["string", "null"]},
                },
            },
        ),
        (
            "old",
            {
                "type": ["string", "null"],
                "deprecated": True,
                "x-deprecation-reason": "Use s.",
            },
        ),
    ],
)
def test_output_json_schema_per_graphql_type(scalars, field, expected):
    schema = scalars.output_json_schema("Query")
    assert schema["type"] == "object"
    assert schema["description"] == "Every scalar, nullable and not."
    assert schema["properties"][field] == expected


def test_output_json_schema_is_valid_json_schema_and_accepts_a_record(bundled):
    schema = bundled.output_json_schema("Company")
    jsonschema.Draft7Validator.check_schema(schema)
    record = {
        "id": "c1",
        "teamId": "t1",
        "name": "Moovago",
        "ownerIds": ["u1"],
        "status": "CLIENT",
        "postalCode": None,
        "coordinates": {"latitude": 46.3, "longitude": -0.46},
        "mandatorIds": [],
        "mandators": [],
        "createdAt": "2026-11-29T08:30:00.000Z",
        "updatedAt": "2026-11-29T08:30:00.000Z",
    }
    jsonschema.validate(record, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**record, "status": "FRIEND"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**record, "name": None}, schema)


def test_bundled_company_schema_keeps_descriptions_and_deprecations(bundled):
    props = bundled.output_json_schema("Company")["properties"]
    assert props["ownerIds"]["description"] == "Team members who own the company. [vendor]"
    assert props["zipCode"]["deprecated"] is True
    assert "postalCode" in props["zipCode"]["x-deprecation-reason"]
    assert "deprecated" not in props["postalCode"]
    assert props["status"]["enum"] == ["CLIENT", "PROSPECT", "SUSPECT"]
    assert props["mandators"]["items"]["properties"]["name"]["type"] == "string"
    assert props["updatedAt"] == {
        "type": "string",
        "format": "date-time",
        "description": "[reconstruction]",
    }


def test_output_json_schema_keeps_deprecated_fields_marked(bundled):
    contact = bundled.output_json_schema("CompanyContact")["properties"]
    assert contact["function"]["deprecated"] is True
    assert contact["function"]["x-deprecation-reason"]
    assert "deprecated" not in contact["position"]


def test_output_json_schema_stops_at_cycles(tmp_path):
    path = tmp_path / "cycle.gql"
    path.write_text("type Query { a: A }\ntype A { b: B, n: Int }\ntype B { a: A! }\n")
    schema = load_schema(path).output_json_schema("A")
    assert schema["properties"]["b"]["properties"]["a"] == {"type": "object"}


def test_output_json_schema_refuses_unknown_and_input_types(bundled):
    with pytest.raises(KeyError, match="Nope"):
        bundled.output_json_schema("Nope")
    with pytest.raises(TypeError, match="CompanyCreateInput"):
        bundled.output_json_schema("CompanyCreateInput")


# -- JSON Schema: inputs ---------------------------------------------------------------------


def test_input_json_schema_marks_required_fields(scalars):
    schema = scalars.input_json_schema("ThingInput")
    assert schema["type"] == "object"
    # Non-null without a default is required; a default makes it optional.
    assert schema["required"] == ["name", "tags"]
    props = schema["properties"]
    assert props["name"] == {"type": "string", "description": "Must be given."}
    assert props["size"] == {"type": ["integer", "null"]}
    assert props["count"] == {"type": "integer", "default": 1}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["colour"] == {
        "type": ["string", "null"],
        "enum": ["RED", "GREEN", None],
        "default": "GREEN",
    }
    assert props["where"]["type"] == ["object", "null"]
    assert props["where"]["required"] == ["x", "y"]


def test_bundled_input_schemas_accept_the_vendor_inputs(bundled):
    create = bundled.input_json_schema("CompanyCreateInput")
    assert create["required"] == ["name"]
    jsonschema.Draft7Validator.check_schema(create)
    vendor_input = json.loads(VENDOR_BODIES[5])["variables"]["input"]
    jsonschema.validate(vendor_input, create)
    with pytest.raises(jsonschema.ValidationError, match="'name' is a required property"):
        jsonschema.validate({"city": "Niort"}, create)
    with pytest.raises(jsonschema.ValidationError, match="zipcode"):
        jsonschema.validate({"name": "X", "zipcode": "79000"}, create)

    update = bundled.input_json_schema("CompanyUpdateInput")
    assert update["required"] == ["id", "input"]
    jsonschema.validate(json.loads(VENDOR_BODIES[7])["variables"]["input"], update)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"id": "c1", "input": {"status": "FRIEND"}}, update)

    assert bundled.input_json_schema("TurnoverCreateInput")["required"] == [
        "companyId",
        "amount",
        "startDate",
        "endDate",
    ]


def test_input_json_schema_refuses_output_types(bundled):
    with pytest.raises(TypeError, match="Company"):
        bundled.input_json_schema("Company")


# -- entities --------------------------------------------------------------------------------


def test_bundled_entities(bundled):
    entities = bundled.entities()
    assert [e.stream_name for e in entities] == [
        "team",
        "company",
        "contact",
        "mandator",
        "turnover",
    ]
    assert entities[0] == Entity(
        name="team", stream_name="team", type_name="Team", root_field="team"
    )
    assert bundled.entity("company") == Entity(
        name="company",
        stream_name="company",
        type_name="Company",
        root_field="companyList",
        filter_arg="filter",
        filter_type="FilterManyCompanyInput",
        team_filter_field="teamId",
        bound_path=("updatedSince",),
        replication_key="updatedAt",
        paging=Paging(kind="offset", offset_arg="skip", size_arg="limit"),  # not 'offset'
    )
    company = bundled.entity("company").writes
    assert {kind: shape.path for kind, shape in company.shapes.items()} == {
        "create": ("company", "create"),
        "update": ("company", "update"),
        "delete": ("company", "delete"),
    }
    assert company.shape("create").input_type == "CompanyCreateInput"
    assert company.shape("update").input_type == "CompanyUpdateInput"
    assert company.shape("update").data_type == "CompanyUpdateDataInput"
    assert company.shape("delete").input_type == "CompanyDeleteInput"
    contact = bundled.entity("contact")
    assert bundled.entity("companyContact") is contact
    assert (contact.name, contact.type_name, contact.root_field) == (
        "companyContact",
        "CompanyContact",
        "companyContactList",
    )
    assert contact.filter_type == "FilterManyCompanyContactInput"
    assert contact.writes.shape("create").path[0] == "companyContact"
    assert contact.writes.shape("update").data_type == "CompanyContactUpdateDataInput"
    for name in ("mandator", "turnover"):
        entity = bundled.entity(name)
        title = name.capitalize()
        assert entity.root_field == f"{name}List"
        assert entity.filter_type == f"FilterMany{title}Input"
        assert entity.writes.shape("create").input_type == f"{title}CreateInput"
        assert entity.writes.shape("delete").input_type == f"{title}DeleteInput"
        assert entity.replication_key == "updatedAt"


def test_unknown_entity_raises_key_error(bundled):
    with pytest.raises(KeyError, match="visit"):
        bundled.entity("visit")


USER_SDL = """
scalar DateTime
type Query {
  team: Team
  visitReportList(filter: FilterManyVisitReportInput!, offset: Int, first: Int): [VisitReport!]!
  "Not an entity: a required argument outside any filter."
  noteList(teamId: ID!): [Note!]!
  "An entity although its filter is nullable."
  routeList(filter: FilterManyRouteInput): [Route!]!
}
type Mutation { visitReport: VisitReportMutation }
type Team { id: ID! }
type Note { id: ID! }
type Route { id: ID! }
input FilterManyRouteInput { teamId: ID! }
type VisitReport { id: ID!, updatedAt: DateTime! }
input FilterManyVisitReportInput { teamId: ID!, updatedAfter: DateTime }
input VisitReportCreateInput { text: String! }
type VisitReportPayload { recordId: ID! }
type VisitReportMutation { create(input: VisitReportCreateInput!): VisitReportPayload }
"""


def test_user_schema_entity_gets_a_snake_case_stream(tmp_path):
    path = tmp_path / "user.gql"
    path.write_text(USER_SDL, encoding="utf-8")
    schema = load_schema(path)
    # A list the conventions cannot read stays a stream, its problem naming the setting.
    assert [e.stream_name for e in schema.entities()] == ["team", "visit_report", "note", "route"]
    assert schema.entity("note").problem == (
        "Query.noteList: required argument teamId: ID! the tap cannot fill (set stream_plans.note)"
    )
    assert schema.skipped_fields() == []
    assert schema.entity("route").team_filter_field == "teamId"
    visit = schema.entity("visit_report")
    assert schema.entity("visitReport") is visit
    assert visit.type_name == "VisitReport"
    assert visit.team_filter_field == "teamId"
    assert visit.bound_path == ("updatedAfter",)
    assert visit.replication_key == "updatedAt"
    assert (visit.paging.offset_arg, visit.paging.size_arg) == ("offset", "first")
    assert visit.writes.shape("create").path == ("visitReport", "create")
    assert visit.writes.shape("create").input_type == "VisitReportCreateInput"
    assert set(visit.writes.shapes) == {"create"}


def test_entity_without_updated_since_has_no_replication_key(tmp_path):
    path = tmp_path / "plain.gql"
    path.write_text(
        "scalar DateTime\n"
        "type Query { thingList(filter: FilterManyThingInput!): [Thing] }\n"
        "type Thing { id: ID!, updatedAt: DateTime }\n"
        "input FilterManyThingInput { ids: [ID!] }\n",
        encoding="utf-8",
    )
    (thing,) = load_schema(path).entities()
    assert thing.stream_name == "thing"
    assert thing.team_filter_field is None
    assert thing.bound_path == ()
    assert thing.replication_key is None
    assert thing.paging.kind == "none"
    assert dict(thing.writes.shapes) == {}


# -- loading ---------------------------------------------------------------------------------


def test_load_schema_defaults_to_the_bundled_file_and_caches(bundled):
    assert bundled.path == DEFAULT_SCHEMA_PATH
    assert bundled.sdl == DEFAULT_SCHEMA_PATH.read_text(encoding="utf-8")
    assert load_schema() is bundled
    assert load_schema(str(DEFAULT_SCHEMA_PATH)) is bundled


def test_load_schema_reloads_a_changed_file(tmp_path):
    path = tmp_path / "s.gql"
    path.write_text("type Query { a: Int }\n", encoding="utf-8")
    first = load_schema(path)
    path.write_text("type Query { a: Int, b: Int }\n", encoding="utf-8")
    second = load_schema(path)
    assert second is not first
    assert "b" in second.graphql.query_type.fields


@pytest.mark.parametrize(
    ("sdl", "line", "words"),
    [
        ("type Query {\n  a: Int\n  b: [Int\n}\n", 4, "Syntax Error"),
        ("type Query {\n  a: Int\n  b: Foo\n}\n", 3, "Unknown type 'Foo'"),
        ("type Query { a: Int }\n\ntype Query { b: Int }\n", 1, "only one type named 'Query'"),
        (
            "type Query { a: Int }\ninterface I { x: Int }\ntype T implements I { y: Int }\n",
            2,
            "I.x",
        ),
    ],
)
def test_broken_schema_file_names_file_and_line(tmp_path, sdl, line, words):
    path = tmp_path / "broken.gql"
    path.write_text(sdl, encoding="utf-8")
    with pytest.raises(SchemaFileError) as caught:
        load_schema(path)
    err = caught.value
    assert err.path == str(path)
    assert err.line == line
    assert f"{path}:{line}" in str(err)
    assert words in str(err)


def test_missing_schema_file_names_the_file(tmp_path):
    path = tmp_path / "nowhere.gql"
    with pytest.raises(SchemaFileError, match=r"nowhere\.gql") as caught:
        load_schema(path)
    assert caught.value.line is None


# -- deprecations ----------------------------------------------------------------------------


def test_bundled_deprecations(bundled):
    found = {d.coordinate: d for d in bundled.deprecations()}
    assert found["Company.zipCode"] == Deprecation(
        "field", "Company.zipCode", "Use postalCode; zipCode will be removed on 2027-03-31."
    )
    assert found["CompanyContact.function"].kind == "field"
    assert found["CompanyContact.function"].reason.startswith("Use position;")
    assert found["Query.companyList(offset:)"] == Deprecation(
        "argument", "Query.companyList(offset:)", "Use skip; offset will be removed on 2027-06-30."
    )


def test_deprecations_of_every_kind(tmp_path):
    path = tmp_path / "deprecated.gql"
    path.write_text(
        'type Query { a(x: Int @deprecated(reason: "no x")): Int @deprecated }\n'
        'enum E { ON OFF @deprecated(reason: "gone") }\n'
        'input I { keep: Int, drop: Int @deprecated(reason: "use keep") }\n',
        encoding="utf-8",
    )
    assert load_schema(path).deprecations() == [
        Deprecation("field", "Query.a", "No longer supported"),
        Deprecation("argument", "Query.a(x:)", "no x"),
        Deprecation("enum_value", "E.OFF", "gone"),
        Deprecation("input_field", "I.drop", "use keep"),
    ]


# -- entity detection from the shape of the file (shape variants) -----------------------------

SHAPES = Path(__file__).resolve().parents[1] / "schema_variants" / "shapes"
BUNDLED_STREAMS = ["team", "company", "contact", "mandator", "turnover"]


@pytest.mark.parametrize(
    ("variant", "kind", "rows", "row_cursor"),
    [
        ("connection_nodes.gql", "cursor", "nodes", None),
        ("connection_edges.gql", "cursor", "edges", "cursor"),
        ("cursor_paging.gql", "cursor", "list", "cursor"),
        ("page_paging.gql", "page", "list", None),
        ("offset_first.gql", "offset", "list", None),
        ("renamed_roots.gql", "offset", "list", None),
    ],
)
def test_every_paging_shape_variant_keeps_every_stream(variant, kind, rows, row_cursor):
    schema = load_schema(SHAPES / variant)
    assert [e.stream_name for e in schema.entities()] == BUNDLED_STREAMS
    assert schema.skipped_fields() == []
    for entity in schema.entities()[1:]:
        assert (entity.paging.kind, entity.paging.rows, entity.paging.row_cursor) == (
            kind,
            rows,
            row_cursor,
        ), entity.name
        assert entity.team_filter_field == "teamId"
        assert entity.replication_key == "updatedAt"
        assert entity.writes.shape("create").path[0] == entity.name
    company = schema.entity("company").paging
    if kind == "cursor":
        assert (company.after_arg, company.size_arg) == ("after", "first")
        assert company.page_info == (None if rows == "list" else "pageInfo")
    if kind == "page":
        assert (company.page_arg, company.size_arg, company.first_page) == ("page", "perPage", 1)
    if variant == "offset_first.gql":
        assert (company.offset_arg, company.size_arg) == ("offset", "first")


def test_filters_are_found_by_type_nullable_renamed_or_absent():
    nullable = load_schema(SHAPES / "nullable_filter.gql")
    assert [e.stream_name for e in nullable.entities()] == BUNDLED_STREAMS
    company = nullable.entity("company")
    assert (company.filter_arg, company.filter_type, company.team_filter_field) == (
        "where",
        "CompanyWhere",
        "teamId",
    )
    assert nullable.entity("turnover").filter_type == "TurnoverQueryInput"
    teamless = load_schema(SHAPES / "teamless_filter.gql")
    assert [e.stream_name for e in teamless.entities()] == BUNDLED_STREAMS
    for entity in teamless.entities()[1:]:
        assert entity.filter_arg == "filter"
        assert entity.team_filter_field is None
        assert entity.bound_path == ("updatedSince",)


def test_a_list_the_pager_cannot_drive_is_kept_with_its_refusal():
    schema = load_schema(SHAPES / "unsupported_paging.gql")
    paging = schema.entity("mandator").paging
    assert paging.kind == "unsupported"
    assert paging.problem == (
        "Query.mandatorList(filter: FilterManyMandatorInput!, limit: Int = 100) has paging-like "
        "arguments the tap cannot drive: it pages with skip/offset + limit/first/take, page + "
        "perPage/pageSize, or after + first/limit with a cursor (set stream_plans.mandator.paging)"
    )
    assert schema.entity("company").paging.kind == "offset"


SHAPE_SDL = """
type Query {
  team: Team
  allCompanies(where: CompanyQuery, first: Int!, after: String, orderBy: CompanyOrder): CompanyPage
  company(id: ID!): Company
  tags: [String!]!
  events(take: Int, skip: Int, sort: [EventSort!]): [Event!]!
  logs(page: Int, pageSize: Int, order: LogOrder): [Log]
  notes: [Note!]!
  moreCompanies(offset: Int, limit: Int): [Company!]!
  old(skip: Int, limit: Int): [Note] @deprecated(reason: "gone")
  widgets(skip: Int, limit: Int, filter: WidgetFilter!): [Widget!]!
  backwards(before: String!, last: Int): [Memo!]!
  anonymous: [Thing]
}
type Team { id: ID! }
type Company { id: ID! name: String }
type Event { id: ID! }
type Log { id: ID! }
type Note { id: ID! }
type Memo { id: ID! }
type Widget { id: ID! }
type Thing { name: String }
type PageInfo { hasNextPage: Boolean! endCursor: String }
type CompanyEdge { node: Company! cursor: String! }
type CompanyPage { edges: [CompanyEdge!]! pageInfo: PageInfo! }
input CompanyQuery { teamId: ID, updatedAfter: String }
input WidgetFilter { kind: String! }
enum CompanyOrder { NAME_ASC ID_ASC ID_DESC }
enum EventSort { id_DESC id_ASC }
enum Direction { ASC DESC }
enum LogField { ID CREATED }
input LogOrder { field: LogField! direction: Direction! }
"""


def test_entities_come_from_shapes_not_spellings(tmp_path):
    path = tmp_path / "shapes.gql"
    path.write_text(SHAPE_SDL, encoding="utf-8")
    schema = load_schema(path)
    streams = ["team", "company", "event", "log", "note", "widget", "memo", "thing"]
    assert [e.stream_name for e in schema.entities()] == streams
    company = schema.entity("company")
    assert (company.root_field, company.filter_arg, company.team_filter_field) == (
        "allCompanies",
        "where",
        "teamId",
    )
    assert company.bound_path == ("updatedAfter",)
    assert company.replication_key is None, "Company has no updatedAt"
    assert company.paging == Paging(
        kind="cursor",
        rows="edges",
        after_arg="after",
        size_arg="first",
        row_cursor="cursor",
        page_info="pageInfo",
        sort_arg="orderBy",
        sort_value="ID_ASC",
    )
    event = schema.entity("event").paging
    assert (event.kind, event.offset_arg, event.size_arg) == ("offset", "skip", "take")
    assert (event.sort_arg, event.sort_value) == ("sort", ["id_ASC"])
    log = schema.entity("log").paging
    assert (log.kind, log.page_arg, log.size_arg, log.first_page) == ("page", "page", "pageSize", 1)
    assert (log.sort_arg, log.sort_value) == ("order", None), "an input order is the setting's"
    ordered = {"order": {"arg": "order", "value": {"field": "ID", "direction": "ASC"}}}
    log = schema.with_plans({"log": ordered}).entity("log").paging
    assert log.sort_value == {"field": "ID", "direction": "ASC"}
    assert schema.entity("note").paging.kind == "none"
    memo = schema.entity("memo").paging
    assert memo.kind == "unsupported"
    assert memo.problem == (
        "Query.backwards(before: String!, last: Int) requires backward paging (before/last), "
        "which the tap does not do"
    )
    assert {f.coordinate: f.reason for f in schema.skipped_fields()} == {
        "Query.company": "returns one Company, not a list or a connection of rows",
        "Query.tags": "returns a list of String, not of object rows",
        "Query.moreCompanies": "Query.allCompanies already reads Company",
        "Query.old": "Query.notes already reads Note",
    }
    assert schema.entity("widget").problem == (
        "Query.widgets: argument filter: WidgetFilter! requires kind, which the tap cannot fill "
        "(set stream_plans.widget)"
    )
    assert (
        schema.entity("thing").problem
        == "Query.anonymous: Thing has no id or _id field (set stream_plans.thing.id_field)"
    )


def test_a_single_object_root_field_is_skipped_with_its_reason(tmp_path):
    path = tmp_path / "single.gql"
    path.write_text("type Query { me: User }\ntype User { id: ID! }\n", encoding="utf-8")
    schema = load_schema(path)
    assert schema.entities() == []
    assert [(f.coordinate, f.reason) for f in schema.skipped_fields()] == [
        ("Query.me", "returns one User, not a list or a connection of rows")
    ]


# -- types: unions, interfaces, custom scalars ------------------------------------------------


def test_unions_and_interfaces_are_objects_with_typename_and_every_possible_field():
    schema = load_schema(SHAPES / "unions.gql")
    company = schema.output_json_schema("Company")["properties"]
    party = company["mainParty"]
    assert party["type"] == ["object", "null"]
    assert party["properties"]["__typename"] == {
        "type": "string",
        "enum": ["CompanyContact", "TeamMember"],
    }
    assert {"lastName", "alias", "companyId"} <= set(party["properties"])
    activity = company["activities"]["items"]
    assert activity["type"] == "object"
    assert activity["properties"]["__typename"]["enum"] == ["Visit", "Call"]
    assert {"id", "at", "durationMinutes", "phoneNumber", "answered"} == (
        set(activity["properties"]) - {"__typename"}
    )


def test_custom_scalars_follow_the_default_mapping_and_the_setting():
    schema = load_schema(SHAPES / "json_scalar.gql")
    assert schema.custom_scalars() == ["DateTime", "Date", "JSON"]
    fields = schema.output_json_schema("Company")["properties"]
    assert fields["customFields"]["type"] == [
        "object",
        "array",
        "string",
        "number",
        "boolean",
        "null",
    ]
    assert fields["createdAt"] == {
        "type": "string",
        "format": "date-time",
        "description": "[reconstruction]",
    }
    mapped = schema.output_json_schema("Company", scalar_types={"JSON": "object", "Date": "string"})
    assert mapped["properties"]["customFields"]["type"] == ["object", "null"]
    create = schema.input_json_schema("CompanyCreateInput", scalar_types={"JSON": "object"})
    assert create["properties"]["customFields"]["type"] == ["object", "null"]
    with pytest.raises(ConfigError, match=r"scalar_types: 'Money' is not a custom scalar of"):
        schema.scalar_kinds({"Money": "number"})
    with pytest.raises(ConfigError, match=r"scalar_types: 'JSON' maps to 'blob'; use one of"):
        schema.scalar_kinds({"JSON": "blob"})
