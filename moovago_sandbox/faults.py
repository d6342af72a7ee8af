"""Injected faults, seeded so a run can be replayed: the failures a connector must survive.

Kinds (each a probability per eligible request):
  error_5xx         answer 500/502/503/504 without touching the store
  burst_429         answer 429 although the key is under the rate limit
  drop_connection   close the socket without answering
  latency           wait `latency_ms` before answering
  partial_error     a query answers data plus an error for one row's field
  commit_then_fail  a mutation is applied, then the answer is a 502 (the duplicate maker)
error_5xx, burst_429 and drop_connection exclude each other (one draw decides), so each
happens at its own configured rate; their sum must not exceed 1.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

KINDS = (
    "error_5xx",
    "burst_429",
    "drop_connection",
    "latency",
    "partial_error",
    "commit_then_fail",
)


class FaultProfileError(ValueError):
    """The fault profile is malformed; the message names the key."""


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

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("seed", "latency_ms"):
                if value < 0:
                    raise FaultProfileError(f"fault profile: {f.name} must be >= 0")
            elif not 0.0 <= value <= 1.0:
                raise FaultProfileError(f"fault profile: {f.name} must be a rate in [0, 1]")
        if self.error_5xx + self.burst_429 + self.drop_connection > 1.0:
            raise FaultProfileError(
                "fault profile: error_5xx + burst_429 + drop_connection must not exceed 1"
            )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> FaultProfile:
        """From a dict; `latency` may also be `{"probability": p, "ms": n}`."""
        values = dict(data)
        latency = values.get("latency")
        if isinstance(latency, Mapping):
            values["latency"] = latency.get("probability", 0.0)
            values["latency_ms"] = latency.get("ms", 0.0)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise FaultProfileError(
                f"fault profile: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})"
            )
        try:
            kwargs = {k: int(v) if k == "seed" else float(v) for k, v in values.items()}
        except (TypeError, ValueError) as exc:
            raise FaultProfileError(f"fault profile: every value must be a number ({exc})") from exc
        return cls(**kwargs)  # type: ignore[arg-type]

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

    def merged(self, **overrides: float | None) -> FaultProfile:
        values = asdict(self)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return FaultProfile.from_mapping(values)


class FaultInjector:
    """Draws faults from a seeded RNG and counts what it injected."""

    def __init__(self, profile: FaultProfile) -> None:
        self.profile = profile
        self.reset()

    def reset(self) -> None:
        self.rng = random.Random(self.profile.seed)  # noqa: S311 (replayable test faults, not secrets)
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

    def partial_error(self) -> bool:
        return self._hit("partial_error", self.profile.partial_error)

    def commit_then_fail(self) -> bool:
        return self._hit("commit_then_fail", self.profile.commit_then_fail)
