"""Never silent, end to end, on every schema file under tests/schema_variants/: discovery lists
each root list of objects as a stream or names it in a WARNING, and `moovago-schema plan --format
json` gives every root field that is not a stream a reason.

Which root fields list objects is decided here from the file alone (graphql-core), not by the
conventions under test: a list of objects, or an object holding one under `nodes`, `items` or
`edges { node }`.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from graphql import (
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    build_schema,
    get_named_type,
)

from moovago_schema.cli import main
from tests.tap.helpers import discover

VARIANTS = Path(__file__).resolve().parents[1] / "schema_variants"
FILES = sorted(str(p.relative_to(VARIANTS)) for p in VARIANTS.rglob("*.gql"))
OFFLINE = {"api_url": "http://127.0.0.1:9/graphql", "api_key": "offline-key"}
_OBJECTS = (GraphQLObjectType, GraphQLInterfaceType)


def _objects_list(gql_type: GraphQLOutputType) -> bool:
    if isinstance(gql_type, GraphQLNonNull):
        gql_type = gql_type.of_type
    return isinstance(gql_type, GraphQLList) and isinstance(get_named_type(gql_type), _OBJECTS)


def lists_objects(root: GraphQLField) -> bool:
    """A root field whose answer holds rows of objects (a list, or a connection of them)."""
    if _objects_list(root.type):
        return True
    named = get_named_type(root.type)
    if isinstance(named, GraphQLList) or not isinstance(named, _OBJECTS):
        return False
    fields = named.fields
    if any(name in fields and _objects_list(fields[name].type) for name in ("nodes", "items")):
        return True
    edge = get_named_type(fields["edges"].type) if "edges" in fields else None
    return (
        isinstance(edge, _OBJECTS)
        and "node" in edge.fields
        and _objects_list(fields["edges"].type)
        and isinstance(get_named_type(edge.fields["node"].type), _OBJECTS)
    )


def test_the_files_are_found() -> None:
    assert {"families/compose.gql", "shapes/unions.gql", "base.gql"} <= set(FILES)


@pytest.mark.parametrize("name", FILES)
def test_no_root_list_disappears_from_discovery_without_a_warning(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = VARIANTS / name
    query = build_schema(path.read_text(encoding="utf-8")).query_type
    assert query is not None
    with caplog.at_level(logging.INFO):
        catalog = discover({**OFFLINE, "schema_path": str(path)})
    listed = {entry["tap_stream_id"] for entry in catalog["streams"]}
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    # Each stream's plan line names its root field: the root fields discovery made streams of.
    as_streams = {
        text.split(" plan: Query.")[1].split(";")[0]
        for _, text in messages
        if text.split("'")[1:2] and text.split("'")[1] in listed and " plan: Query." in text
    }
    warned = " ".join(text for level, text in messages if level >= logging.WARNING)
    silent = [
        f"{query.name}.{field}"
        for field, root in query.fields.items()
        if lists_objects(root)
        and field not in as_streams
        and f"{query.name}.{field}" not in warned
        and f"Query.{field}(" not in warned
        and f"Query.{field} " not in warned
    ]
    assert silent == [], f"{name}: root lists neither streams nor warned about"
    assert as_streams, f"{name}: no stream at all"


@pytest.mark.parametrize("name", FILES)
def test_plan_json_gives_every_root_field_not_a_stream_a_reason(name: str) -> None:
    path = VARIANTS / name
    query = build_schema(path.read_text(encoding="utf-8")).query_type
    assert query is not None
    out = io.StringIO()
    assert main(["plan", "--schema", str(path), "--format", "json"], out=out) == 0
    payload = json.loads(out.getvalue())
    streams = {plan["root_field"] for plan in payload["streams"]}
    reasons = {item["coordinate"]: item["reason"] for item in payload["not_streams"]}
    unnamed = [
        f"{query.name}.{field}"
        for field in query.fields
        if field not in streams and not reasons.get(f"{query.name}.{field}", "").strip()
    ]
    assert unnamed == [], f"{name}: root fields neither streams nor given a reason"
    assert not set(reasons) & {f"{query.name}.{root}" for root in streams}
