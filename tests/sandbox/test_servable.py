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
# Every variant and family file but compose.gql (its `_id` ids and root mutations are not served).
SERVED = sorted(p for p in VARIANTS.rglob("*.gql") if p.name != "compose.gql")


@pytest.mark.parametrize("path", [None, *SERVED], ids=lambda p: p.name if p else "bundled")
def test_every_file_the_sandbox_serves_has_no_plan_it_would_miss(path):
    model = build_model(build_schema(load_schema(path).sdl))
    assert unserved(path, model) == []


def test_a_file_with_plans_it_cannot_serve_is_refused_at_start_in_one_line(tmp_path):
    compose = VARIANTS / "families" / "compose.gql"
    command = [sys.executable, "-m", "moovago_sandbox.cli", "serve", "--port", "0"]
    command += ["--schema", str(compose), "--db", str(tmp_path / "box.db")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"moovago-sandbox: cannot serve {compose}: it does not serve ")
    assert "stream 'company' (ids in Company._id)" in lines[0]
