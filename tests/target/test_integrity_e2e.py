"""Data integrity end to end against the sandbox (issue 11 items 2-5, issue 13 item 3):
exact keys and the opt-in, non-scalar keys, keyless rows, two runs at once, bad rows mixed
into valid input (NaN, oversize, HTTP 413, bad `_sdc_deleted_at`), reconciliation on the
server's clock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.target.helpers import entity_rows, mutations, stream_messages

TARGET_CLI = str(Path(sys.executable).parent / "target-moovago")
KELVIN = "\u212a"


def codes(box, prefix: str) -> Counter[str]:
    return Counter(
        c["customerCode"]
        for c in entity_rows(box, "company")
        if str(c.get("customerCode") or "").startswith(prefix)
    )


def by_code(box, code: str) -> list[dict]:
    return [c for c in entity_rows(box, "company") if c.get("customerCode") == code]


# -- matching ------------------------------------------------------------------------------


PAIRS = [("X-abc", "X-ABC"), ("X-Straße-1", "X-STRASSE-1"), (f"X-{KELVIN}-7", "X-K-7")]


@pytest.fixture
def box(sandbox_factory):
    return sandbox_factory(companies=2)


def seed(box, run_target, rows):
    run_target(box, stream_messages("company", rows))


def test_keys_differing_in_case_stay_distinct_by_default(box, run_target):
    seed(box, run_target, [{"customerCode": a, "name": "stored"} for a, _ in PAIRS])
    result = run_target(
        box, stream_messages("company", [{"customerCode": b, "name": "new"} for _, b in PAIRS])
    )
    assert result.counts("company")["created"] == 3
    for stored, incoming in PAIRS:
        assert [c["name"] for c in by_code(box, stored)] == ["stored"]  # never overwritten
        assert [c["name"] for c in by_code(box, incoming)] == ["new"]


def test_keys_match_across_case_with_the_opt_in(box, run_target):
    seed(box, run_target, [{"customerCode": a, "name": "stored"} for a, _ in PAIRS])
    result = run_target(
        box,
        stream_messages("company", [{"customerCode": b, "name": "new"} for _, b in PAIRS]),
        match_normalize={"company": ["trim", "case"]},
    )
    assert result.counts("company")["updated"] == 3
    assert result.counts("company").get("created", 0) == 0
    for stored, incoming in PAIRS:  # one record each, updated (its code now as the row spells it)
        same = [
            c for c in entity_rows(box, "company") if c.get("customerCode") in (stored, incoming)
        ]
        assert [(c["name"], c["customerCode"]) for c in same] == [("new", incoming)]


def test_a_non_scalar_key_rejects_its_row_and_the_others_land(box, run_target):
    rows = [
        {"customerCode": "NS-1", "name": "one"},
        {"customerCode": {"code": "NS-2"}, "name": "object"},
        {"customerCode": ["NS-3"], "name": "list"},
        {"customerCode": "NS-4", "name": "four"},
    ]
    result = run_target(box, stream_messages("company", rows))
    assert codes(box, "NS-") == Counter({"NS-1": 1, "NS-4": 1})
    assert sorted(r["field"] for r in result.rejects) == ["customerCode", "customerCode"]
    assert all(r["stream"] == "company" and "key value" in r["reason"] for r in result.rejects)


# -- keyless rows ----------------------------------------------------------------------------


def test_keyless_rows_are_refused_before_any_write_and_a_rerun_adds_nothing(box, run_target):
    rows = [{"name": f"Keyless {i}"} for i in range(5)] + [{"customerCode": "KL-1", "name": "k"}]
    for _ in range(2):  # a resume sends the same rows again
        result = run_target(
            box, stream_messages("company", rows), stream_modes={"company": "create_only"}
        )
        keyless = [r for r in result.rejects if r["row_key"].startswith("row #")]
        assert len(keyless) == 5
        assert all("allow_keyless_creates" in r["reason"] for r in keyless)
    names = [c["name"] for c in entity_rows(box, "company")]
    assert not [n for n in names if n.startswith("Keyless")]
    assert codes(box, "KL-") == Counter({"KL-1": 1})


def test_keyless_creates_with_the_opt_in(box, run_target):
    rows = [{"name": f"Opt {i}"} for i in range(3)]
    result = run_target(
        box,
        stream_messages("company", rows),
        stream_modes={"company": "create_only"},
        allow_keyless_creates=["company"],
    )
    assert result.counts("company")["created"] == 3


# -- two runs at once --------------------------------------------------------------------------


def _start(box, tmp: Path, text: str, **config) -> subprocess.Popen[str]:
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "config.json"
    path.write_text(
        json.dumps(
            {
                "api_url": box.url,
                "api_key": box.api_key,
                "max_requests_per_second": 5,
                "mutations_per_request": 10,
                "rejects_path": str(tmp / "rejects.jsonl"),
                **config,
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TARGET_MOOVAGO")}
    source = tmp / "input.singer"
    source.write_text(text)
    with source.open() as stdin:
        return subprocess.Popen(
            [TARGET_CLI, "--config", str(path)],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp,
            env=env,
        )


def _lines(rows) -> str:
    return "".join(json.dumps(m) + "\n" for m in stream_messages("company", rows))


@pytest.mark.slow
@pytest.mark.parametrize("wait", [0, 120])
def test_two_processes_started_together_write_every_row_exactly_once(
    sandbox_factory, tmp_path, wait
):
    box = sandbox_factory(companies=2, rate_limit=0)
    rows = [{"customerCode": f"TWO-{i:03d}", "name": f"Row {i}"} for i in range(100)]
    text = _lines(rows)
    lock_dir = tmp_path / "locks"
    procs = [
        _start(box, tmp_path / f"run{n}", text, lock_dir=str(lock_dir), lock_wait_seconds=wait)
        for n in range(2)
    ]
    outcomes = []
    for proc in procs:
        _out, err = proc.communicate(timeout=300)
        outcomes.append((proc.returncode, err))
    assert codes(box, "TWO-") == Counter({r["customerCode"]: 1 for r in rows}), outcomes
    assert mutations(box).get("create", 0) == 100
    returncodes = sorted(code for code, _ in outcomes)
    if wait:
        assert returncodes == [0, 0]  # the second waited, then found every row unchanged
    else:
        assert returncodes == [0, 1]
        refused = next(err for code, err in outcomes if code == 1)
        last = [line for line in refused.splitlines() if line.strip()][-1]
        assert "holds the run lock" in last
        assert "Traceback" not in refused


def test_a_dry_run_takes_no_lock(box, run_target, tmp_path):
    from target_moovago.runlock import RunLock

    lock = RunLock(box.url, box.team_id, lock_dir=tmp_path / "locks")
    lock.acquire()
    try:
        result = run_target(
            box,
            stream_messages("company", [{"customerCode": "DRY-1", "name": "d"}]),
            dry_run=True,
            lock_dir=str(tmp_path / "locks"),
        )
    finally:
        lock.release()
    assert result.counts("company")["created"] == 1
    assert codes(box, "DRY-") == Counter()


def test_a_held_lock_refuses_the_run_before_any_write(box, run_target, tmp_path):
    from target_moovago.runlock import RunLock, RunLockError

    lock = RunLock(box.url, box.team_id, lock_dir=tmp_path / "locks")
    lock.acquire()
    try:
        result = run_target(
            box,
            stream_messages("company", [{"customerCode": "LOCK-1", "name": "l"}]),
            raises=False,
            lock_dir=str(tmp_path / "locks"),
        )
    finally:
        lock.release()
    assert isinstance(result.error, RunLockError)
    assert codes(box, "LOCK-") == Counter()


# -- bad rows mixed into valid input ------------------------------------------------------------

LIMIT = 20_000  # the sandbox's body limit (HTTP 413 above it)


def mixed_rows() -> tuple[list[dict], dict[str, str]]:
    """Valid rows with bad ones among them; {customerCode of a bad row: field named}."""
    rows, bad = [], {}
    for i in range(60):
        rows.append({"customerCode": f"MIX-{i:03d}", "name": f"Valid {i}", "note": "n" * 600})
        if i % 10 == 3:
            code = f"BADNAN-{i}"
            point = {"latitude": float("nan"), "longitude": 1.0}
            rows.append({"customerCode": code, "name": "nan", "coordinates": point})
            bad[code] = "coordinates.latitude"
        if i % 10 == 5:
            code = f"BADDEL-{i}"
            rows.append({"customerCode": code, "name": "del", "_sdc_deleted_at": "NULL"})
            bad[code] = "_sdc_deleted_at"
        if i % 20 == 7:
            code = f"BADBIG-{i}"
            rows.append({"customerCode": code, "name": "big", "note": "x" * (LIMIT * 2)})
            bad[code] = "note"
    return rows, bad


def _check_mixed(box, result, rows, bad):
    landed = codes(box, "")
    valid = [r["customerCode"] for r in rows if r["customerCode"] not in bad]
    assert all(landed[c] == 1 for c in valid), [c for c in valid if landed[c] != 1]
    assert not any(landed[c] for c in bad)
    rejected = {}
    for reject in result.rejects:
        code = reject["row_key"].split("'")[1]
        rejected[code] = reject
    assert set(rejected) == set(bad)
    for code, field in bad.items():
        assert rejected[code]["field"] == field, rejected[code]
        assert rejected[code]["reason"].strip()


def test_bad_rows_mixed_into_valid_input_under_max_request_bytes(sandbox_factory, run_target):
    """The same limit on both sides: measured before sending, no request is ever refused."""
    box = sandbox_factory(companies=2, extra_args=["--max-body-bytes", str(LIMIT)])
    rows, bad = mixed_rows()
    columns = ["customerCode", "name", "note", "coordinates", "_sdc_deleted_at"]
    result = run_target(
        box,
        stream_messages("company", rows, columns),
        hard_delete=True,
        mutations_per_request=25,
        max_request_bytes=LIMIT,
    )
    _check_mixed(box, result, rows, bad)
    big = next(r for r in result.rejects if r["field"] == "note")
    assert f"max_request_bytes={LIMIT}" in big["reason"]
    assert box.stats()["too_large"] == 0


def test_bad_rows_mixed_into_valid_input_against_a_413_limit(sandbox_factory, run_target):
    box = sandbox_factory(companies=2, extra_args=["--max-body-bytes", str(LIMIT)])
    rows, bad = mixed_rows()
    columns = ["customerCode", "name", "note", "coordinates", "_sdc_deleted_at"]
    result = run_target(
        box, stream_messages("company", rows, columns), hard_delete=True, mutations_per_request=25
    )
    _check_mixed(box, result, rows, bad)
    big = next(r for r in result.rejects if r["field"] == "note")
    assert "413" in big["reason"]
    assert "bytes" in big["reason"]
    assert box.stats()["too_large"] > 0


# -- reconciliation on the server's clock ------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("offset", [-600, 600])
@pytest.mark.parametrize("date_header", [True, False])
def test_skewed_clocks_and_commit_then_fail_make_no_duplicate(
    sandbox_factory, run_target, offset, date_header
):
    """The server's clock `offset` s from ours (ours 10 min ahead of it, or behind), 30% of
    mutations applied then answered 502."""
    extra = ["--clock-offset", str(offset), "--fault-commit-then-fail", "0.3", "--fault-seed", "3"]
    if not date_header:
        extra.append("--no-date-header")
    box = sandbox_factory(companies=5, rate_limit=0, extra_args=extra)
    rows = [{"customerCode": f"SKEW-{i:03d}", "name": f"Skew {i}"} for i in range(150)]
    result = run_target(box, stream_messages("company", rows), mutations_per_request=10)
    found = codes(box, "SKEW-")
    assert len(found) == 150
    assert set(found.values()) == {1}, "duplicates"
    assert result.counts("company")["created"] == 150
    assert box.stats()["faults"]["commit_then_fail"] > 0
