"""The server over HTTP: the vendor page's documents verbatim, auth, 429s, control endpoints."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import threading
import time
from typing import Any

import pytest
import requests

from moovago_sandbox.testing import SandboxHandle

# Verbatim from Moovago's getting-started page (request bodies, as printed there).
VENDOR_BODIES = [
    '{ "query": "{ team { id name members { id alias } } }" }',
    '{ "query": "query MyTeamQuery { team { id name members { id alias } } }" }',
    '{ "query": "{ companyList(filter: { teamId: \\"XYZ\\" }) { id name ownerIds } }" }',
    '{ "query": "query MyCompanyListQuery($filter: FilterManyCompanyInput!) { companyList(filter: $filter) { id name ownerIds } }", "variables": { "filter": { "teamId": "XYZ" } } }',  # noqa: E501 (verbatim)
    '{ "query": "mutation { company { create( input: { ownerIds: [\\"XYZ\\"], name: \\"Moovago\\", city: \\"Niort\\", address: \\"46 Rue du 14 Juillet\\", postalCode: \\"79000\\", phone: \\"07 68 45 46 74\\", email: \\"support@moovago.com\\", note: \\"L application du commercial\\" } ) { recordId } } }" }',  # noqa: E501 (verbatim)
    '{ "query": "mutation MyCompanyCreate($input: CompanyCreateInput!) { company { create(input: $input) { recordId } } }", "variables": { "input": { "ownerIds": ["XYZ"], "name": "Moovago", "city": "Niort", "address": "46 Rue du 14 Juillet", "postalCode": "79000", "phone": "07 68 45 46 74", "email": "support@moovago.com", "note": "L application du commercial" } } }',  # noqa: E501 (verbatim)
]

# The page's curl examples, verbatim (placeholders replaced at run time).
VENDOR_CURLS = [
    """curl https://<api-backend>/graphql \\
  -X POST \\
  -H '<your-api-key>' \\
  -H 'Content-Type: application/json' \\
  -d '{ "query": "query MyTeamQuery { team { id name members { id alias } } }" }'""",
    """curl https://<api-backend>/graphql \\
  -X POST \\
  -H '<your-api-key>' \\
  -H 'Content-Type: application/json' \\
  -d '{ "query": "query MyMandatorList($filter: FilterManyMandatorInput!) { mandatorList(filter: $filter) { id name }  }", "variables": { "filter": { "teamId": "<your-teamId>" } } }'""",  # noqa: E501 (verbatim)
    """curl https://<api-backend>/graphql \\
  -X POST \\
  -H '<your-api-key>' \\
  -H 'Content-Type: application/json' \\
  -d '{ "query": "mutation MyCompanyCreate($input: CompanyCreateInput!) { company { create(input: $input) { recordId } } }", "variables": { "input": { "ownerIds": ["<ownerId-value>"], "name": "Moovago", "city": "Niort", "address": "46 Rue du 14 Juillet", "postalCode": "79000", "phone": "07 68 45 46 74", "email": "support@moovago.com", "note": "L application du commercial" } } }'""",  # noqa: E501 (verbatim)
    """curl https://<api-backend>/graphql \\
-X POST \\
-H '<your-api-key>' \\
-H 'Content-Type: application/json' \\
-d '{ "query": "mutation MyCompanyUpdate($input: CompanyUpdateInput!) { company { update(input: $input) { recordId } } }", "variables": { "input": { "id": "<companyId-value>", "input": { "note": "Here is my new note"} } } }'""",  # noqa: E501 (verbatim)
]

NOT_AUTHORIZED = {
    "data": None,
    "errors": [
        {
            "message": "You are not authorized to access this data",
            "locations": [],
            "errorType": "DataFetchingException",
            "path": ["companyList"],
            "extensions": None,
        }
    ],
}


def post(
    box: SandboxHandle, body: Any, key: str | bool | None = None, **kwargs: Any
) -> requests.Response:
    """POST a body; `key` None sends the box's key, False sends no key header."""
    headers = {"Content-Type": "application/json"}
    if key is not False:
        headers["X-API-KEY"] = box.api_key if key is None else str(key)
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return requests.post(box.url, data=data, headers=headers, timeout=30, **kwargs)


@pytest.fixture
def vendor_box(sandbox_factory) -> SandboxHandle:
    """A sandbox whose key belongs to team "XYZ", the team id the page's examples use."""
    return sandbox_factory(companies=5, api_keys=["vendor-key:XYZ"], rate_limit=0)


