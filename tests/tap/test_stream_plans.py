"""The tap reads each stream as its plan says: logged at discovery, correctable with
`stream_plans`, and never silent about a list it cannot read or a deprecated root."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from moovago_api.errors import ConfigError, PagingError
from tap_moovago.tap import TapMoovago
from tests.tap.helpers import discover, only_streams, run_cli, stream_entry
from tests.unit.stub_server import client_for

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "schema_variants" / "families" / "compose.gql"
OFFLINE = {"api_url": "http://127.0.0.1:9/graphql", "api_key": "offline-key"}


class _Answers:
    """A client answering each root field with the rows given; records every call."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str | None, dict[str, Any]]] = []

    def execute(self, document: Any, variables: Any = None, operation_name: Any = None) -> Any:
        self.calls.append((operation_name, dict(variables or {})))
        return self.answers


class _OffsetList(_Answers):
    """One skip/limit list root field (and the team), answering like a server."""

    def __init__(self, root: str, rows: list[dict[str, Any]], team: dict[str, Any]) -> None:
        super().__init__({"team": team})
        self.root, self.rows = root, rows

    def execute(self, document: Any, variables: Any = None, operation_name: Any = None) -> Any:
        super().execute(document, variables, operation_name)
        v = dict(variables or {})
        if "skip" not in v:
            return self.answers
        anchor = v.get("anchorOffset", 0)
        return {
            self.root: self.rows[v["skip"] : v["skip"] + v["limit"]],
            "anchor": self.rows[anchor : anchor + v.get("anchorSize", 1)],
        }


def _records(tap: TapMoovago) -> list[dict[str, Any]]:
    """Sync through a real client against a stub server answering as the scripted `tap._client`."""
    buffer = io.StringIO()
    scripted = tap._client
    with client_for(scripted.execute) as real, contextlib.redirect_stdout(buffer):
        tap._client = real  # private: the tap builds its client from settings, none to pass
        tap.sync_all()
    messages = map(json.loads, buffer.getvalue().splitlines())
    return [m["record"] for m in messages if m["type"] == "RECORD"]


def _messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def test_discovery_logs_each_plan_and_warns_on_deprecated_and_full_table(caplog):
    config = {**OFFLINE, "schema_path": str(COMPOSE)}
    with caplog.at_level(logging.INFO):
        catalog = discover(config)
    assert {e["tap_stream_id"] for e in catalog["streams"]} == {"team", "company", "mandator"}
    plans = [m for m in _messages(caplog, logging.INFO) if " plan: " in m]
    assert plans[1] == (
        "Stream 'company' plan: Query.companyPagination; id _id; paging page(page/perPage) in "
        "items; order sort=_ID_ASC; team filter.teamId; incremental updatedAt > "
        "filter._operators.updatedAt.gte; writes create Mutation.companyCreateOne, update "
        "Mutation.companyUpdateById, delete Mutation.companyRemoveById"
    )
    assert len(plans) == 3
    warnings = _messages(caplog, logging.WARNING)
    assert any(
        "stream 'mandator' reads Query.mandatorMany, marked deprecated (Use mandatorPagination" in w
        for w in warnings
    ), warnings
    assert any(
        w.startswith("Stream 'mandator' reads full table: Mandator.updatedAt exists but")
        and w.endswith("(set stream_plans.mandator.incremental)")
        for w in warnings
    ), warnings
    assert stream_entry(catalog, "company")["key_properties"] == ["_id"]
    mandator = stream_entry(catalog, "mandator")["schema"]
    assert mandator["deprecated"] is True
    assert mandator["description"].startswith("DEPRECATED: Query.mandatorMany is deprecated: Use")


