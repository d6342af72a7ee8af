"""The sandbox HTTP server (aiohttp): `POST /graphql` plus the `/_sandbox/*` control endpoints.

Moovago's rules as its getting-started page gives them: the key in a request header, every
error in a 200 with `errors` (the bad-key shape copied from the page), introspection refused,
429 above N requests in any rolling second. Control endpoints never get faults.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiohttp import web
from graphql import build_schema

from moovago_api.schema import load_schema
from moovago_sandbox.engine import (
    NOT_AUTHORIZED,
    Answer,
    Engine,
    RequestContext,
    dump_json,
    graphql_error,
)
from moovago_sandbox.faults import KINDS, FaultInjector, FaultProfile
from moovago_sandbox.ratelimit import PeakMeter, RollingLimiter
from moovago_sandbox.scalars import format_datetime
from moovago_sandbox.seed import COMPANIES_OTHER_TEAMS, TeamPlan, generate_chunks, id_salt
from moovago_sandbox.store import Store, build_models

log = logging.getLogger("moovago_sandbox")

DEFAULT_KEY = "sandbox-key"
DEFAULT_HEADER = "X-API-KEY"
REQUEST_LOG_SIZE = 1000
MUTATION_KINDS = ("create", "update", "delete")


def load_sdl(path: Path | None = None) -> str:
    """The SDL text, through the core's loader (SchemaFileError names file:line)."""
    return load_schema(path).sdl


@dataclass
class SandboxConfig:
    host: str = "127.0.0.1"
    port: int = 0
    seed: int = 42
    companies: int = 100
    api_keys: Sequence[tuple[str, str | None]] = ((DEFAULT_KEY, None),)
    api_key_header: str = DEFAULT_HEADER
    rate_limit: int = 5
    retry_after: bool = False
    faults: FaultProfile = field(default_factory=FaultProfile)
    db: str = ":memory:"
    fast_path: bool = True
    schema_path: Path | None = None


