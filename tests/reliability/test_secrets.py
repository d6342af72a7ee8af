"""The API key appears in no output under any failure: stdout, stderr (at DEBUG too), state,
rejects, summary, exception text; also when a server quotes it back in its error messages, and
when it is configured with surrounding whitespace or as a whole header line. Every run in
tests/reliability also greps its outputs (see helpers.assert_no_secret); these tests add the
failures that carry the most context."""

from __future__ import annotations

import json
import logging
import threading
import traceback
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from moovago_api.errors import AuthError, MoovagoError, QueryError, TransientError
from moovago_api.settings import client_from_config
from tests.harness.runs import (
    SECRET,
    company_row,
    lines,
    resumable_input,
    run_tap,
    run_target,
    tap_config,
    target_config,
    team_rows,
)

DEBUG = {"LOGLEVEL": "DEBUG"}
HEADER_LINE = f"X-API-KEY: {SECRET}"


def _exception_text(err: BaseException) -> str:
    return "".join(traceback.format_exception(err)) + repr(err) + str(err)


def _input(n: int = 30) -> str:
    return lines(resumable_input([company_row(seq, "SEC") for seq in range(n)], state_every=10))


@pytest.mark.slow
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


@pytest.mark.slow
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


# ---- a server that quotes the key back, a key configured with whitespace --------------------

ECHO_MARK = "ECHO-THE-KEY"
#: The key as a secret read from a file, or pasted with the e-mail's line: untrimmed.
PADDED_KEYS = [f"  {SECRET}\n", f" X-API-KEY: {SECRET} \n", f"{SECRET}\r\n"]


class EchoProxy:
    """Forwards every request to a sandbox, except those whose body holds ECHO_MARK (or every
    request, with `echo_all`): those get a GraphQL error quoting the key header as received,
    as some gateways and auth proxies do."""

    def __init__(self, upstream: str, *, echo_all: bool = False) -> None:
        self.upstream = upstream
        self.echo_all = echo_all
        self.echoed = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = self.headers.get("X-API-KEY", "")
                if proxy.echo_all or ECHO_MARK.encode() in body:
                    proxy.echoed += 1
                    status, answer = (
                        200,
                        json.dumps(
                            {
                                "data": None,
                                "errors": [
                                    {
                                        "message": f"Value refused (request header X-API-KEY: {key}"
                                        f"; key {key})",
                                        "extensions": {"header": f"X-API-KEY: {key}"},
                                    }
                                ],
                            }
                        ).encode(),
                    )
                else:
                    request = urllib.request.Request(  # noqa: S310 (the sandbox's http URL)
                        proxy.upstream,
                        data=body,
                        headers={"Content-Type": "application/json", "X-API-KEY": key},
                    )
                    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                        status, answer = response.status, response.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/graphql"
        self.api_key = SECRET
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> EchoProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@pytest.mark.slow
@pytest.mark.parametrize("key", PADDED_KEYS, ids=["spaces-newline", "header-line", "crlf"])
def test_a_server_quoting_the_key_leaks_it_nowhere_tap_and_target(sandbox_factory, tmp_path, key):
    box = sandbox_factory(companies=5, api_keys=[SECRET])
    rows = [company_row(seq, "ECH") for seq in range(6)]
    rows[2] = {**rows[2], "name": f"{ECHO_MARK} 2"}  # the server refuses it, quoting the key
    text = lines(resumable_input(rows, state_every=3))
    with EchoProxy(box.url) as proxy:
        config = target_config(proxy, tmp_path, api_key=key, mutations_per_request=1)
        run = run_target(config, text, tmp_path, extra_env=DEBUG)  # greps every output
    assert proxy.echoed >= 1
    assert run.returncode == 0, run.stderr[-2000:]
    assert "DEBUG" in run.stderr
    assert [r.get("row", {}).get("customerCode") for r in run.rejects] == ["ECH-00002"]
    assert "Value refused" in json.dumps(run.rejects)
    assert "***" in json.dumps(run.rejects)  # the server's text is kept, the key scrubbed
    assert len(team_rows(box)) == 5 + 5
    with EchoProxy(box.url, echo_all=True) as proxy:
        tap = run_tap(tap_config(proxy, api_key=key), tmp_path / "tap", extra_env=DEBUG)
    assert tap.returncode != 0
    assert "Value refused" in tap.stderr
    assert "Traceback" not in tap.stderr


def test_exceptions_from_a_server_quoting_the_key_carry_no_key(sandbox_factory):
    box = sandbox_factory(companies=1, api_keys=[SECRET])
    with EchoProxy(box.url, echo_all=True) as proxy:
        for key in PADDED_KEYS:
            client = client_from_config(
                {"api_url": proxy.url, "api_key": key, "max_retries": 0}, default_rate=5
            )
            with pytest.raises(QueryError) as caught:
                client.execute("query { team { id } }")
            err = caught.value
            assert "Value refused" in str(err)
            for text in (_exception_text(err), json.dumps(err.errors), repr(err.data)):
                assert SECRET not in text


def test_log_lines_of_any_logger_are_scrubbed_once_a_client_is_built(caplog):
    caplog.set_level(logging.DEBUG)
    client_from_config(
        {"api_url": "http://127.0.0.1:9/graphql", "api_key": f"  X-API-KEY: {SECRET}\n"},
        default_rate=5,
    )
    other = logging.getLogger("some.other.library")
    other.warning("server said: %s", f"bad key {SECRET}")
    other.info(f"header line X-API-KEY: {SECRET} refused")
    try:
        raise ValueError(f"quoted {SECRET}")
    except ValueError:
        other.exception("failed")
    assert "server said: bad key ***" in caplog.text
    assert "header line *** refused" in caplog.text
    assert SECRET not in caplog.text
    formatter = logging.Formatter()
    assert all(SECRET not in formatter.format(record) for record in caplog.records)


@pytest.mark.slow
@pytest.mark.parametrize("key", ["sk-ключ-0123456789", "sk-\x07bell-0123", "sk-🔑-0123456789"])
def test_a_key_that_cannot_go_in_a_header_is_one_line_and_exit_1(tmp_path, key):
    class Local:
        url = "http://127.0.0.1:9/graphql"
        api_key = key

    tap = run_tap(tap_config(Local), tmp_path / "tap", timeout=60)
    target = run_target(target_config(Local, tmp_path), "", tmp_path / "target", timeout=60)
    for run in (tap, target):
        assert run.returncode == 1, run.stderr[-2000:]
        assert "Traceback" not in run.stderr
        assert "UnicodeEncodeError" not in run.stderr
        assert "api_key cannot be sent in an HTTP header" in run.stderr
        assert key not in run.stderr
        problem = [line for line in run.stderr.splitlines() if "api_key cannot be sent" in line]
        assert len(problem) == 1
