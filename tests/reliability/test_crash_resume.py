"""Crash and resume, small: SIGKILL the target and the tap mid-run, restart from the last STATE
they emitted; nothing lost, nothing duplicated. SIGTERM stops the target cleanly.

bench/crash_resume.py runs the 2,000-row version with 10+ kill points.
"""

from __future__ import annotations

import fcntl
import json
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from tests.harness.crash import kill_points, tap_crash_resume, target_crash_resume
from tests.harness.runs import (
    SECRET,
    TARGET_CLI,
    assert_store,
    company_row,
    duplicates,
    lines,
    mutation_total,
    resumable_input,
    run_target,
    run_target_until,
    tap_config,
    target_config,
    team_rows,
)

ROWS = 300
STATE_EVERY = 25


@pytest.fixture
def box(sandbox_factory):
    return sandbox_factory(companies=10, api_keys=[SECRET], rate_limit=0)


def _config(box, tmp_path, **overrides):
    return target_config(box, tmp_path, batch_size_rows=50, **overrides)


def test_target_killed_at_seeded_points_resumes_to_the_exact_store(box, tmp_path):
    rows = [company_row(seq, "CR") for seq in range(ROWS)]
    before = team_rows(box)
    points = kill_points(seed=11, count=4, total=ROWS)
    report = target_crash_resume(
        box, _config(box, tmp_path), rows, tmp_path, points=points, state_every=STATE_EVERY
    )
    assert report.kills == len(points), "a run ended before its kill point"
    assert report.runs[-1].returncode == 0, report.runs[-1].stderr[-2000:]
    assert_store(box, before, rows)
    # each row was created once over all the runs: a killed request was never sent twice blind
    assert box.stats()["mutations"]["company"]["create"] == ROWS


def test_resuming_after_the_last_row_writes_nothing(box, tmp_path):
    rows = [company_row(seq, "RR") for seq in range(60)]
    config = _config(box, tmp_path)
    first = run_target(config, lines(resumable_input(rows, state_every=20)), tmp_path / "a")
    assert first.returncode == 0
    mutations = mutation_total(box)
    again = run_target(config, lines(resumable_input(rows, state_every=20)), tmp_path / "b")
    assert again.returncode == 0
    assert mutation_total(box) == mutations
    assert again.summary["streams"]["company"]["unchanged"] == 60


def test_target_emits_state_while_running(box, tmp_path):
    rows = [company_row(seq, "ST") for seq in range(200)]
    config = _config(box, tmp_path)
    run = run_target_until(
        config,
        lines(resumable_input(rows, state_every=STATE_EVERY)),
        tmp_path,
        kill_after_mutations=mutation_total(box) + 150,
        mutations=lambda: mutation_total(box),
    )
    assert run.returncode == -signal.SIGKILL
    assert run.states, "no STATE before the kill although 100+ rows were confirmed"


def test_sigterm_finishes_the_request_in_flight_emits_state_and_exits_non_zero(box, tmp_path):
    rows = [company_row(seq, "TE") for seq in range(200)]
    config = _config(box, tmp_path, mutations_per_request=10)
    base = mutation_total(box)
    run = run_target_until(
        config,
        lines(resumable_input(rows, state_every=10)),
        tmp_path,
        kill_after_mutations=base + 45,
        mutations=lambda: mutation_total(box),
        sig=signal.SIGTERM,
        timeout=15,
    )
    assert not run.hung, "target-moovago did not exit within 15 s of SIGTERM"
    applied = mutation_total(box) - base
    assert 45 <= applied < len(rows), "SIGTERM did not stop the run"
    assert run.returncode not in (0, -signal.SIGTERM), run.returncode
    assert run.states, "no STATE emitted on SIGTERM"
    seq = run.states[-1]["bookmarks"]["company"]["seq"]
    landed = {r["customerCode"] for r in team_rows(box)}
    assert all(r["customerCode"] in landed for r in rows[:seq]), "STATE ahead of the writes"
    counts = run.summary["streams"]["company"]
    assert counts["created"] == applied, "a request the server applied was not recorded"


