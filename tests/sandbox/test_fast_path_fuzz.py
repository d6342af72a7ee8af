"""Random queries (hypothesis-graphql) answer the same on the fast path and through graphql-core."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest
from graphql import (
    ArgumentNode,
    IntValueNode,
    ObjectFieldNode,
    StringValueNode,
    Visitor,
    parse,
    print_ast,
    visit,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import from_schema, nodes

from tests.sandbox.conftest import Local, make_local

INSTANTS = ["2024-01-01T00:00:00.000Z", "2024-06-15T12:30:00.000+02:00", "2030-01-01T00:00:00Z"]
CUSTOM_SCALARS = {
    "DateTime": st.sampled_from(INSTANTS).map(nodes.String),
    "Date": st.sampled_from(["2025-01-01", "2025-12-31"]).map(nodes.String),
}
PAGING = {"limit": 20, "skip": 15, "offset": 15}
LIST_FIELDS = ["team", "companyList", "companyContactList", "mandatorList", "turnoverList"]


@functools.lru_cache(maxsize=1)
def shared_local() -> Local:
    """Built once: the queries only read."""
    return make_local(companies=12)


class _Tame(Visitor):
    """Random team ids and page bounds would mostly test the same two errors: use the key's
    team, and paging values in range (other values stay random)."""

    def __init__(self, team_id: str) -> None:
        super().__init__()
        self.team_id = team_id

    def enter_object_field(self, node: ObjectFieldNode, *_args: Any) -> ObjectFieldNode | None:
        if node.name.value == "teamId":
            return ObjectFieldNode(name=node.name, value=StringValueNode(value=self.team_id))
        return None

    def enter_argument(self, node: ArgumentNode, *_args: Any) -> ArgumentNode | None:
        if node.name.value in PAGING and isinstance(node.value, IntValueNode):
            bound = PAGING[node.name.value]
            value = abs(int(node.value.value)) % bound + (1 if node.name.value == "limit" else 0)
            return ArgumentNode(name=node.name, value=IntValueNode(value=str(value)))
        return None


def tame(query: str, team_id: str) -> str:
    return print_ast(visit(parse(query), _Tame(team_id)))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    query=from_schema(
        shared_local().box.engine.schema,
        fields=LIST_FIELDS,
        custom_scalars=CUSTOM_SCALARS,
        allow_x00=False,
    )
)
@pytest.mark.slow
def test_random_queries_answer_the_same_on_both_paths(query: str) -> None:
    local = shared_local()
    document = tame(str(query), local.team_id)
    fast = local.run(document, fast=True)
    slow = local.run(document, fast=False)
    assert json.dumps(fast, ensure_ascii=False) == json.dumps(slow, ensure_ascii=False)
