"""In-process sandbox for the semantic tests: the same Sandbox object the server runs, no HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from moovago_sandbox.app import Sandbox, SandboxConfig
from moovago_sandbox.engine import RequestContext


@dataclass
class Local:
    box: Sandbox
    team_id: str
    other_team: str

    def run(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        team: str | None = None,
        operation_name: str | None = None,
        fast: bool | None = None,
    ) -> dict[str, Any]:
        team = team or self.team_id
        ctx = RequestContext(self.box.store, team, self.box.owners[team])
        result = self.box.engine.run(ctx, query, variables, operation_name, fast=fast)
        for entity, kind in ctx.mutations:
            self.box.mutations[entity][kind] += 1
        return result

    def rows(self, entity: str, team: str | None = None) -> list[dict[str, Any]]:
        team = team or self.team_id
        return [r for r in self.box.store.export()[entity] if r["teamId"] == team]


def make_local(companies: int = 20, seed: int = 42) -> Local:
    box = Sandbox(
        SandboxConfig(companies=companies, seed=seed, api_keys=[("a", None), ("b", None)])
    )
    return Local(box, box.keys["a"], box.keys["b"])


@pytest.fixture
def local() -> Local:
    """A fresh in-memory sandbox: team of key 'a' (20 companies) and of key 'b' (5)."""
    return make_local()
