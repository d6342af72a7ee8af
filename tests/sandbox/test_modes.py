"""Server modes (the agreed flags): each one's effect, in process or over HTTP; a failed write
rolls back; statistics the doctor relies on."""

from __future__ import annotations

import email.utils
import json
import sqlite3
import statistics
import time
from datetime import datetime, timezone
from typing import Any

import pytest
import requests

from moovago_sandbox.app import Sandbox, SandboxConfig
from moovago_sandbox.cli import build_parser, fault_profile
from moovago_sandbox.engine import RequestContext
from moovago_sandbox.faults import FaultInjector, FaultProfile, FaultProfileError
from moovago_sandbox.testing import SandboxHandle, sandbox_command
from tests.sandbox.conftest import Local

LIST = """query ($f: FilterManyCompanyInput!, $skip: Int, $limit: Int) {
  companyList(filter: $f, skip: $skip, limit: $limit) { id name } }"""
CREATE = "mutation ($i: CompanyCreateInput!) { company { create(input: $i) { recordId } } }"


def box_with(companies: int = 20, **profile: Any) -> tuple[Sandbox, str]:
    box = Sandbox(SandboxConfig(companies=companies, faults=FaultProfile(**profile)))
    return box, box.keys["sandbox-key"]


def ids(box: Sandbox, team: str, fast: bool | None = None, **args: Any) -> list[str]:
    ctx = RequestContext(box.store, team, box.owners[team])
    result = box.engine.run(ctx, LIST, {"f": {"teamId": team}, **args}, fast=fast)
    assert "errors" not in result, result
    return [r["id"] for r in result["data"]["companyList"]]


@pytest.mark.parametrize("fast", [True, False])
def test_max_page_size_caps_every_page_silently(fast: bool) -> None:
    box, team = box_with(max_page_size=3)
    assert len(ids(box, team, fast, limit=10)) == 3
    assert len(ids(box, team, fast)) == 3  # no limit asked: capped too
    assert len(ids(box, team, fast, limit=2)) == 2
    every = [r["id"] for r in box.store.export()["company"] if r["teamId"] == team]
    assert ids(box, team, fast, skip=3, limit=10) == every[3:6]


def test_ignore_limit_answers_pages_of_the_default_size() -> None:
    box, team = box_with(ignore_limit=True, default_page_size=4)
    assert len(ids(box, team, limit=10)) == 4
    assert len(ids(box, team, limit=1)) == 4
    box, team = box_with(ignore_limit=True)
    assert len(ids(box, team, limit=5)) == 20  # default 50: the 20 rows of the team


def test_unstable_order_shuffles_each_read_seeded() -> None:
    box, team = box_with(unstable_order=True, seed=3)
    first, second = ids(box, team), ids(box, team, fast=False)
    assert sorted(first) == sorted(second) == sorted(ids(box_with()[0], box_with()[1]))
    assert first != second
    again, team_again = box_with(unstable_order=True, seed=3)
    assert ids(again, team_again) == first
    stable, stable_team = box_with()
    assert ids(stable, stable_team) == ids(stable, stable_team)


def test_churn_deletes_and_inserts_before_every_nth_read_deterministically() -> None:
    def reads(seed: int) -> list[list[str]]:
        box, team = box_with(churn="2:2:3", seed=seed)
        seeded = set(ids(box_with()[0], team))
        # inserted rows get ids from the clock: compare which seeded rows are left, and counts
        out = [ids(box, team) for _ in range(4)]
        out = [[i for i in page if i in seeded] + [str(len(page))] for page in out]
        stats = box.stats()
        assert stats["churn"] == {"deleted": 4, "inserted": 6}
        assert stats["mutations_total"] == 0  # churn is not a client's write
        return out

    first = reads(5)
    assert first[0][-1] == "20"
    assert len(first[0]) == 21
    assert first[1][-1] == "21"
    assert len(first[1]) == 19
    assert first[2] == first[1]
    assert first[3][-1] == "22"
    assert set(first[3][:-1]) < set(first[1][:-1])
    assert reads(5) == first
    assert reads(6) != first
    assert FaultProfile.load({"churn": {"every": 2, "delete": 1, "insert": 0}}).churn == "2:1:0"
    with pytest.raises(FaultProfileError, match="N:D:I"):
        FaultProfile(churn="2:x:1")


def test_latency_per_operation_kind_as_a_distribution() -> None:
    fixed = FaultInjector(FaultProfile(latency_read=200, latency_mutation=50))
    assert [fixed.kind_latency_seconds("query") for _ in range(3)] == [0.2, 0.2, 0.2]
    assert fixed.kind_latency_seconds("mutation") == 0.05
    spread = FaultInjector(FaultProfile(latency_read=200, latency_jitter=0.5, seed=1))
    draws = [spread.kind_latency_seconds("query") for _ in range(2000)]
    assert len(set(draws)) > 1900
    assert 0.18 < statistics.median(draws) < 0.22  # lognormal around the median
    assert min(draws) < 0.1
    assert max(draws) > 0.4
    replay = FaultInjector(FaultProfile(latency_read=200, latency_jitter=0.5, seed=1))
    assert [replay.kind_latency_seconds("query") for _ in range(2000)] == draws
    assert FaultInjector(FaultProfile()).kind_latency_seconds("query") == 0.0


