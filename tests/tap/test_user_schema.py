"""A user's schema file drives discovery and sync: new entity, dropped field, new deprecation."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from graphql import print_ast

from moovago_api import reading as reading_module
from moovago_api.schema import DEFAULT_SCHEMA_PATH, load_schema
from tap_moovago.tap import TapMoovago
from tests.tap.helpers import (
    discover,
    export_rows,
    only_streams,
    run_sync,
    stream_entry,
    tap_config,
)

OFFLINE = {"api_url": "http://127.0.0.1:9/graphql", "api_key": "offline-key"}

VISIT_SDL = """
"A visit of a sales rep to a company (not in the bundled schema)."
type Visit {
  id: ID!
  teamId: ID!
  companyId: ID!
  day: Date!
  report: String
  updatedAt: DateTime!
}

"Filter of visitList."
input FilterManyVisitInput {
  teamId: ID!
  updatedSince: DateTime
}
"""


@pytest.fixture
def sandbox(sandbox_factory):
    """A sandbox of the test's own (rebuilt from the pool): these tests read the request log,
    which the shared sandbox fills with other tests' requests."""
    return sandbox_factory(companies=30)


def _edit_block(sdl: str, header: str, old: str, new: str) -> str:
    """Replace `old` by `new` inside the block that starts with `header` only."""
    start = sdl.index(header)
    end = sdl.index("\n}\n", start)
    block = sdl[start:end]
    assert old in block, f"{old!r} not in {header}"
    return sdl[:start] + block.replace(old, new, 1) + sdl[end:]


def user_schema(tmp_path: Path, *, paging: bool = True) -> Path:
    """The bundled SDL plus Visit, minus Company.website, with Company.customerCode deprecated."""
    sdl = DEFAULT_SCHEMA_PATH.read_text(encoding="utf-8")
    sdl = _edit_block(
        sdl,
        "type Query {",
        "  ): [Turnover!]!",
        "  ): [Turnover!]!\n\n"
        '  "Visits of a team."\n  visitList(filter: FilterManyVisitInput!): [Visit!]!',
    )
    sdl = _edit_block(sdl, "type Company {", '  "[reconstruction]"\n  website: String\n', "")
    sdl = _edit_block(
        sdl,
        "type Company {",
        "  customerCode: String\n",
        '  customerCode: String @deprecated(reason: "Use erpCode; removed on 2027-09-30.")\n',
    )
    if not paging:
        sdl = _edit_block(
            sdl,
            "  companyList(",
            '    "Rows to pass over before the first one returned. [reconstruction]"\n'
            "    skip: Int = 0\n",
            "",
        )
        sdl = _edit_block(
            sdl,
            "  companyList(",
            '    "Most rows returned, 1 to 1000. [reconstruction]"\n    limit: Int\n',
            "",
        )
    path = tmp_path / ("user_schema.gql" if paging else "user_schema_no_paging.gql")
    path.write_text(sdl + VISIT_SDL, encoding="utf-8")
    return path


def _selected_by_default(catalog: dict, name: str) -> bool | None:
    entry = stream_entry(catalog, "company")
    item = next(i for i in entry["metadata"] if i["breadcrumb"] == ["properties", name])
    return item["metadata"].get("selected-by-default")


def test_discovery_follows_the_user_schema_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = user_schema(tmp_path)
    with caplog.at_level(logging.INFO):
        catalog = discover({**OFFLINE, "schema_path": str(path)})
    names = [entry["tap_stream_id"] for entry in catalog["streams"]]
    assert sorted(names) == ["company", "contact", "mandator", "team", "turnover", "visit"]
    assert any("visit" in r.getMessage() and "visitList" in r.getMessage() for r in caplog.records)

    visit = stream_entry(catalog, "visit")
    assert visit["replication_key"] == "updatedAt"
    assert set(visit["schema"]["properties"]) == {
        "id",
        "teamId",
        "companyId",
        "day",
        "report",
        "updatedAt",
    }
    assert visit["schema"]["properties"]["day"]["format"] == "date"

    company = stream_entry(catalog, "company")["schema"]["properties"]
    assert "website" not in company
    # Newly deprecated: discovered, marked with the reason, not selected by default.
    assert company["customerCode"]["deprecated"] is True
    assert "Use erpCode" in company["customerCode"]["description"]
    assert _selected_by_default(catalog, "customerCode") is False
    with_deprecated = discover(
        {**OFFLINE, "schema_path": str(path), "include_deprecated_fields": True}
    )
    code = stream_entry(with_deprecated, "company")["schema"]["properties"]["customerCode"]
    assert code["deprecated"] is True
    assert "Use erpCode" in code["description"]
    assert _selected_by_default(with_deprecated, "customerCode") is None


def test_new_entity_gets_a_valid_query_without_paging_arguments(tmp_path: Path) -> None:
    path = user_schema(tmp_path)
    tap = TapMoovago(config={**OFFLINE, "schema_path": str(path)})
    stream = tap.streams["visit"]
    assert stream.parent_stream_type is type(tap.streams["team"])
    query = print_ast(stream.pager.document)
    assert "visitList(filter: $filter) {" in query
    assert "($filter: FilterManyVisitInput!)" in query
    assert load_schema(path).validate_document(stream.pager.document) == []
    company_query = print_ast(tap.streams["company"].pager.document)
    assert not re.search(r"^    website$", company_query, re.MULTILINE), "Company.website"
    assert re.search(r"^      website$", company_query, re.MULTILINE), "Mandator.website"
    assert "customerCode" not in company_query


def test_sync_follows_the_user_schema_file(sandbox, tmp_path: Path) -> None:
    path = user_schema(tmp_path)
    config = tap_config(sandbox, schema_path=str(path))
    catalog = only_streams(discover(config), {"company", "contact"})
    out = run_sync(config, catalog=catalog)
    export = sandbox.export()
    assert len(out.records["company"]) == len(export_rows(export, "company", sandbox.team_id))
    assert all("website" not in row and "customerCode" not in row for row in out.records["company"])
    assert all("postalCode" in row for row in out.records["company"])
    company_queries = [r["query"] for r in sandbox.requests() if "companyList" in r["query"]]
    assert company_queries
    assert not re.search(r"^    website$", company_queries[-1], re.MULTILINE)
    assert "customerCode" not in company_queries[-1]


def test_list_without_paging_arguments_is_one_request_with_a_warning_when_large(
    sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = user_schema(tmp_path, paging=False)
    monkeypatch.setattr(reading_module, "LARGE_UNPAGED_RESPONSE", 5)
    config = tap_config(sandbox, schema_path=str(path), page_size=3)
    catalog = only_streams(discover(config), {"company"})
    before = len(sandbox.requests())
    with caplog.at_level(logging.WARNING):
        out = run_sync(config, catalog=catalog)
    sent = sandbox.requests()[before:]
    company_requests = [r for r in sent if "companyList" in r["query"]]
    assert len(company_requests) == 1
    assert "limit" not in company_requests[0]["variables"]
    expected = len(export_rows(sandbox.export(), "company", sandbox.team_id))
    assert expected > 5
    assert len(out.records["company"]) == expected
    assert any("no paging arguments" in r.getMessage() for r in caplog.records)
