"""Broken Singer input: one clear error naming the input line and the stream, nothing written."""

from __future__ import annotations

import json

import pytest
from singer_sdk.exceptions import RecordsWithoutSchemaException

from target_moovago.ledger import UnsupportedStreamError
from target_moovago.reader import InputError
from tests.target.helpers import mutation_count, schema_message

SCHEMA = json.dumps(schema_message("company", ["customerCode", "name"]))
ROW = json.dumps({"type": "RECORD", "stream": "company", "record": {"customerCode": "R-1"}})


@pytest.fixture
def box(sandbox_factory):
    return sandbox_factory(companies=3)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([SCHEMA, ROW, '{"type": "RECORD", "stream": "co'], "input line 3 is not valid JSON"),
        (
            [SCHEMA, "[1, 2]"],
            'input line 2 is an array; a Singer message is a JSON object with a "type"',
        ),
        ([SCHEMA, '{"stream": "company"}'], 'input line 2: the message has no "type"'),
        ([SCHEMA, '{"type": "BOOM"}'], "input line 2: unknown message type 'BOOM'"),
        (
            [SCHEMA, '{"type": "RECORD", "stream": "company", "record": ["R-1"]}'],
            "input line 2, stream 'company': the \"record\" of a RECORD message must be an "
            "object, not an array",
        ),
        (
            [SCHEMA, '{"type": "RECORD", "stream": "company"}'],
            "input line 2, stream 'company': the RECORD message has no \"record\"",
        ),
        (
            ['{"type": "SCHEMA", "stream": "company", "schema": "x"}'],
            "input line 1, stream 'company': the SCHEMA needs a \"schema\" object with "
            '"properties", got a string',
        ),
        ([ROW], "input line 1, stream 'company': a RECORD before the SCHEMA of 'company'"),
    ],
)
def test_broken_input_is_one_error_naming_line_and_stream(box, run_target, lines, expected):
    before = mutation_count(box)
    result = run_target(box, "\n".join(lines) + "\n", raises=False)
    assert isinstance(result.error, InputError)
    assert str(result.error).startswith(expected)
    assert mutation_count(box) == before


def test_record_before_schema_is_still_the_sdk_exception(box, run_target):
    result = run_target(box, ROW + "\n", raises=False)
    assert isinstance(result.error, RecordsWithoutSchemaException)


def test_refused_stream_names_the_input_line(box, run_target):
    team = json.dumps(schema_message("team", ["id"]))
    result = run_target(box, f"{SCHEMA}\n{team}\n", raises=False, read_only_streams="error")
    assert isinstance(result.error, UnsupportedStreamError)
    assert str(result.error).startswith("input line 2: stream 'team' is read-only")
