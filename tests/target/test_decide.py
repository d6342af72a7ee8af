"""Deciding rows against an index of remote records (pure, no server)."""

from __future__ import annotations

import pytest

from moovago_api.schema import load_schema
from moovago_api.write_plan import describe_writes
from target_moovago.decide import Decider, InputValidator, Kind, Mode, Row
from target_moovago.index import DEFAULT_MATCH_KEYS, FieldMapper, KeySpec, RemoteIndex


@pytest.fixture(scope="module")
def schema():
    return load_schema()


def sent(schema, action) -> dict:
    """The mutation arguments the writer sends for `action` (its public path)."""
    shape = describe_writes(schema, schema.entity("company")).shape(action.kind)
    return shape.arguments(action.record_id, action.data)


def make_decider(schema, index, **kwargs) -> Decider:
    return Decider(
        index=index,
        create_validator=InputValidator(schema.input_json_schema("CompanyCreateInput")),
        update_validator=InputValidator(schema.input_json_schema("CompanyUpdateDataInput")),
        **kwargs,
    )


def rows(schema, *records) -> list[Row]:
    mapper = FieldMapper(schema.input_json_schema("CompanyCreateInput")["properties"])
    return [Row(n, r, mapper.convert(r)) for n, r in enumerate(records)]


# Tests that rely on keys matching across case opt in, as a stream would with match_normalize.
CASE = ("trim", "case")


def company_index(*records, normalize=()) -> RemoteIndex:
    specs = [KeySpec.parse(k, normalize) for k in DEFAULT_MATCH_KEYS["company"]]
    index = RemoteIndex(["name", "city"], specs)
    for record in records:
        index.add(record["id"], record)
    return index


def kinds(actions):
    return [a.kind for a in actions]


def test_no_match_creates_one_match_updates_only_changed_fields(schema):
    index = company_index({"id": "1", "customerCode": "C1", "name": "Acme", "city": "Niort"})
    actions = make_decider(schema, index).decide(
        rows(
            schema,
            {"customer_code": "C1", "name": "Acme", "city": "Paris"},
            {"customer_code": "C2", "name": "Beta"},
        )
    )
    assert kinds(actions) == [Kind.UPDATE, Kind.CREATE]
    assert sent(schema, actions[0]) == {"input": {"id": "1", "input": {"city": "Paris"}}}
    assert sent(schema, actions[1]) == {"input": {"customerCode": "C2", "name": "Beta"}}


def test_unchanged_row_costs_nothing(schema):
    index = company_index({"id": "1", "customerCode": "C1", "name": "Acme", "city": "Niort"})
    actions = make_decider(schema, index).decide(
        rows(schema, {"customerCode": "C1", "name": "Acme", "city": "Niort"})
    )
    assert kinds(actions) == [Kind.UNCHANGED]


def test_id_updates_that_record_and_unknown_id_is_rejected(schema):
    index = company_index({"id": "1", "customerCode": "C1", "name": "Acme", "city": "Niort"})
    actions = make_decider(schema, index).decide(
        rows(schema, {"id": "1", "name": "Acme SA"}, {"id": "404", "name": "Ghost"})
    )
    assert kinds(actions) == [Kind.UPDATE, Kind.REJECT]
    assert actions[1].field == "id"


def test_two_remote_matches_are_ambiguous(schema):
    index = company_index(
        {"id": "1", "customerCode": "C1", "name": "A"},
        {"id": "2", "customerCode": "c1", "name": "B"},
        normalize=CASE,
    )
    (action,) = make_decider(schema, index).decide(
        rows(schema, {"customerCode": "C1", "name": "X"})
    )
    assert action.kind is Kind.REJECT
    assert "ambiguous" in action.reason
    assert action.field == "customerCode"


def test_later_row_with_same_key_supersedes_the_earlier(schema):
    actions = make_decider(schema, company_index(normalize=CASE)).decide(
        rows(schema, {"customerCode": "C9", "name": "old"}, {"customerCode": "c9", "name": "new"})
    )
    assert kinds(actions) == [Kind.SUPERSEDED, Kind.CREATE]
    assert actions[1].data["name"] == "new"


