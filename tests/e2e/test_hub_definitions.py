"""The Hub-format plugin definitions in plugins/ match the plugins' own `--about`, and a fresh
Meltano project outside the repository adds both from them (`meltano add --from-ref`, pip_url
pointing at this checkout), runs `--about` and `--test`, and runs the pipeline to PostgreSQL
against the sandbox, the tap in BATCH mode (its declared `batch` capability)."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from moovago_sandbox.testing import SandboxHandle, start_sandbox
from tests.harness import meltano_project
from tests.harness.pg import PgServer

ROOT = meltano_project.ROOT
PLUGINS = {"tap-moovago": "extractors", "target-moovago": "loaders"}
STREAMS = {
    "team": "team",
    "company": "company",
    "contact": "companyContact",
    "mandator": "mandator",
    "turnover": "turnover",
}
HINT = "regenerate with `.venv/bin/python -m tests.harness.meltano_project --write`"


def _definition(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load(meltano_project.HUB_DEFINITIONS[name].read_text()))


def _about(name: str) -> dict[str, Any]:
    return meltano_project.about(Path(sys.executable).with_name(name))


@pytest.mark.parametrize("name", list(PLUGINS))
def test_definition_is_generated_from_about(name: str) -> None:
    """Settings (names, kinds, labels, descriptions, defaults, secrets) and capabilities come
    from the plugin itself, so the shipped file cannot drift from the code."""
    about = _about(name)
    definition = _definition(name)
    assert definition == meltano_project.hub_definition(name, about), HINT
    path = meltano_project.HUB_DEFINITIONS[name]
    assert path.read_text() == meltano_project.hub_yaml(name, definition), HINT


@pytest.mark.parametrize("name", list(PLUGINS))
def test_definition_installs_by_distribution_name(name: str) -> None:
    definition = _definition(name)
    assert definition["pip_url"] == "moovago-connectors"
    assert definition["executable"] == name
    assert definition["namespace"] == name.replace("-", "_")
    settings = {s["name"]: s for s in definition["settings"]}
    assert settings["api_key"]["sensitive"] is True
    assert all(s.get("label") and s.get("description") for s in settings.values())
    assert definition["settings_group_validation"] == [["api_key", "api_url"]]


@pytest.mark.slow
def test_tap_declares_batch_and_batch_writes_every_row(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    assert "batch" in _definition("tap-moovago")["capabilities"]
    config = {
        "api_url": sandbox.url,
        "api_key": sandbox.api_key,
        "batch_config": {
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": {"root": tmp_path.as_uri(), "prefix": "moovago-"},
        },
    }
    (tmp_path / "tap.json").write_text(json.dumps(config))
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("tap-moovago")),
            "--config",
            str(tmp_path / "tap.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    messages = [json.loads(line) for line in proc.stdout.splitlines()]
    assert not [m for m in messages if m["type"] == "RECORD"]
    export = sandbox.export()
    for stream, entity in STREAMS.items():
        batches = [m for m in messages if m["type"] == "BATCH" and m["stream"] == stream]
        assert batches, stream
        ids = []
        for batch in batches:
            for uri in batch["manifest"]:
                with gzip.open(Path(urlsplit(uri).path), "rt") as handle:
                    ids += [json.loads(line)["id"] for line in handle]
        if stream == "team":
            expected = [sandbox.team_id]
        else:
            expected = [r["id"] for r in export[entity] if r.get("teamId") == sandbox.team_id]
        assert sorted(ids) == sorted(expected), stream


# -- a fresh Meltano project outside the repository ---------------------------------------------


@dataclass
class FreshProject:
    root: Path
    env: dict[str, str]
    box: SandboxHandle

    def meltano(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(meltano_project.MELTANO), *args],
            cwd=self.root,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        if proc.returncode != 0:
            raise meltano_project.MeltanoError(
                f"meltano {' '.join(args)} exited {proc.returncode}\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
            )
        return proc


def _local_ref(name: str, directory: Path) -> Path:
    """The shipped definition, installing from this checkout instead of the package index."""
    definition = _definition(name)
    definition["pip_url"] = str(ROOT)
    path = directory / f"{name}.yml"
    path.write_text(yaml.safe_dump(definition, sort_keys=False))
    return path


def _target_postgres_ref(directory: Path) -> Path:
    """target-postgres as meltano.yml pins it, without this project's config."""
    loaders = yaml.safe_load(meltano_project.MELTANO_YML.read_text())["plugins"]["loaders"]
    definition = next(p for p in loaders if p["name"] == "target-postgres")
    definition = {k: v for k, v in definition.items() if k != "config"}
    path = directory / "target-postgres.yml"
    path.write_text(yaml.safe_dump(definition, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def fresh_project(pg_server: PgServer, pg_database: str) -> Iterator[FreshProject]:
    meltano_project.ensure_meltano()
    # Outside the repository and outside pytest's temp base (see conftest): a user's own place.
    home = Path(tempfile.mkdtemp(prefix="moovago-fresh-project-"))
    try:
        with start_sandbox(companies=8) as box:
            env = meltano_project.base_env(
                home,
                {
                    "TAP_MOOVAGO_API_URL": box.url,
                    "TAP_MOOVAGO_API_KEY": box.api_key,
                    "TARGET_MOOVAGO_API_URL": box.url,
                    "TARGET_MOOVAGO_API_KEY": box.api_key,
                    "TARGET_MOOVAGO_SUMMARY_PATH": str(home / "summary.json"),
                    "TARGET_MOOVAGO_REJECTS_PATH": str(home / "rejects.jsonl"),
                    "TARGET_POSTGRES_HOST": pg_server.host,
                    "TARGET_POSTGRES_PORT": str(pg_server.port),
                    "TARGET_POSTGRES_USER": pg_server.user,
                    "TARGET_POSTGRES_PASSWORD": pg_server.password or "unused",
                    "TARGET_POSTGRES_DATABASE": pg_database,
                    "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": "moovago",
                    "TARGET_POSTGRES_LOAD_METHOD": "upsert",
                },
            )
            env.pop("MELTANO_PROJECT_ROOT", None)
            project = FreshProject(home / "my-project", env, box)
            subprocess.run(
                [str(meltano_project.MELTANO), "init", str(project.root), "--no_usage_stats"],
                cwd=home,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=True,
            )
            refs = home / "refs"
            refs.mkdir()
            for name in PLUGINS:
                project.meltano(
                    "add", "--no-install", "--from-ref", str(_local_ref(name, refs)), name
                )
            ref = _target_postgres_ref(refs)
            project.meltano("add", "--no-install", "--from-ref", str(ref), "target-postgres")
            project.meltano("install")
            yield project
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.e2e
@pytest.mark.slow
def test_fresh_project_holds_the_shipped_definitions(fresh_project: FreshProject) -> None:
    declared = yaml.safe_load((fresh_project.root / "meltano.yml").read_text())["plugins"]
    for name, kind in PLUGINS.items():
        plugin = next(p for p in declared[kind] if p["name"] == name)
        shipped = _definition(name)
        assert plugin["pip_url"] == str(ROOT)
        assert plugin["capabilities"] == shipped["capabilities"]
        assert [s["name"] for s in plugin["settings"]] == [s["name"] for s in shipped["settings"]]
    assert not str(fresh_project.root).startswith(str(ROOT))


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("name", list(PLUGINS))
def test_fresh_project_invokes_about(fresh_project: FreshProject, name: str) -> None:
    out = fresh_project.meltano("invoke", name, "--about", "--format=json")
    about = json.loads(out.stdout)
    assert about["name"] == name
    assert about["capabilities"] == _definition(name)["capabilities"]


@pytest.mark.e2e
@pytest.mark.slow
def test_fresh_project_tap_test_passes(fresh_project: FreshProject) -> None:
    out = fresh_project.meltano("invoke", "tap-moovago", "--test")
    assert "Connection test passed" in out.stdout + out.stderr


@pytest.mark.e2e
@pytest.mark.slow
def test_fresh_project_runs_to_postgres_in_batch_mode(
    fresh_project: FreshProject, pg_server: PgServer, pg_database: str, tmp_path: Path
) -> None:
    batch = {
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "storage": {"root": tmp_path.as_uri(), "prefix": "fresh-"},
    }
    env = {**fresh_project.env, "TAP_MOOVAGO_BATCH_CONFIG": json.dumps(batch)}
    project = FreshProject(fresh_project.root, env, fresh_project.box)
    project.meltano("run", "tap-moovago", "target-postgres")
    assert list(tmp_path.glob("fresh-*.json.gz")), "the tap did not write BATCH files"
    export = fresh_project.box.export()
    team = fresh_project.box.team_id
    with pg_server.connect(pg_database) as conn:
        for stream, entity in STREAMS.items():
            ids = {i for (i,) in conn.execute(f'SELECT id FROM moovago."{stream}"')}  # noqa: S608
            rows = export[entity]
            expected = {
                r["id"] for r in rows if (r["id"] if stream == "team" else r["teamId"]) == team
            }
            assert ids == expected, stream
        types = dict(
            conn.execute(
                "SELECT column_name, udt_name FROM information_schema.columns "
                "WHERE table_schema = 'moovago' AND table_name = 'team'"
            ).fetchall()
        )
    assert types["members"] == "_jsonb"  # jsonb[], as the README says


@pytest.mark.e2e
@pytest.mark.slow
def test_fresh_project_target_writes_to_the_sandbox(fresh_project: FreshProject) -> None:
    box = fresh_project.box
    company = sorted(
        (r for r in box.export()["company"] if r["teamId"] == box.team_id), key=lambda r: r["id"]
    )[0]
    lines = [
        {
            "type": "SCHEMA",
            "stream": "company",
            "schema": {"properties": {"id": {"type": "string"}, "city": {"type": "string"}}},
            "key_properties": [],
        },
        {"type": "RECORD", "stream": "company", "record": {"id": company["id"], "city": "Rennes"}},
    ]
    stdin = "".join(json.dumps(line) + "\n" for line in lines)
    fresh_project.meltano("invoke", "target-moovago", stdin=stdin)
    stored = {r["id"]: r for r in box.export()["company"]}
    assert stored[company["id"]]["city"] == "Rennes"
    summary = json.loads((fresh_project.root.parent / "summary.json").read_text())
    assert summary["streams"]["company"]["updated"] == 1
