"""`moovago-schema doctor` against sandboxes that keep, and that break, each assumption.

Every run is read-only (the sandbox's mutation count stays 0), stays within the configured rate
and leaves neither the key nor any record value in its output.
"""

from __future__ import annotations

import functools
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from moovago_sandbox.testing import SandboxHandle
from moovago_schema.cli import main
from tests.harness.runs import SECRET

VARIANTS = Path(__file__).resolve().parents[1] / "schema_variants"
RATE = 4  # the tap's default: below the sandbox's 5 per rolling second, so no 429 by jitter
ROW_KEYS = [
    "auth",
    "schema:team",
    "schema:company",
    "schema:contact",
    "schema:mandator",
    "schema:turnover",
    "page_cap",
    "limit",
    "skip",
    "order",
    "latency",
    "rate_limit",
    "clock",
]


@functools.cache
def _serve_help() -> str:
    return subprocess.run(
        [sys.executable, "-m", "moovago_sandbox.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout


def require_flag(flag: str) -> None:
    """The sandbox flags are built on another branch: skip, naming the flag, until it lands."""
    if flag not in _serve_help():
        pytest.skip(f"moovago-sandbox serve has no {flag} yet")


def run_doctor(
    capsys: pytest.CaptureFixture[str],
    box: SandboxHandle,
    tmp_path: Path,
    *,
    fmt: str = "json",
    strict: bool = False,
    **settings: Any,
) -> tuple[int, Any, str]:
    """Run the doctor on `box` with a tap config file; (exit code, report or table, stderr)."""
    before = box.stats()["mutations_total"]
    config = {
        "api_url": box.url,
        "api_key": box.api_key,
        "page_size": 10,
        "max_requests_per_second": RATE,
        **settings,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    code = main(["doctor", "--config", str(path), "--format", fmt, *(["--strict"] * strict)])
    captured = capsys.readouterr()
    assert box.stats()["mutations_total"] == before, "the doctor wrote to the API"
    assert box.api_key not in captured.out + captured.err
    return code, json.loads(captured.out) if fmt == "json" else captured.out, captured.err


def rows(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {row["key"]: row for row in report["rows"]}


def failing(report: dict[str, Any]) -> list[str]:
    return [row["key"] for row in report["rows"] if row["verdict"] != "holds"]


def record_values(box: SandboxHandle) -> set[str]:
    """Text values of the team's rows long enough not to appear in a report by chance."""
    values = set()
    for entity_rows in box.export().values():
        for row in entity_rows:
            if row.get("teamId") != box.team_id:
                continue
            values |= {v for k, v in row.items() if isinstance(v, str) and len(v) >= 6}
            values.discard(row.get("teamId"))
    return values


# -- the clean run ---------------------------------------------------------------------------


@pytest.mark.slow
def test_default_sandbox_every_assumption_holds(
    capsys: pytest.CaptureFixture[str], sandbox_factory: Any, tmp_path: Path
) -> None:
    box = sandbox_factory(companies=30, api_keys=[SECRET])
    code, report, err = run_doctor(capsys, box, tmp_path)
    assert (code, failing(report), err) == (0, [], "")
    assert [row["key"] for row in report["rows"]] == ROW_KEYS
    assert report["exit_code"] == 0
    stats = box.stats()
    # Within 10 requests per stream, never above the configured rate, nothing written.
    per_stream = {k: v for k, v in report["requests"].items() if k != "total"}
    assert set(per_stream) == {"team", "company", "contact", "mandator", "turnover"}
    assert max(per_stream.values()) <= 10
    assert stats["requests"] == report["requests"]["total"] == sum(per_stream.values())
    assert stats["requests"] <= 10 * len(per_stream)
    assert stats["peak_requests_per_second"] <= RATE
    assert stats["rate_limited"] == 0
    assert stats["mutations_total"] == 0
    # No key, no record value in the report.
    text = json.dumps(report)
    assert SECRET not in text
    leaked = [value for value in record_values(box) if value in text]
    assert leaked == []
    assert report["settings"]["api_url"] == box.url
    measured = report["measured"]
    assert measured["at"].endswith("Z")
    assert measured["page_cap"] is None
    assert measured["limit_honoured"] is measured["stable_order"] is True
    assert measured["date_header"] is True
    assert abs(measured["clock_offset_seconds"]) < 5
    # The table says the same.
    code, table, _ = run_doctor(capsys, box, tmp_path, fmt="table")
    assert code == 0
    lines = table.splitlines()
    assert lines[-1] == f"Result: all {len(ROW_KEYS)} assumptions hold."
    header = next(line for line in lines if line.startswith("assumption"))
    assert header.split("  ")[0] == "assumption"
    for column in ("connector assumes", "server did", "verdict", "what to change"):
        assert column in header
    assert SECRET not in table


@pytest.mark.slow
def test_config_from_the_environment(
    capsys: pytest.CaptureFixture[str], sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = sandbox.stats()["mutations_total"]
    monkeypatch.setenv("TAP_MOOVAGO_API_URL", sandbox.url)
    monkeypatch.setenv("TAP_MOOVAGO_API_KEY", sandbox.api_key)
    monkeypatch.setenv("TAP_MOOVAGO_PAGE_SIZE", "10")
    monkeypatch.setenv("TAP_MOOVAGO_MAX_REQUESTS_PER_SECOND", str(RATE))
    monkeypatch.setenv("TAP_MOOVAGO_INCLUDE_DEPRECATED_FIELDS", "false")
    code = main(["doctor", "--config=ENV", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert (code, failing(report)) == (0, [])
    assert report["settings"]["page_size"] == 10
    assert report["settings"]["max_requests_per_second"] == RATE
    assert sandbox.stats()["mutations_total"] == before


def test_environment_settings_are_typed_as_the_tap_declares() -> None:
    """Meltano passes every setting as text (`meltano invoke tap-moovago:doctor`)."""
    from moovago_api.settings import client_from_config
    from moovago_schema.doctor import load_config

    environ = {
        "TAP_MOOVAGO_API_URL": "http://127.0.0.1:9/graphql",
        "TAP_MOOVAGO_API_KEY": SECRET,
        "TAP_MOOVAGO_MAX_RETRIES": "8",
        "TAP_MOOVAGO_MAX_RESPONSE_BYTES": "67108864",
        "TAP_MOOVAGO_SCALAR_TYPES": '{"JSON": "object"}',
    }
    config = load_config("ENV", environ)
    assert config["max_retries"] == 8
    assert config["max_response_bytes"] == 67108864
    assert config["scalar_types"] == {"JSON": "object"}
    client_from_config(config, default_rate=4).close()  # the settings' own checks accept them


@pytest.mark.slow
def test_a_page_size_above_every_stream_is_unproven_not_holding(
    capsys: pytest.CaptureFixture[str], sandbox: SandboxHandle, tmp_path: Path
) -> None:
    """With the tap's default page_size (500) no page can show a cap: the doctor says so."""
    config = {"page_size": 500}
    code, report, _ = run_doctor(capsys, sandbox, tmp_path, **config)
    assert code == 0  # unproven is not "does not hold"
    assert report["exit_code"] == 0
    cap = rows(report)["page_cap"]
    assert cap["verdict"] == "unproven"
    assert "fewer rows than page_size" in cap["server_did"]
    assert "page_size below" in cap["what_to_change"]
    code, table, _ = run_doctor(capsys, sandbox, tmp_path, fmt="table", strict=True, **config)
    assert code == 1
    assert "assumptions are unproven: the last column says what would prove each" in table
    assert "(--strict: exit 1)" in table


def test_every_unproven_row_says_what_would_prove_it() -> None:
    found = _judge(_stream())
    unproven = {key: row for key, row in found.items() if row["verdict"] == "unproven"}
    assert unproven
    for key, row in unproven.items():
        assert row["what_to_change"], key


@pytest.mark.slow
def test_a_fresh_sandbox_served_from_the_command_line_exits_0(tmp_path: Path) -> None:
    """`moovago-sandbox serve` then `moovago-schema doctor` with the tap's defaults."""
    serve = [sys.executable, "-m", "moovago_sandbox.cli", "serve", "--port", "0", "--quiet"]
    with subprocess.Popen(
        [*serve, "--api-key", SECRET], stdout=subprocess.PIPE, text=True
    ) as server:
        try:
            assert server.stdout is not None
            port = re.search(r"127\.0\.0\.1:(\d+)", server.stdout.readline())
            assert port, "the sandbox printed no URL"
            config = {"api_url": f"http://127.0.0.1:{port[1]}/graphql", "api_key": SECRET}
            path = tmp_path / "tap.json"
            path.write_text(json.dumps(config), encoding="utf-8")
            doctor = [sys.executable, "-m", "moovago_schema.cli", "doctor", "--config", str(path)]
            done = subprocess.run(doctor, capture_output=True, text=True, timeout=120, check=False)
        finally:
            server.terminate()
            server.communicate(timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "does not hold" not in done.stdout
    assert SECRET not in done.stdout + done.stderr


# -- sandboxes that break one assumption each ------------------------------------------------


@pytest.mark.slow
def test_page_cap(capsys: pytest.CaptureFixture[str], sandbox_factory: Any, tmp_path: Path) -> None:
    require_flag("--max-page-size")
    box = sandbox_factory(companies=30, extra_args=["--max-page-size", "8"])
    code, report, _ = run_doctor(capsys, box, tmp_path)
    assert code == 1
    cap = rows(report)["page_cap"]
    assert cap["verdict"] == "does not hold"
    assert "got 8, and the next page had more: a cap of 8" in cap["server_did"]
    assert cap["what_to_change"] == "set page_size to 8 or less (now 10)"
    assert report["measured"]["page_cap"] == 8
    assert "page_cap" in failing(report)


@pytest.mark.slow
def test_unstable_order(
    capsys: pytest.CaptureFixture[str], sandbox_factory: Any, tmp_path: Path
) -> None:
    require_flag("--unstable-order")
    box = sandbox_factory(companies=30, extra_args=["--unstable-order"])
    code, report, _ = run_doctor(capsys, box, tmp_path)
    assert code == 1
    order = rows(report)["order"]
    assert order["verdict"] == "does not hold"
    assert "came back in another order" in order["server_did"]
    assert "sort argument" in order["what_to_change"]
    assert report["measured"]["stable_order"] is False
    # The skip check cannot be read through a moving order: not called broken, not holding.
    assert rows(report)["skip"]["verdict"] == "unproven"


@pytest.mark.slow
def test_limit_ignored(
    capsys: pytest.CaptureFixture[str], sandbox_factory: Any, tmp_path: Path
) -> None:
    require_flag("--ignore-limit")
    require_flag("--default-page-size")
    box = sandbox_factory(companies=30, extra_args=["--ignore-limit", "--default-page-size", "7"])
    code, report, _ = run_doctor(capsys, box, tmp_path)
    assert code == 1
    limit = rows(report)["limit"]
    assert limit["verdict"] == "does not hold"
    assert "asked 5 rows, got 7" in limit["server_did"]
    assert limit["what_to_change"].endswith("set page_size to 7, the page it answers")
    assert report["measured"]["fixed_page_size"] == 7


@pytest.mark.slow
def test_no_date_header(
    capsys: pytest.CaptureFixture[str], sandbox_factory: Any, tmp_path: Path
) -> None:
    require_flag("--no-date-header")
    box = sandbox_factory(companies=30, extra_args=["--no-date-header"])
    code, report, _ = run_doctor(capsys, box, tmp_path)
    assert (code, failing(report)) == (1, ["clock"])
    clock = rows(report)["clock"]
    assert clock["server_did"].startswith("no Date header in ")
    assert "NTP" in clock["what_to_change"]
    assert report["measured"]["date_header"] is False


@pytest.mark.slow
def test_clock_offset(
    capsys: pytest.CaptureFixture[str], sandbox_factory: Any, tmp_path: Path
) -> None:
    require_flag("--clock-offset")
    box = sandbox_factory(companies=30, extra_args=["--clock-offset", "3600"])
    code, report, _ = run_doctor(capsys, box, tmp_path)
    assert (code, failing(report)) == (1, ["clock"])
    clock = rows(report)["clock"]
    assert clock["server_did"] in (
        "the server is 3599 s ahead of this machine",
        "the server is 3600 s ahead of this machine",
        "the server is 3601 s ahead of this machine",
    )
    assert "NTP" in clock["what_to_change"]


@pytest.mark.slow
def test_high_latency(
    capsys: pytest.CaptureFixture[str], sandbox_factory: Any, tmp_path: Path
) -> None:
    require_flag("--latency-read")
    box = sandbox_factory(companies=30, extra_args=["--latency-read", "800"])
    code, report, _ = run_doctor(capsys, box, tmp_path, request_timeout=2)
    assert (code, failing(report)) == (1, ["latency"])
    latency = rows(report)["latency"]
    assert (
        latency["connector_assumes"] == "a page answers within 0.7 s (a third of request_timeout)"
    )
    slowest = report["measured"]["max_page_seconds"]
    assert slowest >= 0.8
    # three times the slowest page measured (3 s at 0.8 to 1.0 s; more on a loaded machine)
    # (the report rounds the slowest page to 1 ms)
    advised = {math.ceil((slowest + d) * 3) for d in (-0.0005, 0.0005)}
    assert latency["what_to_change"] in {
        f"raise request_timeout to at least {n} s, or lower page_size" for n in advised
    }


def test_schema_file_with_a_field_the_server_does_not_serve(
    capsys: pytest.CaptureFixture[str], sandbox: SandboxHandle, tmp_path: Path
) -> None:
    """The sandbox serves the bundled file; the doctor is pointed at one with one more field."""
    text = (VARIANTS / "base.gql").read_text(encoding="utf-8")
    anchor = 'type Company {\n  "[vendor]"\n  id: ID!\n'
    assert text.count(anchor) == 1
    newer = tmp_path / "newer.gql"
    newer.write_text(text.replace(anchor, anchor + "  vatNumber: String\n"), encoding="utf-8")
    code, report, _ = run_doctor(capsys, sandbox, tmp_path, schema_path=str(newer))
    assert code == 1
    company = rows(report)["schema:company"]
    assert company["verdict"] == "does not hold"
    assert "vatNumber" in company["server_did"]
    assert company["what_to_change"].startswith("set schema_path to the schema file Moovago")
    assert "moovago-schema diff" in company["what_to_change"]
    assert rows(report)["schema:contact"]["verdict"] == "holds"
    assert report["schema"] == str(newer)


@pytest.mark.slow
def test_schema_file_with_a_type_the_server_does_not_send(
    capsys: pytest.CaptureFixture[str], sandbox: SandboxHandle, tmp_path: Path
) -> None:
    """type_changed.gql declares Turnover.amount a String; the server sends numbers."""
    variant = VARIANTS / "type_changed.gql"
    code, report, _ = run_doctor(capsys, sandbox, tmp_path, schema_path=str(variant))
    assert code == 1
    assert [key for key in failing(report) if key.startswith("schema:")] == ["schema:turnover"]
    turnover = rows(report)["schema:turnover"]
    assert "Turnover.amount: a number, but the file declares String" in turnover["server_did"]


@pytest.mark.slow
def test_rate_limit_met_is_recorded_not_provoked(
    capsys: pytest.CaptureFixture[str], sandbox_factory: Any, tmp_path: Path
) -> None:
    """A server whose limit is below the configured rate: the doctor reports what it met."""
    box = sandbox_factory(companies=30, rate_limit=2, retry_after=True)
    code, report, _ = run_doctor(capsys, box, tmp_path, max_requests_per_second=4)
    assert code == 1
    rate = rows(report)["rate_limit"]
    assert rate["verdict"] == "does not hold"
    assert "answers 429; Retry-After: " in rate["server_did"]
    assert "Retry-After: none" not in rate["server_did"]
    assert "application/json" in rate["server_did"]
    assert rate["what_to_change"].startswith("lower max_requests_per_second below 4")
    assert report["measured"]["rate_limited_answers"] >= 1
    # The doctor itself stayed within its configured rate.
    assert box.stats()["teams"][box.team_id]["peak_requests_per_second"] <= 4 + 1


# -- what cannot run -------------------------------------------------------------------------


def test_a_refused_key_is_one_row_and_no_key(
    capsys: pytest.CaptureFixture[str], sandbox: SandboxHandle, tmp_path: Path
) -> None:
    wrong = "sk-live-WRONG-0000000000"
    code, report, _ = run_doctor(capsys, sandbox, tmp_path, api_key=wrong)
    assert code == 1
    [row] = report["rows"]
    assert (row["key"], row["verdict"]) == ("auth", "does not hold")
    assert "api_key" in row["what_to_change"]
    assert wrong not in json.dumps(report)


def test_config_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in dict(__import__("os").environ) if n.startswith("TAP_MOOVAGO_")]:
        monkeypatch.delenv(name)
    cases = {
        "absent": (["--config", str(tmp_path / "absent.json")], "Cannot read config"),
        "env": (["--config=ENV"], "no TAP_MOOVAGO_* variable is set"),
    }
    bad = tmp_path / "bad.json"
    bad.write_text('{"api_url": "http://127.0.0.1:9/graphql", "api_key": "k", "page_size": 0}')
    cases["page_size"] = (["--config", str(bad)], "page_size must be a whole number")
    remote = tmp_path / "remote.json"
    remote.write_text('{"api_url": "http://example.invalid/graphql", "api_key": "k"}')
    cases["http"] = (["--config", str(remote)], "api_url must use https://")
    for name, (argv, expected) in cases.items():
        code = main(["doctor", *argv])
        captured = capsys.readouterr()
        assert (code, captured.out) == (2, ""), name
        assert captured.err.count("\n") == 1, name
        assert captured.err.startswith("moovago-schema: error: "), name
        assert expected in captured.err, name


# -- verdicts no sandbox mode produces -------------------------------------------------------


def _page(ids: list[str], seconds: float = 0.01) -> Any:
    from moovago_schema.probe import Page

    return Page(len(ids), ids, seconds)


def _stream(**parts: Any) -> Any:
    from moovago_schema.probe import StreamProbe

    return StreamProbe("company", "company", "skip/limit", paged=True, **parts)


def _judge(*streams: Any, page_size: int = 10) -> dict[str, dict[str, str]]:
    from moovago_api.schema import load_schema
    from moovago_schema.probe import Probe
    from moovago_schema.verdicts import judge

    seen = Probe(schema=load_schema(), page_size=page_size, streams=list(streams))
    return {row.key: row.to_dict() for row in judge(seen, rate=4, request_timeout=30)}


IDS = [f"id{n:02d}" for n in range(40)]


def test_skip_not_honoured_is_a_failure() -> None:
    """A server that answers the first rows again for skip=5."""
    stream = _stream(
        small_asked=5,
        small=_page(IDS[:5]),
        small_again=_page(IDS[:5]),
        big_asked=20,
        big=_page(IDS[:20]),
        offset_page=_page(IDS[:5]),
    )
    skip = _judge(stream)["skip"]
    assert skip["verdict"] == "does not hold"
    assert skip["server_did"] == (
        "company: the page from skip=5 was not the rows after the first 5 (5 repeated)"
    )
    assert "report it to Moovago" in skip["what_to_change"]


def test_a_cap_above_page_size_holds_and_a_refused_large_page_is_said() -> None:
    stream = _stream(
        small_asked=5,
        small=_page(IDS[:5]),
        small_again=_page(IDS[:5]),
        big_asked=10,
        big_refused="limit must be between 1 and 12, got 20",
        big=_page(IDS[:10]),
        offset_page=_page(IDS[5:10]),
    )
    found = _judge(stream)
    assert found["page_cap"]["verdict"] == "holds"
    assert (
        "(it refused 20: limit must be between 1 and 12, got 20)"
        in (found["page_cap"]["server_did"])
    )
    capped = _stream(
        small_asked=5,
        small=_page(IDS[:5]),
        small_again=_page(IDS[:5]),
        big_asked=20,
        big=_page(IDS[:12]),
        after_big=_page(IDS[12:17]),
    )
    found = _judge(capped)
    assert found["page_cap"]["verdict"] == "holds"
    assert found["page_cap"]["server_did"] == (
        "company: a page of 12 rows came back whole, capped at 12"
    )
    assert found["skip"]["verdict"] == "holds"


def test_fewer_rows_than_asked_while_more_exist_fails_the_limit_row() -> None:
    stream = _stream(
        small_asked=5,
        small=_page(IDS[:3]),
        small_again=_page(IDS[:3]),
        big_asked=20,
        big=_page(IDS[:20]),
        offset_page=_page(IDS[5:10]),
    )
    limit = _judge(stream)["limit"]
    assert (limit["verdict"], limit["what_to_change"]) == (
        "does not hold",
        "set page_size to 3 or less",
    )
    assert limit["server_did"] == "company: asked 5 rows, got 3 though more exist"


def test_without_observed_answers_nothing_is_claimed() -> None:
    found = _judge(_stream())
    assert found["clock"]["verdict"] == found["rate_limit"]["verdict"] == "unproven"
    assert found["latency"]["verdict"] == "unproven"
    for key in ("page_cap", "limit", "skip", "order"):
        assert found[key]["verdict"] == "unproven"
        assert found[key]["server_did"].startswith("no paged stream answered")


def test_team_query_the_server_does_not_serve(
    capsys: pytest.CaptureFixture[str], sandbox: SandboxHandle, tmp_path: Path
) -> None:
    text = (VARIANTS / "base.gql").read_text(encoding="utf-8")
    anchor = "type Team {\n"
    assert text.count(anchor) == 1
    newer = tmp_path / "team_plus.gql"
    newer.write_text(text.replace(anchor, anchor + "  region: String\n"), encoding="utf-8")
    code, report, _ = run_doctor(capsys, sandbox, tmp_path, schema_path=str(newer))
    assert code == 1
    found = rows(report)
    assert found["schema:team"]["verdict"] == "does not hold"
    assert "region" in found["schema:team"]["server_did"]
    assert found["auth"]["what_to_change"] == "see the row of stream team"
    # Without a team id the lists cannot be scoped: each says so, nothing is guessed.
    assert "no team id" in found["schema:company"]["server_did"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "shape",
    [
        "renamed_roots",
        "offset_first",
        "deprecated_discovery",
        "connection_nodes",
        "connection_edges",
        "cursor_paging",
        "page_paging",
    ],
)
def test_a_variant_served_from_its_own_file_holds(
    capsys: pytest.CaptureFixture[str], sandbox_factory: Any, tmp_path: Path, shape: str
) -> None:
    """The sandbox serves the file the doctor reads: every assumption holds for these shapes."""
    path = VARIANTS / "shapes" / f"{shape}.gql"
    box = sandbox_factory(companies=30, extra_args=["--schema", str(path)])
    code, report, _ = run_doctor(capsys, box, tmp_path, schema_path=str(path))
    assert (code, failing(report)) == (0, [])
    assert report["schema"] == str(path)


PAGED_SHAPES = ["connection_nodes", "connection_edges", "cursor_paging", "page_paging"]


@pytest.mark.slow
@pytest.mark.parametrize("shape", PAGED_SHAPES)
@pytest.mark.parametrize("breaks", ["page_cap", "order", "limit"])
def test_every_paging_shape_is_measured(
    capsys: pytest.CaptureFixture[str],
    sandbox_factory: Any,
    tmp_path: Path,
    shape: str,
    breaks: str,
) -> None:
    """Cursor, page-number and connection lists: each breaking sandbox fails its own row."""
    flags = {
        "page_cap": ["--max-page-size", "8"],
        "order": ["--unstable-order"],
        "limit": ["--ignore-limit", "--default-page-size", "7"],
    }[breaks]
    require_flag(flags[0])
    path = VARIANTS / "shapes" / f"{shape}.gql"
    box = sandbox_factory(companies=30, extra_args=["--schema", str(path), *flags])
    code, report, _ = run_doctor(capsys, box, tmp_path, schema_path=str(path))
    assert code == 1
    found = rows(report)
    assert found[breaks]["verdict"] == "does not hold", found[breaks]
    assert found[breaks]["what_to_change"]
    # The lists themselves were read and validated: no schema row fails for the shape.
    assert [key for key in failing(report) if key.startswith("schema:")] == []
    if breaks == "page_cap":
        assert report["measured"]["page_cap"] == 8
        assert found["page_cap"]["what_to_change"] == "set page_size to 8 or less (now 10)"
    elif breaks == "limit":
        assert report["measured"]["fixed_page_size"] == 7
    else:
        assert report["measured"]["stable_order"] is False


@pytest.mark.slow
@pytest.mark.parametrize("family", ["compose_pagination", "operators_filter", "sort_enum"])
def test_a_family_served_from_its_own_file_holds(
    capsys: pytest.CaptureFixture[str], sandbox_factory: Any, tmp_path: Path, family: str
) -> None:
    """The doctor reads the families' lists by their plans (`items` pages, sort enums)."""
    path = VARIANTS / "families" / f"{family}.gql"
    box = sandbox_factory(companies=30, extra_args=["--schema", str(path)])
    code, report, _ = run_doctor(capsys, box, tmp_path, schema_path=str(path))
    assert (code, failing(report)) == (0, [])


@pytest.mark.slow
def test_a_team_named_by_argument_is_read_with_team_id(
    capsys: pytest.CaptureFixture[str], sandbox_factory: Any, tmp_path: Path
) -> None:
    """`team(id: ID!)` beside `teams`: the doctor names the team by setting team_id."""
    path = VARIANTS / "families" / "compose.gql"
    box = sandbox_factory(companies=30, extra_args=["--schema", str(path)])
    code, report, _ = run_doctor(capsys, box, tmp_path, schema_path=str(path), team_id=box.team_id)
    assert (code, failing(report)) == (0, [])
    assert rows(report)["auth"]["server_did"] == "answered with one team"
    assert set(report["requests"]) == {"team", "company", "mandator", "total"}

    before = box.stats()["requests"]
    code, _, err = run_doctor(capsys, box, tmp_path, fmt="table", schema_path=str(path))
    assert code == 2
    assert err.splitlines() == [
        "moovago-schema: error: Query.team(id:) in compose.gql needs setting team_id"
        " (the team to read)"
    ]
    assert box.stats()["requests"] == before, "refused before asking the API"
