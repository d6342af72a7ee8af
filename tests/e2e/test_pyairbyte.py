"""PyAirbyte (in .venv-pyairbyte, `make pyairbyte`) drives source-moovago and
destination-moovago as local executables with its DuckDB cache: the first read caches every
row, an incremental read brings only the changes, and cached rows edited with SQL are written
back to Moovago, a rerun changing nothing (tests/e2e/pyairbyte/run.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from moovago_sandbox.testing import SandboxHandle, start_sandbox
from tests.e2e.test_airbyte import STREAMS, team_rows
from tests.harness import meltano_project

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = meltano_project.ROOT
PYAIRBYTE_PYTHON = ROOT / ".venv-pyairbyte" / "bin" / "python"
RUN = ROOT / "tests" / "e2e" / "pyairbyte" / "run.py"
SOURCE = Path(sys.executable).with_name("source-moovago")
DESTINATION = Path(sys.executable).with_name("destination-moovago")
EDIT = (
    "UPDATE {table} SET city = 'Lorient' WHERE id IN (SELECT id FROM {table} ORDER BY id LIMIT 2)"
)


@dataclass
class PyAirbyte:
    box: SandboxHandle
    workdir: Path
    source_config: Path
    destination_config: Path
    cache: Path
    runs: int = 0

    def _run(self, *args: str) -> dict[str, Any]:
        self.runs += 1
        out = self.workdir / f"out-{self.runs}.json"
        env = {
            **os.environ,
            # Never the connector registry nor telemetry: the connectors are local executables.
            "AIRBYTE_OFFLINE_MODE": "1",
            "DO_NOT_TRACK": "1",
            "AIRBYTE_LOGGING_ROOT": str(self.workdir / "logs"),
            "AIRBYTE_CACHE_ROOT": str(self.workdir / "cache-root"),
        }
        argv = [str(PYAIRBYTE_PYTHON), str(RUN), args[0], *args[1:-1], str(out), args[-1]]
        if args[-1] is None:
            argv = argv[:-1]
        proc = subprocess.run(
            [a for a in argv if a is not None],
            capture_output=True,
            text=True,
            timeout=900,
            env=env,
            check=False,
            cwd=self.workdir,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
        return dict(json.loads(out.read_text()))

    def read(self) -> dict[str, Any]:
        return self._run("read", str(SOURCE), str(self.source_config), str(self.cache), None)

    def write(self, stream: str, sql: str) -> dict[str, Any]:
        return self._run(
            "write",
            str(SOURCE),
            str(DESTINATION),
            str(self.source_config),
            str(self.destination_config),
            str(self.cache),
            stream,
            sql,
        )

    def summary(self) -> dict[str, Any]:
        return dict(json.loads((self.workdir / "summary.json").read_text())["streams"])


@pytest.fixture(scope="module")
def pyairbyte(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PyAirbyte]:
    make = subprocess.run(
        ["make", "-s", "pyairbyte"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert make.returncode == 0, make.stdout[-3000:] + make.stderr[-3000:]
    workdir = tmp_path_factory.mktemp("pyairbyte")
    with start_sandbox(companies=10) as box:
        source = workdir / "source.json"
        source.write_text(json.dumps({"api_url": box.url, "api_key": box.api_key}))
        destination = workdir / "destination.json"
        destination.write_text(
            json.dumps(
                {
                    "api_url": box.url,
                    "api_key": box.api_key,
                    "max_requests_per_second": 5,
                    "summary_path": str(workdir / "summary.json"),
                    "rejects_path": str(workdir / "rejects.jsonl"),
                }
            )
        )
        yield PyAirbyte(box, workdir, source, destination, workdir / "duckdb")


@pytest.fixture(scope="module")
def first_read(pyairbyte: PyAirbyte) -> dict[str, Any]:
    return pyairbyte.read()


def test_first_read_caches_every_row(pyairbyte: PyAirbyte, first_read: dict[str, Any]) -> None:
    total = 0
    for stream in STREAMS:
        expected = sorted(row["id"] for row in team_rows(pyairbyte.box, stream))
        assert expected, stream
        assert first_read["streams"][stream]["ids"] == expected, stream
        total += len(expected)
    assert first_read["processed_records"] == total


@dataclass
class Written:
    before: dict[str, int]
    after: dict[str, int]
    summary: dict[str, Any]


@pytest.fixture(scope="module")
def written(pyairbyte: PyAirbyte, first_read: dict[str, Any]) -> Written:
    """Two cached companies edited with SQL, then the cached stream written to Moovago."""
    before = pyairbyte.box.stats()["mutations"]["company"]
    pyairbyte.write("company", EDIT)
    after = pyairbyte.box.stats()["mutations"]["company"]
    return Written(before, after, pyairbyte.summary()["company"])


@pytest.fixture(scope="module")
def second_read(pyairbyte: PyAirbyte, written: Written) -> dict[str, Any]:
    return pyairbyte.read()


def test_sql_edits_write_back(pyairbyte: PyAirbyte, written: Written) -> None:
    box = pyairbyte.box
    company = written.summary
    companies = sorted(row["id"] for row in team_rows(box, "company"))
    assert (company["updated"], company["created"], company["rejected"]) == (2, 0, 0)
    assert company["unchanged"] == len(companies) - 2
    stored = {row["id"]: row for row in team_rows(box, "company")}
    assert [stored[i]["city"] for i in companies[:2]] == ["Lorient", "Lorient"]
    assert written.after["update"] - written.before["update"] == 2
    assert written.after["create"] == written.before["create"]


def test_incremental_read_brings_only_the_changed_rows(
    pyairbyte: PyAirbyte, first_read: dict[str, Any], second_read: dict[str, Any]
) -> None:
    """After the write-back (two companies changed in Moovago) PyAirbyte reads from the state
    its cache keeps: the two companies, and per stream only rows at exactly the old cursor (the
    filter is inclusive, so nothing written in the cursor's millisecond is missed)."""
    box = pyairbyte.box
    changed = sorted(row["id"] for row in team_rows(box, "company"))[:2]
    company = second_read["streams"]["company"]
    assert set(changed) <= set(company["read_now"])
    assert len(company["read_now"]) <= len(changed) + 1
    for stream in ("contact", "mandator", "turnover"):
        read_now = second_read["streams"][stream]["read_now"]
        assert len(read_now) < len(first_read["streams"][stream]["ids"]), stream
        rows = team_rows(box, stream)
        cursor = max(row["updatedAt"] for row in rows)
        latest = {row["id"] for row in rows if row["updatedAt"] == cursor}
        assert set(read_now) == latest, stream
    assert second_read["streams"]["company"]["ids"] == first_read["streams"]["company"]["ids"]
    read_now = sum(len(stream["read_now"]) for stream in second_read["streams"].values())
    assert second_read["processed_records"] == read_now


def test_a_rerun_of_the_write_changes_nothing(
    pyairbyte: PyAirbyte, written: Written, second_read: dict[str, Any]
) -> None:
    pyairbyte.write("company", "")
    company = pyairbyte.summary()["company"]
    assert (company["updated"], company["created"], company["rejected"]) == (0, 0, 0)
    assert company["unchanged"] == len(team_rows(pyairbyte.box, "company"))
    assert pyairbyte.box.stats()["mutations"]["company"] == written.after
