"""Request bodies and answers of the sandbox's HTTP side: a body decoded without ever raising,
JSON answers, and the dropped connection."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from moovago_sandbox.engine import dump_json, graphql_error
from moovago_sandbox.scalars import format_datetime


def format_datetime_now() -> str:
    return format_datetime(datetime.now(timezone.utc))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is too large")
    return value


def parse_body(raw: bytes) -> tuple[Any, str | None]:
    """The decoded body, or the reason it is not one (never an exception): bad UTF-8, bad
    JSON, NaN or Infinity, integers too long to convert, nesting too deep for the parser."""
    try:
        return (
            json.loads(
                raw.decode("utf-8") if raw else "null",
                parse_constant=_no_constant,
                parse_float=_finite,
            ),
            None,
        )
    except UnicodeDecodeError:
        return None, "The body is not UTF-8 text"
    except RecursionError:
        return None, "The body is nested too deeply"
    except ValueError as exc:  # JSONDecodeError, NaN, an integer with too many digits
        return None, f"The body is not valid JSON: {str(exc)[:200]}"


def request_error(message: str) -> dict[str, Any]:
    return {"data": None, "errors": [graphql_error(message, error_type="InvalidSyntax")]}


def json_response(
    payload: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return json_text_response(dump_json(payload), status=status, headers=headers)


def json_text_response(
    text: str, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=text.encode("utf-8"),
        status=status,
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


def drop(request: web.Request) -> web.StreamResponse:
    """Close the socket without a byte of answer."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise asyncio.CancelledError
