"""The tap on every READ shape variant, and on servers that cap pages or move rows while paged.

Offline tests run everywhere. Tests against the sandbox need its generated engine and flags
(`serve --schema FILE` for every shape, `--max-page-size`, `--fault-churn`): each is skipped,
naming the missing flag, until the sandbox in this checkout has them.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from graphql import print_ast

from moovago_api.errors import PagingError
from moovago_api.schema import load_schema
from moovago_sandbox.testing import start_sandbox
from tap_moovago.tap import TapMoovago
from tests.tap.helpers import (
    ENTITY_STREAMS,
    discover,
    export_rows,
    only_streams,
    run_cli,
    run_sync,
    stream_entry,
    tap_config,
)
from tests.unit.stub_server import client_for

SHAPES = Path(__file__).resolve().parents[1] / "schema_variants" / "shapes"
READ_VARIANTS = sorted(p.name for p in SHAPES.glob("*.gql") if p.name != "unsupported_paging.gql")
LIST_STREAMS = [name for name in ENTITY_STREAMS if name != "team"]
#: Entities a variant adds to the bundled schema (its header comment says so): streams too.
VARIANT_ENTITIES = {"no_default_key.gql": ["visit"]}
OFFLINE = {"api_url": "http://127.0.0.1:9/graphql", "api_key": "offline-key"}


@functools.cache
def _sandbox_help() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "moovago_sandbox.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    return result.stdout


def needs_sandbox_flag(flag: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        flag not in _sandbox_help(), reason=f"the sandbox has no {flag} yet (sandbox engineer)"
    )


@functools.cache
def _sandbox_serves_shapes() -> bool:
    """True when the sandbox starts on a connection variant (its engine follows the file)."""
    try:
        with start_sandbox(extra_args=["--schema", str(SHAPES / "connection_edges.gql")]):
            return True
    except Exception:  # noqa: BLE001 - any failure to start means "not yet"
        return False


def needs_shape_sandbox() -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        "not _sandbox_serves_shapes()",
        reason="the sandbox cannot serve the shape variants yet (sandbox engineer)",
    )


# -- offline: discovery and documents on every variant ----------------------------------------


@pytest.mark.parametrize("variant", [*READ_VARIANTS, "unsupported_paging.gql"])
def test_every_variant_discovers_every_entity_and_its_catalog_as_discovered_builds(variant):
    path = SHAPES / variant
    tap = TapMoovago(config={**OFFLINE, "schema_path": str(path)})
    assert sorted(tap.streams) == sorted([*ENTITY_STREAMS, *VARIANT_ENTITIES.get(variant, [])])
    schema = load_schema(path)
    for name, stream in tap.streams.items():
        assert schema.validate_document(stream.pager.document) == [], (variant, name)


def test_union_and_interface_fields_sync_as_discovered_from_a_scripted_server():
    path = SHAPES / "unions.gql"
    config = {**OFFLINE, "schema_path": str(path)}
    catalog = only_streams(discover(config), {"company"})
    company = stream_entry(catalog, "company")["schema"]["properties"]
    assert company["mainParty"]["properties"]["__typename"]["enum"] == [
        "CompanyContact",
        "TeamMember",
    ]
    tap = TapMoovago(config=config, catalog=catalog)
    query = print_ast(tap.streams["company"].pager.document)
    assert "... on TeamMember {" in query
    assert "... on Call {" in query

    row = {
        "id": "c1",
        "teamId": "t1",
        "name": "A",
        "ownerIds": [],
        "status": "CLIENT",
        "mandatorIds": [],
        "mandators": [],
        "createdAt": "2026-01-01T00:00:00.000Z",
        "updatedAt": "2026-01-01T00:00:00.000Z",
        "mainParty": {"__typename": "TeamMember", "id": "u1", "lastName__on_TeamMember": "Doe"},
        "activities": [{"__typename": "Call", "id": "a1", "at": "2026-01-01T00:00:00.000Z"}],
    }
    out = _sync(tap, _Scripted({"companyList": [row]}))
    (record,) = out
    assert record["mainParty"] == {"__typename": "TeamMember", "id": "u1", "lastName": "Doe"}
    assert record["activities"][0]["__typename"] == "Call"


def test_a_json_scalar_is_any_json_value_by_default_and_an_object_when_set():
    path = SHAPES / "json_scalar.gql"
    default = stream_entry(discover({**OFFLINE, "schema_path": str(path)}), "company")
    assert "object" in default["schema"]["properties"]["customFields"]["type"]
    assert "string" in default["schema"]["properties"]["customFields"]["type"]
    mapped = stream_entry(
        discover({**OFFLINE, "schema_path": str(path), "scalar_types": {"JSON": "object"}}),
        "company",
    )
    assert mapped["schema"]["properties"]["customFields"]["type"] == ["object", "null"]


def test_scalar_types_naming_an_unknown_scalar_is_one_config_line(tmp_path):
    config = {**OFFLINE, "scalar_types": {"Money": "number"}}
    result = run_cli(["--discover"], config, tmp_path)
    assert result.returncode != 0
    assert "scalar_types: 'Money' is not a custom scalar of" in result.stderr
    assert "Traceback" not in result.stderr


def test_deprecated_fields_of_the_variant_are_discovered_marked_and_unselected():
    path = SHAPES / "deprecated_discovery.gql"
    catalog = discover({**OFFLINE, "schema_path": str(path)})
    for stream, name, reason in [
        ("company", "website", "Websites move to the company page"),
        ("mandator", "code", "Use reference"),
        ("contact", "mobilePhone", "No longer supported"),  # bare @deprecated
        ("company", "zipCode", "Use postalCode"),
    ]:
        entry = stream_entry(catalog, stream)
        prop = entry["schema"]["properties"][name]
        assert prop["deprecated"] is True, (stream, name)
        assert f"DEPRECATED: {reason}" in prop["description"], (stream, name)
        item = next(i for i in entry["metadata"] if i["breadcrumb"] == ["properties", name])
        assert item["metadata"]["selected-by-default"] is False, (stream, name)
    tap = TapMoovago(config={**OFFLINE, "schema_path": str(path)}, catalog=catalog)
    assert "website" not in print_ast(tap.streams["company"].pager.document).split("mandators")[0]


def test_discovery_logs_each_root_field_not_taken_once(tmp_path, caplog):
    sdl = (SHAPES / "renamed_roots.gql").read_text(encoding="utf-8")
    sdl = sdl.replace(
        "type RootQuery {\n",
        "type RootQuery {\n  company(id: ID!): Company\n  tags: [String!]!\n",
    )
    path = tmp_path / "extra_roots.gql"
    path.write_text(sdl, encoding="utf-8")
    with caplog.at_level(logging.INFO):
        tap = TapMoovago(config={**OFFLINE, "schema_path": str(path)})
        _ = tap.streams
    lines = [r.getMessage() for r in caplog.records if "is not a stream" in r.getMessage()]
    assert lines == [
        "Schema file extra_roots.gql: RootQuery.company is not a stream: returns one Company, "
        "not a list or a connection of rows",
        "Schema file extra_roots.gql: RootQuery.tags is not a stream: returns a list of String, "
        "not of object rows",
    ]


def test_a_list_the_pager_cannot_drive_fails_the_sync_with_one_line(caplog):
    path = SHAPES / "unsupported_paging.gql"
    config = {**OFFLINE, "schema_path": str(path)}
    with caplog.at_level(logging.WARNING):
        catalog = only_streams(discover(config), {"mandator"})
    assert any(
        "stream 'mandator' is listed but a sync of it fails: Query.mandatorList(" in r.getMessage()
        for r in caplog.records
    )
    tap = TapMoovago(config=config, catalog=catalog)
    client = _Scripted({"mandatorList": []})
    with pytest.raises(
        PagingError, match=r"^Stream 'mandator' cannot be read: Query\.mandatorList"
    ):
        _sync(tap, client)
    assert [name for name, _ in client.calls] == ["TapMoovagoTeam"], "never read once"


class _Scripted:
    TEAM = {
        "id": "t1",
        "name": "T",
        "members": [],
        "createdAt": "2026-01-01T00:00:00.000Z",
        "updatedAt": "2026-01-01T00:00:00.000Z",
    }

    def __init__(self, first_page: dict[str, Any]) -> None:
        self.first_page = first_page
        self.calls: list[tuple[str | None, dict[str, Any]]] = []

    def execute(self, document: Any, variables: Any = None, operation_name: Any = None) -> Any:
        self.calls.append((operation_name, dict(variables or {})))
        if operation_name == "TapMoovagoTeam":
            return {"team": self.TEAM}
        variables = variables or {}
        skip, before = variables.get("skip", 0), variables.get("anchorOffset", 0)
        root, rows = next(iter(self.first_page.items()))
        return {root: rows[skip:], "anchor": rows[before : before + 1]}


def _sync(tap: TapMoovago, server: _Scripted) -> list[dict[str, Any]]:
    """The records of a sync through a real client from a stub server answering as `server`."""
    buffer = io.StringIO()
    with client_for(server.execute) as client, contextlib.redirect_stdout(buffer):
        tap._client = client  # private: the tap builds its client from settings, none to pass
        tap.sync_all()
    return [
        message["record"]
        for message in map(json.loads, buffer.getvalue().splitlines())
        if message["type"] == "RECORD"
    ]


# -- against the sandbox: capped pages, moving rows, every shape ------------------------------


def _every_row(handle: Any, out: Any, streams: list[str]) -> None:
    export = handle.export()
    for stream in streams:
        expected = sorted(row["id"] for row in export_rows(export, stream, handle.team_id))
        assert expected, f"the sandbox has no {stream} rows"
        assert sorted(out.ids(stream)) == expected, stream
        assert len(out.ids(stream)) == len(set(out.ids(stream))), f"{stream}: a row twice"


@needs_sandbox_flag("--max-page-size")
@pytest.mark.slow
@pytest.mark.parametrize("cap", [100, 1])
def test_a_sandbox_capping_pages_gives_every_row_of_every_stream(sandbox_factory, cap):
    handle = sandbox_factory(
        companies=150 if cap > 1 else 12,
        rate_limit=0,
        extra_args=["--max-page-size", str(cap)],
    )
    out = run_sync(tap_config(handle, page_size=500, max_requests_per_second=5))
    _every_row(handle, out, LIST_STREAMS)


@needs_sandbox_flag("--fault-churn")
@pytest.mark.slow
@pytest.mark.parametrize("seed", [7, 8, 9, 10])  # 4 x 5 syncs: 20 under churn, in parallel
def test_rows_moving_between_page_reads_never_lose_a_row_that_stayed(sandbox_factory, seed):
    handle = sandbox_factory(
        companies=30,
        rate_limit=0,
        extra_args=["--fault-churn", "3:1:1", "--fault-seed", str(seed)],
    )
    config = tap_config(handle, page_size=5, max_requests_per_second=5)
    catalog = only_streams(discover(config), {"company", "contact"})
    for run in range(5):
        before = handle.export()
        out = run_sync(config, catalog=catalog)
        after = handle.export()
        for stream in ("company", "contact"):
            stayed = {r["id"] for r in export_rows(before, stream, handle.team_id)} & {
                r["id"] for r in export_rows(after, stream, handle.team_id)
            }
            missing = stayed - set(out.ids(stream))
            assert not missing, f"run {run} {stream}: rows that stayed were missed: {missing}"


@needs_shape_sandbox()
@pytest.mark.slow
@pytest.mark.parametrize("variant", READ_VARIANTS)
def test_every_shape_variant_syncs_every_row_the_sandbox_holds(sandbox_factory, variant):
    path = SHAPES / variant
    handle = sandbox_factory(rate_limit=0, extra_args=["--schema", str(path)])
    out = run_sync(
        tap_config(handle, schema_path=str(path), page_size=25, max_requests_per_second=5)
    )
    _every_row(handle, out, LIST_STREAMS)


@needs_shape_sandbox()
@pytest.mark.slow
def test_an_unsupported_list_exits_non_zero_naming_it(sandbox_factory, tmp_path):
    path = SHAPES / "unsupported_paging.gql"
    handle = sandbox_factory(extra_args=["--schema", str(path)])
    result = run_cli([], tap_config(handle, schema_path=str(path)), tmp_path)
    assert result.returncode == 1
    assert "Stream 'mandator' cannot be read: Query.mandatorList(" in result.stderr
    assert "Traceback" not in result.stderr
