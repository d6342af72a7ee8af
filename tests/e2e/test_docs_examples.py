"""The examples in README.md and docs/ run as written: every fenced bash or python block marked
`<!-- run: sandbox -->` (against a fresh sandbox), `<!-- run: offline -->` (nothing to reach) or
`<!-- run: pyairbyte -->` (PyAirbyte's venv, `make pyairbyte`) is executed, and must exit 0.

Each runs in its own directory holding `tap.json`, `target.json`, `source.json` and
`destination.json` (the sandbox's `api_url` and `api_key`), with `MOOVAGO_SANDBOX_URL`,
`MOOVAGO_SANDBOX_API_KEY`, `MOOVAGO_API_URL` and `MOOVAGO_API_KEY` set to the sandbox and the
connectors on PATH."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from moovago_sandbox.testing import start_sandbox
from tests.harness import meltano_project

ROOT = meltano_project.ROOT
BIN = Path(sys.executable).parent
PYAIRBYTE_PYTHON = ROOT / ".venv-pyairbyte" / "bin" / "python"
BLOCK = re.compile(
    r"^([ \t]*)<!-- run: (sandbox|offline|pyairbyte) -->\n(?:\1<!--.*-->\n)*"
    r"\1```(bash|python)\n(.*?)\n\1```",
    re.DOTALL | re.MULTILINE,
)

MARKER = re.compile(r"^[ \t]*<!-- run: ", re.MULTILINE)


@dataclass(frozen=True)
class Example:
    page: str
    line: int
    where: str  # sandbox | offline | pyairbyte
    language: str
    code: str

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"


def examples() -> list[Example]:
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            indent, where, language, code = match.groups()
            code = "\n".join(line.removeprefix(indent) for line in code.split("\n"))
            line = text.count("\n", 0, match.start()) + 1
            found.append(Example(str(path.relative_to(ROOT)), line, where, language, code))
    return found


EXAMPLES = examples()


def test_the_docs_mark_examples_to_run() -> None:
    pages = {example.page for example in EXAMPLES}
    assert "README.md" in pages
    assert len(pages) >= 4
    assert {example.where for example in EXAMPLES} == {"sandbox", "offline", "pyairbyte"}
    # A marker without its block (a typo, a wrong fence) would silently run nothing.
    markers = sum(
        len(MARKER.findall(path.read_text(encoding="utf-8")))
        for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    )
    assert markers == len(EXAMPLES)


def _run(example: Example, workdir: Path, env: dict[str, str], python: Path) -> None:
    if example.language == "bash":
        command = ["bash", "-e", "-o", "pipefail", "-c", example.code]
    else:
        command = [str(python), "-c", example.code]
    proc = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, f"{example.name}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-5000:]


def _example_env(workdir: Path, url: str, key: str) -> dict[str, str]:
    connection = {"api_url": url, "api_key": key}
    for name in ("tap", "target", "source", "destination"):
        (workdir / f"{name}.json").write_text(json.dumps(connection), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_MOOVAGO", "TARGET_"))}
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env['PATH']}",
            "MOOVAGO_SANDBOX_URL": url,
            "MOOVAGO_SANDBOX_API_KEY": key,
            "MOOVAGO_API_URL": url,
            "MOOVAGO_API_KEY": key,
            # PyAirbyte: never a registry look-up nor telemetry; its files in the workdir.
            "AIRBYTE_OFFLINE_MODE": "1",
            "DO_NOT_TRACK": "1",
            "AIRBYTE_LOGGING_ROOT": str(workdir / "airbyte-logs"),
            "AIRBYTE_CACHE_ROOT": str(workdir / "airbyte-cache"),
            "HOME": str(workdir),
        }
    )
    return env


@pytest.mark.slow
@pytest.mark.parametrize(
    "example",
    [e for e in EXAMPLES if e.where in ("sandbox", "offline")],
    ids=lambda e: e.name,
)
def test_a_documented_example_runs_as_written(example: Example, tmp_path: Path) -> None:
    with start_sandbox(companies=5) as box:
        _run(example, tmp_path, _example_env(tmp_path, box.url, box.api_key), Path(sys.executable))


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize(
    "example", [e for e in EXAMPLES if e.where == "pyairbyte"], ids=lambda e: e.name
)
def test_a_documented_pyairbyte_example_runs_as_written(example: Example, tmp_path: Path) -> None:
    subprocess.run(["make", "-s", "pyairbyte"], cwd=ROOT, check=True, capture_output=True)
    with start_sandbox(companies=3) as box:
        _run(example, tmp_path, _example_env(tmp_path, box.url, box.api_key), PYAIRBYTE_PYTHON)
