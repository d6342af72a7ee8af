"""STATE while the run goes on: emitted as soon as every row received before it is written,
rejected or counted, never ahead of a row still waiting in another stream's batch."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import pytest

from target_moovago.target import TargetMoovago
from tests.target.helpers import Runner, entity_rows, record_messages, schema_message


@pytest.fixture
def box(sandbox_factory):
    return sandbox_factory(companies=3)


class StateProbe(io.StringIO):
    """stdout that notes, for each STATE line, the customer codes the sandbox holds then."""

    def __init__(self, handle: Any) -> None:
        super().__init__()
        self.handle = handle
        self.seen: list[tuple[dict[str, Any], set[str]]] = []

    def write(self, text: str) -> int:
        if text.strip():
            codes = {r.get("customerCode") for r in entity_rows(self.handle, "company")}
            self.seen.append((json.loads(text), codes))
        return super().write(text)


def run_probed(handle: Any, runner: Runner, messages: list[dict[str, Any]]) -> StateProbe:
    probe = StateProbe(handle)
    config = runner.config(handle, batch_size_rows=2)
    with contextlib.redirect_stdout(probe):
        TargetMoovago(config=config).listen(
            io.StringIO("".join(json.dumps(m) + "\n" for m in messages))
        )
    return probe


def company(n: int) -> list[dict[str, Any]]:
    return record_messages("company", [{"customerCode": f"ST-{n}", "name": f"State {n}"}])


def state(seq: int) -> dict[str, Any]:
    return {"type": "STATE", "value": {"seq": seq}}


def test_state_follows_each_full_batch_once_its_rows_are_written(box, run_target):
    messages = [
        schema_message("company", ["customerCode", "name"]),
        *company(1),
        *company(2),  # full: drained before the next STATE is read
        state(2),
        *company(3),
        state(3),  # row 3 is waiting: held back until the next drain
        *company(4),
        *company(5),
    ]
    probe = run_probed(box, run_target, messages)
    assert [s for s, _ in probe.seen] == [{"seq": 2}, {"seq": 3}]
    for emitted, codes in probe.seen:
        assert {f"ST-{n}" for n in range(1, emitted["seq"] + 1)} <= codes


def test_state_waits_for_a_row_pending_in_another_stream(box, run_target):
    messages = [
        schema_message("company", ["customerCode", "name"]),
        schema_message("mandator", ["code", "name"]),
        *record_messages("mandator", [{"code": "ST-M", "name": "Pending"}]),
        state(1),
        *company(1),
        *company(2),  # the company batch is written; the mandator row still waits
        state(2),
        *company(3),
        *company(4),
        state(3),
    ]
    probe = run_probed(box, run_target, messages)
    assert [s for s, _ in probe.seen] == [{"seq": 3}]
    assert any(r.get("code") == "ST-M" for r in entity_rows(box, "mandator"))
