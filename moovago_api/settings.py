"""Connection settings shared by the tap and the target, as plain JSON Schema.

The tap and target merge `connection_properties()` into their own config schema, then build
their client with `client_from_config`. Every rule JSON Schema can say (types, ranges, the
header-name pattern) is said in the schema, and `client_from_config` checks the settings against
that same schema, turning each failure into one sentence; by hand it checks only what JSON
Schema cannot: the URL's scheme and loopback host, the key's header-line form and whether it can
be sent in a header, and a readable `schema_path`.

Settings are typed as what they are (`integer`, `number`), in `--about` too. A number may still
arrive as text: the SDK's `--config=ENV` leaves a non-integer setting as text, and Meltano passes
a `kind: string` setting through unchanged (Meltano's `kind: decimal` cannot come from an
environment variable: Meltano 4.4 then fails to write the plugin's config with "Decimal is not
JSON serializable"). `numbers_from_text` converts such text once, before the config is checked.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema

from moovago_api.client import (
    DEFAULT_MAX_RESPONSE_BYTES,
    MAX_REQUESTS_IN_FLIGHT,
    MAX_REQUESTS_PER_SECOND,
    MoovagoClient,
    check_api_url,
    check_rate,
    parse_api_key,
)
from moovago_api.errors import ConfigError
from moovago_api.wire import install_log_redaction

__all__ = [
    "CONNECTION_REQUIRED",
    "DEFAULT_API_KEY_HEADER",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_MAX_RETRY_SECONDS",
    "DEFAULT_REQUEST_TIMEOUT",
    "client_from_config",
    "connection_properties",
    "numbers_from_text",
]

DEFAULT_API_KEY_HEADER = "X-API-KEY"
DEFAULT_REQUEST_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 8
DEFAULT_MAX_RETRY_SECONDS = 300
CONNECTION_REQUIRED = ("api_url", "api_key")
#: A connection test (`--test`, Airbyte `check`): one attempt, this long to connect.
CONNECTION_TEST_CONNECT_SECONDS = 5.0

#: A decimal number written as text, as an environment variable holds it (`2`, `0.5`, `30.0`).
NUMBER_TEXT = r"^\s*\+?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$"
_NUMBER = re.compile(NUMBER_TEXT)
_HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"

#: What each setting must be, for the sentence naming a value the schema refuses.
_MUST = {
    "api_url": "a URL such as https://<api-backend>/graphql",
    "api_key": "text: the key from your Moovago welcome e-mail",
    "api_key_header": "an HTTP header name such as X-API-KEY",
    "schema_path": "the path of a .gql schema file",
    "max_requests_per_second": "a number above 0 and at most 5",
    "request_timeout": "a number of seconds above 0 and at most 3600",
    "verify_tls": "true or false",
    "max_retries": "a whole number, 0 or more and at most 100",
    "max_retry_seconds": "a whole number of seconds, 0 or more and at most 86400",
    "max_requests_in_flight": f"a whole number from 1 to {MAX_REQUESTS_IN_FLIGHT}",
    "max_response_bytes": "a whole number of bytes, at least 1024",
}


def _number(title: str, description: str, default: float, **bounds: float) -> dict[str, Any]:
    """A number setting (given as text, see `numbers_from_text`)."""
    return {
        "type": "number",
        "title": title,
        "description": description,
        "default": default,
        **bounds,
    }


def connection_properties(*, default_rate: float) -> dict[str, Any]:
    """JSON Schema `properties` of the connection settings (4 for reads, 1 for bulk writes)."""
    check_rate(default_rate)
    return {
        "api_url": {
            "type": "string",
            "minLength": 1,
            "title": "API URL",
            "description": (
                "Moovago GraphQL endpoint, https://<api-backend>/graphql as given with your API "
                "key. Must be https://; http:// is accepted only for loopback hosts (127.0.0.1, "
                "::1, localhost), such as the local sandbox, which prints its own URL."
            ),
        },
        "api_key": {
            "type": "string",
            "minLength": 1,
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
            "pattern": _HEADER_NAME,
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
        "max_requests_per_second": _number(
            "Max requests per second",
            "Most requests sent in any rolling second, shared by every thread of the "
            "process. Moovago answers 429 above 5 per second and asks bulk imports to keep "
            "to about 1 per second.",
            default_rate,
            exclusiveMinimum=0,
            maximum=MAX_REQUESTS_PER_SECOND,
        ),
        "max_requests_in_flight": {
            "type": "integer",
            "title": "Max requests in flight",
            "description": (
                "Requests the connector may have sent and be waiting on at once. The rate "
                "limit still decides when each one leaves; more in flight only keeps the rate "
                "in use while answers take time. Default: twice the rate (at least 2), enough "
                "for answers of up to 2 s."
            ),
            "minimum": 1,
            "maximum": MAX_REQUESTS_IN_FLIGHT,
        },
        "request_timeout": _number(
            "Request timeout",
            "Seconds to wait for Moovago's whole answer to one request (status, headers and "
            "body) before retrying.",
            DEFAULT_REQUEST_TIMEOUT,
            exclusiveMinimum=0,
            maximum=3600,
        ),
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
                "body that is not JSON (exponential backoff with jitter); 429s are waited out "
                "within max_retry_seconds."
            ),
            "default": DEFAULT_MAX_RETRIES,
            "minimum": 0,
            "maximum": 100,
        },
        "max_retry_seconds": {
            "type": "integer",
            "title": "Max retry seconds",
            "description": "Longest time one request may spend being retried before failing.",
            "default": DEFAULT_MAX_RETRY_SECONDS,
            "minimum": 0,
            "maximum": 86400,
        },
        "max_response_bytes": {
            "type": "integer",
            "title": "Max response bytes",
            "description": (
                "Largest answer read, in bytes once decompressed (default 64 MiB); a larger "
                "one is refused with an error instead of filling memory."
            ),
            "default": DEFAULT_MAX_RESPONSE_BYTES,
            "minimum": 1024,
        },
    }


def client_from_config(
    config: Mapping[str, Any],
    *,
    default_rate: float,
    logger: logging.Logger | None = None,
    connection_test: bool = False,
    **overrides: Any,
) -> MoovagoClient:
    """A client for these settings; ConfigError with one sentence per problem found.

    `connection_test`: one attempt and CONNECTION_TEST_CONNECT_SECONDS to connect, so a test
    of an address that does not answer says so in seconds, not after every retry. `overrides`
    replace other MoovagoClient arguments the settings give.

    Also installs the process's log redaction for the configured key, before anything is
    checked, so no log line of the process can print it from then on.
    """
    raw_key = config.get("api_key")
    if isinstance(raw_key, str):
        install_log_redaction(raw_key)
    properties = connection_properties(default_rate=default_rate)
    given = {name: value for name, value in config.items() if value is not None and value != ""}
    settings = {
        name: _from_text(prop, given[name] if name in given else prop.get("default"))
        for name, prop in properties.items()
        if name in given or "default" in prop
    }
    problems = _schema_problems(settings, properties)
    # What JSON Schema cannot say.
    if "api_url" not in problems:
        problems["api_url"] = _problem(check_api_url, settings["api_url"])
    if "api_key" not in problems and "api_key_header" not in problems:
        problems["api_key"] = _problem(parse_api_key, raw_key, settings["api_key_header"])
    if "schema_path" not in problems and settings.get("schema_path"):
        problems["schema_path"] = _unreadable(settings["schema_path"])
    sentences = [problem for problem in problems.values() if problem]
    if sentences:
        raise ConfigError(" ".join(sentences))
    rate = float(settings["max_requests_per_second"])
    arguments: dict[str, Any] = {
        "api_url": settings["api_url"],
        "api_key": settings["api_key"],
        "api_key_header": settings["api_key_header"],
        "max_requests_per_second": rate,
        "request_timeout": float(settings["request_timeout"]),
        "verify_tls": settings["verify_tls"],
        "max_retries": int(settings["max_retries"]),
        "max_retry_seconds": float(settings["max_retry_seconds"]),
        "max_requests_in_flight": settings.get("max_requests_in_flight"),
        "max_response_bytes": int(settings["max_response_bytes"]),
        "logger": logger,
    }
    if connection_test:
        arguments.update(max_retries=0, connect_timeout=CONNECTION_TEST_CONNECT_SECONDS)
    client = MoovagoClient(**{**arguments, **overrides})
    install_log_redaction(*client.secrets)
    (logger or logging.getLogger(__name__)).info(
        "Moovago connection: %s, at most %g requests/s and %d in flight%s, whole answers "
        "within %g s and %d bytes, %d retries within %g s, TLS %s.",
        client.api_url,
        client.max_requests_per_second,
        client.max_requests_in_flight,
        "" if "max_requests_in_flight" in settings else " (default)",
        client.request_timeout,
        client.max_response_bytes,
        client.max_retries,
        client.max_retry_seconds,
        "verified" if client.verify_tls else "NOT verified",
    )
    return client


def numbers_from_text(config: dict[str, Any], properties: Mapping[str, Any]) -> None:
    """Convert in place the number settings of `config` given as text (`7.5`) to numbers;
    text that is no number stays, for the schema check to name."""
    for name, prop in properties.items():
        value = config.get(name)
        if isinstance(value, str) and prop.get("type") == "number" and _NUMBER.match(value):
            config[name] = float(value)


def _from_text(prop: Mapping[str, Any], value: Any) -> Any:
    """A number or boolean given as text (an environment variable), as its value; else as is."""
    if not isinstance(value, str):
        return value
    if prop.get("type") == "boolean" and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    if prop.get("type") == "number" and _NUMBER.match(value):
        return float(value)
    return value


def _schema_problems(
    settings: Mapping[str, Any], properties: Mapping[str, Any]
) -> dict[str, str | None]:
    """One sentence per setting the connection schema refuses."""
    schema = {"type": "object", "properties": properties, "required": list(CONNECTION_REQUIRED)}
    problems: dict[str, str | None] = {}
    for error in jsonschema.Draft7Validator(schema).iter_errors(dict(settings)):
        if error.validator == "required":
            for name in CONNECTION_REQUIRED:
                if name not in settings:
                    problems.setdefault(name, _MISSING[name])
            continue
        name = str(error.path[0]) if error.path else ""
        problems.setdefault(name, _sentence(name, error.validator, settings.get(name)))
    return problems


_MISSING = {
    "api_url": (
        "api_url is missing: set it to the Moovago GraphQL endpoint given with your API key "
        "(https://<api-backend>/graphql), or to the URL the local sandbox prints."
    ),
    "api_key": (
        "api_key is missing: set it to the API key from your Moovago welcome e-mail "
        "(ask support@moovago.com if you have none)."
    ),
}


def _sentence(name: str, rule: Any, value: Any) -> str:
    if name in _MISSING and rule == "minLength":
        return _MISSING[name]
    if name == "api_key":  # never echo the value
        return f"api_key must be {_MUST['api_key']}."
    if name == "max_requests_per_second" and rule == "maximum":
        return (
            "max_requests_per_second must be at most 5 "
            "(Moovago answers 429 above 5 requests per second)."
        )
    return f"{name} must be {_MUST.get(name, 'valid')}, got {value!r}."


def _problem(check: Any, *args: Any) -> str | None:
    try:
        check(*args)
    except ConfigError as err:
        return str(err)
    return None


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
