"""A scripted HTTP server on 127.0.0.1 for client tests: answers what the test tells it to."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from moovago_api.client import MoovagoClient
from moovago_api.errors import QueryError
from moovago_api.governor import RateGovernor


def busiest_window(times: list[float], window: float = 1.0) -> int:
    """Brute force, independent of the code under test: most sends in any [t, t + window)."""
    return max((sum(1 for u in times if t <= u < t + window) for t in times), default=0)


@dataclass
class Reply:
    """One scripted answer. `action="reset"` drops the connection without answering."""

    status: int = 200
    body: Any = field(default_factory=lambda: {"data": {"team": {"id": "t1"}}})
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    action: str | None = None
    date: str | None = "now"  # the Date header: "now", this text, or None for none at all

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body).encode("utf-8")


@dataclass
class Received:
    at: float  # time.monotonic() when the request arrived
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out leave broken pipes behind; they are expected here.
        pass


class StubServer:
    """Answers each POST with the next scripted reply, else with `responder(request)` when set,
    else with `default`. `in_flight_peak` is the most requests it was answering at once."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.replies: deque[Reply] = deque()
        self.default = Reply()
        self.responder: Callable[[Received], Reply] | None = None
        self.received: list[Received] = []
        self.in_flight = 0
        self.in_flight_peak = 0
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else delayed ACKs add 40 ms per answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                request = Received(time.monotonic(), self.path, dict(self.headers.items()), body)
                with stub._lock:
                    stub.received.append(request)
                    if stub.replies:
                        reply = stub.replies.popleft()
                    elif stub.responder is not None:
                        reply = stub.responder(request)
                    else:
                        reply = stub.default
                    stub.in_flight += 1
                    stub.in_flight_peak = max(stub.in_flight_peak, stub.in_flight)
                self._counted = True
                try:
                    self._answer(reply)
                finally:
                    self._settle()

            def _settle(self) -> None:
                # Out of flight before the answer leaves: a client may send its next request as
                # soon as it has read this one, before the handler would get here afterwards.
                with stub._lock:
                    if self._counted:
                        self._counted = False
                        stub.in_flight -= 1

            def _answer(self, reply: Reply) -> None:
                if reply.delay:
                    time.sleep(reply.delay)
                self._settle()
                if reply.action == "reset":
                    # SO_LINGER 0: close with a TCP reset instead of a clean shutdown.
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.close_connection = True
                    return
                payload = reply.encoded()
                self.send_response_only(reply.status)
                if reply.date is not None:
                    date = self.date_time_string() if reply.date == "now" else reply.date
                    self.send_header("Date", date)
                headers = {"Content-Type": "application/json", **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = _Server(("127.0.0.1", 0), Handler)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}/graphql"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def start(self) -> StubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class StubClient(MoovagoClient):
    """A real client that records the variables of each request submitted (sent, or cancelled
    before it left); with `ahead`, its answers count as slow: `max_requests_in_flight` are
    worth keeping in flight from the first request on (the window answer times would open)."""

    def __init__(self, *, ahead: bool = False, **settings: Any) -> None:
        super().__init__(**settings)
        self.ahead = ahead
        self.submitted: list[dict[str, Any]] = []

    def submit(self, document: Any, variables: Any = None, *args: Any, **kwargs: Any) -> Any:
        self.submitted.append(dict(variables or {}))
        return super().submit(document, variables, *args, **kwargs)

    def useful_in_flight(self) -> int:
        return self.max_requests_in_flight if self.ahead else super().useful_in_flight()


@contextlib.contextmanager
def client_for(
    answer: Callable[[str, dict[str, Any], str | None], Any],
    *,
    window: int = 1,
    ahead: bool = False,
) -> Iterator[StubClient]:
    """A real MoovagoClient against a stub server that answers each POST with
    `answer(query, variables, operation_name)` as its `data` (a QueryError it raises becomes
    the `errors` and `data` of the answer). `window` requests at most in flight; `ahead` keeps
    that many in flight from the start. Requests reach `answer` one at a time."""

    def respond(request: Received) -> Reply:
        body = request.json
        try:
            data = answer(body["query"], body.get("variables") or {}, body.get("operationName"))
        except QueryError as err:
            return Reply(body={"errors": err.errors, "data": err.data})
        return Reply(body={"data": data})

    stub = StubServer()
    stub.responder = respond
    stub.start()
    client = StubClient(
        ahead=ahead,
        api_url=stub.url,
        api_key="stub-key-0000",
        governor=RateGovernor(1e6),
        max_requests_in_flight=window,
        max_retries=0,
    )
    try:
        yield client
    finally:
        client.close()
        stub.stop()
