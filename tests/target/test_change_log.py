"""`changes_path`: one JSON line per confirmed write, with each written field before and after;
writes a stopped run never saw answered are settled against Moovago by the next run."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from target_moovago.ledger import JOURNAL_SUFFIX
from tests.target.helpers import entity_rows, stream_messages


@pytest.fixture
def box(sandbox_factory):
    return sandbox_factory(companies=6)


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def companies(handle):
    return {c["customerCode"]: c for c in entity_rows(handle, "company") if c.get("customerCode")}


def test_each_confirmed_write_is_one_line_with_before_and_after(box, run_target, tmp_path):
    changes = tmp_path / "changes.jsonl"
    seed = [
        {"customerCode": "CL-1", "name": "One", "city": "Niort"},
        {"customerCode": "CL-2", "name": "Two", "city": "Pau"},
        {"customerCode": "CL-3", "name": "Three", "city": "Albi"},
    ]
    first = run_target(box, stream_messages("company", seed), changes_path=str(changes))
    assert first.counts("company")["created"] == 3
    assert stat.S_IMODE(changes.stat().st_mode) == 0o600
    created = read(changes)
    ids = {c["customerCode"]: c["id"] for c in companies(box).values()}
    assert [(e["operation"], e["record_id"]) for e in created] == [
        ("create", ids["CL-1"]),
        ("create", ids["CL-2"]),
        ("create", ids["CL-3"]),
    ]
    assert created[0]["match_key"] == {"customerCode": "CL-1"}
    assert created[0]["fields"]["city"] == {"before": None, "after": "Niort"}
    assert {e["stream"] for e in created} == {"company"}
    assert {e["run_id"] for e in created} == {first.summary["changes"]["run_id"]}
    assert all(e["time"] for e in created)

    rows = [
        {"customerCode": "CL-1", "name": "One", "city": "Niort"},  # unchanged
        {"customerCode": "CL-2", "name": "Two", "city": "Lyon"},  # updated
        {"customerCode": "CL-3", "_sdc_deleted_at": "2026-01-01T00:00:00Z"},  # deleted
        {"customerCode": "CL-4", "name": None},  # rejected: a create needs a name
    ]
    second = run_target(
        box, stream_messages("company", rows), changes_path=str(changes), hard_delete=True
    )
    counts = second.counts("company")
    assert (counts["unchanged"], counts["updated"], counts["deleted"]) == (1, 1, 1)
    assert counts["rejected"] == 1
    update, delete = read(changes)[3:]
    assert update["run_id"] != created[0]["run_id"]
    assert (update["operation"], update["record_id"]) == ("update", ids["CL-2"])
    assert update["fields"] == {"city": {"before": "Pau", "after": "Lyon"}}
    assert (delete["operation"], delete["record_id"]) == ("delete", ids["CL-3"])
    assert delete["fields"]["city"] == {"before": "Albi", "after": None}
    assert delete["fields"]["name"] == {"before": "Three", "after": None}
    assert not Path(f"{changes}{JOURNAL_SUFFIX}").exists()  # nothing left in flight

    size = changes.stat().st_size
    dry = [{"customerCode": "CL-1", "name": "Renamed in a dry run"}]
    run_target(box, stream_messages("company", dry), changes_path=str(changes), dry_run=True)
    assert changes.stat().st_size == size


def test_writes_a_stopped_run_left_unanswered_are_settled_against_moovago(
    box, run_target, tmp_path
):
    changes = tmp_path / "changes.jsonl"
    seed = [
        {"customerCode": "KS-1", "name": "One", "city": "Niort"},
        {"customerCode": "KS-2", "name": "Two", "city": "Pau"},
    ]
    run_target(box, stream_messages("company", seed), changes_path=str(changes))
    ids = {c["customerCode"]: c["id"] for c in companies(box).values()}
    # What a run killed with requests in flight leaves: intents in the journal, no line.
    run_target(
        box,
        stream_messages("company", [{"customerCode": "KS-3", "name": "Landed"}]),
        changes_path=str(tmp_path / "elsewhere.jsonl"),
    )
    run_target(box, stream_messages("company", [{"customerCode": "KS-1", "city": "Brest"}]))

    def intent(write, operation, record_id, fields, key=None):
        return {
            "run_id": "killed",
            "write": write,
            "stream": "company",
            "record_id": record_id,
            "match_key": key,
            "operation": operation,
            "fields": {k: {"before": b, "after": a} for k, (b, a) in fields.items()},
        }

    journal = [
        intent("k-1", "create", None, {"customerCode": (None, "KS-3"), "name": (None, "Landed")}),
        intent("k-2", "create", None, {"customerCode": (None, "KS-9"), "name": (None, "Lost")}),
        intent("k-3", "update", ids["KS-1"], {"city": ("Niort", "Brest")}),  # landed
        intent("k-4", "update", ids["KS-2"], {"city": ("Pau", "Lille")}),  # never landed
        intent("k-5", "update", ids["KS-2"], {"city": ("Pau", "Caen")}),
    ]
    lines = [*journal, {"write": "k-5", "dropped": True}]
    Path(f"{changes}{JOURNAL_SUFFIX}").write_text(
        "".join(json.dumps(e) + "\n" for e in lines) + '{"write": "k-6", "str', encoding="utf-8"
    )
    before = len(read(changes))
    run_target(
        box,
        stream_messages("company", [{"customerCode": "KS-2", "name": "Two"}]),
        changes_path=str(changes),
    )
    recovered = read(changes)[before:]
    assert [(e["write"], e["record_id"]) for e in recovered] == [
        ("k-1", companies(box)["KS-3"]["id"]),
        ("k-3", ids["KS-1"]),
    ]
    assert all(e["recovered"] for e in recovered)
    assert not Path(f"{changes}{JOURNAL_SUFFIX}").exists()
    # settled once: another run logs nothing again
    run_target(
        box,
        stream_messages("company", [{"customerCode": "KS-2", "name": "Two"}]),
        changes_path=str(changes),
    )
    assert len(read(changes)) == before + 2


def test_the_journal_keeps_only_what_is_still_unsettled(tmp_path):
    import datetime as dt

    from target_moovago.ledger import ChangeLog

    changes = tmp_path / "changes.jsonl"
    journal = Path(f"{changes}{JOURNAL_SUFFIX}")
    intents = [
        {"write": "a-1", "stream": "company", "operation": "update", "fields": {}},
        {"write": "a-2", "stream": "contact", "operation": "update", "fields": {}},
        {"write": "a-3", "stream": "contact", "operation": "delete", "fields": {}},
    ]
    journal.write_text("".join(json.dumps(e) + "\n" for e in intents), encoding="utf-8")
    changes.write_text(json.dumps({"write": "a-3", "operation": "delete"}) + "\n")
    log = ChangeLog(changes, clock=lambda: dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    assert {s: [e["write"] for e in es] for s, es in log.unsettled.items()} == {
        "company": ["a-1"],
        "contact": ["a-2"],  # a-3 is in the change log already
    }
    (entry,) = log.unsettled.pop("company")
    log.settled(entry, None)  # company ran: a-1 had not landed
    log.close()  # contact did not run this time: a-2 stays for the next run
    assert [e["write"] for e in read(journal)] == ["a-2"]
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    assert ChangeLog(changes, clock=dt.datetime.now).unsettled.keys() == {"contact"}


def test_the_api_key_never_reaches_the_change_log(box, run_target, tmp_path):
    changes = tmp_path / "changes.jsonl"
    rows = [{"customerCode": "SEC-1", "name": "Leaky", "note": f"key is {box.api_key}"}]
    result = run_target(box, stream_messages("company", rows), changes_path=str(changes))
    assert result.counts("company")["created"] == 1
    text = changes.read_text(encoding="utf-8")
    assert "SEC-1" in text
    assert box.api_key not in text
