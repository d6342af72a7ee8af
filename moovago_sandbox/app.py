"""The sandbox HTTP server (aiohttp): `POST /graphql` plus the `/_sandbox/*` control endpoints.

Moovago's rules as its getting-started page gives them: the key in a request header, every
error in a 200 with `errors` (the bad-key shape copied from the page), introspection refused,
429 above N requests in any rolling second. Control endpoints never get faults.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

from aiohttp import web
from graphql import build_schema

from moovago_api.errors import SchemaFileError
from moovago_api.schema import load_schema
from moovago_sandbox.engine import (
    NOT_AUTHORIZED,
    Answer,
    Engine,
    RequestContext,
    graphql_error,
)
from moovago_sandbox.faults import KINDS, Churn, FaultInjector, FaultProfile, inject_partial_error
from moovago_sandbox.model import build_model
from moovago_sandbox.ratelimit import PeakMeter, RollingLimiter
from moovago_sandbox.resolvers import ListModes
from moovago_sandbox.responses import (
    drop,
    json_response,
    json_text_response,
    parse_body,
    request_error,
)
from moovago_sandbox.scalars import format_datetime
from moovago_sandbox.seed import COMPANIES_OTHER_TEAMS, TeamPlan, generate_chunks, id_salt
from moovago_sandbox.servable import unserved
from moovago_sandbox.store import Store
from moovago_sandbox.values import ValueMaker

log = logging.getLogger("moovago_sandbox")

DEFAULT_KEY = "sandbox-key"
DEFAULT_HEADER = "X-API-KEY"
REQUEST_LOG_SIZE = 1000
MUTATION_KINDS = ("create", "update", "delete")
DEFAULT_MAX_BODY = 32 * 1024 * 1024


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
        profile = config.faults
        # The SDL checked by the core's loader, then built once here: resolvers get bound to
        # this schema object, never to the loader's shared one.
        self.schema = build_schema(load_sdl(config.schema_path))
        self.model = build_model(self.schema)
        unserved_plans = unserved(config.schema_path, self.model)
        if unserved_plans:
            msg = (
                f"cannot serve {config.schema_path}: it does not serve "
                f"{', '.join(unserved_plans)} as the connectors read them (moovago-schema plan)"
            )
            raise SchemaFileError(msg, str(config.schema_path))
        self.store = Store(
            self.model.entities,
            config.db,
            id_salt=id_salt(config.seed),
            clock_offset=profile.clock_offset,
        )
        churn_plan = profile.churn_plan
        self.churn = (
            Churn(churn_plan, profile.seed, self.store, ValueMaker(self.schema, profile.seed))
            if churn_plan
            else None
        )
        modes = ListModes(
            max_page_size=profile.max_page_size,
            ignore_limit=profile.ignore_limit,
            default_page_size=profile.default_page_size,
            unstable_order=profile.unstable_order,
            seed=profile.seed,
        )
        self.engine = Engine(
            self.store,
            self.schema,
            model=self.model,
            fast_path=config.fast_path,
            modes=modes,
            before_read=self.churn,
        )
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
        self.too_large = 0
        self.mutation_requests = 0
        self.statuses: dict[str, int] = {}
        self.mutations = {e: dict.fromkeys(MUTATION_KINDS, 0) for e in self.engine.models}
        self.peak = PeakMeter()
        self.team_requests: dict[str, int] = {}
        self.team_peaks: dict[str, PeakMeter] = {}
        self.request_log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)
        self.limiter.reset()
        self.faults.reset()
        self.engine.reader.reset()
        if self.churn is not None:
            self.churn.reset()

    def stats(self) -> dict[str, Any]:
        """Counters since start or reset.

        requests: POSTs to /graphql (429s and faults included); rate_limited: 429s from the
        limit (injected ones are under faults.burst_429); errors: error entries sent in 200s;
        responses: answers by status ("dropped" for dropped connections); mutations: applied
        create/update/delete per entity; peak_requests_per_second: most requests seen in any
        rolling second, overall and per team; churn: rows the churn mode deleted and
        inserted; too_large: bodies refused with 413; mutation_requests: requests whose
        operation is a mutation, applied or not (a read-only client sends none).
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
            "churn": {
                "deleted": self.churn.deleted if self.churn else 0,
                "inserted": self.churn.inserted if self.churn else 0,
            },
            "too_large": self.too_large,
            "mutation_requests": self.mutation_requests,
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
        for chunk, id_counter in generate_chunks(self.config.seed, self.plans, self.model):
            teams += chunk["team"]
            if load:
                self.store.load(chunk, id_counter=id_counter)
        return teams

    def reset(self) -> None:
        self._seed(load=True)
        self.reset_stats()

    # -- HTTP -------------------------------------------------------------------------------

    async def _date_header(self, _request: web.Request, response: web.StreamResponse) -> None:
        """`--no-date-header` drops the Date header; `--clock-offset` moves it."""
        if self.config.faults.no_date_header:
            response.headers.popall("Date", None)
        elif self.config.faults.clock_offset:
            offset = self.config.faults.clock_offset
            response.headers["Date"] = formatdate(time.time() + offset, usegmt=True)

    async def handle_stats(self, _request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def handle_reset(self, _request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"reset": True})

    async def handle_export(self, _request: web.Request) -> web.Response:
        return json_response(self.store.export())

    async def handle_requests(self, _request: web.Request) -> web.Response:
        return json_response(list(self.request_log))

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
            "time": format_datetime(self.store.now()),
            "operationName": None,
            "query": "",
            "variables": None,
            "team": team,
            "status": None,
        }
        self.request_log.append(entry)
        try:
            response = await self._graphql(request, key, team, entry)
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception:  # never a 500: whatever a body does, the answer is a JSON error
            log.exception("POST /graphql failed")
            response = self._answer(
                entry,
                {
                    "data": None,
                    "errors": [
                        graphql_error("The server could not answer", error_type="InternalError")
                    ],
                },
            )
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
        limit = self.config.faults.max_body_bytes
        if limit and (request.content_length or 0) > limit:
            return self._too_large(entry, limit)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._too_large(entry, limit or DEFAULT_MAX_BODY)
        if limit and len(raw) > limit:
            return self._too_large(entry, limit)
        body, problem = parse_body(raw)
        query = body.get("query") if isinstance(body, dict) else None
        variables = body.get("variables") if isinstance(body, dict) else None
        operation_name = body.get("operationName") if isinstance(body, dict) else None
        entry.update(
            operationName=operation_name if isinstance(operation_name, str) else None,
            query=query if isinstance(query, str) else "",
            variables=variables if problem is None else None,
        )

        wait = self.limiter.acquire(key or f"anonymous:{request.remote}")
        if wait is not None:
            self.rate_limited += 1
            return self._too_many(entry, wait)
        fault = self.faults.before_request()
        if fault == "drop_connection":
            entry["status"] = "dropped"
            self.statuses["dropped"] = self.statuses.get("dropped", 0) + 1
            return drop(request)
        if fault == "error_5xx":
            return self._status(entry, self.faults.error_status())
        if fault == "burst_429":
            return self._too_many(entry, 1.0)
        kind = (
            self.engine.operation_type(
                query, operation_name if isinstance(operation_name, str) else None
            )
            if isinstance(query, str)
            else "query"
        )
        if kind == "mutation":
            self.mutation_requests += 1
        delay = self.faults.latency_seconds() + self.faults.kind_latency_seconds(kind)
        if delay:
            await asyncio.sleep(delay)

        if problem is not None:
            return self._answer(entry, request_error(problem))
        if not isinstance(body, dict) or not isinstance(query, str):
            return self._answer(
                entry, request_error("The body must be a JSON object with a 'query' string")
            )
        if variables is not None and not isinstance(variables, dict):
            return self._answer(entry, request_error("'variables' must be a JSON object"))
        if operation_name is not None and not isinstance(operation_name, str):
            return self._answer(entry, request_error("'operationName' must be a string"))
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
            inject_partial_error(self.engine, body, query, operation_name, self.faults.rng)
            answer = Answer(body=body)
        self.errors += answer.error_count
        return self._count(entry, json_text_response(answer.as_text()))

    def _answer(self, entry: dict[str, Any], result: dict[str, Any]) -> web.Response:
        self.errors += len(result.get("errors") or ())
        return self._count(entry, json_response(result))

    def _too_large(self, entry: dict[str, Any], limit: int) -> web.Response:
        self.too_large += 1
        message = f"Request body too large: the limit is {limit} bytes"
        return self._count(
            entry,
            json_response(
                {"data": None, "errors": [graphql_error(message, error_type="PayloadTooLarge")]},
                status=413,
            ),
        )

    def _status(self, entry: dict[str, Any], status: int) -> web.Response:
        return self._count(
            entry, web.Response(status=status, text=f"{status} injected server error\n")
        )

    def _too_many(self, entry: dict[str, Any], wait: float) -> web.Response:
        limit = self.config.rate_limit
        message = f"Too Many Requests: more than {limit} requests per second"
        headers = {"Retry-After": str(max(1, math.ceil(wait)))} if self.config.retry_after else {}
        response = json_response(
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
