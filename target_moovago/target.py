"""target-moovago: settings and wiring. The work happens in sinks.py (I/O) and plan.py (pure)."""

from __future__ import annotations

import copy
import datetime as dt
import threading
import time
import typing as t
from collections import deque
from collections.abc import Callable

import click
from singer_sdk import Target
from singer_sdk import typing as th

from moovago_api.errors import ConfigError, MoovagoError
from moovago_api.settings import connection_properties
from target_moovago.plan import Mode
from target_moovago.reader import MoovagoReader
from target_moovago.sinks import BUSINESS_HOURS_POLICIES, MoovagoSink, RunContext, TargetStopped

if t.TYPE_CHECKING:
    from pathlib import PurePath
    from types import FrameType

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
    message_reader_class = MoovagoReader

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
        # STATE messages received and not emitted yet, each with the rows every sink had
        # received before it: it is emitted once all those rows are settled.
        self._states: deque[tuple[dict, dict[MoovagoSink, int]]] = deque()
        self._emitted_state: dict | None = None
        self._state_lock = threading.Lock()
        self._draining_all = 0

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

    def _process_state_message(self, message_dict: dict) -> None:
        super()._process_state_message(message_dict)
        state = self._latest_state
        with self._state_lock:
            if state is not None and not (self._states and self._states[-1][0] == state):
                marks = {sink: sink.rows_received for sink in self.run.sinks}
                if self._states and self._states[-1][1] == marks:
                    self._states.pop()  # no row between them: the newer one is as safe
                self._states.append((state, marks))
        self.emit_settled_state()

    def _write_state_message(self, state: dict) -> None:
        """The SDK calls this after draining every sink: emit what is settled, not `state`."""
        self.emit_settled_state()

    def _drain_all(self, sink_list: t.Iterable[Sink], parallelism: int) -> None:
        # Inside drain_all, one STATE follows the last sink (drain_all writes it), not each.
        self._draining_all += 1
        try:
            super()._drain_all(sink_list, parallelism)
        finally:
            self._draining_all -= 1

    def emit_settled_state(self, *, drained_one: bool = False) -> None:
        """Emit the newest STATE received after rows that are all written, rejected or
        counted (never one newer than an unconfirmed row); none while the bulk rule holds
        rows. Called after each drain, so a long run can resume from where it was."""
        if drained_one and self._draining_all:
            return
        with self.run.hold_lock, self._state_lock:
            if any(sink.has_held for sink in self.run.sinks):
                return
            settled = None
            while self._states and all(
                sink.rows_settled >= count for sink, count in self._states[0][1].items()
            ):
                settled = self._states.popleft()[0]
            if settled is None or settled == self._emitted_state:
                return
            self._emitted_state = settled
            super()._write_state_message(copy.deepcopy(settled))

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: finish the requests in flight, record them, emit the settled STATE
        and exit non-zero. Overridden because the SDK's handler drains every sink again from
        inside the interrupted drain (a hang on its lock) and then exits 0."""
        self.logger.warning("Received signal %d: stopping after the requests in flight", signum)
        self.run.stop_signal = signum
        reader = self.message_reader
        reading = isinstance(reader, MoovagoReader) and reader.reading
        if self.run.drains or not reading:
            self.run.stop_after_request = True
        if isinstance(reader, MoovagoReader):
            reader.interrupt()  # between batches: the rows read so far are written

    def process_endofpipe(self) -> None:
        """Drain every sink, then log and write the summary (a failing drain writes its own).
        After a termination signal the run still fails, once what it read is written."""
        self.run.preflight(self.run.sinks)
        super().process_endofpipe()
        stopped = self.run.stop_signal
        self.run.finish(failed=stopped is not None)
        self.run.close()
        if stopped is not None:
            raise TargetStopped(stopped)
