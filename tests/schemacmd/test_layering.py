"""The packages import only downward: core <- tap/target <- schema command; no installed package
imports tests/; bench/ and scripts/ take from tests/ only the shared helpers in tests/harness/,
which import nothing else of tests/.

Read from the source with `ast`, so a lazy import inside a function counts as much as one at the
top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Packages the core must never import (it holds no Singer code and knows neither connector).
ABOVE_THE_CORE = ("singer_sdk", "tap_moovago", "target_moovago", "moovago_schema")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in a Python file, nested ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


def offenders(folder: str, forbidden: tuple[str, ...], allowed: str = "\0") -> list[str]:
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for line, module in imported_modules(path):
            if module.split(".")[0] in forbidden and not module.startswith(allowed):
                bad.append(f"{path.relative_to(ROOT)}:{line}: imports {module}")
    return bad


def test_the_core_imports_no_singer_code_nor_either_connector() -> None:
    assert offenders("moovago_api", ABOVE_THE_CORE) == []


@pytest.mark.parametrize(
    "folder",
    [
        "moovago_api",
        "tap_moovago",
        "target_moovago",
        "moovago_sandbox",
        "moovago_schema",
        "airbyte_moovago",
    ],
)
def test_no_installed_package_imports_tests(folder: str) -> None:
    assert offenders(folder, ("tests",)) == []


@pytest.mark.parametrize("folder", ["bench", "scripts", "tests/harness"])
def test_bench_scripts_and_harness_take_only_the_harness_from_tests(folder: str) -> None:
    assert offenders(folder, ("tests",), allowed="tests.harness") == []


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The rule can fail: a lazy import inside a function is found, with its line."""
    module = tmp_path / "lazy.py"
    module.write_text(
        "import json\n\ndef f():\n    from singer_sdk.singerlib import MetadataMapping\n"
        "    import tests.reliability.helpers\n",
        encoding="utf-8",
    )
    assert imported_modules(module) == [
        (1, "json"),
        (4, "singer_sdk.singerlib"),
        (5, "tests.reliability.helpers"),
    ]
