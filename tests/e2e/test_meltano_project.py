"""meltano.yml is a valid Meltano project whose plugin definitions match the plugins themselves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from moovago_sandbox.testing import start_sandbox
from tests.harness import meltano_project
from tests.harness.pg import PgServer, fresh_database

pytestmark = pytest.mark.e2e

OUR_PLUGINS = [("extractors", "tap-moovago"), ("loaders", "target-moovago")]
ALL_PLUGINS = [*OUR_PLUGINS, ("extractors", "tap-postgres"), ("loaders", "target-postgres")]


def _project() -> dict[str, Any]:
    return yaml.safe_load(meltano_project.MELTANO_YML.read_text())


def _plugin(kind: str, name: str) -> dict[str, Any]:
    return next(p for p in _project()["plugins"][kind] if p["name"] == name)


@pytest.mark.parametrize(("kind", "name"), OUR_PLUGINS)
def test_settings_match_about(meltano_installed: Path, kind: str, name: str) -> None:
    """Same names, secrets declared sensitive, the plugin's defaults, a label and a description."""
    about = meltano_project.about(meltano_project.plugin_executable(kind, name))
    expected = {s["name"]: s for s in meltano_project.settings_from_about(about)}
    declared = {s["name"]: s for s in _plugin(kind, name)["settings"]}
    hint = "regenerate with `.venv/bin/python -m tests.harness.meltano_project --write`"

    assert sorted(declared) == sorted(expected), hint
    for setting_name, want in expected.items():
        have = declared[setting_name]
        assert have.get("kind") == want["kind"], f"{name}.{setting_name} kind; {hint}"
        assert bool(have.get("sensitive")) == bool(want.get("sensitive")), setting_name
        assert have.get("value") == want.get("value"), f"{name}.{setting_name} default; {hint}"
        assert have.get("label"), f"{name}.{setting_name} has no label"
        assert have.get("description"), f"{name}.{setting_name} has no description"
    secrets = {n for n, s in expected.items() if s.get("sensitive")}
    assert "api_key" in secrets


@pytest.mark.parametrize(("kind", "name"), OUR_PLUGINS)
def test_capabilities_are_the_plugins_own(meltano_installed: Path, kind: str, name: str) -> None:
    about = meltano_project.about(meltano_project.plugin_executable(kind, name))
    declared = set(_plugin(kind, name)["capabilities"])
    assert declared <= set(about["capabilities"])
    required = (
        {"catalog", "discover", "state", "about", "stream-maps", "schema-flattening", "batch"}
        if kind == "extractors"
        else {"about", "stream-maps"}
    )
    assert required <= declared


@pytest.mark.parametrize(("kind", "name"), ALL_PLUGINS)
def test_plugins_install_and_answer_about(meltano_installed: Path, kind: str, name: str) -> None:
    """`meltano install` made each plugin's venv, pinned versions for the MeltanoLabs ones."""
    about = meltano_project.about(meltano_project.plugin_executable(kind, name))
    assert about["name"] == name
    pip_url = _plugin(kind, name)["pip_url"]
    if name.endswith("postgres"):
        assert "==" in pip_url, f"{name} must be pinned"
        assert about["version"] == pip_url.split("==")[1]


@pytest.mark.parametrize(("kind", "name"), OUR_PLUGINS)
def test_config_list_shows_every_setting(
    meltano_installed: Path, e2e_workdir: Path, kind: str, name: str
) -> None:
    key = "e2e-secret-key-value"
    env = meltano_project.base_env(
        e2e_workdir,
        {"MOOVAGO_SANDBOX_URL": "http://127.0.0.1:9/graphql", "MOOVAGO_SANDBOX_API_KEY": key},
    )
    # No --environment: `meltano config` ignores default_environment, the plugins' config holds.
    out = meltano_project.run(["config", "list", name, "--all"], env)
    listed = out.stdout
    for setting in _plugin(kind, name)["settings"]:
        assert f"{setting['name']} [env: " in listed, setting["name"]
    assert "http://127.0.0.1:9/graphql" in listed
    assert key not in listed + out.stderr, "the API key must be redacted"


