"""Exact match keys, the opt-in normalisation, values that cannot be keys, keyless rows
(issue 11 items 2 and 5): pure decisions, no server."""

from __future__ import annotations

import pytest
from singer_sdk.exceptions import ConfigValidationError

from moovago_api.schema import load_schema
from target_moovago.decide import KEYLESS_SETTING, Decider, InputValidator, Kind, Mode, Row
from target_moovago.index import (
    DEFAULT_MATCH_KEYS,
    FieldMapper,
    KeySpec,
    RemoteIndex,
)
from target_moovago.target import TargetMoovago

KELVIN = "\u212a"  # KELVIN SIGN: casefolds to "k"
PAIRS = [("abc", "ABC"), ("Straße-1", "STRASSE-1"), (f"{KELVIN}-7", "K-7"), (" C1 ", "C1")]


@pytest.fixture(scope="module")
def schema():
    return load_schema()


def decider(schema, index, **kwargs) -> Decider:
    return Decider(
        index=index,
        create_validator=InputValidator(schema.input_json_schema("CompanyCreateInput")),
        update_validator=InputValidator(schema.input_json_schema("CompanyUpdateDataInput")),
        **kwargs,
    )


def rows(schema, *records) -> list[Row]:
    mapper = FieldMapper(schema.input_json_schema("CompanyCreateInput")["properties"])
    return [Row(n, r, mapper.convert(r)) for n, r in enumerate(records, start=1)]


def index_of(*records, normalize=()) -> RemoteIndex:
    specs = [KeySpec.parse(k, normalize) for k in DEFAULT_MATCH_KEYS["company"]]
    index = RemoteIndex(["name"], specs)
    for record in records:
        index.add(record["id"], record)
    return index


@pytest.mark.parametrize(("stored", "incoming"), PAIRS)
def test_keys_that_differ_only_in_case_or_blanks_are_distinct_by_default(schema, stored, incoming):
    index = index_of({"id": "1", "customerCode": stored, "name": "Existing"})
    (action,) = decider(schema, index).decide(rows(schema, {"customerCode": incoming, "name": "N"}))
    assert action.kind is Kind.CREATE  # never an update of the unrelated record
    assert action.data["customerCode"] == incoming


@pytest.mark.parametrize(("stored", "incoming"), PAIRS)
def test_the_opt_in_normalisation_matches_them(schema, stored, incoming):
    index = index_of({"id": "1", "customerCode": stored, "name": "Old"}, normalize={"trim", "case"})
    (action,) = decider(schema, index).decide(rows(schema, {"customerCode": incoming, "name": "N"}))
    assert (action.kind, action.record_id) == (Kind.UPDATE, "1")


def test_trim_alone_does_not_fold_case(schema):
    index = index_of({"id": "1", "customerCode": "ABC", "name": "Old"}, normalize={"trim"})
    plan = decider(schema, index).decide(
        rows(schema, {"customerCode": " ABC ", "name": "N"}, {"customerCode": "abc", "name": "M"})
    )
    assert [(a.kind, a.record_id) for a in plan] == [(Kind.UPDATE, "1"), (Kind.CREATE, None)]


def test_two_rows_differing_in_case_are_two_records_in_one_batch(schema):
    plan = decider(schema, index_of()).decide(
        rows(schema, {"customerCode": "abc", "name": "a"}, {"customerCode": "ABC", "name": "b"})
    )
    assert [a.kind for a in plan] == [Kind.CREATE, Kind.CREATE]


def test_parent_lookup_is_exact_too():
    index = index_of({"id": "1", "customerCode": "ABC", "name": "A"})
    assert index.lookup_field("customerCode", "abc") == []
    assert index.lookup_field("customerCode", "ABC") == ["1"]
    folded = index_of({"id": "1", "customerCode": "ABC", "name": "A"}, normalize={"case"})
    assert folded.lookup_field("customerCode", "abc") == ["1"]
    assert index.lookup_field("customerCode", {"x": 1}) == []


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ({"code": "C1"}, "an object"),
        (["C1", "C2"], "a list"),
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
        (True, "boolean"),
    ],
)
def test_a_value_that_cannot_be_a_key_rejects_only_its_row(schema, value, words):
    plan = decider(schema, index_of()).decide(
        rows(
            schema,
            {"customerCode": "OK-1", "name": "a"},
            {"customerCode": value, "name": "bad"},
            {"customerCode": "OK-2", "name": "b"},
        )
    )
    assert [a.kind for a in plan] == [Kind.CREATE, Kind.REJECT, Kind.CREATE]
    assert plan[1].field == "customerCode"
    assert words in plan[1].reason


def test_a_stored_record_with_a_non_scalar_key_is_not_indexed_and_does_not_crash():
    index = index_of({"id": "1", "customerCode": {"odd": 1}, "name": "A"})
    assert len(index) == 1
    assert index.find({"customerCode": "C1"})[1] == []


def test_an_integral_float_and_an_int_are_one_key():
    assert KeySpec.parse(["code"]).value({"code": 7.0}) == (7,)
    assert KeySpec.parse(["code"]).value({"code": 7}) == (7,)


@pytest.mark.parametrize("mode", [Mode.CREATE_ONLY, Mode.UPSERT])
def test_keyless_rows_are_refused_with_a_reason_before_any_write(schema, mode):
    plan = decider(schema, index_of(), mode=mode).decide(
        rows(schema, {"name": "No code"}, {"customerCode": "K-1", "name": "keyed"})
    )
    assert [a.kind for a in plan] == [Kind.REJECT, Kind.CREATE]
    assert plan[0].field == "customerCode"
    assert "resume could duplicate" in plan[0].reason
    assert KEYLESS_SETTING in plan[0].reason


@pytest.mark.parametrize("mode", [Mode.CREATE_ONLY, Mode.UPSERT])
def test_keyless_creates_when_opted_in(schema, mode):
    (action,) = decider(schema, index_of(), mode=mode, keyless_creates=True).decide(
        rows(schema, {"name": "No code"})
    )
    assert action.kind is Kind.CREATE


def test_keyless_rows_stay_refused_in_update_only_even_when_opted_in(schema):
    (action,) = decider(schema, index_of(), mode=Mode.UPDATE_ONLY, keyless_creates=True).decide(
        rows(schema, {"name": "No code"})
    )
    assert action.kind is Kind.REJECT
    assert "cannot tell whether it exists" in action.reason


def test_a_keyless_delete_is_refused_not_counted_as_absent(schema):
    (action,) = decider(schema, index_of(), hard_delete=True).decide(
        rows(schema, {"name": "x", "_sdc_deleted_at": "2026-01-01T00:00:00Z"})
    )
    assert action.kind is Kind.REJECT
    assert "which record to delete" in action.reason


def test_an_entity_without_match_keys_refuses_keyless_rows(schema):
    index = RemoteIndex(["name"], [])
    (action,) = decider(schema, index, mode=Mode.CREATE_ONLY).decide(rows(schema, {"name": "n"}))
    assert action.kind is Kind.REJECT
    assert "none configured" in action.reason


def test_match_normalize_setting_is_checked():
    config = {"api_url": "http://127.0.0.1:9/graphql", "api_key": "k"}
    TargetMoovago(config={**config, "match_normalize": {"company": ["trim", "case"]}})
    for value, named in ((["upper"], "'upper'"), ("case", "not of type 'array'")):
        with pytest.raises(ConfigValidationError) as refused:
            TargetMoovago(config={**config, "match_normalize": {"company": value}})
        assert named in str(refused.value.errors)
        assert "match_normalize" in str(refused.value.errors)
