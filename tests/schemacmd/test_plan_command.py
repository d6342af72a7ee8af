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


def _renamed_writes(tmp_path: Path) -> Path:
    """compose.gql with mutation names no convention reads: only stream_plans can name them."""
    text = COMPOSE.read_text(encoding="utf-8")
    for old, new in [("companyCreateOne", "addCompany"), ("companyUpdateById", "changeCompany")]:
        text = text.replace(old, new)
    path = tmp_path / "renamed.gql"
    path.write_text(text, encoding="utf-8")
    return path


def test_check_reads_the_target_config_with_its_stream_plans(tmp_path):
    schema = _renamed_writes(tmp_path)
    config = {"stream_modes": {"company": "upsert"}, "match_keys": {"company": ["name"]}}
    path = tmp_path / "target.json"
    path.write_text(json.dumps(config))
    argv = ["check", "--schema", str(schema), "--target-config", str(path), "--format", "json"]
    code, text = run(argv)
    assert code == 1
    assert [i["reason"] for i in json.loads(text)["issues"]] == [
        "no mutation for stream 'company' in renamed.gql"
    ]
    writes = {"create": "addCompany", "update": "changeCompany"}
    # A plan of the (read-only) team does not make the check think the target writes it.
    plans = {"company": {"writes": writes}, "team": {"id_field": "_id"}}
    path.write_text(json.dumps({**config, "stream_plans": plans}))
    code, text = run(argv)
    assert (code, json.loads(text)["issues"]) == (0, [])


@pytest.mark.parametrize("command", ["check", "doctor"])
def test_a_wrong_override_in_any_connector_config_is_one_line(
    tmp_path, capsys: pytest.CaptureFixture[str], command: str
):
    config = {
        "api_url": "http://127.0.0.1:1/graphql",
        "api_key": "k" * 12,
        "schema_path": str(COMPOSE),
        "stream_plans": {"company": {"writes": {"create": "nope"}}},
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    argv = {
        "check": ["check", "--schema", str(COMPOSE), "--target-config", str(path)],
        "doctor": ["doctor", "--config", str(path)],
    }[command]
    code, out = run(argv)
    err = capsys.readouterr().err
    assert (code, out, err.count("\n")) == (2, "", 1), err
    assert err.startswith("moovago-schema: error: Setting stream_plans.company.writes.create: ")
