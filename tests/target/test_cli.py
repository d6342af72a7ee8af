"""The command line: refused streams end with one error line, versions name the distribution."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
VERSION = metadata.version("moovago-connectors")


def run_cli(*args: str, stdin: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, input=stdin, capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )


def schema_line(stream: str) -> str:
    message = {
        "type": "SCHEMA",
        "stream": stream,
        "schema": {"type": "object", "properties": {"id": {}, "name": {}}},
        "key_properties": [],
    }
    return json.dumps(message) + "\n"


@pytest.mark.parametrize(
    ("stream", "expected"),
    [("team", "read-only"), ("invoice", "not a Moovago entity")],
)
def test_a_refused_stream_is_one_error_line_and_a_failing_exit(tmp_path, stream, expected):
    config = tmp_path / "config.json"
    # Nothing listens there: the stream is refused before any request.
    settings = {"api_url": "http://127.0.0.1:9/graphql", "api_key": "k"}
    config.write_text(json.dumps({**settings, "read_only_streams": "error"}))
    command = (str(BIN / "target-moovago"), "--config", str(config))
    done = run_cli(*command, stdin=schema_line(stream), cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith("target-moovago: error: ")
    assert f"stream {stream!r}" in errors[0]
    assert expected in errors[0]
    assert done.stdout == ""


@pytest.mark.parametrize("plugin", ["tap-moovago", "target-moovago"])
def test_version_and_about_name_the_package_version(plugin):
    version = run_cli(str(BIN / plugin), "--version")
    assert version.returncode == 0
    assert version.stdout.strip().startswith(f"{plugin} v{VERSION}, Meltano SDK v")
    about = run_cli(str(BIN / plugin), "--about", "--format", "json")
    assert about.returncode == 0
    assert json.loads(about.stdout)["version"] == VERSION
    assert "could not be detected" not in version.stdout + about.stdout
