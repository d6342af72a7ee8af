"""The one HTTP path to Moovago: governed, retried, classified.

Every request of the tap and the target goes through `MoovagoClient.execute`, so the rate
governor and the retry policy can be neither bypassed nor applied twice.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import decimal
import functools
import heapq
import itertools
import json
import logging
import math
import re
import socket
import ssl
import threading
import time
import typing as t
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import backoff
import requests
from graphql import DocumentNode, GraphQLSyntaxError, OperationDefinitionNode, parse, print_ast
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
)

from moovago_api import __version__
from moovago_api.errors import (
    AuthError,
    ConfigError,
    MoovagoError,
    QueryError,
    RateLimited,
    RequestTooLarge,
    ResponseTooLarge,
    TransientError,
)
from moovago_api.governor import RateGovernor, shared_governor
from moovago_api.wire import check_plain_http, redact, secret_forms

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "MAX_REQUESTS_IN_FLIGHT",
    "MAX_REQUESTS_PER_SECOND",
    "ClientStats",
    "MoovagoClient",
    "check_api_url",
    "check_rate",
    "default_in_flight",
    "parse_api_key",
]

# Moovago's documented server limit; above it every extra request is a 429.
MAX_REQUESTS_PER_SECOND = 5
#: Most requests one client keeps in flight (`max_requests_in_flight`).
MAX_REQUESTS_IN_FLIGHT = 16
#: Answers may take this long and the rate is still used in full by the default window.
IN_FLIGHT_LATENCY_COVERED = 2.0
#: Largest decoded answer read (`max_response_bytes`): 64 MiB.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024

_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_HEADER_LINE = re.compile(r"^(?P<name>[A-Za-z0-9!#$%&'*+.^_`|~-]+):(?P<space>\s*)(?P<value>\S.*)$")
_AUTH_MESSAGE = re.compile(
    r"not authori[sz]ed|unauthori[sz]ed|unauthenticated|forbidden|access denied"
    r"|invalid api[ _-]?key|api[ _-]?key .*(?:invalid|missing|unknown|expired)",
    re.IGNORECASE,
)
_AUTH_CODES = {"UNAUTHENTICATED", "UNAUTHORIZED", "FORBIDDEN", "AUTHENTICATION_ERROR"}
_THROTTLE_MESSAGE = re.compile(
    r"too many requests|rate[ _-]?limit|throttl|quota exceeded", re.IGNORECASE
)
_THROTTLE_CODES = {"TOO_MANY_REQUESTS", "RATE_LIMITED", "THROTTLED"}
_CHUNK = 1 << 16


@dataclass
class ClientStats:
    """What a client did, for run summaries and benchmarks."""

    requests: int = 0  # HTTP attempts sent
    retries: int = 0  # attempts that repeated an earlier one
    rate_limited: int = 0  # 429s and throttling errors seen
    transient_failures: int = 0  # 5xx, timeouts, resets, non-JSON bodies seen
    wait_seconds: float = 0.0  # time spent waiting on the governor and on backoff

    def __post_init__(self) -> None:
        self._lock = threading.Lock()  # not a field: asdict() and == see the counts only

    def add(self, **counts: float) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


def parse_api_key(api_key: str | None, api_key_header: str = "X-API-KEY") -> tuple[str, str]:
    """(header name, key) from the `api_key` setting, which may be a whole header line.

    The welcome e-mail gives the key as a curl header line, `X-API-KEY: abc`; that form is
    recognised when the colon is followed by a space or the name is `api_key_header`.
    """
    if api_key is not None and not isinstance(api_key, str):
        raise ConfigError("api_key must be text: the key from your Moovago welcome e-mail.")
    key = (api_key or "").strip()
    header = api_key_header.strip() if isinstance(api_key_header, str) else ""
    if not key:
        raise ConfigError(
            "api_key is missing: set it to the API key from your Moovago welcome e-mail "
            "(ask support@moovago.com if you have none)."
        )
    line = _HEADER_LINE.match(key)
    if line and (line["space"] or line["name"].lower() == header.lower()):
        header, key = line["name"], line["value"].strip()
    if not _HEADER_NAME.match(header):
        raise ConfigError(
            f"api_key_header must be an HTTP header name such as X-API-KEY, got {header!r}."
        )
    if any(ch in key for ch in "\r\n\0"):
        raise ConfigError("api_key must be a single line (it contains a line break).")
    for position, ch in enumerate(key, 1):
        # http.client sends header values as Latin-1: anything else would fail mid-request.
        if ord(ch) > 0xFF or ord(ch) < 0x20 or ord(ch) == 0x7F:
            kind = "a control character" if ord(ch) <= 0x7F else "a character outside Latin-1"
            raise ConfigError(
                f"api_key cannot be sent in an HTTP header: character {position} of the key is "
                f"{kind}; copy the key again from the welcome e-mail."
            )
    return header, key


def default_in_flight(max_requests_per_second: float) -> int:
    """Requests kept in flight when `max_requests_in_flight` is unset: enough to use every slot
    of the rate while answers take up to 2 s (at least 2, at most 16)."""
    wanted = math.ceil(max_requests_per_second * IN_FLIGHT_LATENCY_COVERED - 1e-9)
    return max(2, min(MAX_REQUESTS_IN_FLIGHT, wanted))


def check_api_url(api_url: str) -> str:
    """The URL, stripped; ConfigError unless https:// (or http:// to a loopback host)."""
    url = (api_url or "").strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises on a malformed port
    except ValueError as err:
        raise ConfigError(f"api_url is not a valid URL: {err}.") from err
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(
            "api_url must be an absolute https:// URL such as https://<api-backend>/graphql."
        )
    if parts.username or parts.password:
        raise ConfigError("api_url must not hold a user name or password; use api_key.")
    check_plain_http(url)
    return url


