"""The one HTTP path to Moovago (docs/client.md): one governor and one retry policy, neither
bypassed nor applied twice."""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import functools
import http.client
import itertools
import logging
import math
import queue
import ssl
import threading
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import backoff
import certifi
from graphql import DocumentNode, GraphQLSyntaxError, get_operation_ast, parse, print_ast
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import HTTPError, InsecureRequestWarning

from moovago_api import __version__
from moovago_api.errors import (
    ConfigError,
    MoovagoError,
    RateLimited,
    ResponseTooLarge,
    TransientError,
    read_answer,
    short,
)
from moovago_api.governor import (
    MAX_REQUESTS_IN_FLIGHT,
    RateGovernor,
    check_rate,
    default_in_flight,
    shared_governor,
)
from moovago_api.transport import Answer, close_all, cut, encode_request, http_date, read_body
from moovago_api.wire import check_api_url, check_plain_http, parse_api_key, redact, secret_forms

DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # largest decoded answer read

Request = tuple[Any, ...]  # (document, variables[, operation_name])
Result = dict[str, Any] | MoovagoError  # a request's `data`, or the error it ended with
CLOSED = "This MoovagoClient is closed."


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


class MoovagoClient:
    """Sends GraphQL documents to Moovago and returns `data`, or raises a typed error;
    `clock` and `sleep` (tests) time retries, 429 pauses and budgets."""

    def __init__(
        self,
        *,
        api_url: str,
        api_key: str,
        api_key_header: str = "X-API-KEY",
        max_requests_per_second: float = 4,
        request_timeout: float = 30.0,
        connect_timeout: float | None = None,
        verify_tls: bool = True,
        max_retries: int = 8,
        max_retry_seconds: float = 300.0,
        max_requests_in_flight: int | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        governor: RateGovernor | None = None,
        logger: logging.Logger | None = None,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        self.api_url = check_api_url(api_url)
        self.api_key_header, self._api_key = parse_api_key(api_key, api_key_header)
        header, key = self.api_key_header, self._api_key
        self.secrets = secret_forms(key, api_key, f"{header}: {key}", f"{header}:{key}")
        rate = check_rate(max_requests_per_second)
        in_flight = max_requests_in_flight
        in_flight = default_in_flight(rate) if in_flight is None else in_flight
        if not 1 <= in_flight <= MAX_REQUESTS_IN_FLIGHT:
            raise ConfigError(
                f"max_requests_in_flight must be 1 to {MAX_REQUESTS_IN_FLIGHT}, got {in_flight!r}."
            )
        # The other ranges are checked by name in moovago_api.settings.
        self.max_requests_per_second = rate
        self.request_timeout = float(request_timeout)
        self.connect_timeout = min(float(connect_timeout or request_timeout), request_timeout)
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
        self._stop = threading.Event()  # set by close(): every wait ends at once
        self._clock = clock or self.governor.now
        self._sleep = sleep or self._stop.wait
        url = urlsplit(self.api_url)
        self._host, self._port = url.hostname or "", url.port
        self._path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Accept-Encoding": "gzip, deflate",
            "User-Agent": f"moovago-connectors/{__version__}",
            header: key,
        }
        self._idle: queue.SimpleQueue[HTTPConnection] = queue.SimpleQueue()  # kept-alive
        self._close_idle = weakref.finalize(self, close_all, self._idle)  # also when dropped
        self._pool = concurrent.futures.ThreadPoolExecutor(  # threads start on first use
            self.max_requests_in_flight, thread_name_prefix="moovago-request"
        )
        self._answer_seconds: float | None = None  # moving average of answer times (no wait)
        self._server_date: tuple[dt.datetime, float] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"MoovagoClient(api_url={self.api_url!r}, api_key_header={self.api_key_header!r})"

    def execute(
        self,
        document: str | DocumentNode,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
        *,
        retry_ambiguous: bool = True,
    ) -> dict[str, Any]:
        """Send one GraphQL operation and return its `data`. 429s pause the whole governor,
        other transient failures retry on backoff's full jitter; with `retry_ambiguous=False` a
        failure after the request may have reached the server raises at once (no blind create).
        """
        if self._closed:
            raise MoovagoError(CLOSED)
        text = print_ast(document) if isinstance(document, DocumentNode) else document
        body = encode_request(text, variables, operation_name)
        label, started = operation_name or _label(text), self._clock()
        waits = backoff.expo(factor=self.backoff_base, max_value=self.backoff_max)
        next(waits)  # backoff's generators yield a 0 first
        attempts = failures = throttles = 0
        maybe_applied = False  # some attempt may have reached the server and failed
        while True:
            attempts += 1
            try:
                return self._attempt(body, label, attempts)
            except RateLimited as err:  # not a failure: waited out, bounded on its own
                throttles += 1
                self._throttled(err, label, attempts, throttles, started)
            except TransientError as err:
                self.stats.add(transient_failures=1)
                maybe_applied = maybe_applied or err.ambiguous
                if err.ambiguous and not retry_ambiguous:
                    raise TransientError(
                        f"Moovago {label}: {err}; the request may have been applied, so it is "
                        "not retried.",
                        status=err.status,
                    ) from None
                failures += 1
                spent = self._clock() - started
                if failures > self.max_retries or spent >= self.max_retry_seconds:
                    raise TransientError(
                        f"Moovago {label} failed after {attempts} attempts over {spent:.1f}s; "
                        f"last error: {err}.",
                        status=err.status,
                        ambiguous=maybe_applied,
                    ) from None
                wait = min(backoff.full_jitter(next(waits)), self.max_retry_seconds - spent)
                self.logger.info(
                    "Moovago %s: %s; retry %d of %d in %.2fs.",
                    *(label, err, failures, self.max_retries, wait),
                )
                self.stats.add(wait_seconds=wait)
                self._sleep(wait)

    def execute_many(
        self,
        requests: Iterable[Request],
        window: int | None = None,
        *,
        retry_ambiguous: bool = True,
    ) -> Iterator[Result]:
        """Send requests with up to `window` (at most `max_requests_in_flight`) in flight; each
        result, in input order, is its `data` or its MoovagoError. A window of 1 sends them in
        the calling thread. Once the iterator is closed, none of its requests is in flight."""
        size = self.max_requests_in_flight if window is None else int(window)
        if size < 1:
            raise ValueError(f"window must be at least 1, got {window!r}")
        if min(size, self.max_requests_in_flight) == 1:
            yield from (self._settle(request, retry_ambiguous) for request in requests)
            return
        items = iter(requests)
        start = itertools.islice(items, min(size, self.max_requests_in_flight))
        pending = deque(self._submit(r, retry_ambiguous) for r in start)
        try:
            while pending:
                result = _outcome(pending.popleft())
                pending.extend(self._submit(r, retry_ambiguous) for r in itertools.islice(items, 1))
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
        """Send one request in the background (the pager asking ahead); its Future holds the
        `data` or the MoovagoError. A future cancelled before it started is never sent."""
        return self._submit((document, variables, operation_name), retry_ambiguous)

    def useful_in_flight(self) -> int:
        """Requests worth keeping in flight to use the rate at the answer time seen so far:
        1 + rate x answer time, at most `max_requests_in_flight`; 1 before any answer."""
        seconds = self._answer_seconds
        if seconds is None:
            return 1
        wanted = 1 + math.ceil(self.max_requests_per_second * seconds - 1e-9)
        return max(1, min(self.max_requests_in_flight, wanted))

    def server_time(self) -> dt.datetime | None:
        """The server's clock: the last answer's `Date` plus the time since (UTC, to the
        second); None before any answer with one."""
        if self._server_date is None:
            return None
        date, at = self._server_date
        return date + dt.timedelta(seconds=self._clock() - at)

    def close(self) -> None:
        """Refuse new requests, let those in flight finish, close every pooled connection."""
        self._closed = True
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._close_idle()

    def __enter__(self) -> MoovagoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _settle(self, request: Request, retry_ambiguous: bool) -> Result:
        document, variables, operation_name = (*request, None, None)[:3]
        try:
            return self.execute(
                document, variables, operation_name, retry_ambiguous=retry_ambiguous
            )
        except MoovagoError as err:
            return err

    def _submit(self, request: Request, retry_ambiguous: bool) -> concurrent.futures.Future[Result]:
        with contextlib.suppress(RuntimeError):  # RuntimeError: closed
            return self._pool.submit(self._settle, request, retry_ambiguous)
        done: concurrent.futures.Future[Result] = concurrent.futures.Future()
        done.set_result(MoovagoError(CLOSED))
        return done

    def _attempt(self, body: bytes, label: str, attempt: int) -> dict[str, Any]:
        """One HTTP attempt through the governor: `data`, or the error it ended with."""
        asked = self._clock()
        slot = None if self._closed else self.governor.acquire(self._stop)
        if slot is None:
            raise MoovagoError(f"{CLOSED} {label} was not sent.")
        sent = self._clock()
        self.stats.add(requests=1, retries=int(attempt > 1), wait_seconds=sent - asked)
        status: int | str = "none"
        try:
            answer = self._post(body, label, slot)
            status = answer.status_code
        finally:
            self.logger.debug(
                "POST %s bytes=%d status=%s duration=%.3fs attempt=%d",
                *(label, len(body), status, self._clock() - sent, attempt),
            )
        if answer.date is not None:
            self._server_date = (answer.date, self._clock())
        seconds, previous = self._clock() - sent, self._answer_seconds
        self._answer_seconds = seconds if previous is None else 0.7 * previous + 0.3 * seconds
        return read_answer(
            answer.status_code,
            answer.content,
            label,
            retry_after=answer.retry_after(),
            request_size=len(body),
            api_key_header=self.api_key_header,
            scrub=functools.partial(redact, secrets=self.secrets),
        )

    def _post(self, body: bytes, label: str, slot: float | None = None) -> Answer:
        """Every POST (the doctor wraps this to observe answers): TransientError (`ambiguous`
        unless it cannot have reached the server) when no whole answer came in time."""
        check_plain_http(self.api_url)  # where the name resolves now, not at start
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
        timer = threading.Timer(self.request_timeout, cut, (conn.sock, claim))
        response = None
        try:
            conn.timeout = self.request_timeout
            conn.request("POST", self._path, body, self._headers, preload_content=False)
            if slot is not None:
                self.governor.sent(slot)  # written: the send counts from now
            timer.start()
            response = conn.getresponse()
            content = read_body(response, self.max_response_bytes, label)
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
        if self.api_url.lower().startswith("http:"):
            return HTTPConnection(self._host, self._port, timeout=self.connect_timeout)
        return HTTPSConnection(
            self._host,
            self._port,
            timeout=self.connect_timeout,
            cert_reqs="CERT_REQUIRED" if self.verify_tls else "CERT_NONE",
            ca_certs=certifi.where(),  # the CAs requests trusted, not the system's
        )

    def _said(self, err: Exception) -> str:
        return short(redact(str(err), self.secrets))

    def _throttled(
        self, err: RateLimited, label: str, attempts: int, throttles: int, started: float
    ) -> None:
        """Every request of the governor waits Retry-After (else backoff) before the next."""
        self.stats.add(rate_limited=1)
        delay = err.retry_after
        if delay is None:  # the window is full: wait at least the base, then back off
            ceiling = min(self.backoff_max, self.backoff_base * 2 ** (throttles - 1))
            delay = max(self.backoff_base, backoff.full_jitter(ceiling))
        spent = self._clock() - started
        if throttles > max(self.max_retries, 1) * 4 or delay > self.max_retry_seconds - spent:
            raise RateLimited(
                f"Moovago kept answering {err} to {label} after {attempts} attempts over "
                f"{spent:.1f}s; lower max_requests_per_second or run outside business hours.",
                err.retry_after,
            ) from None
        self.logger.warning(
            "Moovago answered %s to %s; every request waits %.2fs (%s) before retrying.",
            *(err, label, delay, "backoff" if err.retry_after is None else "Retry-After"),
        )
        self.governor.pause_until(self.governor.now() + delay)


@functools.lru_cache(maxsize=256)
def _label(text: str) -> str:
    """`query MyTeamQuery`, for logs: the document's own words, never its values."""
    with contextlib.suppress(GraphQLSyntaxError):
        if node := get_operation_ast(parse(text, no_location=True)):
            return f"{node.operation.value} {node.name.value if node.name else '(anonymous)'}"
    return "operation"


def _outcome(future: concurrent.futures.Future[Result]) -> Result:
    try:
        return future.result()
    except concurrent.futures.CancelledError:
        return MoovagoError("This MoovagoClient was closed before the request was sent.")
