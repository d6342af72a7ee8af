"""One POST to Moovago, bounded in time and size; only `moovago_api.client` uses it.

requests' timeouts bound each socket read: a server trickling its status line, headers or body a
byte at a time is never cut by them. So the connection tells the request on its thread when it
is written (the governor counts the send from then), and a timer shuts the socket down if the
answer is not whole `request_timeout` later: a blocked read then returns at once. The body is
read a chunk at a time with a running count of decoded bytes, so a gzip bomb is cut at
`max_response_bytes`, never inflated whole.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import functools
import json
import math
import queue
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, cast
from urllib.parse import urlsplit

import requests
from graphql import DocumentNode, print_ast
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import ConnectTimeoutError, HTTPError, ReadTimeoutError

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
    date: dt.datetime | None = None  # the answer's Date header, when it has a valid one

    def retry_after(self) -> float | None:
        """Seconds to wait from Retry-After: seconds, or an HTTP date (counted from the
        answer's own Date when it has one, so two clocks never mix); None when unreadable."""
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
    """POSTs bodies to `url` with the key's header; one session per request in flight."""

    url: str
    headers: Mapping[str, str]
    request_timeout: float
    connect_timeout: float
    verify_tls: bool
    max_response_bytes: int
    governor: RateGovernor
    secrets: tuple[str, ...]  # scrubbed from the text of transport errors

    def __post_init__(self) -> None:
        self._idle: queue.SimpleQueue[requests.Session] = queue.SimpleQueue()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def post(self, body: bytes, label: str, slot: float | None = None) -> Answer:
        """The answer; TransientError (`ambiguous` unless the request cannot have reached the
        server) when none came whole, ConfigError for a certificate that does not verify."""
        try:
            return self._post(body, label, slot)
        except requests.exceptions.SSLError as err:
            if _caused_by(err, ssl.SSLCertVerificationError):
                raise ConfigError(
                    f"api_url: the TLS certificate of {urlsplit(self.url).hostname} could not be "
                    f"verified ({self._said(err)}). Check api_url; set verify_tls to false only "
                    "for a test server with a self-signed certificate."
                ) from err
            # A handshake cut short: nothing was sent, so it may be retried.
            what = f"TLS handshake failed ({self._said(err)})"
            raise TransientError(what, ambiguous=False) from None
        except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as err:
            kind = "timed out" if isinstance(err, requests.exceptions.Timeout) else "failed"
            # A connection never made (NewConnectionError is a ConnectTimeoutError) cannot have
            # reached the server.
            reached = not _caused_by(err, ConnectTimeoutError)
            what = f"request {kind} ({self._said(err)})"
            raise TransientError(what, ambiguous=reached) from None

    def _post(self, body: bytes, label: str, slot: float | None) -> Answer:
        exchange = _Exchange(self.request_timeout, self.governor, slot)
        _current.exchange = exchange
        try:
            session = self._idle.get_nowait()
        except queue.Empty:
            session = self._new_session()
        try:
            with session.post(
                self.url,
                data=body,
                headers=self.headers,
                timeout=(self.connect_timeout, self.request_timeout),
                verify=self.verify_tls,
                allow_redirects=False,  # a redirect would carry the key to wherever it points
                stream=True,
            ) as response:
                content = self._read_body(response, label, exchange)
                exchange.close()  # read: a cut from now on would hit a pooled connection
                if exchange.expired:  # cut before: what looked like the end may not be it
                    raise OSError("answer cut at its deadline")
            date = http_date(response.headers.get("Date") or "")
            return Answer(response.status_code, response.headers, content, date)
        except (requests.exceptions.RequestException, HTTPError, OSError) as err:
            if exchange.expired:  # cut at the deadline: whatever broke, it is a timeout
                raise requests.exceptions.ReadTimeout(
                    f"no whole answer within request_timeout ({self.request_timeout:g} s)"
                ) from err
            raise
        finally:
            exchange.close()
            _current.exchange = None
            self._idle.put(session)

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def _new_session(self) -> requests.Session:
        session = requests.Session()  # not thread-safe: one per request in flight
        session.headers.update(
            {
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": f"moovago-connectors/{__version__}",
            }
        )
        session.trust_env = False  # no .netrc credentials or proxies picked up silently
        for prefix in ("http://", "https://"):
            session.mount(prefix, _Adapter())
        with self._lock:
            self._sessions.append(session)
        return session

    def _read_body(self, response: requests.Response, label: str, exchange: _Exchange) -> bytes:
        limit = self.max_response_bytes
        declared = response.headers.get("Content-Length", "")
        if (
            declared.isdigit()
            and int(declared) > limit
            and "Content-Encoding" not in response.headers
        ):
            raise self._too_large(label, f"it declares {int(declared)} bytes")
        content = bytearray()
        try:
            while chunk := response.raw.read1(_CHUNK, decode_content=True):
                content += chunk
                if len(content) > limit:
                    raise self._too_large(label, "it kept growing")
                if exchange.due():  # the deadline passed while the answer kept coming
                    raise OSError("answer still coming at its deadline")
        except ReadTimeoutError as err:
            raise requests.exceptions.ReadTimeout(str(err)) from err
        except HTTPError as err:  # a connection cut or reset in the middle of the body
            raise requests.exceptions.ConnectionError(str(err)) from err
        return bytes(content)

    def _said(self, err: Exception) -> str:
        return short(redact(str(err), self.secrets))

    def _too_large(self, label: str, why: str) -> ResponseTooLarge:
        return ResponseTooLarge(
            f"Moovago's answer to {label} is over max_response_bytes ({self.max_response_bytes} "
            f"bytes once decoded; {why}): it was refused. Ask for less per request (page_size) "
            "or raise max_response_bytes.",
            limit=self.max_response_bytes,
        )


class _Exchange:
    """One request's deadline, armed when the request is written."""

    def __init__(self, seconds: float, governor: RateGovernor, slot: float | None) -> None:
        self.seconds, self.governor, self.slot = seconds, governor, slot
        self.at = math.inf
        self.expired = False
        self.done = False
        self.timer: threading.Timer | None = None
        self.lock = threading.Lock()

    def written(self, sock: socket.socket) -> None:
        if self.slot is not None:
            self.governor.sent(self.slot)
        self.at = time.monotonic() + self.seconds
        self.timer = threading.Timer(self.seconds, self._cut, (sock,))
        self.timer.daemon = True
        self.timer.start()

    def _cut(self, sock: socket.socket) -> None:
        with self.lock:
            if self.done:
                return
            self.expired = True
            with contextlib.suppress(OSError):  # the plain socket's: SSL is left to its reader
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def due(self) -> bool:
        self.expired = self.expired or time.monotonic() >= self.at
        return self.expired

    def close(self) -> None:
        with self.lock:
            self.done = True
        if self.timer is not None:
            self.timer.cancel()


_current = threading.local()  # the `_Exchange` of the request this thread is sending


class _Written:
    def getresponse(self) -> Any:  # the request is written: its answer is due from now
        exchange: _Exchange | None = getattr(_current, "exchange", None)
        if exchange is not None:
            exchange.written(self.sock)  # type: ignore[attr-defined]
        return super().getresponse()  # type: ignore[misc]


class _HTTPConnection(_Written, HTTPConnection):
    pass


class _HTTPSConnection(_Written, HTTPSConnection):
    pass


class _Adapter(HTTPAdapter):
    """requests' adapter whose connections report when each request is written."""

    def get_connection_with_tls_context(self, *args: Any, **kwargs: Any) -> Any:
        pool = cast(HTTPConnectionPool, super().get_connection_with_tls_context(*args, **kwargs))
        pool.ConnectionCls = _HTTPSConnection if pool.scheme == "https" else _HTTPConnection
        return pool


@functools.lru_cache(maxsize=8)
def http_date(value: str) -> dt.datetime | None:
    """An HTTP date (`Tue, 01 Dec 2026 10:00:00 GMT`) in UTC; None when it is not one."""
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.replace(tzinfo=when.tzinfo or dt.timezone.utc).astimezone(dt.timezone.utc)


def _caused_by(err: BaseException, kind: type[BaseException]) -> bool:
    """Whether `kind` is anywhere in the chain requests and urllib3 wrap around a failure."""
    stack, seen = [err], set()
    while stack:
        exc = stack.pop()
        if isinstance(exc, kind):
            return True
        if id(exc) not in seen:
            seen.add(id(exc))
            linked = [*exc.args, getattr(exc, "reason", None), exc.__cause__, exc.__context__]
            stack += [e for e in linked if isinstance(e, BaseException)]
    return False


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
