"""The API's wire rules, each in one place: DateTime text, loopback hosts, redaction of secrets.

Tap, target, sandbox and client all call these; none keeps a copy of its own.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import re
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from moovago_api.errors import ConfigError

UTC = dt.timezone.utc
REDACTED = "***"

# host name -> the addresses it resolves to now (injectable so tests need no resolver).
Resolver = Callable[[str], list[str]]


# -- DateTime ---------------------------------------------------------------------------------


def format_datetime(value: dt.datetime) -> str:
    """The API's DateTime: `2026-11-29T08:30:00.123Z` (UTC, milliseconds; naive means UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_datetime(text: object) -> dt.datetime:
    """An ISO-8601 instant with a date, a time and a zone (`Z` or an offset), in UTC.

    ValueError for anything else: a bare date, a naive time, a non-string.
    """
    if not isinstance(text, str) or "T" not in text.upper():
        raise ValueError(f"not an ISO-8601 date-time with a time zone: {text!r}")
    try:
        value = dt.datetime.fromisoformat(
            text.strip().replace("Z", "+00:00").replace("z", "+00:00")
        )
    except ValueError:
        raise ValueError(f"not an ISO-8601 date-time with a time zone: {text!r}") from None
    if value.tzinfo is None:
        raise ValueError(f"date-time without a time zone (Z or +hh:mm): {text!r}")
    return value.astimezone(UTC)


def is_datetime_text(text: object) -> bool:
    """True when `parse_datetime` accepts `text`."""
    try:
        parse_datetime(text)
    except ValueError:
        return False
    return True


def normalise_datetime_text(text: str) -> str:
    """Any accepted ISO-8601 instant, rewritten in the API's own form."""
    return format_datetime(parse_datetime(text))


# -- loopback ---------------------------------------------------------------------------------


def resolve_host(host: str) -> list[str]:
    """The addresses `host` resolves to now (none when it does not resolve)."""
    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return []
    return [str(info[4][0]) for info in infos]


def _is_loopback_address(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # an IPv6 scope is not the address
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def is_loopback_host(host: str | None, resolve: Resolver | None = None) -> bool:
    """An IP loopback literal (127.0.0.0/8, ::1), or a name whose every address, resolved now,
    is one: a name alone (`*.localhost`) proves nothing about where a resolver sends it."""
    name = (host or "").strip().strip("[]").rstrip(".").lower()
    if not name:
        return False
    if _is_loopback_address(name):
        return True
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        addresses = (resolve or resolve_host)(name)
        return bool(addresses) and all(_is_loopback_address(a) for a in addresses)
    return False  # another IP literal


def is_loopback_url(url: str, resolve: Resolver | None = None) -> bool:
    """True when the URL's host is a loopback host (a malformed URL is not loopback)."""
    try:
        return is_loopback_host(urlsplit((url or "").strip()).hostname, resolve)
    except ValueError:
        return False


def check_plain_http(url: str, resolve: Resolver | None = None) -> None:
    """ConfigError unless `url` is https:// or http:// to a loopback host as resolved now; the
    client calls it for the setting and again before each request (a name may move)."""
    try:
        parts = urlsplit((url or "").strip())
        host = parts.hostname
    except ValueError:
        return  # not a URL: check_api_url says why
    if parts.scheme == "http" and not is_loopback_host(host, resolve):
        msg = (
            f"api_url must use https:// for {host}: plain http:// is only allowed to a loopback "
            "IP (127.0.0.1, ::1) or a name resolving only to loopback addresses, such as the "
            "local sandbox."
        )
        raise ConfigError(msg)


# -- the API URL and the key's header ---------------------------------------------------------

_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_HEADER_LINE = re.compile(r"^(?P<name>[A-Za-z0-9!#$%&'*+.^_`|~-]+):(?P<space>\s*)(?P<value>\S.*)$")


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


# -- redaction --------------------------------------------------------------------------------


def secret_forms(*values: str | None) -> tuple[str, ...]:
    """The strings to scrub for each secret: as configured, stripped, and its header value.

    Longest first, so a whole header line is replaced before the key inside it.
    """
    forms: set[str] = set()
    for value in values:
        if not value:
            continue
        for form in (value, value.strip()):
            if len(form) >= 4:  # a 1-3 character "secret" would scrub ordinary words
                forms.add(form)
        if ":" in value:
            tail = value.split(":", 1)[1].strip()
            if len(tail) >= 4:
                forms.add(tail)
    return tuple(sorted(forms, key=len, reverse=True))


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """`value` with every secret replaced by `***`, through strings, mappings and sequences."""
    forms = tuple(s for s in secrets if s)
    if not forms:
        return value
    return _redact(value, forms)


def _redact(value: Any, forms: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        for secret in forms:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, Mapping):
        return {_redact(k, forms): _redact(v, forms) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v, forms) for v in value]
    return value


# -- redaction of every log line and traceback of the process ---------------------------------


class RedactingFilter(logging.Filter):
    """Scrubs the secrets it was given from a log record: message, traceback and stack."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: tuple[str, ...] = ()

    def add(self, forms: Iterable[str]) -> None:
        self.forms = tuple(sorted({*self.forms, *forms}, key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        forms = self.forms
        if not forms:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):  # a bad format string: keep its parts
            message = f"{record.msg} {record.args!r}"
        clean = _redact(message, forms)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[0] is not None:
            text = record.exc_text or "".join(traceback.format_exception(*record.exc_info))
            record.exc_text = _redact(text, forms)
        if record.stack_info:
            record.stack_info = _redact(record.stack_info, forms)
        return True


_log_filter = RedactingFilter()
_install_lock = threading.Lock()
_installed = False


def install_log_redaction(*secrets: str | None) -> RedactingFilter:
    """Scrub these secrets (each in every form of `secret_forms`) from every log record the
    process creates from now on, whatever its logger or handler, and from uncaught tracebacks.

    Installed once per process (a wrapped log record factory and exception hooks); later calls
    add secrets. Returns the filter, for handlers that want it explicitly.
    """
    global _installed
    _log_filter.add(secret_forms(*secrets))
    with _install_lock:
        if not _installed:
            _installed = True
            make_record = logging.getLogRecordFactory()

            def scrubbed_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = make_record(*args, **kwargs)
                _log_filter.filter(record)
                return record

            logging.setLogRecordFactory(scrubbed_record)
            previous_hook = sys.excepthook

            def scrubbed_hook(kind: Any, value: Any, tb: Any) -> None:
                text = "".join(traceback.format_exception(kind, value, tb))
                if _redact(text, _log_filter.forms) == text:
                    previous_hook(kind, value, tb)
                else:
                    sys.stderr.write(_redact(text, _log_filter.forms))

            sys.excepthook = scrubbed_hook
            previous_thread_hook = threading.excepthook

            def scrubbed_thread_hook(args: Any) -> None:
                text = "".join(
                    traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)
                )
                if _redact(text, _log_filter.forms) == text:
                    previous_thread_hook(args)
                else:
                    sys.stderr.write(_redact(text, _log_filter.forms))

            threading.excepthook = scrubbed_thread_hook
    return _log_filter
