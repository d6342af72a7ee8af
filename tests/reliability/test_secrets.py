"""The API key appears in no output under any failure: stdout, stderr (at DEBUG too), state,
rejects, summary, exception text. Every run in tests/reliability also greps its outputs (see
helpers.assert_no_secret); these tests add the failures that carry the most context."""

from __future__ import annotations

import traceback

import pytest

from moovago_api.errors import AuthError, MoovagoError, TransientError
from moovago_api.settings import client_from_config
from moovago_sandbox.harness.runs import (
    SECRET,
    company_row,
    lines,
    resumable_input,
    run_tap,
    run_target,
    tap_config,
    target_config,
)

DEBUG = {"LOGLEVEL": "DEBUG"}
HEADER_LINE = f"X-API-KEY: {SECRET}"


def _exception_text(err: BaseException) -> str:
    return "".join(traceback.format_exception(err)) + repr(err) + str(err)


def _input(n: int = 30) -> str:
    return lines(resumable_input([company_row(seq, "SEC") for seq in range(n)], state_every=10))


@pytest.mark.parametrize("key", [SECRET, HEADER_LINE])
def test_a_refused_key_is_named_by_its_setting_never_by_value(sandbox_factory, tmp_path, key):
    box = sandbox_factory(companies=5)  # knows only its default key
    config = target_config(box, tmp_path, api_key=key)
    run = run_target(config, _input(), tmp_path, extra_env=DEBUG)  # greps every output
    assert run.returncode != 0
    assert "api_key" in run.stderr
    tap = run_tap(tap_config(box, api_key=key), tmp_path / "tap", extra_env=DEBUG)
    assert tap.returncode != 0
    assert "api_key" in tap.stderr


def test_failures_at_debug_level_never_print_the_key(sandbox_factory, tmp_path):
    """Every fault kind at once, DEBUG logs, rejected rows and a summary: no key anywhere."""
    box = sandbox_factory(
        companies=10,
        api_keys=[SECRET],
        faults={
            "error_5xx": 0.1,
            "burst_429": 0.1,
            "drop_connection": 0.1,
            "commit_then_fail": 0.2,
            "seed": 9,
        },
    )
    rows = [company_row(seq, "DBG") for seq in range(40)]
    rows[3] = {**rows[3], "name": None}  # a rejected row: the rejects file is written too
    config = target_config(box, tmp_path, request_timeout=5)
    run = run_target(
        config, lines(resumable_input(rows, state_every=10)), tmp_path, extra_env=DEBUG
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert len(run.rejects) == 1
    assert "DEBUG" in run.stderr
    assert run.states
    tap = run_tap(tap_config(box, request_timeout=5), tmp_path / "tap", extra_env=DEBUG)
    assert tap.returncode == 0
    assert sum(box.stats()["faults"].values()) > 0


def test_transient_failures_that_outlive_retries_name_no_key(sandbox_factory, tmp_path):
    box = sandbox_factory(companies=5, api_keys=[SECRET], faults={"error_5xx": 1.0, "seed": 1})
    config = target_config(box, tmp_path, max_retries=1, max_retry_seconds=5)
    run = run_target(config, _input(5), tmp_path, extra_env=DEBUG)
    assert run.returncode != 0
    client = client_from_config(
        {"api_url": box.url, "api_key": SECRET, "max_retries": 1}, default_rate=5
    )
    with pytest.raises(TransientError) as caught:
        client.execute("query { team { id } }")
    assert SECRET not in _exception_text(caught.value)
    assert SECRET not in repr(client)


def test_connection_refused_and_auth_errors_in_process_name_no_key(sandbox_factory):
    box = sandbox_factory(companies=5)
    for url, error in (
        ("http://127.0.0.1:9/graphql", MoovagoError),  # nothing listens on port 9
        (box.url, AuthError),
    ):
        client = client_from_config(
            {"api_url": url, "api_key": HEADER_LINE, "max_retries": 0}, default_rate=5
        )
        with pytest.raises(error) as caught:
            client.execute("query { team { id } }")
        assert SECRET not in _exception_text(caught.value)
        assert "api_key" in str(caught.value) or url.endswith(":9/graphql")
