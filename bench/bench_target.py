"""Benchmarks of target-moovago against the sandbox (rate limit 5 requests/s, as Moovago).

1. 2,000 new companies at 5 requests/s with mutations_per_request 1, 10, 25, 50, side by side:
   records/s, share of the bound (mutations_per_request x rate), 429s.
2. Re-sync of 10,000 companies with 5% changed: requests made (vs one request per row).
3. Memory of the prefetch index for 100,000 companies (tracemalloc), vs keeping full records.

Every run uses the client's own shared governor (`moovago_api.governor.shared_governor`,
with its `ARRIVAL_MARGIN`), exactly as a real run does.

    .venv/bin/python bench/bench_target.py                 # everything (about 14 minutes)
    .venv/bin/python bench/bench_target.py --quick         # 400 rows, 2 runs, no 1-per-request
    .venv/bin/python bench/bench_target.py --only memory   # one part: batching, resync, memory
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import logging
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moovago_api.governor import ARRIVAL_MARGIN  # noqa: E402
from moovago_sandbox.testing import start_sandbox  # noqa: E402
from target_moovago.index import DEFAULT_MATCH_KEYS, KeySpec, RemoteIndex  # noqa: E402
from target_moovago.target import TargetMoovago  # noqa: E402

RATE = 5


def run_target(
    handle: Any,
    messages: list[dict[str, Any]],
    **config: Any,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        full = {
            "api_url": handle.url,
            "api_key": handle.api_key,
            "max_requests_per_second": RATE,
            "rejects_path": f"{tmp}/rejects.jsonl",
            "summary_path": f"{tmp}/summary.json",
            **config,
        }
        text = "".join(json.dumps(m) + "\n" for m in messages)
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            target = TargetMoovago(config=full)
            target.listen(io.StringIO(text))
        elapsed = time.perf_counter() - started
        summary = json.loads(Path(full["summary_path"]).read_text())
    summary["wall_seconds"] = elapsed
    return summary


def company_messages(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    columns = list(dict.fromkeys(c for r in rows for c in r))
    schema = {
        "type": "SCHEMA",
        "stream": "company",
        "schema": {"type": "object", "properties": {c: {} for c in columns}},
        "key_properties": [],
    }
    return [schema, *({"type": "RECORD", "stream": "company", "record": r} for r in rows)]


def new_companies(n: int, prefix: str) -> list[dict[str, Any]]:
    return [
        {
            "customerCode": f"{prefix}-{i:05d}",
            "name": f"Bench company {i}",
            "city": "Niort",
            "postalCode": "79000",
            "status": "PROSPECT",
        }
        for i in range(n)
    ]


def bench_batching(rows: int, sizes: list[int], runs: int) -> list[dict[str, Any]]:
    results = []
    for size in sizes:
        repeats = 1 if size == 1 else runs
        walls, limited = [], []
        for run in range(repeats):
            with start_sandbox(companies=0, rate_limit=RATE) as box:
                messages = company_messages(new_companies(rows, f"N{size}R{run}"))
                summary = run_target(box, messages, mutations_per_request=size)
                assert summary["streams"]["company"]["created"] == rows, summary
                walls.append(summary["wall_seconds"])
                limited.append(box.stats()["rate_limited"])
        wall = statistics.median(walls)
        per_second = rows / wall
        bound = size * RATE
        results.append(
            {
                "mutations_per_request": size,
                "governor_margin": ARRIVAL_MARGIN,
                "runs": repeats,
                "seconds": wall,
                "records_per_second": per_second,
                "bound": bound,
                "share_of_bound": per_second / bound,
                "429s": max(limited),
            }
        )
        print(json.dumps(results[-1]), flush=True)
    return results


def bench_resync(companies: int, changed_share: float) -> dict[str, Any]:
    with start_sandbox(companies=companies, rate_limit=RATE) as box:
        stored = [r for r in box.export()["company"] if r["teamId"] == box.team_id]
        keep = ("id", "customerCode", "name", "city", "postalCode", "status", "email", "phone")
        rows = [{k: r.get(k) for k in keep} for r in stored]
        rng = random.Random(5)
        changed = rng.sample(range(len(rows)), int(len(rows) * changed_share))
        for n in changed:
            rows[n]["city"] = f"Moved {n}"
        before = box.stats()["requests"]
        summary = run_target(box, company_messages(rows), mutations_per_request=25)
        made = box.stats()["requests"] - before
        counts = summary["streams"]["company"]
        result = {
            "companies": len(rows),
            "changed": len(changed),
            "updated": counts["updated"],
            "unchanged": counts["unchanged"],
            "requests": made,
            "one_request_per_row": len(rows),
            "seconds": summary["wall_seconds"],
        }
        print(json.dumps(result), flush=True)
        return result


def synthetic_companies(n: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """Company records as the list query returns them with every field selected."""
    rng = random.Random(1)
    cities = ["Niort", "Poitiers", "La Rochelle", "Nantes", "Bordeaux", "Tours", "Limoges"]
    for i in range(n):
        record_id = f"{0x65A0_0000 + i:08x}{rng.getrandbits(64):016x}"
        stamp = f"2026-{rng.randrange(1, 12):02d}-{rng.randrange(1, 28):02d}T08:30:00.000Z"
        yield (
            record_id,
            {
                "id": record_id,
                "teamId": "6593b4c253f3000000000001",
                "ownerIds": [f"6593b4c253f30000000000{rng.randrange(10, 20)}"],
                "mandatorIds": [],
                "mandators": [],
                "country": "FR",
                "coordinates": {"latitude": rng.uniform(43, 49), "longitude": rng.uniform(-1, 5)},
                "website": f"https://www.example-{i}.test",
                "note": f"Visite du {stamp[:10]}",
                "zipCode": None,
                "createdAt": stamp,
                "updatedAt": stamp,
                "customerCode": f"C{i:07d}",
                "name": f"Société {rng.getrandbits(40):x} SARL",
                "city": rng.choice(cities),
                "postalCode": f"{rng.randrange(1000, 95999):05d}",
                "address": f"{rng.randrange(1, 200)} rue du {rng.getrandbits(24):x}",
                "phone": f"05 {rng.randrange(10, 99)} {rng.randrange(10, 99)} "
                f"{rng.randrange(10, 99)} {rng.randrange(10, 99)}",
                "email": f"contact{i}@example.test",
                "status": "CLIENT",
            },
        )


def bench_memory(n: int) -> dict[str, Any]:
    fields = ["name", "city", "postalCode", "address", "phone", "email", "status"]
    specs = [KeySpec.parse(k) for k in DEFAULT_MATCH_KEYS["company"]]
    gc.collect()
    tracemalloc.start()
    index = RemoteIndex(fields, specs)
    for record_id, record in synthetic_companies(n):
        index.add(record_id, record)
    gc.collect()
    index_bytes, index_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(index) == n
    del index
    gc.collect()
    tracemalloc.start()
    full = dict(synthetic_companies(n))
    gc.collect()
    dict_bytes, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del full
    result = {
        "companies": n,
        "tracked_fields": len(fields) + 1,
        "index_mib": index_bytes / 2**20,
        "index_peak_mib": index_peak / 2**20,
        "bytes_per_company": index_bytes / n,
        "full_records_mib": dict_bytes / 2**20,
    }
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=["batching", "resync", "memory"])
    parser.add_argument("--json", type=Path, help="write all results to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("target-moovago").setLevel(logging.WARNING)
    out: dict[str, Any] = {}
    if args.only in (None, "batching"):
        sizes = [10, 25, 50] if args.quick else [1, 10, 25, 50]
        out["batching"] = bench_batching(400 if args.quick else 2000, sizes, 2 if args.quick else 3)
        by_size = {r["mutations_per_request"]: r for r in out["batching"]}
        if 1 in by_size:
            speedup = by_size[25]["records_per_second"] / by_size[1]["records_per_second"]
            out["speedup_25_vs_1"] = speedup
            print(f"batched at 25 is {speedup:.1f}x faster than 1 per request", flush=True)
    if args.only in (None, "resync"):
        out["resync"] = bench_resync(2000 if args.quick else 10_000, 0.05)
    if args.only in (None, "memory"):
        out["memory"] = bench_memory(20_000 if args.quick else 100_000)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
