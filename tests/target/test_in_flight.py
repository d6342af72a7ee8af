"""Several requests of one batch in flight (issue 15 item 3): answers applied in input order,
STATE only after every earlier row is settled, halving and reconciliation unchanged, no request
in flight once a drain returns or fails, even with latency, commit-then-fail and drops."""

from __future__ import annotations

import contextlib
import io
import json
import signal
import threading
from collections import Counter

import pytest

from moovago_api.client import MoovagoClient
from moovago_api.errors import AuthError
from target_moovago.target import TargetMoovago
from tests.harness.runs import (
    SECRET,
    assert_store,
    company_row,
    lines,
    mutation_total,
    resumable_input,
    run_target_until,
    target_config,
    team_rows,
)
from tests.harness.runs import run_target as run_target_cli
from tests.target.helpers import entity_rows, mutation_count, stream_messages
from tests.target.test_batching import loosened_schema
from tests.target.test_state import StateProbe, state

LATENCY = {"latency": {"probability": 1.0, "ms": 150}}


class InFlight:
    """Counts the requests the client has under way at once (wraps MoovagoClient.execute)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_at: int | None = None) -> None:
        self.now = self.peak = self.mutations = 0
        self.fail_at = fail_at
        self._lock = threading.Lock()
        original = MoovagoClient.execute

        def execute(client, document, *args, **kwargs):
            mutation = "Batch" in str(kwargs.get("operation_name") or (args[1:2] or [""])[0])
            with self._lock:
                self.now += 1
                self.peak = max(self.peak, self.now)
                self.mutations += mutation
                failing = mutation and self.mutations == self.fail_at
            try:
                if failing:
                    raise AuthError("the API key was refused (injected by the test)")
                return original(client, document, *args, **kwargs)
            finally:
                with self._lock:
                    self.now -= 1

        monkeypatch.setattr(MoovagoClient, "execute", execute)


def companies(n, prefix):
    return [{"customerCode": f"{prefix}-{i:03d}", "name": f"Company {i}"} for i in range(n)]


def codes(handle, prefix):
    return Counter(
        c["customerCode"]
        for c in entity_rows(handle, "company")
        if (c.get("customerCode") or "").startswith(prefix)
    )


@pytest.mark.slow
def test_rejects_and_counts_come_in_input_order_with_four_requests_in_flight(
    sandbox_factory, run_target, tmp_path, monkeypatch
):
    box = sandbox_factory(companies=2, faults=LATENCY)
    meter = InFlight(monkeypatch)
    rows = companies(40, "ORD")
    bad = [3, 12, 13, 27, 38]
    for n in bad:
        rows[n]["status"] = "FRIEND"  # passes the loose schema; the server refuses the request
    result = run_target(
        box,
        stream_messages("company", rows),
        schema_path=str(loosened_schema(tmp_path)),
        mutations_per_request=5,
        max_requests_in_flight=4,
    )
    assert meter.peak >= 3, "the batch was not sent with several requests in flight"
    assert [r["row_key"] for r in result.rejects] == [f"customerCode='ORD-{n:03d}'" for n in bad]
    assert result.counts("company")["created"] == 35
    found = codes(box, "ORD")
    assert set(found) == {f"ORD-{n:03d}" for n in range(40) if n not in bad}
    assert set(found.values()) == {1}


@pytest.mark.slow
def test_state_waits_for_every_request_in_flight(sandbox_factory, run_target, monkeypatch):
    box = sandbox_factory(companies=2, faults=LATENCY)
    meter = InFlight(monkeypatch)
    rows = companies(36, "SIF")
    messages = [stream_messages("company", rows)[0]]
    for n, message in enumerate(stream_messages("company", rows)[1:], start=1):
        messages.append(message)
        if n % 6 == 0:
            messages.append(state(n))
    probe = StateProbe(box)
    config = run_target.config(
        box, batch_size_rows=12, mutations_per_request=2, max_requests_in_flight=4
    )
    with contextlib.redirect_stdout(probe):
        TargetMoovago(config=config).listen(
            io.StringIO("".join(json.dumps(m) + "\n" for m in messages))
        )
    assert meter.peak >= 3
    assert [s["seq"] for s, _ in probe.seen][-1] == 36
    for emitted, landed in probe.seen:
        assert {f"SIF-{i:03d}" for i in range(emitted["seq"])} <= landed, "STATE ahead of rows"


@pytest.mark.slow
def test_commit_then_fail_with_requests_in_flight_creates_each_row_once(
    sandbox_factory, run_target, monkeypatch
):
    faults = {**LATENCY, "commit_then_fail": 0.2, "seed": 7}
    box = sandbox_factory(companies=5, faults=faults)
    meter = InFlight(monkeypatch)
    result = run_target(
        box,
        stream_messages("company", companies(150, "CIF")),
        mutations_per_request=5,
        max_requests_in_flight=4,
    )
    assert meter.peak >= 3
    found = codes(box, "CIF")
    assert len(found) == 150
    assert set(found.values()) == {1}
    assert result.counts("company")["created"] == 150
    assert result.rejects == []
    assert box.stats()["faults"]["commit_then_fail"] > 0


@pytest.mark.slow
def test_dropped_connections_and_5xx_with_requests_in_flight(
    sandbox_factory, run_target, monkeypatch
):
    faults = {**LATENCY, "error_5xx": 0.15, "drop_connection": 0.15, "seed": 3}
    box = sandbox_factory(companies=30, faults=faults)
    meter = InFlight(monkeypatch)
    existing = [c for c in entity_rows(box, "company") if c.get("customerCode")][:10]
    updates = [{"customerCode": c["customerCode"], "city": "Moved"} for c in existing]
    result = run_target(
        box,
        stream_messages("company", [*companies(60, "DIF"), *updates]),
        mutations_per_request=5,
        max_requests_in_flight=4,
    )
    assert meter.peak >= 3
    found = codes(box, "DIF")
    assert len(found) == 60
    assert set(found.values()) == {1}
    counts = result.counts("company")
    assert (counts["created"], counts["updated"]) == (60, 10)
    assert box.stats()["faults"]["drop_connection"] > 0
    cities = {c["customerCode"]: c["city"] for c in entity_rows(box, "company")}
    assert all(cities[c["customerCode"]] == "Moved" for c in existing)


def test_a_failure_stops_sending_but_the_answers_in_flight_are_recorded(
    sandbox_factory, run_target, monkeypatch
):
    box = sandbox_factory(companies=2, faults=LATENCY)
    meter = InFlight(monkeypatch, fail_at=3)
    before = mutation_count(box)
    result = run_target(
        box,
        stream_messages("company", companies(40, "FIF")),
        raises=False,
        mutations_per_request=2,
        max_requests_in_flight=4,
    )
    assert isinstance(result.error, AuthError)
    assert meter.peak >= 3
    applied = mutation_count(box) - before
    # requests 1, 2 and those already in flight when request 3 failed: no more
    assert 2 * 2 <= applied <= 2 * (2 + 4)
    assert result.summary["failed"] is True
    assert result.counts("company")["created"] == applied, "an applied request went unrecorded"
    assert len(codes(box, "FIF")) == applied


@pytest.mark.slow
def test_sigterm_with_requests_in_flight_records_them_and_resumes_exactly(
    sandbox_factory, tmp_path
):
    box = sandbox_factory(companies=10, api_keys=[SECRET], rate_limit=0, faults=LATENCY)
    rows = [company_row(seq, "TIF") for seq in range(200)]
    before = team_rows(box)
    config = target_config(
        box, tmp_path, batch_size_rows=100, mutations_per_request=5, max_requests_in_flight=4
    )
    base = mutation_total(box)
    run = run_target_until(
        config,
        lines(resumable_input(rows, state_every=10)),
        tmp_path / "a",
        kill_after_mutations=base + 30,
        mutations=lambda: mutation_total(box),
        sig=signal.SIGTERM,
        timeout=20,
    )
    assert not run.hung, "target-moovago did not exit within 20 s of SIGTERM"
    applied = mutation_total(box) - base
    assert 30 <= applied < len(rows), "SIGTERM did not stop the run"
    assert run.returncode not in (0, -signal.SIGTERM), run.returncode
    assert "stopped by signal" in run.last_stderr_line()
    assert run.summary["streams"]["company"]["created"] == applied, "an answer in flight was lost"
    seq = run.states[-1]["bookmarks"]["company"]["seq"] if run.states else 0
    landed = {r["customerCode"] for r in team_rows(box)}
    assert all(r["customerCode"] in landed for r in rows[:seq]), "STATE ahead of the writes"
    again = run_target_cli(
        config, lines(resumable_input(rows, state_every=10, start=seq)), tmp_path / "b"
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert_store(box, before, rows)