def test_a_deprecated_root_list_is_read_and_warned_at_every_sync(caplog):
    config = {**OFFLINE, "schema_path": str(COMPOSE), "team_id": "t1"}
    catalog = only_streams(discover(config), {"mandator"})
    for _ in range(2):
        tap = TapMoovago(config=config, catalog=catalog)
        rows = [{"_id": "m1", "name": "A"}]
        tap._client = _OffsetList("mandatorMany", rows, {"_id": "t1"})  # type: ignore[assignment]
        with caplog.at_level(logging.WARNING):
            caplog.clear()
            assert [r["_id"] for r in _records(tap)] == ["m1"]
        assert any(
            "Query.mandatorMany, which the schema file marks deprecated" in m
            for m in _messages(caplog, logging.WARNING)
        )


def test_the_team_read_by_id_sends_team_id_and_refuses_without_it():
    config = {**OFFLINE, "schema_path": str(COMPOSE), "team_id": "t7"}
    catalog = only_streams(discover(config), {"team"})
    tap = TapMoovago(config=config, catalog=catalog)
    client = _Answers({"team": {"_id": "t7", "name": "T"}})
    tap._client = client  # type: ignore[assignment]
    assert _records(tap) == [{"_id": "t7", "name": "T"}]
    assert client.calls[0][1] == {"id": "t7"}
    bare = {**OFFLINE, "schema_path": str(COMPOSE)}
    tap = TapMoovago(config=bare, catalog=only_streams(discover(bare), {"team"}))
    tap._client = _Answers({})  # type: ignore[assignment]
    with pytest.raises(ConfigError, match=r"Query.team\(id:\) needs the team id: set team_id$"):
        _records(tap)


NO_ID = """
type Query { team: Team, notes(skip: Int, limit: Int): [Note!]! }
type Team { id: ID! }
type Note { uid: ID! text: String }
"""


def test_a_list_without_id_is_listed_unselected_warned_and_refused_when_synced(tmp_path, caplog):
    path = tmp_path / "noid.gql"
    path.write_text(NO_ID, encoding="utf-8")
    config = {**OFFLINE, "schema_path": str(path)}
    with caplog.at_level(logging.WARNING):
        catalog = discover(config)
    entry = stream_entry(catalog, "note")
    root = next(i for i in entry["metadata"] if i["breadcrumb"] == [])
    assert root["metadata"]["selected-by-default"] is False
    problem = "Query.notes: Note has no id or _id field (set stream_plans.note.id_field)"
    assert any(
        f"stream 'note' is listed but a sync of it fails: {problem}" in m
        for m in _messages(caplog, logging.WARNING)
    )
    tap = TapMoovago(config=config, catalog=only_streams(catalog, {"note"}))
    tap._client = _Answers({"team": {"id": "t1"}})  # type: ignore[assignment]
    with pytest.raises(PagingError) as caught:
        _records(tap)
    assert str(caught.value) == f"Stream 'note' cannot be read: {problem}"
    fixed = {**config, "stream_plans": {"note": {"id_field": "uid"}}}
    tap = TapMoovago(config=fixed, catalog=only_streams(discover(fixed), {"note"}))
    rows = [{"uid": "n1", "text": "x"}]
    tap._client = _OffsetList("notes", rows, {"id": "t1"})  # type: ignore[assignment]
    assert _records(tap) == [{"uid": "n1", "text": "x"}]


def test_an_override_shows_in_the_logged_plan(caplog):
    paging = {"kind": "offset", "offset_arg": "offset", "size_arg": "limit"}
    config = {**OFFLINE, "stream_plans": {"company": {"paging": paging}}}
    with caplog.at_level(logging.INFO):
        TapMoovago(config=config, validate_config=False).catalog_dict  # noqa: B018
    line = next(m for m in _messages(caplog, logging.INFO) if m.startswith("Stream 'company' plan"))
    assert "paging offset(offset/limit)" in line
    assert line.endswith("overridden: paging")


def test_a_wrong_override_stops_the_tap_with_one_line(tmp_path):
    config = {**OFFLINE, "stream_plans": {"company": {"id_field": "uid"}}}
    result = run_cli(["--discover"], config, tmp_path)
    assert result.returncode != 0
    assert "Setting stream_plans.company.id_field: Company has no field 'uid' in" in result.stderr
    assert "Traceback" not in result.stderr
