"""Mutation semantics: defaults, partial updates, nulls, aliases applied one by one, deletes."""

from __future__ import annotations

from tests.sandbox.conftest import Local

CREATE = """mutation ($input: CompanyCreateInput!) { company { create(input: $input) {
  recordId record { id name status ownerIds mandatorIds createdAt updatedAt } } } }"""
UPDATE = """mutation ($input: CompanyUpdateInput!) { company { update(input: $input) {
  recordId record { id name note city updatedAt createdAt } } } }"""


def test_create_fills_defaults_and_server_fields(local: Local) -> None:
    result = local.run(CREATE, {"input": {"name": "Boulangerie Niortaise"}})
    assert "errors" not in result
    record = result["data"]["company"]["create"]["record"]
    assert record["status"] == "PROSPECT"
    assert record["ownerIds"] == [local.box.owners[local.team_id]]
    assert record["mandatorIds"] == []
    assert record["createdAt"] == record["updatedAt"]
    assert len(record["id"]) == 24
    assert record["id"] > max(r["id"] for r in local.rows("company") if r["id"] != record["id"])


def test_turnover_currency_defaults_to_eur(local: Local) -> None:
    company = local.rows("company")[0]["id"]
    result = local.run(
        """mutation ($i: TurnoverCreateInput!) { turnover { create(input: $i) {
          record { currency startDate endDate amount } } } }""",
        {
            "i": {
                "companyId": company,
                "amount": 1200.5,
                "startDate": "2026-10-01",
                "endDate": "2026-10-31",
            }
        },
    )
    assert result == {
        "data": {
            "turnover": {
                "create": {
                    "record": {
                        "currency": "EUR",
                        "startDate": "2026-10-01",
                        "endDate": "2026-10-31",
                        "amount": 1200.5,
                    }
                }
            }
        }
    }


def test_update_changes_only_given_fields_and_null_clears(local: Local) -> None:
    before = next(r for r in local.rows("company") if r["city"] and r["note"] is None)
    result = local.run(UPDATE, {"input": {"id": before["id"], "input": {"note": "Rappeler lundi"}}})
    record = result["data"]["company"]["update"]["record"]
    assert (record["note"], record["city"], record["name"]) == (
        "Rappeler lundi",
        before["city"],
        before["name"],
    )
    assert record["createdAt"] == before["createdAt"]
    assert record["updatedAt"] > before["updatedAt"]
    cleared = local.run(UPDATE, {"input": {"id": before["id"], "input": {"city": None}}})
    assert cleared["data"]["company"]["update"]["record"]["city"] is None
    assert cleared["data"]["company"]["update"]["record"]["note"] == "Rappeler lundi"


def test_null_on_a_required_field_is_refused_with_the_alias_path(local: Local) -> None:
    row = local.rows("company")[0]
    result = local.run(UPDATE, {"input": {"id": row["id"], "input": {"name": None}}})
    assert result["data"] == {"company": {"update": None}}
    assert result["errors"][0]["path"] == ["company", "update"]
    assert "name" in result["errors"][0]["message"]
    assert local.rows("company")[0] == row


def test_aliased_mutations_are_applied_or_rejected_one_by_one(local: Local) -> None:
    target = local.rows("company")[3]
    document = """
    mutation Batch($c0: CompanyCreateInput!, $u1: CompanyUpdateInput!,
                   $c2: CompanyCreateInput!, $u3: CompanyUpdateInput!) {
      company {
        c0: create(input: $c0) { recordId }
        c1: update(input: $u1) { recordId }
        c2: create(input: $c2) { recordId }
        c3: update(input: $u3) { recordId }
      }
    }"""
    count = len(local.rows("company"))
    result = local.run(
        document,
        {
            "c0": {"name": "Alpha"},
            "u1": {"id": "ffffffffffffffffffffffff", "input": {"note": "x"}},
            "c2": {"name": "Gamma"},
            "u3": {"id": target["id"], "input": {"note": "mise à jour"}},
        },
    )
    data = result["data"]["company"]
    assert data["c1"] is None
    assert all(data[k]["recordId"] for k in ("c0", "c2", "c3"))
    assert [e["path"] for e in result["errors"]] == [["company", "c1"]]
    assert result["errors"][0]["errorType"] == "DataFetchingException"
    names = {r["name"] for r in local.rows("company")}
    assert {"Alpha", "Gamma"} <= names
    assert len(local.rows("company")) == count + 2
    assert local.box.mutations["company"] == {"create": 2, "update": 1, "delete": 0}


