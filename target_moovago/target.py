"""target-moovago: the Singer target. Settings (declared here, once), STATE (emitted only after
the rows it covers settle), the order of drains (parents first) and the end of a run (signals,
summary). The row's path is in sinks.py (wiring), decide.py (pure), runlock.py (the
business-hours gate) and writer.py (I/O)."""

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

from moovago_api.errors import ConfigError, MoovagoError
from moovago_api.plan import SETTING as PLANS_SETTING
from moovago_api.plan import SETTING_PROPERTY as PLANS_PROPERTY
from moovago_api.settings import connection_properties, numbers_from_text
from target_moovago.decide import KEYLESS_SETTING, Mode, Policy
from target_moovago.index import NORMALIZATIONS
from target_moovago.reader import PROTOCOLS_SETTING, MoovagoReader
from target_moovago.remote import Remote, writes_of
from target_moovago.runlock import POLICIES
from target_moovago.sinks import DEFAULT_MAX_REQUEST_BYTES, MoovagoSink, Run, TargetStopped

if t.TYPE_CHECKING:
    from types import FrameType

    from singer_sdk.sinks import Sink

    from target_moovago.ledger import Tally

MAX_MUTATIONS_PER_REQUEST = 100
MIN_REQUEST_BYTES = 1024


def mapping_of(value: th.JSONTypeHelper) -> th.ObjectType:
    """An object of names (streams, entities, fields), each holding `value`."""
    return th.ObjectType(additional_properties=value)


SETTINGS = th.PropertiesList(
    th.Property(
        "match_keys",
        mapping_of(th.ArrayType(th.StringType(min_length=1))),
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
        mapping_of(th.StringType(allowed_values=[m.value for m in Mode])),
        title="Stream modes",
        description=(
            "Per stream: `upsert` (default: create or update), `create_only` (rows that "
            "exist are rejected) or `update_only` (rows that do not exist are rejected), e.g. "
            '{"contact": "update_only"}.'
        ),
    ),
    th.Property(
        "field_policies",
        mapping_of(mapping_of(th.StringType(allowed_values=[p.value for p in Policy]))),
        title="Field policies",
        description=(
            "Per stream and field, what an update may write: `overwrite` (default), "
            "`fill_empty` (only where Moovago's value is null, '' or []) or `create_only` "
            '(written on create, never on update), e.g. {"company": {"note": "fill_empty"}}. '
            "A field a policy keeps never makes a row changed."
        ),
    ),
    th.Property(
        "changes_path",
        th.StringType,
        title="Change log",
        description="JSONL file (owner-readable only) every confirmed write is appended to "
        "before the STATE covering it: run id, time, stream, record id, match key, operation, "
        "and each written field's value before and after. `moovago-revert` puts it back.",
    ),
    th.Property(
        "match_normalize",
        mapping_of(th.ArrayType(th.StringType(allowed_values=list(NORMALIZATIONS)))),
        title="Match key normalisation",
        description=(
            "Per stream, opt in to compare match-key text after `trim` (ignore surrounding "
            "blanks) and/or `case` (case-folded: `abc` = `ABC`, `ß` = `ss`), e.g. "
            '{"company": ["trim", "case"]}. Default: exact comparison. Risk: records Moovago '
            "keeps apart (`abc`, `ABC`) become one key, so a row updates one of them or is "
            "rejected as ambiguous."
        ),
    ),
    th.Property(
        KEYLESS_SETTING,
        th.ArrayType(th.StringType),
        title="Allow keyless creates",
        description=(
            "Streams whose rows with neither `id` nor a match key are created anyway "
            '(`create_only`, `upsert`), e.g. ["turnover"]. Such a create cannot be looked up '
            "after an ambiguous failure, so a crash and a resume from an earlier STATE may "
            "duplicate those rows. Default: none; such rows are rejected before any write."
        ),
    ),
    th.Property(
        "keep_empty_strings",
        mapping_of(th.ArrayType(th.StringType)),
        title="Keep empty strings",
        description=(
            "Per stream, input fields where `''` is sent as a value (`*`: every field), e.g. "
            '{"company": ["status"]}. Elsewhere `\'\'` in a field that does not take free text '
            "(enum, number, boolean, date, list, object, ID) means no value, like NULL."
        ),
    ),
    th.Property(
        "lock_dir",
        th.StringType,
        title="Run lock directory",
        description=(
            "Directory of the run lock files: one run at a time per API URL and team on this "
            "machine. Default: $XDG_STATE_HOME/target-moovago/locks, else "
            "~/.local/state/target-moovago/locks. It cannot guard runs on two machines."
        ),
    ),
    th.Property(
        "lock_wait_seconds",
        th.IntegerType(minimum=0),
        default=0,
        title="Run lock wait",
        description=(
            "How long a run waits for another run of the same account to end before it "
            "refuses (0: refuse at once)."
        ),
    ),
    th.Property(
        "max_request_bytes",
        th.IntegerType(minimum=MIN_REQUEST_BYTES),
        default=DEFAULT_MAX_REQUEST_BYTES,
        title="Max request bytes",
        description=(
            "Largest request body sent, measured before sending: a larger batch is split by "
            "size down to one row, and a row that alone is larger is rejected naming its size. "
            "An HTTP 413 from the server splits the same way."
        ),
    ),
    th.Property(
        "read_only_streams",
        th.StringType(allowed_values=["skip", "error"]),
        default="skip",
        title="Read-only streams",
        description="What to do with a stream Moovago has no mutation for (`team`, which "
        "tap-moovago emits): `skip` (one warning naming it; its rows are counted in the "
        "summary, not written) or `error` (stop before any row is read).",
    ),
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
        "by id (`team(id: ID!)`); otherwise the team query tells it, and a team_id naming "
        "another team stops the run before any write.",
    ),
)