def test_every_request_body_of_the_vendor_page_works_verbatim(vendor_box: SandboxHandle) -> None:
    answers = []
    for body in VENDOR_BODIES:
        response = post(vendor_box, body)
        assert response.status_code == 200
        answers.append(response.json())
        assert "errors" not in answers[-1], (body, answers[-1])
    for team in (answers[0], answers[1]):
        assert team["data"]["team"]["id"] == "XYZ"
        assert team["data"]["team"]["members"]
        assert set(team["data"]["team"]["members"][0]) == {
            "id",
            "alias",
        }
    for listed in (answers[2], answers[3]):
        assert len(listed["data"]["companyList"]) == 5
        assert set(listed["data"]["companyList"][0]) == {"id", "name", "ownerIds"}
    created = {a["data"]["company"]["create"]["recordId"] for a in answers[4:]}
    rows = {r["id"]: r for r in vendor_box.export()["company"]}
    for record_id in created:
        row = rows[record_id]
        assert (row["name"], row["city"], row["postalCode"], row["ownerIds"]) == (
            "Moovago",
            "Niort",
            "79000",
            ["XYZ"],
        )
        assert row["note"] == "L application du commercial"


def _curl_to_body(command: str, replacements: dict[str, str]) -> tuple[list[str], str]:
    for placeholder, value in replacements.items():
        command = command.replace(placeholder, value)
    argv = shlex.split(command.replace("\\\n", " "))
    return argv, argv[argv.index("-d") + 1]


