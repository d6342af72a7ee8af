"""Benchmark: how fast the sandbox serves a 500-row `companyList` page, rate limit off.

Two sandboxes run side by side from the same seed: one as shipped (parsed-document cache and
the fast projection path) and one with `--no-fast-path` (every query through graphql-core's
`execute`), the baseline. Runs alternate between them so both see the same machine load. A run
sends requests one after another on one keep-alive connection, cycling through the pages
(skip 0, 500, ...), each asking for every non-deprecated Company field (19 values per row plus
`mandators { id name }`); the figure is requests/s at the client.
Also reported: the time until a sandbox with 20,000 companies prints its first line.

The target is 100 requests/s or more for the shipped path. Plain HTTP (http.client) is
used on purpose: MoovagoClient's governor caps at 5 requests/s, which is not what we measure.

    .venv/bin/python bench/bench_sandbox.py [--runs 5] [--requests 200] [--write]

`--write` replaces the "Sandbox" section of BENCHMARKS.md with the results.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from contextlib import ExitStack
from pathlib import Path

from benchmarks_md import write_section

from moovago_sandbox.app import DEFAULT_KEY, Sandbox, SandboxConfig
from moovago_sandbox.engine import RequestContext
from moovago_sandbox.testing import SandboxHandle, start_sandbox

ROOT = Path(__file__).resolve().parents[1]
# The figures of the previous run (2026-11-29, before the engine was split by role and
# generated from the SDL), shown beside the new ones.
PREVIOUS_DATE = "2026-11-29"
PREVIOUS = {
    "fast": 133.0,
    "baseline": 8.2,
    "inside_fast": 5.5,
    "inside_baseline": 93.6,
    "startup": 10.1,
}
CONNECTION_VARIANT = ROOT / "tests" / "schema_variants" / "shapes" / "connection_edges.gql"
CONNECTION_DOCUMENT = """query CompanyPage($filter: FilterManyCompanyInput!, $first: Int) {
  companyList(filter: $filter, first: $first) {
    edges { cursor node {
      id teamId name ownerIds status customerCode address postalCode city country
      coordinates { latitude longitude } phone email website note mandatorIds
      mandators { id name } createdAt updatedAt } }
    pageInfo { hasNextPage endCursor }
  }
}"""
PAGE = 500
COMPANIES = 2000
FIELDS = 19
DOCUMENT = """query CompanyPage($filter: FilterManyCompanyInput!, $skip: Int, $limit: Int) {
  companyList(filter: $filter, skip: $skip, limit: $limit) {
    id teamId name ownerIds status customerCode address postalCode city country
    coordinates { latitude longitude } phone email website note mandatorIds
    mandators { id name } createdAt updatedAt
  }
}"""


def run(box: SandboxHandle, conn: http.client.HTTPConnection, n: int) -> float:
    """Requests per second over `n` page requests on one keep-alive connection.

    The client is http.client (lighter than requests) and decodes only the first body (checked
    row by row): decoding 300 KB of JSON costs a client about as much as the server's work,
    and the server is what is measured. Every body is still checked to be a full page without
    errors.
    """
    pages = COMPANIES // PAGE
    prefix = b'{"data":{"companyList":[{"id":'
    headers = {"Content-Type": "application/json", "X-API-KEY": box.api_key}
    path = urllib.parse.urlsplit(box.url).path
    started = time.perf_counter()
    for i in range(n):
        variables = {"filter": {"teamId": box.team_id}, "skip": (i % pages) * PAGE, "limit": PAGE}
        conn.request("POST", path, json.dumps({"query": DOCUMENT, "variables": variables}), headers)
        response = conn.getresponse()
        body = response.read()
        if i == 0:
            rows = json.loads(body)["data"]["companyList"]
            if len(rows) != PAGE or len(rows[0]) != FIELDS:
                raise RuntimeError(f"unexpected page: {len(rows)} rows, {len(rows[0])} fields")
        if response.status != 200 or not body.startswith(prefix) or b'"errors"' in body:
            raise RuntimeError(f"unexpected answer: {response.status} {body[:300]!r}")
    return n / (time.perf_counter() - started)


def in_process_ms(runs: int) -> dict[str, float]:
    """Median milliseconds to answer one page inside the server (no HTTP, no client), per path:
    the server's capacity whatever the client and the machine's other load cost."""
    box = Sandbox(SandboxConfig(companies=COMPANIES, rate_limit=0))
    team = box.keys[DEFAULT_KEY]
    variables = {"filter": {"teamId": team}, "skip": PAGE, "limit": PAGE}
    times: dict[str, list[float]] = {"fast": [], "baseline": []}
    for _ in range(runs):
        for name, fast in (("fast", True), ("baseline", False)):
            ctx = RequestContext(box.store, team, None)
            started = time.perf_counter()
            box.engine.answer(ctx, DOCUMENT, variables, fast=fast).as_text().encode("utf-8")
            times[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def connection_ms(runs: int) -> float:
    """Median milliseconds for a 500-row page of a connection (`edges { node cursor }`) in a
    sandbox built from a variant file: served by graphql-core (no fast path for connections)."""
    box = Sandbox(SandboxConfig(companies=COMPANIES, rate_limit=0, schema_path=CONNECTION_VARIANT))
    team = box.keys[DEFAULT_KEY]
    variables = {"filter": {"teamId": team}, "first": PAGE}
    times = []
    for _ in range(runs):
        ctx = RequestContext(box.store, team, None)
        started = time.perf_counter()
        box.engine.answer(ctx, CONNECTION_DOCUMENT, variables).as_text().encode("utf-8")
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


MEASURE = """
import json, statistics, sys, time
from moovago_sandbox.app import DEFAULT_KEY, Sandbox, SandboxConfig
from moovago_sandbox.engine import RequestContext
document, page, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
started = time.perf_counter()
Sandbox(SandboxConfig(companies=20000, rate_limit=0))
seed_s = time.perf_counter() - started
box = Sandbox(SandboxConfig(companies=2000, rate_limit=0))
team = box.keys[DEFAULT_KEY]
variables = {"filter": {"teamId": team}, "skip": page, "limit": page}
times = []
for _ in range(runs):
    ctx = RequestContext(box.store, team, None)
    t = time.perf_counter()
    box.engine.answer(ctx, document, variables, fast=True).as_text().encode("utf-8")
    times.append((time.perf_counter() - t) * 1000)
