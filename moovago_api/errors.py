"""Errors that carry what happened, so callers branch on type, never on message text.

MoovagoError
  ConfigError        a setting is missing or wrong; the message names the setting
  SchemaFileError    the schema file cannot be read or parsed; names the file and line
  AuthError          the API refused the key; fatal; names the settings, never the key
  RateLimited        HTTP 429 (or a throttling error in a 200) that outlived its retries
  TransientError     5xx, timeout, reset, non-JSON body that outlived its retries
  QueryError         HTTP 200 with `errors`: keeps `errors` (with paths) and partial `data`
  RequestTooLarge    HTTP 413: the body is over the server's limit; nothing was applied
  ResponseTooLarge   the decoded answer is over `max_response_bytes`; not retried
"""

from __future__ import annotations

from typing import Any


class MoovagoError(Exception):
    """Base of every error the Moovago connectors raise on purpose."""


class ConfigError(MoovagoError):
    """A setting is missing, malformed or out of range."""


class SchemaFileError(MoovagoError):
    """The GraphQL schema file cannot be read or is not valid SDL."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.line = line


class AuthError(MoovagoError):
    """The API key was refused. Never retried; the message never contains the key."""


class RateLimited(MoovagoError):
    """The API kept answering 429 (or a throttling error) past the retry budget."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TransientError(MoovagoError):
    """A failure that may pass: 5xx, timeout, connection reset, a body that is not JSON.

    `ambiguous` is True when the request may have reached the server and been applied
    (the server may have committed a mutation before failing): callers must check before
    sending a create again.
    """

    def __init__(self, message: str, *, status: int | None = None, ambiguous: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.ambiguous = ambiguous


class QueryError(MoovagoError):
    """HTTP 200 whose body holds an `errors` array.

    `errors` is the list as the server sent it (each with `message` and `path`), `data` the
    partial data that came beside it (None when the whole operation failed).
    """

    def __init__(
        self,
        message: str,
        errors: list[dict[str, Any]] | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.errors: list[dict[str, Any]] = list(errors or [])
        self.data = data

    def paths(self) -> list[tuple[Any, ...]]:
        """The `path` of each error, as tuples (empty tuple when the server gave none)."""
        return [tuple(err.get("path") or ()) for err in self.errors]


class ResponseTooLarge(MoovagoError):
    """The decoded answer grew past `max_response_bytes`; it was cut off, not retried.

    The request itself reached the server: a mutation in it may have been applied.
    """

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class RequestTooLarge(MoovagoError):
    """HTTP 413: the server (or a proxy before it) refused to read a body that large; nothing
    was applied. `size` is the body's length in bytes."""

    def __init__(self, message: str, *, size: int) -> None:
        super().__init__(message)
        self.size = size
