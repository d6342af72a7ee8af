"""Families of schema files read without configuration, end to end against a sandbox serving
the same file (tests/schema_variants/families/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.tap.helpers import ENTITY_STREAMS, export_rows, run_cli, run_sync, tap_config

FAMILIES = Path(__file__).resolve().parents[1] / "schema_variants" / "families"
SORT_ENUM = FAMILIES / "sort_enum.gql"
PAGINATION = FAMILIES / "compose_pagination.gql"
OPERATORS = FAMILIES / "operators_filter.gql"
COMPOSE = FAMILIES / "compose.gql"


def _records(stdout: str) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for message in map(json.loads, stdout.splitlines()):
        if message["type"] == "RECORD":
            found.setdefault(message["stream"], []).append(message["record"])
    return found


@pytest.mark.slow
def test_a_sort_enum_is_sent_so_a_server_without_stable_order_is_read_once(
    sandbox_factory, tmp_path
):
    box = sandbox_factory(
        companies=25, rate_limit=0, unstable_order=True, extra_args=["--schema", str(SORT_ENUM)]
    )
    config = tap_config(box, page_size=7, max_requests_per_second=5, schema_path=str(SORT_ENUM))
    result = run_cli([], config, tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    records = _records(result.stdout)
    export = box.export()
    for stream in ENTITY_STREAMS[1:]:
        expected = sorted(row["id"] for row in export_rows(export, stream, box.team_id))
        got = [row["id"] for row in records.get(stream, [])]
        assert expected, stream
        assert sorted(got) == expected, stream
        assert len(got) == len(set(got)), f"{stream}: a row twice"
    # turnoverList is deprecated: still read, and said so at every sync.
    assert "Stream 'turnover' reads Query.turnoverList, which the schema file marks deprecated" in (
        result.stderr
    )


@pytest.mark.slow
def test_without_the_sort_the_same_server_is_refused_not_misread(sandbox_factory, tmp_path):
    box = sandbox_factory(companies=25, rate_limit=0, unstable_order=True)
    config = tap_config(box, page_size=7, max_requests_per_second=5)
    result = run_cli([], config, tmp_path, timeout=300)
    assert result.returncode != 0
    assert "rows kept moving while paging Query." in result.stderr


@pytest.mark.slow
def test_graphql_compose_pagination_items_and_page_info_is_read_whole(sandbox_factory, tmp_path):
    box = sandbox_factory(companies=25, rate_limit=0, extra_args=["--schema", str(PAGINATION)])
    config = tap_config(box, page_size=6, max_requests_per_second=5, schema_path=str(PAGINATION))
    result = run_cli([], config, tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    records = _records(result.stdout)
    export = box.export()
    for stream in ENTITY_STREAMS[1:]:
        expected = sorted(row["id"] for row in export_rows(export, stream, box.team_id))
        got = [row["id"] for row in records.get(stream, [])]
        assert expected, stream
        assert sorted(got) == expected, stream
        assert len(got) == len(set(got)), f"{stream}: a row twice"


@pytest.mark.slow
def test_an_operators_bound_makes_the_second_sync_read_only_what_changed(sandbox_factory):
    box = sandbox_factory(companies=12, rate_limit=0, extra_args=["--schema", str(OPERATORS)])
    config = tap_config(box, page_size=5, schema_path=str(OPERATORS))
    first = run_sync(config)
    all_ids = sorted(row["id"] for row in export_rows(box.export(), "company", box.team_id))
    assert sorted(first.ids("company")) == all_ids
    second = run_sync(config, state=first.final_state)
    bookmark = first.final_state["bookmarks"]["company"]["replication_key_value"]
    newest = [r["id"] for r in first.records["company"] if r["updatedAt"] >= bookmark]
    assert sorted(second.ids("company")) == sorted(newest)
    assert len(second.ids("company")) < len(all_ids)


@pytest.mark.slow
def test_the_compose_family_is_read_whole_by_id_pages_of_items_and_team_by_id(
    sandbox_factory, tmp_path
):
    box = sandbox_factory(
        companies=15, rate_limit=0, unstable_order=True, extra_args=["--schema", str(COMPOSE)]
    )
    config = tap_config(box, page_size=4, schema_path=str(COMPOSE), team_id=box.team_id)
    result = run_cli([], config, tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    records = _records(result.stdout)
    assert [row["_id"] for row in records["team"]] == [box.team_id]
    export = box.export()
    for stream in ("company", "mandator"):
        expected = sorted(row["id"] for row in export_rows(export, stream, box.team_id))
        got = [row["_id"] for row in records.get(stream, [])]
        assert expected, stream
        assert sorted(got) == expected, stream
        assert len(got) == len(set(got)), f"{stream}: a row twice"
    assert "reads Query.mandatorMany, which the schema file marks deprecated" in result.stderr
