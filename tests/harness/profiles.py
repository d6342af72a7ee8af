"""The sandbox fault profiles of the fault matrix (tests and bench/bench_faults.py share them)."""

from __future__ import annotations

from typing import Any

#: name -> (sandbox fault profile, sandbox options). Seeds fixed so each run is replayable.
PROFILES: dict[str, dict[str, Any]] = {
    "none": {},
    "5xx_10pct": {"error_5xx": 0.10, "seed": 1},
    "429_bursts": {"burst_429": 0.20, "seed": 2},
    "latency_spikes": {"latency": {"probability": 0.20, "ms": 400}, "seed": 3},
    "dropped_connections": {"drop_connection": 0.10, "seed": 4},
    "partial_errors": {"partial_error": 0.20, "seed": 5},
    "commit_then_fail_20pct": {"commit_then_fail": 0.20, "seed": 6},
    "everything": {
        "error_5xx": 0.05,
        "burst_429": 0.05,
        "drop_connection": 0.05,
        "latency": {"probability": 0.10, "ms": 300},
        "commit_then_fail": 0.10,
        "seed": 7,
    },
}

#: Profiles under which a run must still end with exactly the expected rows. Partial errors
#: are not among them: a read answered with `errors` beside partial `data` makes the tap (and
#: the target's index prefetch) stop with a clear error naming the path, by design, rather
#: than emit a row with a value silently nulled.
RECOVERABLE = [name for name in PROFILES if name != "partial_errors"]
