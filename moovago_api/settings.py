"""Connection settings shared by the tap and the target, as plain JSON Schema.

The tap and target merge `connection_properties()` into their own config schema, then build
their client with `client_from_config`, which checks every value and says what is wrong.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from moovago_api.client import (
    MAX_REQUESTS_PER_SECOND,
    MoovagoClient,
    check_api_url,
    check_rate,
    parse_api_key,
)
from moovago_api.errors import ConfigError

__all__ = [
    "CONNECTION_REQUIRED",
    "DEFAULT_API_KEY_HEADER",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_MAX_RETRY_SECONDS",
    "DEFAULT_REQUEST_TIMEOUT",
    "client_from_config",
    "connection_properties",
]

DEFAULT_API_KEY_HEADER = "X-API-KEY"
DEFAULT_REQUEST_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 8
DEFAULT_MAX_RETRY_SECONDS = 300.0
CONNECTION_REQUIRED = ("api_url", "api_key")


def connection_properties(*, default_rate: float) -> dict[str, Any]:
    """JSON Schema `properties` of the connection settings (4 for reads, 1 for bulk writes)."""
    check_rate(default_rate)
    return {
        "api_url": {
            "type": "string",
            "title": "API URL",
            "description": (
                "Moovago GraphQL endpoint, https://<api-backend>/graphql as given with your API "
                "key. Must be https://; http:// is accepted only for loopback hosts (127.0.0.1, "
                "::1, localhost), such as the local sandbox, which prints its own URL."
            ),
        },
        "api_key": {
            "type": "string",
            "title": "API key",
            "description": (
                "Your Moovago API key, from the welcome e-mail (ask support@moovago.com for "
                "one). The whole header line of the e-mail, `X-API-KEY: <key>`, is accepted too."
            ),
            "secret": True,
            "writeOnly": True,
        },
        "api_key_header": {
            "type": "string",
            "title": "API key header",
            "description": (
                "Name of the request header that carries the API key, as in the welcome e-mail."
            ),
            "default": DEFAULT_API_KEY_HEADER,
        },
        "schema_path": {
            "type": "string",
            "title": "Schema file",
            "description": (
                "Path to the moovago_api_graphql_schema.gql file downloaded from Moovago. "
                "Streams, fields and mutations follow it. When unset, the schema bundled with "
                "the connector is used."
            ),
        },
        "max_requests_per_second": {
            "type": "number",
            "title": "Max requests per second",
            "description": (
                "Most requests sent in any rolling second, shared by every thread of the "
                "process. Moovago answers 429 above 5 per second and asks bulk imports to keep "
                "to about 1 per second."
            ),
            "default": default_rate,
            "exclusiveMinimum": 0,
            "maximum": MAX_REQUESTS_PER_SECOND,
        },
        "request_timeout": {
            "type": "number",
            "title": "Request timeout",
            "description": "Seconds to wait for Moovago to answer one request before retrying.",
            "default": DEFAULT_REQUEST_TIMEOUT,
            "exclusiveMinimum": 0,
        },
        "verify_tls": {
            "type": "boolean",
            "title": "Verify TLS",
            "description": (
                "Check the server's TLS certificate. Turn off only for a test server with a "
                "self-signed certificate."
            ),
            "default": True,
        },
        "max_retries": {
            "type": "integer",
            "title": "Max retries",
            "description": (
                "Retries of a request after a 5xx answer, a timeout, a reset connection or a "
                "body that is not JSON; 429s are waited out within max_retry_seconds."
            ),
            "default": DEFAULT_MAX_RETRIES,
            "minimum": 0,
        },
        "max_retry_seconds": {
            "type": "number",
            "title": "Max retry seconds",
            "description": "Longest time one request may spend being retried before failing.",
            "default": DEFAULT_MAX_RETRY_SECONDS,
            "minimum": 0,
        },
    }


def client_from_config(
    config: Mapping[str, Any], *, default_rate: float, logger: logging.Logger | None = None
) -> MoovagoClient:
    """A client for these settings; ConfigError with one sentence per problem found."""
    problems: list[str] = []

    def check(name: str, value: Any, parse: Any) -> Any:
        try:
            return parse(value)
        except ConfigError as err:
            problems.append(str(err))
        except (TypeError, ValueError):
            problems.append(f"{name} must be {_KINDS[name]}, got {value!r}.")
        return None

    api_url = config.get("api_url")
    if api_url in (None, ""):
        problems.append(
            "api_url is missing: set it to the Moovago GraphQL endpoint given with your API key "
            "(https://<api-backend>/graphql), or to the URL the local sandbox prints."
        )
    else:
        check("api_url", api_url, check_api_url)
    header = config.get("api_key_header") or DEFAULT_API_KEY_HEADER
    check("api_key", config.get("api_key"), lambda key: parse_api_key(key, header))
    rate = check(
        "max_requests_per_second",
        config.get("max_requests_per_second", default_rate),
        lambda v: check_rate(_number(v)),
    )
    timeout = check(
        "request_timeout",
        config.get("request_timeout", DEFAULT_REQUEST_TIMEOUT),
        lambda v: _positive(_number(v)),
    )
    verify = check("verify_tls", config.get("verify_tls", True), _boolean)
    retries = check("max_retries", config.get("max_retries", DEFAULT_MAX_RETRIES), _count)
    retry_seconds = check(
        "max_retry_seconds",
        config.get("max_retry_seconds", DEFAULT_MAX_RETRY_SECONDS),
        lambda v: _not_negative(_number(v)),
    )
    schema_path = config.get("schema_path")
    if schema_path:
        problem = _unreadable(schema_path)
        if problem:
            problems.append(problem)
    if problems:
        raise ConfigError(" ".join(problems))
    return MoovagoClient(
        api_url=str(api_url),
        api_key=str(config["api_key"]),
        api_key_header=header,
        max_requests_per_second=rate,
        request_timeout=timeout,
        verify_tls=verify,
        max_retries=retries,
        max_retry_seconds=retry_seconds,
        logger=logger,
    )


_KINDS = {
    "api_url": "a URL",
    "api_key": "a string",
    "max_requests_per_second": "a number above 0 and at most 5",
    "request_timeout": "a number of seconds above 0",
    "verify_tls": "true or false",
    "max_retries": "a whole number, 0 or more",
    "max_retry_seconds": "a number of seconds, 0 or more",
}


def _number(value: Any) -> float:
    """Numbers may arrive as strings from environment variables."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    number = float(value)
    if math.isnan(number):
        raise ValueError("NaN")
    return number


def _positive(value: float) -> float:
    if not 0 < value < math.inf:
        raise ValueError(value)
    return value


def _not_negative(value: float) -> float:
    if not 0 <= value < math.inf:
        raise ValueError(value)
    return value


def _count(value: Any) -> int:
    number = _number(value)
    if number < 0 or number != int(number):
        raise ValueError(value)
    return int(number)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise ValueError(value)


def _unreadable(schema_path: Any) -> str | None:
    """A sentence saying why the schema file cannot be read, or None when it can."""
    path = Path(str(schema_path)).expanduser()
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except IsADirectoryError:
        return f"schema_path {path} is a directory; point it at the .gql schema file."
    except OSError as err:
        return f"schema_path {path} cannot be read ({err.strerror or err})."
    return None
