"""Start the sandbox from tests and benchmarks: a real subprocess on a free loopback port.

    with start_sandbox(companies=30) as box:
        box.url, box.api_key, box.team_id, box.stats(), box.export()

`shared_sandbox()` starts one per process on first use and stops it at exit; tests treat it as
read-only (anything that writes or needs faults takes its own from `start_sandbox`).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STARTUP_TIMEOUT = 120.0
MODE_FLAGS = (
    "schema",
    "max_page_size",
    "ignore_limit",
    "default_page_size",
    "unstable_order",
    "fault_churn",
    "no_date_header",
    "clock_offset",
    "latency_read",
    "latency_mutation",
    "latency_jitter",
    "max_body_bytes",
)
FIRST_LINE_PREFIX = "moovago-sandbox listening on "


class SandboxStartError(RuntimeError):
    """The sandbox process exited or stayed silent instead of printing its first line."""


@dataclass
class SandboxHandle:
    """A running sandbox: where it listens, its keys, and its control endpoints."""

    url: str
    api_key: str
    team_id: str
    keys: dict[str, str]
    process: subprocess.Popen[str] | None = field(default=None, repr=False)
    log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return self.url.rsplit("/graphql", 1)[0]

    def _call(self, method: str, path: str) -> Any:
        request = urllib.request.Request(  # noqa: S310
            self.base_url + path, method=method, data=b"" if method == "POST" else None
        )
        # the http URL the sandbox printed, never a file: or custom scheme
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return json.loads(response.read().decode("utf-8"))

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_sandbox/stats")

    def reset(self) -> None:
        self._call("POST", "/_sandbox/reset")

    def export(self) -> dict[str, list[dict[str, Any]]]:
        return self._call("GET", "/_sandbox/export")

    def requests(self) -> list[dict[str, Any]]:
        return self._call("GET", "/_sandbox/requests")

    def log(self) -> str:
        """What the server wrote on stderr so far (one line per request)."""
        return self.log_path.read_text(encoding="utf-8") if self.log_path else ""


def _parse_line(line: str) -> tuple[str, str, str]:
    words = dict(w.split("=", 1) for w in line.split() if "=" in w)
    url = next((w for w in line.split() if w.startswith("http")), "")
    return url, words.get("api_key", ""), words.get("team_id", "")


def sandbox_command(
    *,
    companies: int = 30,
    seed: int = 42,
    api_keys: Sequence[str] | None = None,
    rate_limit: int = 5,
    faults: str | Path | Mapping[str, Any] | None = None,
    retry_after: bool = False,
    extra_args: Sequence[str] = (),
    **modes: Any,
) -> list[str]:
    """The `moovago-sandbox serve` command line; `modes` are the server-mode flags by their
    Python names: schema (a path), max_page_size, ignore_limit, default_page_size,
    unstable_order, fault_churn ("N:D:I"), no_date_header, clock_offset, latency_read,
    latency_mutation, latency_jitter, max_body_bytes (None or False leaves a flag out)."""
    cmd = [sys.executable, "-m", "moovago_sandbox.cli", "serve", "--host", "127.0.0.1"]
    cmd += ["--port", "0", "--seed", str(seed), "--companies", str(companies)]
    cmd += ["--rate-limit", str(rate_limit)]
    for key in api_keys or ():
        cmd += ["--api-key", key]
    if faults is not None:
        cmd += [
            "--faults",
            json.dumps(dict(faults)) if isinstance(faults, Mapping) else str(faults),
        ]
    if retry_after:
        cmd.append("--retry-after")
    unknown = sorted(set(modes) - set(MODE_FLAGS))
    if unknown:
        raise TypeError(f"sandbox_command: unknown keyword {unknown[0]!r}")
    for name in MODE_FLAGS:
        value = modes.get(name)
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        cmd += [flag] if value is True else [flag, str(value)]
    return [*cmd, *extra_args]


@contextlib.contextmanager
def start_sandbox(
    *,
    companies: int = 30,
    seed: int = 42,
    api_keys: list[str] | None = None,
    rate_limit: int = 5,
    faults: str | Path | dict | None = None,
    retry_after: bool = False,
    extra_args: Sequence[str] = (),
    **modes: Any,
) -> Iterator[SandboxHandle]:
    """Run `moovago-sandbox serve` on a free port until the block ends (`modes`: the
    server-mode flags, as in `sandbox_command`)."""
    cmd = sandbox_command(
        companies=companies,
        seed=seed,
        api_keys=api_keys,
        rate_limit=rate_limit,
        faults=faults,
        retry_after=retry_after,
        extra_args=extra_args,
        **modes,
    )
    log_fd, log_name = tempfile.mkstemp(prefix="moovago-sandbox-", suffix=".log")
    log_path = Path(log_name)
    with os.fdopen(log_fd, "w") as log_file:
        process = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=log_file, text=True, encoding="utf-8"
        )
    try:
        handle = _wait_ready(process, len(api_keys or ()) or 1, log_path)
        yield handle
    finally:
        _stop(process)
        log_path.unlink(missing_ok=True)


def _wait_ready(process: subprocess.Popen[str], n_keys: int, log_path: Path) -> SandboxHandle:
    lines: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for _ in range(n_keys):
            line = process.stdout.readline()
            if not line:
                return
            lines.append(line.strip())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(STARTUP_TIMEOUT)
    if len(lines) < n_keys or not lines[0].startswith(FIRST_LINE_PREFIX):
        _stop(process)
        tail = log_path.read_text(encoding="utf-8")[-2000:] if log_path.exists() else ""
        raise SandboxStartError(f"moovago-sandbox did not start: {lines!r}\n{tail}")
    url, key, team = _parse_line(lines[0])
    keys = {key: team}
    for line in lines[1:]:
        _, other_key, other_team = _parse_line(line)
        keys[other_key] = other_team
    return SandboxHandle(url, key, team, keys, process, log_path)


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()


_shared: SandboxHandle | None = None
_shared_lock = threading.Lock()
_shared_stack = contextlib.ExitStack()


def shared_sandbox() -> SandboxHandle:
    """One sandbox per process (30 companies), started on first use, stopped at exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = _shared_stack.enter_context(start_sandbox(companies=30))
            atexit.register(_shared_stack.close)
        return _shared
