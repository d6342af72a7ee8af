"""Lists: paging, filters, tenant isolation, scalars, and the fast path against graphql-core."""

from __future__ import annotations

import json

import pytest

from tests.sandbox.conftest import Local

ALL_COMPANY_FIELDS = """id teamId name ownerIds status customerCode address postalCode zipCode city
 country coordinates { latitude longitude } phone email website note mandatorIds
 mandators { id name code } createdAt updatedAt"""
LIST = """query ($f: FilterManyCompanyInput!, $skip: Int, $limit: Int) {
  companyList(filter: $f, skip: $skip, limit: $limit) { id } }"""


def test_paging_returns_every_row_exactly_once_in_id_order(local: Local) -> None:
    everything = [
        r["id"] for r in local.run(LIST, {"f": {"teamId": local.team_id}})["data"]["companyList"]
    ]
    assert everything == sorted(everything) == [r["id"] for r in local.rows("company")]
    seen: list[str] = []
    skip = 0
    while True:
        page = local.run(LIST, {"f": {"teamId": local.team_id}, "skip": skip, "limit": 7})
        ids = [r["id"] for r in page["data"]["companyList"]]
        seen += ids
        skip += 7
        if len(ids) < 7:
            break
    assert seen == everything


def test_deprecated_offset_pages_like_skip(local: Local) -> None:
    document = """query ($f: FilterManyCompanyInput!) {
      a: companyList(filter: $f, offset: 3, limit: 2) { id }
      b: companyList(filter: $f, skip: 3, limit: 2) { id } }"""
    data = local.run(document, {"f": {"teamId": local.team_id}})["data"]
    assert data["a"] == data["b"]
    assert len(data["a"]) == 2


@pytest.mark.parametrize(("skip", "limit"), [(0, 0), (0, 1001), (-1, 5)])
def test_out_of_range_paging_is_an_error_in_the_answer(local: Local, skip: int, limit: int) -> None:
    result = local.run(LIST, {"f": {"teamId": local.team_id}, "skip": skip, "limit": limit})
    assert result["data"] is None
    assert result["errors"][0]["path"] == ["companyList"]


