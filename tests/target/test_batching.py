"""Aliased mutation batches, splitting of refused requests, and one governor for all sinks."""

from __future__ import annotations

import re

import pytest
from singer_sdk.exceptions import ConfigValidationError

from moovago_api.errors import ConfigError
from moovago_api.schema import DEFAULT_SCHEMA_PATH
from target_moovago import sinks
from tests.target.helpers import entity_rows, stream_messages
from tests.unit.stub_server import busiest_window

BATCH = "TargetMoovagoCompanyBatch"


@pytest.fixture
def box(sandbox_factory):
    return sandbox_factory(companies=2)


def batch_requests(handle, operation=BATCH):
    """Requests the sandbox answered (429s left out: the client sends those again)."""
    return [
        r
        for r in handle.requests()
        if r.get("operationName") == operation and r.get("status") != 429
    ]


def new_companies(n, prefix="B"):
    return [{"customerCode": f"{prefix}-{i}", "name": f"Batch {i}"} for i in range(n)]


def test_rows_travel_in_batches_of_mutations_per_request(box, run_target):
    result = run_target(
        box,
        stream_messages("company", new_companies(30)),
        mutations_per_request=25,
        max_requests_in_flight=1,  # the sandbox logs requests as they end: one at a time
    )
    assert result.counts("company")["created"] == 30
    sent = batch_requests(box)
    assert [len(r["variables"]) for r in sent] == [25, 5]
    assert all("Batch 1" not in r["query"] for r in sent)  # values only in variables
    assert (
        len(
            {c["customerCode"] for c in entity_rows(box, "company")} & {f"B-{i}" for i in range(30)}
        )
        == 30
    )


DELETE = """
mutation D($i: CompanyDeleteInput!) { company { delete(input: $i) { recordId } } }
"""


def test_each_alias_error_goes_back_to_its_row(box, run_target, monkeypatch):
    doomed = entity_rows(box, "company")[0]
    rows = [
        {"customerCode": "ALIAS-1", "name": "Fine"},
        {"id": doomed["id"], "name": "Gone before the update"},
        {"customerCode": "ALIAS-2", "name": "Fine too"},
    ]
    original = sinks.MoovagoSink.index

    def index_then_delete(self):
        """Someone deletes the record between our prefetch and our write."""
        index = original(self)
        if not getattr(self, "_deleted_once", False):
            self._deleted_once = True
            self.run.remote.client.execute(DELETE, {"i": {"id": doomed["id"]}})
        return index

    monkeypatch.setattr(sinks.MoovagoSink, "index", index_then_delete)
    result = run_target(box, stream_messages("company", rows))
    assert result.counts("company")["created"] == 2
    (reject,) = result.rejects
    assert reject["row_key"] == f"id={doomed['id']}"
    assert reject["reason"].startswith("update failed")
    assert [r for r in batch_requests(box) if len(r["variables"]) == 3]  # one request, 3 aliases


def loosened_schema(tmp_path):
    """Our copy of the schema is looser than the server's: `status` is any String."""
    sdl = DEFAULT_SCHEMA_PATH.read_text()
    block = re.search(r"input CompanyCreateInput \{.*?\n\}", sdl, re.S)
    assert block is not None
    loose = block.group(0).replace("status: CompanyStatus", "status: String")
    path = tmp_path / "loose.gql"
    path.write_text(sdl.replace(block.group(0), loose))
    return path


def test_a_request_refused_as_a_whole_is_split_to_isolate_the_bad_row(box, run_target, tmp_path):
    rows = new_companies(8, "SPLIT")
    rows[5]["status"] = "FRIEND"  # passes our loose schema, refused by the server's variables
    result = run_target(
        box, stream_messages("company", rows), schema_path=str(loosened_schema(tmp_path))
    )
    assert result.counts("company")["created"] == 7
    (reject,) = result.rejects
    assert reject["row_key"] == "customerCode='SPLIT-5'"
    sizes = [len(r["variables"]) for r in batch_requests(box)]
    assert sizes[0] == 8
    assert sizes == [8, 4, 4, 2, 1, 1, 2]  # halves, depth first, down to the single bad row
    codes = {c.get("customerCode") for c in entity_rows(box, "company")}
    assert "SPLIT-5" not in codes
    assert {f"SPLIT-{i}" for i in range(8) if i != 5} <= codes


@pytest.mark.slow
def test_parallel_sinks_share_one_governor(box, run_target):
    company = entity_rows(box, "company")[0]
    messages = [
        *stream_messages("company", new_companies(6, "PAR")),
        *stream_messages(
            "mandator", [{"code": f"M{i}", "name": f"Mandator {i}"} for i in range(6)]
        ),
        *stream_messages(
            "contact",
            [
                {"companyId": company["id"], "lastName": f"L{i}", "email": f"{i}@x.test"}
                for i in range(6)
            ],
        ),
    ]
    result = run_target(box, messages, mutations_per_request=1)
    for stream in ("company", "mandator", "contact"):
        assert result.counts(stream)["created"] == 6
    client = result.target.run.remote.client
    # Every request of the three sinks went through the one governor, at most 5 a second.
    assert len(client.governor.send_times) == client.stats.requests == result.summary["requests"]
    assert busiest_window(client.governor.send_times) <= 5
    assert result.summary["rate_limited"] == box.stats()["rate_limited"]  # retried, not lost


@pytest.mark.parametrize("rate", [6, 0])
def test_a_rate_above_five_is_refused(box, run_target, rate):
    result = run_target(
        box,
        stream_messages("company", new_companies(1)),
        raises=False,
        max_requests_per_second=rate,
    )
    assert isinstance(result.error, ConfigError | ConfigValidationError)
    assert "max_requests_per_second" in f"{result.error} {getattr(result.error, 'errors', '')}"


def test_default_rate_is_one_per_second(box, run_target):
    config = run_target.config(box)
    del config["max_requests_per_second"]
    from target_moovago.target import TargetMoovago

    target = TargetMoovago(config=config)
    assert target.run.remote.client.max_requests_per_second == 1
