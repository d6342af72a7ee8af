"""docs/design.md's layout table names every module of each package, and only modules that exist;
the stream-plan page is linked where users look for it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [
    "moovago_api",
    "tap_moovago",
    "target_moovago",
    "moovago_schema",
    "moovago_sandbox",
    "airbyte_moovago",
]


def layout_rows() -> dict[str, list[str]]:
    """Module names listed under each package's row of the layout table."""
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    table = text.split("## Layout\n", 1)[1].split("\n\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    package = ""
    for line in table.splitlines():
        found = re.match(r"\| (\*\*)?`([^`]+)`", line)
        if found is None:
            continue
        if found.group(1):
            package = found.group(2).rstrip("/")
            rows[package] = []
        else:
            rows[package].append(found.group(2))
    return rows


def test_the_layout_table_lists_each_module_once_and_no_other() -> None:
    rows = layout_rows()
    for package in PACKAGES:
        modules = sorted(p.name for p in (ROOT / package).glob("*.py") if p.name != "__init__.py")
        listed = [name for name in rows[package] if name.endswith(".py")]
        assert sorted(listed) == modules, package
    assert rows["tests"] == ["harness/"]
    assert (ROOT / "tests" / "harness").is_dir()
    assert not (ROOT / "moovago_sandbox" / "harness").exists()


def test_the_stream_plan_page_is_linked_from_the_readme_and_the_schema_tool_page() -> None:
    assert "(docs/stream-plan.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(stream-plan.md)" in (ROOT / "docs" / "schema-tool.md").read_text(encoding="utf-8")
    assert (ROOT / "docs" / "stream-plan.md").is_file()
