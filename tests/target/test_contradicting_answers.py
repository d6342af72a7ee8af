"""Server answers that contradict each other (issue 23 item 5): one record id for two creates,
a create answered with the id of an existing record. A proxy on 127.0.0.1 in front of the
sandbox rewrites (or makes up) the answers to create requests; the target must reconcile those
rows like after an ambiguous failure, never count two creates for one record."""

from __future__ import annotations

import contextlib
import http.server
import json
import logging
import threading
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from graphql import FieldNode, OperationDefinitionNode, parse

from tests.target.helpers import entity_rows, mutations, stream_messages

Rewrite = Callable[[list[dict[str, Any]]], None]


def _payloads(data: Any) -> list[dict[str, Any]]:
    """Every mutation payload (a dict holding recordId) of an answer, in alias order."""
    found: list[dict[str, Any]] = []
    if isinstance(data, dict):
        if "recordId" in data:
            return [data]
        for value in data.values():
            found.extend(_payloads(value))
    return found


def _made_up(query: str, record_id: Callable[[int], str]) -> dict[str, Any]:
    """An answer in the shape the document asks for, nothing applied: {ns: {alias: {...}}}."""
    (operation,) = [d for d in parse(query).definitions if isinstance(d, OperationDefinitionNode)]
    data: dict[str, Any] = {}
    n = 0
    for outer in operation.selection_set.selections:
        assert isinstance(outer, FieldNode)
        inner = {}
        for field in outer.selection_set.selections if outer.selection_set else []:
            assert isinstance(field, FieldNode)
            inner[(field.alias or field.name).value] = {"recordId": record_id(n)}
            n += 1
        data[(outer.alias or outer.name).value] = inner
    return {"data": data}


@contextlib.contextmanager
def proxy(
    upstream: str,
    *,
    rewrite: Rewrite | None = None,
    make_up: Callable[[int], str] | None = None,
) -> Iterator[str]:
    """A GraphQL proxy to the sandbox; create requests are answered rewritten (`rewrite` edits
    the payloads of the real answer) or made up without reaching the sandbox (`make_up`)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            query = json.loads(body).get("query", "")
            creates = query.lstrip().startswith("mutation") and "create" in query
            if creates and make_up is not None:
                answer = json.dumps(_made_up(query, make_up)).encode()
            else:
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                request = urllib.request.Request(upstream, data=body, headers=headers)  # noqa: S310
                with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                    answer = response.read()
                if creates and rewrite is not None:
                    decoded = json.loads(answer)
                    rewrite(_payloads(decoded.get("data")))
                    answer = json.dumps(decoded).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/graphql"
    finally:
        server.shutdown()
        server.server_close()


class Via:
    """The sandbox handle, reached through the proxy (for the Runner)."""

    def __init__(self, box: Any, url: str) -> None:
        self.url, self.api_key = url, box.api_key


ROWS = [
    {"customerCode": "CONTRA-1", "name": "one"},
    {"customerCode": "CONTRA-2", "name": "two"},
]


def _codes(box: Any) -> list[str]:
    return sorted(
        c["customerCode"]
        for c in entity_rows(box, "company")
        if (c.get("customerCode") or "").startswith("CONTRA")
    )


@pytest.fixture
def box(sandbox_factory):
    return sandbox_factory(companies=3)


def test_one_record_id_answered_for_two_creates_is_reconciled(box, run_target, caplog):
    def same_id(payloads: list[dict[str, Any]]) -> None:
        for payload in payloads[1:]:
            payload["recordId"] = payloads[0]["recordId"]

    with proxy(box.url, rewrite=same_id) as url, caplog.at_level(logging.WARNING):
        result = run_target(Via(box, url), stream_messages("company", ROWS))
    assert _codes(box) == ["CONTRA-1", "CONTRA-2"]  # each once
    assert result.counts("company")["created"] == 2  # the two records the list shows
    assert result.rejects == []
    assert any("for 2 creates; reconciling" in r.getMessage() for r in caplog.records)
    before = mutations(box)
    rerun = run_target(box, stream_messages("company", ROWS))  # the index is right: no write
    assert rerun.counts("company")["unchanged"] == 2
    assert mutations(box) == before


def test_a_create_answered_with_an_existing_id_is_reconciled(box, run_target, caplog):
    existing = entity_rows(box, "company")[0]

    def existing_id(payloads: list[dict[str, Any]]) -> None:
        payloads[0]["recordId"] = existing["id"]

    with proxy(box.url, rewrite=existing_id) as url, caplog.at_level(logging.WARNING):
        result = run_target(Via(box, url), stream_messages("company", ROWS[:1]))
    assert _codes(box) == ["CONTRA-1"]
    assert result.counts("company")["created"] == 1
    assert any("which is an existing record; reconciling" in r.getMessage() for r in caplog.records)
    (after,) = [c for c in entity_rows(box, "company") if c["id"] == existing["id"]]
    assert after == existing


@pytest.mark.parametrize(
    ("make_up", "why"),
    [
        (lambda n: "made-up-1", "the API answered record id made-up-1 for 2 creates"),
        (None, "which is an existing record"),
    ],
)
def test_contradicting_answers_with_nothing_created_reject_the_rows(box, run_target, make_up, why):
    existing = entity_rows(box, "company")[0]["id"]
    with proxy(box.url, make_up=make_up or (lambda n: existing)) as url:
        rows = ROWS if make_up else ROWS[:1]
        result = run_target(Via(box, url), stream_messages("company", rows))
    assert mutations(box).get("create", 0) == 0
    assert result.counts("company")["created"] == 0
    assert len(result.rejects) == len(rows)
    for reject in result.rejects:
        assert why in reject["reason"]
        assert "not sent again" in reject["reason"]