def check_field_policies(remote: Remote) -> None:
    """At start: each stream `field_policies` names is one the target writes, each field one
    its mutations take, each fill_empty field one it reads back (to see it empty)."""
    for stream, fields in (remote.config.get("field_policies") or {}).items():
        try:
            entity = remote.entity_for(stream)
        except MoovagoError as exc:
            raise ConfigError(f"field_policies: {exc}") from None
        shapes = writes_of(entity).shapes.values()
        inputs = {f.name for shape in shapes for f in shape.fields}
        output = remote.schema.output_json_schema(entity.type_name)["properties"]
        for name, policy in fields.items():
            if name not in inputs:
                msg = (
                    f"field_policies: {stream}.{name}: the {entity.type_name} mutations in "
                    f"{remote.schema.path} take no field {name!r}"
                )
                raise ConfigError(msg)
            if policy == Policy.FILL_EMPTY and name not in output:
                msg = (
                    f"field_policies: {stream}.{name} is fill_empty, but {entity.type_name} "
                    f"has no field {name!r} to read back whether it is empty"
                )
                raise ConfigError(msg)


def _config_schema() -> dict[str, t.Any]:
    """Every rule JSON Schema can state is stated here, so the SDK checks it once at start;
    what it cannot (the match keys against the schema file) is checked when a stream opens."""
    schema = SETTINGS.to_dict()
    keys = schema["properties"]["match_keys"]["additionalProperties"]
    keys["minItems"] = 1
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
        clock: Callable[[], dt.datetime] | None = None,
        sleep: Callable[[float], None] | None = None,
        production: bool | None = None,
        monotonic: Callable[[], float] | None = None,
        **kwargs: t.Any,
    ) -> None:
        """`clock` (aware datetime), `sleep` and `production` (default: the API URL is not
        loopback) are injectable so the business-hours rule is tested without a remote host;
        `monotonic` times the progress lines. The rest is the SDK's (config, ...)."""
        super().__init__(**kwargs)
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
        if self.config.get("field_policies"):
            check_field_policies(self.run.remote)
        reader = self.message_reader
        if isinstance(reader, MoovagoReader):
            reader.on_failure = self.run.remote.release_lock  # broken input: let the lock go
            reader.skips = self.run.skips  # read-only streams: skipped whole
            protocols = self.config.get(PROTOCOLS_SETTING) or ()
            reader.protocols = frozenset(str(p).lower() for p in protocols)
        # STATE messages received and not emitted yet, each with the rows every sink had
        # received before it: it is emitted once all those rows are settled.
        self._states: deque[tuple[dict, dict[Tally, int]]] = deque()
        self._emitted_state: dict | None = None

    # Private: the SDK keeps the config only in _config; a number given as text is typed first.
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
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

    # Private: the only place the SDK orders the sinks it drains.
    def _drain_all(self, sink_list: Iterable[Sink], parallelism: int) -> None:
        del parallelism  # always 1
        sinks = list(sink_list)
        sinks.sort(key=lambda s: bool(isinstance(s, MoovagoSink) and s.parent_streams))
        self.run.draining_all = True  # the SDK writes the STATE once they are all drained
        try:
            for sink in sinks:
                self.drain_one(sink)
        finally:
            self.run.draining_all = False

    # STATE ------------------------------------------------------------------------------------

    # Private: the SDK's only hook for a STATE message; it notes the rows the STATE covers.
    def _process_state_message(self, message_dict: dict) -> None:
        super()._process_state_message(message_dict)
        state = self._latest_state
        if state is not None and not (self._states and self._states[-1][0] == state):
            marks = self.run.marks()
            if self._states and self._states[-1][1] == marks:
                self._states.pop()  # no row between them: the newer one is as safe
            self._states.append((state, marks))
        self.emit_settled_state()

    # Private: the SDK emits its latest STATE after each full drain; emit what is settled.
    def _write_state_message(self, state: dict) -> None:
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

    # Private: the SDK's handler drains every sink again, inside the cut drain, and exits 0.
    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: finish the request in flight, record it, emit the settled STATE and
        exit non-zero."""
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
