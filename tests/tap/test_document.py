"""Discovery and query building, offline: no request is sent by these tests."""

from __future__ import annotations

import logging

import pytest
from graphql import print_ast

from moovago_api.errors import ConfigError
from moovago_api.schema import load_schema
from tap_moovago.tap import TapMoovago
from tests.tap.helpers import ENTITY_STREAMS, set_selected, stream_entry

# Never contacted: these tests only build documents.
OFFLINE = {"api_url": "http://127.0.0.1:9/graphql", "api_key": "offline-key"}


def _tap(catalog: dict | None = None, **config: object) -> TapMoovago:
    return TapMoovago(config={**OFFLINE, **config}, catalog=catalog)


def _query(tap: TapMoovago, stream: str) -> str:
    return print_ast(tap.streams[stream].pager.document)


def test_discovery_has_one_stream_per_entity_with_keys_from_the_schema() -> None:
    catalog = _tap().catalog_dict
    assert sorted(entry["tap_stream_id"] for entry in catalog["streams"]) == sorted(ENTITY_STREAMS)
    for name in ENTITY_STREAMS:
        entry = stream_entry(catalog, name)
        assert entry["key_properties"] == ["id"]
        if name == "team":
            assert entry["replication_method"] == "FULL_TABLE"
            assert entry.get("replication_key") is None
        else:
            assert entry["replication_method"] == "INCREMENTAL"
            assert entry["replication_key"] == "updatedAt"
    company = stream_entry(catalog, "company")["schema"]["properties"]
    assert company["coordinates"]["properties"]["latitude"]["type"] == "number"
    assert company["status"]["enum"] == ["CLIENT", "PROSPECT", "SUSPECT"]
    # Deprecated fields are discovered, marked with the reason, and not selected by default.
    assert company["zipCode"]["deprecated"] is True
    assert "DEPRECATED: Use postalCode" in company["zipCode"]["description"]
    zip_metadata = next(
        item["metadata"]
        for item in stream_entry(catalog, "company")["metadata"]
        if item["breadcrumb"] == ["properties", "zipCode"]
    )
    assert zip_metadata["selected-by-default"] is False


def test_list_stream_parents_are_the_team_stream() -> None:
    tap = _tap()
    children = {child.name for child in tap.streams["team"].child_streams}
    assert children == set(ENTITY_STREAMS) - {"team"}
    for name in set(ENTITY_STREAMS) - {"team"}:
        assert tap.streams[name].parent_stream_type is type(tap.streams["team"])


def test_team_query_asks_for_every_field_without_variables() -> None:
    query = _query(_tap(), "team")
    assert query.startswith("query TapMoovagoTeam {")
    assert "members {" in query
    for name in ("id", "name", "alias", "firstName", "createdAt", "updatedAt"):
        assert name in query


def test_list_query_takes_values_only_through_typed_variables() -> None:
    tap = _tap()
    query = _query(tap, "company")
    assert "($filter: FilterManyCompanyInput!, $skip: Int, $limit: Int)" in query
    anchored = print_ast(tap.streams["company"].pager.anchored)
    assert (
        "($filter: FilterManyCompanyInput!, $skip: Int, $limit: Int, $anchorOffset: Int, "
        "$anchorSize: Int)" in anchored
    )
    assert (
        "anchor: companyList(filter: $filter, skip: $anchorOffset, limit: $anchorSize)" in anchored
    )
    assert "companyList(filter: $filter, skip: $skip, limit: $limit)" in query
    assert "offset" not in query, "the deprecated paging argument is not used"
    assert "coordinates {\n      latitude\n      longitude\n    }" in query
    assert "mandators {" in query
    assert "zipCode" not in query
    assert load_schema().validate_document(query) == []


def test_deselected_fields_are_not_asked_for_nested_ones_included() -> None:
    catalog = _tap().catalog_dict
    set_selected(catalog, "company", ("properties", "note"), selected=False)
    set_selected(catalog, "company", ("properties", "mandators"), selected=False)
    set_selected(
        catalog,
        "company",
        ("properties", "coordinates", "properties", "latitude"),
        selected=False,
    )
    query = _query(_tap(catalog), "company")
    assert "note" not in query
    assert "mandators" not in query
    assert "latitude" not in query
    assert "coordinates {\n      longitude\n    }" in query
    assert "mandatorIds" in query


def test_an_object_with_no_selected_subfield_is_left_out() -> None:
    catalog = _tap().catalog_dict
    for sub in ("latitude", "longitude"):
        set_selected(
            catalog, "company", ("properties", "coordinates", "properties", sub), selected=False
        )
    assert "coordinates" not in _query(_tap(catalog), "company")


def test_primary_and_replication_keys_cannot_be_deselected() -> None:
    catalog = _tap().catalog_dict
    set_selected(catalog, "company", ("properties", "id"), selected=False)
    set_selected(catalog, "company", ("properties", "updatedAt"), selected=False)
    query = _query(_tap(catalog), "company")
    assert "    id\n" in query
    assert "updatedAt" in query


def test_deprecated_fields_are_marked_and_warned_about_when_included(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tap = _tap(include_deprecated_fields=True)
    zip_code = stream_entry(tap.catalog_dict, "company")["schema"]["properties"]["zipCode"]
    assert zip_code["deprecated"] is True
    assert "Use postalCode" in zip_code["description"]
    with caplog.at_level(logging.WARNING):
        query = _query(tap, "company")
    assert "zipCode" in query
    warnings = [r.getMessage() for r in caplog.records if "zipCode" in r.getMessage()]
    assert len(warnings) == 1
    assert "deprecated" in warnings[0]
    assert "Use postalCode; zipCode will be removed on 2027-03-31." in warnings[0]


def test_deprecated_fields_are_not_selected_by_default(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        query = _query(_tap(), "company")
    assert "zipCode" not in query
    assert "postalCode" in query
    assert not any("zipCode" in r.getMessage() for r in caplog.records)


def test_deprecated_field_selected_by_a_catalog_is_extracted_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # include_deprecated_fields selects them by default; so does a catalog that selects them.
    for tap in (
        _tap(include_deprecated_fields=True),
        _tap(_tap(include_deprecated_fields=True).catalog_dict),
    ):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            query = _query(tap, "company")
        assert "zipCode" in query
        assert "postalCode" in query
        assert any(
            "'zipCode' is selected but deprecated (Use postalCode" in r.getMessage()
            for r in caplog.records
        )


def test_a_selected_field_missing_from_the_schema_file_fails_naming_stream_and_field() -> None:
    catalog = _tap().catalog_dict
    entry = stream_entry(catalog, "contact")
    entry["schema"]["properties"]["faxNumber"] = {"type": ["string", "null"]}
    entry["metadata"].append(
        {
            "breadcrumb": ["properties", "faxNumber"],
            "metadata": {"inclusion": "available", "selected": True},
        }
    )
    tap = _tap(catalog)
    with pytest.raises(
        ConfigError, match=r"Stream 'contact': field 'faxNumber' .*CompanyContact\.faxNumber"
    ):
        _ = tap.streams["contact"].pager.document


def test_a_deselected_team_still_asks_for_its_id_for_the_child_streams() -> None:
    catalog = _tap().catalog_dict
    set_selected(catalog, "team", (), selected=False)
    query = _query(_tap(catalog), "team")
    assert query == "query TapMoovagoTeam {\n  team {\n    id\n  }\n}"