def test_filters_ids_company_and_updated_since(local: Local) -> None:
    companies = local.rows("company")
    picked = [companies[1]["id"], companies[4]["id"]]
    got = local.run(LIST, {"f": {"teamId": local.team_id, "ids": picked}})["data"]["companyList"]
    assert [r["id"] for r in got] == picked
    contacts = local.rows("companyContact")
    company_id = contacts[0]["companyId"]
    got = local.run(
        """query ($f: FilterManyCompanyContactInput!) {
          companyContactList(filter: $f) { id companyId } }""",
        {"f": {"teamId": local.team_id, "companyId": company_id}},
    )["data"]["companyContactList"]
    assert got == [
        {"id": c["id"], "companyId": company_id} for c in contacts if c["companyId"] == company_id
    ]
    stamps = sorted(r["updatedAt"] for r in companies)
    middle = stamps[len(stamps) // 2]
    got = local.run(LIST, {"f": {"teamId": local.team_id, "updatedSince": middle}})["data"][
        "companyList"
    ]
    assert len(got) == sum(1 for s in stamps if s >= middle)


def test_updated_since_accepts_offsets_and_sub_millisecond_bounds(local: Local) -> None:
    row = local.rows("company")[0]
    stamp = row["updatedAt"]  # ...HH:MM:SS.mmmZ
    in_paris = stamp[:-1] + "+00:00"
    later = stamp[:-1] + "100Z"  # 0.1 ms after: excludes the row
    query = "query ($f: FilterManyCompanyInput!) { companyList(filter: $f) { id } }"
    hit = local.run(
        query, {"f": {"teamId": local.team_id, "ids": [row["id"]], "updatedSince": in_paris}}
    )
    miss = local.run(
        query, {"f": {"teamId": local.team_id, "ids": [row["id"]], "updatedSince": later}}
    )
    assert hit["data"]["companyList"] == [{"id": row["id"]}]
    assert miss["data"]["companyList"] == []


@pytest.mark.parametrize("bad", ["yesterday", "2026-11-29", "2026-11-29T08:00:00", 1700000000])
def test_bad_datetime_is_a_validation_error(local: Local, bad: object) -> None:
    result = local.run(LIST, {"f": {"teamId": local.team_id, "updatedSince": bad}})
    assert result["data"] is None
    assert result["errors"][0]["errorType"] == "ValidationError"
    assert "DateTime" in result["errors"][0]["message"]


def test_bad_date_literal_is_an_error(local: Local) -> None:
    company = local.rows("company")[0]["id"]
    result = local.run(
        'mutation { turnover { create(input: {companyId: "' + company + '", amount: 1, '
        'startDate: "2026-13-01", endDate: "2026-12-31"}) { recordId } } }'
    )
    assert result["data"] is None
    assert "Date" in result["errors"][0]["message"]


def test_a_key_never_reads_another_teams_rows(local: Local) -> None:
    mine = {r["id"] for r in local.rows("company")}
    theirs = [r["id"] for r in local.rows("company", local.other_team)]
    assert theirs
    assert not mine & set(theirs)
    as_b = local.run(LIST, {"f": {"teamId": local.other_team}}, team=local.other_team)
    assert {r["id"] for r in as_b["data"]["companyList"]} == set(theirs)
    guessed = local.run(
        LIST, {"f": {"teamId": local.other_team, "ids": sorted(mine)}}, team=local.other_team
    )
    assert guessed["data"]["companyList"] == []
    other_filter = local.run(LIST, {"f": {"teamId": local.team_id}}, team=local.other_team)
    assert other_filter["data"] is None
    assert other_filter["errors"][0]["message"] == "You are not authorized to access this data"
    assert other_filter["errors"][0]["path"] == ["companyList"]


def test_a_key_never_updates_or_deletes_another_teams_rows(local: Local) -> None:
    victim = local.rows("company")[0]
    document = """mutation ($u: CompanyUpdateInput!, $d: CompanyDeleteInput!,
                           $c: CompanyContactCreateInput!) {
      company { u: update(input: $u) { recordId } d: delete(input: $d) { recordId } }
      companyContact { c: create(input: $c) { recordId } } }"""
    result = local.run(
        document,
        {
            "u": {"id": victim["id"], "input": {"name": "Piraté"}},
            "d": {"id": victim["id"]},
            "c": {"companyId": victim["id"], "lastName": "Intrus"},
        },
        team=local.other_team,
    )
    assert result["data"] == {"company": {"u": None, "d": None}, "companyContact": {"c": None}}
    assert sorted(e["path"] for e in result["errors"]) == [
        ["company", "d"],
        ["company", "u"],
        ["companyContact", "c"],
    ]
    assert local.rows("company")[0] == victim
    assert not [
        c for c in local.rows("companyContact", local.other_team) if c["companyId"] == victim["id"]
    ]


FAST_PATH_CASES = [
    "query ($f: FilterManyCompanyInput!) { companyList(filter: $f) { "
    + ALL_COMPANY_FIELDS
    + " } }",
    """query ($f: FilterManyCompanyInput!) {
      x: companyList(filter: $f, skip: 2, limit: 5) {
        __typename key: id coordinates { lat: latitude longitude } }
      y: companyList(filter: $f, limit: 1) { name } }""",
    """query ($f: FilterManyCompanyContactInput!) { companyContactList(filter: $f) {
      id teamId companyId civility firstName lastName email phone mobilePhone position function
      note createdAt updatedAt } }""",
    """query ($f: FilterManyMandatorInput!) { mandatorList(filter: $f) {
      id teamId name code email phone website note createdAt updatedAt } }""",
    """query ($f: FilterManyTurnoverInput!) { turnoverList(filter: $f, limit: 10) {
      id teamId companyId mandatorId amount currency startDate endDate note
      createdAt updatedAt } }""",
    """query ($f: FilterManyCompanyInput!) {
      team { id name members { id alias firstName lastName email } createdAt updatedAt }
      companyList(filter: $f, limit: 3) { id } }""",
    """query ($f: FilterManyCompanyInput!) { companyList(filter: $f) { ...C } }
      fragment C on Company { id name mandators { id } }""",
    "query ($f: FilterManyCompanyInput!) { companyList(filter: $f, limit: 0) { id } }",
    """query ($f: FilterManyCompanyInput!) {
      companyList(filter: $f) { id @include(if: false) name } }""",
]


@pytest.mark.parametrize("document", FAST_PATH_CASES)
def test_fast_path_answers_exactly_like_graphql_core(local: Local, document: str) -> None:
    # Rows written through the API too, with values that are easy to get subtly wrong:
    # 17-digit floats, quotes, control characters, non-ASCII, explicit nulls.
    mandators = [m["id"] for m in local.rows("mandator")]
    created = local.run(
        "mutation ($i: CompanyCreateInput!) { company { create(input: $i) { recordId } } }",
        {
            "i": {
                "name": 'Écrite "guillemets" \\ \n\t\u2028 ok',
                "coordinates": {"latitude": 0.1 + 0.2, "longitude": -1e-7},
                "note": None,
                "mandatorIds": [mandators[2], mandators[0], mandators[2]],
            }
        },
    )
    company_id = created["data"]["company"]["create"]["recordId"]
    local.run(
        "mutation ($i: TurnoverCreateInput!) { turnover { create(input: $i) { recordId } } }",
        {
            "i": {
                "companyId": company_id,
                "amount": 123456789.12345679,
                "startDate": "2026-01-01",
                "endDate": "2026-01-31",
            }
        },
    )
    variables = {"f": {"teamId": local.team_id}}
    fast = local.run(document, variables, fast=True)
    slow = local.run(document, variables, fast=False)
    assert json.dumps(fast, ensure_ascii=False) == json.dumps(slow, ensure_ascii=False)
    assert fast.get("data") is not None or fast.get("errors")


def test_fast_path_is_taken_for_plain_lists(local: Local) -> None:
    prepared = local.box.engine.prepare(FAST_PATH_CASES[0])
    plans = prepared.plans[None]
    assert plans is not None
    assert plans[0].sql is not None  # rows built as JSON by SQLite, not in Python
    assert local.box.engine.prepare(FAST_PATH_CASES[6]).plans[None] is None


def test_introspection_is_refused(local: Local) -> None:
    for document in ("{ __schema { types { name } } }", '{ __type(name: "Company") { name } }'):
        result = local.run(document)
        assert result["data"] is None
        assert result["errors"][0]["errorType"] == "ValidationError"
        assert "Introspection" in result["errors"][0]["message"]
    assert local.run("{ team { __typename } }")["data"] == {"team": {"__typename": "Team"}}