def test_prod_environment_reads_the_account_from_environment_variables(
    meltano_installed: Path, e2e_workdir: Path, tmp_path: Path
) -> None:
    schema_file = tmp_path / "moovago_api_graphql_schema.gql"
    env = meltano_project.base_env(
        e2e_workdir,
        {
            "MOOVAGO_API_URL": "https://api.example.invalid/graphql",
            "MOOVAGO_API_KEY": "prod-key",
            "MOOVAGO_SCHEMA_PATH": str(schema_file),
        },
    )
    for name in ("tap-moovago", "target-moovago"):
        out = meltano_project.run(
            ["--environment", "prod", "config", "--unsafe", "print", name], env
        )
        config = json.loads(out.stdout)
        assert config["api_url"] == "https://api.example.invalid/graphql"
        assert config["api_key"] == "prod-key"
        assert config["schema_path"] == str(schema_file)


def test_jobs_run_both_directions() -> None:
    jobs = {job["name"]: job["tasks"] for job in _project()["jobs"]}
    assert jobs == {
        "moovago-to-postgres": ["tap-moovago target-postgres"],
        "postgres-to-moovago": ["tap-postgres target-moovago"],
    }


def test_fresh_database_is_dropped_at_exit(pg_server: PgServer) -> None:
    with (
        fresh_database(pg_server, prefix="moovago_e2e_probe") as name,
        pg_server.connect(name) as conn,
    ):
        conn.execute("CREATE TABLE probe (id int)")
        conn.commit()
    with pg_server.connect(autocommit=True) as conn:
        query = "SELECT count(*) FROM pg_database WHERE datname = %s"
        row = conn.execute(query, (name,)).fetchone()
    assert row == (0,)


def test_invoke_test_checks_the_key_and_names_the_settings(
    meltano_installed: Path, e2e_workdir: Path
) -> None:
    """README troubleshooting: `meltano invoke tap-moovago --test` tells a bad key apart."""
    with start_sandbox(companies=2) as box:
        env = {"MOOVAGO_SANDBOX_URL": box.url, "MOOVAGO_SANDBOX_API_KEY": box.api_key}
        good = meltano_project.base_env(e2e_workdir, env)
        out = meltano_project.run(
            ["--environment", "sandbox", "invoke", "tap-moovago", "--test"], good
        )
        assert "Connection test passed" in out.stderr

        bad_key = "not-the-sandbox-key-123"
        bad = meltano_project.base_env(e2e_workdir, {**env, "MOOVAGO_SANDBOX_API_KEY": bad_key})
        with pytest.raises(meltano_project.MeltanoError) as failure:
            meltano_project.run(
                ["--environment", "sandbox", "invoke", "tap-moovago", "--test"], bad
            )
    message = str(failure.value)
    assert "api_key" in message
    assert "api_key_header" in message
    assert bad_key not in message


@pytest.mark.slow
def test_invoke_doctor_runs_the_doctor_with_the_plugins_settings(
    meltano_installed: Path, e2e_workdir: Path
) -> None:
    """README: `meltano invoke tap-moovago:doctor` checks the account with the tap's settings."""
    with start_sandbox(companies=12) as box:
        env = {
            "MOOVAGO_SANDBOX_URL": box.url,
            "MOOVAGO_SANDBOX_API_KEY": box.api_key,
            # Small pages so 12 companies can show the page cap holding (exit 0).
            "TAP_MOOVAGO_PAGE_SIZE": "5",
        }
        out = meltano_project.run(
            ["--environment", "sandbox", "invoke", "tap-moovago:doctor", "--format=json"],
            meltano_project.base_env(e2e_workdir, env),
        )
        assert box.stats()["mutations_total"] == 0
    report = json.loads(out.stdout[out.stdout.index("{") :])
    assert report["settings"]["api_url"].startswith(box.url.rstrip("/"))
    assert report["settings"]["page_size"] == 5
    assert report["exit_code"] == 0
    assert {row["verdict"] for row in report["rows"]} == {"holds"}
    assert box.api_key not in out.stdout + out.stderr
