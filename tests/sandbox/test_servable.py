"""The sandbox serves every plan the connectors read from a file, or refuses the file at start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from graphql import build_schema

from moovago_api.schema import load_schema
from moovago_sandbox.model import build_model
from moovago_sandbox.servable import unserved

VARIANTS = Path(__file__).resolve().parents[1] / "schema_variants"
SERVED = sorted(VARIANTS.rglob("*.gql"))  # every variant and family file


@pytest.mark.parametrize("path", [None, *SERVED], ids=lambda p: p.name if p else "bundled")
def test_every_file_the_sandbox_serves_has_no_plan_it_would_miss(path):
    model = build_model(build_schema(load_schema(path).sdl))
    assert unserved(path, model) == []


def test_a_file_with_plans_it_cannot_serve_is_refused_at_start_in_one_line(tmp_path):
    # A strict lower bound (`gt` only): the tap would send it, the sandbox serves `gte` only.
    sdl = (VARIANTS / "families" / "operators_filter.gql").read_text(encoding="utf-8")
    compose = tmp_path / "strict_bound.gql"
    compose.write_text(sdl.replace("  gte: DateTime\n", ""), encoding="utf-8")
    command = [sys.executable, "-m", "moovago_sandbox.cli", "serve", "--port", "0"]
    command += ["--schema", str(compose), "--db", str(tmp_path / "box.db")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"moovago-sandbox: cannot serve {compose}: it does not serve ")
    assert "stream 'company' (the incremental bound filter._operators.updatedAt.gt)" in lines[0]


def _post(handle, query: str, variables: dict) -> dict:
    import json
    import urllib.request

    body = json.dumps({"query": query, "variables": variables}).encode()
    headers = {"Content-Type": "application/json", "X-API-KEY": handle.api_key}
    request = urllib.request.Request(handle.url, data=body, headers=headers)  # noqa: S310
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
        return json.loads(response.read())


@pytest.mark.slow
def test_a_file_declaring_a_sort_gets_no_order_without_it(sandbox_factory):
    box = sandbox_factory(
        companies=30, extra_args=["--schema", str(VARIANTS / "families" / "sort_enum.gql")]
    )
    query = (
        "query($f: FilterManyCompanyInput!, $s: SortFindManyCompanyInput) "
        "{ companyList(filter: $f, sort: $s, skip: 0, limit: 1000) { id } }"
    )
    team = {"f": {"teamId": box.team_id}}

    def ids(**sort) -> list[str]:
        return [r["id"] for r in _post(box, query, {**team, **sort})["data"]["companyList"]]

    sorted_ids = ids(s="_ID_ASC")
    assert sorted_ids == sorted(sorted_ids)
    unsorted = [ids() for _ in range(3)]
    assert all(sorted(u) == sorted_ids for u in unsorted)
    assert any(u != sorted_ids for u in unsorted), "no sort sent: no order promised"
