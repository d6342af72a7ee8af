"""Each injected fault happens at its configured rate (within binomial bounds), seeded."""

from __future__ import annotations

import json
import math
import time

import pytest
import requests

from moovago_sandbox.faults import FaultInjector, FaultProfile, FaultProfileError
from moovago_sandbox.testing import SandboxHandle

QUERY = {
    "query": """query Q($f: FilterManyCompanyInput!) {
      companyList(filter: $f, limit: 5) { id name city note website } }"""
}


def within_bounds(count: int, n: int, rate: float, sigmas: float = 5.0) -> bool:
    mean, sd = n * rate, math.sqrt(n * rate * (1 - rate))
    return mean - sigmas * sd <= count <= mean + sigmas * sd


def send(box: SandboxHandle, body: dict) -> requests.Response | None:
    """One request on a fresh connection; None when the server dropped it."""
    try:
        return requests.post(box.url, json=body, headers={"X-API-KEY": box.api_key}, timeout=30)
    except requests.ConnectionError:
        return None


def query_body(box: SandboxHandle) -> dict:
    return {**QUERY, "variables": {"f": {"teamId": box.team_id}}}


@pytest.mark.parametrize(
    ("kind", "observed"),
    [
        ("error_5xx", lambda r: r is not None and r.status_code in (500, 502, 503, 504)),
        ("burst_429", lambda r: r is not None and r.status_code == 429),
        ("drop_connection", lambda r: r is None),
    ],
)
@pytest.mark.slow
def test_request_faults_happen_at_their_rate(sandbox_factory, kind: str, observed) -> None:
    n, rate = 300, 0.2
    box = sandbox_factory(companies=5, rate_limit=0, faults={kind: rate, "seed": 3})
    responses = [send(box, query_body(box)) for _ in range(n)]
    count = sum(1 for r in responses if observed(r))
    stats = box.stats()
    assert stats["faults"][kind] == count
    assert within_bounds(count, n, rate), count
    assert stats["rate_limited"] == 0
    ok = [r for r in responses if r is not None and r.status_code == 200]
    assert len(ok) == n - count
    assert all("errors" not in r.json() for r in ok)


@pytest.mark.slow
def test_latency_is_added_at_its_rate(sandbox_factory) -> None:
    n, rate, ms = 100, 0.3, 80
    box = sandbox_factory(
        companies=5, rate_limit=0, faults={"latency": {"probability": rate, "ms": ms}}
    )
    slow = 0
    for _ in range(n):
        started = time.monotonic()
        assert send(box, query_body(box)).status_code == 200
        slow += time.monotonic() - started >= ms / 1000
    injected = box.stats()["faults"]["latency"]
    assert within_bounds(injected, n, rate)
    assert injected <= slow <= injected + 5  # a loaded machine may be slow on its own, rarely


@pytest.mark.slow
def test_partial_errors_null_one_value_and_say_where(sandbox_factory) -> None:
    n, rate = 200, 0.25
    box = sandbox_factory(companies=5, rate_limit=0, faults={"partial_error": rate, "seed": 5})
    partial = 0
    for _ in range(n):
        body = send(box, query_body(box)).json()
        if "errors" not in body:
            continue
        partial += 1
        (error,) = body["errors"]
        root, index, field = error["path"]
        assert root == "companyList"
        assert field in ("city", "note", "website")
        assert body["data"]["companyList"][index][field] is None
        assert len(body["data"]["companyList"]) == 5
        assert error["errorType"] == "DataFetchingException"
    assert box.stats()["faults"]["partial_error"] == partial
    assert within_bounds(partial, n, rate)


@pytest.mark.slow
def test_commit_then_fail_answers_502_but_keeps_the_row(sandbox_factory) -> None:
    n, rate = 100, 0.3
    box = sandbox_factory(companies=2, rate_limit=0, faults={"commit_then_fail": rate, "seed": 11})
    document = "mutation ($i: CompanyCreateInput!) { company { create(input: $i) { recordId } } }"
    failed = 0
    for i in range(n):
        response = send(box, {"query": document, "variables": {"i": {"name": f"Ligne {i}"}}})
        assert response is not None
        failed += response.status_code == 502
        if response.status_code != 502:
            assert response.status_code == 200
            assert "errors" not in response.json()
    names = [r["name"] for r in box.export()["company"] if r["name"].startswith("Ligne ")]
    assert sorted(names) == sorted(f"Ligne {i}" for i in range(n))  # every row stored, once
    stats = box.stats()
    assert stats["faults"]["commit_then_fail"] == failed
    assert stats["mutations"]["company"]["create"] == n
    assert within_bounds(failed, n, rate)


@pytest.mark.slow
def test_queries_never_get_commit_then_fail_and_control_endpoints_never_get_faults(
    sandbox_factory,
) -> None:
    box = sandbox_factory(
        companies=2, rate_limit=0, faults={"error_5xx": 1.0, "commit_then_fail": 1.0}
    )
    assert send(box, query_body(box)).status_code >= 500
    assert box.stats()["faults"]["error_5xx"] == 1
    assert box.export()["company"]
    assert isinstance(box.requests(), list)
    box.reset()
    assert box.stats()["requests"] == 0


def test_the_fault_sequence_is_seeded() -> None:
    def draws(seed: int) -> list[str | None]:
        injector = FaultInjector(FaultProfile(error_5xx=0.3, burst_429=0.2, seed=seed))
        return [injector.before_request() for _ in range(200)]

    assert draws(1) == draws(1)
    assert draws(1) != draws(2)


def test_a_profile_file_and_its_errors(tmp_path) -> None:
    path = tmp_path / "faults.json"
    path.write_text(
        json.dumps({"error_5xx": 0.1, "latency": {"probability": 0.5, "ms": 20}, "seed": 4})
    )
    profile = FaultProfile.load(path)
    assert (profile.error_5xx, profile.latency, profile.latency_ms, profile.seed) == (
        0.1,
        0.5,
        20.0,
        4,
    )
    with pytest.raises(FaultProfileError, match="unknown key 'eror_5xx'"):
        FaultProfile.load({"eror_5xx": 0.1})
    with pytest.raises(FaultProfileError, match="must not exceed 1"):
        FaultProfile.load({"error_5xx": 0.6, "drop_connection": 0.6})
    with pytest.raises(FaultProfileError, match="rate in"):
        FaultProfile.load('{"partial_error": 2}')
