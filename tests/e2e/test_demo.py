"""`make demo` (scripts/demo.py) runs the whole loop, prints what it promises and leaves nothing
running; `make demo KEEP=1` first leaves both servers up until Ctrl-C."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

from tests.harness import meltano_project

pytestmark = pytest.mark.e2e

DEMO = meltano_project.ROOT / "scripts" / "demo.py"


def test_demo_prints_counts_summary_and_changed_rows(
    meltano_installed: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """With --keep (`make demo KEEP=1`): both servers answer until Ctrl-C, then stop."""
    # Outside pytest's temp base, which other pytest sessions reset to mode 0700 (see conftest).
    workdir = Path(tempfile.mkdtemp(prefix="moovago-e2e-demo-")) / "demo"
    request.addfinalizer(lambda: shutil.rmtree(workdir.parent, ignore_errors=True))
    command = [sys.executable, str(DEMO), "--workdir", str(workdir), "--companies", "8", "--keep"]
    env = meltano_project.base_env(tmp_path)
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as demo:
        try:
            assert demo.stdout is not None
            lines = []
            for line in demo.stdout:
                lines.append(line)
                if line.startswith("Press Ctrl-C"):
                    break
            kept = "".join(lines)
            assert "Press Ctrl-C to stop both." in kept, kept[-3000:]
            pg_url = re.search(r"PostgreSQL: (postgresql://\S+)", kept)
            sandbox = re.search(r"Sandbox: (http://127\.0\.0\.1:\d+)/graphql", kept)
            assert pg_url is not None
            assert sandbox is not None
            with psycopg.connect(pg_url[1]) as conn:
                (count,) = conn.execute("SELECT count(*) FROM moovago.company").fetchone()
            assert count == 8
            with urllib.request.urlopen(sandbox[1] + "/_sandbox/stats", timeout=30) as answer:  # noqa: S310
                assert answer.status == 200
            assert "export MOOVAGO_SANDBOX_URL=" in kept
            demo.send_signal(signal.SIGINT)
            rest, _ = demo.communicate(timeout=120)
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.communicate()
    out = kept + rest
    assert demo.returncode == 0, out[-3000:]

    counts = dict(re.findall(r"moovago\.(\w+)\s+(\d+)", out))
    assert counts.keys() == {"team", "company", "contact", "mandator", "turnover"}
    assert counts["company"] == "8"
    summary = json.loads((workdir / "target-moovago-summary.json").read_text())
    company = summary["streams"]["company"]
    assert (company["created"], company["updated"], company["rejected"]) == (2, 3, 0)
    # The three updated rows as read back from the sandbox: city, postal code, phone.
    assert len(re.findall(r"\bLyon +\d{5} +\+33 4 72 10 20 30", out)) == 3
    assert "DEMO-0001" in out
    assert "DEMO-0002" in out

    # Both servers are gone: the sandbox's port refuses connections, the data dir is deleted.
    url = re.search(r"sandbox\s+(http://127\.0\.0\.1:\d+)/graphql", out)
    assert url is not None
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url[1] + "/_sandbox/stats", timeout=10)  # noqa: S310 (loopback)
    assert not (workdir / "pgdata").exists()