def check_rate(max_requests_per_second: object) -> float:
    """The rate as a float; ConfigError unless 0 < rate <= 5."""
    rate = max_requests_per_second
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
        raise ConfigError(f"max_requests_per_second must be a number above 0, got {rate!r}.")
    if rate > MAX_REQUESTS_PER_SECOND:
        raise ConfigError(
            "max_requests_per_second must be at most 5 "
            "(Moovago answers 429 above 5 requests per second)."
        )
    return float(rate)


Request = tuple[Any, ...]
"""One request of `execute_many`: (document, variables) or (document, variables, operation_name)."""

Result = dict[str, Any] | MoovagoError
"""One result of `execute_many`: the `data`, or the MoovagoError the request ended with."""


class MoovagoClient:
    """Sends GraphQL documents to Moovago and returns `data`, or raises a typed error."""

    def __init__(
        self,
        *,
        api_url: str,
        api_key: str,
        api_key_header: str = "X-API-KEY",
        max_requests_per_second: float = 4,
        request_timeout: float = 30.0,
        verify_tls: bool = True,
        max_retries: int = 8,
        max_retry_seconds: float = 300.0,
        max_requests_in_flight: int | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        governor: RateGovernor | None = None,
        logger: logging.Logger | None = None,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        connect_timeout: float | None = None,
    ) -> None:
        """`connect_timeout`: seconds to open the connection (default request_timeout); a
        connection test sets a few seconds so an address that does not answer fails fast."""
        self.api_url = check_api_url(api_url)
        self.api_key_header, self._api_key = parse_api_key(api_key, api_key_header)
        header = self.api_key_header
        self._secrets = secret_forms(
            self._api_key, api_key, f"{header}: {self._api_key}", f"{header}:{self._api_key}"
        )
        rate = check_rate(max_requests_per_second)
        if not 0 < request_timeout < math.inf:
            raise ConfigError(f"request_timeout must be above 0 seconds, got {request_timeout!r}.")
        if max_retries < 0 or max_retry_seconds < 0:
            raise ConfigError("max_retries and max_retry_seconds must not be negative.")
        in_flight = (
            default_in_flight(rate) if max_requests_in_flight is None else max_requests_in_flight
        )
        if not 1 <= in_flight <= MAX_REQUESTS_IN_FLIGHT:
            raise ConfigError(
                f"max_requests_in_flight must be 1 to {MAX_REQUESTS_IN_FLIGHT}, got {in_flight!r}."
            )
        if max_response_bytes < 1:
            raise ConfigError(f"max_response_bytes must be above 0, got {max_response_bytes!r}.")
        self.max_requests_per_second = float(rate)
        self.request_timeout = float(request_timeout)
        self.connect_timeout = min(connect_timeout or request_timeout, request_timeout)
        self.verify_tls = verify_tls
        self.max_retries = int(max_retries)
        self.max_retry_seconds = float(max_retry_seconds)
        self.max_requests_in_flight = int(in_flight)
        self.max_response_bytes = int(max_response_bytes)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.governor = governor or shared_governor(self.api_url, rate)
        self.logger = logger or logging.getLogger(__name__)
        self.stats = ClientStats()
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._answer_seconds: float | None = None  # moving average of answer times (no wait)
        self._stop = threading.Event()  # set by close(): waits on the governor end at once
        self._server_date: tuple[dt.datetime, float] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"MoovagoClient(api_url={self.api_url!r}, api_key_header={self.api_key_header!r})"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every form of the key to scrub from text: as configured, stripped, as a header line."""
        return self._secrets

    # -- public --------------------------------------------------------------------------------

    def execute(
        self,
        document: str | DocumentNode,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
        *,
        retry_ambiguous: bool = True,
    ) -> dict[str, Any]:
        """Send one GraphQL operation and return its `data`.

        429s and throttling errors wait and retry; 5xx, timeouts, resets and non-JSON bodies
        retry within `max_retries` and `max_retry_seconds`. With `retry_ambiguous=False`, a
        failure after the request may have reached the server raises at once
        (TransientError with ambiguous=True), so a create is never sent twice blind.
        """
        if self._closed:
            raise MoovagoError("This MoovagoClient is closed.")
        text = print_ast(document) if isinstance(document, DocumentNode) else document
        label = operation_name or _operation_label(document)
        body = json.dumps(
            {"query": text, "variables": dict(variables or {}), "operationName": operation_name},
            default=_json_default,
            ensure_ascii=False,
        ).encode("utf-8")
        return _Attempts(self, body, label, retry_ambiguous).run()

    def execute_many(
        self,
        requests: Iterable[Request],
        window: int | None = None,
        *,
        retry_ambiguous: bool = True,
    ) -> Iterator[Result]:
        """Send several requests with up to `window` of them in flight; results in input order.

        Each request is (document, variables) or (document, variables, operation_name). Each
        result is its `data`, or the MoovagoError it ended with (the caller decides). Every
        request goes through `execute`: the governor decides when each may leave, and 429s,
        retries and `retry_ambiguous` work as for one request. `window` (default and upper
        bound: `max_requests_in_flight`) of 1 sends them one by one in the calling thread.
        Requests are taken from `requests` only as slots free up; once the iterator is closed
        or exhausted, none of its requests is still in flight.
        """
        size = self.max_requests_in_flight if window is None else int(window)
        if size < 1:
            raise ValueError(f"window must be at least 1, got {window!r}")
        size = min(size, self.max_requests_in_flight)
        if size == 1:
            for request in requests:
                yield self._settle(request, retry_ambiguous)
            return
        items = iter(requests)
        pending: deque[concurrent.futures.Future[Result]] = deque()
        try:
            for request in itertools.islice(items, size):
                pending.append(self._submit(request, retry_ambiguous))
            while pending:
                result = _outcome(pending.popleft())
                for request in itertools.islice(items, 1):
                    pending.append(self._submit(request, retry_ambiguous))
                yield result
        finally:
            for future in pending:
                future.cancel()
            concurrent.futures.wait(pending)

    def submit(
        self,
        document: Any,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
        *,
        retry_ambiguous: bool = True,
    ) -> concurrent.futures.Future[Result]:
        """Send one request in the background; its Future holds the `data` or the MoovagoError.

        Like `execute_many`, for a caller that decides its next request from each answer (the
        pager asking pages ahead): the governor, 429 handling and retries are those of
        `execute`, and at most `max_requests_in_flight` requests run at once. Cancel the
        futures not needed any more (one not started yet is then never sent).
        """
        return self._submit((document, variables, operation_name), retry_ambiguous)

    def useful_in_flight(self) -> int:
        """Requests worth keeping in flight to use every slot of the rate at the answer time
        seen so far: 1 + rate x answer time, at most `max_requests_in_flight`; 1 before any
        answer. Asking more ahead would only make more requests go unused at an end."""
        seconds = self._answer_seconds
        if seconds is None:
            return 1
        wanted = 1 + math.ceil(self.max_requests_per_second * seconds - 1e-9)
        return max(1, min(self.max_requests_in_flight, wanted))

    def _saw_answer(self, seconds: float) -> None:
        previous = self._answer_seconds
        self._answer_seconds = seconds if previous is None else 0.7 * previous + 0.3 * seconds

    def server_time(self) -> dt.datetime | None:
        """The server's clock as last seen: the `Date` of the latest answer that had one, plus
        the time since it arrived (UTC; whole seconds of error). None before any such answer."""
        seen = self._server_date
        if seen is None:
            return None
        date, at = seen
        return date + dt.timedelta(seconds=time.monotonic() - at)

    def close(self) -> None:
        """Refuse new requests, let those in flight finish, close every pooled connection."""
        self._closed = True
        self._stop.set()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def __enter__(self) -> MoovagoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------

    def _settle(self, request: Request, retry_ambiguous: bool) -> Result:
        document, variables, operation_name = _unpack(request)
        try:
            return self.execute(
                document, variables, operation_name, retry_ambiguous=retry_ambiguous
            )
        except MoovagoError as err:
            return err

    def _submit(self, request: Request, retry_ambiguous: bool) -> concurrent.futures.Future[Result]:
        with self._sessions_lock:
            if self._pool is None and not self._closed:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    self.max_requests_in_flight, thread_name_prefix="moovago-request"
                )
            pool = self._pool
        if pool is not None:
            try:
                return pool.submit(self._settle, request, retry_ambiguous)
            except RuntimeError:  # closed meanwhile
                pass
        done: concurrent.futures.Future[Result] = concurrent.futures.Future()
        done.set_result(MoovagoError("This MoovagoClient is closed."))
        return done

    def _session(self) -> requests.Session:
        # One session per thread: requests.Session is not documented as thread-safe.
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update(
                {
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                    "User-Agent": f"moovago-connectors/{__version__}",
                }
            )
            session.trust_env = False  # no .netrc credentials or proxies picked up silently
            for prefix in ("http://", "https://"):
                session.mount(prefix, _DeadlineAdapter())
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _post(self, body: bytes, label: str, slot: float | None = None) -> _Answer:
        # requests' timeout bounds each socket read; the deadline bounds the whole answer (status
        # line, headers and body), so a server trickling any of it cannot hold a run for ever.
        deadline = _Deadline(time.monotonic() + self.request_timeout)
        if slot is not None:
            deadline.governor, deadline.slot = self.governor, slot
        _answer_deadline.current = deadline
        try:
            check_plain_http(self.api_url)  # where the name resolves now, not at start
            with self._session().post(
                self.api_url,
                data=body,
                headers={self.api_key_header: self._api_key},
                timeout=(self.connect_timeout, self.request_timeout),
                verify=self.verify_tls,
                allow_redirects=False,  # a redirect would carry the key to wherever it points
                stream=True,
            ) as response:
                self._saw_date(response.headers.get("Date"))
                content = self._read_body(response, label)
                if deadline.expired:  # cut off: what was read is not the whole answer
                    raise self._too_slow()
                return _Answer(response.status_code, response.headers, content)
        except (requests.exceptions.RequestException, HTTPError, OSError) as err:
            if deadline.expired:
                raise self._too_slow() from err
            raise
        finally:
            deadline.done = True
            _answer_deadline.current = None

    def _read_body(self, response: requests.Response, label: str) -> bytes:
        limit = self.max_response_bytes
        declared = response.headers.get("Content-Length", "")
        encoded = "Content-Encoding" in response.headers
        if declared.isdigit() and int(declared) > limit and not encoded:
            raise self._too_large(label, f"it declares {int(declared)} bytes")
        content = bytearray()
        try:
            while chunk := response.raw.read1(_CHUNK, decode_content=True):
                content += chunk
                if len(content) > limit:
                    raise self._too_large(label, "it kept growing")
        except ReadTimeoutError as err:
            raise requests.exceptions.ReadTimeout(str(err)) from err
        except HTTPError as err:  # a connection cut or reset in the middle of the body
            raise requests.exceptions.ConnectionError(str(err)) from err
        return bytes(content)

    def _too_slow(self) -> requests.exceptions.ReadTimeout:
        return requests.exceptions.ReadTimeout(
            f"no whole answer within request_timeout ({self.request_timeout:g} s)"
        )

    def _too_large(self, label: str, why: str) -> ResponseTooLarge:
        return ResponseTooLarge(
            f"Moovago's answer to {label} is over max_response_bytes ({self.max_response_bytes} "
            f"bytes once decoded; {why}): it was refused. Ask for less per request (page_size) "
            "or raise max_response_bytes.",
            limit=self.max_response_bytes,
        )

    def _saw_date(self, value: str | None) -> None:
        date = _http_date(value) if value else None
        if date is not None:
            self._server_date = (date, time.monotonic())

    def _redact(self, text: str) -> str:
        return t.cast("str", redact(text, self._secrets))

    def _redact_data(self, value: Any) -> Any:
        return redact(value, self._secrets)

    def _backoff(self, failures: int) -> float:
        """The wait after the n-th 429 without Retry-After: backoff's full-jitter exponential."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** max(failures - 1, 0))
        return backoff.full_jitter(ceiling)


