"""The tap's command line: settings errors, --about, --discover, --test."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.tap.helpers import (
    discover,
    error_lines,
    export_rows,
    parse_messages,
    run_cli,
    set_selected,
    tap_config,
)

SECRET = "sk-do-not-print-4711"


@pytest.fixture
def sandbox(sandbox_factory):
    """A sandbox of the test's own (rebuilt from the pool): these tests read the request log,
    which the shared sandbox fills with other tests' requests."""
    return sandbox_factory(companies=30)


@pytest.mark.parametrize(
    ("overrides", "setting", "words"),
    [
        ({"api_key": None}, "api_key", "required"),
        ({"api_url": "http://crm.example.org/graphql"}, "api_url", "http"),
        ({"page_size": 0}, "page_size", "minimum"),
        ({"max_requests_per_second": 6}, "max_requests_per_second", "5"),
        (
            {"schema_path": "/nonexistent/moovago_api_graphql_schema.gql"},
            "schema_path",
            "nonexistent",
        ),
        ({"start_date": "last tuesday"}, "start_date", "last tuesday"),
    ],
    ids=["missing-key", "http-remote", "page-size-0", "rate-6", "unreadable-schema", "bad-date"],
)
def test_bad_settings_give_one_clear_error_line(
    tmp_path: Path, overrides: dict, setting: str, words: str
) -> None:
    config = {"api_url": "http://127.0.0.1:9/graphql", "api_key": SECRET, **overrides}
    config = {key: value for key, value in config.items() if value is not None}
    result = run_cli([], config, tmp_path)
    assert result.returncode != 0
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert setting in lines[0]
    assert words in lines[0]
    assert SECRET not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_about_markdown_lists_every_setting(tmp_path: Path) -> None:
    result = run_cli(["--about", "--format=markdown"], None, tmp_path)
    assert result.returncode == 0, result.stderr
    for setting in (
        "api_url",
        "api_key",
        "api_key_header",
        "schema_path",
        "team_id",
        "start_date",
        "page_size",
        "max_requests_per_second",
        "include_deprecated_fields",
        "request_timeout",
        "stream_maps",
        "flattening_enabled",
    ):
        assert f"| {setting} " in result.stdout, setting


def test_discover_needs_no_api_key(tmp_path: Path) -> None:
    result = run_cli(["--discover"], {}, tmp_path)
    assert result.returncode == 0, result.stderr
    streams = {entry["tap_stream_id"] for entry in json.loads(result.stdout)["streams"]}
    assert streams == {"team", "company", "contact", "mandator", "turnover"}


def test_test_flag_runs_the_team_query_once(sandbox, tmp_path: Path) -> None:
    before = sandbox.requests()
    result = run_cli(["--test"], tap_config(sandbox), tmp_path)
    assert result.returncode == 0, result.stderr
    out = parse_messages(result.stdout)
    assert list(out.records) == ["team"]
    assert [row["id"] for row in out.records["team"]] == [sandbox.team_id]
    after = sandbox.requests()
    sent = after[len(before) :] if after[: len(before)] == before else after[-1:]
    assert len(sent) == 1
    assert "team" in sent[0]["query"]
    assert "List" not in sent[0]["query"]


def test_test_flag_with_a_refused_key_fails_naming_the_setting(sandbox, tmp_path: Path) -> None:
    result = run_cli(["--test"], tap_config(sandbox, api_key=SECRET), tmp_path)
    assert result.returncode != 0
    assert "api_key" in result.stderr.strip().splitlines()[-1]
    assert SECRET not in result.stderr


def closed_port_url() -> str:
    """A loopback URL nothing listens on (a port the kernel just gave out, closed again)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/graphql"


def test_test_of_an_address_that_does_not_answer_is_one_attempt_and_one_line(
    tmp_path: Path,
) -> None:
    url = closed_port_url()
    result = run_cli(["--test"], {"api_url": url, "api_key": SECRET}, tmp_path, timeout=60)
    assert result.returncode == 1
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert f"Connection test failed: no answer from {url}" in lines[0]
    assert "after 1 attempts" in lines[0]
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_a_catalog_listing_only_company_exits_0_with_every_company(sandbox, tmp_path: Path) -> None:
    config = tap_config(sandbox)
    catalog = discover(config)
    catalog["streams"] = [s for s in catalog["streams"] if s["tap_stream_id"] == "company"]
    set_selected(catalog, "company", (), selected=True)
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    result = run_cli(["--catalog", str(tmp_path / "catalog.json")], config, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    expected = export_rows(sandbox.export(), "company", sandbox.team_id)
    assert sorted(parse_messages(result.stdout).ids("company")) == sorted(r["id"] for r in expected)
