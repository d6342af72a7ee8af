"""Both jobs of meltano.yml through `meltano run`, with the real MeltanoLabs plugins and a real
PostgreSQL: sandbox -> tap-moovago -> target-postgres, then warehouse rows changed with SQL ->
tap-postgres -> target-moovago -> sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from moovago_sandbox.testing import SandboxHandle, start_sandbox
from tests.harness import meltano_project
from tests.harness.pg import PgServer

pytestmark = pytest.mark.e2e

#: Moovago stream -> the sandbox export's entity.
STREAMS = {
    "team": "team",
    "company": "company",
    "contact": "companyContact",
    "mandator": "mandator",
    "turnover": "turnover",
}
UPDATED = 3
NEW_COMPANIES = [
    ("E2E Boulangerie Nouvelle", "E2E-0001", "Nantes", "44000"),
    ("E2E Quincaillerie du Port", "E2E-0002", "Brest", "29200"),
]


def _team_rows(export: dict[str, list[dict[str, Any]]], entity: str, team_id: str) -> list[dict]:
    rows = export[entity]
    if entity == "team":
        return [row for row in rows if row["id"] == team_id]
    return [row for row in rows if row.get("teamId") == team_id]


def _by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in rows}


@dataclass
class Pipeline:
    box: SandboxHandle
    pg: PgServer
    database: str
    env: dict[str, str]
    workdir: Path

    def meltano(self, *args: str) -> None:
        meltano_project.run(
            ["--environment", "sandbox", *args], self.env, log=self.workdir / "meltano.log"
        )

    def query(self, statement: str, params: tuple = ()) -> list[tuple]:
        with self.pg.connect(self.database) as conn:
            return conn.execute(statement, params).fetchall()

    def execute(self, statement: str, params: tuple = ()) -> None:
        with self.pg.connect(self.database) as conn:
            conn.execute(statement, params)

    def summary(self) -> dict[str, Any]:
        return json.loads((self.workdir / "summary.json").read_text())

    def company_mutations(self) -> dict[str, int]:
        return self.box.stats()["mutations"]["company"]


@pytest.fixture(scope="module")
def pipeline(
    meltano_installed: Path,
    pg_server: PgServer,
    pg_database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Pipeline]:
    workdir = tmp_path_factory.mktemp("pipeline")
    with start_sandbox(companies=20) as box:
        env = meltano_project.base_env(
            workdir,
            {
                "MOOVAGO_SANDBOX_URL": box.url,
                "MOOVAGO_SANDBOX_API_KEY": box.api_key,
                **pg_server.meltano_env(pg_database),
                "TARGET_MOOVAGO_SUMMARY_PATH": str(workdir / "summary.json"),
                "TARGET_MOOVAGO_REJECTS_PATH": str(workdir / "rejects.jsonl"),
            },
        )
        yield Pipeline(box, pg_server, pg_database, env, workdir)


@pytest.fixture(scope="module")
def loaded(pipeline: Pipeline) -> dict[str, list[dict[str, Any]]]:
    """The `moovago-to-postgres` job has run; returns the sandbox export it read."""
    export = pipeline.box.export()
    pipeline.meltano("run", "moovago-to-postgres")
    return export


def test_load_makes_a_table_per_stream_holding_every_sandbox_row(
    pipeline: Pipeline, loaded: dict[str, list[dict[str, Any]]]
) -> None:
    tables = {
        name
        for (name,) in pipeline.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'moovago'"
        )
    }
    assert tables == set(STREAMS)
    for stream, entity in STREAMS.items():
        expected = _team_rows(loaded, entity, pipeline.box.team_id)
        assert expected, f"the sandbox has no {entity} rows to compare with"
        ids = {row_id for (row_id,) in pipeline.query(f'SELECT id FROM moovago."{stream}"')}  # noqa: S608
        assert ids == {row["id"] for row in expected}, stream
        (count,) = pipeline.query(f'SELECT count(*) FROM moovago."{stream}"')[0]  # noqa: S608
        assert count == len(expected), f"{stream}: duplicates"


def test_load_gives_columns_sensible_types(
    pipeline: Pipeline, loaded: dict[str, list[dict[str, Any]]]
) -> None:
    types = {
        (table, column): data_type
        for table, column, data_type in pipeline.query(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'moovago'"
        )
    }
    text = {"text", "character varying"}
    timestamps = {"timestamp without time zone", "timestamp with time zone"}
    for stream in STREAMS:
        assert types[(stream, "id")] in text, stream
    for stream in ("company", "contact", "mandator", "turnover"):
        assert types[(stream, "teamId")] in text, stream
        assert types[(stream, "createdAt")] in timestamps, stream
        assert types[(stream, "updatedAt")] in timestamps, stream
    assert types[("contact", "companyId")] in text
    assert types[("turnover", "amount")] == "numeric"
    assert types[("turnover", "startDate")] in {"date", *timestamps}
    assert types[("turnover", "endDate")] in {"date", *timestamps}
    assert types[("company", "ownerIds")] in {"ARRAY", "jsonb"}
    assert types[("company", "coordinates")] == "jsonb"
    # Lists of objects: one jsonb per element, as the README says.
    udt = dict(
        pipeline.query(
            "SELECT table_name || '.' || column_name, udt_name FROM information_schema.columns "
            "WHERE table_schema = 'moovago'"
        )
    )
    assert udt["team.members"] == "_jsonb"
    assert udt["company.mandators"] == "_jsonb"
    # Deprecated fields stay out unless include_deprecated_fields is set.
    assert ("company", "zipCode") not in types


@dataclass
class Pushed:
    before: dict[str, dict[str, Any]]  # company id -> row, sandbox before the push
    after: dict[str, dict[str, Any]]
    updated_ids: list[str]
    mutations_before: dict[str, int]
    mutations_after: dict[str, int]
    summary: dict[str, Any]


@pytest.fixture(scope="module")
def pushed(pipeline: Pipeline, loaded: dict[str, list[dict[str, Any]]]) -> Pushed:
    """A sales-ops copy of the loaded companies in `crm.company` (every column, `_sdc_*` and
    read-only ones included), 3 rows updated and 2 inserted with SQL, then the
    `postgres-to-moovago` job."""
    pipeline.execute("CREATE SCHEMA crm")
    pipeline.execute("CREATE TABLE crm.company AS SELECT * FROM moovago.company")
    updated_ids = [
        row_id
        for (row_id,) in pipeline.query(
            "SELECT id FROM crm.company ORDER BY id LIMIT %s", (UPDATED,)
        )
    ]
    pipeline.execute(
        "UPDATE crm.company SET city = 'Lyon', phone = '+33 4 72 00 00 0' || right(id, 1) "
        "WHERE id = ANY(%s)",
        (updated_ids,),
    )
    for new_company in NEW_COMPANIES:
        pipeline.execute(
            'INSERT INTO crm.company (name, "customerCode", city, "postalCode", status, '
            '"ownerIds", "mandatorIds") '
            "VALUES (%s, %s, %s, %s, 'PROSPECT', "
            '(SELECT "ownerIds" FROM moovago.company ORDER BY id LIMIT 1), ARRAY[]::text[])',
            new_company,
        )

    before = _by_id(pipeline.box.export()["company"])
    mutations_before = pipeline.company_mutations()
    pipeline.meltano("run", "postgres-to-moovago")
    return Pushed(
        before=before,
        after=_by_id(pipeline.box.export()["company"]),
        updated_ids=updated_ids,
        mutations_before=mutations_before,
        mutations_after=pipeline.company_mutations(),
        summary=pipeline.summary(),
    )


def _without_timestamps(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "updatedAt"}


def test_push_updates_exactly_the_changed_rows(pushed: Pushed) -> None:
    for row_id in pushed.updated_ids:
        old, new = pushed.before[row_id], pushed.after[row_id]
        assert new["city"] == "Lyon"
        assert new["phone"] == f"+33 4 72 00 00 0{row_id[-1]}"
        changed = {k for k in old if old[k] != new[k]} - {"updatedAt"}
        assert changed <= {"city", "phone"}, row_id
    untouched = set(pushed.before) - set(pushed.updated_ids)
    for row_id in untouched:
        assert pushed.after[row_id] == pushed.before[row_id], row_id


def test_push_creates_each_inserted_row_once(pushed: Pushed) -> None:
    new_rows = [row for row_id, row in pushed.after.items() if row_id not in pushed.before]
    assert len(new_rows) == len(NEW_COMPANIES)
    by_code = {row["customerCode"]: row for row in new_rows}
    for name, code, city, postal_code in NEW_COMPANIES:
        row = by_code[code]
        assert (row["name"], row["city"], row["postalCode"]) == (name, city, postal_code)
        assert row["status"] == "PROSPECT"


def test_push_sends_one_mutation_per_change_and_reports_it(pushed: Pushed) -> None:
    sent = {k: pushed.mutations_after[k] - pushed.mutations_before[k] for k in ("create", "update")}
    assert sent == {"create": len(NEW_COMPANIES), "update": UPDATED}
    assert pushed.mutations_after["delete"] == pushed.mutations_before["delete"]
    company = _summary_stream(pushed.summary, "company")
    assert company["created"] == len(NEW_COMPANIES)
    assert company["updated"] == UPDATED
    assert company["rejected"] == 0


def test_second_push_writes_nothing(pipeline: Pipeline, pushed: Pushed) -> None:
    pipeline.meltano("run", "postgres-to-moovago")
    assert pipeline.company_mutations() == pushed.mutations_after
    after = _by_id(pipeline.box.export()["company"])
    assert {k: _without_timestamps(v) for k, v in after.items()} == {
        k: _without_timestamps(v) for k, v in pushed.after.items()
    }
    company = _summary_stream(pipeline.summary(), "company")
    assert (company["created"], company["updated"]) == (0, 0)
    assert company["unchanged"] == len(pushed.after)


def _summary_stream(summary: dict[str, Any], stream: str) -> dict[str, Any]:
    streams = summary.get("streams", summary)
    return streams[stream]
