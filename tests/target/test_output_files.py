"""Output files (issue 23 item 4): rejects, summary and lock paths that cannot be written are
one line naming the setting, exit 1, before any request that writes; rejects and summary are
created readable by their owner only."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from moovago_sandbox.testing import SandboxHandle, start_sandbox
from tests.harness.runs import SECRET, TARGET_CLI
from tests.target.helpers import mutation_count, schema_message

ROWS = [
    schema_message("company", ["customerCode", "name"]),
    {"type": "RECORD", "stream": "company", "record": {"customerCode": "OUT-1", "name": "a"}},
    {"type": "RECORD", "stream": "company", "record": {"customerCode": "OUT-2", "name": None}},
]
TEXT = "".join(json.dumps(m) + "\n" for m in ROWS)


@pytest.fixture(scope="module")
def box() -> Iterator[SandboxHandle]:
    with start_sandbox(companies=2, api_keys=[SECRET], rate_limit=0) as handle:
        yield handle


def _config(box: SandboxHandle, tmp_path: Path, **overrides: str) -> dict[str, str]:
    return {
        "api_url": box.url,
        "api_key": box.api_key,
        "rejects_path": str(tmp_path / "out" / "rejects.jsonl"),
        "summary_path": str(tmp_path / "out" / "summary.json"),
        "lock_dir": str(tmp_path / "locks"),
        **overrides,
    }


def _cli(config: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The target's CLI. Not the harness's run_target: it reads the output files back, and
    these are directories or /dev/full."""
    (tmp_path / "config.json").write_text(json.dumps(config))
    return subprocess.run(
        [TARGET_CLI, "--config", str(tmp_path / "config.json")],
        input=TEXT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )


def _a_file(tmp_path: Path) -> Path:
    path = tmp_path / "plain-file"
    path.write_text("x")
    return path


CASES = {
    "rejects_path a directory": ("rejects_path", lambda tmp: str(tmp)),
    "rejects_path below a file": ("rejects_path", lambda tmp: str(_a_file(tmp) / "r.jsonl")),
    "summary_path a directory": ("summary_path", lambda tmp: str(tmp)),
    "summary_path below a file": ("summary_path", lambda tmp: str(_a_file(tmp) / "s.json")),
    "lock_dir below a file": ("lock_dir", lambda tmp: str(_a_file(tmp) / "locks")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_output_that_cannot_be_written_stops_before_any_write(box, tmp_path, case):
    setting, make = CASES[case]
    (tmp_path / "w").mkdir()
    config = _config(box, tmp_path, **{setting: make(tmp_path / "w")})
    before = mutation_count(box)
    run = _cli(config, tmp_path)
    assert run.returncode == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    (line,) = [x for x in run.stderr.splitlines() if "error:" in x]
    assert setting in line
    assert config[setting] in line
    assert mutation_count(box) == before  # nothing sent


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory")
def test_an_unwritable_directory_is_one_line(box, tmp_path):
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o500)
    config = _config(box, tmp_path, rejects_path=str(locked / "r.jsonl"))
    before = mutation_count(box)
    run = _cli(config, tmp_path)
    assert run.returncode == 1
    assert "rejects_path" in run.stderr.splitlines()[-1]
    assert mutation_count(box) == before


def test_a_full_disk_under_the_rejects_file_is_one_line_naming_it(box, tmp_path):
    config = _config(box, tmp_path, rejects_path="/dev/full")  # every write: ENOSPC
    run = _cli(config, tmp_path)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    assert SECRET not in run.stderr
    (line,) = [x for x in run.stderr.splitlines() if "error:" in x]
    assert "rejects_path /dev/full cannot be written (No space left on device)" in line


def test_rejects_and_summary_are_created_owner_only(box, tmp_path):
    config = _config(box, tmp_path)
    old = os.umask(0o022)
    try:
        run = _cli(config, tmp_path)
    finally:
        os.umask(old)
    assert run.returncode == 0, run.stderr[-2000:]
    for key in ("rejects_path", "summary_path"):
        mode = stat.S_IMODE(Path(config[key]).stat().st_mode)
        assert mode == 0o600, (key, oct(mode))
    assert "OUT-2" in Path(config["rejects_path"]).read_text()