def test_every_agreed_flag_reaches_the_profile() -> None:
    args = build_parser().parse_args(
        [
            "serve",
            *("--max-page-size", "100", "--ignore-limit", "--default-page-size", "20"),
            *("--unstable-order", "--fault-churn", "3:1:2", "--no-date-header"),
            *("--clock-offset", "-600", "--latency-read", "300", "--latency-mutation", "1500"),
            *("--latency-jitter", "0.4", "--max-body-bytes", "1048576", "--fault-seed", "4"),
        ]
    )
    assert fault_profile(args) == FaultProfile(
        max_page_size=100,
        ignore_limit=True,
        default_page_size=20,
        unstable_order=True,
        churn="3:1:2",
        no_date_header=True,
        clock_offset=-600.0,
        latency_read=300.0,
        latency_mutation=1500.0,
        latency_jitter=0.4,
        max_body_bytes=1048576,
        seed=4,
    )
    profile = FaultProfile.load('{"max_page_size": 7, "unstable_order": true}')
    assert (profile.max_page_size, profile.unstable_order) == (7, True)
    with pytest.raises(FaultProfileError, match="unstable_order"):
        FaultProfile.load('{"unstable_order": 1}')
    command = sandbox_command(max_page_size=5, unstable_order=True, fault_churn="2:1:1")
    assert command[-5:] == ["--max-page-size", "5", "--unstable-order", "--fault-churn", "2:1:1"]


def test_a_failed_write_rolls_back_and_later_writes_work(local: Local, monkeypatch) -> None:
    company = next(
        c
        for c in local.rows("company")
        if any(x["companyId"] == c["id"] for x in local.rows("companyContact"))
    )
    store = local.box.store
    real_forget = store._forget
    calls = []

    def failing_forget(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "_forget", failing_forget)
    result = local.run(
        "mutation ($i: CompanyDeleteInput!) { company { delete(input: $i) { recordId } } }",
        {"i": {"id": company["id"]}},
    )
    assert calls  # it failed half-way: the company row was already deleted
    assert result["data"] == {"company": {"delete": None}}
    assert company["id"] in {r["id"] for r in local.rows("company")}  # rolled back
    monkeypatch.setattr(store, "_forget", real_forget)
    for n in range(3):
        created = local.run(CREATE, {"i": {"name": f"Après l'échec {n}"}})
        assert "errors" not in created, created
    assert {f"Après l'échec {n}" for n in range(3)} <= {r["name"] for r in local.rows("company")}


# -- over HTTP -----------------------------------------------------------------------------------


def post(box: SandboxHandle, body: Any) -> requests.Response:
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    headers = {"Content-Type": "application/json", "X-API-KEY": box.api_key}
    return requests.post(box.url, data=data, headers=headers, timeout=60)


def team_query(box: SandboxHandle) -> dict[str, Any]:
    return {"query": "{ team { id } }"}


def test_date_header_follows_the_real_clock_by_default(sandbox_factory) -> None:
    normal = sandbox_factory(companies=2, rate_limit=0)
    seen = email.utils.parsedate_to_datetime(post(normal, team_query(normal)).headers["Date"])
    assert abs(seen.timestamp() - time.time()) < 5


def test_clock_offset_moves_the_date_header_and_written_timestamps(sandbox_factory) -> None:
    skewed = sandbox_factory(companies=2, rate_limit=0, clock_offset=-3600)
    response = post(skewed, team_query(skewed))
    behind = email.utils.parsedate_to_datetime(response.headers["Date"])
    assert abs(behind.timestamp() - (time.time() - 3600)) < 5
    created = post(skewed, {"query": CREATE, "variables": {"i": {"name": "Décalée"}}}).json()
    record_id = created["data"]["company"]["create"]["recordId"]
    row = next(r for r in skewed.export()["company"] if r["id"] == record_id)
    stamp = datetime.fromisoformat(row["updatedAt"].replace("Z", "+00:00"))
    assert abs(stamp.timestamp() - (datetime.now(timezone.utc).timestamp() - 3600)) < 5


def test_no_date_header_answers_without_one(sandbox_factory) -> None:
    dateless = sandbox_factory(companies=2, rate_limit=0, no_date_header=True)
    answer = post(dateless, team_query(dateless))
    assert answer.status_code == 200
    assert "Date" not in answer.headers
    assert answer.json()["data"]["team"]["id"] == dateless.team_id


def test_latency_flags_delay_reads_not_mutations(sandbox_factory) -> None:
    box = sandbox_factory(companies=2, rate_limit=0, latency_read=400)
    started = time.monotonic()
    assert post(box, team_query(box)).status_code == 200
    read = time.monotonic() - started
    started = time.monotonic()
    post(box, {"query": CREATE, "variables": {"i": {"name": "Rapide"}}})
    write = time.monotonic() - started
    assert read >= 0.4
    assert write < read


def test_max_body_bytes_answers_413_as_json(sandbox_factory) -> None:
    box = sandbox_factory(companies=2, rate_limit=0, max_body_bytes=2000)
    small = post(box, team_query(box))
    assert small.status_code == 200
    big = post(box, {"query": "{ team { id } }", "variables": {"pad": "x" * 3000}})
    assert big.status_code == 413
    assert "2000 bytes" in big.json()["errors"][0]["message"]
    stats = box.stats()
    assert stats["too_large"] == 1
    assert stats["responses"] == {"200": 1, "413": 1}


def test_stats_count_requests_mutations_429s_and_the_peak(sandbox_factory) -> None:
    box = sandbox_factory(companies=3, rate_limit=2)
    codes = [post(box, team_query(box)).status_code for _ in range(4)]
    stats = box.stats()
    assert stats["requests"] == 4
    assert stats["rate_limited"] == codes.count(429) >= 1
    assert stats["mutations_total"] == 0
    assert stats["mutation_requests"] == 0
    assert stats["peak_requests_per_second"] >= 3
    time.sleep(1.1)
    refused = post(box, {"query": CREATE, "variables": {"i": {"name": None}}})
    assert refused.json()["errors"]
    after = box.stats()
    assert after["mutation_requests"] == 1  # tried, although nothing was written
    assert after["mutations_total"] == 0
