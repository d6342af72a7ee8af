"""Row-level faults stay row-level (issue 13 item 3): NaN and Infinity, `_sdc_deleted_at`
that is not a timestamp, two spellings of one field with different values, `''` in fields
that do not take free text. Mapping and deciding only, no server."""

from __future__ import annotations

import decimal

import pytest

from moovago_api.schema import load_schema
from target_moovago.decide import Decider, InputValidator, Kind, Row
from target_moovago.index import (
    DEFAULT_MATCH_KEYS,
    FieldMapper,
    KeySpec,
    RemoteIndex,
    id_input_fields,
)


@pytest.fixture(scope="module")
def schema():
    return load_schema()


def mapper(schema, entity="Company", **kwargs) -> FieldMapper:
    create = f"{entity}CreateInput"
    update = f"{entity}UpdateDataInput"
    props = {
        **schema.input_json_schema(update)["properties"],
        **schema.input_json_schema(create)["properties"],
    }
    ids = id_input_fields(schema.graphql, [create, update])
    return FieldMapper(props, id_fields=ids, **kwargs)


def plan(schema, *records, hard_delete=True, index=None, **kwargs):
    mapped = mapper(schema, **kwargs)
    rows = [Row(n, r, mapped.convert(r)) for n, r in enumerate(records, start=1)]
    if index is None:
        index = RemoteIndex(["name"], [KeySpec.parse(k) for k in DEFAULT_MATCH_KEYS["company"]])
    return Decider(
        index=index,
        create_validator=InputValidator(schema.input_json_schema("CompanyCreateInput")),
        update_validator=InputValidator(schema.input_json_schema("CompanyUpdateDataInput")),
        hard_delete=hard_delete,
    ).decide(rows)


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"coordinates": {"latitude": float("nan"), "longitude": 1.0}}, "coordinates.latitude"),
        ({"coordinates": {"latitude": 1.0, "longitude": float("-inf")}}, "coordinates.longitude"),
        ({"coordinates": {"latitude": decimal.Decimal("NaN"), "longitude": 1}}, "coordinates"),
        ({"name": float("inf")}, "name"),
    ],
)
def test_nan_and_infinity_reject_their_row_naming_the_field(schema, record, field):
    actions = plan(
        schema,
        {"customerCode": "OK-1", "name": "a"},
        {"customerCode": "BAD", "name": "b", **record},
        {"customerCode": "OK-2", "name": "c", "coordinates": {"latitude": 1.5, "longitude": 2}},
    )
    assert [a.kind for a in actions] == [Kind.CREATE, Kind.REJECT, Kind.CREATE]
    assert actions[1].field.startswith(field)
    assert "NaN and Infinity" in actions[1].reason


@pytest.mark.parametrize("value", ["NULL", "false", "0", "2026-01-01", "yesterday", True, 0, [1]])
def test_a_deleted_at_that_is_not_a_timestamp_rejects_the_row(schema, value):
    index = RemoteIndex(["name"], [KeySpec.parse(["customerCode"])])
    index.add("1", {"customerCode": "C1", "name": "Keep me"})
    (action,) = plan(
        schema, {"customerCode": "C1", "name": "Keep me", "_sdc_deleted_at": value}, index=index
    )
    assert action.kind is Kind.REJECT
    assert action.field == "_sdc_deleted_at"
    assert "not a timestamp" in action.reason


@pytest.mark.parametrize("value", ["2026-01-01T10:00:00Z", "2026-01-01T10:00:00+02:00"])
def test_a_timestamp_deletes(schema, value):
    index = RemoteIndex(["name"], [KeySpec.parse(["customerCode"])])
    index.add("1", {"customerCode": "C1", "name": "Gone"})
    (action,) = plan(schema, {"customerCode": "C1", "_sdc_deleted_at": value}, index=index)
    assert (action.kind, action.record_id) == (Kind.DELETE, "1")


@pytest.mark.parametrize("value", [None, ""])
def test_null_or_empty_deleted_at_means_not_deleted(schema, value):
    (action,) = plan(schema, {"customerCode": "C1", "name": "n", "_sdc_deleted_at": value})
    assert action.kind is Kind.CREATE


def test_conflicting_spellings_reject_the_row_naming_the_columns(schema):
    record = {"customerCode": "C1", "name": "n", "postal_code": "79000", "postalCode": "75001"}
    actions = plan(schema, record, {"customerCode": "C2", "name": "ok", "postal_code": "1"})
    assert [a.kind for a in actions] == [Kind.REJECT, Kind.CREATE]
    assert actions[0].field == "postal_code,postalCode"
    assert "'79000'" in actions[0].reason
    assert "'75001'" in actions[0].reason


def test_three_spellings_with_one_different_value_are_refused(schema):
    record = {
        "customerCode": "C1",
        "name": "n",
        "postal_code": "79000",
        "postalCode": "79000",
        "POSTAL-CODE": "13000",
    }
    (action,) = plan(schema, record)
    assert action.kind is Kind.REJECT
    assert "POSTAL-CODE" in action.field


def test_same_value_under_two_spellings_is_fine(schema):
    record = {"customerCode": "C1", "name": "n", "postal_code": "79000", "POSTAL_CODE": "79000"}
    (action,) = plan(schema, record)
    assert action.kind is Kind.CREATE
    assert action.data["postalCode"] == "79000"


def test_a_value_wins_over_an_empty_spelling(schema):
    record = {"customerCode": "C1", "name": "n", "postal_code": None, "postalCode": "79000"}
    (action,) = plan(schema, record)
    assert action.data["postalCode"] == "79000"


def test_two_id_columns_with_different_values_are_refused(schema):
    row = mapper(schema).convert({"id": "1", "ID": "2", "name": "x"})
    assert row.problems
    assert row.problems[0].field == "id,ID"


def test_empty_string_is_no_value_for_enum_number_and_id_fields(schema):
    row = mapper(schema).convert(
        {"name": "n", "status": "", "ownerIds": "", "coordinates": "", "note": "", "id": ""}
    )
    assert row.payload == {"name": "n", "status": None, "ownerIds": None, "coordinates": None,
                           "note": ""}  # fmt: skip
    assert row.record_id is None
    assert not row.problems


def test_empty_string_in_a_date_and_an_id_field_is_no_value():
    schema = load_schema()
    props = schema.input_json_schema("TurnoverCreateInput")["properties"]
    ids = id_input_fields(schema.graphql, ["TurnoverCreateInput"])
    row = FieldMapper(props, id_fields=ids).convert(
        {"startDate": "", "amount": "", "mandatorId": "", "currency": ""}
    )
    assert row.payload == {"startDate": None, "amount": None, "mandatorId": None, "currency": ""}


def test_an_empty_enum_creates_the_row_without_it(schema):
    (action,) = plan(schema, {"customerCode": "C1", "name": "n", "status": ""})
    assert action.kind is Kind.CREATE
    assert "status" not in action.data


@pytest.mark.parametrize("keep", [["status"], ["*"]])
def test_keep_empty_keeps_the_empty_string_as_a_value(schema, keep):
    row = mapper(schema, keep_empty=keep).convert({"name": "n", "status": ""})
    assert row.payload["status"] == ""
    (action,) = plan(schema, {"customerCode": "C1", "name": "n", "status": ""}, keep_empty=keep)
    assert action.kind is Kind.REJECT  # the API's enum does not take ''
    assert action.field == "status"
