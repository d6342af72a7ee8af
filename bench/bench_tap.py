"""Benchmark: tap-moovago extracting 10,000 and 100,000 companies at 5 requests/s.

For each size and sandbox rate limit (5 req/s as Moovago, and off to see the tap alone), one
sandbox is seeded once, then the tap runs several times as a subprocess (`--catalog` selecting
`company`, its parent `team` deselected) with `max_requests_per_second=5` and `page_size=500`.
Per run: records/s of the company stream (from the SDK's own `sync_duration` and
`record_count` metrics) as a share of the bound page_size x rate, the 429s the sandbox saw,
and the tap process's peak RSS (its own VmHWM, written as it exits: wait4's ru_maxrss would
carry this process's peak across the fork and exec).
Reported: the median run per size and the peak-memory ratio 100,000 vs 10,000.

    .venv/bin/python bench/bench_tap.py [--runs 3] [--sizes 10000 100000] [--limits 5 0] [--write]

`--write` replaces the "Tap" section of BENCHMARKS.md with the results.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks_md import write_section

from moovago_api.governor import ARRIVAL_MARGIN
from moovago_sandbox.testing import start_sandbox
from tap_moovago.tap import TapMoovago

ROOT = Path(__file__).resolve().parents[1]
#: Runs the tap's CLI and, as the process exits, writes its own peak RSS (KiB) to argv[1].
_TAP_WITH_PEAK = """
import atexit, sys
out = sys.argv.pop(1)
def peak():
    with open("/proc/self/status") as status, open(out, "w") as f:
        f.write(next(l.split()[1] for l in status if l.startswith("VmHWM:")))
