"""`field_policies`: what an update may write per field, decided by the pure decider."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from moovago_api.errors import ConfigError
from moovago_api.schema import load_schema
from target_moovago.decide import Decider, InputValidator, Kind, Policy, Row
from target_moovago.index import DEFAULT_MATCH_KEYS, FieldMapper, KeySpec, RemoteIndex
from target_moovago.target import TargetMoovago
from tests.target.helpers import entity_rows, stream_messages

BASE = {"api_url": "http://127.0.0.1:9/graphql", "api_key": "k"}  # nothing listens there


# the decider (pure) ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema():
    return load_schema()


def plan(schema, stored, record, policies):
    index = RemoteIndex(
        ["name", "note", "email"], [KeySpec.parse(DEFAULT_MATCH_KEYS["company"][0])]
    )
    index.add("1", stored)
    decider = Decider(
        index=index,
        create_validator=InputValidator(schema.input_json_schema("CompanyCreateInput")),
        update_validator=InputValidator(schema.input_json_schema("CompanyUpdateDataInput")),
        policies={k: Policy(v) for k, v in policies.items()},
    )
    mapper = FieldMapper(schema.input_json_schema("CompanyCreateInput")["properties"])
    (action,) = decider.decide([Row(1, record, mapper.convert(record))])
    return action


@pytest.mark.parametrize(
    ("stored_note", "row_note", "written"),
    [(None, "new", True), ("", "new", True), ("kept", "new", False), (None, None, False)],
)
def test_fill_empty_writes_only_over_an_empty_value(schema, stored_note, row_note, written):
    stored = {"customerCode": "C1", "name": "Acme", "note": stored_note}
    row = {"customerCode": "C1", "name": "Acme", "note": row_note}
    action = plan(schema, stored, row, {"note": "fill_empty"})
    if written:
        assert (action.kind, action.data) == (Kind.UPDATE, {"note": row_note})
    else:
        assert action.kind is Kind.UNCHANGED
        assert action.held == ({"note": "fill_empty"} if row_note else {})


def test_create_only_never_makes_a_row_changed_but_other_fields_still_update(schema):
    stored = {"customerCode": "C1", "name": "Acme", "email": "a@x.fr"}
    only_email = plan(schema, stored, {**stored, "email": "b@x.fr"}, {"email": "create_only"})
    assert only_email.kind is Kind.UNCHANGED
    assert only_email.held == {"email": "create_only"}
    both = {**stored, "email": "b@x.fr", "name": "Acme SA"}
    action = plan(schema, stored, both, {"email": "create_only"})
    assert (action.kind, action.data, action.held) == (
        Kind.UPDATE,
        {"name": "Acme SA"},
        {"email": "create_only"},
    )


def test_a_create_writes_every_field_whatever_its_policy(schema):
    stored = {"customerCode": "OTHER", "name": "Other"}
    row = {"customerCode": "C2", "name": "New", "note": "n", "email": "e@x.fr"}
    action = plan(schema, stored, row, {"note": "fill_empty", "email": "create_only"})
    assert action.kind is Kind.CREATE
    assert action.data["note"] == "n"
    assert action.data["email"] == "e@x.fr"


# the setting, checked at start ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("policies", "words"),
    [
        ({"invoice": {"note": "fill_empty"}}, "field_policies: stream 'invoice'"),
        ({"team": {"name": "fill_empty"}}, "field_policies: stream 'team'"),
        ({"company": {"nickname": "create_only"}}, "field_policies: company.nickname"),
    ],
)
def test_an_unknown_stream_or_field_is_refused_at_start(policies, words):
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        TargetMoovago(config={**BASE, "field_policies": policies})


def test_policies_under_the_stream_and_the_entity_name_both_apply():
    policies = {"companyContact": {"note": "fill_empty"}, "contact": {"email": "create_only"}}
    remote = TargetMoovago(config={**BASE, "field_policies": policies}).run.remote
    assert remote.field_policies(remote.schema.entity("contact")) == {
        "note": Policy.FILL_EMPTY,
        "email": Policy.CREATE_ONLY,
    }


def test_the_cli_refuses_a_bad_setting_in_one_line_with_exit_1(tmp_path: Path):
    cli = str(Path(sys.executable).parent / "target-moovago")
    for policies, words in [
        ({"company": {"note": "sometimes"}}, "field_policies"),
        ({"company": {"nickname": "fill_empty"}}, "field_policies: company.nickname"),
    ]:
        config = tmp_path / "config.json"
        config.write_text(json.dumps({**BASE, "field_policies": policies}))
        done = subprocess.run(
            [cli, "--config", str(config)],
            input="",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=tmp_path,
        )
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        errors = [line for line in done.stderr.splitlines() if words in line]
        assert len(errors) == 1, done.stderr


# against the sandbox --------------------------------------------------------------------------


@pytest.fixture
def box(sandbox_factory):
    return sandbox_factory(companies=5)


def by_code(handle):
    return {c["customerCode"]: c for c in entity_rows(handle, "company") if c.get("customerCode")}


def test_fill_empty_and_create_only_against_the_sandbox(box, run_target, caplog):
    seed = [
        {"customerCode": "FP-1", "name": "One", "note": "typed by a rep", "email": "one@x.fr"},
        {"customerCode": "FP-2", "name": "Two", "email": "two@x.fr"},
    ]
    run_target(box, stream_messages("company", seed))
    assert by_code(box)["FP-2"]["note"] is None
    policies = {"company": {"note": "fill_empty", "email": "create_only"}}
    rows = [
        {"customerCode": "FP-1", "name": "One", "note": "warehouse", "email": "new1@x.fr"},
        {"customerCode": "FP-2", "name": "Two", "note": "warehouse", "email": "new2@x.fr"},
        {"customerCode": "FP-3", "name": "Three", "note": "warehouse", "email": "three@x.fr"},
    ]
    messages = stream_messages("company", rows)
    with caplog.at_level(logging.INFO):
        dry = run_target(box, messages, field_policies=policies, dry_run=True)
    assert dry.counts("company")["held_by_policy"] == {"email": 2, "note": 1}
    samples = [r.getMessage() for r in caplog.records if r.getMessage().startswith("dry run")]
    assert any("kept by field_policies" in s and "'email': 'create_only'" in s for s in samples)
    first = run_target(box, messages, field_policies=policies)
    counts = first.counts("company")
    assert (counts["created"], counts["updated"], counts["unchanged"]) == (1, 1, 1)
    stored = by_code(box)
    assert stored["FP-1"]["note"] == "typed by a rep"  # not empty: left alone
    assert stored["FP-2"]["note"] == "warehouse"  # empty: filled
    assert (stored["FP-1"]["email"], stored["FP-2"]["email"]) == ("one@x.fr", "two@x.fr")
    assert (stored["FP-3"]["email"], stored["FP-3"]["note"]) == ("three@x.fr", "warehouse")
    mutation_requests = box.stats()["mutation_requests"]
    again = run_target(box, messages, field_policies=policies)
    assert again.counts("company")["unchanged"] == 3
    assert box.stats()["mutation_requests"] == mutation_requests  # no request at all
