"""Injected faults and server modes, seeded so a run can be replayed: what a connector must survive.

Faults (each a probability per eligible request):
  error_5xx         answer 500/502/503/504 without touching the store
  burst_429         answer 429 although the key is under the rate limit
  drop_connection   close the socket without answering
  latency           wait `latency_ms` before answering
  partial_error     a query answers data plus an error for one row's field
  commit_then_fail  a mutation is applied, then the answer is a 502 (the duplicate maker)
error_5xx, burst_429 and drop_connection exclude each other (one draw decides), so each
happens at its own configured rate; their sum must not exceed 1.

Server modes (how a real server may differ from the sandbox's defaults; each a CLI flag too):
  max_page_size N, ignore_limit, default_page_size N, unstable_order   (how lists are paged)
  churn "N:D:I"        before every Nth request reading an entity's list in a team, delete D
                       and insert I random rows of it there (seeded, deterministic); a
                       request reading the list twice (aliases) sees one state of it
  latency_read MS, latency_mutation MS, latency_jitter SIGMA   latency per operation kind,
                       lognormal around MS (SIGMA 0 = fixed)
  no_date_header, clock_offset SECONDS, max_body_bytes N (413 above)
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from graphql import FieldNode, GraphQLObjectType, get_named_type, is_non_null_type

KINDS = (
    "error_5xx",
    "burst_429",
    "drop_connection",
    "latency",
    "partial_error",
    "commit_then_fail",
)
RATES = (*KINDS,)
BOOLEANS = ("ignore_limit", "unstable_order", "no_date_header")
INTEGERS = ("seed", "default_page_size", "max_page_size", "max_body_bytes")
FLOATS = ("latency_ms", "latency_read", "latency_mutation", "latency_jitter", "clock_offset")


class FaultProfileError(ValueError):
    """The fault profile is malformed; the message names the key."""


def parse_churn(text: str) -> tuple[int, int, int]:
    """`N:D:I` -> (every, delete, insert); N >= 1, D and I >= 0."""
    parts = str(text).split(":")
    try:
        every, delete, insert = (int(p) for p in parts)
    except ValueError as exc:
        raise FaultProfileError(f"churn: expected N:D:I (three integers), got {text!r}") from exc
    if every < 1 or delete < 0 or insert < 0:
        raise FaultProfileError(f"churn: N must be >= 1, D and I >= 0, got {text!r}")
    return every, delete, insert


@dataclass(frozen=True)
class FaultProfile:
    error_5xx: float = 0.0
    burst_429: float = 0.0
    drop_connection: float = 0.0
    latency: float = 0.0
    latency_ms: float = 0.0
    partial_error: float = 0.0
    commit_then_fail: float = 0.0
    seed: int = 0
    max_page_size: int | None = None
    ignore_limit: bool = False
    default_page_size: int = 50
    unstable_order: bool = False
    churn: str | None = None
    no_date_header: bool = False
    clock_offset: float = 0.0
    latency_read: float = 0.0
    latency_mutation: float = 0.0
    latency_jitter: float = 0.0
    max_body_bytes: int | None = None

    def __post_init__(self) -> None:
        for name in RATES:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise FaultProfileError(f"fault profile: {name} must be a rate in [0, 1]")
        for name in ("seed", "latency_ms", "latency_read", "latency_mutation", "latency_jitter"):
            if getattr(self, name) < 0:
                raise FaultProfileError(f"fault profile: {name} must be >= 0")
        for name in ("max_page_size", "max_body_bytes", "default_page_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise FaultProfileError(f"fault profile: {name} must be >= 1")
        if self.error_5xx + self.burst_429 + self.drop_connection > 1.0:
            raise FaultProfileError(
                "fault profile: error_5xx + burst_429 + drop_connection must not exceed 1"
            )
        if self.churn is not None:
            parse_churn(self.churn)

    @property
    def churn_plan(self) -> tuple[int, int, int] | None:
        return parse_churn(self.churn) if self.churn is not None else None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> FaultProfile:
        """From a dict; `latency` may also be `{"probability": p, "ms": n}` and `churn`
        `{"every": N, "delete": D, "insert": I}`."""
        values = dict(data)
        latency = values.get("latency")
        if isinstance(latency, Mapping):
            values["latency"] = latency.get("probability", 0.0)
            values["latency_ms"] = latency.get("ms", 0.0)
        churn = values.get("churn")
        if isinstance(churn, Mapping):
            values["churn"] = (
                f"{churn.get('every')}:{churn.get('delete', 0)}:{churn.get('insert', 0)}"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise FaultProfileError(
                f"fault profile: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})"
            )
        return cls(**{k: _convert(k, v) for k, v in values.items()})

    @classmethod
    def load(cls, source: str | Path | Mapping[str, Any] | None) -> FaultProfile:
        """From a dict, a JSON file path, or inline JSON text."""
        if source is None:
            return cls()
        if isinstance(source, Mapping):
            return cls.from_mapping(source)
        text = str(source)
        if not text.lstrip().startswith("{"):
            try:
                text = Path(text).read_text(encoding="utf-8")
            except OSError as exc:
                raise FaultProfileError(f"fault profile {source}: cannot read ({exc})") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FaultProfileError(f"fault profile {source}: not JSON ({exc})") from exc
        if not isinstance(data, Mapping):
            raise FaultProfileError(f"fault profile {source}: must be a JSON object")
        return cls.from_mapping(data)

    def merged(self, **overrides: Any) -> FaultProfile:
        values = asdict(self)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return FaultProfile.from_mapping(values)


def _convert(key: str, value: Any) -> Any:
    try:
        if value is None:
            return None
        if key in BOOLEANS:
            if not isinstance(value, bool):
                raise TypeError("expected true or false")
            return value
        if key == "churn":
            return str(value)
        if key in INTEGERS:
            if isinstance(value, bool) or float(value) != int(value):
                raise TypeError("expected an integer")
            return int(value)
        if isinstance(value, bool):
            raise TypeError("expected a number")
        return float(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise FaultProfileError(f"fault profile: {key} has a bad value {value!r} ({exc})") from exc


class FaultInjector:
    """Draws faults from a seeded RNG and counts what it injected."""

    def __init__(self, profile: FaultProfile) -> None:
        self.profile = profile
        self.reset()

    def reset(self) -> None:
        self.rng = random.Random(self.profile.seed)  # noqa: S311 (replayable test faults, not secrets)
        self.latency_rng = random.Random(self.profile.seed + 1)  # noqa: S311
        self.counts: Counter[str] = Counter(dict.fromkeys(KINDS, 0))

    def _hit(self, kind: str, rate: float) -> bool:
        if rate <= 0.0:
            return False
        if self.rng.random() < rate:
            self.counts[kind] += 1
            return True
        return False

    def before_request(self) -> str | None:
        """'error_5xx', 'burst_429', 'drop_connection' or None (one draw for the three)."""
        p = self.profile
        if p.error_5xx + p.burst_429 + p.drop_connection <= 0.0:
            return None
        u = self.rng.random()
        for kind, rate in (
            ("error_5xx", p.error_5xx),
            ("burst_429", p.burst_429),
            ("drop_connection", p.drop_connection),
        ):
            if u < rate:
                self.counts[kind] += 1
                return kind
            u -= rate
        return None

    def error_status(self) -> int:
        return self.rng.choice((500, 502, 503, 504))

    def latency_seconds(self) -> float:
        return (
            self.profile.latency_ms / 1000.0 if self._hit("latency", self.profile.latency) else 0.0
        )

    def kind_latency_seconds(self, operation: str) -> float:
        """The latency of one query or mutation: lognormal around its median (jitter 0 =
        exactly the median)."""
        p = self.profile
        median = p.latency_mutation if operation == "mutation" else p.latency_read
        if median <= 0:
            return 0.0
        spread = self.latency_rng.lognormvariate(0.0, p.latency_jitter) if p.latency_jitter else 1.0
        return median * spread / 1000.0

    def partial_error(self) -> bool:
        return self._hit("partial_error", self.profile.partial_error)

    def commit_then_fail(self) -> bool:
        return self._hit("commit_then_fail", self.profile.commit_then_fail)


def inject_partial_error(
    engine: Any,
    body: dict[str, Any],
    query: str,
    operation_name: str | None,
    rng: random.Random,
) -> bool:
    """Turn an answer into a partial one: one nullable value of one row becomes null with an
    error beside it (the whole root field when no nullable value is selected)."""
    from moovago_sandbox.engine import graphql_error

    data = body.get("data")
    op = engine.prepare(query).operation(operation_name)
    query_type = engine.schema.query_type
    if not data or op is None or query_type is None:
        return False
    for sel in op.selection_set.selections:
        if not isinstance(sel, FieldNode) or sel.name.value not in query_type.fields:
            continue
        key = (sel.alias or sel.name).value
        rows = data.get(key)
        row_type = get_named_type(query_type.fields[sel.name.value].type)
        if not isinstance(rows, list) or not rows or not isinstance(row_type, GraphQLObjectType):
            continue
        candidates = [
            s
            for s in (sel.selection_set.selections if sel.selection_set else ())
            if isinstance(s, FieldNode)
            and s.name.value in row_type.fields
            and not is_non_null_type(row_type.fields[s.name.value].type)
        ]
        index = rng.randrange(len(rows))
        if candidates:
            node = rng.choice(candidates)
            field_key = (node.alias or node.name).value
            path: list[Any] = [key, index, field_key]
            rows[index][field_key] = None
        else:
            node, path = sel, [key]
            body["data"] = None
        loc = node.loc.source.get_location(node.loc.start) if node.loc else None
        where = "/" + "/".join(f"{p}" if isinstance(p, str) else f"[{p}]" for p in path)
        body.setdefault("errors", []).append(
            graphql_error(
                f"Exception while fetching data ({where.replace('/[', '[')}) : "
                "Internal server error",
                error_type="DataFetchingException",
                path=path,
                locations=[{"line": loc.line, "column": loc.column}] if loc else [],
            )
        )
        return True
    return False


class Churn:
    """`churn N:D:I`: before every Nth request reading an entity's list in a team, delete D
    random rows of it and insert I new ones (valid for the file, referencing rows of the same
    team)."""

    def __init__(self, plan: tuple[int, int, int], seed: int, store: Any, maker: Any) -> None:
        self.every, self.delete, self.insert = plan
        self.seed = seed
        self.store = store
        self.maker = maker
        self.reset()

    def reset(self) -> None:
        self.rng = random.Random(self.seed + 2)  # noqa: S311 (replayable test faults)
        self.reads: Counter[tuple[str, str]] = Counter()
        self.deleted = 0
        self.inserted = 0

    def __call__(self, ctx: Any, entity: str) -> None:
        self.reads[(ctx.team_id, entity)] += 1
        if self.reads[(ctx.team_id, entity)] % self.every:
            return
        from moovago_sandbox.store import StoreError

        ids = self.store.ids_of(entity, ctx.team_id)
        for record_id in self.rng.sample(ids, k=min(self.delete, len(ids))):
            try:
                self.store.delete(entity, ctx.team_id, record_id)
                self.deleted += 1
            except StoreError:
                continue  # gone with a row deleted before it
        for _ in range(self.insert):
            for _attempt in range(5):  # generated values may break a rule (end before start)
                values = self._values(entity, ctx.team_id)
                if values is None:
                    break
                try:
                    self.store.create(entity, ctx.team_id, values, owner_id=ctx.owner_id)
                except StoreError:
                    continue
                self.inserted += 1
                break

    def _values(self, entity: str, team_id: str) -> dict[str, Any] | None:
        model = self.store.models[entity]
        obj = model.object_type
        values: dict[str, Any] = {}
        for fname in model.stored_fields:
            if fname in ("id", "teamId", "createdAt", "updatedAt", model.cursor_field):
                continue
            target = model.references.get(fname)
            if target is not None:
                pool = self.store.ids_of(target, team_id)
                if fname in model.list_fields:
                    values[fname] = self.rng.sample(pool, k=min(2, len(pool)))
                elif pool:
                    values[fname] = self.rng.choice(pool)
                elif fname in model.non_null:
                    return None
                continue
            values[fname] = self.maker.value(obj.fields[fname].type, fname)
        return values
