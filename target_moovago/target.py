"""target-moovago: settings, STATE bookkeeping and the order of drains. The row's path is in
sinks.py (wiring), plan.py (pure), runlock.py (the business-hours gate) and writer.py (I/O)."""

from __future__ import annotations

import copy
import datetime as dt
import time
import typing as t
from collections import deque
from collections.abc import Callable, Iterable, Sequence

import click
from singer_sdk import Target
from singer_sdk import typing as th

from moovago_api.errors import MoovagoError
from moovago_api.plan import SETTING as PLANS_SETTING
from moovago_api.plan import SETTING_PROPERTY as PLANS_PROPERTY
from moovago_api.settings import connection_properties, numbers_from_text
from target_moovago.ledger import TargetStopped
from target_moovago.plan import PROPERTIES as INTEGRITY_PROPERTIES
from target_moovago.plan import Mode
from target_moovago.reader import PROTOCOLS_SETTING, MoovagoReader
from target_moovago.run import PROPERTIES as CHANGES_PROPERTIES
from target_moovago.run import READ_ONLY_STREAMS, Run
from target_moovago.runlock import POLICIES
from target_moovago.sinks import MoovagoSink

if t.TYPE_CHECKING:
    from pathlib import PurePath
    from types import FrameType

    from singer_sdk.sinks import Sink

    from target_moovago.ledger import Tally

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
    *CHANGES_PROPERTIES,
    *INTEGRITY_PROPERTIES,
    READ_ONLY_STREAMS,
    th.Property(
        "hard_delete",
        th.BooleanType,
        default=False,
        title="Hard delete",
        description="Delete the remote record of rows whose `_sdc_deleted_at` holds a "
        "timestamp. When false such rows are skipped and counted. A value that is not a "
        "timestamp (`NULL`, `false`) rejects the row.",
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
        th.StringType(allowed_values=list(POLICIES)),
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
        PROTOCOLS_SETTING,
        th.ArrayType(th.StringType),
        title="BATCH protocols",
        description="fsspec protocols a BATCH manifest may name besides local files (e.g. "
        '["s3"]). Empty (default): only `file://` URLs and plain paths of regular files, '
        "never /proc, /sys or device files.",
    ),
    th.Property(
        "dry_run",
        th.BooleanType,
        default=False,
        title="Dry run",
        description="Read and plan only: log the counts and a few sample payloads, write nothing.",
    ),
    th.Property(
        "team_id",
        th.StringType,
        title="Team id",
        description="The API key's team, needed only when the schema file reads the team "
        "by id (`team(id: ID!)`); otherwise the team query tells it.",
    ),
).to_dict()


