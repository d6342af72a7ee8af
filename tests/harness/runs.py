"""Running the connectors as real processes against a sandbox, and checking what they leave
(tests/reliability, bench/ and scripts/ share these)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TARGET_CLI = str(BIN / "target-moovago")
TAP_CLI = str(BIN / "tap-moovago")
#: A key that cannot appear in any output by chance: every check greps for it.
SECRET = "sk-live-SECRET-0123456789"
COMPANY_COLUMNS = ("customerCode", "name", "city")


# ---- Singer input ---------------------------------------------------------------------------


def company_row(seq: int, prefix: str = "R") -> dict[str, Any]:
    return {
        "customerCode": f"{prefix}-{seq:05d}",
        "name": f"Société {prefix} {seq}",
        "city": "Niort",
    }


def company_schema(columns: Sequence[str] = COMPANY_COLUMNS) -> dict[str, Any]:
    return {
        "type": "SCHEMA",
        "stream": "company",
        "schema": {
            "type": "object",
            "properties": {c: {"type": ["string", "null"]} for c in columns},
        },
        "key_properties": ["customerCode"],
    }


def resumable_input(
    rows: Sequence[Mapping[str, Any]], *, state_every: int, start: int = 0
) -> list[dict[str, Any]]:
    """SCHEMA, then rows[start:] with `seq` increasing, a STATE after every `state_every` rows.

    The STATE bookmark `seq` is the number of rows sent so far: resuming from a STATE means
    sending rows[seq:] again, as a tap resuming from its bookmark does.
    """
    messages: list[dict[str, Any]] = [company_schema()]
    for seq in range(start, len(rows)):
        messages.append({"type": "RECORD", "stream": "company", "record": dict(rows[seq])})
        if (seq + 1) % state_every == 0 or seq + 1 == len(rows):
            messages.append(
                {"type": "STATE", "value": {"bookmarks": {"company": {"seq": seq + 1}}}}
            )
    return messages


def lines(messages: Iterable[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(m, ensure_ascii=False) + "\n" for m in messages)


# ---- processes ------------------------------------------------------------------------------


@dataclass
class Run:
    """One finished (or killed) connector process and the files it wrote."""

    returncode: int
    stdout: str
    stderr: str
    files: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    hung: bool = False  # still running at the timeout, then killed

    @property
    def states(self) -> list[dict[str, Any]]:
        """STATE values: a target writes bare state objects, a tap `{"type": "STATE", ...}`."""
        out = []
        for message in _json_lines(self.stdout):
            if "type" not in message:
                out.append(message)
            elif message["type"] == "STATE":
                out.append(message.get("value", {}))
        return out

    @property
    def records(self) -> list[dict[str, Any]]:
        return [m for m in _json_lines(self.stdout) if m.get("type") == "RECORD"]

    @property
    def rejects(self) -> list[dict[str, Any]]:
        return _json_lines(self.files.get("rejects", ""))

    @property
    def summary(self) -> dict[str, Any]:
        text = self.files.get("summary", "")
        return json.loads(text) if text.strip() else {}

    def last_stderr_line(self) -> str:
        rows = [line for line in self.stderr.splitlines() if line.strip()]
        return rows[-1] if rows else ""

    def all_text(self) -> str:
        return "\n".join([self.stdout, self.stderr, *self.files.values()])


def _json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if line.strip().startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def target_config(handle: Any, tmp: Path, **overrides: Any) -> dict[str, Any]:
    config = {
        "api_url": handle.url,
        "api_key": handle.api_key,
        "max_requests_per_second": 5,
        "mutations_per_request": 25,
        "rejects_path": str(tmp / "rejects.jsonl"),
        "summary_path": str(tmp / "summary.json"),
    }
    config.update(overrides)
    return config


def _popen(
    command: list[str],
    config: Mapping[str, Any],
    tmp: Path,
    *,
    stdin: int = subprocess.PIPE,
    extra_env: Mapping[str, str] | None = None,
) -> subprocess.Popen[str]:
    tmp.mkdir(parents=True, exist_ok=True)
    config_file = tmp / "config.json"
    config_file.write_text(json.dumps(config), encoding="utf-8")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TAP_MOOVAGO", "TARGET_MOOVAGO"))
    }
    env.update(extra_env or {})
    return subprocess.Popen(
        [*command, "--config", str(config_file)],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        cwd=tmp,
        env=env,
    )


def _files(config: Mapping[str, Any], tmp: Path) -> dict[str, str]:
    files = {"config": ""}
    for name, key in (("rejects", "rejects_path"), ("summary", "summary_path")):
        path = Path(str(config.get(key) or tmp / "none"))
        files[name] = path.read_text(encoding="utf-8") if path.exists() else ""
    del files["config"]
    return files


def run_target(
    config: Mapping[str, Any],
    text: str,
    tmp: Path,
    *,
    timeout: float = 240,
    extra_env: Mapping[str, str] | None = None,
) -> Run:
    """Run target-moovago to the end on `text`."""
    started = time.monotonic()
    process = _popen([TARGET_CLI], config, tmp, extra_env=extra_env)
    stdout, stderr = process.communicate(text, timeout=timeout)
    run = Run(process.returncode, stdout, stderr, _files(config, tmp), time.monotonic() - started)
    assert_no_secret(run, tmp)
    return run


def run_target_until(
    config: Mapping[str, Any],
    text: str,
    tmp: Path,
    *,
    kill_after_mutations: int,
    mutations: Any,
    sig: int = signal.SIGKILL,
    timeout: float = 240,
) -> Run:
    """Run target-moovago and send `sig` once the sandbox has applied that many mutations."""
    started = time.monotonic()
    process = _popen([TARGET_CLI], config, tmp)
    assert process.stdin is not None

    out: dict[str, str] = {}

    def feed() -> None:
        try:
            process.stdin.write(text)  # type: ignore[union-attr]
            process.stdin.close()  # type: ignore[union-attr]
        except (BrokenPipeError, ValueError, OSError):
            pass

    def drain(name: str, stream: Any) -> None:
        out[name] = stream.read()

    threads = [
        threading.Thread(target=feed, daemon=True),
        threading.Thread(target=drain, args=("stdout", process.stdout), daemon=True),
        threading.Thread(target=drain, args=("stderr", process.stderr), daemon=True),
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if mutations() >= kill_after_mutations:
            process.send_signal(sig)
            break
        time.sleep(0.02)
    hung = False
    try:
        process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        hung = True
        process.kill()
        process.wait(timeout=30)
    for thread in threads[1:]:
        thread.join(timeout=30)
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()
    run = Run(
        process.returncode,
        out.get("stdout", ""),
        out.get("stderr", ""),
        _files(config, tmp),
        time.monotonic() - started,
        hung=hung,
    )
    assert_no_secret(run, tmp)
    return run


def tap_config(handle: Any, **overrides: Any) -> dict[str, Any]:
    config = {"api_url": handle.url, "api_key": handle.api_key, "page_size": 50}
    config.update(overrides)
    return config


def run_tap(
    config: Mapping[str, Any],
    tmp: Path,
    *,
    state: Mapping[str, Any] | None = None,
    kill_after_records: int | None = None,
    timeout: float = 240,
    extra_env: Mapping[str, str] | None = None,
) -> Run:
    """Run tap-moovago (all streams); with `kill_after_records`, SIGKILL it after that many."""
    started = time.monotonic()
    command = [TAP_CLI]
    if state is not None:
        state_file = tmp / "state.json"
        tmp.mkdir(parents=True, exist_ok=True)
        state_file.write_text(json.dumps(state), encoding="utf-8")
        command += ["--state", str(state_file)]
    process = _popen(command, config, tmp, stdin=subprocess.DEVNULL, extra_env=extra_env)
    if kill_after_records is None:
        stdout, stderr = process.communicate(timeout=timeout)
    else:
        assert process.stdout is not None
        got: list[str] = []
        records = 0
        for line in process.stdout:
            got.append(line)
            records += line.startswith('{"type":"RECORD"') or line.startswith('{"type": "RECORD"')
            if records >= kill_after_records:
                process.kill()
                break
        process.wait(timeout=timeout)
        stdout = "".join(got)
        assert process.stderr is not None
        stderr = process.stderr.read()
        process.stdout.close()
        process.stderr.close()
    run = Run(process.returncode, stdout, stderr, {}, time.monotonic() - started)
    assert_no_secret(run, tmp)
    return run


# ---- checks ---------------------------------------------------------------------------------


def assert_no_secret(run: Run, tmp: Path | None = None, secret: str = SECRET) -> None:
    """The key is in no output: stdout, stderr, rejects, summary, nor any file the run left
    (besides the config file it was given)."""
    assert secret not in run.all_text(), "the API key leaked into the output of a run"
    if tmp is not None:
        for path in tmp.rglob("*"):
            if path.is_file() and path.name not in {"config.json"}:
                text = path.read_text(encoding="utf-8", errors="replace")
                assert secret not in text, f"the API key leaked into {path.name}"


def team_rows(handle: Any, entity: str = "company") -> list[dict[str, Any]]:
    return [r for r in handle.export()[entity] if r.get("teamId") == handle.team_id]


def mutation_total(handle: Any) -> int:
    return sum(int(n) for kinds in handle.stats()["mutations"].values() for n in kinds.values())


def duplicates(values: Iterable[Any]) -> dict[Any, int]:
    return {value: n for value, n in Counter(values).items() if n > 1}


def assert_store(
    handle: Any, before: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]]
) -> None:
    """The team's companies are exactly `before` plus `rows` (by customerCode, once each,
    with the row's values): nothing lost, nothing duplicated, nothing else touched."""
    after = team_rows(handle)
    codes = [r["customerCode"] for r in after if r.get("customerCode") is not None]
    assert duplicates(codes) == {}, f"duplicated rows: {duplicates(codes)}"
    by_code = {r.get("customerCode"): r for r in after}
    missing = [r["customerCode"] for r in rows if r["customerCode"] not in by_code]
    assert missing == [], f"{len(missing)} rows lost, e.g. {missing[:5]}"
    for row in rows:
        remote = by_code[row["customerCode"]]
        assert {k: remote.get(k) for k in row} == dict(row)
    expected_ids = {r["id"] for r in before} | {by_code[r["customerCode"]]["id"] for r in rows}
    assert {r["id"] for r in after} == expected_ids
