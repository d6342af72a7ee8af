"""What a new user meets first: the no-Meltano pipe of docs/warehouse.md as written, one clear
line for a bad setting under `--test` and for a missing extra, and the packaging basics (LICENSE,
CHANGELOG, py.typed, Python-version classifiers)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import tomllib

from moovago_sandbox.testing import SandboxHandle
from tests.harness import meltano_project

ROOT = meltano_project.ROOT
BIN = Path(sys.executable).parent
WAREHOUSE_PAGE = (ROOT / "docs" / "warehouse.md").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _readme_pipe() -> str:
    block = re.search(
        r"<!-- pipe -->\n(?:<!--.*-->\n)*```bash\n(.*?)```\n<!-- /pipe -->",
        WAREHOUSE_PAGE,
        re.DOTALL,
    )
    assert block, "docs/warehouse.md lost its <!-- pipe --> block"
    return block[1]


def _run_pipe(script: str, box: SandboxHandle, workdir: Path) -> subprocess.CompletedProcess[str]:
    connection = {"api_url": box.url, "api_key": box.api_key}
    (workdir / "tap.json").write_text(json.dumps(connection))
    target = {
        **connection,
        "max_requests_per_second": 5,
        "summary_path": str(workdir / "summary.json"),
        "rejects_path": str(workdir / "rejects.jsonl"),
    }
    (workdir / "target.json").write_text(json.dumps(target))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_readme_pipe_runs_as_written(
    sandbox_factory: Callable[..., SandboxHandle], tmp_path: Path
) -> None:
    box = sandbox_factory(companies=5)
    proc = _run_pipe(_readme_pipe(), box, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())["streams"]
    assert set(summary) == {"company", "contact", "mandator", "turnover"}
    for stream, counts in summary.items():
        # The tap read what the target then found already there: every row unchanged.
        assert counts["unchanged"] > 0, stream
        assert (counts["created"], counts["updated"], counts["rejected"]) == (0, 0, 0), stream


@pytest.mark.slow
def test_the_plain_pipe_skips_team_with_one_warning(
    sandbox_factory: Callable[..., SandboxHandle], tmp_path: Path
) -> None:
    """`tap-moovago | target-moovago` as anyone first types it: the read-only `team` is
    skipped with one WARNING naming it and counted; `read_only_streams: error` refuses it."""
    box = sandbox_factory(companies=2)
    script = (
        "tap-moovago --config tap.json --discover > catalog.json\n"
        "tap-moovago --config tap.json --catalog catalog.json | target-moovago --config target.json"
    )
    proc = _run_pipe(script, box, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    warnings = [line for line in proc.stderr.splitlines() if "WARNING" in line and "'team'" in line]
    assert len(warnings) == 1, warnings
    assert "read-only" in warnings[0]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["read_only_skipped"] == {"team": 1}
    assert summary["streams"]["company"]["unchanged"] == 2
    target = json.loads((tmp_path / "target.json").read_text())
    strict = {**target, "read_only_streams": "error"}
    (tmp_path / "strict.json").write_text(json.dumps(strict))
    refused = _run_pipe(script.replace("target.json", "strict.json"), box, tmp_path)
    assert refused.returncode != 0
    assert "stream 'team' is read-only" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_tap_test_with_an_invalid_setting_prints_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text(
        json.dumps({"api_url": "http://127.0.0.1:9/graphql", "api_key": "k", "page_size": 0})
    )
    proc = subprocess.run(
        [str(BIN / "tap-moovago"), "--config", str(config), "--test"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, proc.stderr
    assert "Connection test failed" in errors[0]
    assert "page_size" in errors[0]


@pytest.mark.parametrize("module", ["aiohttp", "faker"])
def test_sandbox_serve_without_the_extra_names_it(module: str) -> None:
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"  # as if the extra were not installed
        "from moovago_sandbox.cli import main\n"
        "sys.exit(main(['serve', '--port', '0']))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"moovago-sandbox: `serve` needs {module}: pip install 'moovago-connectors[sandbox]'"
    ]


# -- packaging -----------------------------------------------------------------------------------


def test_license_is_the_full_apache_2_text() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n                           Version 2.0")
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert len(text.splitlines()) > 190
    assert PYPROJECT["project"]["license"] == {"text": "Apache-2.0"}


def test_changelog_has_the_current_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in text
    assert f"## [{PYPROJECT['project']['version']}]" in text


def test_every_package_is_typed() -> None:
    packages = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert "airbyte_moovago" in packages
    for package in packages:
        assert (ROOT / package / "py.typed").is_file(), package
    assert "Typing :: Typed" in PYPROJECT["project"]["classifiers"]


def test_classifiers_name_each_supported_python_version() -> None:
    minimum = re.fullmatch(r">=3\.(\d+)", PYPROJECT["project"]["requires-python"])
    assert minimum
    classifiers = PYPROJECT["project"]["classifiers"]
    for minor in range(int(minimum[1]), 14):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers


def test_console_scripts_of_the_airbyte_adapters() -> None:
    scripts = PYPROJECT["project"]["scripts"]
    assert scripts["source-moovago"] == "airbyte_moovago.source:main"
    assert scripts["destination-moovago"] == "airbyte_moovago.destination:main"
