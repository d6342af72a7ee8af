"""Snowflake, as far as it can be proven offline (`make snowflake-check`; `make test` runs it).

- MeltanoLabs target-snowflake, in .venv-snowflake, creates a table for every stream of the tap
  against a fakesnow server on 127.0.0.1: every property a column, with the type its JSON
  Schema maps to (tests/e2e/snowflake/lane.py).
- The way back: rows with Snowflake's upper-case column names (and tap-snowflake's lower-case
  ones) go into target-moovago and land on the right Moovago fields; a rerun changes nothing.

Not proven here (needs a real account): the load itself (PUT to the user stage, COPY, MERGE),
authentication, warehouses and roles.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from moovago_sandbox.testing import SandboxHandle, start_sandbox
from tests.harness import meltano_project

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = meltano_project.ROOT
SNOWFLAKE_PYTHON = ROOT / ".venv-snowflake" / "bin" / "python"
LANE = ROOT / "tests" / "e2e" / "snowflake" / "lane.py"
TAP = Path(sys.executable).with_name("tap-moovago")
TARGET = Path(sys.executable).with_name("target-moovago")
SDC_COLUMNS = {
    "_SDC_EXTRACTED_AT": "TIMESTAMP_NTZ",
    "_SDC_RECEIVED_AT": "TIMESTAMP_NTZ",
    "_SDC_BATCHED_AT": "TIMESTAMP_NTZ",
    "_SDC_DELETED_AT": "TIMESTAMP_NTZ",
    "_SDC_SEQUENCE": "NUMBER",
    "_SDC_TABLE_VERSION": "NUMBER",
    "_SDC_SYNC_STARTED_AT": "NUMBER",
}


def snowflake_type(prop: dict[str, Any]) -> str:
    """The column type target-snowflake gives a JSON Schema property (as INFORMATION_SCHEMA
    spells it: VARCHAR is TEXT)."""
    types = prop.get("type", [])
    types = [types] if isinstance(types, str) else [t for t in types if t != "null"]
    if prop.get("anyOf"):
        types += [o["type"] for o in prop["anyOf"] if o.get("type") not in (None, "null")]
    kind = types[0]
    if kind == "string":
        return {"date-time": "TIMESTAMP_NTZ", "date": "DATE"}.get(prop.get("format", ""), "TEXT")
    return {
        "integer": "NUMBER",
        "number": "FLOAT",
        "boolean": "BOOLEAN",
        "object": "VARIANT",
        "array": "VARIANT",
    }[kind]


def _discovered(tmp_path: Path) -> list[dict[str, Any]]:
    config = tmp_path / "tap.json"
    config.write_text(json.dumps({"api_url": "http://127.0.0.1:9/graphql", "api_key": "unused"}))
    proc = subprocess.run(
        [str(TAP), "--config", str(config), "--discover"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return list(json.loads(proc.stdout)["streams"])


@pytest.fixture(scope="module")
def created(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], dict[str, Any]]:
    """The tap's streams and the tables target-snowflake created for their SCHEMA messages."""
    tmp = tmp_path_factory.mktemp("snowflake")
    make = subprocess.run(
        ["make", "-s", "snowflake"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert make.returncode == 0, make.stdout[-3000:] + make.stderr[-3000:]
    streams = _discovered(tmp)
    schemas = tmp / "schemas.jsonl"
    with schemas.open("w") as handle:
        for entry in streams:
            message = {
                "type": "SCHEMA",
                "stream": entry["stream"],
                "schema": entry["schema"],
                "key_properties": entry["key_properties"],
            }
            handle.write(json.dumps(message) + "\n")
    out = tmp / "columns.json"
    proc = subprocess.run(
        [str(SNOWFLAKE_PYTHON), str(LANE), str(schemas), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return streams, json.loads(out.read_text())


def test_target_snowflake_creates_a_table_per_stream(created: tuple[list, dict]) -> None:
    streams, columns = created
    assert set(columns) == {entry["stream"].upper() for entry in streams}
    assert len(columns) == 5


def test_every_column_has_the_type_its_json_schema_maps_to(created: tuple[list, dict]) -> None:
    streams, columns = created
    for entry in streams:
        table = columns[entry["stream"].upper()]
        properties = entry["schema"]["properties"]
        expected = {name.upper(): snowflake_type(prop) for name, prop in properties.items()}
        assert table == {**expected, **SDC_COLUMNS}, entry["stream"]
    # The ones a warehouse user reads first, spelled out.
    assert columns["COMPANY"]["UPDATEDAT"] == "TIMESTAMP_NTZ"
    assert columns["COMPANY"]["OWNERIDS"] == "VARIANT"
    assert columns["COMPANY"]["COORDINATES"] == "VARIANT"
    assert columns["TEAM"]["MEMBERS"] == "VARIANT"
    assert columns["TURNOVER"]["AMOUNT"] == "FLOAT"
    assert columns["TURNOVER"]["STARTDATE"] == "DATE"


# -- the way back: Snowflake's column spelling into target-moovago ------------------------------


@pytest.fixture
def box() -> Iterator[SandboxHandle]:
    with start_sandbox(companies=6) as handle:
        yield handle


def _push(box: SandboxHandle, tmp_path: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    config = tmp_path / "target.json"
    summary = tmp_path / "summary.json"
    config.write_text(
        json.dumps(
            {
                "api_url": box.url,
                "api_key": box.api_key,
                "max_requests_per_second": 5,
                "summary_path": str(summary),
                "rejects_path": str(tmp_path / "rejects.jsonl"),
            }
        )
    )
    properties = {name: {"type": ["string", "null"]} for name in rows[0]}
    lines = [{"type": "SCHEMA", "stream": "company", "schema": {"properties": properties}}]
    lines += [{"type": "RECORD", "stream": "company", "record": row} for row in rows]
    proc = subprocess.run(
        [str(TARGET), "--config", str(config)],
        input="".join(json.dumps(line) + "\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(summary.read_text())["streams"]["company"])


@pytest.mark.parametrize("spell", [str.upper, str.lower], ids=["snowflake", "tap-snowflake"])
def test_snowflake_column_names_write_back(box: SandboxHandle, tmp_path: Path, spell: Any) -> None:
    """Snowflake stores unquoted names upper case (POSTALCODE); tap-snowflake reads them back
    through SQLAlchemy in lower case (postalcode). Both reach the camelCase fields."""
    companies = sorted(
        (r for r in box.export()["company"] if r["teamId"] == box.team_id), key=lambda r: r["id"]
    )
    by_id = [
        {spell("id"): row["id"], spell("city"): "Annecy", spell("postalCode"): "74000"}
        for row in companies[:2]
    ]
    by_code = [{spell("customerCode"): companies[2]["customerCode"], spell("phone"): "+33 4 50"}]
    before = box.stats()["mutations"]["company"]
    summary = _push(box, tmp_path, by_id)
    assert (summary["updated"], summary["rejected"], summary["unknown_columns"]) == (2, 0, [])
    summary = _push(box, tmp_path, by_code)
    assert (summary["updated"], summary["rejected"], summary["unknown_columns"]) == (1, 0, [])
    stored = {row["id"]: row for row in box.export()["company"]}
    for row in companies[:2]:
        assert (stored[row["id"]]["city"], stored[row["id"]]["postalCode"]) == ("Annecy", "74000")
    assert stored[companies[2]["id"]]["phone"] == "+33 4 50"
    after = box.stats()["mutations"]["company"]
    assert after["update"] - before["update"] == 3
    assert after["create"] == before["create"]

    again = _push(box, tmp_path, by_id)
    assert (again["updated"], again["unchanged"]) == (0, 2)
    assert box.stats()["mutations"]["company"] == after
