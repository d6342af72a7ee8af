"""One POST to Moovago on a urllib3 connection, bounded in time and size.

Socket timeouts bound each read, so a server trickling its answer a byte at a time is never cut
by them: once the request is written, a timer shuts the socket down if the answer is not whole
`request_timeout` later. The body is read a chunk at a time, decoded, so a gzip bomb is cut at
`max_response_bytes`, never inflated whole.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import functools
import http.client
import json
import queue
import socket
import ssl
import threading
import warnings
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import certifi
from graphql import DocumentNode, print_ast
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import HTTPError, InsecureRequestWarning
from urllib3.response import BaseHTTPResponse

from moovago_api import __version__
from moovago_api.errors import ConfigError, ResponseTooLarge, TransientError, short
from moovago_api.governor import RateGovernor
from moovago_api.wire import redact

_CHUNK = 1 << 16


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, its body read whole within the request's deadline."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes
    date: dt.datetime | None = None  # the answer's valid Date header

    def retry_after(self) -> float | None:
        """Seconds from Retry-After (an HTTP date counts from the answer's own Date)."""
        text = (self.headers.get("Retry-After") or "").strip()
        try:
            seconds = float(text)
        except ValueError:
            when = http_date(text) if text else None
            if when is None:
                return None
            seconds = (when - (self.date or dt.datetime.now(dt.timezone.utc))).total_seconds()
        return None if seconds != seconds else max(0.0, seconds)  # NaN: unreadable


@dataclass
class Transport:
    """POSTs bodies to `url` with the key's header, on a pool of kept-alive connections."""

    url: str
    headers: Mapping[str, str]
    request_timeout: float
    connect_timeout: float
    verify_tls: bool
    max_response_bytes: int
    governor: RateGovernor
    secrets: tuple[str, ...]  # scrubbed from the text of transport errors

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._idle: queue.SimpleQueue[HTTPConnection] = queue.SimpleQueue()
        self.close = weakref.finalize(self, _close, self._idle)  # also when dropped unclosed
        self.headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Accept-Encoding": "gzip, deflate",
            "User-Agent": f"moovago-connectors/{__version__}",
            **self.headers,
        }

    def post(self, body: bytes, label: str, slot: float | None = None) -> Answer:
        """The answer; TransientError (`ambiguous` unless the request cannot have reached the
        server) when none came whole, ConfigError for a certificate that does not verify."""
        conn = self._connection()
        try:
            if conn.sock is None:
                conn.connect()
        except (OSError, HTTPError) as err:  # never connected: nothing can have been applied
            conn.close()
            if isinstance(err, ssl.SSLCertVerificationError):
                raise ConfigError(
                    f"api_url: the TLS certificate of {conn.host} could not be verified "
                    f"({self._said(err)}). Check api_url; set verify_tls to false only for a "
                    "test server with a self-signed certificate."
                ) from err
            kind = "timed out" if isinstance(err, TimeoutError) else "failed"
            raise TransientError(f"request {kind} ({self._said(err)})", ambiguous=False) from None
        if isinstance(conn, HTTPSConnection) and not conn.is_verified:  # as loud as urllib3's
            warnings.warn(f"Unverified HTTPS request to {conn.host}", InsecureRequestWarning, 2)
        claim = threading.Lock()  # taken first by the whole answer or by its deadline
        timer = threading.Timer(self.request_timeout, _cut, (conn.sock, claim))
        response = None
        try:
            conn.timeout = self.request_timeout
            conn.request("POST", self._path, body, self.headers, preload_content=False)
            if slot is not None:
                self.governor.sent(slot)  # written: the send counts from now
            timer.start()
            response = conn.getresponse()
            content = self._read_body(response, label)
            if not claim.acquire(blocking=False):  # cut as it ended: the end may not be real
                raise TimeoutError
        except (OSError, HTTPError, http.client.HTTPException, ResponseTooLarge) as err:
            if response is not None:
                response.close()
            conn.close()
            if isinstance(err, ResponseTooLarge):
                raise
            late = not claim.acquire(blocking=False)
            what = self._said(err)
            if late:
                what = f"no whole answer within request_timeout ({self.request_timeout:g} s)"
            kind = "timed out" if late or isinstance(err, TimeoutError) else "failed"
            raise TransientError(f"request {kind} ({what})", ambiguous=True) from None
        finally:
            timer.cancel()
        self._idle.put(conn)  # http.client has closed it if the server said so
        headers = dict(response.headers.items())
        return Answer(response.status, headers, content, http_date(headers.get("Date") or ""))

    def _connection(self) -> HTTPConnection:
        with contextlib.suppress(queue.Empty):
            while True:
                conn = self._idle.get_nowait()
                if conn.is_connected:  # not closed by the server while it sat idle
                    return conn
                conn.close()
        parts = urlsplit(self.url)
        if parts.scheme == "http":
            return HTTPConnection(parts.hostname or "", parts.port, timeout=self.connect_timeout)
        return HTTPSConnection(
            parts.hostname or "",
            parts.port,
            timeout=self.connect_timeout,
            cert_reqs="CERT_REQUIRED" if self.verify_tls else "CERT_NONE",
            ca_certs=certifi.where(),  # the CAs requests trusted, not the system's
        )

    def _read_body(self, response: BaseHTTPResponse, label: str) -> bytes:
        limit, headers = self.max_response_bytes, response.headers
        declared = headers.get("Content-Length", "")
        refused = declared.isdigit() and int(declared) > limit and "Content-Encoding" not in headers
        content = bytearray()
        while not refused and (chunk := response.read1(_CHUNK, decode_content=True)):
            content += chunk
            refused = len(content) > limit
        if refused:
            raise ResponseTooLarge(
                f"Moovago's answer to {label} is over max_response_bytes ({limit} bytes once "
                "decoded): it was refused. Ask for less per request (page_size) or raise "
                "max_response_bytes.",
                limit=limit,
            )
        return bytes(content)

    def _said(self, err: Exception) -> str:
        return short(redact(str(err), self.secrets))


def _close(idle: queue.SimpleQueue[HTTPConnection]) -> None:
    with contextlib.suppress(queue.Empty):
        while True:
            idle.get_nowait().close()


def _cut(sock: socket.socket, claim: threading.Lock) -> None:
    """The deadline: shut the socket so a blocked read returns at once."""
    if claim.acquire(blocking=False):
        with contextlib.suppress(OSError):  # the plain socket's: SSL is left to its reader
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


@functools.lru_cache(maxsize=8)
def http_date(value: str) -> dt.datetime | None:
    """An HTTP date (`Tue, 01 Dec 2026 10:00:00 GMT`) in UTC; None when it is not one."""
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.replace(tzinfo=when.tzinfo or dt.timezone.utc).astimezone(dt.timezone.utc)


def encode_request(
    document: str | DocumentNode,
    variables: Mapping[str, Any] | None = None,
    operation_name: str | None = None,
) -> bytes:
    """The body `execute` sends for this request: what a server's size limit counts."""
    text = print_ast(document) if isinstance(document, DocumentNode) else document
    return json.dumps(
        {"query": text, "variables": dict(variables or {}), "operationName": operation_name},
        default=_json_default,
        ensure_ascii=False,
    ).encode("utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"GraphQL variables must be JSON values; got a {type(value).__name__}")
