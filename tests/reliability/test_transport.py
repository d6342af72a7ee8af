"""Transport: plain http only to loopback, TLS verified unless `verify_tls` is false, every
answer bounded by `request_timeout` as a whole (a server that never answers, or trickles its
status line, headers or body) and by `max_response_bytes` once decoded (a gzip bomb)."""

from __future__ import annotations

import contextlib
import gzip
import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from urllib3.exceptions import InsecureRequestWarning

from moovago_api.errors import ConfigError, ResponseTooLarge, TransientError
from moovago_api.settings import client_from_config, connection_properties
from tests.harness.runs import (
    SECRET,
    company_row,
    lines,
    resumable_input,
    run_tap,
    run_target,
    tap_config,
    target_config,
)

TEAM_BODY = json.dumps({"data": {"team": {"id": "t1"}}}).encode()


@contextlib.contextmanager
def serve(
    handler: Callable[[socket.socket], None], tls: ssl.SSLContext | None = None
) -> Iterator[int]:
    """A loopback TCP server calling `handler` per connection; yields the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            if tls is not None:
                try:
                    conn = tls.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError):
                    conn.close()
                    continue
            threading.Thread(target=_guard, args=(handler, conn, stop), daemon=True).start()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def _guard(handler: Callable[..., None], conn: socket.socket, stop: threading.Event) -> None:
    with contextlib.suppress(OSError), conn:
        handler(conn, stop)


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(v)
            for k, _, v in (h.partition(b":") for h in head.split(b"\r\n"))
            if k.lower() == b"content-length"
        ),
        0,
    )
    while len(body) < length:
        body += conn.recv(65536)


def never_answers(conn: socket.socket, stop: threading.Event) -> None:
    _read_request(conn)
    stop.wait(30)


def trickles(conn: socket.socket, stop: threading.Event) -> None:
    """Headers, then one byte of body every 0.2 s: no single read ever times out."""
    _read_request(conn)
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    )
    for _ in range(60):  # 12 s at most
        if stop.wait(0.2):
            return
        conn.sendall(b" ")


def answers(conn: socket.socket, stop: threading.Event) -> None:
    _read_request(conn)
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        + f"Content-Length: {len(TEAM_BODY)}\r\n\r\n".encode()
        + TEAM_BODY
    )


def _client(url: str, **settings: object):
    return client_from_config({"api_url": url, "api_key": SECRET, **settings}, default_rate=5)


# ---- plain http ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://10.20.30.40/graphql", "http://moovago.test/graphql", "http://[2001:db8::1]/graphql"],
)
def test_plain_http_to_a_remote_host_is_refused(url):
    with pytest.raises(ConfigError) as caught:
        _client(url)
    assert "api_url" in str(caught.value)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/graphql", "http://localhost:9/graphql", "http://[::1]:9/graphql"]
)
def test_plain_http_to_loopback_is_allowed(url):
    _client(url).close()


@pytest.mark.slow
def test_connectors_refuse_plain_http_to_a_remote_host_before_any_request(tmp_path):
    class Remote:
        url = "http://10.20.30.40/graphql"
        api_key = SECRET

    run = run_target(target_config(Remote, tmp_path), "", tmp_path, timeout=60)
    assert run.returncode != 0
    assert "api_url" in run.stderr
    tap = run_tap(tap_config(Remote), tmp_path / "tap", timeout=60)
    assert tap.returncode != 0
    assert "api_url" in tap.stderr


def test_a_connection_test_to_a_closed_port_fails_after_one_attempt():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    client = client_from_config(
        {"api_url": f"http://127.0.0.1:{port}/graphql", "api_key": SECRET},
        default_rate=5,
        max_retries=0,
        connect_timeout=3.0,
    )
    assert (client.connect_timeout, client.max_retries) == (3.0, 0)
    with pytest.raises(TransientError, match="after 1 attempts") as caught:
        client.execute("query { team { id } }")
    assert caught.value.ambiguous is False  # never connected: nothing can have been applied
    assert client.stats.requests == 1
    assert SECRET not in str(caught.value)


# ---- TLS --------------------------------------------------------------------------------------


def test_tls_verification_is_on_by_default_and_its_opt_out_is_named():
    prop = connection_properties(default_rate=1)["verify_tls"]
    assert prop["default"] is True
    assert "verify" in prop["title"].lower()
    assert _client("https://127.0.0.1:9/graphql").verify_tls is True


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory) -> ssl.SSLContext:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    folder: Path = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def test_a_self_signed_certificate_is_refused_naming_verify_tls(self_signed):
    with serve(answers, tls=self_signed) as port:
        client = _client(f"https://127.0.0.1:{port}/graphql", max_retries=0)
        with pytest.raises(ConfigError) as caught:
            client.execute("query { team { id } }")
    assert "verify_tls" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_verify_tls_false_accepts_a_self_signed_certificate(self_signed):
    with serve(answers, tls=self_signed) as port:
        client = _client(f"https://127.0.0.1:{port}/graphql", verify_tls=False, max_retries=0)
        with pytest.warns(InsecureRequestWarning):  # the opt-out is loud on every request
            assert client.execute("query { team { id } }") == {"team": {"id": "t1"}}


# ---- timeouts -----------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_server_that_never_answers_gives_a_transient_error_after_request_timeout():
    with serve(never_answers) as port:
        client = _client(f"http://127.0.0.1:{port}/graphql", request_timeout=0.5, max_retries=1)
        started = time.monotonic()
        with pytest.raises(TransientError) as caught:
            client.execute("query { team { id } }")
        elapsed = time.monotonic() - started
    assert "timed out" in str(caught.value)
    assert client.stats.requests == 2  # the first try and one retry, each cut at 0.5 s
    assert elapsed < 20, "the request was not bounded by request_timeout"


@pytest.mark.timeout(90)
def test_a_server_that_trickles_its_answer_is_cut_at_request_timeout():
    with serve(trickles) as port:
        client = _client(f"http://127.0.0.1:{port}/graphql", request_timeout=1, max_retries=0)
        started = time.monotonic()
        with pytest.raises(TransientError):
            client.execute("query { team { id } }")
        elapsed = time.monotonic() - started
    assert elapsed < 10, f"one request took {elapsed:.0f} s with request_timeout=1"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_connectors_facing_a_silent_server_stop_after_their_timeouts(tmp_path):
    with serve(never_answers) as port:

        class Silent:
            url = f"http://127.0.0.1:{port}/graphql"
            api_key = SECRET

        settings = {"request_timeout": 0.5, "max_retries": 1}
        one_row = lines(resumable_input([company_row(0, "TO")], state_every=1))
        target = run_target(
            target_config(Silent, tmp_path, **settings), one_row, tmp_path / "target", timeout=60
        )
        tap = run_tap(tap_config(Silent, **settings), tmp_path / "tap", timeout=60)
    for run in (target, tap):
        assert run.returncode != 0
        assert "timed out" in run.stderr


# ---- the whole answer under one deadline, a bounded body ---------------------------------------


def trickles_headers(conn: socket.socket, stop: threading.Event) -> None:
    """The status line, then one byte of a header every 0.2 s: no single read ever times out."""
    _read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    for _ in range(150):  # 30 s at most
        if stop.wait(0.2):
            return
        conn.sendall(b"X")


def trickles_status_line(conn: socket.socket, stop: threading.Event) -> None:
    _read_request(conn)
    for byte in b"HTTP/1.1 200 OK" * 10:
        if stop.wait(0.2):
            return
        conn.sendall(bytes([byte]))


@pytest.mark.timeout(90)
@pytest.mark.parametrize("handler", [trickles_headers, trickles_status_line])
def test_a_server_trickling_status_line_or_headers_is_cut_at_request_timeout(handler):
    with serve(handler) as port:
        client = _client(f"http://127.0.0.1:{port}/graphql", request_timeout=1, max_retries=0)
        started = time.monotonic()
        with pytest.raises(TransientError) as caught:
            client.execute("query { team { id } }")
        elapsed = time.monotonic() - started
    assert elapsed < 1 + 1, f"one request took {elapsed:.1f} s with request_timeout=1"
    assert "request_timeout" in str(caught.value)
    assert SECRET not in str(caught.value)


def _gzip_bomb(decoded: int, member: int = 8 << 20) -> bytes:
    """A gzip body of about decoded/1000 bytes that inflates to `decoded` zero bytes (gzip
    members concatenated decode as one stream, so one small member is repeated)."""
    one = gzip.compress(bytes(member), compresslevel=9)
    return one * (decoded // member)


def serve_bytes(body: bytes, headers: dict[str, str]) -> Callable[..., None]:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())

    def handler(conn: socket.socket, stop: threading.Event) -> None:
        _read_request(conn)
        length = f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        conn.sendall(f"HTTP/1.1 200 OK\r\n{head}{length}".encode() + body)
        stop.wait(5)

    return handler


# VmHWM is the peak of this process's own memory map. getrusage's ru_maxrss is not: Linux carries
# the parent's peak across the fork/vfork + exec that started this interpreter, so under a long
# pytest session it reports pytest's size, not the client's.
_PEAK_RSS = """
import json, sys
from moovago_api.errors import ResponseTooLarge
from moovago_api.settings import client_from_config
config = json.loads(sys.argv[1])
client = client_from_config(config, default_rate=5)
try:
    client.execute("query { team { id } }")
    outcome = "answered"
