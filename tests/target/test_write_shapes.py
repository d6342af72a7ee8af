"""The target writes whatever mutation layout the schema file declares (issue 12 items 2, 4, 5).

Each WRITE variant of tests/schema_variants/shapes/ is served by a sandbox built from it
(`moovago-sandbox serve --schema FILE`); a push creates, updates and deletes through the
variant's mutations, and a rerun leaves everything unchanged.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from moovago_api.schema import DEFAULT_SCHEMA_PATH
from tests.target.helpers import entity_rows, mutation_count, mutations, stream_messages

SHAPES = Path(__file__).resolve().parents[1] / "schema_variants" / "shapes"
BIN = Path(sys.executable).parent
LAYOUT_VARIANTS = [
    "toplevel_mutations",
    "two_arg_update",
    "data_argument",
    "record_payload",
    "id_payload",
    "deprecated_key",
]


def served(sandbox_factory, name: str):
    path = SHAPES / f"{name}.gql"
    return sandbox_factory(companies=6, extra_args=["--schema", str(path)]), str(path)


def by_code(handle, code):
    return [c for c in entity_rows(handle, "company") if c.get("customerCode") == code]


@pytest.mark.slow
@pytest.mark.parametrize("name", LAYOUT_VARIANTS)
def test_a_push_creates_updates_deletes_then_a_rerun_writes_nothing(
    sandbox_factory, run_target, name
):
    box, schema_path = served(sandbox_factory, name)
    companies = [
        {"customerCode": f"WS-{n}", "name": f"Shape {n}", "city": "Niort"} for n in range(3)
    ]
    contacts = [
        {"companyCustomerCode": f"WS-{n}", "lastName": f"Durand {n}", "email": f"d{n}@x.fr"}
        for n in range(3)
    ]
    messages = [*stream_messages("company", companies), *stream_messages("contact", contacts)]
    first = run_target(box, messages, schema_path=schema_path)
    assert first.counts("company")["created"] == 3, first.rejects
    assert first.counts("contact")["created"] == 3, first.rejects
    assert not first.rejects
    for n in range(3):
        (company,) = by_code(box, f"WS-{n}")
        assert company["city"] == "Niort"
        stored = [c for c in entity_rows(box, "companyContact") if c["companyId"] == company["id"]]
        assert [c["lastName"] for c in stored] == [f"Durand {n}"]

    before = mutation_count(box)
    rerun = run_target(box, messages, schema_path=schema_path)
    assert rerun.counts("company")["unchanged"] == 3
    assert rerun.counts("contact")["unchanged"] == 3
    assert rerun.counts("company").get("created", 0) == 0
    assert mutation_count(box) == before

    changed = [dict(companies[0], city="Brest"), companies[1], companies[2]]
    update = run_target(box, stream_messages("company", changed), schema_path=schema_path)
    assert update.counts("company")["updated"] == 1
    assert by_code(box, "WS-0")[0]["city"] == "Brest"

    (gone,) = by_code(box, "WS-2")
    deleted = [{"id": gone["id"], "_sdc_deleted_at": "2026-11-02T10:00:00Z"}]
    delete = run_target(
        box, stream_messages("company", deleted), schema_path=schema_path, hard_delete=True
    )
    assert delete.counts("company")["deleted"] == 1, delete.rejects
    assert by_code(box, "WS-2") == []
    assert mutations(box) == {"create": 6, "update": 1, "delete": 1}


@pytest.mark.slow
def test_a_read_only_parent_does_not_refuse_its_children(sandbox_factory, run_target, caplog):
    box, schema_path = served(sandbox_factory, "readonly_parent")
    company = next(c for c in entity_rows(box, "company") if c.get("customerCode"))
    contacts = [
        {"companyId": company["id"], "lastName": "Martin", "email": "m@x.fr"},
        {"companyCustomerCode": company["customerCode"], "lastName": "Petit", "email": "p@x.fr"},
    ]
    with caplog.at_level(logging.WARNING):
        first = run_target(box, stream_messages("contact", contacts), schema_path=schema_path)
    assert first.counts("contact")["created"] == 2, first.rejects
    mine = [c for c in entity_rows(box, "companyContact") if c["companyId"] == company["id"]]
    assert {"Martin", "Petit"} <= {c["lastName"] for c in mine}
    rerun = run_target(box, stream_messages("contact", contacts), schema_path=schema_path)
    assert rerun.counts("contact")["unchanged"] == 2


def test_a_missing_parent_only_disables_resolving_it(tmp_path, sandbox_factory, run_target, caplog):
    # contact without any company entity in the file: companyId must be given as is
    sdl, removed = re.subn(
        r'  """\n  Companies of a team\..*?\): \[Company!\]!\n',
        "",
        DEFAULT_SCHEMA_PATH.read_text(encoding="utf-8"),
        flags=re.DOTALL,
    )
    assert removed == 1
    path = tmp_path / "no_company_list.gql"
    path.write_text(sdl, encoding="utf-8")
    box = sandbox_factory(companies=3)
    company = entity_rows(box, "company")[0]
    contacts = [
        {"companyId": company["id"], "lastName": "Sans", "email": "s@x.fr"},
        {"companyCustomerCode": "NOPE", "lastName": "Ref", "email": "r@x.fr"},
    ]
    with caplog.at_level(logging.WARNING):
        result = run_target(box, stream_messages("contact", contacts), schema_path=str(path))
    assert result.counts("contact")["created"] == 1
    (reject,) = result.rejects
    assert reject["field"] == "companyId"
    warnings = [r.getMessage() for r in caplog.records if "by natural key" in r.getMessage()]
    assert len(warnings) == 1
    assert "company" in warnings[0]
    assert str(path) in warnings[0]


