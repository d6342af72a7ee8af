"""The API's wire rules, each in one place: DateTime text, loopback hosts, the key and its
redaction. Tap, target, sandbox and client all call these; none keeps a copy of its own."""

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


def format_datetime(value: dt.datetime) -> str:
    """The API's DateTime: `2026-11-29T08:30:00.123Z` (UTC, milliseconds; naive means UTC)."""
    utc = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_datetime(text: object) -> dt.datetime:
    """An ISO-8601 instant with a date, a time and a zone (`Z` or an offset), in UTC;
    ValueError for anything else (a bare date, a naive time, a non-string)."""
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
    try:
        parse_datetime(text)
    except ValueError:
        return False
    return True


def resolve_host(host: str) -> list[str]:
    """The addresses `host` resolves to now (none when it does not resolve)."""
    try:
        return [str(info[4][0]) for info in socket.getaddrinfo(host, None)]
    except (OSError, UnicodeError):
        return []


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # an IPv6 scope is not the address
    except ValueError:
        return None
    return getattr(address, "ipv4_mapped", None) or address


def is_loopback_url(url: str, resolve: Callable[[str], list[str]] | None = None) -> bool:
    """Whether the URL's host is an IP loopback literal (127.0.0.0/8, ::1) or a name whose every
    address, resolved now, is one: a name alone (`*.localhost`) proves nothing."""
    try:
        name = (urlsplit((url or "").strip()).hostname or "").rstrip(".")
    except ValueError:
        return False  # a malformed URL is not loopback
    literal = _address(name)
    if not name or literal is not None:  # an IP literal is never resolved
        return literal is not None and literal.is_loopback
    addresses = [_address(a) for a in (resolve or resolve_host)(name)]
    return bool(addresses) and all(a is not None and a.is_loopback for a in addresses)


def check_plain_http(url: str, resolve: Callable[[str], list[str]] | None = None) -> None:
    """ConfigError unless the URL is https:// or http:// to a loopback host as resolved now:
    checked for the setting and again before each request (a name may move)."""
    parts = urlsplit(url)
    if parts.scheme == "http" and not is_loopback_url(url, resolve):
        raise ConfigError(
            f"api_url must use https:// for {parts.hostname}: plain http:// is only allowed to a "
            "loopback IP (127.0.0.1, ::1) or a name resolving only to loopback addresses, such as "
            "the local sandbox."
        )


HEADER_NAME = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"  # an HTTP token (RFC 9110)
_HEADER_LINE = re.compile(rf"^(?P<name>{HEADER_NAME}):(?P<space>\s*)(?P<value>\S.*)$")


def parse_api_key(api_key: str | None, api_key_header: str = "X-API-KEY") -> tuple[str, str]:
    """(header name, key) from the `api_key` setting, which may be a whole header line as the
    welcome e-mail gives it (`X-API-KEY: abc`: a space after the colon, or the header's name)."""
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
    if not re.fullmatch(HEADER_NAME, header):
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


def check_api_url(api_url: str | None) -> str:
    """The URL, stripped; ConfigError unless https:// (or http:// to a loopback host)."""
    url = (api_url or "").strip()
    if not url:
        raise ConfigError(
            "api_url is missing: set it to the Moovago GraphQL endpoint given with your API key "
            "(https://<api-backend>/graphql), or to the URL the local sandbox prints."
        )
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a malformed port
    except ValueError as err:
        raise ConfigError(f"api_url is not a valid URL: {err}.") from err
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            "api_url must be an absolute https:// URL such as https://<api-backend>/graphql."
        )
    if parts.username or parts.password:
        raise ConfigError("api_url must not hold a user name or password; use api_key.")
    check_plain_http(url)
    return url


def secret_forms(*values: str | None) -> tuple[str, ...]:
    """The strings to scrub for each secret: as configured, stripped, and its header value;
    longest first, so a whole header line goes before the key inside it."""
    forms: set[str] = set()
    for value in values:
        if value:
            tail = value.split(":", 1)[1].strip() if ":" in value else ""
            # A 1-3 character "secret" would scrub ordinary words.
            forms.update(f for f in (value, value.strip(), tail) if len(f) >= 4)
    return tuple(sorted(forms, key=len, reverse=True))


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """`value` with every secret replaced by `***`, through strings, mappings and sequences."""
    forms = tuple(s for s in secrets if s)
    if not forms:
        return value
    if isinstance(value, str):
        for secret in forms:
            value = value.replace(secret, "***")
        return value
    if isinstance(value, Mapping):
        return {redact(k, forms): redact(v, forms) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, forms) for v in value]
    return value


_forms: tuple[str, ...] = ()  # every secret of the process, scrubbed from every log record
_install_lock = threading.Lock()
_installed = False


def install_log_redaction(*secrets: str | None) -> None:
    """Scrub these secrets (in every form of `secret_forms`) from every log record the process
    creates from now on, whatever its logger or handler, and from uncaught tracebacks."""
    global _forms, _installed
    with _install_lock:
        if not _installed:  # the first call wraps the record factory and the exception hooks
            _installed = True
            make_record = logging.getLogRecordFactory()

            def scrubbed_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
                return _scrub(make_record(*args, **kwargs))

            logging.setLogRecordFactory(scrubbed_record)
            sys.excepthook = _scrubbed_hook(sys.excepthook, lambda *info: info)
            threading.excepthook = _scrubbed_hook(
                threading.excepthook, lambda a: (a.exc_type, a.exc_value, a.exc_traceback)
            )
        _forms = tuple(sorted({*_forms, *secret_forms(*secrets)}, key=len, reverse=True))


def _scrub(record: logging.LogRecord) -> logging.LogRecord:
    try:
        message = record.getMessage()
    except (TypeError, ValueError, KeyError):  # a bad format string: keep its parts
        message = f"{record.msg} {record.args!r}"
    if (clean := redact(message, _forms)) != message:
        record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[0] is not None:
        text = record.exc_text or "".join(traceback.format_exception(*record.exc_info))
        record.exc_text = redact(text, _forms)
    if record.stack_info:
        record.stack_info = redact(record.stack_info, _forms)
    return record


def _scrubbed_hook(previous: Callable[..., Any], info: Callable[..., tuple[Any, ...]]) -> Any:
    """An exception hook that prints the traceback scrubbed, if it holds a secret."""

    def hook(*args: Any) -> None:
        text = "".join(traceback.format_exception(*info(*args)))
        if redact(text, _forms) == text:
            previous(*args)
        else:
            sys.stderr.write(redact(text, _forms))

    return hook