@dataclass(frozen=True)
class _Answer:
    """One HTTP answer, its body read whole within the request's deadline."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes


class _Retry(Exception):
    """A transient failure `backoff` retries: 5xx, timeout, reset, a body that is not JSON."""

    def __init__(self, what: str, status: int | None) -> None:
        super().__init__(what)
        self.what = what
        self.status = status


class _Attempts:
    """The retries of one `execute` call: `backoff` for transient failures, the governor's
    shared pause for 429s (inside one backoff try, bounded by count and time of its own)."""

    def __init__(
        self, client: MoovagoClient, body: bytes, label: str, retry_ambiguous: bool
    ) -> None:
        self.client = client
        self.body = body
        self.label = label
        self.retry_ambiguous = retry_ambiguous
        self.started = time.monotonic()
        self.attempts = 0
        self.throttles = 0  # 429s and throttling errors so far
        self.maybe_applied = False  # some attempt may have reached the server and failed

    def run(self) -> dict[str, Any]:
        client = self.client
        try:
            for attempt in backoff.retry_context(
                _Retry,
                backoff.expo,
                max_tries=client.max_retries + 1,
                max_time=client.max_retry_seconds,
                jitter=backoff.full_jitter,
                giveup=lambda _: client._closed,
                on_backoff=self._retrying,
                logger=None,
                factor=client.backoff_base,
                max_value=client.backoff_max,
            ):
                with attempt:
                    return self._until_not_throttled()
        except _Retry as last:
            raise TransientError(
                f"Moovago {self.label} failed after {self.attempts} attempts over "
                f"{time.monotonic() - self.started:.1f}s; last error: {last.what}.",
                status=last.status,
                ambiguous=self.maybe_applied,
            ) from None
        raise MoovagoError(f"Moovago {self.label}: no attempt was made.")  # pragma: no cover

    def _retrying(self, details: Any) -> None:
        client = self.client
        client.stats.add(wait_seconds=details["wait"])
        client.logger.info(
            "Moovago %s: %s; retry %d of %d in %.2fs.",
            self.label,
            details["exception"].what,
            details["tries"],
            client.max_retries,
            details["wait"],
        )

    def _until_not_throttled(self) -> dict[str, Any]:
        while True:
            data = self._once()
            if data is not None:
                return data

    def _once(self) -> dict[str, Any] | None:
        """One HTTP attempt: `data`, None after a 429 (waited out), _Retry, or a final error."""
        client = self.client
        if client._closed:
            raise MoovagoError(f"This MoovagoClient is closed; {self.label} was not sent.")
        asked = time.monotonic()
        slot = client.governor.acquire(client._stop)
        if slot is None:
            raise MoovagoError(f"This MoovagoClient is closed; {self.label} was not sent.")
        sent = time.monotonic()
        self.attempts += 1
        client.stats.add(requests=1, retries=int(self.attempts > 1), wait_seconds=sent - asked)
        try:
            response = client._post(self.body, self.label, slot)
        except requests.exceptions.SSLError as err:
            if not _caused_by(err, ssl.SSLCertVerificationError):
                # A handshake cut short: nothing was sent, so it may be retried.
                self._log_request(None, sent)
                what = f"TLS handshake failed ({_short(client._redact(str(err)))})"
                raise self._transient(what, None, False) from None
            raise ConfigError(
                f"api_url: the TLS certificate of {urlsplit(client.api_url).hostname} could "
                f"not be verified ({_short(client._redact(str(err)))}). Check api_url; set "
                "verify_tls to false only for a test server with a self-signed certificate."
            ) from err
        except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as err:
            reached = not _never_sent(err)
            kind = "timed out" if isinstance(err, requests.exceptions.Timeout) else "failed"
            self._log_request(None, sent)
            raise self._transient(
                f"request {kind} ({_short(client._redact(str(err)))})", None, reached
            ) from None
        self._log_request(response.status_code, sent)
        client._saw_answer(time.monotonic() - sent)
        return self._handle(response)

    def _handle(self, response: _Answer) -> dict[str, Any] | None:
        """`data` when done, None to go round again after a 429; raises otherwise."""
        status = response.status_code
        if status == 429:
            self._throttled(_retry_after(response.headers.get("Retry-After")), "HTTP 429")
            return None
        if status >= 500:
            raise self._transient(f"HTTP {status}", status, True)
        if status == 408:  # the server gave up reading the request: nothing was applied
            raise self._transient("HTTP 408", status, False)
        if 300 <= status < 400:
            raise ConfigError(
                f"api_url answered HTTP {status} (redirect): set api_url to the final address "
                "of the GraphQL endpoint."
            )
        if status in (401, 403):
            raise self._auth_error(f"HTTP {status}")
        if status == 413:  # refused before reading the body: nothing was applied, not retried
            size = len(self.body)
            raise RequestTooLarge(f"HTTP 413 to {self.label}: {size} bytes refused", size=size)
        try:
            payload = json.loads(response.content)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            if status >= 400:
                raise ConfigError(
                    f"api_url answered HTTP {status} to {self.label}: check that api_url is "
                    "Moovago's GraphQL endpoint."
                )
            raise self._transient(
                f"HTTP {status} with a body that is not a JSON object", status, True
            )
        errors = payload.get("errors") or []
        data = payload.get("data")
        if errors:
            self._errors(errors, data, status)  # raises unless the errors say "retry"
            return None
        if status >= 400 or not isinstance(data, dict):
            raise QueryError(
                f"Moovago answered HTTP {status} to {self.label} without data or errors.",
                [],
                self.client._redact_data(data) if isinstance(data, dict) else None,
            )
        return data

    def _errors(self, errors: Any, data: Any, status: int) -> None:
        if not isinstance(errors, list):
            errors = [errors]
        errors = [e if isinstance(e, dict) else {"message": str(e)} for e in errors]
        data = data if isinstance(data, dict) else None
        if any(_matches(e, _AUTH_MESSAGE, _AUTH_CODES) for e in errors):
            raise self._auth_error(_messages(errors))
        if any(_matches(e, _THROTTLE_MESSAGE, _THROTTLE_CODES) for e in errors) and _empty(data):
            self._throttled(None, "a throttling error")
            return
        # Server text goes on into rejects and logs: scrub it here, once, for every caller.
        errors = t.cast("list[dict[str, Any]]", self.client._redact_data(errors))
        data = self.client._redact_data(data)
        raise QueryError(
            f"Moovago returned {len(errors)} error(s) for {self.label} (HTTP {status}): "
            f"{_messages(errors)}",
            errors,
            data,
        )

    def _auth_error(self, what: str) -> AuthError:
        client = self.client
        return AuthError(
            f"Moovago refused the API key ({_short(client._redact(what))}): check the api_key "
            "setting (the key from your Moovago welcome e-mail) and api_key_header (the "
            f"request header it is sent in, now {client.api_key_header})."
        )

    def _budget_left(self) -> float:
        return self.client.max_retry_seconds - (time.monotonic() - self.started)

    def _throttled(self, retry_after: float | None, what: str) -> None:
        client = self.client
        self.throttles += 1
        client.stats.add(rate_limited=1)
        delay = retry_after
        if delay is None:
            # A 429 means the window is full: wait at least the base, then back off.
            delay = max(client.backoff_base, client._backoff(self.throttles))
        # 429s are not failures, but they are bounded too (by count and by time).
        if self.throttles > max(client.max_retries, 1) * 4 or delay > self._budget_left():
            raise RateLimited(
                f"Moovago kept answering {what} to {self.label} after {self.attempts} attempts "
                f"over {time.monotonic() - self.started:.1f}s; lower max_requests_per_second "
                "or run outside business hours.",
                retry_after,
            )
        source = "Retry-After" if retry_after is not None else "backoff"
        client.logger.warning(
            "Moovago answered %s to %s; every request waits %.2fs (%s) before retrying.",
            what,
            self.label,
            delay,
            source,
        )
        client.governor.pause_until(client.governor.now() + delay)

    def _transient(self, what: str, status: int | None, reached: bool) -> Exception:
        """The error to raise for a transient failure: _Retry, unless retrying is not safe."""
        self.client.stats.add(transient_failures=1)
        self.maybe_applied = self.maybe_applied or reached
        if reached and not self.retry_ambiguous:
            return TransientError(
                f"Moovago {self.label}: {what}; the request may have been applied, so it is "
                "not retried.",
                status=status,
                ambiguous=True,
            )
        return _Retry(what, status)

    def _log_request(self, status: int | None, sent: float) -> None:
        self.client.logger.debug(
            "POST %s bytes=%d status=%s duration=%.3fs attempt=%d",
            self.label,
            len(self.body),
            status if status is not None else "none",
            time.monotonic() - sent,
            self.attempts,
        )


# -- the whole-answer deadline -----------------------------------------------------------------


class _Deadline:
    """When one answer must be whole; `expired` once the watchdog has cut its connection."""

    __slots__ = ("at", "done", "expired", "governor", "slot", "sock")

    def __init__(self, at: float) -> None:
        self.at = at
        self.done = False
        self.expired = False
        self.sock: socket.socket | None = None
        self.governor: RateGovernor | None = None  # told when the request has really left
        self.slot = 0.0


class _Watchdog:
    """One thread for the process that shuts down each connection still answering at its
    deadline: a blocked read then returns at once, whatever part of the answer it was in."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Deadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: _Deadline, sock: socket.socket) -> None:
        deadline.sock = sock
        with self._cond:
            heapq.heappush(self._heap, (deadline.at, next(self._order), deadline))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="moovago-deadlines", daemon=True
                )
                self._thread.start()
            if self._heap[0][2] is deadline:
                self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                deadline = heapq.heappop(self._heap)[2]
                if not deadline.done and deadline.sock is not None:
                    deadline.expired = True
                    # The plain socket's shutdown: an SSL object is left to its reader.
                    with contextlib.suppress(OSError):
                        socket.socket.shutdown(deadline.sock, socket.SHUT_RDWR)