@pytest.mark.slow
def test_an_entity_without_a_default_key_names_match_keys(sandbox_factory, run_target, caplog):
    box, schema_path = served(sandbox_factory, "no_default_key")
    company = entity_rows(box, "company")[0]
    member = box.export()["team"][0]["members"][0]["id"]
    visits = [
        {
            "companyId": company["id"],
            "memberId": member,
            "visitedAt": f"2026-11-0{n + 1}T09:00:00.000Z",
            "report": "ok",
        }
        for n in range(2)
    ]
    with caplog.at_level(logging.WARNING):
        refused = run_target(box, stream_messages("visit", visits), schema_path=schema_path)
    assert refused.counts("visit").get("created", 0) == 0
    assert len(refused.rejects) == 2
    for reject in refused.rejects:
        assert "match_keys" in reject["reason"]
        assert '{"visit": [' in reject["reason"]
    start = [r.getMessage() for r in caplog.records if "has no match key" in r.getMessage()]
    assert len(start) == 1
    assert "match_keys" in start[0]

    keys = {"visit": ["companyId", "memberId", "visitedAt"]}
    created = run_target(
        box, stream_messages("visit", visits), schema_path=schema_path, match_keys=keys
    )
    assert created.counts("visit")["created"] == 2, created.rejects
    rerun = run_target(
        box, stream_messages("visit", visits), schema_path=schema_path, match_keys=keys
    )
    assert rerun.counts("visit")["unchanged"] == 2


@pytest.mark.slow
def test_a_deprecated_default_key_is_warned_at_start_naming_match_keys(
    sandbox_factory, run_target, caplog
):
    box, schema_path = served(sandbox_factory, "deprecated_key")
    rows = [{"customerCode": "DK-1", "name": "Deprecated key"}]
    with caplog.at_level(logging.WARNING):
        result = run_target(box, stream_messages("company", rows), schema_path=schema_path)
    assert result.counts("company")["created"] == 1
    warnings = [r.getMessage() for r in caplog.records if "match key" in r.getMessage()]
    assert len(warnings) == 1
    assert "Company.customerCode is deprecated" in warnings[0]
    assert 'set match_keys, e.g. {"company": ["name"]}' in warnings[0]


def _schema_line(stream: str, columns: list[str]) -> str:
    message = {
        "type": "SCHEMA",
        "stream": stream,
        "schema": {"type": "object", "properties": {c: {} for c in columns}},
        "key_properties": [],
    }
    return json.dumps(message) + "\n"


@pytest.mark.parametrize(
    ("old", "new", "stream", "coordinate"),
    [
        (
            "  update(input: CompanyContactUpdateInput!): CompanyContactPayload",
            "  update(note: String): CompanyContactPayload",
            "contact",
            "Mutation.companyContact.update",
        ),
        (
            "  create(input: CompanyCreateInput!): CompanyPayload",
            "  create(input: CompanyCreateInput!): [CompanyPayload]",
            "company",
            "Mutation.company.create",
        ),
    ],
)
def test_a_mutation_that_cannot_be_built_is_one_line_and_exit_1(
    tmp_path, old, new, stream, coordinate
):
    sdl = DEFAULT_SCHEMA_PATH.read_text(encoding="utf-8")
    assert old in sdl
    path = tmp_path / "broken.gql"
    path.write_text(sdl.replace(old, new), encoding="utf-8")
    config = tmp_path / "config.json"
    # Nothing listens there: the mutation is refused before any request.
    config.write_text(
        json.dumps(
            {"api_url": "http://127.0.0.1:9/graphql", "api_key": "k", "schema_path": str(path)}
        )
    )
    done = subprocess.run(
        [str(BIN / "target-moovago"), "--config", str(config)],
        input=_schema_line(stream, ["name", "lastName"]),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "AssertionError" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith("target-moovago: error: ")
    assert f"{coordinate} in {path}" in errors[0]
    assert done.stdout == ""
