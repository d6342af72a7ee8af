"""Tenant isolation under attack: with team A's key, reading, updating and deleting team B's rows
by known or guessed ids all fail, and the store is byte for byte what it was."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from moovago_sandbox.testing import SandboxHandle, start_sandbox

KEY_A, KEY_B = "team-a-key", "team-b-key"
MUTATIONS = {  # entity -> (mutation field, update data holding one harmless change)
    "company": ("company", {"name": "pwned"}),
    "companyContact": ("companyContact", {"lastName": "pwned"}),
    "mandator": ("mandator", {"name": "pwned"}),
    "turnover": ("turnover", {"note": "pwned"}),
}
LISTS = {
    "company": "companyList",
    "companyContact": "companyContactList",
    "mandator": "mandatorList",
    "turnover": "turnoverList",
}


@pytest.fixture(scope="module")
def box() -> Iterator[SandboxHandle]:
    with start_sandbox(companies=8, api_keys=[KEY_A, KEY_B], rate_limit=0) as handle:
        yield handle


def post(box: SandboxHandle, key: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - the loopback sandbox's http URL
        box.url,
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json", "X-API-KEY": key},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback sandbox
        assert response.status == 200
        return json.loads(response.read())


def _mutation(type_name: str, field: str, kind: str) -> str:
    """One mutation of `kind` whose input is the variable `$i` (values never in the text)."""
    input_type = f"{type_name}{kind.capitalize()}Input"
    return f"mutation($i: {input_type}!) {{ {field} {{ {kind}(input: $i) {{ recordId }} }} }}"


def _rows(export: dict[str, list[dict[str, Any]]], entity: str, team: str) -> list[dict[str, Any]]:
    return [r for r in export[entity] if r.get("teamId") == team]


def _guessed_ids(export: dict[str, list[dict[str, Any]]], team_a: str) -> list[str]:
    """Ids an attacker would try: every id A does not own, and A's ids with the counter moved."""
    owned = {r["id"] for rows in export.values() for r in rows if r.get("teamId") == team_a}
    known = {r["id"] for rows in export.values() for r in rows} - owned
    guesses = set()
    for record_id in owned:
        prefix, counter = record_id[:-6], int(record_id[-6:], 16)
        guesses |= {f"{prefix}{counter + d:06x}" for d in (-3, -2, -1, 1, 2, 3) if counter + d > 0}
    return sorted(known | (guesses - owned))


def test_reading_team_b_with_team_a_key_returns_nothing_of_b(box):
    team_a, team_b = box.keys[KEY_A], box.keys[KEY_B]
    export = box.export()
    for entity, root in LISTS.items():
        b_ids = [r["id"] for r in _rows(export, entity, team_b)]
        assert b_ids, f"team B has no {entity} to attack"
        filter_type = f"FilterMany{entity[0].upper()}{entity[1:]}Input"
        query = f"query($f: {filter_type}!) {{ {root}(filter: $f) {{ id teamId }} }}"
        for flt in (
            {"teamId": team_b},
            {"teamId": team_a, "ids": b_ids},
            {"teamId": team_b, "ids": b_ids},
        ):
            body = post(box, KEY_A, query, {"f": flt})
            rows = (body.get("data") or {}).get(root) or []
            assert all(r["teamId"] == team_a for r in rows), (entity, flt)
            assert not {r["id"] for r in rows} & set(b_ids)
    team = post(box, KEY_A, "query { team { id } }", {})
    assert team["data"]["team"]["id"] == team_a


@pytest.mark.slow
def test_updating_and_deleting_b_rows_by_guessed_ids_fails_and_changes_nothing(box):
    team_a = box.keys[KEY_A]
    before = box.export()
    mutations_before = box.stats()["mutations"]
    guesses = _guessed_ids(before, team_a)
    assert len(guesses) > 50
    for entity, (field, change) in MUTATIONS.items():
        type_name = f"{entity[0].upper()}{entity[1:]}"
        update = _mutation(type_name, field, "update")
        delete = _mutation(type_name, field, "delete")
        for record_id in guesses:
            for query, variables in (
                (update, {"i": {"id": record_id, "input": change}}),
                (delete, {"i": {"id": record_id}}),
            ):
                body = post(box, KEY_A, query, variables)
                result = (body.get("data") or {}).get(field) or {}
                assert not any((v or {}).get("recordId") for v in result.values()), (
                    entity,
                    record_id,
                )
                assert body.get("errors"), "a refused mutation must say so"
    assert box.export() == before
    assert box.stats()["mutations"] == mutations_before


def test_creating_rows_that_point_into_team_b_is_refused(box):
    team_b = box.keys[KEY_B]
    before = box.export()
    b_company = _rows(before, "company", team_b)[0]["id"]
    b_mandator = _rows(before, "mandator", team_b)[0]["id"]
    attacks = [
        ("CompanyContact", "companyContact", {"companyId": b_company, "lastName": "Intrus"}),
        ("Company", "company", {"name": "Intrus", "mandatorIds": [b_mandator]}),
        (
            "Turnover",
            "turnover",
            {
                "companyId": b_company,
                "amount": 1.0,
                "startDate": "2026-01-01",
                "endDate": "2026-01-31",
            },
        ),
    ]
    for type_name, field, data in attacks:
        query = _mutation(type_name, field, "create")
        body = post(box, KEY_A, query, {"i": data})
        result = (body.get("data") or {}).get(field) or {}
        assert not (result.get("create") or {}).get("recordId"), type_name
        assert body.get("errors")
    assert box.export() == before


def test_an_aliased_batch_cannot_smuggle_a_b_update_beside_a_legit_one(box):
    team_a, team_b = box.keys[KEY_A], box.keys[KEY_B]
    before = box.export()
    mine = _rows(before, "company", team_a)[0]["id"]
    theirs = _rows(before, "company", team_b)[0]["id"]
    query = (
        "mutation($a: CompanyUpdateInput!, $b: CompanyUpdateInput!) "
        "{ company { a: update(input: $a) { recordId } b: update(input: $b) { recordId } } }"
    )
    body = post(
        box,
        KEY_A,
        query,
        {
            "a": {"id": mine, "input": {"note": "légitime"}},
            "b": {"id": theirs, "input": {"note": "pwned"}},
        },
    )
    assert body["data"]["company"]["a"]["recordId"] == mine
    assert body["data"]["company"]["b"] is None
    after = box.export()
    assert _rows(after, "company", team_b) == _rows(before, "company", team_b)
    for entity in ("companyContact", "mandator", "turnover"):
        assert after[entity] == before[entity]