def test_the_vendor_curl_examples_work(vendor_box: SandboxHandle) -> None:
    members = post(vendor_box, {"query": "{ team { members { id } } }"}).json()["data"]["team"][
        "members"
    ]
    replacements = {
        "https://<api-backend>/graphql": vendor_box.url,
        "<your-api-key>": f"X-API-KEY: {vendor_box.api_key}",
        "<your-teamId>": vendor_box.team_id,
        "<ownerId-value>": members[0]["id"],
    }
    curl = shutil.which("curl")
    answers = []
    for command in VENDOR_CURLS:
        if "<companyId-value>" in command:
            replacements["<companyId-value>"] = answers[2]["data"]["company"]["create"]["recordId"]
        argv, body = _curl_to_body(command, replacements)
        if curl:  # the command itself, as a user would paste it
            done = subprocess.run(
                [curl, "-s", "-S", *argv[1:]],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            answer = json.loads(done.stdout)
            if "mutation" not in body:  # the same body through requests answers the same
                assert post(vendor_box, body).json() == answer
        else:
            answer = post(vendor_box, body).json()
        assert "errors" not in answer, (command, answer)
        answers.append(answer)
    assert answers[0]["data"]["team"]["id"] == vendor_box.team_id
    mandators = [{"id": m["id"], "name": m["name"]} for m in vendor_box.export()["mandator"]]
    assert answers[1]["data"]["mandatorList"] == mandators
    record_id = answers[3]["data"]["company"]["update"]["recordId"]
    row = next(r for r in vendor_box.export()["company"] if r["id"] == record_id)
    assert (row["note"], row["ownerIds"], row["name"]) == (
        "Here is my new note",
        [members[0]["id"]],
        "Moovago",
    )


def test_missing_or_unknown_key_gets_the_vendor_error_shape(sandbox: SandboxHandle) -> None:
    body = {
        "query": "query ($f: FilterManyCompanyInput!) { companyList(filter: $f) { id } }",
        "variables": {"f": {"teamId": sandbox.team_id}},
    }
    for key in (False, "not-a-key", ""):
        response = post(sandbox, body, key=key)
        assert response.status_code == 200
        assert response.json() == NOT_AUTHORIZED


def test_the_key_header_name_is_configurable(sandbox_factory) -> None:
    box = sandbox_factory(companies=2, extra_args=["--api-key-header", "Authorization"])
    body = {"query": "{ team { id } }"}
    assert post(box, body).json()["data"] is None  # X-API-KEY is not the header any more
    ok = requests.post(box.url, json=body, headers={"Authorization": box.api_key}, timeout=30)
    assert ok.json() == {"data": {"team": {"id": box.team_id}}}


def test_introspection_is_refused_with_an_error_in_a_200(sandbox: SandboxHandle) -> None:
    response = post(sandbox, {"query": "{ __schema { queryType { name } } }"})
    assert response.status_code == 200
    assert response.json()["data"] is None
    assert "Introspection" in response.json()["errors"][0]["message"]


def test_malformed_bodies_are_errors_in_a_200(sandbox: SandboxHandle) -> None:
    for body in ("not json", "[1, 2]", '{"query": 3}', '{"query": "{ team { id } "}'):
        response = post(sandbox, body)
        assert response.status_code == 200
        assert response.json()["data"] is None
        assert response.json()["errors"][0]["message"]


def _burst(box: SandboxHandle, n: int) -> tuple[list[int], float]:
    statuses: list[int] = []
    barrier = threading.Barrier(n)

    def send() -> None:
        barrier.wait()
        statuses.append(post(box, {"query": "{ team { id } }"}).status_code)

    started = time.monotonic()
    threads = [threading.Thread(target=send) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses, time.monotonic() - started


def test_a_burst_of_12_requests_gets_429s_and_stats_count_them(sandbox_factory) -> None:
    box = sandbox_factory(companies=2)
    statuses, elapsed = _burst(box, 12)
    ok, limited = statuses.count(200), statuses.count(429)
    assert ok + limited == 12
    assert limited >= 1
    assert ok <= 5 * (int(elapsed) + 1)  # never more than 5 in any rolling second
    stats = box.stats()
    assert stats["requests"] == 12
    assert stats["rate_limited"] == limited
    assert stats["responses"] == {"200": ok, "429": limited}
    assert stats["peak_requests_per_second"] >= 6
    answer = post(box, {"query": "{ team { id } }"})
    if answer.status_code == 429:
        assert "Retry-After" not in answer.headers  # off unless --retry-after
        assert "Too Many Requests" in answer.json()["errors"][0]["message"]


def test_retry_after_is_sent_only_with_the_flag(sandbox_factory) -> None:
    box = sandbox_factory(companies=2, rate_limit=1, retry_after=True)
    first, second = post(box, {"query": "{ team { id } }"}), post(box, {"query": "{ team { id } }"})
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.headers["Retry-After"] == "1"


def test_rate_limit_is_per_key(sandbox_factory) -> None:
    box = sandbox_factory(companies=2, api_keys=["k1", "k2"], rate_limit=2)
    codes = [
        post(box, {"query": "{ team { id } }"}, key=k).status_code
        for k in ("k1", "k1", "k2", "k2", "k1")
    ]
    assert codes[:4] == [200, 200, 200, 200]
    assert box.keys["k1"] != box.keys["k2"]


def test_control_endpoints_stats_export_requests_and_reset(sandbox_factory) -> None:
    box = sandbox_factory(companies=4, api_keys=["k1", "k2"], rate_limit=0)
    seed_export = box.export()
    assert set(seed_export) == {"team", "company", "companyContact", "mandator", "turnover"}
    assert {t["id"] for t in seed_export["team"]} == set(box.keys.values())
    assert all(r["teamId"] in box.keys.values() for rows in seed_export.values() for r in rows)
    document = (
        "mutation Make($i: CompanyCreateInput!) { company { create(input: $i) { recordId } } }"
    )
    post(
        box,
        {"query": document, "variables": {"i": {"name": "Neuve"}}, "operationName": "Make"},
        key="k2",
    )
    stats = box.stats()
    assert stats["mutations"]["company"] == {"create": 1, "update": 0, "delete": 0}
    assert stats["teams"][box.keys["k2"]]["requests"] == 1
    logged = box.requests()[-1]
    assert logged == {
        "time": logged["time"],
        "operationName": "Make",
        "query": document,
        "variables": {"i": {"name": "Neuve"}},
        "team": box.keys["k2"],
        "status": 200,
    }
    assert "k2" not in json.dumps(box.requests())
    assert "k2" not in box.log()
    assert "k1" not in box.log()
    assert len(box.export()["company"]) == len(seed_export["company"]) + 1
    box.reset()
    assert box.export() == seed_export
    assert box.stats()["requests"] == 0
    assert box.requests() == []


@pytest.mark.slow
def test_tenant_isolation_over_http_with_guessed_ids(sandbox_factory) -> None:
    box = sandbox_factory(companies=3, api_keys=["alice", "bob"], rate_limit=0)
    alice, bob = box.keys["alice"], box.keys["bob"]
    victim = next(r for r in box.export()["company"] if r["teamId"] == alice)
    read = post(
        box,
        {
            "query": "query ($f: FilterManyCompanyInput!) { companyList(filter: $f) { id } }",
            "variables": {"f": {"teamId": bob, "ids": [victim["id"]]}},
        },
        key="bob",
    ).json()
    assert read == {"data": {"companyList": []}}
    foreign_filter = post(
        box,
        {
            "query": "query ($f: FilterManyCompanyInput!) { companyList(filter: $f) { id } }",
            "variables": {"f": {"teamId": alice}},
        },
        key="bob",
    ).json()
    assert foreign_filter == NOT_AUTHORIZED
    document = """mutation ($u: CompanyUpdateInput!, $d: CompanyDeleteInput!) {
      company { u1: update(input: $u) { recordId } d1: delete(input: $d) { recordId } } }"""
    write = post(
        box,
        {
            "query": document,
            "variables": {
                "u": {"id": victim["id"], "input": {"note": "x"}},
                "d": {"id": victim["id"]},
            },
        },
        key="bob",
    )
    assert write.status_code == 200
    assert write.json()["data"] == {"company": {"u1": None, "d1": None}}
    assert [e["path"] for e in write.json()["errors"]] == [["company", "u1"], ["company", "d1"]]
    assert next(r for r in box.export()["company"] if r["id"] == victim["id"]) == victim
    assert box.stats()["mutations_total"] == 0
