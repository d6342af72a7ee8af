"""The bytes of one request and its answer: the body sent, the answer read within its bounds."""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import functools
import json
import queue
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from graphql import DocumentNode, print_ast
from urllib3.connection import HTTPConnection
from urllib3.response import BaseHTTPResponse

from moovago_api.errors import ResponseTooLarge

_CHUNK = 1 << 16


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, its body read whole within the request's deadline."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes
    date: dt.datetime | None = None  # the answer's valid Date header

    def retry_after(self) -> float | None:
        """Seconds from Retry-After (an HTTP date counts from the answer's own Date)."""
        text = (self.headers.get("Retry-After") or "").strip()
        try:
            seconds = float(text)
        except ValueError:
            when = http_date(text) if text else None
            if when is None:
                return None
            seconds = (when - (self.date or dt.datetime.now(dt.timezone.utc))).total_seconds()
        return None if seconds != seconds else max(0.0, seconds)  # NaN: unreadable


def read_body(response: BaseHTTPResponse, limit: int, label: str) -> bytes:
    """The decoded body, read a chunk at a time: a gzip bomb is cut at `limit`, never inflated."""
    headers = response.headers
    declared = headers.get("Content-Length", "")
    refused = declared.isdigit() and int(declared) > limit and "Content-Encoding" not in headers
    content = bytearray()
    while not refused and (chunk := response.read1(_CHUNK, decode_content=True)):
        content += chunk
        refused = len(content) > limit
    if refused:
        raise ResponseTooLarge(
            f"Moovago's answer to {label} is over max_response_bytes ({limit} bytes once "
            "decoded): it was refused. Ask for less per request (page_size) or raise "
            "max_response_bytes.",
            limit=limit,
        )
    return bytes(content)


def close_all(idle: queue.SimpleQueue[HTTPConnection]) -> None:
    with contextlib.suppress(queue.Empty):
        while True:
            idle.get_nowait().close()


def cut(sock: socket.socket, claim: threading.Lock) -> None:
    """The deadline: shut the socket so a blocked read returns at once."""
    if claim.acquire(blocking=False):
        with contextlib.suppress(OSError):  # the plain socket's: SSL is left to its reader
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


@functools.lru_cache(maxsize=8)
def http_date(value: str) -> dt.datetime | None:
    """An HTTP date (`Tue, 01 Dec 2026 10:00:00 GMT`) in UTC; None when it is not one."""
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.replace(tzinfo=when.tzinfo or dt.timezone.utc).astimezone(dt.timezone.utc)


def encode_request(
    document: str | DocumentNode,
    variables: Mapping[str, Any] | None = None,
    operation_name: str | None = None,
) -> bytes:
    """The body `execute` sends for this request: what a server's size limit counts."""
    text = print_ast(document) if isinstance(document, DocumentNode) else document
    return json.dumps(
        {"query": text, "variables": dict(variables or {}), "operationName": operation_name},
        default=_json_default,
        ensure_ascii=False,
    ).encode("utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"GraphQL variables must be JSON values; got a {type(value).__name__}")
