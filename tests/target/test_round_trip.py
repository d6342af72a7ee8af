"""The tap's output piped into the target: unchanged -> 0 mutations; k changed -> k updates;
k new -> k creates; rerun -> 0."""

from __future__ import annotations

import contextlib
import copy
import io
import json

import pytest

from tap_moovago.tap import TapMoovago
from tests.target.helpers import mutations

STREAMS = ["company", "contact", "mandator", "turnover"]


def tap_output(handle) -> list[dict]:
    """Run the tap on every writable stream (team deselected: it is read-only)."""
    config = {"api_url": handle.url, "api_key": handle.api_key, "max_requests_per_second": 5}
    catalog = TapMoovago(config=config, validate_config=False).catalog_dict
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = entry["tap_stream_id"] in STREAMS
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        TapMoovago(config=config, catalog=catalog).sync_all()
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


@pytest.fixture
def box(sandbox_factory):
    return sandbox_factory(companies=12)


@pytest.mark.slow
def test_round_trip(box, run_target):
    messages = tap_output(box)
    streams = {m["stream"] for m in messages if m["type"] == "RECORD"}
    assert streams == set(STREAMS)
    assert "team" not in {m.get("stream") for m in messages if m["type"] == "SCHEMA"}

    unchanged = run_target(box, messages)
    assert mutations(box) == {"create": 0, "update": 0, "delete": 0}
    for stream in STREAMS:
        counts = unchanged.counts(stream)
        assert counts["rejected"] == 0, unchanged.rejects[:3]
        assert counts["unchanged"] > 0

    k = 3
    changed = copy.deepcopy(messages)
    companies = [m for m in changed if m["type"] == "RECORD" and m["stream"] == "company"]
    for message in companies[:k]:
        message["record"]["city"] = f"Changed {message['record']['id']}"
    new = []
    for n in range(k):
        record = dict(companies[-1]["record"])
        # The stream's key property stays, empty: the row has no Moovago id yet.
        record.update(id=None, customerCode=f"RT-NEW-{n}", name=f"Round trip {n}")
        new.append({"type": "RECORD", "stream": "company", "record": record})
    first_state = [i for i, m in enumerate(changed) if m["type"] == "STATE"][:1]
    at = first_state[0] if first_state else len(changed)
    changed[at:at] = new

    result = run_target(box, changed)
    assert mutations(box) == {"create": k, "update": k, "delete": 0}
    assert result.counts("company")["updated"] == k
    assert result.counts("company")["created"] == k

    box_mutations = mutations(box)
    again = run_target(box, changed)
    assert mutations(box) == box_mutations
    assert again.counts("company")["unchanged"] == len(companies) + k
