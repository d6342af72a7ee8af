"""Sandbox fuzzing: random documents (hypothesis-graphql, from the bundled schema) and random
variables and bodies never make the sandbox answer 500 or leak a traceback: only GraphQL errors."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, nodes

from moovago_api.schema import load_schema
from moovago_sandbox.testing import SandboxHandle, start_sandbox

SDL = load_schema().sdl
FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)
SCALARS = {
    "DateTime": st.datetimes().map(lambda d: nodes.String(d.isoformat() + "Z")),
    "Date": st.dates().map(lambda d: nodes.String(d.isoformat())),
}
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
TYPED_DOCUMENTS = [
    "mutation($i: CompanyCreateInput!) { company { create(input: $i) { recordId } } }",
    "mutation($i: CompanyUpdateInput!) { company { update(input: $i) { recordId } } }",
    "mutation($i: CompanyContactCreateInput!) "
    "{ companyContact { create(input: $i) { recordId } } }",
    "mutation($i: TurnoverCreateInput!) { turnover { create(input: $i) { recordId } } }",
    "query($f: FilterManyCompanyInput!, $s: Int, $l: Int) "
    "{ companyList(filter: $f, skip: $s, limit: $l) { id name coordinates { latitude } } }",
    "query($f: FilterManyTurnoverInput!) { turnoverList(filter: $f) { id amount startDate } }",
]


@pytest.fixture(scope="module")
def box() -> Iterator[SandboxHandle]:
    with start_sandbox(companies=5, rate_limit=0) as handle:
        yield handle


def post_raw(box: SandboxHandle, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(  # noqa: S310 - the loopback sandbox's http URL
        box.url,
        data=body,
        headers={"Content-Type": "application/json", "X-API-KEY": box.api_key},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


def check_answer(status: int, text: str) -> dict[str, Any]:
    assert status == 200, f"HTTP {status}: {text[:300]}"
    assert "Traceback" not in text
    assert 'File "' not in text
    body = json.loads(text)
    assert set(body) <= {"data", "errors", "extensions"}
    assert "data" in body or body.get("errors")
    for error in body.get("errors") or []:
        assert isinstance(error.get("message"), str)
        assert error["message"]
    return body


def post(box: SandboxHandle, document: str, variables: Any = None) -> dict[str, Any]:
    payload = json.dumps({"query": document, "variables": variables}).encode("utf-8")
    return check_answer(*post_raw(box, payload))


@FUZZ
@given(document=from_schema(SDL, custom_scalars=SCALARS))
@pytest.mark.slow
def test_random_valid_documents_get_data_or_graphql_errors(box, document):
    post(box, str(document))


@FUZZ
@given(document=from_schema(SDL, custom_scalars=SCALARS, mode=Mode.NEGATIVE))
def test_random_invalid_documents_get_graphql_errors(box, document):
    body = post(box, str(document))
    assert body.get("errors")


@FUZZ
@given(
    document=st.sampled_from(TYPED_DOCUMENTS),
    variables=st.dictionaries(st.sampled_from(["i", "f", "s", "l", "x"]), JSON_VALUES, max_size=4),
)
def test_random_variables_get_data_or_graphql_errors(box, document, variables):
    post(box, document, variables)


@FUZZ
@given(
    body=st.one_of(
        st.binary(max_size=200),
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries(
            {"query": JSON_VALUES, "variables": JSON_VALUES, "operationName": JSON_VALUES}
        ).map(lambda v: json.dumps(v).encode()),
        st.text(max_size=200).map(lambda t: json.dumps({"query": t}).encode()),
    )
)
def test_random_bodies_get_graphql_errors(box, body):
    check_answer(*post_raw(box, body))
