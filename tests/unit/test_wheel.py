"""The wheel ships only what users run: every module of its packages is reached from an entry
point (or is the documented start-a-sandbox helper), none only from tests, bench/ or scripts/.

Read from pyproject.toml and the sources with `ast`: no build needed, so it runs in the fast lane.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
#: Shipped on purpose though no entry point imports it: documented for users' own tests.
PUBLIC_HELPERS = {"moovago_sandbox.testing"}


def shipped_modules() -> dict[str, Path]:
    """Module name -> file, for every Python file of the wheel's packages."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = config["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    modules = {}
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The shipped modules `path` imports (relative and nested imports included), with the
    packages above each, and any shipped module named in a string (`python -m ...`)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add(node.value)
    with_parents = {".".join(m.split(".")[:i]) for m in found for i in range(1, m.count(".") + 2)}
    return with_parents & known


def entry_point_modules() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    project = config["project"]
    targets = list(project.get("scripts", {}).values())
    for group in project.get("entry-points", {}).values():
        targets += list(group.values())
    return {target.split(":")[0] for target in targets}


def reached_from(roots: set[str], modules: dict[str, Path]) -> set[str]:
    """Every module of `modules` that `roots` import, directly or through others."""
    known = set(modules)
    todo = [m for m in roots if m in known]
    reached: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo += imports_of(name, modules[name], known) - reached
    return reached


def test_no_shipped_module_is_only_for_tests_bench_or_scripts() -> None:
    modules = shipped_modules()
    assert "moovago_api.client" in modules
    roots = entry_point_modules() | PUBLIC_HELPERS
    reached = reached_from(roots | {".".join(m.split(".")[:1]) for m in roots}, modules)
    unreached = sorted(set(modules) - reached)
    assert unreached == [], (
        "shipped in the wheel but run by no entry point (move test helpers to tests/): "
        + ", ".join(unreached)
    )


def test_the_check_sees_a_test_only_module(tmp_path: Path) -> None:
    """The rule can fail: a module reached by nothing is found, one reached by a chain is not."""
    (tmp_path / "entry.py").write_text("from pkg import used\n", encoding="utf-8")
    (tmp_path / "used.py").write_text("from . import deeper\n", encoding="utf-8")
    (tmp_path / "deeper.py").write_text("x = 1\n", encoding="utf-8")
    (tmp_path / "helper.py").write_text("import pkg.deeper\n", encoding="utf-8")
    modules = {f"pkg.{p.stem}": p for p in tmp_path.glob("*.py")}
    assert reached_from({"pkg.entry"}, modules) == {"pkg.entry", "pkg.used", "pkg.deeper"}
    assert set(modules) - reached_from({"pkg.entry"}, modules) == {"pkg.helper"}
