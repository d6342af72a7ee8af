"""moovago_api.write_plan and the write side of moovago_api.documents: mutation shapes read
from the schema file, aliased batch documents, record ids from every payload shape, refusals as
one line, match-key problems.

Documents are executed by graphql-core against the variant they were built from (resolvers that
record what they receive), so a wrong variable layout fails coercion, not only validation.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    execute_sync,
    print_ast,
    validate,
)

from moovago_api import documents
from moovago_api.documents import (
    Alias,
    WriteOp,
    batch_document,
    check_writes,
)
from moovago_api.errors import SchemaFileError
from moovago_api.plan import EntityWrites, MutationShape, MutationShapeError, Payload
from moovago_api.schema import DEFAULT_SCHEMA_PATH, MoovagoSchema, load_schema
from target_moovago.remote import match_key_problems, unclaimed_mutations
from target_moovago.sinks import input_schema

SHAPES = Path(__file__).resolve().parents[1] / "schema_variants" / "shapes"
WRITE_VARIANTS = [
    "toplevel_mutations",
    "two_arg_update",
    "data_argument",
    "record_payload",
    "id_payload",
    "deprecated_key",
    "readonly_parent",
    "no_default_key",
]
# Per variant: the payload every mutation returns, and what each entity's update looks like.
PAYLOADS = {"record_payload": Payload.RECORD, "id_payload": Payload.ID}


def variant(name: str) -> MoovagoSchema:
    return load_schema(DEFAULT_SCHEMA_PATH if name == "bundled" else SHAPES / f"{name}.gql")


def test_every_write_variant_is_on_disk():
    assert sorted(p.stem for p in SHAPES.glob("*.gql") if p.stem in WRITE_VARIANTS) == sorted(
        WRITE_VARIANTS
    )


# -- a server made of graphql-core resolvers ----------------------------------------------------

_counter = itertools.count(1)


def sample(gql_type: GraphQLInputType, tag: str) -> Any:
    """A value graphql-core accepts for this input type, distinctive enough to search for."""
    if isinstance(gql_type, GraphQLNonNull):
        return sample(gql_type.of_type, tag)
    if isinstance(gql_type, GraphQLList):
        return [sample(gql_type.of_type, tag)]
    if isinstance(gql_type, GraphQLEnumType):
        return next(iter(gql_type.values))
    if isinstance(gql_type, GraphQLInputObjectType):
        return {
            n: sample(f.type, tag)
            for n, f in gql_type.fields.items()
            if isinstance(f.type, GraphQLNonNull)
        }
    assert isinstance(gql_type, GraphQLScalarType)
    return {
        "Int": 41,
        "Float": 12.75,
        "Boolean": True,
        "Date": "2026-03-04",
        "DateTime": "2026-03-04T05:06:07.000Z",
    }.get(gql_type.name, f"VAL-{tag}-{next(_counter)}")


def data_for(schema: MoovagoSchema, type_name: str | None, *, required: bool, tag: str) -> dict:
    if type_name is None:
        return {}
    gql_type = schema.graphql.get_type(type_name)
    assert isinstance(gql_type, GraphQLInputObjectType)
    if required:
        values = {
            n: sample(f.type, tag)
            for n, f in gql_type.fields.items()
            if isinstance(f.type, GraphQLNonNull) and n != "id"
        }
        if values:
            return values
    name = next(
        n for n, f in gql_type.fields.items() if n != "id" and isinstance(f.type, GraphQLScalarType)
    )
    return {name: sample(gql_type.fields[name].type, tag)}


class Server:
    """Root value answering every mutation of one entity; records the calls it received."""

    def __init__(self, writes: EntityWrites) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.root: dict[str, Any] = {}
        for kind, shape in writes.shapes.items():
            holder = self.root
            if len(shape.path) == 2:
                holder = self.root.setdefault(shape.path[0], {})
            holder[shape.path[-1]] = self._resolver(kind, shape)

    def _resolver(self, kind: str, shape: MutationShape) -> Any:
        def resolve(_info: Any, **args: Any) -> Any:
            self.calls.append((kind, args))
            if kind == "create":
                rid = f"new-{len(self.calls)}"
            elif shape.id_arg:
                rid = args[shape.id_arg]
            else:
                rid = args[shape.input_arg][shape.id_field]
            if shape.payload is Payload.SCALAR:
                return rid
            if shape.payload is Payload.BOOLEAN:
                return True
            if shape.payload is Payload.NESTED:
                return {shape.payload_field: {"id": rid}}
            return {"recordId": rid, "id": rid}

        return resolve

    def run(self, schema: MoovagoSchema, document: Any, variables: dict) -> dict:
        result = execute_sync(schema.graphql, document, self.root, variable_values=variables)
        assert result.errors is None, result.errors
        assert result.data is not None
        return result.data


def round_trip(schema: MoovagoSchema, stream: str) -> None:
    """Build create/update/delete for `stream`, check the document, execute it, read the ids."""
    entity = schema.entity(stream)
    writes = check_writes(schema, entity)
    assert entity.writes is not None
    assert entity.writes.writable
    create, update = writes.shape("create"), writes.shape("update")
    ops = [
        WriteOp("create", None, data_for(schema, create.data_type, required=True, tag="c")),
        WriteOp("update", "rec-7", data_for(schema, update.data_type, required=False, tag="u")),
        WriteOp("delete", "rec-9"),
        WriteOp("create", None, data_for(schema, create.data_type, required=True, tag="c2")),
    ]
    document, variables, aliases = batch_document(schema, entity, ops)
    assert validate(schema.graphql, document) == []
    text = print_ast(document)
    # values only in variables: none of the sent strings and numbers is in the document text
    for op in ops:
        for value in (*op.data.values(), op.record_id):
            if isinstance(value, str | float | int) and value is not True:
                assert str(value) not in text
    assert [a.name for a in aliases] == ["c0", "u1", "d2", "c3"]
    assert len({a.path for a in aliases}) == 4
    server = Server(writes)
    data = server.run(schema, document, variables)
    # the server received exactly the values of each op, in the layout the file declares
    received = {kind_args[0]: [] for kind_args in server.calls}
    for kind, args in server.calls:
        received[kind].append(args)
    first_create = received["create"][0][create.input_arg]
    assert first_create == ops[0].data
    update_args = received["update"][0]
    if update.id_arg:
        assert update_args[update.id_arg] == "rec-7"
        assert update_args[update.input_arg] == ops[1].data
    elif update.data_field:
        assert update_args[update.input_arg] == {"id": "rec-7", update.data_field: ops[1].data}
    else:
        assert update_args[update.input_arg] == {"id": "rec-7", **ops[1].data}
    delete = writes.shape("delete")
    delete_args = received["delete"][0]
    sent = delete_args[delete.id_arg] if delete.id_arg else delete_args[delete.input_arg]["id"]
    assert sent == "rec-9"
    ids = [
        _record_id(entity, a.kind, a.result(data), sent_id=op.record_id)
        for a, op in zip(aliases, ops, strict=True)
    ]
    assert ids[1:3] == ["rec-7", "rec-9"]
    assert ids[0] is not None
    assert ids[0].startswith("new-")
    assert ids[3] is not None
    assert ids[3].startswith("new-")
    assert ids[3] != ids[0]


# -- every write variant ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bundled", *WRITE_VARIANTS])
def test_every_writable_entity_round_trips(name):
    schema = variant(name)
    writable = [e.stream_name for e in schema.entities() if e.writes and e.writes.writable]
    expected = {"company", "contact", "mandator", "turnover"}
    if name == "readonly_parent":
        expected.discard("company")
    if name == "no_default_key":
        expected.add("visit")
    assert set(writable) == expected
    for stream in writable:
        round_trip(schema, stream)


@pytest.mark.parametrize("path", sorted(SHAPES.glob("*.gql")), ids=lambda p: p.stem)
def test_every_shape_variant_on_disk_writes_what_it_declares(path):
    """The READ variants too: whatever their read side, their mutations build and round-trip."""
    schema = load_schema(path)
    if "contact" not in [e.stream_name for e in schema.entities()]:
        pytest.skip(f"the read side does not detect the entities of {path.name}")
    writable = [e.stream_name for e in schema.entities() if e.writes and e.writes.writable]
    assert "contact" in writable
    for stream in writable:
        round_trip(schema, stream)


@pytest.mark.parametrize("name", ["bundled", *WRITE_VARIANTS])
def test_shapes_are_read_as_declared(name):
    schema = variant(name)
    writes = schema.entity("contact").writes
    assert writes is not None
    assert not writes.refused
    create, update, delete = (writes.shape(k) for k in ("create", "update", "delete"))
    payload = PAYLOADS.get(name, Payload.RECORD_ID)
    assert {create.payload, update.payload, delete.payload} == {payload}
    if name == "toplevel_mutations":
        assert [s.path for s in (create, update, delete)] == [
            ("createCompanyContact",),
            ("updateCompanyContact",),
            ("deleteCompanyContact",),
        ]
        assert create.coordinate == "Mutation.createCompanyContact"
    else:
        assert create.path == ("companyContact", "create")
        assert create.coordinate == "Mutation.companyContact.create"
    arg = "data" if name == "data_argument" else "input"
    assert create.input_arg == arg
    assert create.data_type == "CompanyContactCreateInput"
    assert update.data_type == "CompanyContactUpdateDataInput"
    if name == "two_arg_update":
        assert (update.id_arg, update.input_arg, update.id_field) == ("id", "input", None)
    else:
        assert (update.id_arg, update.input_arg) == (None, arg)
        assert (update.id_field, update.data_field) == ("id", "input")
    assert (delete.id_field, delete.data_type, delete.fields) == ("id", None, ())
    # writable fields, what a create must give, and types as the file spells them
    assert [f.name for f in create.fields if f.required] == ["companyId", "lastName"]
    assert "position" in [f.name for f in create.fields]
    assert "function" not in [f.name for f in create.fields]
    types = {f.name: f.type for f in create.fields}
    assert (types["companyId"], types["civility"]) == ("ID!", "Civility")
    assert [f.name for f in update.fields if f.required] == []


def test_the_document_for_two_arguments_has_one_variable_per_argument():
    schema = variant("two_arg_update")
    entity = schema.entity("company")
    ops = [WriteOp("update", "42", {"note": "n"}), WriteOp("update", "43", {"note": "m"})]
    document, variables, _ = batch_document(schema, entity, ops)
    assert variables == {"i0_id": "42", "i0": {"note": "n"}, "i1_id": "43", "i1": {"note": "m"}}
    assert "u0: update(id: $i0_id, input: $i0)" in print_ast(document)


def test_the_bundled_document_is_the_vendor_layout():
    schema = variant("bundled")
    document, variables, aliases = batch_document(
        schema, schema.entity("company"), [WriteOp("update", "X1", {"note": "hello"})]
    )
    assert print_ast(document) == (
        "mutation TargetMoovagoCompanyBatch($i0: CompanyUpdateInput!) {\n"
        "  company {\n"
        "    u0: update(input: $i0) {\n"
        "      recordId\n"
        "    }\n"
        "  }\n"
        "}"
    )
    assert variables == {"i0": {"id": "X1", "input": {"note": "hello"}}}
    assert aliases == [Alias("u0", "update", ("company", "u0"))]


def test_readonly_parent_is_read_only_and_says_so_in_one_line():
    schema = variant("readonly_parent")
    company = schema.entity("company")
    assert company.writes is not None
    assert not company.writes.writable
    with pytest.raises(MutationShapeError) as caught:
        check_writes(schema, company)
    message = str(caught.value)
    assert "\n" not in message
    assert "no create mutation for Company" in message
    assert str(schema.path) in message
    assert "company.create" in message
    assert "createCompany" in message
    assert isinstance(caught.value, SchemaFileError)
    with pytest.raises(MutationShapeError, match="no create mutation"):
        batch_document(schema, company, [WriteOp("create", None, {"name": "x"})])
    check_writes(schema, schema.entity("contact"))


def test_aliases_find_their_results_and_their_errors():
    alias = Alias("u3", "update", ("company", "u3"))
    assert alias.result({"company": {"u3": {"recordId": "9"}}}) == {"recordId": "9"}
    assert alias.result({"company": None}) is None
    assert alias.result(None) is None
    assert alias.owns(["company", "u3", "recordId"])
    assert not alias.owns(["company", "u30"])
    assert Alias("c0", "create", ("c0",)).owns(["c0"])


def test_no_result_or_an_empty_id_confirms_nothing():
    schema = variant("bundled")
    entity = schema.entity("company")
    for result in (None, {}, {"recordId": None}, {"recordId": ""}, "x", {"recordId": {"a": 1}}):
        assert _record_id(entity, "create", result) is None
    assert _record_id(entity, "create", {"recordId": 12}) == "12"
    with pytest.raises(ValueError, match="not a write"):
        _record_id(entity, "unchanged", {})


# -- shapes the variants do not hold ------------------------------------------------------------

HEAD = """
type Query { thingList(filter: FilterManyThingInput!): [Thing!]! }
input FilterManyThingInput { teamId: ID! }
type Thing { id: ID!, name: String!, code: String, old: String @deprecated(reason: "gone soon") }
input ThingInput { name: String!, code: String }
input ThingPatch { name: String, code: String }
"""


def load_sdl(tmp_path: Path, body: str) -> MoovagoSchema:
    path = tmp_path / f"s{next(_counter)}.gql"
    path.write_text(HEAD + body, encoding="utf-8")
    return load_schema(path)


def test_suffix_names_nested_payload_scalar_id_boolean_delete(tmp_path):
    schema = load_sdl(
        tmp_path,
        """
        type ThingResult { thing: Thing, errors: [String!] }
        type Mutation {
          thingCreate(data: ThingInput!): ThingResult!
          thingUpdate(id: ID!, patch: ThingPatch!): ID
          thingDelete(id: ID!): Boolean!
        }
        """,
    )
    writes = schema.entity("thing").writes
    assert writes is not None
    create, update, delete = (writes.shape(k) for k in ("create", "update", "delete"))
    assert (create.path, create.payload, create.payload_field) == (
        ("thingCreate",),
        Payload.NESTED,
        "thing",
    )
    assert (update.id_arg, update.input_arg, update.payload) == ("id", "patch", Payload.SCALAR)
    assert (delete.id_arg, delete.input_arg, delete.payload) == ("id", None, Payload.BOOLEAN)
    round_trip(schema, "thing")
    assert _record_id(writes, "delete", False, sent_id="5") is None


def test_flat_update_input_leaves_the_id_out_of_the_writable_fields(tmp_path):
    schema = load_sdl(
        tmp_path,
        """
        input ThingUpdate { id: ID!, name: String, code: String }
        input ThingRemove { id: ID!, reason: String }
        type Mutation {
          createThing(input: ThingInput!): Thing
          updateThing(input: ThingUpdate!): Thing
          deleteThing(input: ThingRemove!): Thing
        }
        """,
    )
    entity = schema.entity("thing")
    writes = check_writes(schema, entity)
    update = writes.shape("update")
    assert (update.id_field, update.data_field, update.data_type) == ("id", None, "ThingUpdate")
    assert [f.name for f in update.fields] == ["name", "code"]
    json_schema = input_schema(schema, writes.shape("update"))
    assert set(json_schema["properties"]) == {"name", "code"}
    assert "required" not in json_schema
    assert input_schema(schema, writes.shape("create"))["required"] == ["name"]
    assert update.arguments("7", {"name": "n"}) == {"input": {"id": "7", "name": "n"}}
    round_trip(schema, "thing")


REFUSALS = [
    (
        "type Mutation { createThing(name: String!): Thing }",
        "create",
        "Mutation.createThing",
        "takes no input object argument",
    ),
    (
        "type Mutation { createThing(input: ThingInput!, teamId: ID!): Thing }",
        "create",
        "Mutation.createThing",
        "requires arguments the target cannot give (teamId)",
    ),
    (
        "type Mutation { createThing(input: ThingInput!): [Thing] }",
        "create",
        "Mutation.createThing",
        "returns a list",
    ),
    (
        "type Mutation { createThing(input: ThingInput!): Boolean }",
        "create",
        "Mutation.createThing",
        "returns Boolean, which does not name the record written",
    ),
    (
        "type Out { ok: Boolean }\ntype Mutation { createThing(input: ThingInput!): Out }",
        "create",
        "Mutation.createThing",
        "has no recordId, no id and no Thing field",
    ),
    (
        "type Mutation { createThing(input: ThingInput!): Thing\n"
        "  updateThing(input: ThingPatch!): Thing }",
        "update",
        "Mutation.updateThing",
        "neither an `id` argument, nor an input object with an `id` field",
    ),
    (
        "input Del { id: ID!, confirm: Boolean! }\n"
        "type Mutation { createThing(input: ThingInput!): Thing\n"
        "  deleteThing(input: Del!): Thing }",
        "delete",
        "Mutation.deleteThing",
        "requires fields besides id (confirm)",
    ),
    (
        "type Mutation { createThing(a: ThingInput!, b: ThingPatch!): Thing }",
        "create",
        "Mutation.createThing",
        "several input objects (a, b)",
    ),
    (
        "type Mutation { createThing(input: ThingInput!): Thing "
        '@deprecated(reason: "use addThing") }',
        "create",
        "Mutation.createThing",
        "deprecated (use addThing)",
    ),
    (
        "type NS { create(input: ThingInput!): Thing }\ntype Mutation { thing(teamId: ID!): NS }",
        "create",
        "Mutation.thing.create",
        "Mutation.thing requires arguments the target cannot give (teamId)",
    ),
]


@pytest.mark.parametrize(("body", "kind", "coordinate", "what"), REFUSALS)
def test_unusable_mutations_are_one_line_naming_mutation_and_file(
    tmp_path, body, kind, coordinate, what
):
    schema = load_sdl(tmp_path, body)
    entity = schema.entity("thing")
    assert entity.writes is not None
    assert kind in entity.writes.refused
    with pytest.raises(MutationShapeError) as caught:
        check_writes(schema, entity, [kind])
    message = str(caught.value)
    assert "\n" not in message
    assert f"{coordinate} in {schema.path}" in message
    assert what in message
    assert caught.value.path == str(schema.path)


def test_an_invalid_document_is_refused_in_one_line(tmp_path, monkeypatch):
    schema = load_sdl(tmp_path, "type Mutation { createThing(input: ThingInput!): Thing }")
    entity = schema.entity("thing")
    check_writes(schema, entity, ["create"])
    # a validation error graphql-core reports (as when a file changes under a built shape)
    from graphql import GraphQLError

    monkeypatch.setattr(documents, "validate", lambda *_: [GraphQLError("Unknown type X.")])
    with pytest.raises(MutationShapeError) as caught:
        check_writes(schema, entity, ["create"])
    message = str(caught.value)
    assert "\n" not in message
    assert "Mutation.createThing" in message
    assert str(schema.path) in message
    assert "Unknown type X." in message


def test_unclaimed_mutations_are_named(tmp_path):
    schema = load_sdl(
        tmp_path,
        "type Mutation { createThing(input: ThingInput!): Thing\n  sendReport(id: ID!): Boolean }",
    )
    assert unclaimed_mutations(schema, schema.entities()) == [
        f"Mutation.sendReport in {schema.path} is not used: it matches no entity's "
        "create, update or delete"
    ]


def test_the_module_has_no_assert():
    source = Path(documents.__file__).read_text(encoding="utf-8")
    assert "assert " not in source


# -- match keys ---------------------------------------------------------------------------------


def test_a_deprecated_default_key_is_named_with_the_setting_and_an_example():
    schema = variant("deprecated_key")
    problems = match_key_problems(schema, schema.entity("company"), [["customerCode"]])
    assert problems == [
        f"match key customerCode of stream 'company': Company.customerCode is deprecated in "
        f"{schema.path} (customerCode will be removed on 2027-09-30.); "
        'set match_keys, e.g. {"company": ["name"]}'
    ]
    bundled = variant("bundled")
    assert match_key_problems(bundled, bundled.entity("company"), [["customerCode"]]) == []


def test_the_bundled_default_keys_have_no_problem():
    schema = variant("bundled")
    keys = {
        "company": [["customerCode"]],
        "contact": [["companyId", "email"]],
        "mandator": [["code"], ["name"]],
        "turnover": [["companyId", "mandatorId?", "startDate", "endDate"]],
    }
    for stream, specs in keys.items():
        assert match_key_problems(schema, schema.entity(stream), specs) == [], stream


def test_an_entity_without_a_key():
    schema = variant("no_default_key")
    (problem,) = match_key_problems(schema, schema.entity("visit"), [])
    assert problem == (
        "stream 'visit' has no match key: rows without an id cannot be matched to existing "
        "Visit records (they are rejected); "
        'set match_keys, e.g. {"visit": ["companyId", "memberId", "visitedAt"]}'
    )


def test_a_key_that_is_not_writable_absent_or_not_in_the_input():
    schema = variant("bundled")
    company = schema.entity("company")
    (not_writable,) = match_key_problems(schema, company, [["createdAt"]])
    assert "Company.createdAt is not writable" in not_writable
    assert "CompanyCreateInput has no 'createdAt'" in not_writable
    assert 'match_keys, e.g. {"company": ["name"]}' in not_writable
    (absent,) = match_key_problems(schema, company, [["erpCode"]])
    assert "Company has no field 'erpCode'" in absent
    assert "match_keys" in absent
    (no_column,) = match_key_problems(schema, company, [["customerCode"]], written={"name"})
    assert "the input has no column for 'customerCode'" in no_column
    assert "match_keys" in no_column
    # an optional part of a key may be missing from the input
    turnover = schema.entity("turnover")
    keys = [["companyId", "mandatorId?", "startDate", "endDate"]]
    written = {"companyId", "startDate", "endDate", "amount"}
    assert match_key_problems(schema, turnover, keys, written=written) == []


def test_a_read_only_entity_key_is_only_read():
    schema = variant("readonly_parent")
    # company keys resolve a contact's parent by natural key: reading them is enough
    assert match_key_problems(schema, schema.entity("company"), [["customerCode"]]) == []


def test_payload_errors_are_selected_and_an_entity_id_argument_is_the_id(tmp_path):
    schema = load_sdl(
        tmp_path,
        """
        type UserError { field: String, message: String! }
        type ThingPayload { thing: Thing, userErrors: [UserError!] }
        type Mutation {
          createThing(input: ThingInput!): ThingPayload!
          deleteThing(thingId: ID!): ThingPayload!
        }
        """,
    )
    entity = schema.entity("thing")
    writes = check_writes(schema, entity, ["create", "delete"])
    create, delete = writes.shape("create"), writes.shape("delete")
    assert create.errors_field == "userErrors"
    assert (delete.id_arg, delete.input_arg) == ("thingId", None)
    ops = [WriteOp("create", None, {"name": "n"}), WriteOp("delete", "T9")]
    document, variables, aliases = batch_document(schema, entity, ops)
    assert variables == {"i0": {"name": "n"}, "i1_thingId": "T9"}
    text = print_ast(document)
    assert "userErrors {\n      message\n    }" in text
    assert "d1: deleteThing(thingId: $i1_thingId)" in text
    refused = {"thing": None, "userErrors": [{"message": "name already taken"}]}
    assert create.record_id(refused) is None
    assert create.error_messages(refused) == ["name already taken"]
    assert create.error_messages({"thing": {"id": "1"}, "userErrors": None}) == []
    assert _record_id(entity, "create", aliases[0].result({"c0": {"thing": {"id": "1"}}})) == "1"


def _record_id(entity, kind, result, *, sent_id=None):
    """The id one aliased call wrote, read by the plan's write side."""
    writes = entity if isinstance(entity, EntityWrites) else entity.writes
    return writes.shape(kind).record_id(result, sent_id=sent_id)
