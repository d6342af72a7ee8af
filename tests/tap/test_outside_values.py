"""State and values from outside, checked where they enter the tap (issue 23 item 3): bookmarks
that are not date-times or lie in the future, an `updatedAt` that is not a date-time, records
that do not fit the SCHEMA the tap emitted. Each is one line naming stream and value."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
from typing import Any

import pytest

from moovago_api.errors import ConfigError, MoovagoError
from moovago_api.wire import format_datetime
from tap_moovago.records import FUTURE_ALLOWANCE, RecordError
from tap_moovago.tap import TapMoovago
from tests.tap.helpers import discover, error_lines, only_streams, run_cli
from tests.tap.test_stream_errors import OFFLINE, ScriptedClient, _mandator, _offset_answer
from tests.unit.stub_server import client_for


def _sync(client: ScriptedClient, state: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    catalog = only_streams(discover(OFFLINE), {"mandator"})
    tap = TapMoovago(config=OFFLINE, catalog=catalog, state=state)
    out = io.StringIO()
    with client_for(client.execute) as real, contextlib.redirect_stdout(out):
        tap._client = real  # private: the tap builds its client from settings, none to pass
        tap.sync_all()
    return [
        json.loads(line)["record"] for line in out.getvalue().splitlines() if '"RECORD"' in line
    ]


def _state(value: Any) -> dict[str, Any]:
    bookmark = {"replication_key": "updatedAt", "replication_key_value": value}
    return {"bookmarks": {"mandator": bookmark}}


def _list_calls(client: ScriptedClient) -> list[dict[str, Any]]:
    return [v for name, v in client.calls if name == "TapMoovagoMandator"]


@pytest.mark.parametrize(
    "value", [12345, "yesterday", {"at": "2026-01-01T00:00:00Z"}, True, False, 0, "", "2026-01-01"]
)
def test_a_bookmark_that_is_not_a_date_time_is_one_error_naming_stream_and_value(value):
    client = ScriptedClient(_offset_answer([_mandator(1)]))
    with pytest.raises(ConfigError) as caught:
        _sync(client, _state(value))
    text = str(caught.value)
    assert text.startswith(
        f"Stream 'mandator': the bookmark of updatedAt in the state is {json.dumps(value)}, "
        "not an ISO-8601 date-time"
    )
    assert "\n" not in text
    assert _list_calls(client) == []  # nothing read from an unchecked bookmark


def test_a_bookmark_far_in_the_future_is_refused():
    client = ScriptedClient(_offset_answer([_mandator(1)]))
    with pytest.raises(ConfigError, match=r"is \"2999-01-01T00:00:00Z\", after this run's start"):
        _sync(client, _state("2999-01-01T00:00:00Z"))
    assert _list_calls(client) == []


def test_a_bookmark_a_little_ahead_is_capped_to_the_run_start_with_a_warning(caplog):
    before = dt.datetime.now(dt.timezone.utc)
    ahead = format_datetime(before + FUTURE_ALLOWANCE / 2)
    client = ScriptedClient(_offset_answer([_mandator(1)]))
    with caplog.at_level(logging.WARNING):
        records = _sync(client, _state(ahead))
    assert len(records) == 1
    (since,) = {str(v) for call in _list_calls(client) for v in call["filter"].values()} - {
        "team-1"
    }
    assert format_datetime(before) <= since < ahead
    assert any("after this run's start; reading from" in r.getMessage() for r in caplog.records)


def test_a_valid_bookmark_is_the_start_of_the_read():
    client = ScriptedClient(_offset_answer([_mandator(1)]))
    _sync(client, _state("2026-01-01T10:00:00+02:00"))
    values = {str(v) for call in _list_calls(client) for v in call["filter"].values()}
    assert "2026-01-01T08:00:00.000Z" in values


@pytest.mark.parametrize("value", [1767225600, "2026-01-02", "02/01/2026 10:00", True])
def test_an_updated_at_that_is_not_a_date_time_ends_the_stream_naming_field_and_value(value):
    rows = [_mandator(1), {**_mandator(2), "updatedAt": value}, _mandator(3)]
    with pytest.raises(RecordError) as caught:
        _sync(ScriptedClient(_offset_answer(rows)))
    assert str(caught.value).startswith(
        f"Stream 'mandator': record id=\"m0002\": updatedAt is {json.dumps(value)}, not an "
        "ISO-8601 date-time"
    )


def test_an_updated_at_with_an_offset_is_converted_to_the_api_form():
    rows = [{**_mandator(1), "updatedAt": "2026-01-02T03:00:00+02:00"}]
    (record,) = _sync(ScriptedClient(_offset_answer(rows)))
    assert record["updatedAt"] == "2026-01-02T01:00:00.000Z"


def test_records_fit_the_schema_the_tap_emitted():
    rows = [{**_mandator(1), "id": 101, "internalScore": 9, "password": "x"}]
    (record,) = _sync(ScriptedClient(_offset_answer(rows)))
    assert record["id"] == "101"  # an id declared a string, answered as a number
    assert "internalScore" not in record
    assert "password" not in record
    assert set(record) <= set(discover(OFFLINE)["streams"][0]["schema"]["properties"]) | set(
        _mandator(1)
    )


@pytest.mark.parametrize(
    ("field", "value", "declared"),
    [("name", ["a"], "string"), ("name", {"x": 1}, "string"), ("id", 1.5, "string")],
)
def test_a_value_that_cannot_be_made_to_fit_ends_the_stream(field, value, declared):
    rows = [{**_mandator(1), field: value}]
    with pytest.raises(RecordError, match=rf"{field} is .*, which the SCHEMA declares {declared}"):
        _sync(ScriptedClient(_offset_answer(rows)))


@pytest.mark.parametrize("value", [12345, "yesterday", {"a": 1}, True])
def test_the_cli_refuses_a_bad_bookmark_in_one_line_without_traceback(sandbox, tmp_path, value):
    state = tmp_path / "state.json"
    state.write_text(json.dumps(_state(value)))
    catalog = tmp_path / "catalog.json"
    config = {"api_url": sandbox.url, "api_key": sandbox.api_key}
    catalog.write_text(json.dumps(only_streams(discover(config), {"mandator"})))
    proc = run_cli(["--state", str(state), "--catalog", str(catalog)], config, tmp_path)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    # The SDK's own "An unhandled error occurred while syncing" lines come first (as for
    # every fatal tap error); the last line is ours, naming stream and value.
    last = error_lines(proc.stderr)[-1]
    assert last == proc.stderr.strip().splitlines()[-1]
    assert f"Stream 'mandator': the bookmark of updatedAt in the state is {json.dumps(value)}" in (
        last
    )
    assert '"type":"RECORD"' not in proc.stdout.replace(" ", "")


def test_record_errors_are_moovago_errors():
    assert issubclass(RecordError, MoovagoError)  # the CLI's one-line path


@pytest.mark.parametrize("value", [1767225600, "2026-01-02", "not a time"])
def test_a_created_at_that_is_not_a_date_time_ends_the_stream(value):
    rows = [{**_mandator(1), "createdAt": value}]
    with pytest.raises(RecordError, match=rf"createdAt is {json.dumps(value)}, not an ISO-8601"):
        _sync(ScriptedClient(_offset_answer(rows)))


def test_a_created_at_with_an_offset_is_converted_to_the_api_form():
    rows = [{**_mandator(1), "createdAt": "2026-01-01T02:00:00+02:00"}]
    (record,) = _sync(ScriptedClient(_offset_answer(rows)))
    assert record["createdAt"] == "2026-01-01T00:00:00.000Z"