except ResponseTooLarge as err:
    outcome = str(err)
with open("/proc/self/status") as status:
    peak_kib = next(int(l.split()[1]) for l in status if l.startswith("VmHWM:"))
print(json.dumps({"peak_kib": peak_kib, "outcome": outcome}))
"""


def _peak_rss_client(config: dict[str, object]) -> dict[str, object]:
    """Run one request in a fresh interpreter; its peak RSS (KiB) and how the request ended."""
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_gzip_bomb_is_refused_with_memory_under_200_mb():
    bomb = _gzip_bomb(1 << 30)  # 1 GiB once inflated
    assert len(bomb) < 1_500_000
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    with serve(serve_bytes(bomb, headers)) as port:
        got = _peak_rss_client(
            {"api_url": f"http://127.0.0.1:{port}/graphql", "api_key": SECRET, "max_retries": 0}
        )
    assert "max_response_bytes" in str(got["outcome"])
    assert str(64 * 1024 * 1024) in str(got["outcome"])
    assert int(got["peak_kib"]) < 200 * 1024, f"peak RSS {int(got['peak_kib']) // 1024} MB"


def test_an_answer_over_max_response_bytes_is_refused_not_retried():
    big = json.dumps({"data": {"team": {"id": "t1", "name": "x" * 5000}}}).encode()
    served: list[int] = []

    def handler(conn: socket.socket, stop: threading.Event) -> None:
        served.append(1)
        serve_bytes(big, {"Content-Type": "application/json"})(conn, stop)

    with serve(handler) as port:
        client = _client(f"http://127.0.0.1:{port}/graphql", max_response_bytes=4096)
        with pytest.raises(ResponseTooLarge) as caught:
            client.execute("query { team { id } }")
        small = _client(f"http://127.0.0.1:{port}/graphql", max_response_bytes=8192)
        assert small.execute("query { team { id } }")["team"]["id"] == "t1"
    assert "max_response_bytes (4096 bytes" in str(caught.value)
    assert caught.value.limit == 4096
    assert len(served) == 2  # refused once, not retried; the larger cap reads it


def test_a_gzip_answer_under_the_cap_is_decoded():
    body = gzip.compress(TEAM_BODY)
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    with serve(serve_bytes(body, headers)) as port:
        client = _client(f"http://127.0.0.1:{port}/graphql", max_response_bytes=1024)
        assert client.execute("query { team { id } }") == {"team": {"id": "t1"}}
