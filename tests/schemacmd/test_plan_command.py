"""`moovago-schema plan`: every stream's plan, with the config's `stream_plans` applied, and
every root field that is not a stream with the reason."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from moovago_schema.cli import main

COMPOSE = Path(__file__).resolve().parents[1] / "schema_variants" / "families" / "compose.gql"


def run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    return main(argv, out=out), out.getvalue()


def test_the_bundled_file_prints_its_five_streams_with_roots_paging_and_mutations():
    code, text = run(["plan"])
    assert code == 0
    lines = text.splitlines()
    assert lines[0].startswith("5 streams in ")
    streams = [line.split(":")[0] for line in lines[2:7]]
    assert streams == ["team", "company", "contact", "mandator", "turnover"]
    company = lines[3]
    assert company.startswith("company: Query.companyList; id id; paging offset(skip/limit);")
    assert "writes create Mutation.company.create, update Mutation.company.update" in company


def test_json_and_an_override_from_the_config_file(tmp_path):
    config = tmp_path / "config.json"
    paging = {"kind": "offset", "offset_arg": "offset", "size_arg": "limit"}
    config.write_text(json.dumps({"stream_plans": {"company": {"paging": paging}}}))
    code, text = run(["plan", "--config", str(config), "--format", "json"])
    assert code == 0
    payload = json.loads(text)
    company = next(s for s in payload["streams"] if s["stream_name"] == "company")
    assert company["paging"]["offset_arg"] == "offset"
    assert company["overridden"] == ["paging"]
    assert company["writes"]["create"]["mutation"] == "Mutation.company.create"
    code, text = run(["plan"])
    assert "overridden" not in text


def test_root_fields_that_are_not_streams_are_printed_with_the_reason():
    code, text = run(["plan", "--schema", str(COMPOSE)])
    assert code == 0
    assert text.splitlines()[-2:] == [
        "root fields that are not streams",
        "Query.teams: Query.team already reads Team",
    ]
    assert "mandator: Query.mandatorMany;" in text
    assert "DEPRECATED (Use mandatorPagination" in text


def test_a_wrong_override_is_one_line_and_exit_2(tmp_path, capsys: pytest.CaptureFixture[str]):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"stream_plans": {"company": {"root_field": "nope"}}}))
    code, _ = run(["plan", "--config", str(config)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Setting stream_plans.company.root_field: Query has no field 'nope'" in err
