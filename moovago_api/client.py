"""The one HTTP path to Moovago: governed, retried, classified.

Every request of the tap and the target goes through `MoovagoClient.execute`, so the rate
governor and the retry policy can be neither bypassed nor applied twice.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import json
import logging
import re
import secrets
import ssl
import threading
import time
import typing as t
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from graphql import DocumentNode, GraphQLSyntaxError, OperationDefinitionNode, parse, print_ast
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
    TransientError,
)
from moovago_api.governor import RateGovernor, shared_governor
from moovago_api.wire import is_loopback_host, redact, secret_forms

__all__ = [
    "MAX_REQUESTS_PER_SECOND",
    "ClientStats",
    "MoovagoClient",
    "check_api_url",
    "check_rate",
    "parse_api_key",
]

# Moovago's documented server limit; above it every extra request is a 429.
MAX_REQUESTS_PER_SECOND = 5

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
_rng = secrets.SystemRandom()


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
    return header, key


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
    if parts.scheme == "http" and not is_loopback_host(host):
        raise ConfigError(
            f"api_url must use https:// for {host}: plain http:// is only allowed for "
            "loopback hosts (127.0.0.1, ::1, localhost) such as the local sandbox."
        )
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
        governor: RateGovernor | None = None,
        logger: logging.Logger | None = None,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
    ) -> None:
        self.api_url = check_api_url(api_url)
        self.api_key_header, self._api_key = parse_api_key(api_key, api_key_header)
        self._secrets = secret_forms(self._api_key, api_key)
        rate = check_rate(max_requests_per_second)
        if not request_timeout > 0:
            raise ConfigError(f"request_timeout must be above 0 seconds, got {request_timeout!r}.")
        if max_retries < 0 or max_retry_seconds < 0:
            raise ConfigError("max_retries and max_retry_seconds must not be negative.")
        self.max_requests_per_second = float(rate)
        self.request_timeout = float(request_timeout)
        self.verify_tls = verify_tls
        self.max_retries = int(max_retries)
        self.max_retry_seconds = float(max_retry_seconds)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.governor = governor or shared_governor(self.api_url, rate)
        self.logger = logger or logging.getLogger(__name__)
        self.stats = ClientStats()
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"MoovagoClient(api_url={self.api_url!r}, api_key_header={self.api_key_header!r})"

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

    def close(self) -> None:
        """Close every pooled connection; the client cannot be used afterwards."""
        self._closed = True
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def __enter__(self) -> MoovagoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------

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
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _post(self, body: bytes) -> _Answer:
        deadline = time.monotonic() + self.request_timeout
        with self._session().post(
            self.api_url,
            data=body,
            headers={self.api_key_header: self._api_key},
            timeout=self.request_timeout,
            verify=self.verify_tls,
            allow_redirects=False,  # a redirect would carry the key to wherever it points
            stream=True,
        ) as response:
            # requests' timeout bounds each socket read; the deadline bounds the whole answer,
            # so a server that trickles its body cannot hold a run for ever.
            chunks: list[bytes] = []
            try:
                while chunk := response.raw.read1(1 << 16, decode_content=True):
                    chunks.append(chunk)
                    if time.monotonic() > deadline:
                        raise requests.exceptions.ReadTimeout(
                            f"no whole answer within request_timeout ({self.request_timeout:g} s)"
                        )
            except ReadTimeoutError as err:
                raise requests.exceptions.ReadTimeout(str(err)) from err
            except HTTPError as err:  # a connection cut or reset in the middle of the body
                raise requests.exceptions.ConnectionError(str(err)) from err
            return _Answer(response.status_code, response.headers, b"".join(chunks))

    def _redact(self, text: str) -> str:
        return t.cast("str", redact(text, self._secrets))

    def _backoff(self, failures: int) -> float:
        """Exponential backoff with full jitter."""
        return _rng.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** max(failures - 1, 0)))


@dataclass(frozen=True)
class _Answer:
    """One HTTP answer, its body read whole within the request's deadline."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes


