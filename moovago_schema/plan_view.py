"""`moovago-schema plan`: every stream's plan, and every root field that is not a stream."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any, TextIO

from moovago_api.errors import ConfigError
from moovago_api.plan import SETTING, StreamPlan
from moovago_api.schema import MoovagoSchema, load_schema

__all__ = ["add_plan_command", "plan_dict"]


def add_plan_command(commands: Any, bundled: str) -> None:
    plan = commands.add_parser(
        "plan",
        help="how each stream is read and written (its plan), with the setting "
        f"{SETTING} of --config applied; and each root field that is not a stream, with why",
    )
    plan.add_argument(
        "--schema", metavar="FILE", help=f"schema file (default: the config's, or '{bundled}')"
    )
    plan.add_argument("--config", metavar="CONFIG.json", help="tap or target config file")
    plan.add_argument("--format", choices=("table", "json"), default="table")
    plan.set_defaults(command=_plan, bundled=bundled)


def _plan(args: argparse.Namespace, out: TextIO) -> int:
    config: dict[str, Any] = {}
    if args.config:
        try:
            config = json.loads(Path(args.config).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(f"Cannot read config file {args.config}: {err}") from None
        if not isinstance(config, dict):
            raise ConfigError(f"Config file {args.config} is not a JSON object")
    name = args.schema or config.get("schema_path")
    schema: MoovagoSchema = load_schema(None if name in (None, args.bundled) else name)
    schema = schema.with_plans(config.get(SETTING))
    plans = schema.entities()
    if args.format == "json":
        payload = {
            "schema": str(schema.path),
            "streams": [plan_dict(p) for p in plans],
            "not_streams": [dataclasses.asdict(s) for s in schema.skipped_fields()],
        }
        out.write(json.dumps(payload, indent=2, default=str) + "\n")
        return 0
    out.write(f"{len(plans)} streams in {schema.path}\n\n")
    for plan in plans:
        out.write(f"{plan.stream_name}: {plan.summary()}\n")
    skipped = schema.skipped_fields()
    if skipped:
        out.write("\nroot fields that are not streams\n")
        for item in skipped:
            out.write(f"{item.coordinate}: {item.reason}\n")
    return 0


def plan_dict(plan: StreamPlan) -> dict[str, Any]:
    """The plan as JSON-ready data: every read part, and each write with its mutation."""
    data = dataclasses.asdict(dataclasses.replace(plan, writes=None))
    data.pop("writes")
    writes = plan.writes
    data["writes"] = {
        kind: {
            **dataclasses.asdict(shape),
            "mutation": shape.coordinate,
            "fields": len(shape.fields),
        }
        for kind, shape in (writes.shapes.items() if writes else ())
    }
    data["writes_refused"] = dict(writes.refused) if writes else {}
    return data
