"""Every non-string setting of both plugins works from its environment variable: with
`--config=ENV` (the SDK leaves a non-integer setting as text) and under Meltano (whose
`kind: decimal` crashed with "Decimal is not JSON serializable"), each value in effect.

What "in effect" means, per setting: the connection line each run logs (rate, in flight,
timeout, response cap, retries, TLS), what the sandbox saw (its peak requests per second, the
page size in the list queries, requests per mutation batch), and what the run did (a deprecated
field in the catalog, a delete, a dry run writing nothing, a reject limit stopping the run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from moovago_sandbox.testing import SandboxHandle, start_sandbox
from tests.harness import meltano_project

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BIN = Path(sys.executable).parent
COMPANIES = 30

#: Connection settings both plugins share, as text as an environment holds them, and the words
#: of the connection line that show each one in effect.
CONNECTION = {
    "MAX_REQUESTS_PER_SECOND": "2",
    "MAX_REQUESTS_IN_FLIGHT": "3",
    "REQUEST_TIMEOUT": "7.5",
    "MAX_RETRIES": "3",
    "MAX_RETRY_SECONDS": "40",
    "MAX_RESPONSE_BYTES": "5000000",
    "VERIFY_TLS": "false",
}
CONNECTION_IN_EFFECT = (
    "at most 2 requests/s and 3 in flight, whole answers within 7.5 s and 5000000 bytes, "
    "3 retries within 40 s, TLS NOT verified"
)


@pytest.fixture
def box() -> Iterator[SandboxHandle]:
    with start_sandbox(companies=COMPANIES) as handle:
        yield handle


def _env(prefix: str, box: SandboxHandle, settings: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_MOOVAGO", "TARGET_"))}
    env.update({f"{prefix}API_URL": box.url, f"{prefix}API_KEY": box.api_key})
    env.update({prefix + name: value for name, value in settings.items()})
    return env


def _run(command: list[str], env: Mapping[str, str], cwd: Path, stdin: str = "") -> Any:
    return subprocess.run(
        command,
        input=stdin,
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=cwd,
        timeout=300,
        check=False,
    )


def _connection_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if "Moovago connection:" in line]
    assert lines, stderr[-3000:]
    return lines[0]


def _company_rows(prefix: str, count: int) -> list[dict[str, Any]]:
    return [
        {"customerCode": f"{prefix}-{n:03d}", "name": f"Env {prefix} {n}", "city": "Niort"}
        for n in range(count)
    ]


def _singer(rows: list[dict[str, Any]]) -> str:
    columns = sorted({column for row in rows for column in row})
    schema = {
        "type": "SCHEMA",
        "stream": "company",
        "schema": {
            "type": "object",
            "properties": {c: {"type": ["string", "null"]} for c in columns},
        },
        "key_properties": ["customerCode"],
    }
    messages = [schema, *({"type": "RECORD", "stream": "company", "record": r} for r in rows)]
    messages.append({"type": "STATE", "value": {"bookmarks": {"company": {"n": len(rows)}}}})
    return "".join(json.dumps(m) + "\n" for m in messages)


def _mutation_requests(box: SandboxHandle) -> int:
    return sum(1 for r in box.requests() if str(r.get("query", "")).lstrip().startswith("mutation"))


# ---- --config=ENV -------------------------------------------------------------------------------


def test_tap_takes_every_non_string_setting_from_the_environment(box, tmp_path):
    settings = {**CONNECTION, "PAGE_SIZE": "7", "INCLUDE_DEPRECATED_FIELDS": "true"}
    run = _run(
        [str(BIN / "tap-moovago"), "--config=ENV"], _env("TAP_MOOVAGO_", box, settings), tmp_path
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert CONNECTION_IN_EFFECT in _connection_line(run.stderr)
    messages = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    company = next(m for m in messages if m["type"] == "SCHEMA" and m["stream"] == "company")
    assert "zipCode" in company["schema"]["properties"]  # include_deprecated_fields
    records = [m for m in messages if m["type"] == "RECORD" and m["stream"] == "company"]
    assert len(records) == COMPANIES
    lists = [r for r in box.requests() if "companyList" in str(r.get("query", ""))]
    assert len(lists) >= COMPANIES // 7  # page_size
    assert all(7 in (r.get("variables") or {}).values() for r in lists), lists[:2]
    assert box.stats()["peak_requests_per_second"] <= 2  # max_requests_per_second


def test_target_takes_every_non_string_setting_from_the_environment(box, tmp_path):
    existing = next(r for r in box.export()["company"] if r.get("teamId") == box.team_id)
    target_settings = {
        **CONNECTION,
        "MUTATIONS_PER_REQUEST": "4",
        "HARD_DELETE": "true",
        "BULK_THRESHOLD": "1000",
        "MAX_REJECTS": "5",
        "DRY_RUN": "false",
        "MATCH_KEYS": json.dumps({"company": ["customerCode"]}),
        "STREAM_MODES": json.dumps({"company": "upsert"}),
        "SUMMARY_PATH": str(tmp_path / "summary.json"),
        "REJECTS_PATH": str(tmp_path / "rejects.jsonl"),
    }
    rows = _company_rows("ENV", 10)
    rows.append(
        {
            "customerCode": existing["customerCode"],
            "name": existing["name"],
            "_sdc_deleted_at": "2026-11-30T10:00:00Z",
        }
    )
    rows.append({"customerCode": "ENV-BAD", "name": None})  # one reject, under max_rejects
    env = _env("TARGET_MOOVAGO_", box, target_settings)
    run = _run([str(BIN / "target-moovago"), "--config=ENV"], env, tmp_path, _singer(rows))
    assert run.returncode == 0, run.stderr[-3000:]
    assert CONNECTION_IN_EFFECT in _connection_line(run.stderr)
    mutations = box.stats()["mutations"]["company"]
    assert mutations["create"] == 10
    assert mutations["delete"] == 1  # hard_delete
    assert _mutation_requests(box) == 3  # mutations_per_request 4: 11 mutations in 3 requests
    assert box.stats()["peak_requests_per_second"] <= 2
    assert len((tmp_path / "rejects.jsonl").read_text().splitlines()) == 1

    # dry_run from the environment: nothing written.
    before = box.stats()["mutations_total"]
    dry = _run(
        [str(BIN / "target-moovago"), "--config=ENV"],
        {**env, "TARGET_MOOVAGO_DRY_RUN": "true"},
        tmp_path,
        _singer(_company_rows("DRY", 3)),
    )
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert box.stats()["mutations_total"] == before

    # max_rejects from the environment: the second reject stops the run.
    bad = [{"customerCode": f"ENV-BAD-{n}", "name": None} for n in range(2)]
    limited = _run(
        [str(BIN / "target-moovago"), "--config=ENV"],
        {**env, "TARGET_MOOVAGO_MAX_REJECTS": "1"},
        tmp_path,
        _singer(bad),
    )
    assert limited.returncode != 0
    assert "max_rejects" in limited.stderr
    assert "Traceback" not in limited.stderr


# ---- under Meltano ------------------------------------------------------------------------------


def test_numeric_settings_from_the_environment_under_meltano(
    meltano_installed: Path, box, tmp_path
):
    env = meltano_project.base_env(
        tmp_path,
        {
            "MOOVAGO_SANDBOX_URL": box.url,
            "MOOVAGO_SANDBOX_API_KEY": box.api_key,
            **{f"TAP_MOOVAGO_{name}": value for name, value in CONNECTION.items()},
            "TAP_MOOVAGO_PAGE_SIZE": "7",
            **{f"TARGET_MOOVAGO_{name}": value for name, value in CONNECTION.items()},
            "TARGET_MOOVAGO_MUTATIONS_PER_REQUEST": "4",
            "TARGET_MOOVAGO_SUMMARY_PATH": str(tmp_path / "summary.json"),
            "TARGET_MOOVAGO_REJECTS_PATH": str(tmp_path / "rejects.jsonl"),
        },
    )
    meltano = [str(meltano_installed), "--environment", "sandbox", "invoke"]
    tap = _run([*meltano, "tap-moovago"], env, meltano_project.ROOT)
    assert tap.returncode == 0, tap.stderr[-3000:]
    assert "Decimal" not in tap.stderr
    assert CONNECTION_IN_EFFECT in _connection_line(tap.stderr)
    records = [json.loads(line) for line in tap.stdout.splitlines() if line.startswith("{")]
    companies = [m for m in records if m["type"] == "RECORD" and m["stream"] == "company"]
    assert len(companies) == COMPANIES
    target = _run(
        [*meltano, "target-moovago"], env, meltano_project.ROOT, _singer(_company_rows("MEL", 6))
    )
    assert target.returncode == 0, target.stderr[-3000:]
    assert CONNECTION_IN_EFFECT in _connection_line(target.stderr)
    assert box.stats()["mutations"]["company"]["create"] == 6
    assert _mutation_requests(box) == 2  # mutations_per_request 4