print(json.dumps({"page_ms": statistics.median(times), "seed_s": seed_s}))
"""


def compare_with(ref: str, rounds: int) -> dict[str, dict[str, float]]:
    """This tree's sandbox against the one at git `ref`, in alternating subprocesses (same
    machine load for both): median fast-path page ms and seconds to build a 20,000-company
    sandbox in process."""
    out: dict[str, list[dict[str, float]]] = {"this": [], ref: []}
    with tempfile.TemporaryDirectory() as old:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", ref, "moovago_sandbox"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", old], input=archive, check=True)
        for _ in range(rounds):
            for name, path in (("this", str(ROOT)), (ref, old)):
                env = {**os.environ, "PYTHONPATH": path}
                done = subprocess.run(
                    [sys.executable, "-c", MEASURE, DOCUMENT, str(PAGE), "20"],
                    check=True,
                    capture_output=True,
                    text=True,
                    env=env,
                    cwd=path,
                )
                out[name].append(json.loads(done.stdout))
    return {
        name: {k: statistics.median(r[k] for r in rows) for k in ("page_ms", "seed_s")}
        for name, rows in out.items()
    }


def startup_seconds(companies: int) -> float:
    started = time.perf_counter()
    with start_sandbox(companies=companies, rate_limit=0, extra_args=["--quiet"]):
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200, help="per run of the fast path")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    parser.add_argument(
        "--compare-ref",
        default="main",
        help="git ref whose sandbox is measured beside this one ('' to skip)",
    )
    args = parser.parse_args()

    results: dict[str, list[float]] = {"fast": [], "baseline": []}
    with ExitStack() as stack:
        boxes = {
            "fast": stack.enter_context(
                start_sandbox(companies=COMPANIES, rate_limit=0, extra_args=["--quiet"])
            ),
            "baseline": stack.enter_context(
                start_sandbox(
                    companies=COMPANIES, rate_limit=0, extra_args=["--quiet", "--no-fast-path"]
                )
            ),
        }
        conns = {}
        for name, box in boxes.items():
            address = urllib.parse.urlsplit(box.url)
            conns[name] = http.client.HTTPConnection(address.hostname, address.port, timeout=120)
            stack.callback(conns[name].close)
            run(box, conns[name], 4)  # warm-up: connection, document cache
        for i in range(args.runs):
            for name in ("fast", "baseline"):
                n = args.requests if name == "fast" else max(args.requests // 8, 10)
                rps = run(boxes[name], conns[name], n)
                results[name].append(rps)
                print(f"run {i + 1}/{args.runs} {name:8s} {rps:7.1f} requests/s")
    fast, base = statistics.median(results["fast"]), statistics.median(results["baseline"])
    startup = startup_seconds(20000)
    inside = in_process_ms(max(args.runs * 4, 10))
    inside["connection"] = connection_ms(max(args.runs, 5))
    compared = compare_with(args.compare_ref, max(args.runs, 3)) if args.compare_ref else {}
    for name, figures in compared.items():
        print(
            f"{name}: fast-path page {figures['page_ms']:.1f} ms, "
            f"20,000-company sandbox built in {figures['seed_s']:.1f} s"
        )
    print(
        f"inside the server, per page: fast path {inside['fast']:.1f} ms, "
        f"graphql-core only {inside['baseline']:.1f} ms"
    )
    print(
        f"median: fast path {fast:.1f} req/s, graphql-core only {base:.1f} req/s, "
        f"x{fast / base:.1f}"
    )
    print(f"startup with 20,000 companies: {startup:.1f} s")
    print(f"connection variant, 500-row page inside the server: {inside['connection']:.1f} ms")
    if args.write:
        write_section("## Sandbox", section(args, results, fast, base, startup, inside, compared))


def section(
    args: argparse.Namespace,
    results: dict[str, list[float]],
    fast: float,
    base: float,
    startup: float,
    inside: dict[str, float],
    compared: dict[str, dict[str, float]],
) -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    runs = lambda xs: ", ".join(f"{x:.0f}" for x in xs)  # noqa: E731
    inner_runs = max(args.runs * 4, 10)
    return "\n".join(
        [
            "## Sandbox",
            "",
            f"`bench/bench_sandbox.py --runs {args.runs} --requests {args.requests}`, "
            f"{datetime.date.today().isoformat()}, Python {platform.python_version()}, "
            f"{os.cpu_count()} cores shared with other work (load average {load}).",
            "",
            f"A 500-row `companyList` page (every non-deprecated Company field plus "
            f"`mandators {{ id name }}`), rate limit off, requests one after another on one "
            f"keep-alive connection, {COMPANIES} companies seeded; median of {args.runs} runs, "
            "the two servers alternating run by run. The client decodes one body per run (all are "
            "checked to be full pages without errors).",
            "",
            f"| measure | this run | previous run ({PREVIOUS_DATE}) |",
            "|---|---|---|",
            "| shipped path (document cache + rows built as JSON by SQLite), requests/s | "
            f"**{fast:.0f}** (runs {runs(results['fast'])}) | {PREVIOUS['fast']:.0f} |",
            "| baseline (graphql-core `execute` only), requests/s | "
            f"{base:.1f} (runs {runs(results['baseline'])}) | {PREVIOUS['baseline']:.1f} |",
            f"| one page inside the server, shipped path, ms (median of {inner_runs}) | "
            f"{inside['fast']:.1f} | {PREVIOUS['inside_fast']:.1f} |",
            "| one page inside the server, graphql-core only, ms | "
            f"{inside['baseline']:.1f} | {PREVIOUS['inside_baseline']:.1f} |",
            "| first line of a sandbox seeded with 20,000 companies, s | "
            f"{startup:.1f} | {PREVIOUS['startup']:.1f} |",
            "| one 500-row page of a connection (`connection_edges.gql`, graphql-core), ms | "
            f"{inside['connection']:.1f} | - |",
            "",
            f"Ratio {fast / base:.1f}x; target >= 100 requests/s: "
            f"{'met' if fast >= 100 else 'NOT met'}. The previous run predates the engine split "
            "(model, resolvers, fast path and faults in their own modules) and the sandbox "
            "generated from the SDL (seed values checked against the file's types at start-up). "
            "Connections and unions are served by graphql-core: the fast path covers plain lists. "
            "The figures move with the machine's load (other work shares the 2 cores): the "
            "same-moment table below is the fair comparison with the code before this change.",
            "",
            *compare_lines(args.compare_ref, compared),
        ]
    )


def compare_lines(ref: str, compared: dict[str, dict[str, float]]) -> list[str]:
    if not compared:
        return []
    this, old = compared["this"], compared[ref]
    return [
        f"Same machine, same moment: this tree against `{ref}`'s sandbox, in alternating "
        "subprocesses (medians over the rounds):",
        "",
        f"| measure | this tree | `{ref}` | ratio |",
        "|---|---|---|---|",
        f"| fast-path 500-row page inside the server, ms | {this['page_ms']:.1f} | "
        f"{old['page_ms']:.1f} | {this['page_ms'] / old['page_ms']:.2f} |",
        f"| build a 20,000-company sandbox in process (seed + load), s | {this['seed_s']:.1f} | "
        f"{old['seed_s']:.1f} | {this['seed_s'] / old['seed_s']:.2f} |",
        "",
    ]


if __name__ == "__main__":
    main()
