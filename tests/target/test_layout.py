"""The target's shape: small modules of one role each, imports only downward, no import cycle,
no lock, nothing reaching across objects with `type: ignore`, one drain thread."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from target_moovago.target import TargetMoovago

PACKAGE = Path(__file__).resolve().parents[2] / "target_moovago"
MODULES = sorted(PACKAGE.glob("*.py"))
ABOVE = ("tap_moovago", "moovago_sandbox", "moovago_schema", "tests")
MAX_LINES = 450  # the project-wide rule: a module over 450 lines is a design question


def runtime_imports(path: Path) -> set[str]:
    """Modules imported when `path` runs (imports under `if TYPE_CHECKING:` left out)."""
    tree = ast.parse(path.read_text("utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for n in ast.walk(node))
    names = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_each_module_is_small_lock_free_and_reaches_across_nothing(path):
    text = path.read_text("utf-8")
    assert len(text.splitlines()) <= MAX_LINES
    assert "threading" not in runtime_imports(path)
    assert not re.search(r"\bR?Lock\(", text)  # thread locks (a RunLock is a file lock)
    assert "type: ignore" not in text


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_the_target_imports_only_downward(path):
    imported = runtime_imports(path)
    assert not [name for name in imported if name.split(".")[0] in ABOVE]


def test_no_import_cycle_inside_the_target():
    graph = {
        f"target_moovago.{p.stem}": {
            n for n in runtime_imports(p) if n.startswith("target_moovago.")
        }
        for p in MODULES
    }
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module in done:
            return
        for child in graph.get(module, ()):
            visit(child, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())


def test_one_drain_thread():
    target = TargetMoovago(config={"api_url": "http://127.0.0.1:9/graphql", "api_key": "k"})
    assert target.max_parallelism == 1
