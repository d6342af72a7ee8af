"""The target's shape: small modules of one role each, imports only downward (no import cycle:
tests/unit/test_layout_api.py), no lock, nothing reaching across objects with `type: ignore`,
one drain thread, settings declared once, and every private SDK method it overrides saying
why."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from singer_sdk import Target
from singer_sdk.sinks import BatchSink

from target_moovago.target import TargetMoovago
from tests.unit.test_layout_api import imported_names

PACKAGE = Path(__file__).resolve().parents[2] / "target_moovago"
MODULES = sorted(PACKAGE.glob("*.py"))
ABOVE = ("tap_moovago", "moovago_sandbox", "moovago_schema", "tests")
MAX_LINES = 450  # the project-wide rule: a module over 450 lines is a design question


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_each_module_is_small_lock_free_and_reaches_across_nothing(path):
    text = path.read_text("utf-8")
    assert len(text.splitlines()) <= MAX_LINES
    assert "threading" not in imported_names(path)
    assert not re.search(r"\bR?Lock\(", text)  # thread locks (a RunLock is a file lock)
    assert "type: ignore" not in text


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_the_target_imports_only_downward(path):
    imported = imported_names(path)
    assert not [name for name in imported if name.split(".")[0] in ABOVE]


def test_one_drain_thread():
    target = TargetMoovago(config={"api_url": "http://127.0.0.1:9/graphql", "api_key": "k"})
    assert target.max_parallelism == 1


def test_settings_are_declared_once_in_target_py():
    declaring = [p.name for p in MODULES if "th.Property(" in p.read_text("utf-8")]
    assert declaring == ["target.py"]


@pytest.mark.parametrize(("name", "base"), [("target.py", Target), ("sinks.py", BatchSink)])
def test_each_private_sdk_override_says_why(name, base):
    lines = (PACKAGE / name).read_text("utf-8").splitlines()
    tree = ast.parse("\n".join(lines))
    overrides = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        and node.name.startswith("_")
        and not node.name.startswith("__")
        and hasattr(base, node.name)
    ]
    assert overrides
    for node in overrides:
        assert lines[node.lineno - 2].strip().startswith("# Private"), node.name
