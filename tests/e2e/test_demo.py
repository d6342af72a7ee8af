"""`make demo` (scripts/demo.py) runs the whole loop, prints what it promises and leaves nothing
running."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.harness import meltano_project

pytestmark = pytest.mark.e2e

DEMO = meltano_project.ROOT / "scripts" / "demo.py"


def test_demo_prints_counts_summary_and_changed_rows(
    meltano_installed: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # Outside pytest's temp base, which other pytest sessions reset to mode 0700 (see conftest).
    workdir = Path(tempfile.mkdtemp(prefix="moovago-e2e-demo-")) / "demo"
    request.addfinalizer(lambda: shutil.rmtree(workdir.parent, ignore_errors=True))
    proc = subprocess.run(
        [sys.executable, str(DEMO), "--workdir", str(workdir), "--companies", "8"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env=meltano_project.base_env(tmp_path),
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]

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
