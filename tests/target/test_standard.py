"""The Singer SDK's standard target tests, plus Moovago versions of those that need a writable
stream (the standard files use stream names like `test_camelcase`, which Moovago does not have).
"""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from singer_sdk.testing import SuiteConfig, get_target_test_class
from singer_sdk.testing.runners import TargetTestRunner
from singer_sdk.testing.suites import SingerTestSuite
from singer_sdk.testing.templates import TargetFileTestTemplate

from target_moovago.ledger import UnsupportedStreamError
from target_moovago.target import TargetMoovago
from tests.target.helpers import DATA, entity_rows


class MoovagoFileTest(TargetFileTestTemplate):
    """A standard file test whose input is a Moovago stream, checked in the sandbox after."""

    @property
    def singer_filepath(self) -> Path:  # type: ignore[override]
        return DATA / f"{self.name.removeprefix('moovago_')}.singer"

    def rows(self, entity: str) -> list[dict[str, t.Any]]:
        return entity_rows(self.resource, entity)


class MoovagoCamelcase(MoovagoFileTest):
    name = "moovago_camelcase"

    def validate(self) -> None:
        by_code = {r.get("customerCode"): r for r in self.rows("company")}
        assert by_code["CAMEL-1"]["postalCode"] == "79000"
        assert by_code["CAMEL-2"]["name"] == "Gitter iOS App"


class MoovagoComplexSchema(MoovagoFileTest):
    name = "moovago_complex_schema"

    def validate(self) -> None:
        by_code = {r.get("customerCode"): r for r in self.rows("company")}
        assert by_code["GEO-1"]["coordinates"] == {"latitude": 46.3237, "longitude": -0.4588}
        assert by_code["GEO-2"]["coordinates"] is None


class MoovagoDuplicateRecords(MoovagoFileTest):
    name = "moovago_duplicate_records"

    def validate(self) -> None:
        dup = [r for r in self.rows("mandator") if r.get("code") == "DUP"]
        assert [r["name"] for r in dup] == ["last version"]


class MoovagoSpecialChars(MoovagoFileTest):
    name = "moovago_special_chars"

    def validate(self) -> None:
        (row,) = [r for r in self.rows("company") if r.get("customerCode") == "SPEC-1"]
        assert row["name"] == 'Société Générale d\'Électricité "SGE" & Cie'
        assert row["note"].endswith('{"not": "json"} $input')


class MoovagoOptionalAttributes(MoovagoFileTest):
    name = "moovago_optional_attributes"

    def validate(self) -> None:
        codes = {r.get("code") for r in self.rows("mandator")}
        assert {"OPT-1", "OPT-2"} <= codes


class MoovagoSchemaUpdates(MoovagoFileTest):
    name = "moovago_schema_updates"

    def validate(self) -> None:
        by_code = {r.get("customerCode"): r for r in self.rows("company")}
        assert by_code["SU-1"]["city"] == "La Rochelle"
        assert by_code["SU-2"]["city"] == "Poitiers"


class MoovagoMultipleStateMessages(MoovagoFileTest):
    name = "moovago_multiple_state_messages"

    def test(self) -> None:
        self.runner.sync_all()
        assert self.runner.state_messages == [{"company": 2, "mandator": 1}]
        codes = {r.get("customerCode") for r in self.rows("company")}
        assert {"MS-1", "MS-2"} <= codes


class MoovagoRecordMissingKeyProperty(MoovagoFileTest):
    """key_properties naming a column the record lacks is a warning (issue 23), not the SDK's
    MissingKeyPropertiesError: the row, with neither id nor match key, is rejected as keyless."""

    name = "moovago_record_missing_key_property"

    def validate(self) -> None:
        assert "No key" not in {r.get("name") for r in self.rows("company")}


MOOVAGO_SUITE = SingerTestSuite(
    kind="target",
    tests=[
        MoovagoCamelcase,
        MoovagoComplexSchema,
        MoovagoDuplicateRecords,
        MoovagoSpecialChars,
        MoovagoOptionalAttributes,
        MoovagoSchemaUpdates,
        MoovagoMultipleStateMessages,
        MoovagoRecordMissingKeyProperty,
    ],
)

_Base = get_target_test_class(
    TargetMoovago,
    config={"api_url": "http://127.0.0.1:9/graphql", "api_key": "replaced-per-test"},
    custom_suites=[MOOVAGO_SUITE],
    suite_config=SuiteConfig(),
    parse_env_config=False,
)

NOT_MOOVAGO = (
    "the standard file writes to a stream that is not a Moovago entity (e.g. test_camelcase); "
    "the target refuses it at its SCHEMA. The Moovago version of this test runs as "
    "test_target_moovago_<name>."
)
NO_MOOVAGO_VERSION = (
    "the standard file writes to a stream that is not a Moovago entity; the target refuses it "
    "at its SCHEMA (no Moovago equivalent: {why})"
)
_EXPECTED_REFUSALS = {
    "test_target_array_data": NO_MOOVAGO_VERSION.format(
        why="Moovago arrays are ids of existing records, covered by the round-trip test"
    ),
    "test_target_camelcase": NOT_MOOVAGO,
    "test_target_camelcase_complex_schema": NOT_MOOVAGO.replace("<name>", "complex_schema"),
    "test_target_duplicate_records": NOT_MOOVAGO,
    "test_target_encoded_string_data": NOT_MOOVAGO.replace("<name>", "special_chars"),
    "test_target_no_primary_keys": NO_MOOVAGO_VERSION.format(
        why="rows without key are rejected unless create_only, see test_decide"
    ),
    "test_target_optional_attributes": NOT_MOOVAGO,
    "test_target_record_missing_key_property": NOT_MOOVAGO,
    "test_target_schema_no_properties": NO_MOOVAGO_VERSION.format(
        why="a stream without columns has nothing to write"
    ),
    "test_target_schema_updates": NOT_MOOVAGO,
    "test_target_pk_updates": NO_MOOVAGO_VERSION.format(
        why="Moovago records are matched by id or match_keys, not by the stream's primary key"
    ),
    "test_target_special_chars_in_attributes": NOT_MOOVAGO.replace("<name>", "special_chars"),
    "test_target_record_missing_fields": NOT_MOOVAGO.replace("<name>", "optional_attributes"),
}


class TestTargetMoovago(_Base):  # type: ignore[misc, valid-type]
    """Every standard and Moovago file test, each run against its own fresh sandbox."""

    @pytest.fixture
    def resource(self, sandbox_factory):
        return sandbox_factory(companies=3)

    @pytest.fixture
    def runner(self, resource, tmp_path) -> TargetTestRunner:
        config = {
            "api_url": resource.url,
            "api_key": resource.api_key,
            "max_requests_per_second": 5,
            "rejects_path": str(tmp_path / "rejects.jsonl"),
        }
        return TargetTestRunner(target_class=TargetMoovago, config=config)


def _expect_refusal(run: t.Callable[..., None], reason: str) -> t.Callable[..., None]:
    @pytest.mark.xfail(raises=UnsupportedStreamError, strict=True, reason=reason)
    def test(self: TestTargetMoovago, config: SuiteConfig, resource: t.Any, runner: t.Any) -> None:
        run(config, resource, runner)

    return test


for _name, _reason in _EXPECTED_REFUSALS.items():
    setattr(TestTargetMoovago, _name, _expect_refusal(getattr(TestTargetMoovago, _name), _reason))
