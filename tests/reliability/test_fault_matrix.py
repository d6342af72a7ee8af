"""Fault matrix, small: under each sandbox fault profile the tap extracts exactly the sandbox's
rows and the target leaves the sandbox exactly as expected (0 lost, 0 duplicated).

bench/bench_faults.py runs the same matrix at 10,000 rows and writes RELIABILITY.md's table.
"""

from __future__ import annotations

import pytest

from tests.harness.profiles import PROFILES, RECOVERABLE
from tests.harness.runs import (
    SECRET,
    assert_store,
    company_row,
    duplicates,
    lines,
    resumable_input,
    run_tap,
    run_target,
    tap_config,
    target_config,
    team_rows,
)

TAP_COMPANIES = 150
TARGET_ROWS = 150
LIST_STREAMS = {
    "company": "company",
    "contact": "companyContact",
    "mandator": "mandator",
    "turnover": "turnover",
}


def _fault_box(sandbox_factory, profile: str, companies: int):
    return sandbox_factory(
        companies=companies,
        api_keys=[SECRET],
        faults=PROFILES[profile],
        retry_after=profile == "429_bursts",
    )


# commit_then_fail only hits mutations: the tap never sees it
TAP_PROFILES = [name for name in RECOVERABLE if name != "commit_then_fail_20pct"]


@pytest.mark.parametrize("profile", TAP_PROFILES)
@pytest.mark.slow
def test_tap_extracts_exactly_the_sandbox_rows(sandbox_factory, tmp_path, profile):
    box = _fault_box(sandbox_factory, profile, TAP_COMPANIES)
    run = run_tap(tap_config(box, request_timeout=10), tmp_path)
    assert run.returncode == 0, run.last_stderr_line()
    export = box.export()
    stats = box.stats()
    if profile != "none":
        assert sum(stats["faults"].values()) > 0, "the profile injected no fault"
    for stream, entity in LIST_STREAMS.items():
        got = [r["record"] for r in run.records if r["stream"] == stream]
        ids = [r["id"] for r in got]
        assert duplicates(ids) == {}, f"{stream}: rows emitted twice"
        expected = {r["id"]: r for r in export[entity] if r.get("teamId") == box.team_id}
        assert set(ids) == set(expected), f"{stream}: {len(set(expected) - set(ids))} rows missing"
        for row in got:
            for name, value in row.items():
                if name in expected[row["id"]] and not isinstance(value, (dict, list)):
                    assert value == expected[row["id"]][name], (stream, row["id"], name)


def test_tap_stops_on_partial_errors_naming_the_path(sandbox_factory, tmp_path):
    """A read answered with data plus errors is not a complete page: the tap stops, exit code
    non-zero, the last line names the stream and the path; every row it did emit is intact."""
    box = _fault_box(sandbox_factory, "partial_errors", TAP_COMPANIES)
    run = run_tap(tap_config(box), tmp_path)
    assert box.stats()["faults"]["partial_error"] >= 1
    assert run.returncode != 0
    text = run.stderr
    assert "the API returned errors at " in text
    assert "Traceback" not in run.last_stderr_line()
    export = box.export()
    for message in run.records:
        stream, row = message["stream"], message["record"]
        if stream == "team":
            continue
        remote = {r["id"]: r for r in export[LIST_STREAMS[stream]]}[row["id"]]
        for name, value in row.items():
            if name in remote and not isinstance(value, (dict, list)):
                assert value == remote[name], f"{stream} {row['id']}.{name} emitted altered"


def _target_rows(box, n: int) -> tuple[list[dict], list[dict]]:
    """`n` new companies plus the first 10 existing ones renamed (creates and updates)."""
    before = team_rows(box)
    updates = [
        {"customerCode": r["customerCode"], "name": f"{r['name']} (maj)", "city": r.get("city")}
        for r in before
        if r.get("customerCode")
    ][:10]
    new = [company_row(seq, "FM") for seq in range(n)]
    return before, [*updates, *new]


@pytest.mark.parametrize("profile", RECOVERABLE)
@pytest.mark.slow
def test_target_leaves_exactly_the_expected_rows(sandbox_factory, tmp_path, profile):
    box = _fault_box(sandbox_factory, profile, 20)
    before, rows = _target_rows(box, TARGET_ROWS)
    config = target_config(box, tmp_path, request_timeout=10)
    run = run_target(config, lines(resumable_input(rows, state_every=50)), tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.rejects == []
    assert_store(box, before, rows)
    counts = run.summary["streams"]["company"]
    assert counts["created"] == TARGET_ROWS
    assert counts["updated"] == len(rows) - TARGET_ROWS
    assert run.states[-1] == {"bookmarks": {"company": {"seq": len(rows)}}}
    if profile == "commit_then_fail_20pct":
        assert box.stats()["faults"]["commit_then_fail"] >= 1
        # every create the server applied is counted once: no duplicate create was sent
        assert box.stats()["mutations"]["company"]["create"] == TARGET_ROWS


def test_target_stops_cleanly_when_its_index_read_gets_partial_errors(sandbox_factory, tmp_path):
    """The prefetch of existing rows must be complete to plan creates without duplicates: a
    partial answer stops the run before any write, with one clear line."""
    box = sandbox_factory(companies=20, api_keys=[SECRET], faults={"partial_error": 1.0, "seed": 5})
    before = team_rows(box)
    rows = [company_row(seq, "PE") for seq in range(30)]
    config = target_config(box, tmp_path)
    run = run_target(config, lines(resumable_input(rows, state_every=10)), tmp_path)
    assert run.returncode != 0
    assert "at companyList." in run.stderr  # the path of the error
    assert team_rows(box) == before
    assert run.states == []
    assert box.stats()["mutations"]["company"]["create"] == 0


def test_tap_fatal_error_is_one_clear_line_without_traceback(sandbox_factory, tmp_path):
    box = sandbox_factory(companies=20, api_keys=[SECRET], faults={"partial_error": 1.0, "seed": 5})
    run = run_tap(tap_config(box), tmp_path)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    assert "the API returned errors at " in run.last_stderr_line()


def test_target_fatal_error_is_one_clear_line_without_traceback(sandbox_factory, tmp_path):
    box = sandbox_factory(companies=20, api_keys=[SECRET], faults={"partial_error": 1.0, "seed": 5})
    rows = [company_row(seq, "PE") for seq in range(5)]
    run = run_target(
        target_config(box, tmp_path), lines(resumable_input(rows, state_every=5)), tmp_path
    )
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    assert "at companyList." in run.last_stderr_line()