class _Attempts:
    """The retry loop of one `execute` call."""

    def __init__(
        self, client: MoovagoClient, body: bytes, label: str, retry_ambiguous: bool
    ) -> None:
        self.client = client
        self.body = body
        self.label = label
        self.retry_ambiguous = retry_ambiguous
        self.started = time.monotonic()
        self.attempts = 0
        self.failures = 0  # transient failures so far
        self.throttles = 0  # 429s and throttling errors so far
        self.maybe_applied = False  # some attempt may have reached the server and failed
        self.last_status: int | None = None

    def run(self) -> dict[str, Any]:
        client = self.client
        while True:
            asked = time.monotonic()
            client.governor.acquire()
            sent = time.monotonic()
            self.attempts += 1
            client.stats.add(requests=1, retries=int(self.attempts > 1), wait_seconds=sent - asked)
            try:
                response = client._post(self.body)
            except requests.exceptions.SSLError as err:
                if not _caused_by(err, ssl.SSLCertVerificationError):
                    # A handshake cut short: nothing was sent, so it may be retried.
                    self._log_request(None, sent)
                    self._transient(f"TLS handshake failed ({_short(str(err))})", None, False)
                    continue
                raise ConfigError(
                    f"api_url: the TLS certificate of {urlsplit(client.api_url).hostname} could "
                    f"not be verified ({_short(client._redact(str(err)))}). Check api_url; set "
                    "verify_tls to false only for a test server with a self-signed certificate."
                ) from err
            except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as err:
                reached = not _never_sent(err)
                kind = "timed out" if isinstance(err, requests.exceptions.Timeout) else "failed"
                self._log_request(None, sent)
                self._transient(
                    f"request {kind} ({_short(client._redact(str(err)))})", None, reached
                )
                continue
            self._log_request(response.status_code, sent)
            data = self._handle(response)
            if data is not None:
                return data

    def _handle(self, response: _Answer) -> dict[str, Any] | None:
        """`data` when done, None to go round again; raises when the call is over."""
        status = response.status_code
        if status == 429:
            self._throttled(_retry_after(response.headers.get("Retry-After")), "HTTP 429")
            return None
        if status >= 500:
            self._transient(f"HTTP {status}", status, True)
            return None
        if status == 408:  # the server gave up reading the request: nothing was applied
            self._transient("HTTP 408", status, False)
            return None
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
            self._transient(f"HTTP {status} with a body that is not a JSON object", status, True)
            return None
        errors = payload.get("errors") or []
        data = payload.get("data")
        if errors:
            self._errors(errors, data, status)  # raises unless the errors say "retry"
            return None
        if status >= 400 or not isinstance(data, dict):
            raise QueryError(
                f"Moovago answered HTTP {status} to {self.label} without data or errors.",
                [],
                data if isinstance(data, dict) else None,
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
        text = self.client._redact(_messages(errors))
        raise QueryError(
            f"Moovago returned {len(errors)} error(s) for {self.label} (HTTP {status}): {text}",
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

    def _transient(self, what: str, status: int | None, reached: bool) -> None:
        client = self.client
        client.stats.add(transient_failures=1)
        self.failures += 1
        self.last_status = status
        self.maybe_applied = self.maybe_applied or reached
        if reached and not self.retry_ambiguous:
            raise TransientError(
                f"Moovago {self.label}: {what}; the request may have been applied, so it is "
                "not retried.",
                status=status,
                ambiguous=True,
            )
        delay = client._backoff(self.failures)
        if self.failures > client.max_retries or delay > self._budget_left():
            raise TransientError(
                f"Moovago {self.label} failed after {self.attempts} attempts over "
                f"{time.monotonic() - self.started:.1f}s; last error: {what}.",
                status=status,
                ambiguous=self.maybe_applied,
            )
        client.logger.info(
            "Moovago %s: %s; retry %d of %d in %.2fs.",
            self.label,
            what,
            self.failures,
            client.max_retries,
            delay,
        )
        client.stats.add(wait_seconds=delay)
        time.sleep(delay)

    def _log_request(self, status: int | None, sent: float) -> None:
        self.client.logger.debug(
            "POST %s bytes=%d status=%s duration=%.3fs attempt=%d",
            self.label,
            len(self.body),
            status if status is not None else "none",
            time.monotonic() - sent,
            self.attempts,
        )


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
