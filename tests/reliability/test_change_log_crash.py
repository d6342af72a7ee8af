"""The change log under SIGKILL: killed mid-run and resumed from the last STATE, the target logs
each write the sandbox applied exactly once, and no STATE covers a row whose write is unlogged."""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path

import pytest

from tests.harness.crash import kill_points
from tests.harness.runs import (
    SECRET,
    company_row,
    duplicates,
    lines,
    mutation_total,
    resumable_input,
    run_target,
    run_target_until,
    target_config,
    team_rows,
)

ROWS = 150
STATE_EVERY = 25


def read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def push_with_kills(box, config, rows, tmp: Path, points, phase: str) -> None:
    """SIGKILL at each point, resume from the last STATE, then finish; after each kill, every
    row the last STATE covers has its line (the log is never behind STATE)."""
    changes = Path(config["changes_path"])
    start, base = 0, mutation_total(box)
    for number, point in enumerate(points):
        run = run_target_until(
            config,
            lines(resumable_input(rows, state_every=STATE_EVERY, start=start)),
            tmp / f"{phase}-{number}",
            kill_after_mutations=base + point,
            mutations=lambda: mutation_total(box),
        )
        assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
        seqs = [s["bookmarks"]["company"]["seq"] for s in run.states]
        start = seqs[-1] if seqs else start
        logged = {e["match_key"]["customerCode"] for e in read(changes)}
        assert [r["customerCode"] for r in rows[:start] if r["customerCode"] not in logged] == []
    text = lines(resumable_input(rows, state_every=STATE_EVERY, start=start))
    final = run_target(config, text, tmp / f"{phase}-final")
    assert final.returncode == 0, final.stderr[-2000:]


def assert_log_matches_sandbox(box, changes: Path, before_ids: set[str]) -> list[dict]:
    """One line per write the sandbox applied, per kind; the creates name exactly the records
    the runs added; no write logged twice."""
    entries = read(changes)
    applied = {k: n for k, n in box.stats()["mutations"]["company"].items() if n}
    assert dict(Counter(e["operation"] for e in entries)) == applied
    assert duplicates(e["write"] for e in entries) == {}
    created = [e["record_id"] for e in entries if e["operation"] == "create"]
    assert duplicates(created) == {}
    assert set(created) == {r["id"] for r in team_rows(box)} - before_ids
    assert not Path(f"{changes}.inflight").exists()
    return entries


@pytest.mark.slow
def test_killed_between_apply_and_answer_logs_each_create_once(sandbox_factory, tmp_path):
    # Every mutation is applied, then answered 502: the target finds its creates by reading
    # (1 s each), so a kill right after an apply lands before the write is confirmed.
    box = sandbox_factory(
        companies=5,
        api_keys=[SECRET],
        rate_limit=0,
        faults={"commit_then_fail": 1.0, "latency_read": 1000},
    )
    before = {r["id"] for r in team_rows(box)}
    config = target_config(
        box, tmp_path, changes_path=str(tmp_path / "changes.jsonl"), batch_size_rows=50
    )
    rows = [company_row(seq, "KC") for seq in range(ROWS)]
    push_with_kills(box, config, rows, tmp_path, kill_points(5, 3, ROWS), "create")
    entries = assert_log_matches_sandbox(box, Path(config["changes_path"]), before)
    recovered = [e for e in entries if e.get("recovered")]
    # the kills landed with writes applied and unanswered (the case the journal is for)
    assert recovered, "no kill fell between an apply and its confirmation"


@pytest.mark.slow
def test_killed_creates_and_updates_are_logged_once_each(sandbox_factory, tmp_path):
    box = sandbox_factory(companies=5, api_keys=[SECRET], rate_limit=0)
    before = {r["id"] for r in team_rows(box)}
    config = target_config(
        box,
        tmp_path,
        changes_path=str(tmp_path / "changes.jsonl"),
        batch_size_rows=50,
        mutations_per_request=10,
    )
    rows = [company_row(seq, "KU") for seq in range(ROWS)]
    push_with_kills(box, config, rows, tmp_path, kill_points(7, 3, ROWS), "create")
    moved = [{**row, "city": "Brest"} for row in rows]
    push_with_kills(box, config, moved, tmp_path, kill_points(8, 3, ROWS), "update")
    entries = assert_log_matches_sandbox(box, Path(config["changes_path"]), before)
    updates = [e for e in entries if e["operation"] == "update"]
    assert len(updates) == ROWS
    # the sandbox's own request log: each update it answered is logged, once
    answered = [
        value["id"]
        for request in box.requests()
        if request["status"] == 200 and "Batch" in (request["operationName"] or "")
        for value in (request["variables"] or {}).values()
        if isinstance(value, dict) and "input" in value and "id" in value
    ]
    assert sorted(answered) == sorted(e["record_id"] for e in updates)
    assert {e["fields"]["city"]["after"] for e in updates} == {"Brest"}
    assert {e["fields"]["city"]["before"] for e in updates} == {"Niort"}