def test_row_without_id_or_key_is_rejected_in_upsert_but_created_in_create_only(schema):
    records = ({"name": "No code"},)
    (upsert,) = make_decider(schema, company_index()).decide(rows(schema, *records))
    assert upsert.kind is Kind.REJECT
    assert upsert.field == "customerCode"
    # Keyless creates are an opt-in now (allow_keyless_creates): a resume may duplicate them.
    (create,) = make_decider(
        schema, company_index(), mode=Mode.CREATE_ONLY, keyless_creates=True
    ).decide(rows(schema, *records))
    assert create.kind is Kind.CREATE


def test_modes(schema):
    index = company_index({"id": "1", "customerCode": "C1", "name": "Acme"})
    records = ({"customerCode": "C1", "name": "Acme 2"}, {"customerCode": "C2", "name": "New"})
    create_only = make_decider(schema, index, mode=Mode.CREATE_ONLY).decide(rows(schema, *records))
    assert kinds(create_only) == [Kind.REJECT, Kind.CREATE]
    update_only = make_decider(schema, index, mode=Mode.UPDATE_ONLY).decide(rows(schema, *records))
    assert kinds(update_only) == [Kind.UPDATE, Kind.REJECT]


def test_deletes_follow_hard_delete(schema):
    index = company_index({"id": "1", "customerCode": "C1", "name": "Acme"})
    record = {"customerCode": "C1", "name": "Acme", "_sdc_deleted_at": "2026-01-01T00:00:00Z"}
    (soft,) = make_decider(schema, index).decide(rows(schema, record))
    assert soft.kind is Kind.SKIP_DELETE
    (hard,) = make_decider(schema, index, hard_delete=True).decide(rows(schema, record))
    assert hard.kind is Kind.DELETE
    assert sent(schema, hard) == {"input": {"id": "1"}}


def test_invalid_create_is_rejected_naming_the_field(schema):
    (action,) = make_decider(schema, company_index()).decide(
        rows(schema, {"customerCode": "C5", "name": None, "status": "FRIEND"})
    )
    assert action.kind is Kind.REJECT
    assert action.field in {"name", "status"}
    assert "name" in action.reason
    assert "status" in action.reason


def test_optional_key_part_may_be_null():
    spec = KeySpec.parse(["companyId", "mandatorId?", "startDate"])
    assert spec.value({"companyId": "c", "startDate": "2026-01-01"}) == ("c", None, "2026-01-01")
    assert spec.value({"mandatorId": "m", "startDate": "2026-01-01"}) is None


def test_index_keeps_shared_keys_until_one_record_is_left():
    index = company_index(
        {"id": "1", "customerCode": "C1", "name": "A"},
        {"id": "2", "customerCode": "C1", "name": "B"},
        {"id": "3", "customerCode": "C1", "name": "C"},
        normalize=CASE,
    )
    assert index.find({"customerCode": "C1"})[1] == ["1", "2", "3"]
    index.remove("2")
    assert index.find({"customerCode": "C1"})[1] == ["1", "3"]
    index.update("3", {"customerCode": "C3"})
    assert index.find({"customerCode": "C1"})[1] == ["1"]
    assert index.lookup_field("customerCode", "c3") == ["3"]


def test_index_follows_updates_and_removals():
    index = company_index({"id": "1", "customerCode": "C1", "name": "A"}, normalize=CASE)
    index.update("1", {"customerCode": "C2"})
    assert index.find({"customerCode": "C1"})[1] == []
    assert index.find({"customerCode": "c2"})[1] == ["1"]
    index.remove("1")
    assert index.find({"customerCode": "C2"})[1] == []
    assert len(index) == 0


def test_a_null_clears_only_clearable_fields(schema):
    index = RemoteIndex(
        ["name", "city", "ownerIds"], [KeySpec.parse(k) for k in DEFAULT_MATCH_KEYS["company"]]
    )
    index.add("1", {"customerCode": "C1", "name": "Acme", "city": "Niort", "ownerIds": ["u1"]})
    decider = make_decider(schema, index, clearable=frozenset({"city"}))
    [kept] = decider.decide(rows(schema, {"customerCode": "C1", "name": None, "ownerIds": None}))
    assert kept.kind is Kind.UNCHANGED
    [cleared] = decider.decide(rows(schema, {"customerCode": "C1", "ownerIds": None, "city": None}))
    assert cleared.kind is Kind.UPDATE
    assert sent(schema, cleared) == {"input": {"id": "1", "input": {"city": None}}}
