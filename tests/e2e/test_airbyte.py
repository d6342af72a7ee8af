"""source-moovago and destination-moovago against the sandbox, every message they print
validated by the Airbyte protocol models: spec, check, discover, read (full refresh,
incremental from per-stream state), write (STATE echoed only once earlier records are settled,
a rerun changes nothing) and one clear line for what they do not understand."""

from __future__ import annotations

import copy
import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from moovago_sandbox.testing import SandboxHandle, start_sandbox
from tap_moovago.tap import TapMoovago
from target_moovago.target import TargetMoovago
from tests.e2e.airbyte_helpers import (
    DESTINATION,
    SOURCE,
    Output,
    configured_catalog,
    parse,
    run,
    stream_states,
    write_json,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

#: Moovago stream -> the sandbox export's entity.
STREAMS = {
    "team": "team",
    "company": "company",
    "contact": "companyContact",
    "mandator": "mandator",
    "turnover": "turnover",
}


def team_rows(box: SandboxHandle, stream: str) -> list[dict[str, Any]]:
    rows = box.export()[STREAMS[stream]]
    if stream == "team":
        return [row for row in rows if row["id"] == box.team_id]
    return [row for row in rows if row.get("teamId") == box.team_id]


class Airbyte:
    """One sandbox and the files an Airbyte worker would hand the connectors."""

    def __init__(self, box: SandboxHandle, workdir: Path) -> None:
        self.box = box
        self.workdir = workdir
        self.config = write_json(
            workdir / "source.json", {"api_url": box.url, "api_key": box.api_key}
        )
        self.destination_config = write_json(
            workdir / "destination.json",
            {
                "api_url": box.url,
                "api_key": box.api_key,
                "max_requests_per_second": 5,
                "rejects_path": str(workdir / "rejects.jsonl"),
                "summary_path": str(workdir / "summary.json"),
            },
        )
        out = run(SOURCE, ["discover", "--config", str(self.config)])
        assert out.code == 0, out.stderr[-3000:]
        self.catalog = out.of_type("CATALOG")[0]["catalog"]
        self._files = 0

    def file(self, value: Any) -> str:
        self._files += 1
        return str(write_json(self.workdir / f"input-{self._files}.json", value))

    def read(self, catalog: dict[str, Any], state: list[dict[str, Any]] | None = None) -> Output:
        args = ["read", "--config", str(self.config), "--catalog", self.file(catalog)]
        if state is not None:
            args += ["--state", self.file(state)]
        return run(SOURCE, args)

    def write(self, catalog: dict[str, Any], messages: list[dict[str, Any]]) -> Output:
        stdin = "".join(json.dumps(m) + "\n" for m in messages)
        args = ["write", "--config", str(self.destination_config), "--catalog", self.file(catalog)]
        return run(DESTINATION, args, stdin=stdin)

    def summary(self) -> dict[str, Any]:
        return json.loads((self.workdir / "summary.json").read_text())["streams"]


@pytest.fixture(scope="module")
def airbyte(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airbyte]:
    with start_sandbox(companies=12) as box:
        yield Airbyte(box, tmp_path_factory.mktemp("airbyte"))


def record(stream: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": "RECORD", "record": {"stream": stream, "data": data, "emitted_at": 1}}


def state(stream: str, value: dict[str, Any]) -> dict[str, Any]:
    descriptor = {"stream_descriptor": {"name": stream}, "stream_state": value}
    return {"type": "STATE", "state": {"type": "STREAM", "stream": descriptor}}


def one_error_line(out: Output) -> str:
    assert out.code == 1
    errors = [m for m in out.of_type("TRACE") if m["trace"]["type"] == "ERROR"]
    assert len(errors) == 1, out.messages
    assert "Traceback" not in out.stderr
    return str(errors[0]["trace"]["error"]["message"])


# -- spec, check, discover -----------------------------------------------------------------------


def test_spec_is_each_plugins_own_config_schema() -> None:
    for executable, plugin in ((SOURCE, TapMoovago), (DESTINATION, TargetMoovago)):
        out = run(executable, ["spec"])
        assert out.code == 0
        spec = out.of_type("SPEC")[0]["spec"]
        connection = spec["connectionSpecification"]
        builtins: dict[str, Any] = {"properties": {}}
        plugin.append_builtin_config(builtins)  # the SDK's own settings: not in the SPEC
        own = set(copy.deepcopy(plugin.config_jsonschema)["properties"]) - set(
            builtins["properties"]
        )
        assert set(connection["properties"]) == own
        assert {"api_key", "max_requests_in_flight"} <= own
        assert "stream_maps" not in connection["properties"]
        assert set(connection["required"]) == {"api_url", "api_key"}
        assert connection["properties"]["api_key"]["airbyte_secret"] is True
    destination = run(DESTINATION, ["spec"]).of_type("SPEC")[0]["spec"]
    assert destination["supported_destination_sync_modes"] == ["append", "append_dedup"]


def test_check_passes_with_the_key_and_fails_in_one_line_without(
    airbyte: Airbyte, tmp_path: Path
) -> None:
    box = airbyte.box
    for executable in (SOURCE, DESTINATION):
        good = run(executable, ["check", "--config", str(airbyte.config)])
        assert good.of_type("CONNECTION_STATUS")[0]["connectionStatus"] == {"status": "SUCCEEDED"}
        bad_key = "not-the-sandbox-key-4242"
        bad = write_json(tmp_path / "bad.json", {"api_url": box.url, "api_key": bad_key})
        out = run(executable, ["check", "--config", str(bad)])
        assert out.code == 0  # a failed check is an answer, not a crash
        status = out.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
        assert status["status"] == "FAILED"
        assert "api_key" in status["message"]
        assert bad_key not in json.dumps(out.messages) + out.stderr
        invalid = {"api_url": box.url, "api_key": box.api_key, "max_retries": -1}
        out = run(executable, ["check", "--config", str(write_json(tmp_path / "i.json", invalid))])
        status = out.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
        assert status["status"] == "FAILED"
        assert "max_retries" in status["message"]


def test_check_of_an_address_that_does_not_answer_fails_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/graphql"
    closed = write_json(tmp_path / "closed.json", {"api_url": url, "api_key": "k-closed"})
    for executable in (SOURCE, DESTINATION):
        out = run(executable, ["check", "--config", str(closed)])
        status = out.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
        assert status["status"] == "FAILED"
        assert f"no answer from {url} (one attempt)" in status["message"]
        assert "\n" not in status["message"]


def test_discover_offers_incremental_on_the_cursor_and_full_refresh(airbyte: Airbyte) -> None:
    streams = {s["name"]: s for s in airbyte.catalog["streams"]}
    assert set(streams) == set(STREAMS)
    assert streams["team"]["supported_sync_modes"] == ["full_refresh"]
    for name in ("company", "contact", "mandator", "turnover"):
        stream = streams[name]
        assert stream["supported_sync_modes"] == ["full_refresh", "incremental"]
        assert stream["source_defined_cursor"] is True
        assert stream["default_cursor_field"] == ["updatedAt"]
    for stream in streams.values():
        assert stream["source_defined_primary_key"] == [["id"]]
        assert "id" in stream["json_schema"]["properties"]


# -- read ----------------------------------------------------------------------------------------


def test_full_refresh_reads_every_row_with_a_state_per_stream(airbyte: Airbyte) -> None:
    out = airbyte.read(configured_catalog(airbyte.catalog, sync_mode="full_refresh"))
    assert out.code == 0, out.stderr[-3000:]
    for stream in STREAMS:
        expected = {row["id"] for row in team_rows(airbyte.box, stream)}
        got = [row["id"] for row in out.records(stream)]
        assert expected, stream
        assert sorted(got) == sorted(expected), stream
    # Values as the API holds them, nested objects included (coordinates, members); the
    # export holds stored fields only (no resolved `mandators`).
    exported = {row["id"]: row for row in team_rows(airbyte.box, "company")}
    for row in out.records("company"):
        stored = {key: row[key] for key in row if key != "mandators"}
        assert stored == {key: exported[row["id"]][key] for key in stored}, row["id"]
    assert any(row["coordinates"] for row in out.records("company"))
    (team,) = out.records("team")
    assert team["members"]
    assert team["members"] == team_rows(airbyte.box, "team")[0]["members"]
    assert set(stream_states(out)) == set(STREAMS)


def test_selected_columns_only(airbyte: Airbyte) -> None:
    catalog = configured_catalog(airbyte.catalog, ["company"], sync_mode="full_refresh")
    schema = catalog["streams"][0]["stream"]["json_schema"]
    schema["properties"] = {k: schema["properties"][k] for k in ("id", "name", "city")}
    out = airbyte.read(catalog)
    assert out.code == 0, out.stderr[-3000:]
    assert out.records("company")
    # The cursor comes along, as Airbyte expects of a source-defined cursor.
    assert {frozenset(row) for row in out.records("company")} == {
        frozenset({"id", "name", "city", "updatedAt"})
    }
    assert out.records("team") == []  # the parent is read for its id, not emitted


def test_incremental_read_returns_only_the_changed_rows(airbyte: Airbyte) -> None:
    """Per-stream state round trip: the second read asks for rows updated since each stream's
    cursor. The filter is inclusive (a row written in the cursor's millisecond is never
    missed), so besides the changed rows only rows at exactly the old cursor come back."""
    catalog = configured_catalog(airbyte.catalog)
    first = airbyte.read(catalog)
    assert first.code == 0, first.stderr[-3000:]
    states = stream_states(first)
    cursors = {
        name: s["stream"]["stream_state"]["replication_key_value"]
        for name, s in states.items()
        if name != "team"
    }
    companies = sorted(first.records("company"), key=lambda row: row["id"])
    changed = companies[:2]
    write_catalog = configured_catalog(airbyte.catalog, ["company"])
    written = airbyte.write(
        write_catalog,
        [record("company", {"id": row["id"], "city": f"Incr {row['id'][-4:]}"}) for row in changed],
    )
    assert written.code == 0, written.stderr[-3000:]

    second = airbyte.read(catalog, list(states.values()))
    assert second.code == 0, second.stderr[-3000:]
    got = {row["id"]: row for row in second.records("company")}
    assert {row["id"] for row in changed} <= set(got)
    for row_id, row in got.items():
        if row_id not in {c["id"] for c in changed}:
            assert row["updatedAt"] == cursors["company"], row_id
    assert all(got[row["id"]]["city"] == f"Incr {row['id'][-4:]}" for row in changed)
    for stream in ("contact", "mandator", "turnover"):
        rows = second.records(stream)
        assert len(rows) < len(first.records(stream)), stream
        assert all(row["updatedAt"] == cursors[stream] for row in rows), stream
    assert len(second.records("team")) == 1  # full refresh: no cursor
    new_cursor = stream_states(second)["company"]["stream"]["stream_state"]
    assert new_cursor["replication_key_value"] > cursors["company"]


def test_full_refresh_ignores_a_given_state(airbyte: Airbyte) -> None:
    first = airbyte.read(configured_catalog(airbyte.catalog, ["company"]))
    again = airbyte.read(
        configured_catalog(airbyte.catalog, ["company"], sync_mode="full_refresh"),
        list(stream_states(first).values()),
    )
    assert len(again.records("company")) == len(team_rows(airbyte.box, "company"))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda c: c["streams"][0]["stream"].update(name="visit"), "'visit'"),
        (lambda c: c["streams"][0].update(cursor_field=["createdAt"]), "cursor"),
        (lambda c: c["streams"][0].update(sync_mode="mirror"), "'mirror'"),
        (lambda c: c.update(streams=[]), "no stream"),
    ],
)
def test_read_refuses_a_catalog_it_does_not_understand(
    airbyte: Airbyte, change: Any, words: str
) -> None:
    catalog = configured_catalog(airbyte.catalog, ["company"])
    change(catalog)
    out = airbyte.read(catalog)
    assert words in one_error_line(out)
    assert out.of_type("RECORD") == []