class Sandbox:
    """Store, engine, limits, faults and statistics of one running sandbox."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        sdl = load_sdl(config.schema_path)
        models = build_models(build_schema(sdl))
        self.store = Store(models, config.db, id_salt=id_salt(config.seed))
        self.engine = Engine(self.store, sdl, fast_path=config.fast_path)
        # One team per key; keys naming the same team share it.
        slots: list[str | None] = []
        slot_of_key: dict[str, int] = {}
        for key, team in config.api_keys:
            if team is not None and team in slots:
                slot_of_key[key] = slots.index(team)
                continue
            slot_of_key[key] = len(slots)
            slots.append(team)
        self.plans = [
            TeamPlan(team, config.companies if i == 0 else COMPANIES_OTHER_TEAMS)
            for i, team in enumerate(slots)
        ]
        empty = self.store.is_empty()
        teams = self._seed(load=empty)
        self.keys: dict[str, str] = {k: teams[slot]["id"] for k, slot in slot_of_key.items()}
        self.owners = {t["id"]: (t["members"][0]["id"] if t["members"] else None) for t in teams}
        if not empty and any(self.store.team(t) is None for t in self.keys.values()):
            self._seed(load=True)  # a --db file from another seed or other keys
        self.limiter = RollingLimiter(config.rate_limit)
        self.faults = FaultInjector(config.faults)
        self.reset_stats()

    # -- statistics -------------------------------------------------------------------------

    def reset_stats(self) -> None:
        self.requests = 0
        self.rate_limited = 0
        self.errors = 0
        self.statuses: dict[str, int] = {}
        self.mutations = {e: dict.fromkeys(MUTATION_KINDS, 0) for e in self.engine.models}
        self.peak = PeakMeter()
        self.team_requests: dict[str, int] = {}
        self.team_peaks: dict[str, PeakMeter] = {}
        self.request_log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)
        self.limiter.reset()
        self.faults.reset()

    def stats(self) -> dict[str, Any]:
        """Counters since start or reset.

        requests: POSTs to /graphql (429s and faults included); rate_limited: 429s from the
        limit (injected ones are under faults.burst_429); errors: error entries sent in 200s;
        responses: answers by status ("dropped" for dropped connections); mutations: applied
        create/update/delete per entity; peak_requests_per_second: most requests seen in any
        rolling second, overall and per team.
        """
        return {
            "requests": self.requests,
            "rate_limited": self.rate_limited,
            "errors": self.errors,
            "responses": dict(sorted(self.statuses.items())),
            "mutations": self.mutations,
            "mutations_total": sum(sum(kinds.values()) for kinds in self.mutations.values()),
            "peak_requests_per_second": self.peak.peak,
            "faults": {kind: self.faults.counts[kind] for kind in KINDS},
            "teams": {
                team: {
                    "requests": count,
                    "peak_requests_per_second": self.team_peaks[team].peak,
                }
                for team, count in self.team_requests.items()
            },
        }

    def _seed(self, *, load: bool) -> list[dict[str, Any]]:
        """Generate the seed rows (loading them into an emptied store when `load`); the teams.

        Rows are not kept: a reset generates the same rows again from the seed."""
        teams: list[dict[str, Any]] = []
        if load:
            self.store.clear()
        for chunk, id_counter in generate_chunks(self.config.seed, self.plans, self.engine.models):
            teams += chunk["team"]
            if load:
                self.store.load(chunk, id_counter=id_counter)
        return teams

    def reset(self) -> None:
        self._seed(load=True)
        self.reset_stats()

    # -- HTTP -------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post("/graphql", self.handle_graphql)
        app.router.add_get("/_sandbox/stats", self.handle_stats)
        app.router.add_post("/_sandbox/reset", self.handle_reset)
        app.router.add_get("/_sandbox/export", self.handle_export)
        app.router.add_get("/_sandbox/requests", self.handle_requests)
        return app

    async def handle_stats(self, _request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def handle_reset(self, _request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"reset": True})

    async def handle_export(self, _request: web.Request) -> web.Response:
        return _json(self.store.export())

    async def handle_requests(self, _request: web.Request) -> web.Response:
        return _json(list(self.request_log))

    async def handle_graphql(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        self.requests += 1
        self.peak.hit()
        key = (request.headers.get(self.config.api_key_header) or "").strip()
        team = self.keys.get(key)
        if team is not None:
            self.team_requests[team] = self.team_requests.get(team, 0) + 1
            self.team_peaks.setdefault(team, PeakMeter()).hit()
        entry: dict[str, Any] = {
            "time": format_datetime_now(),
            "operationName": None,
            "query": "",
            "variables": None,
            "team": team,
            "status": None,
        }
        self.request_log.append(entry)
        try:
            response = await self._graphql(request, key, team, entry)
        finally:
            elapsed = (time.monotonic() - started) * 1000
            log.info(
                "POST /graphql %s team=%s op=%s %.1fms",
                entry["status"],
                team or "-",
                entry["operationName"] or "-",
                elapsed,
            )
        return response

    async def _graphql(
        self, request: web.Request, key: str, team: str | None, entry: dict[str, Any]
    ) -> web.StreamResponse:
        raw = await request.read()
        body: Any = None
        try:
            body = json.loads(raw or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        query = body.get("query") if isinstance(body, dict) else None
        variables = body.get("variables") if isinstance(body, dict) else None
        operation_name = body.get("operationName") if isinstance(body, dict) else None
        entry.update(
            operationName=operation_name if isinstance(operation_name, str) else None,
            query=query if isinstance(query, str) else "",
            variables=variables,
        )

        wait = self.limiter.acquire(key or f"anonymous:{request.remote}")
        if wait is not None:
            self.rate_limited += 1
            return self._too_many(entry, wait)
        fault = self.faults.before_request()
        if fault == "drop_connection":
            entry["status"] = "dropped"
            self.statuses["dropped"] = self.statuses.get("dropped", 0) + 1
            return _drop(request)
        if fault == "error_5xx":
            return self._status(entry, self.faults.error_status())
        if fault == "burst_429":
            return self._too_many(entry, 1.0)
        delay = self.faults.latency_seconds()
        if delay:
            await asyncio.sleep(delay)

        if not isinstance(body, dict) or not isinstance(query, str):
            return self._answer(
                entry, _request_error("The body must be a JSON object with a 'query' string")
            )
        if variables is not None and not isinstance(variables, dict):
            return self._answer(entry, _request_error("'variables' must be a JSON object"))
        if operation_name is not None and not isinstance(operation_name, str):
            return self._answer(entry, _request_error("'operationName' must be a string"))
        if team is None:
            paths: list[str | None] = [*self.engine.root_keys(query, operation_name)] or [None]
            return self._answer(
                entry,
                {
                    "data": None,
                    "errors": [
                        graphql_error(
                            NOT_AUTHORIZED,
                            error_type="DataFetchingException",
                            path=[p] if p else [],
                        )
                        for p in paths
                    ],
                },
            )
        ctx = RequestContext(self.store, team, self.owners.get(team))
        answer = self.engine.answer(ctx, query, variables, operation_name)
        for entity, kind in ctx.mutations:
            self.mutations[entity][kind] += 1
        is_mutation = self.engine.operation_type(query, operation_name) == "mutation"
        if is_mutation and ctx.mutations and self.faults.commit_then_fail():
            return self._status(entry, 502)
        if not is_mutation and answer.error_count == 0 and self.faults.partial_error():
            body = answer.as_dict()
            self.engine.inject_partial_error(body, query, operation_name, self.faults.rng)
            answer = Answer(body=body)
        self.errors += answer.error_count
        return self._count(entry, _json_text(answer.as_text()))

    def _answer(self, entry: dict[str, Any], result: dict[str, Any]) -> web.Response:
        self.errors += len(result.get("errors") or ())
        return self._count(entry, _json(result))

    def _status(self, entry: dict[str, Any], status: int) -> web.Response:
        return self._count(
            entry, web.Response(status=status, text=f"{status} injected server error\n")
        )

    def _too_many(self, entry: dict[str, Any], wait: float) -> web.Response:
        limit = self.config.rate_limit
        message = f"Too Many Requests: more than {limit} requests per second"
        headers = {"Retry-After": str(max(1, math.ceil(wait)))} if self.config.retry_after else {}
        response = _json(
            {"data": None, "errors": [graphql_error(message, error_type="RateLimited")]},
            status=429,
            headers=headers,
        )
        return self._count(entry, response)

    def _count(self, entry: dict[str, Any], response: web.Response) -> web.Response:
        entry["status"] = response.status
        status = str(response.status)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        return response


def format_datetime_now() -> str:
    return format_datetime(datetime.now(timezone.utc))


def _request_error(message: str) -> dict[str, Any]:
    return {"data": None, "errors": [graphql_error(message, error_type="InvalidSyntax")]}


def _json(
    payload: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return _json_text(dump_json(payload), status=status, headers=headers)


def _json_text(
    text: str, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=text.encode("utf-8"),
        status=status,
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the socket without a byte of answer."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise asyncio.CancelledError