_watchdog = _Watchdog()
_answer_deadline = threading.local()  # the `_Deadline` of the request this thread is sending


def _watch_answer(sock: socket.socket | None) -> None:
    """The request is written: tell the governor when it left, put its answer under watch."""
    deadline: _Deadline | None = getattr(_answer_deadline, "current", None)
    if deadline is None:
        return
    if deadline.governor is not None:
        deadline.governor.sent(deadline.slot)
    if sock is not None:
        _watchdog.watch(deadline, sock)


class _HTTPConnection(HTTPConnection):
    def getresponse(self) -> t.Any:  # the request is sent: the answer is under the deadline
        _watch_answer(self.sock)
        return super().getresponse()


class _HTTPSConnection(HTTPSConnection):
    def getresponse(self) -> t.Any:
        _watch_answer(self.sock)
        return super().getresponse()


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections put every answer under the request's deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


# -- helpers -----------------------------------------------------------------------------------


def _operation_label(document: str | DocumentNode) -> str:
    """`query MyTeamQuery`, for logs; the document's own words, never its values."""
    if isinstance(document, str):
        return _label_of_text(document)
    return _label_of_node(document)


@functools.lru_cache(maxsize=256)
def _label_of_text(text: str) -> str:
    # Streams send the same document page after page: parse it once.
    try:
        return _label_of_node(parse(text, no_location=True))
    except GraphQLSyntaxError:
        return "operation"


