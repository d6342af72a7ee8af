"""Benchmark: what the core client and governor cost, and how close the governor runs to N/s.

1. Client overhead: `MoovagoClient.execute` against a bare `requests.Session.post` of the same
   body to the same local HTTP server (127.0.0.1, canned 200 answer), governor not limiting
   (rate far above the number of requests), both sessions with trust_env off, requests
   interleaved one by one. Median per-request milliseconds, median over runs, side by side.
2. Governor bookkeeping: median microseconds per uncontended `acquire()` with no waiting; the
   retry schedule's own cost for a request that succeeds at once: the `backoff.expo` wait
   generator `execute` makes for every request.
3. Governor pacing: 30 requests through the client from 4 threads at N=5 per rolling second:
   the most sends found in any rolling second (must be 5) and the elapsed time against the
   ideal 5.0 s (sends 1-5 at t=0, 26-30 at t=5).

    .venv/bin/python bench/bench_core.py [--runs 5] [--requests 300] [--write]

`--write` replaces the "Core client and governor" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import backoff
import requests
from benchmarks_md import write_section

from moovago_api.client import MoovagoClient
from moovago_api.governor import RateGovernor

ROOT = Path(__file__).resolve().parents[1]
TITLE = "## Core client and governor"
QUERY = "query MyTeamQuery { team { id name members { id alias } } }"
ANSWER = json.dumps({"data": {"team": {"id": "t1", "name": "Team", "members": []}}}).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else delayed ACKs add 40 ms per keep-alive answer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)


def client_overhead(url: str, count: int) -> tuple[float, float]:
    """(client ms per request, bare requests ms per request) measured back to back."""
    client = MoovagoClient(api_url=url, api_key="bench-key", governor=RateGovernor(1e9))
    body = json.dumps({"query": QUERY, "variables": {}, "operationName": None}).encode()
    session = requests.Session()
    session.trust_env = False  # as the client does: no per-request proxy/netrc lookups
    headers = {"X-API-KEY": "bench-key", "Content-Type": "application/json"}
    client.execute(QUERY)  # warm both connection pools
    session.post(url, data=body, headers=headers, timeout=30).json()
    # Interleaved one by one, so drift of the shared machine hits both alike.
    ours_times: list[float] = []
    bare_times: list[float] = []
    for _ in range(count):
        started = time.perf_counter()
        client.execute(QUERY)
        ours_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        session.post(url, data=body, headers=headers, timeout=30).json()
        bare_times.append(time.perf_counter() - started)
    ours = statistics.median(ours_times) * 1000
    bare = statistics.median(bare_times) * 1000
    client.close()
    session.close()
    return ours, bare


def acquire_cost(count: int = 20_000) -> float:
    governor = RateGovernor(1e9)
    started = time.perf_counter()
    for _ in range(count):
        governor.acquire()
    return (time.perf_counter() - started) / count * 1e6


def retry_schedule_cost(count: int = 20_000) -> float:
    """Microseconds `backoff` adds to a request that succeeds at once: `execute` makes the wait
    generator of its retry schedule (backoff.expo, the client's settings) before its first try."""

    def one() -> int:
        waits = backoff.expo(factor=1.0, max_value=60.0)
        next(waits)
        return 1

    started = time.perf_counter()
    for _ in range(count):
        one()
    return (time.perf_counter() - started) / count * 1e6


def pacing(url: str) -> tuple[int, float]:
    """(most sends in any rolling second, elapsed seconds) for 30 requests at N=5."""
    governor = RateGovernor(5)
    client = MoovagoClient(api_url=url, api_key="bench-key", governor=governor)

    def worker() -> None:
        for _ in range(30 // 4 + (1 if threading.current_thread().name == "w0" else 0)):
            client.execute(QUERY)

    threads = [threading.Thread(target=worker, name=f"w{i}") for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.close()
    times = governor.send_times
    busiest = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
    return busiest, times[-1] - times[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/graphql"
    try:
        overheads = [client_overhead(url, args.requests) for _ in range(args.runs)]
        acquires = [acquire_cost() for _ in range(args.runs)]
        schedules = [retry_schedule_cost() for _ in range(args.runs)]
        paced = [pacing(url) for _ in range(max(1, args.runs // 2))]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

    ours = statistics.median(o for o, _ in overheads)
    bare = statistics.median(b for _, b in overheads)
    acquire_us = statistics.median(acquires)
    schedule_us = statistics.median(schedules)
    busiest = max(b for b, _ in paced)
    elapsed = statistics.median(e for _, e in paced)
    rows = [
        "| measure | MoovagoClient | bare requests | ratio |",
        "|---|---|---|---|",
        f"| ms per request, local server, median of {args.runs} x {args.requests} "
        f"| {ours:.3f} | {bare:.3f} | {ours / bare:.2f} |",
        f"| governor acquire, uncontended (us) | {acquire_us:.2f} | - | - |",
        f"| backoff retry schedule around one successful attempt (us) | {schedule_us:.1f} | - "
        f"| {schedule_us / 1000 / ours:.1%} of a request |",
        f"| 30 requests at N=5, 4 threads: most sends in a rolling second | {busiest} | "
        "limit 5 | - |",
        f"| same: elapsed seconds (ideal 5.0) | {elapsed:.2f} | - | {elapsed / 5.0:.3f} |",
    ]
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    section = "\n".join(
        [
            TITLE,
            "",
            f"`bench/bench_core.py --runs {args.runs} --requests {args.requests}`, {today}, "
            f"Python {platform.python_version()}, {platform.machine()}, shared 2-core machine.",
            "",
            *rows,
            "",
        ]
    )
    print(section)
    if args.write:
        write_section(TITLE, section)


if __name__ == "__main__":
    main()
