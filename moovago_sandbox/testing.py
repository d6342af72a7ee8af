"""Start the sandbox from tests and benchmarks: a real subprocess on a free loopback port.

    with start_sandbox(companies=30) as box:
        box.url, box.api_key, box.team_id, box.stats(), box.export()

`shared_sandbox()` starts one per process on first use and stops it at exit; tests treat it as
read-only (anything that writes or needs faults takes its own from `start_sandbox`).
`SandboxPool` keeps idle `--reconfigurable` processes and hands one out per block, rebuilt in
place from the same arguments as `start_sandbox` (a fresh store, stats, limits and faults), so
a test suite pays for a process start once per worker, not once per test.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import urllib.error
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
    log_offset: int = 0

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
        """What the server wrote on stderr since this handle was made (one line per request)."""
        if self.log_path is None:
            return ""
        with self.log_path.open("rb") as log:
            log.seek(self.log_offset)
            return log.read().decode("utf-8", errors="replace")


def _parse_line(line: str) -> tuple[str, str, str]:
    words = dict(w.split("=", 1) for w in line.split() if "=" in w)
    url = next((w for w in line.split() if w.startswith("http")), "")
    return url, words.get("api_key", ""), words.get("team_id", "")


def sandbox_command(**kwargs: Any) -> list[str]:
    """The `moovago-sandbox serve` command line on a free loopback port (`serve_args`)."""
    serve = [sys.executable, "-m", "moovago_sandbox.cli", "serve", "--host", "127.0.0.1"]
    return [*serve, "--port", "0", *serve_args(**kwargs)]


def serve_args(
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
    """The `serve` arguments but host and port; `modes` are the server-mode flags by their
    Python names: schema (a path), max_page_size, ignore_limit, default_page_size,
    unstable_order, fault_churn ("N:D:I"), no_date_header, clock_offset, latency_read,
    latency_mutation, latency_jitter, max_body_bytes (None or False leaves a flag out)."""
    cmd = ["--seed", str(seed), "--companies", str(companies)]
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


class SandboxPool:
    """Idle `--reconfigurable` sandbox processes; `sandbox(**kwargs)` (the arguments of
    `start_sandbox`) rebuilds one in place for the block and takes it back after. A process that
    died is dropped, never handed out again."""

    def __init__(self) -> None:
        self._idle: list[SandboxHandle] = []
        self._lock = threading.Lock()
        self._stack = contextlib.ExitStack()

    @contextlib.contextmanager
    def sandbox(self, **kwargs: Any) -> Iterator[SandboxHandle]:
        args = serve_args(**kwargs)
        with self._lock:
            base = self._idle.pop() if self._idle else None
        if base is None or base.process is None or base.process.poll() is not None:
            base = self._stack.enter_context(
                start_sandbox(companies=0, extra_args=["--reconfigurable"])
            )
        handle = _configure(base, args)
        try:
            yield handle
        finally:
            if base.process is not None and base.process.poll() is None:
                with self._lock:
                    self._idle.append(base)

    def close(self) -> None:
        self._stack.close()


_configurations = itertools.count(1)


def _configure(base: SandboxHandle, args: list[str]) -> SandboxHandle:
    offset = base.log_path.stat().st_size if base.log_path and base.log_path.exists() else 0
    request = urllib.request.Request(  # noqa: S310 (the http URL the sandbox printed)
        base.base_url + "/_sandbox/configure",
        method="POST",
        data=json.dumps(args).encode("utf-8"),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=STARTUP_TIMEOUT) as response:  # noqa: S310
            keys = json.loads(response.read().decode("utf-8"))["keys"]
    except urllib.error.HTTPError as exc:
        raise SandboxStartError(f"moovago-sandbox refused {args!r}: {exc.read()!r}") from exc
    api_key, team_id = keys[0]
    # a URL of its own per configuration: clients keep state per URL (the rate governor)
    url = base.url.replace("/graphql", f"/c{next(_configurations)}/graphql")
    return SandboxHandle(
        url,
        api_key,
        team_id,
        dict(keys),
        base.process,
        base.log_path,
        offset,
    )
