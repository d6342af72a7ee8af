"""moovago_api.client against a scripted HTTP server on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from email.utils import format_datetime
from pathlib import Path

import pytest
from graphql import parse
from urllib3.exceptions import InsecureRequestWarning

from moovago_api.client import MoovagoClient
from moovago_api.errors import (
    AuthError,
    ConfigError,
    MoovagoError,
    QueryError,
    RateLimited,
    TransientError,
)
from moovago_api.governor import ARRIVAL_MARGIN, RateGovernor
from moovago_api.transport import encode_request
from moovago_api.wire import parse_api_key
from tests.unit.stub_server import Reply, StubServer, busiest_window

KEY = "sk-live-7f3a9c1e5b2d4f60-SECRET"
VARIABLE_VALUE = "VARIABLE-VALUE-4242"
TEAM_QUERY = "query MyTeamQuery { team { id name members { id alias } } }"
VENDOR_AUTH_ERROR = {
    "data": None,
    "errors": [
        {
            "message": "You are not authorized to access this data",
            "locations": [],
            "errorType": "DataFetchingException",
            "path": ["companyList"],
            "extensions": None,
        }
    ],
}


class FakeClock:
    """A clock that moves only when someone sleeps on it (from any thread): retries, 429 pauses
    and budgets run at once, and their waits are read off the governor's send times."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += max(0.0, seconds)


def on_clock(clock: FakeClock, rate: float = 5) -> dict[str, object]:
    """The client settings that put its governor, retries and pauses on `clock`."""
    governor = RateGovernor(rate, clock=clock, sleep=clock.sleep)
    return {"governor": governor, "clock": clock, "sleep": clock.sleep}


def make_client(stub: StubServer, **overrides) -> MoovagoClient:
    settings = {
        "api_url": stub.url,
        "api_key": KEY,
        "governor": RateGovernor(5),
        "backoff_base": 0.01,
        "backoff_max": 0.05,
        "max_retries": 3,
        "request_timeout": 5.0,
        **overrides,
    }
    return MoovagoClient(**settings)


# -- the request -----------------------------------------------------------------------------


def test_execute_posts_json_with_variables_in_the_body(stub):
    stub.default = Reply(body={"data": {"companyList": [{"id": "c1"}]}})
    client = make_client(stub)
    document = (
        "query MyCompanyListQuery($filter: FilterManyCompanyInput!) "
        "{ companyList(filter: $filter) { id name ownerIds } }"
    )
    variables = {"filter": {"teamId": "XYZ"}}
    data = client.execute(document, variables, "MyCompanyListQuery")
    assert data == {"companyList": [{"id": "c1"}]}
    (request,) = stub.received
    assert request.path == "/graphql"  # nothing in the query string
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-API-KEY"] == KEY
    assert request.json == {
        "query": document,
        "variables": variables,
        "operationName": "MyCompanyListQuery",
    }
    assert asdict(client.stats) == {
        "requests": 1,
        "retries": 0,
        "rate_limited": 0,
        "transient_failures": 0,
        "wait_seconds": pytest.approx(0, abs=0.5),
    }


def test_the_body_sent_is_encode_request_byte_for_byte(stub):
    # Request sizes (the target's max_request_bytes) are measured with encode_request.
    variables = {
        "amount": Decimal("1234.50"),
        "at": datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc),
        "name": "Société Générale ☕",
    }
    document = parse("query Named($amount: Float) { team { id } }")
    make_client(stub).execute(document, variables, "Named")
    body = encode_request(document, variables, "Named")
    assert stub.received[0].body == body
    assert len(body) > len(body.decode("utf-8"))  # sent as UTF-8, not \u-escaped


def test_execute_prints_a_document_node(stub):
    client = make_client(stub)
    client.execute(parse(TEAM_QUERY))
    body = stub.received[0].json
    assert parse(body["query"]) is not None
    assert "MyTeamQuery" in body["query"]
    assert body["variables"] == {}


@pytest.mark.parametrize(
    ("api_key", "header", "value"),
    [
        (f"X-API-KEY: {KEY}", "X-API-KEY", KEY),  # the whole line from the welcome e-mail
        (f"  x-api-key:{KEY}  ", "x-api-key", KEY),
        (f"Authorization: Bearer {KEY}", "Authorization", f"Bearer {KEY}"),
        (KEY, "X-API-KEY", KEY),
    ],
)
def test_api_key_may_be_a_whole_header_line(stub, api_key, header, value):
    client = make_client(stub, api_key=api_key)
    client.execute(TEAM_QUERY)
    sent = {k.lower(): v for k, v in stub.received[0].headers.items()}
    assert sent[header.lower()] == value
    assert client.api_key_header == header