def _label_of_node(node: DocumentNode) -> str:
    for definition in node.definitions:
        if isinstance(definition, OperationDefinitionNode):
            name = definition.name.value if definition.name else "(anonymous)"
            return f"{definition.operation.value} {name}"
    return "operation"


def _unpack(request: Request) -> tuple[Any, Mapping[str, Any] | None, str | None]:
    if isinstance(request, (str, DocumentNode)):
        return request, None, None
    if not isinstance(request, Sequence) or not 1 <= len(request) <= 3:
        raise TypeError(
            "execute_many takes (document, variables) or (document, variables, operation_name)"
        )
    document, variables, operation_name = (*request, None, None)[:3]
    return document, variables, operation_name


def _outcome(future: concurrent.futures.Future[Result]) -> Result:
    try:
        return future.result()
    except concurrent.futures.CancelledError:
        return MoovagoError("This MoovagoClient was closed before the request was sent.")


@functools.lru_cache(maxsize=8)
def _http_date(value: str) -> dt.datetime | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(dt.timezone.utc)


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: a number of seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        seconds = (when - dt.datetime.now(dt.timezone.utc)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _never_sent(err: requests.exceptions.RequestException) -> bool:
    """True when the connection was never made, so the server cannot have seen the request."""
    return isinstance(err, requests.exceptions.ConnectTimeout) or _caused_by(
        err, (NewConnectionError, NameResolutionError, ConnectTimeoutError)
    )


def _caused_by(
    err: BaseException, kinds: type[BaseException] | tuple[type[BaseException], ...]
) -> bool:
    """Whether `kinds` is anywhere in the chain requests and urllib3 wrap around a failure."""
    seen: set[int] = set()
    stack: list[BaseException] = [err]
    while stack:
        exc = stack.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        if isinstance(exc, kinds):
            return True
        stack.extend(a for a in exc.args if isinstance(a, BaseException))
        reason = getattr(exc, "reason", None)
        if isinstance(reason, BaseException):
            stack.append(reason)
        stack.extend(linked for linked in (exc.__cause__, exc.__context__) if linked is not None)
    return False


def _matches(error: dict[str, Any], message: re.Pattern[str], codes: set[str]) -> bool:
    if message.search(str(error.get("message") or "")):
        return True
    extensions = error.get("extensions")
    code = extensions.get("code") if isinstance(extensions, dict) else None
    return str(code or "").upper() in codes


def _empty(data: Any) -> bool:
    """True when `data` holds no value at all (None, or only nulls at every leaf)."""
    if data is None:
        return True
    if isinstance(data, dict):
        return all(_empty(v) for v in data.values())
    return False


def _messages(errors: list[dict[str, Any]], limit: int = 3) -> str:
    parts = []
    for error in errors[:limit]:
        text = str(error.get("message") or "no message")
        path = error.get("path")
        if path:
            text += f" (at {'.'.join(str(p) for p in path)})"
        parts.append(text)
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more")
    return "; ".join(parts)


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"GraphQL variables must be JSON values; got a {type(value).__name__}")