def test_read_refuses_a_legacy_state(airbyte: Airbyte) -> None:
    catalog = configured_catalog(airbyte.catalog, ["company"])
    args = ["read", "--config", str(airbyte.config), "--catalog", airbyte.file(catalog)]
    out = run(SOURCE, [*args, "--state", airbyte.file({"company": {"updatedAt": "x"}})])
    assert "legacy" in one_error_line(out)
    out = run(SOURCE, [*args, "--state", airbyte.file([{"type": "GLOBAL", "global": {}}])])
    assert "'GLOBAL'" in one_error_line(out)


# -- write ---------------------------------------------------------------------------------------


def test_write_applies_records_and_a_rerun_changes_nothing(airbyte: Airbyte) -> None:
    box = airbyte.box
    companies = sorted(team_rows(box, "company"), key=lambda row: row["id"])
    owners = companies[0]["ownerIds"]
    messages = [record("company", {"id": companies[2]["id"], "city": "Quimper"})]
    messages.append(state("company", {"cursor": 1}))
    new = {
        "name": "Airbyte Nouvelle",
        "customerCode": "AB-0001",
        "status": "PROSPECT",
        "ownerIds": owners,
        "mandatorIds": [],
    }
    messages += [record("company", new), state("company", {"cursor": 2})]
    catalog = configured_catalog(airbyte.catalog, ["company"])
    before = box.stats()["mutations"]["company"]

    out = airbyte.write(catalog, messages)
    assert out.code == 0, out.stderr[-3000:]
    assert [m["state"]["stream"]["stream_state"] for m in out.of_type("STATE")][-1] == {"cursor": 2}
    summary = airbyte.summary()["company"]
    assert (summary["created"], summary["updated"], summary["rejected"]) == (1, 1, 0)
    rows = {row["id"]: row for row in team_rows(box, "company")}
    assert rows[companies[2]["id"]]["city"] == "Quimper"
    created = next(r for r in rows.values() if r.get("customerCode") == "AB-0001")
    assert created["name"] == new["name"]
    after = box.stats()["mutations"]["company"]
    assert (after["create"] - before["create"], after["update"] - before["update"]) == (1, 1)

    rerun = airbyte.write(catalog, messages)
    assert rerun.code == 0, rerun.stderr[-3000:]
    assert box.stats()["mutations"]["company"] == after
    summary = airbyte.summary()["company"]
    assert (summary["created"], summary["updated"]) == (0, 0)
    assert rerun.of_type("STATE")[-1]["state"]["stream"]["stream_state"] == {"cursor": 2}