def test_parse_api_key_keeps_a_key_that_merely_holds_a_colon():
    assert parse_api_key("abc:def") == ("X-API-KEY", "abc:def")
    assert parse_api_key("abc:def", "Api-Token") == ("Api-Token", "abc:def")
    assert parse_api_key("Api-Token:def", "Api-Token") == ("Api-Token", "def")


@pytest.mark.parametrize(
    ("api_key", "header", "words"),
    [
        ("", "X-API-KEY", "api_key is missing"),
        ("   ", "X-API-KEY", "welcome e-mail"),
        ("abc", "X API KEY", "api_key_header"),
        ("abc\r\nX-Evil: 1", "X-API-KEY", "single line"),
    ],
)
def test_bad_keys_and_headers_are_config_errors(api_key, header, words):
    with pytest.raises(ConfigError, match=words):
        MoovagoClient(
            api_url="https://api.example.test/graphql", api_key=api_key, api_key_header=header
        )


# -- https rule, TLS ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.test/graphql",
        "http://127.0.0.1:8080/graphql",
        "http://127.10.20.30/graphql",
        "http://[::1]:8080/graphql",
        "http://localhost:8080/graphql",
        "http://LOCALHOST/graphql",
    ],
)
def test_https_or_loopback_urls_are_accepted(url):
    client = MoovagoClient(api_url=url, api_key=KEY, governor=RateGovernor(4))
    assert client.api_url == url
    assert client.verify_tls is True


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://api.example.test/graphql", "https://"),
        ("http://10.0.0.5/graphql", "loopback"),
        ("http://128.0.0.1/graphql", "loopback"),
        ("http://localhost.evil.test/graphql", "loopback"),
        ("ftp://api.example.test/graphql", "absolute https"),
        ("api.example.test/graphql", "absolute https"),
        ("", "api_url is missing"),
        ("https://user:pw@api.example.test/graphql", "user name or password"),
        ("https://api.example.test:99999/graphql", "not a valid URL"),
    ],
)
def test_other_urls_are_config_errors(url, words):
    with pytest.raises(ConfigError, match=words):
        MoovagoClient(api_url=url, api_key=KEY)


@pytest.mark.parametrize(
    ("rate", "words"),
    [
        (6, "at most 5 \\(Moovago answers 429 above 5 requests per second\\)"),
        (5.5, "at most 5"),
        (0, "above 0"),
        (-1, "above 0"),
    ],
)
def test_rates_outside_0_to_5_are_config_errors(rate, words):
    with pytest.raises(ConfigError, match=words):
        MoovagoClient(
            api_url="https://api.example.test/graphql", api_key=KEY, max_requests_per_second=rate
        )