def _config_schema() -> dict[str, t.Any]:
    """Every rule JSON Schema can state is stated here, so the SDK checks it once at start;
    what it cannot (the match keys against the schema file) is checked when a stream opens."""
    schema = copy.deepcopy(_TARGET_SETTINGS)
    keys = schema["properties"]["match_keys"]["additionalProperties"]
    keys["minItems"] = 1
    keys["items"]["minLength"] = 1
    schema["properties"] = {**connection_properties(default_rate=1), **schema["properties"]}
    schema["properties"][PLANS_SETTING] = PLANS_PROPERTY
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
        monotonic: Callable[[], float] | None = None,
        **kwargs: t.Any,
    ) -> None:
        """`clock` (aware datetime), `sleep` and `production` (default: the API URL is not
        loopback) are injectable so the business-hours rule is tested without a remote host;
        `monotonic` times the progress lines."""
        super().__init__(
            config=config,
            parse_env_config=parse_env_config,
            validate_config=validate_config,
            setup_mapper=setup_mapper,
            **kwargs,
        )
        # One drain thread (as target-postgres): every request waits for the one governor.
        self.max_parallelism = 1
        self.run = Run(
            self.config,
            self.logger,
            clock=clock or (lambda: dt.datetime.now(dt.timezone.utc)),
            sleep=sleep or time.sleep,
            production=production,
            monotonic=monotonic or time.monotonic,
            drain_streams=self._drain_streams,
            emit_state=self.emit_settled_state,
        )
        if isinstance(self.message_reader, MoovagoReader):  # broken input: let the lock go
            self.message_reader.on_failure = self.run.remote.release_lock
            protocols = self.config.get(PROTOCOLS_SETTING) or ()
            self.message_reader.protocols = frozenset(str(p).lower() for p in protocols)
        # STATE messages received and not emitted yet, each with the rows every sink had
        # received before it: it is emitted once all those rows are settled.
        self._states: deque[tuple[dict, dict[Tally, int]]] = deque()
        self._emitted_state: dict | None = None

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        # The SDK keeps the config only in _config: a number given as text is typed before the check
        numbers_from_text(self._config, self.config_jsonschema["properties"])
        return super()._validate_config(raise_errors=raise_errors)

    @classmethod
    def invoke(cls, **kwargs: t.Any) -> None:
        """Run from the command line: an error of ours (refused stream, configuration,
        authentication, business hours) ends the run with one line on stderr and exit code 1."""
        try:
            super().invoke(**kwargs)
        except MoovagoError as exc:
            click.echo(f"{cls.name}: error: {exc}", err=True)
            raise click.exceptions.Exit(1) from None

    def get_sink_class(self, stream_name: str) -> type[Sink]:
        """Refuse read-only and unknown streams before any row is read."""
        self.run.remote.entity_for(stream_name)
        return MoovagoSink

    # the order of drains: parents first -------------------------------------------------------

    def _drain_streams(self, names: Sequence[str]) -> None:
        """Drain the pending rows of these streams (a child's parents, before its batch)."""
        for name in names:
            if self.sink_exists(name):
                self.drain_one(self.get_sink(name))

    def _drain_all(self, sink_list: Iterable[Sink], parallelism: int) -> None:
        """Drain parent streams before the streams that name them (one thread)."""
        del parallelism  # always 1
        sinks = list(sink_list)
        sinks.sort(key=lambda s: bool(isinstance(s, MoovagoSink) and s.parent_streams))
        for sink in sinks:
            self.drain_one(sink)

    # STATE ------------------------------------------------------------------------------------

    def _process_state_message(self, message_dict: dict) -> None:
        super()._process_state_message(message_dict)
        state = self._latest_state
        if state is not None and not (self._states and self._states[-1][0] == state):
            marks = self.run.marks()
            if self._states and self._states[-1][1] == marks:
                self._states.pop()  # no row between them: the newer one is as safe
            self._states.append((state, marks))
        self.emit_settled_state()

    def _process_schema_message(self, message_dict: dict) -> None:
        if not self.run.skips(message_dict["stream"]):  # read-only: skipped whole
            super()._process_schema_message(message_dict)

    def _process_activate_version_message(self, message_dict: dict) -> None:
        if not self.run.skips(message_dict["stream"]):
            super()._process_activate_version_message(message_dict)

    def _process_batch_message(self, message_dict: dict) -> None:
        if not self.run.skips(message_dict["stream"]):
            super()._process_batch_message(message_dict)

    def _process_record_message(self, message_dict: dict) -> None:
        if not self.run.skips(message_dict["stream"], rows=1):  # read-only: skipped whole
            super()._process_record_message(message_dict)
        if self._states:
            self.emit_settled_state()  # a full batch may have been drained

    def _write_state_message(self, state: dict) -> None:
        """The SDK calls this after draining every sink: emit what is settled, not `state`."""
        self.emit_settled_state()

    def emit_settled_state(self) -> None:
        """Emit the newest STATE received after rows that are all written, rejected or
        counted (never one newer than an unconfirmed row); none while the bulk rule holds
        rows. Called after each drain, so a long run can resume from where it was."""
        settled = None
        while self._states and self.run.settled(self._states[0][1]):
            settled = self._states.popleft()[0]
        if settled is None or settled == self._emitted_state:
            return
        self._emitted_state = settled
        super()._write_state_message(copy.deepcopy(settled))

    # the end of a run -------------------------------------------------------------------------

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: finish the request in flight, record it, emit the settled STATE and
        exit non-zero. Overridden because the SDK's handler drains every sink again from
        inside the interrupted drain and then exits 0."""
        self.logger.warning("Received signal %d: stopping after the requests in flight", signum)
        reader = self.message_reader
        reading = isinstance(reader, MoovagoReader) and reader.reading
        self.run.stop(signum, at_once=self.run.draining or not reading)
        if isinstance(reader, MoovagoReader):
            reader.interrupt()  # between batches: the rows read so far are written

    def process_endofpipe(self) -> None:
        """Drain every sink (the gate decides on the whole run's writes), write what it held,
        then log and write the summary. After a termination signal the run still fails, once
        what it read is written."""
        self.run.gate.hold_until_end()
        try:
            super().process_endofpipe()
            self.run.gate.end_of_input()
        except BaseException as exc:
            self.run.failed(exc)
            self.run.remote.release_lock()
            raise
        self.emit_settled_state()
        stopped = self.run.stop_signal
        self.run.finish(failed=stopped is not None)
        self.run.close()
        if stopped is not None:
            raise TargetStopped(stopped)
