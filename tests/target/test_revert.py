"""`moovago-revert`: push, then put back what the change log says, against the sandbox."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from target_moovago import revert
from tests.target.helpers import entity_rows, stream_messages

STAMPS = ("updatedAt",)  # the server's own clock moves on every write


@pytest.fixture
def box(sandbox_factory):
    return sandbox_factory(companies=6)


def snapshot(handle) -> dict[str, dict]:
    return {
        c["id"]: {k: v for k, v in c.items() if k not in STAMPS}
        for c in entity_rows(handle, "company")
    }


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def revert_cli(run_target, handle, changes: Path, capsys, *extra: str) -> tuple[int, str, dict]:
    config = run_target.config(handle)
    path = run_target.tmp_path / f"revert-config-{run_target.runs}.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    code = revert.main(["--config", str(path), str(changes), *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err, config


def push(box, run_target, tmp_path, **config):
    """Update two seeded companies, create two: the change log of that push."""
    existing = sorted(snapshot(box).values(), key=lambda c: c["id"])
    rows = [
        {"id": existing[0]["id"], "name": "Renamed SA", "city": "Brest", "note": "from the DWH"},
        {"id": existing[1]["id"], "city": "Lille"},
        {"customerCode": "RV-1", "name": "New one", "city": "Niort"},
        {"customerCode": "RV-2", "name": "New two", "email": "two@x.fr"},
    ]
    changes = tmp_path / "push.jsonl"
    result = run_target(box, stream_messages("company", rows), changes_path=str(changes), **config)
    assert (result.counts("company")["updated"], result.counts("company")["created"]) == (2, 2)
    return changes, existing


def test_push_then_revert_gives_back_the_records_field_for_field(box, run_target, tmp_path, capsys):
    before = snapshot(box)
    changes, _ = push(box, run_target, tmp_path)
    assert snapshot(box) != before
    code, out, _ = revert_cli(run_target, box, changes, capsys)
    assert code == 0, out
    assert snapshot(box) == before  # updated records back, created records gone
    assert "4 writes sent" in out
    assert "0 conflicts reported" in out
    own = read(tmp_path / "push.revert.jsonl")  # its own change log
    assert sorted(e["operation"] for e in own) == ["delete", "delete", "update", "update"]
    # ... which reverts the revert
    code, _, _ = revert_cli(run_target, box, tmp_path / "push.revert.jsonl", capsys)
    assert code == 0
    codes = {c.get("customerCode") for c in snapshot(box).values()}
    assert {"RV-1", "RV-2"} <= codes
    names = {c["name"] for c in snapshot(box).values()}
    assert "Renamed SA" in names


def test_a_field_edited_since_the_push_is_kept_and_reported(box, run_target, tmp_path, capsys):
    before = snapshot(box)
    changes, existing = push(box, run_target, tmp_path)
    edited = existing[0]["id"]
    run_target(box, stream_messages("company", [{"id": edited, "city": "Quimper"}]))
    code, out, config = revert_cli(run_target, box, changes, capsys)
    assert code == 0
    after = snapshot(box)
    assert after[edited] == {**before[edited], "city": "Quimper"}  # name and note reverted
    expected = {k: v for k, v in before.items() if k != edited}
    assert {k: v for k, v in after.items() if k != edited} == expected
    conflicts = [line for line in out.splitlines() if line.startswith("conflict")]
    assert len(conflicts) == 1
    assert f"id={edited}" in conflicts[0]
    assert "field city" in conflicts[0]
    assert "1 conflict reported" in out
    (reject,) = read(Path(config["rejects_path"]))
    assert (reject["row_key"], reject["field"]) == (f"id={edited}", "city")
    assert "'Quimper'" in reject["reason"]


def test_a_created_record_changed_since_is_kept_and_reported(box, run_target, tmp_path, capsys):
    changes, _ = push(box, run_target, tmp_path)
    run_target(box, stream_messages("company", [{"customerCode": "RV-1", "city": "Vannes"}]))
    code, out, _ = revert_cli(run_target, box, changes, capsys)
    assert code == 0
    codes = {c.get("customerCode") for c in snapshot(box).values()}
    assert "RV-1" in codes  # kept: changed since the push
    assert "RV-2" not in codes
    (conflict,) = [line for line in out.splitlines() if line.startswith("conflict")]
    assert "field city" in conflict
    assert "not deleted" in conflict


def test_run_picks_the_lines_of_one_run(box, run_target, tmp_path, capsys):
    changes, existing = push(box, run_target, tmp_path)
    after_first = snapshot(box)
    rows = [{"id": existing[0]["id"], "city": "Rennes"}, {"customerCode": "RV-3", "name": "Three"}]
    run_target(box, stream_messages("company", rows), changes_path=str(changes))
    second = read(changes)[-1]["run_id"]
    code, out, _ = revert_cli(run_target, box, changes, capsys, "--run", second)
    assert code == 0, out
    assert snapshot(box) == after_first
    code, out, _ = revert_cli(run_target, box, changes, capsys, "--run", "nope")
    assert code == 1
    assert "no line of run nope" in out


def test_a_dry_run_sends_no_mutation_and_prints_the_plan(box, run_target, tmp_path, capsys):
    changes, existing = push(box, run_target, tmp_path)
    stats = box.stats()
    state = snapshot(box)
    code, out, _ = revert_cli(run_target, box, changes, capsys, "--dry-run")
    assert code == 0
    assert box.stats()["mutation_requests"] == stats["mutation_requests"]
    assert snapshot(box) == state
    plan = out.splitlines()
    assert f"would update company id={existing[0]['id']}: " in "\n".join(plan)
    assert sum(line.startswith("would delete company") for line in plan) == 2
    assert not (tmp_path / "push.revert.jsonl").exists()


def test_a_deleted_record_is_created_again_with_its_last_known_fields(
    box, run_target, tmp_path, capsys
):
    victim = sorted(snapshot(box).values(), key=lambda c: c["id"])[2]
    changes = tmp_path / "delete.jsonl"
    row = {"id": victim["id"], "_sdc_deleted_at": "2026-01-01T00:00:00Z"}
    run_target(
        box,
        stream_messages("company", [row], ["id", "name", "_sdc_deleted_at"]),
        changes_path=str(changes),
        hard_delete=True,
    )
    assert victim["id"] not in snapshot(box)
    code, out, _ = revert_cli(run_target, box, changes, capsys)
    assert code == 0
    assert f"create again company id={victim['id']}" in out
    (again,) = [
        c for c in snapshot(box).values() if c.get("customerCode") == victim["customerCode"]
    ]
    for name in ("name", "city", "email", "phone", "note", "status", "postalCode"):
        assert again[name] == victim[name], name


def test_a_log_with_writes_left_in_flight_is_refused(box, run_target, tmp_path, capsys):
    changes, _ = push(box, run_target, tmp_path)
    entry = {**read(changes)[0], "write": "killed-1"}
    Path(f"{changes}.inflight").write_text(json.dumps(entry) + "\n", encoding="utf-8")
    code, out, _ = revert_cli(run_target, box, changes, capsys)
    assert code == 1
    assert "run the target again with the same changes_path" in out


def test_the_console_script_refuses_a_line_that_is_no_change(tmp_path):
    changes = tmp_path / "bad.jsonl"
    changes.write_text('{"operation": "merge"}\n', encoding="utf-8")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"api_url": "http://127.0.0.1:9/graphql", "api_key": "k"}))
    cli = str(Path(sys.executable).parent / "moovago-revert")
    done = subprocess.run(
        [cli, "--config", str(config), str(changes)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == f"moovago-revert: error: {changes}:1: not a change-log line"


def test_the_revert_follows_the_business_hours_rule(box, run_target, tmp_path):
    import datetime as dt
    import logging

    from target_moovago.ledger import BusinessHoursError
    from target_moovago.sinks import Run

    changes, _ = push(box, run_target, tmp_path)
    config = run_target.config(box, bulk_threshold=1, changes_path=str(tmp_path / "own.jsonl"))
    monday = dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.timezone.utc)  # 11:00 in Paris
    run = Run(
        config,
        logging.getLogger("revert-test"),
        clock=lambda: monday,
        sleep=lambda _s: None,
        production=True,
    )
    mutation_requests = box.stats()["mutation_requests"]
    try:
        with pytest.raises(BusinessHoursError, match="bulk job refused"):
            revert.revert(run, revert.read_changes(changes), lambda _line: None)
    finally:
        run.close()
    assert box.stats()["mutation_requests"] == mutation_requests


def test_children_are_reverted_before_their_parents(box, run_target, tmp_path, capsys):
    before = {e: len(entity_rows(box, e)) for e in ("company", "companyContact")}
    changes = tmp_path / "family.jsonl"
    company = {"customerCode": "FAM-1", "name": "Parent SA"}
    contact = {"companyCustomerCode": "FAM-1", "lastName": "Child", "email": "c@fam.test"}
    messages = [*stream_messages("company", [company]), *stream_messages("contact", [contact])]
    run_target(box, messages, changes_path=str(changes))
    assert [e["stream"] for e in read(changes)] == ["company", "contact"]
    code, out, config = revert_cli(run_target, box, changes, capsys)
    assert code == 0, out
    assert out.index("delete contact") < out.index("delete company")
    assert {e: len(entity_rows(box, e)) for e in before} == before
    assert not Path(config["rejects_path"]).exists()  # nothing refused on the way
