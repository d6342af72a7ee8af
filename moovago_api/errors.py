"""Errors that carry what happened, so callers branch on type, never on message text."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any


class MoovagoError(Exception):
    """Base of every error the Moovago connectors raise on purpose."""


class ConfigError(MoovagoError):
    """A setting is missing, malformed or out of range; the message names it."""


class SchemaFileError(MoovagoError):
    """The GraphQL schema file cannot be read or is not valid SDL."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.path, self.line = path, line


class AuthError(MoovagoError):
    """The API key was refused: fatal, and the message never holds the key."""


class RateLimited(MoovagoError):
    """The API kept answering 429 (or a throttling error) past the retry budget."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TransientError(MoovagoError):
    """A failure that may pass: 5xx, timeout, reset, a body that is not JSON; `ambiguous`: it
    may have been applied, so a create is checked before it is sent again."""

    def __init__(self, message: str, *, status: int | None = None, ambiguous: bool = True) -> None:
        super().__init__(message)
        self.status, self.ambiguous = status, ambiguous


class QueryError(MoovagoError):
    """HTTP 200 with `errors`: the list as sent (each with `message`, `path`) and the partial
    `data` beside it (None when the whole operation failed)."""

    def __init__(
        self, message: str, errors: list[dict[str, Any]] | None = None, data: Any = None
    ) -> None:
        super().__init__(message)
        self.errors: list[dict[str, Any]] = list(errors or [])
        self.data: dict[str, Any] | None = data

    def paths(self) -> list[tuple[Any, ...]]:
        """The `path` of each error, as tuples (empty when the server gave none)."""
        return [tuple(err.get("path") or ()) for err in self.errors]


class ResponseTooLarge(MoovagoError):
    """The decoded answer grew past `max_response_bytes` (`limit`): cut off, not retried; the
    request reached the server, so a mutation in it may have been applied."""

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class RequestTooLarge(MoovagoError):
    """HTTP 413: the body is over the server's limit; nothing was applied."""


class PagingError(MoovagoError):
    """A list cannot be read completely: unsupported paging, or rows that keep moving."""


_AUTH = re.compile(
    r"not authori[sz]ed|unauthori[sz]ed|unauthenticated|forbidden|access denied"
    r"|invalid api[ _-]?key|api[ _-]?key .*(?:invalid|missing|unknown|expired)",
    re.IGNORECASE,
)
_AUTH_CODES = {"UNAUTHENTICATED", "UNAUTHORIZED", "FORBIDDEN", "AUTHENTICATION_ERROR"}
_THROTTLE = re.compile(r"too many requests|rate[ _-]?limit|throttl|quota exceeded", re.IGNORECASE)
_THROTTLE_CODES = {"TOO_MANY_REQUESTS", "RATE_LIMITED", "THROTTLED"}


def read_answer(
    status: int,
    content: bytes,
    label: str,
    *,
    retry_after: float | None,
    request_size: int,
    api_key_header: str,
    scrub: Any,
) -> dict[str, Any]:
    """The `data` of one HTTP answer to `label`, or the error it means; `scrub(value)` removes
    the secrets from the server's text."""
    if status == 429:
        raise RateLimited("HTTP 429", retry_after)
    if status >= 500 or status == 408:  # 408: the server gave up reading, nothing was applied
        raise TransientError(f"HTTP {status}", status=status, ambiguous=status != 408)
    if 300 <= status < 400:
        raise ConfigError(
            f"api_url answered HTTP {status} (redirect): set api_url to the final address "
            "of the GraphQL endpoint."
        )
    if status in (401, 403):
        raise auth_error(f"HTTP {status}", api_key_header)
    if status == 413:  # refused before reading the body: nothing was applied, not retried
        raise RequestTooLarge(f"HTTP 413 to {label}: {request_size} bytes refused")
    try:
        payload = json.loads(content)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        if status >= 400:
            raise ConfigError(
                f"api_url answered HTTP {status} to {label}: check that api_url is "
                "Moovago's GraphQL endpoint."
            )
        what = f"HTTP {status} with a body that is not a JSON object"
        raise TransientError(what, status=status, ambiguous=True)
    data = payload.get("data") if isinstance(payload.get("data"), dict) else None
    errors = payload.get("errors") or []
    if errors:
        errors = errors if isinstance(errors, list) else [errors]
        errors = [e if isinstance(e, dict) else {"message": str(e)} for e in errors]
        if any(_matches(e, _AUTH, _AUTH_CODES) for e in errors):
            raise auth_error(scrub(_messages(errors)), api_key_header)
        if any(_matches(e, _THROTTLE, _THROTTLE_CODES) for e in errors) and _empty(data):
            raise RateLimited("a throttling error", None)
        # Server text goes on into rejects and logs: scrub it here, once, for every caller.
        errors = scrub(errors)
        raise QueryError(
            f"Moovago returned {len(errors)} error(s) for {label} (HTTP {status}): "
            f"{_messages(errors)}",
            errors,
            scrub(data),
        )
    if status >= 400 or data is None:
        what = f"Moovago answered HTTP {status} to {label} without data or errors."
        raise QueryError(what, [], scrub(data))
    return data


def auth_error(what: str, api_key_header: str) -> AuthError:
    return AuthError(
        f"Moovago refused the API key ({short(what)}): check the api_key setting (the key from "
        "your Moovago welcome e-mail) and api_key_header (the request header it is sent in, "
        f"now {api_key_header})."
    )


def short(text: str, limit: int = 300) -> str:
    """`text` cut to `limit` characters, for one line of a message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _matches(error: Mapping[str, Any], message: re.Pattern[str], codes: set[str]) -> bool:
    if message.search(str(error.get("message") or "")):
        return True
    extensions = error.get("extensions")
    code = extensions.get("code") if isinstance(extensions, dict) else None
    return str(code or "").upper() in codes


def _empty(data: Any) -> bool:
    """True when `data` holds no value at all (None, or only nulls at every leaf)."""
    if isinstance(data, dict):
        return all(_empty(v) for v in data.values())
    return data is None


def _messages(errors: Iterable[Mapping[str, Any]], limit: int = 3) -> str:
    errors = list(errors)
    parts = []
    for error in errors[:limit]:
        path = ".".join(str(p) for p in error.get("path") or ())
        parts.append(str(error.get("message") or "no message") + (f" (at {path})" if path else ""))
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more")
    return "; ".join(parts)
