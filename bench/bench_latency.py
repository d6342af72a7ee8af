"""Benchmark: throughput at real-world latency, several requests in flight vs one (issue 15).

The sandbox answers every query (tap) or every mutation (target) after a fixed latency
(`--latency-read` / `--latency-mutation`, no jitter), rate limit 5 requests/s as Moovago.
Each case runs the connector in this process, alternating the one-in-flight baseline
(`max_requests_in_flight=1`) and the candidate (the setting unset: its default from the rate),
with a sandbox reset before each run (same rows, counters from zero).

- tap: the company stream, `page_size` 500 at the tap's default 4 requests/s (bound 2,000
  records/s),
  latency 0, 300 and 1,000 ms;
- target: new companies, the target's defaults (25 mutations per request at 1 request/s,
  bound 25 rows/s), latency 0, 500 and 1,500 ms.

Rates are marginal: rows of the full pages (batches) answered after the first one over the
time from the first to the last (each answer timed as the client returns it), so a stream's
fixed costs (the first answer, the index read, the end checks past the last page) do not hide
the steady rate. 429s and peak requests per
second are the sandbox's own counts (/_sandbox/stats). CPU is this process's user+system
time (getrusage, the client's request threads included; the sandbox is another process) per
record or row. Reported: the median of `--runs` runs of each, candidate / baseline ratios.

    .venv/bin/python bench/bench_latency.py [--runs 3] [--tap-rows 20000] [--target-rows 500]
        [--only tap|target] [--write]

`--write` replaces the "Latency" section of BENCHMARKS.md with the results; `--save FILE` keeps
the medians and `--load FILE` reports them beside this run's (e.g. one case at a time).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import logging
import os
import platform
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks_md import write_section

from moovago_api.client import MoovagoClient
from moovago_api.governor import default_in_flight
from moovago_sandbox.testing import start_sandbox
from tap_moovago.tap import TapMoovago
from target_moovago.target import TargetMoovago

RATE = 5  # the sandbox's limit
TAP_RATE = 4  # the tap's default rate
PAGE_SIZE = 500
TARGET_RATE = 1  # the target's default rate
PER_REQUEST = 25  # the target's default mutations_per_request
TAP_LATENCIES = (0, 300, 1000)
TARGET_LATENCIES = (0, 500, 1500)


@dataclass
class Answers:
    """When each request's answer came back, and how many rows it held."""

    times: list[tuple[float, int, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def marginal(self, label: str) -> float:
        """Rows of the full pages (or batches) after the first / time from the first to the
        last: the steady rate, without a stream's fixed costs (first answer, end checks)."""
        full = max((n for _, n, name in self.times if label in name), default=0)
        points = sorted((t, n) for t, n, name in self.times if label in name and n == full > 0)
        if len(points) < 2 or points[-1][0] <= points[0][0]:
            return float("nan")
        return sum(n for _, n in points[1:]) / (points[-1][0] - points[0][0])


@contextlib.contextmanager
def timed_answers() -> Iterator[Answers]:
    """Wrap MoovagoClient.execute to note each answer's time and row count."""
    answers = Answers()
    original = MoovagoClient.execute

    def execute(client: MoovagoClient, document: Any, *args: Any, **kwargs: Any) -> Any:
        data = original(client, document, *args, **kwargs)
        name = kwargs.get("operation_name") or (args[1] if len(args) > 1 else None) or ""
        with answers._lock:
            answers.times.append((time.monotonic(), _rows(data), str(name)))
        return data

    MoovagoClient.execute = execute  # type: ignore[method-assign]
    try:
        yield answers
    finally:
        MoovagoClient.execute = original  # type: ignore[method-assign]


def _rows(data: Any, depth: int = 0) -> int:
    """Rows in an answer: the longest list in it, or the aliases of a mutation batch."""
    if isinstance(data, list):
        return len(data)
    if not isinstance(data, dict) or depth > 3:
        return 0
    aliases = [v for k, v in data.items() if k[:1] in "cud" and k[1:].isdigit()]
    if aliases:
        return len(aliases)
    return max((_rows(v, depth + 1) for v in data.values()), default=0)


@dataclass
class Run:
    case: str
    latency: int
    in_flight: int
    rows: int
    rate: float  # marginal rows/s
    bound: float
    rate_limited: int
    peak_rps: int
    cpu_us_per_row: float

    @property
    def share(self) -> float:
        return self.rate / self.bound


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def tap_run(handle: Any, rows: int, latency: int, in_flight: int | None) -> Run:
    config: dict[str, Any] = {
        "api_url": handle.url,
        "api_key": handle.api_key,
        "page_size": PAGE_SIZE,
    }
    if in_flight is not None:
        config["max_requests_in_flight"] = in_flight
    catalog = TapMoovago(config=config, validate_config=False).catalog_dict
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if not item["breadcrumb"]:
                item["metadata"]["selected"] = entry["tap_stream_id"] == "company"
    handle.reset()
    out = io.StringIO()
    cpu = _cpu()
    with timed_answers() as answers, contextlib.redirect_stdout(out):
        TapMoovago(config=config, catalog=catalog).sync_all()
    cpu = _cpu() - cpu
    emitted = sum(1 for line in out.getvalue().splitlines() if '"RECORD"' in line[:20])
    if emitted != rows:
        raise SystemExit(f"tap: expected {rows} company records, got {emitted}")
    stats = handle.stats()
    return Run(
        "tap",
        latency,
        in_flight or default_in_flight(TAP_RATE),
        rows,
        answers.marginal(""),
        TAP_RATE * PAGE_SIZE,
        stats["rate_limited"],
        stats["peak_requests_per_second"],
        cpu / rows * 1e6,
    )


def target_run(handle: Any, rows: int, latency: int, in_flight: int | None, seq: int) -> Run:
    handle.reset()
    prefix = f"LAT{seq}"
    records = [{"customerCode": f"{prefix}-{i:05d}", "name": f"Latency {i}"} for i in range(rows)]
    schema = {
        "type": "SCHEMA",
        "stream": "company",
        "schema": {"type": "object", "properties": {"customerCode": {}, "name": {}}},
        "key_properties": [],
    }
    messages = [schema, *({"type": "RECORD", "stream": "company", "record": r} for r in records)]
    text = "".join(json.dumps(m) + "\n" for m in messages)
    with tempfile.TemporaryDirectory() as tmp:
        config: dict[str, Any] = {
            "api_url": handle.url,
            "api_key": handle.api_key,
            "rejects_path": f"{tmp}/rejects.jsonl",
            "summary_path": f"{tmp}/summary.json",
        }
        if in_flight is not None:
            config["max_requests_in_flight"] = in_flight
        cpu = _cpu()
        with timed_answers() as answers, contextlib.redirect_stdout(io.StringIO()):
            TargetMoovago(config=config).listen(io.StringIO(text))
        cpu = _cpu() - cpu
        summary = json.loads(Path(f"{tmp}/summary.json").read_text())
    created = summary["streams"]["company"].get("created", 0)
    if created != rows:
        raise SystemExit(f"target: expected {rows} created, got {created}")
    stats = handle.stats()
    return Run(
        "target",
        latency,
        in_flight or default_in_flight(TARGET_RATE),
        rows,
        answers.marginal("Batch"),
        TARGET_RATE * PER_REQUEST,
        stats["rate_limited"],
        stats["peak_requests_per_second"],
        cpu / rows * 1e6,
    )


def bench(case: str, rows: int, runs: int) -> list[tuple[Run, Run]]:
    latencies = TAP_LATENCIES if case == "tap" else TARGET_LATENCIES
    flag = "--latency-read" if case == "tap" else "--latency-mutation"
    medians = []
    seq = 0
    for latency in latencies:
        companies = rows if case == "tap" else 5
        with start_sandbox(
            companies=companies, rate_limit=RATE, extra_args=[flag, str(latency), "--quiet"]
        ) as handle:
            pairs: dict[str, list[Run]] = {"baseline": [], "candidate": []}
            for index in range(runs):
                for name, in_flight in (("baseline", 1), ("candidate", None)):
                    seq += 1
                    run = (
                        tap_run(handle, rows, latency, in_flight)
                        if case == "tap"
                        else target_run(handle, rows, latency, in_flight, seq)
                    )
                    pairs[name].append(run)
                    print(
                        f"{case} {latency:5d} ms run {index + 1} {name:9s} in flight "
                        f"{run.in_flight:2d}: {run.rate:8.1f} rows/s ({run.share:6.1%}), "
                        f"429s {run.rate_limited}, peak {run.peak_rps}/s, "
                        f"CPU {run.cpu_us_per_row:.0f} us/row",
                        flush=True,
                    )
            medians.append((_median(pairs["baseline"]), _median(pairs["candidate"])))
    return medians


def _median(runs: list[Run]) -> Run:
    ordered = sorted(runs, key=lambda run: run.rate)
    middle = ordered[len(ordered) // 2]
    middle.rate_limited = max(r.rate_limited for r in runs)  # the worst run's 429s
    middle.peak_rps = max(r.peak_rps for r in runs)
    middle.cpu_us_per_row = statistics.median(r.cpu_us_per_row for r in runs)
    return middle


def report(results: dict[str, list[tuple[Run, Run]]], runs: int, load: tuple) -> str:
    lines = [
        "## Latency",
        "",
        "`bench/bench_latency.py`: throughput when every answer takes time (issue 15), several "
        "requests in flight (`max_requests_in_flight` unset: its default from the rate) side by "
        "side with one in flight (`max_requests_in_flight=1`), alternating in the same run. The "
        "sandbox adds a fixed latency to every query (tap) or mutation (target), rate limit "
        "5/s. Rates are marginal (rows of the full pages or batches answered after the first "
        "one over the time from the first to the last: a stream's fixed costs left out); "
        "429s (worst run) and peak requests/s are the sandbox's own "
        "counts; CPU is the connector process's user+system time per row.",
        "",
        f"Median of {runs} runs each, {datetime.date.today().isoformat()}, Python "
        f"{platform.python_version()}, {os.cpu_count()} cores, load average "
        f"{load[0]:.1f} before and {load[1]:.1f} after (other engineers' jobs on the machine).",
        "",
        "| case | latency | in flight | rows/s | of bound | ratio vs 1 | 429s | peak req/s "
        "| CPU us/row |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for case, pairs in results.items():
        for baseline, candidate in pairs:
            for run in (baseline, candidate):
                ratio = run.rate / baseline.rate if baseline.rate else float("nan")
                lines.append(
                    f"| {case}, {run.rows:,} rows, bound {run.bound:,.0f}/s | {run.latency:,} ms "
                    f"| {run.in_flight} | {run.rate:,.1f} | {run.share:.1%} | {ratio:.2f}x "
                    f"| {run.rate_limited} | {run.peak_rps} | {run.cpu_us_per_row:,.0f} |"
                )
    lines += [
        "",
        "Tap: the pager asks the pages after a page ahead (offset and page-number paging) "
        "through `MoovagoClient.submit`, as many as `useful_in_flight()` finds worth it "
        "(1 + rate x the answer time seen so far, at most the in-flight column), and from the "
        "first page on when that is 3 or more; a guess that does not hold (a short page, a "
        "re-read) is dropped unread, so up to that many requests go unused at the end of each "
        "list (not in these rates). The governor lets a second's requests leave together, so "
        "over a short stream the marginal rate can exceed the per-second bound; 20,000 rows (40 "
        "pages) keep that start small. One in flight, the rate stays at "
        "min(rate, page_size / latency). "
        "Target: the chunks of one planned batch are key-disjoint, so the writer keeps several "
        "in flight (`target_moovago/writer.py`); at the default 1 request/s the default window "
        "is 2, which covers answers up to 2 s. The target's 1,500 ms baseline is bound by "
        "1 / latency (16.7 rows/s = 67%).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tap-rows", type=int, default=20000)
    parser.add_argument("--target-rows", type=int, default=500)
    parser.add_argument("--only", choices=["tap", "target", "none"])
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--save", type=Path, help="also write the medians to this JSON file")
    parser.add_argument("--load", type=Path, help="report these saved medians too")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for name in ("tap-moovago", "target-moovago", "singer_sdk", "moovago_api"):
        logging.getLogger(name).setLevel(logging.WARNING)
    load_before = os.getloadavg()[0]
    results: dict[str, list[tuple[Run, Run]]] = {}
    if args.load:
        saved = json.loads(args.load.read_text())
        load_before = max(load_before, saved["load"])
        for case, pairs in saved["results"].items():
            results[case] = [(Run(**a), Run(**b)) for a, b in pairs]
    if args.only in (None, "tap"):
        results["tap"] = bench("tap", args.tap_rows, args.runs)
    if args.only in (None, "target"):
        results["target"] = bench("target", args.target_rows, args.runs)
    if args.save:
        data = {case: [[vars(a), vars(b)] for a, b in pairs] for case, pairs in results.items()}
        args.save.write_text(json.dumps({"load": load_before, "results": data}))
    section = report(results, args.runs, (load_before, os.getloadavg()[0]))
    print(section)
    if args.write:
        write_section("## Latency", section)


if __name__ == "__main__":
    sys.exit(main())