@pytest.fixture
def tls_stub(tmp_path: Path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = StubServer(tls=context).start()
    yield server
    server.stop()


def test_tls_is_verified_by_default(tls_stub):
    client = make_client(tls_stub)
    with pytest.raises(ConfigError, match=r"certificate of 127\.0\.0\.1 could not be verified"):
        client.execute(TEAM_QUERY)  # a bad certificate does not pass: not retried
    assert tls_stub.received == []
    # Only when told: a self-signed test server.
    unverified = make_client(tls_stub, verify_tls=False)
    with pytest.warns(InsecureRequestWarning):
        assert unverified.execute(TEAM_QUERY) == {"team": {"id": "t1"}}


# -- 429 ---------------------------------------------------------------------------------------


def test_429_with_retry_after_seconds_waits_then_succeeds(stub):
    stub.script(Reply(429, {"message": "Too Many Requests"}, {"Retry-After": "1"}))
    clock = FakeClock()
    client = make_client(stub, **on_clock(clock))
    assert client.execute(TEAM_QUERY) == {"team": {"id": "t1"}}
    first, second = client.governor.send_times
    assert second - first == pytest.approx(1.0)
    assert len(stub.received) == 2
    assert client.stats.rate_limited == 1
    assert client.stats.transient_failures == 0
    assert client.stats.retries == 1


def test_429_with_retry_after_http_date_waits_then_succeeds(stub):
    # Counted from the answer's own Date: the server's clock, whatever ours says.
    stub.script(
        Reply(
            429,
            "",
            {"Retry-After": "Tue, 01 Dec 2026 10:00:02 GMT"},
            date="Tue, 01 Dec 2026 10:00:00 GMT",
        )
    )
    clock = FakeClock()
    client = make_client(stub, **on_clock(clock))
    assert client.execute(TEAM_QUERY) == {"team": {"id": "t1"}}
    first, second = client.governor.send_times
    assert second - first == pytest.approx(2.0)
    assert client.stats.rate_limited == 1


def test_429_with_retry_after_http_date_and_no_date_counts_from_now(stub):
    when = datetime.now(timezone.utc) + timedelta(seconds=3)
    stub.script(Reply(429, "", {"Retry-After": format_datetime(when, usegmt=True)}, date=None))
    clock = FakeClock()
    client = make_client(stub, **on_clock(clock))
    assert client.execute(TEAM_QUERY) == {"team": {"id": "t1"}}
    first, second = client.governor.send_times
    # HTTP dates have whole seconds: the wait is between two and three seconds.
    assert 1.5 <= second - first <= 3.0


def test_429_without_retry_after_backs_off_then_succeeds(stub):
    stub.script(Reply(429, ""), Reply(429, ""))
    clock = FakeClock()
    client = make_client(stub, backoff_base=0.2, backoff_max=0.4, **on_clock(clock))
    assert client.execute(TEAM_QUERY) == {"team": {"id": "t1"}}
    times = client.governor.send_times
    assert len(times) == len(stub.received) == 3
    assert times[1] - times[0] >= 0.2  # never less than the base: the window was full
    assert times[2] - times[1] >= 0.2
    assert times[2] - times[1] <= 0.4 + 1e-9  # at most the cap
    assert client.stats.rate_limited == 2


def test_unreadable_retry_after_falls_back_to_backoff(stub):
    stub.script(Reply(429, "", {"Retry-After": "soon"}))
    clock = FakeClock()
    client = make_client(stub, backoff_base=0.2, backoff_max=0.4, **on_clock(clock))
    assert client.execute(TEAM_QUERY) == {"team": {"id": "t1"}}
    first, second = client.governor.send_times
    assert 0.2 <= second - first <= 0.4 + 1e-9


def test_429_holds_back_the_other_threads_too(stub):
    stub.script(Reply(429, "", {"Retry-After": "1"}))
    governor = RateGovernor(5)
    first = make_client(stub, governor=governor)
    other = make_client(stub, governor=governor)
    worker = threading.Thread(target=first.execute, args=(TEAM_QUERY,))
    worker.start()
    deadline = time.monotonic() + 5
    while not stub.received and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # the 429 has been read and the governor paused
    other.execute(TEAM_QUERY)
    worker.join(timeout=10)
    times = sorted(r.at for r in stub.received)
    assert len(times) == 3
    assert times[1] - times[0] >= 0.95  # the other client waited for Retry-After too


def test_429_forever_raises_rate_limited(stub):
    stub.default = Reply(429, "", {"Retry-After": "0"})
    client = make_client(stub, max_retries=1)
    with pytest.raises(RateLimited, match="429"):
        client.execute(TEAM_QUERY)
    assert len(stub.received) == 5  # 429s are bounded too: four per allowed retry


def test_retry_after_beyond_the_time_budget_gives_up_at_once(stub):
    stub.default = Reply(429, "", {"Retry-After": "120"})
    client = make_client(stub, max_retry_seconds=10)
    with pytest.raises(RateLimited) as caught:
        client.execute(TEAM_QUERY)
    assert caught.value.retry_after == 120
    assert len(stub.received) == 1


# -- 5xx, non-JSON, timeouts, resets ---------------------------------------------------------


def test_5xx_then_success(stub):
    stub.script(Reply(500, "oops"), Reply(503, "busy"))
    client = make_client(stub)
    assert client.execute(TEAM_QUERY) == {"team": {"id": "t1"}}
    assert len(stub.received) == 3
    assert client.stats.transient_failures == 2
    assert client.stats.retries == 2


def test_5xx_forever_gives_up_after_max_retries(stub):
    stub.default = Reply(502, "bad gateway")
    client = make_client(stub, max_retries=2)
    with pytest.raises(TransientError, match="after 3 attempts") as caught:
        client.execute(TEAM_QUERY)
    assert caught.value.status == 502
    assert caught.value.ambiguous is True
    assert len(stub.received) == 3


def test_retries_are_bounded_by_total_time(stub):
    stub.default = Reply(500, "")
    clock = FakeClock()
    client = make_client(
        stub,
        max_retries=1000,
        backoff_base=0.1,
        backoff_max=0.2,
        max_retry_seconds=0.6,
        **on_clock(clock, rate=100),
    )
    with pytest.raises(TransientError, match="attempts over"):
        client.execute(TEAM_QUERY)
    assert clock.now - 1000.0 == pytest.approx(0.6)  # the last wait is cut to what is left
    assert 1 < len(stub.received) < 1000


def test_non_json_body_is_retried(stub):
    stub.script(Reply(200, "<html>Bad Gateway</html>", {"Content-Type": "text/html"}))
    client = make_client(stub)
    assert client.execute(TEAM_QUERY) == {"team": {"id": "t1"}}
    assert len(stub.received) == 2
    assert client.stats.transient_failures == 1


def test_non_json_body_forever_is_a_transient_error(stub):
    stub.default = Reply(200, "not json")
    client = make_client(stub, max_retries=1)
    with pytest.raises(TransientError, match="not a JSON object"):
        client.execute(TEAM_QUERY)
    assert len(stub.received) == 2


def test_timeout_is_retried(stub):
    stub.script(Reply(delay=1.0))
    client = make_client(stub, request_timeout=0.3)
    assert client.execute(TEAM_QUERY) == {"team": {"id": "t1"}}
    assert len(stub.received) == 2
    assert client.stats.transient_failures == 1


def test_connection_reset_is_retried(stub):
    stub.script(Reply(action="reset"), Reply(action="reset"))
    client = make_client(stub)
    assert client.execute(TEAM_QUERY) == {"team": {"id": "t1"}}
    assert len(stub.received) == 3


def test_resets_forever_give_up_after_max_retries(stub):
    stub.default = Reply(action="reset")
    client = make_client(stub, max_retries=2)
    with pytest.raises(TransientError, match="after 3 attempts") as caught:
        client.execute(TEAM_QUERY)
    assert caught.value.ambiguous is True
    assert caught.value.status is None
    assert len(stub.received) == 3


def test_timeouts_forever_give_up_after_max_retries(stub):
    stub.default = Reply(delay=0.5)
    client = make_client(stub, max_retries=1, request_timeout=0.2)
    with pytest.raises(TransientError, match="timed out"):
        client.execute(TEAM_QUERY)
    assert len(stub.received) == 2


def test_http_408_is_retried_even_for_creates(stub):
    stub.script(Reply(408, ""))
    client = make_client(stub)
    assert client.execute(TEAM_QUERY, retry_ambiguous=False) == {"team": {"id": "t1"}}
    assert len(stub.received) == 2


@pytest.mark.parametrize(
    "reply",
    [Reply(delay=1.0), Reply(action="reset"), Reply(500, ""), Reply(200, "not json")],
    ids=["timeout", "reset", "5xx", "non-json"],
)
def test_no_blind_retry_when_ambiguous_retries_are_off(stub, reply):
    stub.script(reply)
    client = make_client(stub, request_timeout=0.3)
    with pytest.raises(TransientError, match="may have been applied") as caught:
        client.execute(
            'mutation { company { create(input: {name: "X"}) { recordId } } }',
            retry_ambiguous=False,
        )
    assert caught.value.ambiguous is True
    assert len(stub.received) == 1


def test_429_is_still_retried_when_ambiguous_retries_are_off(stub):
    stub.script(Reply(429, "", {"Retry-After": "0"}))
    client = make_client(stub)
    assert client.execute(TEAM_QUERY, retry_ambiguous=False) == {"team": {"id": "t1"}}
    assert len(stub.received) == 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_is_retried_and_not_ambiguous():
    url = f"http://127.0.0.1:{free_port()}/graphql"
    governor = RateGovernor(5)
    client = MoovagoClient(
        api_url=url,
        api_key=KEY,
        governor=governor,
        max_retries=2,
        backoff_base=0.01,
        backoff_max=0.02,
    )
    with pytest.raises(TransientError, match="after 3 attempts") as caught:
        client.execute(TEAM_QUERY, retry_ambiguous=False)
    # The server never saw it, so retrying even a create is safe and the error says so.
    assert caught.value.ambiguous is False
    assert len(governor.send_times) == 3


def test_a_connection_test_to_a_closed_port_is_one_attempt():
    # What `--test` uses: one attempt, a short connect timeout.
    governor = RateGovernor(5)
    client = MoovagoClient(
        api_url=f"http://127.0.0.1:{free_port()}/graphql",
        api_key=KEY,
        governor=governor,
        max_retries=0,
        connect_timeout=3.0,
    )
    assert client.connect_timeout == 3.0
    assert client.request_timeout == 30.0
    with pytest.raises(TransientError, match="after 1 attempts") as caught:
        client.execute(TEAM_QUERY)
    assert caught.value.ambiguous is False
    assert len(governor.send_times) == 1


# -- errors in 200 ---------------------------------------------------------------------------


def test_vendor_authorisation_error_is_an_auth_error(stub):
    stub.default = Reply(200, VENDOR_AUTH_ERROR)
    client = make_client(stub)
    with pytest.raises(AuthError) as caught:
        client.execute(TEAM_QUERY)
    message = str(caught.value)
    assert "api_key" in message
    assert "api_key_header" in message
    assert "You are not authorized to access this data" in message
    assert KEY not in message
    assert len(stub.received) == 1  # fatal: not retried


@pytest.mark.parametrize("status", [401, 403])
def test_http_401_and_403_are_auth_errors(stub, status):
    stub.default = Reply(status, "")
    with pytest.raises(AuthError, match="api_key_header"):
        make_client(stub).execute(TEAM_QUERY)


@pytest.mark.parametrize(
    "error",
    [
        {"message": "Too Many Requests"},
        {"message": "API rate limit exceeded, slow down"},
        {"message": "throttled", "extensions": {"code": "THROTTLED"}},
        {"message": "nope", "extensions": {"code": "TOO_MANY_REQUESTS"}},
    ],
)
def test_throttling_error_in_200_is_retried(stub, error):
    stub.script(Reply(200, {"data": None, "errors": [error]}))
    client = make_client(stub)
    assert client.execute(TEAM_QUERY) == {"team": {"id": "t1"}}
    assert len(stub.received) == 2
    assert client.stats.rate_limited == 1


def test_throttling_error_beside_partial_data_is_not_retried(stub):
    # Part of the operation went through: sending it all again could create twice.
    body = {
        "data": {"company": {"c0": {"recordId": "1"}, "c1": None}},
        "errors": [{"message": "Too Many Requests", "path": ["company", "c1"]}],
    }
    stub.default = Reply(200, body)
    with pytest.raises(QueryError) as caught:
        make_client(stub).execute(
            'mutation { company { c0: create(input: {name: "a"}) { recordId } } }'
        )
    assert caught.value.data == body["data"]
    assert len(stub.received) == 1


def test_partial_data_is_a_query_error_with_errors_and_data(stub):
    body = {
        "data": {"company": {"c0": {"recordId": "1"}, "c1": None}},
        "errors": [
            {
                "message": "name must not be empty",
                "path": ["company", "c1"],
                "extensions": {"code": "BAD_USER_INPUT"},
            },
        ],
    }
    stub.default = Reply(200, body)
    client = make_client(stub)
    with pytest.raises(QueryError, match="name must not be empty") as caught:
        client.execute('mutation Batch { company { c0: create(input: {name: "a"}) { recordId } } }')
    err = caught.value
    assert err.errors == body["errors"]
    assert err.data == body["data"]
    assert err.paths() == [("company", "c1")]
    assert "mutation Batch" in str(err)
    assert len(stub.received) == 1


def test_graphql_errors_with_http_400_are_query_errors(stub):
    stub.default = Reply(
        400, {"errors": [{"message": "Cannot query field 'nmae' on type 'Team'."}]}
    )
    with pytest.raises(QueryError, match="nmae") as caught:
        make_client(stub).execute("{ team { nmae } }")
    assert caught.value.data is None


def test_http_404_names_api_url(stub):
    stub.default = Reply(404, "<html>Not Found</html>", {"Content-Type": "text/html"})
    with pytest.raises(ConfigError, match="api_url"):
        make_client(stub).execute(TEAM_QUERY)


def test_redirects_are_not_followed(stub):
    stub.default = Reply(302, "", {"Location": "https://elsewhere.example.test/graphql"})
    with pytest.raises(ConfigError, match="redirect"):
        make_client(stub).execute(TEAM_QUERY)
    assert len(stub.received) == 1


def test_200_without_data_is_a_query_error(stub):
    stub.default = Reply(200, {"data": None})
    with pytest.raises(QueryError, match="without data or errors"):
        make_client(stub).execute(TEAM_QUERY)


# -- governor, logging, secrets --------------------------------------------------------------


def test_every_http_attempt_passes_the_governor_exactly_once(stub):
    stub.script(
        Reply(500, ""),
        Reply(429, "", {"Retry-After": "0"}),
        Reply(action="reset"),
        Reply(200, "garbage"),
    )
    clock = FakeClock()
    settings = on_clock(clock)
    governor = settings["governor"]
    client = make_client(stub, **settings)
    client.execute(TEAM_QUERY)
    client.execute(TEAM_QUERY)
    assert len(stub.received) == 6
    assert len(governor.send_times) == 6
    assert client.stats.requests == 6


def test_requests_from_threads_keep_the_rate(stub):
    # The real clock: a fake one that every sleeping thread moves adds concurrent waits together,
    # which no real clock does (it let a window show 6 sends). About 3 s.
    governor = RateGovernor(5)
    client = make_client(stub, governor=governor)
    threads = [
        threading.Thread(target=lambda: [client.execute(TEAM_QUERY) for _ in range(5)])
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    times = governor.send_times
    assert len(times) == len(stub.received) == 20
    assert max(sum(1 for u in times if t <= u < t + 1.0) for t in times) <= 5
    client.close()


def test_log_lines_per_request_and_per_retry(stub, caplog):
    caplog.set_level(logging.DEBUG, logger="moovago_api.client")
    stub.script(Reply(500, ""), Reply(429, "", {"Retry-After": "0"}))
    client = make_client(stub)
    client.execute(TEAM_QUERY, {"x": VARIABLE_VALUE}, "MyTeamQuery")
    debug = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.DEBUG and r.name == "moovago_api.client"
    ]
    assert len(debug) == 3
    assert all("MyTeamQuery" in line and "bytes=" in line and "duration=" in line for line in debug)
    assert [line.split("status=")[1].split()[0] for line in debug] == ["500", "429", "200"]
    levels = {r.levelno for r in caplog.records if r.name == "moovago_api.client"}
    assert logging.INFO in levels  # 5xx retry
    assert logging.WARNING in levels  # 429


def test_key_and_variables_never_reach_logs_or_exceptions(stub, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    echo = {"errors": [{"message": f"bad header {KEY} for {VARIABLE_VALUE}"}], "data": None}
    scenarios = [
        [Reply(200, VENDOR_AUTH_ERROR)],
        [Reply(401, f"key {KEY} refused")],
        [Reply(200, echo)],
        [Reply(500, KEY)] * 5,
        [Reply(200, f"not json {KEY}")] * 5,
        [Reply(action="reset")] * 5,
        [Reply(429, KEY, {"Retry-After": "0"})] * 20,
        [Reply(delay=0.6)] * 5,
    ]
    texts: list[str] = []
    for replies in scenarios:
        stub.replies.clear()
        stub.script(*replies)
        for api_key in (KEY, f"X-API-KEY: {KEY}"):
            client = make_client(stub, api_key=api_key, max_retries=1, request_timeout=0.3)
            texts.append(repr(client))
            try:
                client.execute(TEAM_QUERY, {"filter": {"teamId": VARIABLE_VALUE}}, "Q")
            except MoovagoError as err:
                exc: BaseException | None = err
                while exc is not None:
                    texts.extend([str(exc), repr(exc)])
                    exc = exc.__cause__ or exc.__context__
    try:
        MoovagoClient(api_url=f"http://api.example.test/{KEY}", api_key=KEY)
    except ConfigError as err:
        texts.append(str(err))
    assert len(texts) > 20
    assert all(KEY not in text for text in texts)
    records = [r.getMessage() for r in caplog.records]
    assert records
    assert all(KEY not in line and VARIABLE_VALUE not in line for line in records)
    assert KEY not in caplog.text


def test_closed_client_refuses_to_execute(stub):
    client = make_client(stub)
    client.execute(TEAM_QUERY)
    client.close()
    with pytest.raises(MoovagoError, match="closed"):
        client.execute(TEAM_QUERY)


def test_context_manager_closes(stub):
    with make_client(stub) as client:
        assert client.execute(TEAM_QUERY)
    with pytest.raises(MoovagoError):
        client.execute(TEAM_QUERY)


def test_tls_handshake_cut_short_is_retried_as_not_applied():
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    port = listener.getsockname()[1]
    accepted: list[int] = []
    stop = threading.Event()

    def hang_up() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(1)
            conn.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    try:
        client = MoovagoClient(
            api_url=f"https://127.0.0.1:{port}/graphql",
            api_key=KEY,
            governor=RateGovernor(5),
            max_retries=2,
            backoff_base=0.01,
            backoff_max=0.02,
        )
        with pytest.raises(TransientError, match="after 3 attempts") as caught:
            client.execute(TEAM_QUERY, retry_ambiguous=False)
        assert caught.value.ambiguous is False
        assert len(accepted) == 3
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


# -- the retry schedule is backoff's -----------------------------------------------------------


def test_transient_retries_follow_backoffs_full_jitter_exponential(stub, monkeypatch):
    import backoff

    ceilings: list[float] = []

    def no_wait(ceiling: float) -> float:
        ceilings.append(ceiling)
        return 0.0

    monkeypatch.setattr(backoff, "full_jitter", no_wait)
    stub.default = Reply(503, "busy")
    clock = FakeClock()
    client = make_client(
        stub, max_retries=5, backoff_base=0.01, backoff_max=0.05, **on_clock(clock)
    )
    with pytest.raises(TransientError, match="after 6 attempts"):
        client.execute(TEAM_QUERY)
    # Exponential from backoff_base, capped at backoff_max, each jittered over [0, ceiling].
    assert ceilings == pytest.approx([0.01, 0.02, 0.04, 0.05, 0.05])
    assert len(stub.received) == 6


# -- execute_many: several requests in flight under the one governor --------------------------


def _numbered(n: int) -> list[tuple[str, dict[str, int]]]:
    return [("query Q($n: Int) { team { id } }", {"n": i}) for i in range(n)]


def _echo_n(delays: dict[int, float] | None = None, default_delay: float = 0.0):
    def respond(request) -> Reply:
        n = request.json["variables"]["n"]
        return Reply(body={"data": {"n": n}}, delay=(delays or {}).get(n, default_delay))

    return respond


def test_execute_many_yields_results_in_input_order(stub):
    # Later requests answer first: the results still come in the order they were given.
    stub.responder = _echo_n({i: 0.05 * (6 - i) for i in range(6)})
    client = make_client(stub, governor=RateGovernor(100), max_requests_in_flight=6)
    results = list(client.execute_many(_numbered(12)))
    assert results == [{"n": i} for i in range(12)]
    assert stub.in_flight_peak > 1  # they really were in flight together
    assert stub.in_flight_peak <= 6


def test_execute_many_gives_each_request_its_own_result_or_error(stub):
    def respond(request) -> Reply:
        n = request.json["variables"]["n"]
        if n == 2:
            return Reply(body={"data": None, "errors": [{"message": "bad n", "path": ["team"]}]})
        if n == 3:
            return Reply(500, "down")
        return Reply(body={"data": {"n": n}})

    stub.responder = respond
    client = make_client(stub, governor=RateGovernor(100), max_retries=0)
    results = list(client.execute_many(_numbered(6)))
    assert [r for i, r in enumerate(results) if i not in (2, 3)] == [{"n": i} for i in (0, 1, 4, 5)]
    assert isinstance(results[2], QueryError)
    assert results[2].paths() == [("team",)]
    assert isinstance(results[3], TransientError)


def test_execute_many_never_exceeds_the_rate_at_the_server(stub):
    stub.responder = _echo_n(default_delay=0.3)  # answers take longer than the gap between sends
    # As the shared governor: each window widened by the arrival margin.
    governor = RateGovernor(5, margin=ARRIVAL_MARGIN)
    client = make_client(stub, governor=governor, max_requests_in_flight=8)
    results = list(client.execute_many(_numbered(16)))
    assert results == [{"n": i} for i in range(16)]
    assert busiest_window([r.at for r in stub.received]) <= 5
    assert stub.in_flight_peak >= 2


def test_execute_many_window_caps_requests_in_flight(stub):
    stub.responder = _echo_n(default_delay=0.1)
    client = make_client(stub, governor=RateGovernor(100), max_requests_in_flight=8)
    assert list(client.execute_many(_numbered(8), window=2)) == [{"n": i} for i in range(8)]
    assert stub.in_flight_peak <= 2
    stub.in_flight_peak = 0
    assert list(client.execute_many(_numbered(4), window=1)) == [{"n": i} for i in range(4)]
    assert stub.in_flight_peak == 1
    with pytest.raises(ValueError, match="window"):
        next(client.execute_many(_numbered(1), window=0))


def test_a_429_pauses_every_request_in_flight(stub):
    state = {"first": True}

    def respond(request) -> Reply:
        if state["first"]:
            state["first"] = False
            return Reply(429, "", {"Retry-After": "1"})
        return Reply(body={"data": {"n": request.json["variables"]["n"]}}, delay=0.05)

    stub.responder = respond
    clock = FakeClock()
    client = make_client(stub, max_requests_in_flight=4, **on_clock(clock, rate=100))
    results = list(client.execute_many(_numbered(12)))
    assert results == [{"n": i} for i in range(12)]
    times = sorted(client.governor.send_times)
    first = times[0]
    # The first window went out together; after the 429 nothing left for Retry-After's second
    # (the clock moves only when someone waits: a request not held back would be at `first`).
    later = [at - first for at in times[4:]]
    assert len(times) == len(stub.received) == 13
    assert all(delta >= 1.0 for delta in later), later


def test_closing_the_client_with_requests_in_flight_ends_every_one(stub):
    stub.responder = _echo_n(default_delay=0.4)
    client = make_client(stub, governor=RateGovernor(100), max_requests_in_flight=3)
    results = client.execute_many(_numbered(10))
    first = next(results)
    client.close()  # two in flight finish; the rest are never sent
    rest = list(results)
    assert first == {"n": 0}
    assert len(rest) == 9
    sent = len(stub.received)
    assert sent <= 5
    assert all(isinstance(r, (dict, MoovagoError)) for r in rest)
    assert sum(isinstance(r, MoovagoError) and "closed" in str(r) for r in rest) >= 10 - sent
    assert [r for r in rest if isinstance(r, dict)] == [{"n": i} for i in range(1, sent)]


def test_closing_ends_a_wait_on_the_governor_at_once(stub):
    governor = RateGovernor(5)
    governor.pause_until(governor.now() + 30)  # as after a 429 with Retry-After: 30
    client = make_client(stub, governor=governor)
    worker = threading.Thread(target=lambda: list(client.execute_many(_numbered(3))))
    started = time.monotonic()
    worker.start()
    time.sleep(0.2)
    client.close()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert time.monotonic() - started < 5
    assert stub.received == []


def test_requests_in_flight_default_from_the_rate():
    url = "https://api.example.test/graphql"
    assert (
        MoovagoClient(api_url=url, api_key=KEY, max_requests_per_second=4).max_requests_in_flight
        == 8
    )
    assert (
        MoovagoClient(api_url=url, api_key=KEY, max_requests_per_second=1).max_requests_in_flight
        == 2
    )
    assert (
        MoovagoClient(api_url=url, api_key=KEY, max_requests_in_flight=3).max_requests_in_flight
        == 3
    )
    with pytest.raises(ConfigError, match="max_requests_in_flight"):
        MoovagoClient(api_url=url, api_key=KEY, max_requests_in_flight=0)


# -- the server's clock ------------------------------------------------------------------------


def test_server_time_is_the_last_date_header_plus_the_time_since(stub):
    clock = FakeClock()
    client = make_client(stub, **on_clock(clock))
    assert client.server_time() is None  # no answer yet
    stub.script(Reply(date=None))
    client.execute(TEAM_QUERY)
    assert client.server_time() is None  # an answer without a Date header
    stub.script(Reply(date="Tue, 01 Dec 2026 10:00:00 GMT"))
    client.execute(TEAM_QUERY)
    seen = client.server_time()
    assert seen is not None
    assert seen.tzinfo is not None
    assert seen == datetime(2026, 12, 1, 10, tzinfo=timezone.utc)  # the clock has not moved
    clock.now += 0.3
    later = client.server_time()
    assert later is not None
    assert later - seen == timedelta(seconds=0.3)
    client.execute(TEAM_QUERY)  # the stub's own clock, now
    now = client.server_time()
    assert now is not None
    assert abs((now - datetime.now(timezone.utc)).total_seconds()) < 2


# -- keys that cannot be sent ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_key", "kind"),
    [
        ("sk-ключ-12345678", "outside Latin-1"),
        ("sk-🔑-12345678", "outside Latin-1"),
        ("sk-\x07-12345678", "a control character"),
        ("sk-\x7f-12345678", "a control character"),
    ],
)
def test_a_key_that_cannot_go_in_a_header_is_a_config_error_without_the_key(api_key, kind):
    with pytest.raises(ConfigError) as caught:
        MoovagoClient(api_url="https://api.example.test/graphql", api_key=api_key)
    message = str(caught.value)
    assert message.startswith("api_key cannot be sent in an HTTP header: character 4")
    assert kind in message
    assert api_key not in message
    assert "12345678" not in message


def test_a_latin_1_key_is_sent_as_is(stub):
    client = make_client(stub, api_key="sk-clé-12345678")
    client.execute(TEAM_QUERY)
    assert client._api_key == "sk-clé-12345678"
