"""BATCH manifests that point anywhere (issue 23 item 2): a URL, a /proc file, a huge file
without line breaks, a small gzip inflating to one huge line. Each is one line naming the
manifest entry, exit 1, no request to the URL, the target's own peak memory under 512 MiB."""

from __future__ import annotations

import gzip
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from moovago_sandbox.testing import SandboxHandle, start_sandbox
from target_moovago.reader import MAX_LINE_BYTES, batch_file
from tests.harness.runs import SECRET
from tests.target.helpers import mutation_count, schema_message

PEAK_LIMIT_KIB = 512 * 1024
# The target's CLI with its own peak RSS (VmHWM, not the inherited ru_maxrss) written at exit.
_MEASURED_CLI = """
import atexit, os, sys
def peak():
    with open("/proc/self/status") as status:
        kib = next(int(l.split()[1]) for l in status if l.startswith("VmHWM:"))
    with open(os.environ["PEAK_FILE"], "w") as out:
        out.write(str(kib))
atexit.register(peak)
sys.argv = ["target-moovago", "--config", sys.argv[1]]
from target_moovago.target import TargetMoovago
TargetMoovago.cli()
"""


@pytest.fixture(scope="module")
def box() -> Iterator[SandboxHandle]:
    with start_sandbox(companies=2, api_keys=[SECRET], rate_limit=0) as handle:
        yield handle


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = b'{"customerCode": "FETCHED", "name": "fetched"}\n'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str]]]:
    """A file server on 127.0.0.1 that records every request it gets."""
    hits: list[str] = []
    handler = type("Handler", (_Recorder,), {"hits": hits})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


def _run(box: SandboxHandle, tmp_path: Path, entry: str, compression: str) -> tuple[int, str, int]:
    config = {
        "api_url": box.url,
        "api_key": box.api_key,
        "rejects_path": str(tmp_path / "rejects.jsonl"),
        "lock_dir": str(tmp_path / "locks"),
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    lines = [
        schema_message("company", ["customerCode", "name"]),
        {
            "type": "BATCH",
            "stream": "company",
            "encoding": {"format": "jsonl", "compression": compression},
            "manifest": [entry],
        },
    ]
    peak_file = tmp_path / "peak"
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURED_CLI, str(tmp_path / "config.json")],
        input="".join(json.dumps(m) + "\n" for m in lines),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "PEAK_FILE": str(peak_file)},
    )
    return proc.returncode, proc.stderr, int(peak_file.read_text())


def _refused(box, tmp_path, entry: str, why: str, compression: str = "none") -> None:
    before = mutation_count(box)
    code, stderr, peak_kib = _run(box, tmp_path, entry, compression)
    assert code == 1, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-2000:]
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, stderr[-2000:]
    assert f"input line 2, stream 'company': BATCH file {entry} {why}" in errors[0]
    assert peak_kib < PEAK_LIMIT_KIB, f"peak RSS {peak_kib // 1024} MiB"
    assert mutation_count(box) == before
    assert SECRET not in stderr


def test_an_http_manifest_is_refused_and_never_fetched(box, tmp_path, recorder):
    base, hits = recorder
    _refused(box, tmp_path, f"{base}/rows.jsonl", "is a http:// URL")
    assert hits == []


def test_proc_self_environ_is_refused(box, tmp_path):
    _refused(box, tmp_path, "/proc/self/environ", "is not a regular data file")


def test_a_device_named_by_file_url_is_refused(box, tmp_path):
    _refused(box, tmp_path, "file:///dev/zero", "is not a regular data file")


@pytest.mark.slow
def test_a_5_gib_file_without_line_breaks_is_refused_with_bounded_memory(box, tmp_path):
    huge = tmp_path / "huge.jsonl"
    with huge.open("wb") as out:
        out.truncate(5 * 2**30)  # sparse: no disk used
    _refused(box, tmp_path, str(huge), f"line 1 is longer than {MAX_LINE_BYTES // 2**20} MiB")


@pytest.mark.slow
def test_a_1_mb_gzip_of_one_huge_line_is_refused_with_bounded_memory(box, tmp_path):
    member = gzip.compress(b"a" * (8 << 20), compresslevel=9)
    bomb = tmp_path / "bomb.jsonl.gz"
    bomb.write_bytes(member * 128)  # 1 GiB of one line once inflated
    assert bomb.stat().st_size < 1_500_000
    _refused(box, tmp_path, bomb.as_uri(), "line 1 is longer than", compression="gzip")


def test_local_files_resolve_and_other_protocols_need_the_setting(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text("{}\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(data)
    assert batch_file(link.as_uri(), ()) == str(data)
    assert batch_file(str(link), ()) == str(data)
    with pytest.raises(ValueError, match="lists 's3'"):
        batch_file("s3://bucket/rows.jsonl", ())
    assert batch_file("s3://bucket/rows.jsonl", {"s3"}) == "s3://bucket/rows.jsonl"
    with pytest.raises(ValueError, match="naming a host"):
        batch_file("file://elsewhere/rows.jsonl", ())
    (tmp_path / "proc-link").symlink_to("/proc/self/environ")
    with pytest.raises(ValueError, match="not a regular data file"):
        batch_file(str(tmp_path / "proc-link"), ())
    with pytest.raises(ValueError, match="is not a regular data file"):
        batch_file(str(tmp_path), ())