def test_a_bad_variable_rejects_the_whole_request_as_graphql_does(local: Local) -> None:
    count = len(local.rows("company"))
    document = """mutation ($a: CompanyCreateInput!, $b: CompanyCreateInput!) {
      company { a: create(input: $a) { recordId } b: create(input: $b) { recordId } } }"""
    bad_enum, wrong_type, missing_required = (
        {"name": "B", "status": "ROYAL"},
        {"name": 12},
        {"city": "Niort"},
    )
    for bad in (bad_enum, wrong_type, missing_required):
        result = local.run(document, {"a": {"name": "Ok"}, "b": bad})
        assert result["data"] is None
        assert result["errors"][0]["errorType"] == "ValidationError"
        assert "$b" in result["errors"][0]["message"]
    assert len(local.rows("company")) == count


def test_updated_at_strictly_increases_from_one_write_to_the_next(local: Local) -> None:
    ids = [r["id"] for r in local.rows("company")[:5]]
    stamps = []
    for record_id in ids * 2:
        result = local.run(UPDATE, {"input": {"id": record_id, "input": {"note": "n"}}})
        stamps.append(result["data"]["company"]["update"]["record"]["updatedAt"])
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)
    since = stamps[5]
    listed = local.run(
        "query ($f: FilterManyCompanyInput!) { companyList(filter: $f) { id updatedAt } }",
        {"f": {"teamId": local.team_id, "updatedSince": since}},
    )["data"]["companyList"]
    assert [r["updatedAt"] for r in listed] == sorted(stamps[5:])


def test_delete_removes_the_company_and_its_contacts(local: Local) -> None:
    company = next(
        c
        for c in local.rows("company")
        if any(x["companyId"] == c["id"] for x in local.rows("companyContact"))
    )
    result = local.run(
        """mutation ($i: CompanyDeleteInput!) {
          company { delete(input: $i) { recordId record { id } } } }""",
        {"i": {"id": company["id"]}},
    )
    assert result == {"data": {"company": {"delete": {"recordId": company["id"], "record": None}}}}
    assert company["id"] not in {r["id"] for r in local.rows("company")}
    assert company["id"] not in {r["companyId"] for r in local.rows("companyContact")}
    again = local.run(
        "mutation ($i: CompanyDeleteInput!) { company { d: delete(input: $i) { recordId } } }",
        {"i": {"id": company["id"]}},
    )
    assert again["data"] == {"company": {"d": None}}
    assert again["errors"][0]["path"] == ["company", "d"]


def test_deleting_a_mandator_detaches_it_from_companies(local: Local) -> None:
    company = next(c for c in local.rows("company") if c["mandatorIds"])
    mandator = company["mandatorIds"][0]
    local.run(
        "mutation ($i: MandatorDeleteInput!) { mandator { delete(input: $i) { recordId } } }",
        {"i": {"id": mandator}},
    )
    after = next(c for c in local.rows("company") if c["id"] == company["id"])
    assert mandator not in after["mandatorIds"]
    assert after["updatedAt"] > company["updatedAt"]


def test_references_must_exist_in_the_team(local: Local) -> None:
    result = local.run(
        """mutation ($i: CompanyContactCreateInput!) {
          companyContact { create(input: $i) { recordId } } }""",
        {"i": {"companyId": "0123456789abcdef01234567", "lastName": "Martin"}},
    )
    assert result["data"] == {"companyContact": {"create": None}}
    assert "companyId" in result["errors"][0]["message"]


def test_company_mandators_resolve_from_mandator_ids(local: Local) -> None:
    company = next(c for c in local.rows("company") if len(c["mandatorIds"]) >= 2)
    result = local.run(
        """query ($f: FilterManyCompanyInput!) {
          companyList(filter: $f) { mandatorIds mandators { id name } } }""",
        {"f": {"teamId": local.team_id, "ids": [company["id"]]}},
    )
    row = result["data"]["companyList"][0]
    assert [m["id"] for m in row["mandators"]] == company["mandatorIds"]
    names = {m["id"]: m["name"] for m in local.rows("mandator")}
    assert all(m["name"] == names[m["id"]] for m in row["mandators"])
