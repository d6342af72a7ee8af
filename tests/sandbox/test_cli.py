"""The command line: first line contract, request log on stderr, clean stop on signals."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest
import requests

from moovago_sandbox.cli import build_parser, fault_profile, main
from moovago_sandbox.faults import FaultProfile

FIRST_LINE = re.compile(
    r"^moovago-sandbox listening on http://127\.0\.0\.1:(\d+)/graphql"
    r" api_key=(\S+) team_id=([0-9a-f]{24})$"
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.slow
def test_first_line_then_one_log_line_per_request_then_clean_stop(sig: signal.Signals) -> None:
    command = [
        sys.executable,
        "-m",
        "moovago_sandbox.cli",
        "serve",
        "--port",
        "0",
        "--companies",
        "3",
        "--api-key",
        "secret-demo-key",
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline().rstrip("\n")
            match = FIRST_LINE.match(line)
            assert match, line
            port, key, team = match.groups()
            assert int(port) > 0
            assert key == "secret-demo-key"
            url = f"http://127.0.0.1:{port}/graphql"
            for _ in range(3):
                answer = requests.post(
                    url, json={"query": "{ team { id } }"}, headers={"X-API-KEY": key}, timeout=30
                )
                assert answer.json() == {"data": {"team": {"id": team}}}
            process.send_signal(sig)
            _, err = process.communicate(timeout=20)
            assert process.returncode == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    request_lines = [ln for ln in err.splitlines() if "POST /graphql" in ln]
    assert len(request_lines) == 3
    assert "secret-demo-key" not in err
    assert "Traceback" not in err


def test_bad_arguments_are_one_line_errors(capsys) -> None:
    for argv in (
        ["serve", "--api-key", "key:"],
        ["serve", "--fault-5xx", "2"],
        ["serve", "--faults", '{"nope": 1}'],
    ):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert "error:" in capsys.readouterr().err


def test_defaults_match_the_contract() -> None:
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.seed, args.rate_limit, args.retry_after) == (
        "127.0.0.1",
        0,
        42,
        5,
        False,
    )
    assert args.api_key_header == "X-API-KEY"
    assert args.db == ":memory:"


def test_fault_flags_override_the_profile(tmp_path) -> None:
    profile = tmp_path / "faults.json"
    profile.write_text('{"error_5xx": 0.1, "partial_error": 0.2, "seed": 9}')
    args = build_parser().parse_args(
        [
            "serve",
            "--faults",
            str(profile),
            "--fault-5xx",
            "0.3",
            "--fault-drop",
            "0.05",
            "--fault-latency",
            "0.5:250",
            "--fault-commit-then-fail",
            "0.4",
            "--fault-429",
            "0.1",
        ]
    )
    assert fault_profile(args) == FaultProfile(
        error_5xx=0.3,
        burst_429=0.1,
        drop_connection=0.05,
        latency=0.5,
        latency_ms=250.0,
        partial_error=0.2,
        commit_then_fail=0.4,
        seed=9,
    )
