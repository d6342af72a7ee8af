"""Kill-and-resume drivers shared by tests/reliability and bench/crash_resume.py."""

from __future__ import annotations

import random
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.harness.runs import (
    Run,
    lines,
    mutation_total,
    resumable_input,
    run_tap,
    run_target,
    run_target_until,
)


@dataclass
class CrashReport:
    kills: int = 0
    resumed_from: list[int] = field(default_factory=list)  # the bookmark each restart used
    runs: list[Run] = field(default_factory=list)


def kill_points(seed: int, count: int, total: int) -> list[int]:
    """One seeded mutation count in each of `count` equal slices of [1, total): where to
    SIGKILL the target (spread out, so each kill lands in a different part of the run)."""
    rng = random.Random(seed)
    width = (total - 1) / count
    return [1 + int(i * width) + rng.randrange(max(1, int(width))) for i in range(count)]


def target_crash_resume(
    handle: Any,
    config: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    tmp: Path,
    *,
    points: Sequence[int],
    state_every: int,
) -> CrashReport:
    """SIGKILL the target each time the sandbox's mutation count passes the next point, restart
    from the last STATE it emitted (rows after the bookmark), then run to the end."""
    report = CrashReport()
    start = 0
    base = mutation_total(handle)
    for number, point in enumerate(points):
        text = lines(resumable_input(rows, state_every=state_every, start=start))
        run = run_target_until(
            config,
            text,
            tmp / f"run-{number}",
            kill_after_mutations=base + point,
            mutations=lambda: mutation_total(handle),
            sig=signal.SIGKILL,
        )
        report.runs.append(run)
        report.kills += run.returncode == -signal.SIGKILL
        start = _bookmark(run, start)
        report.resumed_from.append(start)
    final = run_target(
        config,
        lines(resumable_input(rows, state_every=state_every, start=start)),
        tmp / "final",
    )
    report.runs.append(final)
    return report


def _bookmark(run: Run, previous: int) -> int:
    for state in reversed(run.states):
        seq = state.get("bookmarks", {}).get("company", {}).get("seq")
        if isinstance(seq, int):
            return seq
    return previous


def tap_crash_resume(
    config: Mapping[str, Any], tmp: Path, *, kill_after: Sequence[int]
) -> tuple[list[Run], list[dict[str, Any] | None]]:
    """SIGKILL the tap after each count of records, resuming from the last STATE it emitted."""
    runs: list[Run] = []
    states: list[dict[str, Any] | None] = []
    state: dict[str, Any] | None = None
    for number, count in enumerate(kill_after):
        run = run_tap(config, tmp / f"tap-{number}", state=state, kill_after_records=count)
        runs.append(run)
        if run.states:
            state = run.states[-1]
        states.append(state)
    runs.append(run_tap(config, tmp / "tap-final", state=state))
    states.append(state)
    return runs, states