atexit.register(peak)
sys.argv[0] = "tap-moovago"
from tap_moovago.tap import TapMoovago
TapMoovago.cli()
"""
TAP_WITH_PEAK = [sys.executable, "-c", _TAP_WITH_PEAK]
RATE = 5
PAGE_SIZE = 500
BOUND = RATE * PAGE_SIZE
THROTTLE_NOTE = (
    "Each 429 pauses every request for at least the client's 1 s backoff (the sandbox sends no "
    "Retry-After by default). The sandbox counts arrivals, not our send times, so arrival "
    "jitter larger than the governor's margin can still put six arrivals in one second."
)
METRIC = re.compile(r"METRIC: (\{.*\})")


@dataclass
class Run:
    companies: int
    records: int
    seconds: float
    wall_seconds: float
    peak_rss_mb: float
    rate_limited: int

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds

    @property
    def share_of_bound(self) -> float:
        return self.records_per_second / BOUND


def _catalog(config: dict) -> dict:
    catalog = TapMoovago(config=config, validate_config=False).catalog_dict
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if not item["breadcrumb"]:
                item["metadata"]["selected"] = entry["tap_stream_id"] == "company"
    return catalog


def _metrics(stderr: str, stream: str) -> tuple[int, float]:
    records, seconds = 0, 0.0
    for match in METRIC.finditer(stderr):
        point = json.loads(match.group(1))
        if point.get("tags", {}).get("stream") != stream:
            continue
        if point["metric"] == "record_count":
            records += int(point["value"])
        elif point["metric"] == "sync_duration":
            seconds += float(point["value"])
    return records, seconds


def run_once(handle: object, companies: int, workdir: Path) -> Run:
    config = {
        "api_url": handle.url,  # type: ignore[attr-defined]
        "api_key": handle.api_key,  # type: ignore[attr-defined]
        "max_requests_per_second": RATE,
        "page_size": PAGE_SIZE,
    }
    config_file = workdir / "config.json"
    catalog_file = workdir / "catalog.json"
    config_file.write_text(json.dumps(config))
    catalog_file.write_text(json.dumps(_catalog(config)))
    limited_before = handle.stats()["rate_limited"]  # type: ignore[attr-defined]
    with (workdir / "out.jsonl").open("w") as out, (workdir / "err.log").open("w+") as err:
        started = time.monotonic()
        peak_file, catalog = workdir / "peak_kib", str(catalog_file)
        process = subprocess.Popen(
            [*TAP_WITH_PEAK, str(peak_file), "--config", str(config_file), "--catalog", catalog],
            stdout=out,
            stderr=err,
        )
        _, status, _usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read()
    if process.returncode != 0:
        raise SystemExit(f"tap failed ({process.returncode}):\n{stderr[-3000:]}")
    records, seconds = _metrics(stderr, "company")
    if records != companies:
        raise SystemExit(f"expected {companies} company records, the tap emitted {records}")
    return Run(
        companies=companies,
        records=records,
        seconds=seconds,
        wall_seconds=wall,
        peak_rss_mb=int(peak_file.read_text()) / 1024,
        rate_limited=handle.stats()["rate_limited"] - limited_before,  # type: ignore[attr-defined]
    )


def bench(sizes: list[int], runs: int, limits: list[int]) -> dict[tuple[int, int], list[Run]]:
    results: dict[tuple[int, int], list[Run]] = {}
    for companies in sizes:
        for limit in limits:
            seed_started = time.monotonic()
            with (
                start_sandbox(companies=companies, rate_limit=limit) as handle,
                tempfile.TemporaryDirectory() as tmp,
            ):
                seeded = time.monotonic() - seed_started
                print(f"sandbox: {companies} companies, limit {limit or 'off'}, {seeded:.1f} s")
                results[companies, limit] = []
                for index in range(runs):
                    run = run_once(handle, companies, Path(tmp))
                    results[companies, limit].append(run)
                    print(
                        f"  run {index + 1}: {run.records_per_second:7.0f} rec/s "
                        f"({run.share_of_bound:.1%} of {BOUND}), {run.seconds:.1f} s sync, "
                        f"{run.wall_seconds:.1f} s wall, peak RSS {run.peak_rss_mb:.0f} MB, "
                        f"429s {run.rate_limited}"
                    )
    return results


def _median_run(runs: list[Run]) -> Run:
    ordered = sorted(runs, key=lambda run: run.records_per_second)
    return ordered[len(ordered) // 2]


def report(
    results: dict[tuple[int, int], list[Run]], runs: int, load: tuple[float, float] = (0, 0)
) -> str:
    margin = f"{ARRIVAL_MARGIN * 1000:.0f} ms"
    lines = [
        "## Tap",
        "",
        f"`bench/bench_tap.py`, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs shared with other work "
        f"(1-minute load average {load[0]:.1f} at the start, {load[1]:.1f} at the end). Stream "
        f"`company` only (with its nested `mandators`), tap at {RATE} req/s, page_size "
        f"{PAGE_SIZE}: bound {BOUND} records/s. Median of {runs} runs per row; records/s from "
        "the SDK's `sync_duration` and `record_count` metrics; peak RSS of the tap process. "
        f"Rows with the sandbox limit off show the tap alone (its governor still keeps {RATE} "
        "req/s); rows at limit 5 add the 429s the sandbox answers. The shared governor widens "
        f"each 1 s window by its arrival margin ({margin}), so its own ceiling is "
        f"{1 / (1 + ARRIVAL_MARGIN):.1%} of the bound.",
        "",
        "| companies | sandbox limit | records/s | share of bound | sync s | wall s "
        "| peak RSS MB | 429s (all runs) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (companies, limit), size_runs in results.items():
        run = _median_run(size_runs)
        peak = statistics.median(r.peak_rss_mb for r in size_runs)
        lines.append(
            f"| {companies:,} | {limit or 'off'} | {run.records_per_second:,.0f} | "
            f"{run.share_of_bound:.1%} | {run.seconds:.1f} | {run.wall_seconds:.1f} | "
            f"{peak:.0f} | {sum(r.rate_limited for r in size_runs)} |"
        )
    if any(r.rate_limited for (_, limit), runs_ in results.items() if limit for r in runs_):
        lines += ["", THROTTLE_NOTE]
    sizes = sorted({companies for companies, _ in results})
    if len(sizes) >= 2:
        for limit in sorted({limit for _, limit in results}, reverse=True):
            small = statistics.median(r.peak_rss_mb for r in results[sizes[0], limit])
            large = statistics.median(r.peak_rss_mb for r in results[sizes[-1], limit])
            lines.append(
                f"\nPeak memory {sizes[-1]:,} vs {sizes[0]:,} companies, sandbox limit "
                f"{limit or 'off'}: {large / small:.2f}x (target at most 1.5x)."
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument(
        "--limits", type=int, nargs="+", default=[RATE, 0], help="sandbox limits, 0 = off"
    )
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    results = bench(args.sizes, args.runs, args.limits)
    section = report(results, args.runs, (load_before, os.getloadavg()[0]))
    print(section)
    if args.write:
        write_section("## Tap", section)


if __name__ == "__main__":
    main()
