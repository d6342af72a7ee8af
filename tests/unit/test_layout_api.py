"""No import cycle across the connectors' packages: function-level imports count, imports under
`if TYPE_CHECKING:` do not (they never run)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("moovago_api", "tap_moovago", "target_moovago")


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imported_names(path: Path) -> set[str]:
    """Every module `path` imports when it runs, at any level (TYPE_CHECKING blocks left out)."""
    tree = ast.parse(path.read_text("utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for n in ast.walk(node))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            # `from moovago_api import documents` imports the module moovago_api.documents
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def runtime_imports(path: Path) -> set[str]:
    """Our modules `path` imports when it runs."""
    return {name for name in imported_names(path) if name in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of `graph` as the list of its modules, or [] when there is none."""
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> list[str]:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return []
        for child in sorted(graph.get(module, ())):
            cycle = visit(child, (*path, module))
            if cycle:
                return cycle
        done.add(module)
        return []

    for module in sorted(graph):
        cycle = visit(module, ())
        if cycle:
            return cycle
    return []


def test_the_checker_sees_function_level_imports_and_skips_type_checking(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from moovago_api import schema\n"
        "if TYPE_CHECKING:\n    from moovago_api.pager import Pager\n"
        "def f():\n    from moovago_api.documents import batch_document\n",
        encoding="utf-8",
    )
    assert runtime_imports(source) == {
        "moovago_api",
        "moovago_api.schema",
        "moovago_api.documents",
    }
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_across_the_core_the_tap_and_the_target():
    assert {"moovago_api.schema", "tap_moovago.tap", "target_moovago.target"} <= set(MODULES)
    graph = {module: runtime_imports(path) for module, path in MODULES.items()}
    assert not find_cycle(graph), " -> ".join(find_cycle(graph))


# Issue 22's goal is 6,500 lines for the three packages; this round reached the figure below.
# The ceiling only moves down: a change that adds lines removes as many elsewhere.
MAX_TOTAL_LINES = 7_999
MAX_MODULE_LINES = 450  # the project-wide rule: a module over 450 lines is a design question
MAX_TARGET_MODULES = 10  # not counting the package's __init__.py


def test_the_connectors_stay_in_proportion():
    lines = {module: len(path.read_text("utf-8").splitlines()) for module, path in MODULES.items()}
    assert sum(lines.values()) <= MAX_TOTAL_LINES, sum(lines.values())
    assert not {m: n for m, n in lines.items() if n > MAX_MODULE_LINES}
    target = [m for m in MODULES if m.startswith("target_moovago.")]
    assert len(target) <= MAX_TARGET_MODULES, sorted(target)


def test_no_installed_module_is_over_450_lines():
    installed = [p.parent for p in ROOT.glob("*/__init__.py") if p.parent.name != "tests"]
    assert {"moovago_schema", "moovago_sandbox", "airbyte_moovago"} <= {p.name for p in installed}
    long = {
        str(path.relative_to(ROOT)): n
        for package in installed
        for path in package.rglob("*.py")
        if (n := len(path.read_text("utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not long, long
