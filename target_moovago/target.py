"""target-moovago: settings and wiring. The work happens in sinks.py (I/O) and plan.py (pure)."""

from __future__ import annotations

import datetime as dt
import time
import typing as t
from collections.abc import Callable

import click
from singer_sdk import Target
from singer_sdk import typing as th

from moovago_api.errors import ConfigError, MoovagoError
from moovago_api.settings import connection_properties
from target_moovago.plan import Mode
from target_moovago.sinks import BUSINESS_HOURS_POLICIES, MoovagoSink, RunContext

if t.TYPE_CHECKING:
    from pathlib import PurePath

    from singer_sdk.sinks import Sink

MAX_MUTATIONS_PER_REQUEST = 100

_TARGET_SETTINGS = th.PropertiesList(
    th.Property(
        "match_keys",
        th.ObjectType(additional_properties=th.ArrayType(th.StringType)),
        title="Match keys",
        description=(
            "Per stream, the fields that identify a remote record when a row has no `id`, "
            'e.g. {"company": ["customerCode"]}. A field written `name?` may be null. Defaults: '
            "company customerCode; contact companyId+email; mandator code, else name; "
            "turnover companyId+mandatorId?+startDate+endDate."
        ),
    ),
    th.Property(
        "stream_modes",
        th.ObjectType(
            additional_properties=th.StringType(allowed_values=[m.value for m in Mode]),
        ),
        title="Stream modes",
        description=(
            "Per stream: `upsert` (default: create or update), `create_only` (rows that "
            "exist are rejected) or `update_only` (rows that do not exist are rejected), e.g. "
            '{"contact": "update_only"}.'
        ),
    ),
    th.Property(
        "hard_delete",
        th.BooleanType,
        default=False,
        title="Hard delete",
        description="Delete the remote record of rows whose `_sdc_deleted_at` is set. When "
        "false such rows are skipped and counted.",
    ),
    th.Property(
        "mutations_per_request",
        th.IntegerType(minimum=1, maximum=MAX_MUTATIONS_PER_REQUEST),
        default=25,
        title="Mutations per request",
        description="Aliased mutations sent in one HTTP request (1 to 100).",
    ),
    th.Property(
        "bulk_threshold",
        th.IntegerType(minimum=0),
        default=500,
        title="Bulk threshold",
        description="A run writing more rows than this to a non-loopback API URL is a bulk job "
        "and follows `business_hours` during Monday-Friday 08:00-18:30 Europe/Paris.",
    ),
    th.Property(
        "business_hours",
        th.StringType(allowed_values=list(BUSINESS_HOURS_POLICIES)),
        default="refuse",
        title="Business hours policy",
        description="What a bulk job does in French business hours: `refuse` (stop before "
        "writing, saying when the window opens), `wait` (sleep until it opens) or `ignore`.",
    ),
    th.Property(
        "rejects_path",
        th.StringType,
        default="moovago-rejects.jsonl",
        title="Rejects file",
        description="JSONL file the rows that could not be written are appended to (stream, "
        "row key, reason, field, row, time).",
    ),
    th.Property(
        "max_rejects",
        th.IntegerType(minimum=0),
        title="Max rejects",
        description="Fail the run once more rows than this are rejected (no limit when unset).",
    ),
    th.Property(
        "summary_path",
        th.StringType,
        title="Summary file",
        description="Where to write the run summary as JSON (it is always logged as a table).",
    ),
    th.Property(
        "dry_run",
        th.BooleanType,
        default=False,
        title="Dry run",
        description="Read and plan only: log the counts and a few sample payloads, write nothing.",
    ),
).to_dict()


def _config_schema() -> dict[str, t.Any]:
    schema = dict(_TARGET_SETTINGS)
    schema["properties"] = {**connection_properties(default_rate=1), **schema["properties"]}
    schema["required"] = ["api_url", "api_key"]
    return schema


class TargetMoovago(Target):
    """Upserts warehouse rows into Moovago through its GraphQL mutations."""

    name = "target-moovago"
    package_name = "moovago-connectors"
    config_jsonschema = _config_schema()
    default_sink_class = MoovagoSink

    def __init__(
        self,
        *,
        config: dict | PurePath | str | list[PurePath | str] | None = None,
        parse_env_config: bool = False,
        validate_config: bool = True,
        setup_mapper: bool = True,
        clock: Callable[[], dt.datetime] | None = None,
        sleep: Callable[[float], None] | None = None,
        production: bool | None = None,
        **kwargs: t.Any,
    ) -> None:
        """`clock` (aware datetime), `sleep` and `production` (default: the API URL is not
        loopback) are injectable so the business-hours rule is tested without a remote host."""
        super().__init__(
            config=config,
            parse_env_config=parse_env_config,
            validate_config=validate_config,
            setup_mapper=setup_mapper,
            **kwargs,
        )
        self._check_settings()
        self.run = RunContext(
            self,
            clock=clock or (lambda: dt.datetime.now(dt.timezone.utc)),
            sleep=sleep or time.sleep,
            production=production,
        )

    @classmethod
    def invoke(cls, **kwargs: t.Any) -> None:
        """Run from the command line: an error of ours (refused stream, configuration,
        authentication, business hours) ends the run with one line on stderr and exit code 1."""
        try:
            super().invoke(**kwargs)
        except MoovagoError as exc:
            click.echo(f"{cls.name}: error: {exc}", err=True)
            raise click.exceptions.Exit(1) from None

    def _check_settings(self) -> None:
        modes = self.config.get("stream_modes") or {}
        for stream, mode in modes.items():
            if mode not in {m.value for m in Mode}:
                msg = (
                    f"stream_modes: {stream!r} has mode {mode!r}; "
                    "use upsert, create_only or update_only"
                )
                raise ConfigError(msg)
        for stream, keys in (self.config.get("match_keys") or {}).items():
            if not keys:
                msg = f"match_keys: {stream!r} needs at least one field"
                raise ConfigError(msg)
        per_request = self.config.get("mutations_per_request", 25)
        if not 1 <= int(per_request) <= MAX_MUTATIONS_PER_REQUEST:
            msg = f"mutations_per_request must be 1 to 100, got {per_request}"
            raise ConfigError(msg)

    def get_sink_class(self, stream_name: str) -> type[Sink]:
        """Refuse read-only and unknown streams before any row is read."""
        self.run.entity_for(stream_name)
        return MoovagoSink

    def _write_state_message(self, state: dict) -> None:
        """STATE waits while rows are held by the bulk rule: they are not written yet."""
        if any(sink.has_held for sink in self.run.sinks):
            return
        super()._write_state_message(state)

    def process_endofpipe(self) -> None:
        """Drain every sink, then log and write the summary (a failing drain writes its own)."""
        self.run.preflight(self.run.sinks)
        super().process_endofpipe()
        self.run.finish(failed=False)
        self.run.close()