def test_sigterm_during_the_final_drain_stops_after_the_request_in_flight(box, tmp_path):
    # no batch_size_rows: the rows are all written by the drain at the end of the input
    rows = [company_row(seq, "TF") for seq in range(150)]
    config = target_config(box, tmp_path, mutations_per_request=5)
    base = mutation_total(box)
    run = run_target_until(
        config,
        lines(resumable_input(rows, state_every=10)),
        tmp_path,
        kill_after_mutations=base + 20,
        mutations=lambda: mutation_total(box),
        sig=signal.SIGTERM,
        timeout=15,
    )
    assert not run.hung, "target-moovago did not exit within 15 s of SIGTERM"
    applied = mutation_total(box) - base
    assert 20 <= applied < len(rows), "SIGTERM did not stop the run"
    assert run.returncode not in (0, -signal.SIGTERM), run.returncode
    assert run.states == [], "a STATE covered rows of the unfinished batch"
    assert run.summary["streams"]["company"]["created"] == applied
    assert "stopped by signal" in run.last_stderr_line()
    assert "Traceback" not in run.stderr


@pytest.mark.slow
def test_tap_killed_and_resumed_misses_no_row(sandbox_factory, tmp_path):
    box = sandbox_factory(companies=150, api_keys=[SECRET], rate_limit=0)
    runs, _states = tap_crash_resume(tap_config(box), tmp_path, kill_after=[40, 180])
    assert [r.returncode for r in runs[:-1]] == [-signal.SIGKILL] * 2
    assert runs[-1].returncode == 0, runs[-1].stderr[-2000:]
    export = box.export()
    for stream, entity in {"company": "company", "contact": "companyContact"}.items():
        union = {m["record"]["id"] for run in runs for m in run.records if m["stream"] == stream}
        expected = {r["id"] for r in export[entity] if r.get("teamId") == box.team_id}
        assert expected <= union, f"{stream}: {len(expected - union)} rows never extracted"
    final_ids = [m["record"]["id"] for m in runs[-1].records if m["stream"] == "company"]
    assert duplicates(final_ids) == {}


def test_sigterm_between_batches_writes_what_it_read_emits_state_and_exits_non_zero(box, tmp_path):
    rows = [company_row(seq, "TI") for seq in range(30)]
    config = _config(box, tmp_path)
    process = subprocess.Popen(
        [TARGET_CLI, "--config", str(_write_config(tmp_path, config))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    process.stdin.write(lines(resumable_input(rows, state_every=10)))
    process.stdin.flush()  # the input stays open: the target waits for more
    _wait_until_blocked_on_input(process)
    process.send_signal(signal.SIGTERM)
    try:
        stdout, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail("target-moovago did not exit within 30 s of SIGTERM")
    assert SECRET not in stdout
    landed = {r["customerCode"] for r in team_rows(box)}
    assert all(r["customerCode"] in landed for r in rows)
    assert '"seq": 30' in stdout
    assert process.returncode not in (0, -signal.SIGTERM)


def _wait_until_blocked_on_input(process: subprocess.Popen, timeout: float = 120) -> None:
    """Until the target has taken every byte written to its stdin and waits in read() for more:
    a fixed sleep is too short on a loaded machine (the target would be stopped mid-input)."""
    assert process.stdin is not None
    deadline = time.monotonic() + timeout
    wchan = Path(f"/proc/{process.pid}/wchan")
    while time.monotonic() < deadline:
        unread = struct.unpack(
            "i", fcntl.ioctl(process.stdin.fileno(), termios.FIONREAD, b"\0" * 4)
        )
        if unread[0] == 0 and wchan.read_text().endswith("pipe_read"):
            time.sleep(0.2)  # still waiting after a pause: not between two reads of the input
            if wchan.read_text().endswith("pipe_read"):
                return
        time.sleep(0.05)
    pytest.fail(f"target-moovago did not take its input within {timeout} s")


def _write_config(tmp_path, config):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path