def test_write_echoes_a_state_only_once_every_earlier_record_is_written(tmp_path: Path) -> None:
    """Slow mutations (300 ms each) and batches of two rows: at each echoed STATE the sandbox
    already holds every record sent before it."""
    with start_sandbox(companies=8, extra_args=["--fault-latency", "1:300"]) as box:
        companies = sorted(team_rows(box, "company"), key=lambda row: row["id"])
        cities = {row["id"]: f"Settled {i}" for i, row in enumerate(companies)}
        messages: list[dict[str, Any]] = []
        before_state: dict[int, list[str]] = {}
        for i, row in enumerate(companies):
            messages.append(record("company", {"id": row["id"], "city": cities[row["id"]]}))
            if i % 2 == 1:
                before_state[i] = [c["id"] for c in companies[: i + 1]]
                messages.append(state("company", {"upto": i}))
        work = Airbyte(box, tmp_path)
        config = json.loads(work.destination_config.read_text())
        config.update(batch_size_rows=2, mutations_per_request=1)
        write_json(work.destination_config, config)
        catalog = work.file(configured_catalog(work.catalog, ["company"]))
        echoed = []
        args = ["write", "--config", str(work.destination_config), "--catalog", catalog]
        with subprocess.Popen(
            [str(DESTINATION), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ) as proc:
            assert proc.stdin is not None
            assert proc.stdout is not None
            proc.stdin.write("".join(json.dumps(m) + "\n" for m in messages))
            proc.stdin.close()
            for line in proc.stdout:
                (message,) = parse(line)
                upto = message["state"]["stream"]["stream_state"]["upto"]
                echoed.append(upto)
                stored = {row["id"]: row for row in team_rows(box, "company")}
                for row_id in before_state[upto]:
                    assert stored[row_id]["city"] == cities[row_id], (upto, row_id)
            assert proc.wait(timeout=120) == 0
    assert len(echoed) >= 2, echoed
    assert echoed == sorted(echoed)
    assert echoed[-1] == max(before_state)


def test_write_refuses_overwrite_and_unknown_streams(airbyte: Airbyte) -> None:
    catalog = configured_catalog(airbyte.catalog, ["company"], destination_sync_mode="overwrite")
    out = airbyte.write(catalog, [record("company", {"id": "x", "city": "y"})])
    assert "overwrite" in one_error_line(out)

    catalog = configured_catalog(airbyte.catalog, ["company"])
    out = airbyte.write(catalog, [record("visit", {"id": "x"})])
    assert "'visit'" in one_error_line(out)
    out = airbyte.write(catalog, [{"type": "SPEC", "spec": {"connectionSpecification": {}}}])
    assert "'SPEC'" in one_error_line(out)


def test_write_of_the_read_only_team_stream_is_skipped_or_fails_in_one_line(
    airbyte: Airbyte,
) -> None:
    catalog = configured_catalog(airbyte.catalog, ["team"])
    rows = [record("team", {"id": airbyte.box.team_id, "name": "x"})]
    out = airbyte.write(catalog, rows)
    assert out.code == 0, out.stderr[-3000:]
    assert out.stderr.count("Stream 'team' is read-only") == 1
    settings = json.loads(airbyte.destination_config.read_text())
    write_json(airbyte.destination_config, {**settings, "read_only_streams": "error"})
    try:
        assert "read-only" in one_error_line(airbyte.write(catalog, rows))
    finally:
        write_json(airbyte.destination_config, settings)
