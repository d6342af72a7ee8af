"""A scripted HTTP server on 127.0.0.1 for client tests: answers what the test tells it to."""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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
                try:
                    self._answer(reply)
                finally:
                    with stub._lock:
                        stub.in_flight -= 1

            def _answer(self, reply: Reply) -> None:
                if reply.delay:
                    time.sleep(reply.delay)
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
