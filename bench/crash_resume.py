"""Crash and resume at scale: SIGKILL target-moovago at 12 seeded points of a 2,000-row run and
tap-moovago at 5 seeded points of a 2,000-company extraction, restarting each from the last STATE
it emitted. Reports where each kill landed, where each restart resumed, and the final check
(rows lost, duplicated, creates applied). --write puts the report into RELIABILITY.md.

    .venv/bin/python bench/crash_resume.py
    .venv/bin/python bench/crash_resume.py --rows 500 --kills 4 --seed 3
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.harness: the test helpers, from the repository

from moovago_sandbox.testing import start_sandbox  # noqa: E402
from tests.harness.crash import kill_points, tap_crash_resume, target_crash_resume  # noqa: E402
from tests.harness.runs import (  # noqa: E402
    SECRET,
    company_row,
    tap_config,
    target_config,
    team_rows,
)

BEGIN, END = "<!-- crash_resume:begin -->", "<!-- crash_resume:end -->"
STATE_EVERY = 100


def bench_target(rows: int, kills: int, seed: int, tmp: Path) -> dict[str, Any]:
    data = [company_row(seq, "KR") for seq in range(rows)]
    points = kill_points(seed, kills, rows)
    with start_sandbox(companies=50, api_keys=[SECRET]) as box:
        before = team_rows(box)
        config = target_config(box, tmp, batch_size_rows=200)
        started = time.monotonic()
        report = target_crash_resume(box, config, data, tmp, points=points, state_every=STATE_EVERY)
        seconds = time.monotonic() - started
        after, stats = team_rows(box), box.stats()
    codes = Counter(r.get("customerCode") for r in after if r.get("customerCode"))
    lost = sum(1 for r in data if r["customerCode"] not in codes)
    duplicated = sum(n - 1 for n in codes.values() if n > 1)
    return {
        "rows": rows,
        "kill_points": points,
        "killed": report.kills,
        "exit_codes": [r.returncode for r in report.runs],
        "states_emitted": [len(r.states) for r in report.runs],
        "resumed_from": report.resumed_from,
        "final_exit": report.runs[-1].returncode,
        "lost": lost,
        "duplicated": duplicated,
        "other_rows_changed": len(after) - len(before) - rows,
        "creates_applied": stats["mutations"]["company"]["create"],
        "requests": stats["requests"],
        "seconds": round(seconds, 1),
    }


def bench_tap(companies: int, kills: int, seed: int, tmp: Path) -> dict[str, Any]:
    rng = random.Random(seed)  # replayable kill points
    with start_sandbox(companies=companies, api_keys=[SECRET]) as box:
        export = box.export()
        total = sum(
            1
            for entity in ("company", "companyContact", "mandator", "turnover")
            for r in export[entity]
            if r.get("teamId") == box.team_id
        )
        points = sorted(rng.sample(range(10, total), kills))
        runs, states = tap_crash_resume(tap_config(box, page_size=200), tmp, kill_after=points)
    missing = 0
    for stream, entity in {
        "company": "company",
        "contact": "companyContact",
        "mandator": "mandator",
        "turnover": "turnover",
    }.items():
        union = {m["record"]["id"] for r in runs for m in r.records if m["stream"] == stream}
        expected = {r["id"] for r in export[entity] if r.get("teamId") == box.team_id}
        missing += len(expected - union)
    return {
        "rows": total,
        "kill_after_records": points,
        "exit_codes": [r.returncode for r in runs],
        "records_per_run": [len(r.records) for r in runs],
        "resumed_with_state": [s is not None for s in states],
        "missing_from_union": missing,
    }


def markdown(target: dict[str, Any], tap: dict[str, Any]) -> str:
    killed = target["exit_codes"][:-1].count(-signal.SIGKILL)
    return (
        f"Target: {target['rows']} new companies, STATE every {STATE_EVERY} rows, "
        f"{len(target['kill_points'])} SIGKILLs at mutation counts {target['kill_points']} "
        f"({killed} landed mid-run), then a run to the end.\n\n"
        f"| measure | value |\n|---|---|\n"
        f"| STATE lines emitted per run | {target['states_emitted']} |\n"
        f"| bookmark each restart resumed from | {target['resumed_from']} |\n"
        f"| final run exit code | {target['final_exit']} |\n"
        f"| rows lost / duplicated / other rows changed | {target['lost']} / "
        f"{target['duplicated']} / {target['other_rows_changed']} |\n"
        f"| creates the sandbox applied (expected {target['rows']}) | "
        f"{target['creates_applied']} |\n"
        f"| requests, seconds (all runs) | {target['requests']}, {target['seconds']} |\n\n"
        f"Tap: {tap['rows']} rows over 4 list streams, SIGKILL after "
        f"{tap['kill_after_records']} records, each restart from the last STATE emitted.\n\n"
        f"| measure | value |\n|---|---|\n"
        f"| exit codes | {tap['exit_codes']} |\n"
        f"| records per run | {tap['records_per_run']} |\n"
        f"| restart had a STATE to resume from | {tap['resumed_with_state']} |\n"
        f"| rows missing from the union of outputs | {tap['missing_from_union']} |\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--tap-kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--write", action="store_true", help="put the report into RELIABILITY.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        target = bench_target(args.rows, args.kills, args.seed, Path(tmp) / "target")
        print(json.dumps(target), flush=True)
        tap = bench_tap(args.rows, args.tap_kills, args.seed, Path(tmp) / "tap")
        print(json.dumps(tap), flush=True)
    text = markdown(target, tap)
    print(text)
    if args.write:
        path = ROOT / "RELIABILITY.md"
        doc = path.read_text(encoding="utf-8")
        start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
        path.write_text(doc[:start] + "\n" + text + doc[end:], encoding="utf-8")


if __name__ == "__main__":
    main()
