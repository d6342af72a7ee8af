"""Column-name normalisation, value serialisation and validation (no server)."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest

from moovago_api.schema import load_schema
from target_moovago.decide import InputValidator
from target_moovago.index import FieldMapper, comparable, normalise_name, to_api_value


@pytest.fixture(scope="module")
def schema():
    return load_schema()


def company_mapper(schema) -> FieldMapper:
    props = {
        **schema.input_json_schema("CompanyUpdateDataInput")["properties"],
        **schema.input_json_schema("CompanyCreateInput")["properties"],
    }
    output = schema.output_json_schema("Company")["properties"]
    return FieldMapper(props, output)


def contact_mapper(schema) -> FieldMapper:
    props = schema.input_json_schema("CompanyContactCreateInput")["properties"]
    return FieldMapper(props, (), parents={"companyId": ("company", ["customerCode"])})


@pytest.mark.parametrize("column", ["postal_code", "postalcode", "POSTAL_CODE", "Postal-Code"])
def test_warehouse_spellings_map_to_the_api_field(schema, column):
    assert company_mapper(schema).classify(column) == ("field", "postalCode")


def test_normalise_name_drops_case_and_separators():
    assert normalise_name("Customer_Code") == normalise_name("customer-code") == "customercode"


def test_column_map_splits_fields_id_read_only_unknown_and_sdc(schema):
    cmap = company_mapper(schema).column_map(
        ["ID", "name", "customer_code", "createdAt", "favourite_colour", "_sdc_deleted_at"]
    )
    assert cmap.id_column == "ID"
    assert cmap.fields == {"name": "name", "customer_code": "customerCode"}
    assert cmap.read_only == ["createdAt"]
    assert cmap.unknown == ["favourite_colour"]


def test_convert_never_sends_sdc_columns_and_flags_deletes(schema):
    row = company_mapper(schema).convert(
        {
            "name": "Acme",
            "_sdc_extracted_at": "2026-01-01T00:00:00Z",
            "_sdc_deleted_at": "2026-01-02T00:00:00Z",
            "colour": "red",
        }
    )
    assert row.payload == {"name": "Acme"}
    assert row.deleted is True
    assert row.unknown == ["colour"]


def test_reference_column_names_the_parent_by_its_key(schema):
    row = contact_mapper(schema).convert({"company_customer_code": "C-1", "last_name": "Durand"})
    ((ref, value),) = row.references.values()
    assert (ref.target_field, ref.parent_stream, ref.parent_key_field, value) == (
        "companyId",
        "company",
        "customerCode",
        "C-1",
    )
    assert row.payload == {"lastName": "Durand"}


def test_datetimes_and_dates_are_serialised_as_the_api_expects():
    paris = dt.timezone(dt.timedelta(hours=1))
    stamp = dt.datetime(2026, 11, 29, 9, 30, 0, 123456, tzinfo=paris)
    assert to_api_value(stamp, {"format": "date-time"}) == "2026-11-29T08:30:00.123Z"
    assert to_api_value(stamp, {"format": "date"}) == "2026-11-29"
    assert to_api_value(dt.date(2026, 1, 5), {"format": "date"}) == "2026-01-05"
    assert to_api_value("2026-11-29T09:30:00+01:00", {"format": "date-time"}) == (
        "2026-11-29T08:30:00.000Z"
    )
    assert to_api_value(decimal.Decimal("12.50"), {"type": ["number", "null"]}) == 12.5
    assert to_api_value(decimal.Decimal("3"), {"type": "integer"}) == 3


def test_comparable_ignores_id_order_and_int_float():
    assert comparable(["b", "a"]) == comparable(["a", "b"])
    assert comparable(100) == comparable(100.0)
    assert comparable("x") != comparable("y")


def test_validator_names_the_field(schema):
    validator = InputValidator(schema.input_json_schema("TurnoverCreateInput"))
    good = {"companyId": "c1", "amount": 10.0, "startDate": "2026-01-01", "endDate": "2026-01-31"}
    assert validator.problems(good) == []
    bad_date = validator.problems({**good, "startDate": "01/02/2026"})
    assert [p.field for p in bad_date] == ["startDate"]
    missing = validator.problems({k: v for k, v in good.items() if k != "amount"})
    assert [p.field for p in missing] == ["amount"]
    wrong_type = validator.problems({**good, "amount": "lots"})
    assert [p.field for p in wrong_type] == ["amount"]


def test_validator_checks_enums(schema):
    validator = InputValidator(schema.input_json_schema("CompanyCreateInput"))
    problems = validator.problems({"name": "Acme", "status": "FRIEND"})
    assert [p.field for p in problems] == ["status"]


def test_validator_rejects_text_that_cannot_be_sent_as_utf8(schema):
    validator = InputValidator(schema.input_json_schema("CompanyCreateInput"))
    assert validator.problems({"name": "emoji 😀 ok"}) == []
    problems = validator.problems({"name": "half \ud800 emoji"})
    assert [p.field for p in problems] == ["name"]
    assert "surrogate" in problems[0].reason
