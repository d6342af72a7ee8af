"""Never a 500: any body gets a JSON, GraphQL-style error (200, or 413 above the body limit)."""

from __future__ import annotations

import json

import pytest
import requests

from moovago_sandbox.testing import SandboxHandle

DEEP = 100_000


def corpus(box: SandboxHandle) -> list[tuple[str, bytes]]:
    team = box.team_id
    deep_vars = '{"query": "{ team { id } }", "variables": {"a": ' + "[" * DEEP + "]" * DEEP + "}}"
    moderate = "[" * 800 + "]" * 800
    list_query = "query ($f: FilterManyCompanyInput!) { companyList(filter: $f) { id } }"
    return [
        ("deep array", ("[" * DEEP + "]" * DEEP).encode()),
        ("deep object", ('{"a":' * DEEP + "1" + "}" * DEEP).encode()),
        ("deep variables", deep_vars.encode()),
        ("deep query text", json.dumps({"query": "{ team " + "{ id " * DEEP}).encode()),
        (
            "deep selection",
            json.dumps(
                {"query": "{ team { members " + "{ id " * 3000 + "}" * 3001 + " }"}
            ).encode(),
        ),
        (
            "deep filter value",
            json.dumps({"query": list_query, "variables": {"f": {"teamId": team, "ids": []}}})
            .replace("[]", moderate)
            .encode(),
        ),
        (
            "huge integer",
            b'{"query": "{ team { id } }", "variables": {"n": ' + b"9" * 10_000 + b"}}",
        ),
        ("huge exponent", b'{"query": "{ team { id } }", "variables": {"n": 1e999999}}'),
        ("NaN", b'{"query": "{ team { id } }", "variables": {"n": NaN}}'),
        (
            "huge limit",
            json.dumps(
                {
                    "query": "query ($f: FilterManyCompanyInput!, $l: Int) "
                    "{ companyList(filter: $f, limit: $l) { id } }",
                    "variables": {"f": {"teamId": team}, "l": 10**30},
                }
            ).encode(),
        ),
        ("invalid UTF-8", b'{"query": "\xff\xfe{ team { id } }"}'),
        (
            "lone surrogate",
            b'{"query": "mutation ($i: CompanyCreateInput!) { company { create(input: $i) '
            b'{ recordId } } }", "variables": {"i": {"name": "\\ud800"}}}',
        ),
        ("a number", b"3"),
        ("a string", b'"{ team { id } }"'),
        ("null", b"null"),
        ("empty", b""),
        ("an array of requests", b'[{"query": "{ team { id } }"}]'),
        ("query is an object", b'{"query": {"a": 1}}'),
        ("variables is a list", b'{"query": "{ team { id } }", "variables": [1]}'),
        ("binary", bytes(range(256))),
    ]


@pytest.mark.slow
def test_no_body_gets_a_500(sandbox_factory) -> None:
    box = sandbox_factory(companies=2, rate_limit=0)
    headers = {"Content-Type": "application/json", "X-API-KEY": box.api_key}
    for name, body in corpus(box):
        response = requests.post(box.url, data=body, headers=headers, timeout=60)
        assert response.status_code in (200, 400, 413), (name, response.status_code)
        answer = response.json()
        assert "errors" in answer, (name, answer)
        assert answer["errors"][0]["message"], name
        assert answer.get("data") is None or isinstance(answer["data"], dict), name
        assert answer["errors"][0]["errorType"], name
    assert box.stats()["responses"].keys() <= {"200", "400", "413"}
    assert "Traceback" not in box.log()
    ok = requests.post(box.url, json={"query": "{ team { id } }"}, headers=headers, timeout=60)
    assert ok.json() == {"data": {"team": {"id": box.team_id}}}
