"""The connection settings of the tap and the target, declared once as JSON Schema and checked
against it, each failure one sentence; numbers may arrive as text (docs/settings.md)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import jsonschema

from moovago_api.client import DEFAULT_MAX_RESPONSE_BYTES, MoovagoClient
from moovago_api.errors import ConfigError
from moovago_api.governor import MAX_REQUESTS_IN_FLIGHT, MAX_REQUESTS_PER_SECOND, check_rate
from moovago_api.wire import HEADER_NAME, check_api_url, install_log_redaction, parse_api_key

CONNECTION_REQUIRED = ("api_url", "api_key")

_NUMBER = re.compile(r"^\s*\+?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")

#: What each setting must be, for the sentence naming a value the schema refuses.
_MUST = {
    "api_url": "a URL such as https://<api-backend>/graphql",
    "api_key": "text: the key from your Moovago welcome e-mail",
    "api_key_header": "an HTTP header name such as X-API-KEY",
    "schema_path": "the path of a .gql schema file",
    "request_timeout": "a number of seconds above 0 and at most 3600",
    "verify_tls": "true or false",
    "max_retries": "a whole number, 0 or more and at most 100",
    "max_retry_seconds": "a whole number of seconds, 0 or more and at most 86400",
    "max_requests_in_flight": f"a whole number from 1 to {MAX_REQUESTS_IN_FLIGHT}",
    "max_response_bytes": "a whole number of bytes, at least 1024",
}


def _setting(kind: str, title: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"type": kind, "title": title, "description": description, **schema}


def connection_properties(*, default_rate: float) -> dict[str, Any]:
    """JSON Schema `properties` of the connection settings (4 for reads, 1 for bulk writes)."""
    check_rate(default_rate)
    return {
        "api_url": _setting(
            "string",
            "API URL",
            "Moovago GraphQL endpoint, https://<api-backend>/graphql as given with your API key. "
            "Must be https://; http:// is accepted only for loopback hosts (127.0.0.1, ::1, "
            "localhost), such as the local sandbox, which prints its own URL.",
            minLength=1,
        ),
        "api_key": _setting(
            "string",
            "API key",
            "Your Moovago API key, from the welcome e-mail (ask support@moovago.com for one). "
            "The whole header line of the e-mail, `X-API-KEY: <key>`, is accepted too.",
            minLength=1,
            secret=True,
            writeOnly=True,
        ),
        "api_key_header": _setting(
            "string",
            "API key header",
            "Name of the request header that carries the API key, as in the welcome e-mail.",
            pattern=f"^{HEADER_NAME}$",
            default="X-API-KEY",
        ),
        "schema_path": _setting(
            "string",
            "Schema file",
            "Path to the moovago_api_graphql_schema.gql file downloaded from Moovago. Streams, "
            "fields and mutations follow it. When unset, the schema bundled with the connector "
            "is used.",
        ),
        "max_requests_per_second": _setting(
            "number",
            "Max requests per second",
            "Most requests sent in any rolling second, shared by every thread of the process. "
            "Moovago answers 429 above 5 per second and asks bulk imports to keep to about 1 "
            "per second.",
            default=default_rate,
            exclusiveMinimum=0,
            maximum=MAX_REQUESTS_PER_SECOND,
        ),
        "max_requests_in_flight": _setting(
            "integer",
            "Max requests in flight",
            "Requests the connector may have sent and be waiting on at once. The rate limit "
            "still decides when each one leaves; more in flight only keeps the rate in use while "
            "answers take time. Default: twice the rate (at least 2), enough for answers of up "
            "to 2 s.",
            minimum=1,
            maximum=MAX_REQUESTS_IN_FLIGHT,
        ),
        "request_timeout": _setting(
            "number",
            "Request timeout",
            "Seconds to wait for Moovago's whole answer to one request (status, headers and "
            "body) before retrying.",
            default=30.0,
            exclusiveMinimum=0,
            maximum=3600,
        ),
        "verify_tls": _setting(
            "boolean",
            "Verify TLS",
            "Check the server's TLS certificate. Turn off only for a test server with a "
            "self-signed certificate.",
            default=True,
        ),
        "max_retries": _setting(
            "integer",
            "Max retries",
            "Retries of a request after a 5xx answer, a timeout, a reset connection or a body "
            "that is not JSON (exponential backoff with jitter); 429s are waited out within "
            "max_retry_seconds.",
            default=8,
            minimum=0,
            maximum=100,
        ),
        "max_retry_seconds": _setting(
            "integer",
            "Max retry seconds",
            "Longest time one request may spend being retried before failing.",
            default=300,
            minimum=0,
            maximum=86400,
        ),
        "max_response_bytes": _setting(
            "integer",
            "Max response bytes",
            "Largest answer read, in bytes once decompressed (default 64 MiB); a larger one is "
            "refused with an error instead of filling memory.",
            default=DEFAULT_MAX_RESPONSE_BYTES,
            minimum=1024,
        ),
    }


def client_from_config(
    config: Mapping[str, Any],
    *,
    default_rate: float,
    logger: logging.Logger | None = None,
    connection_test: bool = False,
    **overrides: Any,
) -> MoovagoClient:
    """A client for these settings, the key's log redaction installed first; ConfigError with
    one sentence per problem. `connection_test`: one attempt, 5 s to connect."""
    raw_key = config.get("api_key")
    if isinstance(raw_key, str):
        install_log_redaction(raw_key)
    properties = connection_properties(default_rate=default_rate)
    given = {name: value for name, value in config.items() if value is not None and value != ""}
    settings = {
        name: _from_text(prop, given.get(name, prop.get("default")))
        for name, prop in properties.items()
        if name in given or "default" in prop
    }
    checks = {"api_url": check_api_url, "api_key": parse_api_key}  # each says what to set
    problems = {
        name: _problem(checks[name], None) for name in CONNECTION_REQUIRED if name not in settings
    }
    for error in jsonschema.Draft7Validator({"properties": properties}).iter_errors(settings):
        name = str(error.path[0])
        problems.setdefault(name, _sentence(name, settings[name]))
    # What JSON Schema cannot say.
    if "api_url" not in problems:
        problems["api_url"] = _problem(check_api_url, settings["api_url"])
    if "api_key" not in problems and "api_key_header" not in problems:
        problems["api_key"] = _problem(parse_api_key, raw_key, settings["api_key_header"])
    sentences = [problem for problem in problems.values() if problem]
    if sentences:
        raise ConfigError(" ".join(sentences))
    settings.pop("schema_path", None)
    if connection_test:
        settings.update(max_retries=0, connect_timeout=5.0)
    client = MoovagoClient(**{**settings, "logger": logger, **overrides})
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
    """Convert in place the number settings given as text (`7.5`) to numbers; text that is no
    number stays, for the schema check to name."""
    for name, prop in properties.items():
        if prop.get("type") == "number" and name in config:
            config[name] = _from_text(prop, config[name])


def _from_text(prop: Mapping[str, Any], value: Any) -> Any:
    """A number or boolean given as text (an environment variable), as its value; else as is."""
    if not isinstance(value, str):
        return value
    if prop.get("type") == "boolean" and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    if prop.get("type") == "number" and _NUMBER.match(value):
        return float(value)
    return value


def _sentence(name: str, value: Any) -> str | None:
    if name == "max_requests_per_second":  # the governor's own sentences
        return _problem(check_rate, value)
    if name == "api_key":  # never echo the value
        return f"api_key must be {_MUST['api_key']}."
    return f"{name} must be {_MUST.get(name, 'valid')}, got {value!r}."


def _problem(check: Any, *args: Any) -> str | None:
    try:
        check(*args)
    except ConfigError as err:
        return str(err)
    return None
