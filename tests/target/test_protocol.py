"""Every protocol problem is one line naming the input line (issue 13 item 4): message order and
shape for SCHEMA, RECORD, STATE, ACTIVATE_VERSION and BATCH, nesting depth, BATCH files."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from target_moovago.reader import MAX_DEPTH, InputError, MoovagoReader
from target_moovago.target import TargetMoovago
from tests.target.helpers import entity_rows, mutation_count, schema_message

SCHEMA = json.dumps(schema_message("company", ["customerCode", "name", "note"]))
ROW = json.dumps(
    {"type": "RECORD", "stream": "company", "record": {"customerCode": "P-1", "name": "a"}}
)
TARGET_CLI = str(Path(sys.executable).parent / "target-moovago")


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def deep_record(depth: int) -> str:
    """A RECORD message whose `note` makes the whole message `depth` levels deep."""
    inner = nested(depth - 2)  # message -> record -> note
    return (
        '{"type": "RECORD", "stream": "company", "record": '
        f'{{"customerCode": "P-DEEP", "name": "deep", "note": {inner}}}}}'
    )


def batch(stream: str, manifest: list, encoding: dict | None = None) -> str:
    return json.dumps(
        {
            "type": "BATCH",
            "stream": stream,
            "encoding": encoding or {"format": "jsonl", "compression": "gzip"},
            "manifest": manifest,
        }
    )


def write_batch_file(path: Path, lines: list[str]) -> str:
    with gzip.open(path, "wt", encoding="utf-8") as out:
        out.write("".join(line + "\n" for line in lines))
    return path.as_uri()


@pytest.fixture
def box(sandbox_factory):
    return sandbox_factory(companies=2)


def fails_with(box, run_target, lines: list[str], expected: str) -> str:
    before = mutation_count(box)
    result = run_target(box, "\n".join(lines) + "\n", raises=False)
    assert isinstance(result.error, InputError), result.error
    text = str(result.error)
    assert text.startswith(expected), text
    assert "\n" not in text
    assert mutation_count(box) == before, "rows were written from a broken input"
    return text


def test_activate_version_before_its_schema(box, run_target):
    av = json.dumps({"type": "ACTIVATE_VERSION", "stream": "company", "version": 1})
    fails_with(
        box,
        run_target,
        [av, SCHEMA, ROW],
        "input line 1, stream 'company': an ACTIVATE_VERSION before the SCHEMA of 'company'",
    )


def test_activate_version_needs_an_integer_version(box, run_target):
    av = json.dumps({"type": "ACTIVATE_VERSION", "stream": "company", "version": "v1"})
    fails_with(
        box,
        run_target,
        [SCHEMA, ROW, av],
        "input line 3, stream 'company': the \"version\" of an ACTIVATE_VERSION message must be "
        "an integer, not a string",
    )


def test_activate_version_after_its_schema_is_accepted(box, run_target):
    av = json.dumps({"type": "ACTIVATE_VERSION", "stream": "company", "version": 7})
    result = run_target(box, "\n".join([SCHEMA, av, ROW]) + "\n")
    assert result.counts("company")["created"] == 1


def test_schema_key_properties_must_be_a_list_of_strings(box, run_target):
    bad = json.dumps({**schema_message("company", ["name"]), "key_properties": "customerCode"})
    fails_with(
        box,
        run_target,
        [bad],
        "input line 1, stream 'company': the \"key_properties\" of a SCHEMA message must be an "
        "array of strings, not a string",
    )


def test_batch_before_its_schema(box, run_target, tmp_path):
    url = write_batch_file(tmp_path / "b.jsonl.gz", ['{"customerCode": "B-1", "name": "b"}'])
    fails_with(
        box,
        run_target,
        [batch("company", [url]), SCHEMA],
        "input line 1, stream 'company': a BATCH before the SCHEMA of 'company'",
    )


def test_batch_naming_a_missing_file_writes_nothing(box, run_target, tmp_path):
    good = write_batch_file(tmp_path / "a.jsonl.gz", ['{"customerCode": "B-1", "name": "b"}'])
    missing = (tmp_path / "missing.jsonl.gz").as_uri()
    text = fails_with(
        box,
        run_target,
        [SCHEMA, ROW, batch("company", [good, missing])],
        f"input line 3, stream 'company': BATCH file {missing} does not exist",
    )
    assert "good" not in text


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        (['{"customerCode": "B-1", "name": "b"}', "{not json"], "line 2 is not valid JSON"),
        (['["B-1"]'], "line 1 is an array, not a record object"),
        ([nested(MAX_DEPTH + 5)], "line 1 is nested too deeply"),
    ],
)
def test_a_bad_line_in_a_batch_file_writes_nothing_of_it(box, run_target, tmp_path, lines, problem):
    url = write_batch_file(tmp_path / "bad.jsonl.gz", lines)
    fails_with(
        box,
        run_target,
        [SCHEMA, batch("company", [url])],
        f"input line 2, stream 'company': BATCH file {url} {problem}",
    )


def test_an_unsupported_batch_encoding(box, run_target, tmp_path):
    fails_with(
        box,
        run_target,
        [SCHEMA, batch("company", ["x.csv"], {"format": "csv"})],
        "input line 2, stream 'company': unsupported BATCH encoding",
    )


def test_a_valid_batch_lands(box, run_target, tmp_path):
    url = write_batch_file(
        tmp_path / "ok.jsonl.gz",
        ['{"customerCode": "B-1", "name": "one"}', '{"customerCode": "B-2", "name": "two"}'],
    )
    run_target(box, "\n".join([SCHEMA, batch("company", [url])]) + "\n")
    codes = {r["customerCode"] for r in entity_rows(box, "company")}
    assert {"B-1", "B-2"} <= codes


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100_000])
def test_a_record_nested_too_deep_is_one_line(box, run_target, depth):
    fails_with(
        box, run_target, [SCHEMA, ROW, deep_record(depth)], "input line 3 is nested too deeply"
    )


def test_a_record_at_the_depth_limit_is_a_row_level_reject(box, run_target):
    result = run_target(box, "\n".join([SCHEMA, deep_record(MAX_DEPTH), ROW]) + "\n")
    (reject,) = result.rejects
    assert reject["field"] == "note"
    assert result.counts("company")["created"] == 1


def test_the_target_reads_input_through_the_checking_reader():
    assert TargetMoovago.message_reader_class is MoovagoReader


@pytest.mark.slow
def test_deep_record_from_the_command_line_exits_1_with_one_line(box, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"api_url": box.url, "api_key": box.api_key}))
    text = "\n".join([SCHEMA, deep_record(100_000)]) + "\n"
    run = subprocess.run(
        [TARGET_CLI, "--config", str(config)],
        input=text,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    last = [line for line in run.stderr.splitlines() if line.strip()][-1]
    assert last == (
        f"target-moovago: error: input line 2 is nested too deeply (more than {MAX_DEPTH} "
        "levels of objects and arrays)"
    )


def test_key_properties_naming_columns_records_lack_is_a_warning(box, run_target, caplog):
    schema = json.dumps(schema_message("company", ["customerCode", "name"], ["companyKey"]))
    rows = [
        json.dumps({"type": "RECORD", "stream": "company", "record": r})
        for r in ({"customerCode": "KP-1", "name": "one"}, {"customerCode": "KP-2", "name": "two"})
    ]
    result = run_target(box, "\n".join([schema, *rows]) + "\n")
    assert result.counts("company")["created"] == 2
    codes = {r["customerCode"] for r in entity_rows(box, "company")}
    assert {"KP-1", "KP-2"} <= codes
    warnings = [r.getMessage() for r in caplog.records if "key_properties" in r.getMessage()]
    assert warnings == [
        "Stream company: key_properties name columns records lack (companyKey); ignored: the "
        "target matches rows by id and match_keys"
    ]


def test_a_batch_file_is_read_as_checked_whatever_batch_config_says(box, run_target, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    checked = write_batch_file(
        tmp_path / "a" / "rows.jsonl.gz", ['{"customerCode": "BC-REAL", "name": "r"}']
    )
    write_batch_file(
        tmp_path / "b" / "rows.jsonl.gz", ['{"customerCode": "BC-OTHER", "name": "o"}']
    )
    storage = {"root": (tmp_path / "b").as_uri()}  # the SDK would open rows.jsonl.gz there
    batch_config = {"encoding": {"format": "jsonl", "compression": "gzip"}, "storage": storage}
    run_target(
        box, "\n".join([SCHEMA, batch("company", [checked])]) + "\n", batch_config=batch_config
    )
    codes = {r.get("customerCode") for r in entity_rows(box, "company")}
    assert "BC-REAL" in codes
    assert "BC-OTHER" not in codes
