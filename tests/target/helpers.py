"""Helpers: run target-moovago in-process on Singer messages against a sandbox."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from target_moovago.target import TargetMoovago

DATA = Path(__file__).parent / "data"


def schema_message(
    stream: str, columns: Iterable[str], key_properties: list[str] | None = None
) -> dict[str, Any]:
    """A SCHEMA whose columns accept any JSON value (the API's input types validate rows)."""
    return {
        "type": "SCHEMA",
        "stream": stream,
        "schema": {"type": "object", "properties": {c: {} for c in columns}},
        "key_properties": key_properties or [],
    }


def record_messages(stream: str, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "RECORD", "stream": stream, "record": dict(r)} for r in rows]


def stream_messages(
    stream: str, rows: list[Mapping[str, Any]], columns: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    cols = list(columns) if columns is not None else list(dict.fromkeys(c for r in rows for c in r))
    return [schema_message(stream, cols), *record_messages(stream, rows)]


@dataclass
class Result:
    stdout: list[str]
    summary: dict[str, Any]
    rejects: list[dict[str, Any]]
    error: BaseException | None = None
    target: TargetMoovago | None = None
    states: list[dict[str, Any]] = field(default_factory=list)

    def counts(self, stream: str) -> dict[str, Any]:
        return self.summary["streams"].get(stream, {})


class Runner:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.runs = 0

    def config(self, handle: Any, **overrides: Any) -> dict[str, Any]:
        self.runs += 1
        base = {
            "api_url": handle.url,
            "api_key": handle.api_key,
            "max_requests_per_second": 5,
            "rejects_path": str(self.tmp_path / f"rejects-{self.runs}.jsonl"),
            "summary_path": str(self.tmp_path / f"summary-{self.runs}.json"),
        }
        base.update(overrides)
        return base

    def __call__(
        self,
        handle: Any,
        messages: Iterable[Mapping[str, Any]] | str,
        *,
        raises: bool = True,
        target_kwargs: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> Result:
        config = self.config(handle, **overrides)
        text = (
            messages
            if isinstance(messages, str)
            else "".join(json.dumps(m) + "\n" for m in messages)
        )
        out = io.StringIO()
        error: BaseException | None = None
        target = None
        with contextlib.redirect_stdout(out):
            try:
                target = TargetMoovago(config=config, **(target_kwargs or {}))
                target.listen(io.StringIO(text))
            except Exception as exc:
                if raises:
                    raise
                error = exc
        summary_path = Path(config["summary_path"])
        rejects_path = Path(config["rejects_path"])
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        rejects = (
            [json.loads(line) for line in rejects_path.read_text().splitlines()]
            if rejects_path.exists()
            else []
        )
        lines = out.getvalue().splitlines()
        states = [json.loads(line) for line in lines if line.strip()]
        return Result(lines, summary, rejects, error, target, states)


def entity_rows(handle: Any, entity: str) -> list[dict[str, Any]]:
    """The sandbox's rows of `entity` for the handle's team."""
    return [r for r in handle.export()[entity] if r.get("teamId") == handle.team_id]


def mutations(handle: Any) -> dict[str, int]:
    """Mutations the sandbox applied, by kind, over all entities: {create, update, delete}."""
    totals: dict[str, int] = {}
    for kinds in handle.stats()["mutations"].values():
        for kind, count in kinds.items():
            totals[kind] = totals.get(kind, 0) + int(count)
    return totals


def mutation_count(handle: Any) -> int:
    return sum(mutations(handle).values())
