"""Matching, modes, deletes, field names and references, against a fresh sandbox."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.target.helpers import entity_rows, mutation_count, record_messages, stream_messages


@pytest.fixture
def box(sandbox_factory):
    return sandbox_factory(companies=12)


def by_code(handle, code):
    return [c for c in entity_rows(handle, "company") if c.get("customerCode") == code]


def test_new_rows_are_created_and_a_rerun_writes_nothing(box, run_target):
    rows = [{"customerCode": f"NEW-{n}", "name": f"New {n}", "city": "Niort"} for n in range(4)]
    before = len(entity_rows(box, "company"))
    first = run_target(box, stream_messages("company", rows))
    assert first.counts("company")["created"] == 4
    assert len(entity_rows(box, "company")) == before + 4
    assert by_code(box, "NEW-2")[0]["city"] == "Niort"
    mutations = mutation_count(box)
    second = run_target(box, stream_messages("company", rows))
    assert second.counts("company")["unchanged"] == 4
    assert second.counts("company")["created"] == 0
    assert mutation_count(box) == mutations


def test_only_rows_with_a_changed_field_are_updated(box, run_target):
    existing = [c for c in entity_rows(box, "company") if c.get("customerCode")][:3]
    rows = [{"customerCode": c["customerCode"], "name": c["name"]} for c in existing]
    rows[1]["name"] = "Renamed SARL"
    mutations = mutation_count(box)
    result = run_target(box, stream_messages("company", rows))
    assert result.counts("company")["updated"] == 1
    assert result.counts("company")["unchanged"] == 2
    assert mutation_count(box) == mutations + 1
    assert by_code(box, existing[1]["customerCode"])[0]["name"] == "Renamed SARL"


def test_a_row_with_id_updates_that_record(box, run_target):
    target = entity_rows(box, "company")[0]
    result = run_target(box, stream_messages("company", [{"id": target["id"], "city": "Brest"}]))
    assert result.counts("company")["updated"] == 1
    stored = next(c for c in entity_rows(box, "company") if c["id"] == target["id"])
    assert stored["city"] == "Brest"


def test_two_remote_matches_are_rejected_as_ambiguous(box, run_target):
    twins = [{"name": f"Twin {n}", "customerCode": "TWIN"} for n in range(2)]
    run_target(box, stream_messages("company", twins), match_keys={"company": ["name"]})
    assert len(by_code(box, "TWIN")) == 2
    result = run_target(box, stream_messages("company", [{"customerCode": "TWIN", "name": "X"}]))
    assert result.counts("company")["rejected"] == 1
    (reject,) = result.rejects
    assert "ambiguous" in reject["reason"]
    assert reject["field"] == "customerCode"


def test_the_later_of_two_rows_with_the_same_key_wins(box, run_target):
    rows = [{"customerCode": "DUP-1", "name": "first"}, {"customerCode": "dup-1", "name": "last"}]
    # Keys differing in case are one key only with the opt-in (exact by default).
    result = run_target(
        box, stream_messages("company", rows), match_normalize={"company": ["trim", "case"]}
    )
    assert result.counts("company")["superseded"] == 1
    assert result.counts("company")["created"] == 1
    assert [c["name"] for c in by_code(box, "dup-1")] == ["last"]


def test_warehouse_spellings_and_unknown_columns(box, run_target, caplog):
    rows = [
        {"CUSTOMER_CODE": "W-1", "name": "Ware", "postal_code": "79000", "colour": "red"},
        {"CUSTOMER_CODE": "W-2", "name": "House", "postal_code": "75001", "colour": "blue"},
    ]
    with caplog.at_level(logging.WARNING):
        result = run_target(box, stream_messages("company", rows))
    assert result.counts("company")["created"] == 2
    assert by_code(box, "W-1")[0]["postalCode"] == "79000"
    assert result.counts("company")["unknown_columns"] == ["colour"]
    warnings = [r for r in caplog.records if "colour" in r.getMessage()]
    assert len(warnings) == 1


def test_entity_name_is_accepted_as_stream_name_and_team_is_refused(box, run_target):
    company = entity_rows(box, "company")[0]
    contact = {"companyId": company["id"], "lastName": "Martin", "email": "m@example.test"}
    result = run_target(box, stream_messages("companyContact", [contact]))
    assert result.counts("contact")["created"] == 1
    team = stream_messages("team", [{"id": "x", "name": "t"}])
    refused = run_target(box, team, raises=False, read_only_streams="error")
    assert "read-only" in str(refused.error)
    unknown = run_target(box, stream_messages("invoices", [{"id": "x"}]), raises=False)
    assert "not a Moovago entity" in str(unknown.error)
    assert "company" in str(unknown.error)


def test_a_read_only_stream_is_skipped_with_one_warning_and_counted(box, run_target, caplog):
    team = stream_messages("team", [{"id": "x", "name": "t"}, {"id": "y", "name": "u"}])
    company = stream_messages("company", [{"customerCode": "RO-1", "name": "Read Only SA"}])
    result = run_target(box, [*team, *company, *record_messages("team", [{"id": "z"}])])
    assert result.error is None
    assert result.counts("company")["created"] == 1
    assert "team" not in result.summary["streams"]
    assert result.summary["read_only_skipped"] == {"team": 3}
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "'team'" in r.message]
    assert len(warnings) == 1
    assert "read-only" in warnings[0].message


def test_contacts_name_their_company_by_its_customer_code(box, run_target):
    messages = [
        *stream_messages("company", [{"customerCode": "PARENT-1", "name": "Parent SA"}]),
        *stream_messages(
            "contact",
            [
                {"company_customer_code": "PARENT-1", "lastName": "Durand", "email": "d@x.test"},
                {"company_customer_code": "NOPE", "lastName": "Nobody", "email": "n@x.test"},
            ],
        ),
    ]
    result = run_target(box, messages)
    (parent,) = by_code(box, "PARENT-1")
    contacts = [c for c in entity_rows(box, "companyContact") if c["lastName"] == "Durand"]
    assert [c["companyId"] for c in contacts] == [parent["id"]]
    assert result.counts("contact")["created"] == 1
    (reject,) = result.rejects
    assert reject["field"] == "company_customer_code"
    assert "NOPE" in reject["reason"]


def test_modes_create_only_and_update_only(box, run_target):
    existing = next(c for c in entity_rows(box, "company") if c.get("customerCode"))
    rows = [
        {"customerCode": existing["customerCode"], "name": "Changed"},
        {"customerCode": "MODE-NEW", "name": "Brand new"},
    ]
    create_only = run_target(
        box, stream_messages("company", rows), stream_modes={"company": "create_only"}
    )
    assert create_only.counts("company")["created"] == 1
    assert create_only.counts("company")["rejected"] == 1
    assert "create_only" in create_only.rejects[0]["reason"]
    rows[1]["customerCode"] = "MODE-OTHER"
    update_only = run_target(
        box, stream_messages("company", rows), stream_modes={"company": "update_only"}
    )
    assert update_only.counts("company")["updated"] == 1
    assert update_only.counts("company")["rejected"] == 1
    assert by_code(box, "MODE-OTHER") == []


def test_deleted_rows_are_skipped_unless_hard_delete(box, run_target):
    victim = next(c for c in entity_rows(box, "company") if c.get("customerCode"))
    row = {"customerCode": victim["customerCode"], "_sdc_deleted_at": "2026-11-01T00:00:00Z"}
    soft = run_target(box, stream_messages("company", [row]))
    assert soft.counts("company")["skipped_deletes"] == 1
    assert by_code(box, victim["customerCode"])
    hard = run_target(box, stream_messages("company", [row]), hard_delete=True)
    assert hard.counts("company")["deleted"] == 1
    assert by_code(box, victim["customerCode"]) == []


def test_turnover_dates_are_validated_and_sent_as_dates(box, run_target):
    company = entity_rows(box, "company")[0]
    good = {
        "companyId": company["id"],
        "amount": 1200.5,
        "start_date": "2026-01-01",
        "end_date": "2026-01-31",
    }
    bad = {**good, "start_date": "31/01/2026", "end_date": "2026-02-28"}
    result = run_target(box, stream_messages("turnover", [good, bad]))
    assert result.counts("turnover")["created"] == 1
    (reject,) = result.rejects
    assert reject["field"] == "startDate"
    stored = [t for t in entity_rows(box, "turnover") if t["companyId"] == company["id"]]
    assert {"2026-01-01"} <= {t["startDate"] for t in stored}


def test_turnovers_name_company_and_mandator_by_their_keys(box, run_target):
    messages = [
        *stream_messages("company", [{"customerCode": "TO-C", "name": "Turnover Co"}]),
        *stream_messages("mandator", [{"code": "TO-M", "name": "Turnover Mandator"}]),
        *stream_messages(
            "turnover",
            [
                {
                    "companyCustomerCode": "TO-C",
                    "mandator_code": "TO-M",
                    "amount": 99.5,
                    "startDate": "2026-10-01",
                    "endDate": "2026-10-31",
                }
            ],
        ),
    ]
    result = run_target(box, messages)
    assert result.counts("turnover")["created"] == 1
    (company,) = by_code(box, "TO-C")
    (mandator,) = [m for m in entity_rows(box, "mandator") if m.get("code") == "TO-M"]
    (turnover,) = [t for t in entity_rows(box, "turnover") if t["companyId"] == company["id"]]
    assert turnover["mandatorId"] == mandator["id"]
    rerun = run_target(box, messages)
    assert rerun.counts("turnover")["unchanged"] == 1


def test_a_written_field_the_schema_deprecates_is_warned_once_with_its_reason(
    box, run_target, caplog
):
    variant = Path(__file__).resolve().parents[1] / "schema_variants" / "field_deprecated.gql"
    rows = [{"customerCode": f"DEP-{n}", "name": f"Dep {n}"} for n in range(3)]
    with caplog.at_level(logging.WARNING):
        result = run_target(box, stream_messages("company", rows), schema_path=str(variant))
    assert result.counts("company")["created"] == 3
    warnings = [r.getMessage() for r in caplog.records if "deprecates" in r.getMessage()]
    assert len(warnings) == 1
    assert "Company.customerCode" in warnings[0]
    assert "will be removed on 2027-09-30" in warnings[0]
    with caplog.at_level(logging.WARNING):
        caplog.clear()
        run_target(box, stream_messages("company", rows))
    assert not [r for r in caplog.records if "deprecates" in r.getMessage()]
