"""tap-moovago: settings and stream discovery. Streams and fields come from the schema file."""

from __future__ import annotations

import contextlib
import datetime
import logging
import typing as t
from functools import cached_property

import click
from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.tap_base import CliTestOptionValue

from moovago_api.errors import ConfigError, MoovagoError, SchemaFileError, TransientError
from moovago_api.pager import DEFAULT_PAGE_SIZE, Pager
from moovago_api.plan import SETTING as PLANS_SETTING
from moovago_api.plan import SETTING_PROPERTY as PLANS_PROPERTY
from moovago_api.schema import SCALAR_KINDS, schema_from_config
from moovago_api.settings import (
    CONNECTION_REQUIRED,
    client_from_config,
    connection_properties,
    numbers_from_text,
)
from moovago_api.wire import format_datetime
from tap_moovago.doctor_report import Measured, load_doctor_report
from tap_moovago.records import checked_bookmark
from tap_moovago.streams import MoovagoStream

if t.TYPE_CHECKING:
    from moovago_api.client import MoovagoClient
    from moovago_api.schema import MoovagoSchema

#: Streams of the bundled schema; discovery points out any other entity a user's file adds.
BUNDLED_STREAMS = frozenset({"team", "company", "contact", "mandator", "turnover"})

#: Requests per second when the setting is absent: below Moovago's limit of 5, leaving room
#: for another job using the same key.
DEFAULT_RATE = 4

_TAP_PROPERTIES = th.PropertiesList(
    th.Property(
        "team_id",
        th.StringType,
        title="Team ID",
        description=(
            "Id of the API key's team. Optional: the tap reads it with the `team` query and "
            "stops if this setting names another team."
        ),
    ),
    th.Property(
        "start_date",
        th.DateTimeType,
        title="Start date",
        description=(
            "Extract only rows updated at or after this instant on the first run of an "
            "incremental stream (ISO-8601, e.g. 2026-01-01T00:00:00Z)."
        ),
    ),
    th.Property(
        "page_size",
        th.IntegerType(minimum=1, maximum=1000),
        default=DEFAULT_PAGE_SIZE,
        title="Page size",
        description="Rows asked for per request when the list field takes paging arguments.",
    ),
    th.Property(
        "doctor_report",
        th.StringType,
        title="Doctor report",
        description=(
            "Path of the JSON report `moovago-schema doctor --format json` wrote for this "
            "api_url. The tap then refuses a page_size above the measured page cap and offset "
            "paging without a sort argument when the order or skip was measured broken, and "
            "widens incremental starts by a measured clock offset over 60 s. A report of "
            "another api_url is ignored with a warning."
        ),
    ),
    th.Property(
        "include_deprecated_fields",
        th.BooleanType,
        default=False,
        title="Include deprecated fields",
        description=(
            "Select by default the fields the schema file marks @deprecated. Discovery always "
            "lists them, marked deprecated with the schema's reason, and not selected unless "
            "this is set or the catalog selects them. Moovago removes them after notice: a "
            "warning names each one extracted."
        ),
    ),
    th.Property(
        "scalar_types",
        th.ObjectType(additional_properties=th.StringType(allowed_values=list(SCALAR_KINDS))),
        title="Scalar types",
        description=(
            "JSON Schema kind of custom scalars the schema file defines, by scalar name, e.g. "
            '{"JSON": "object", "Money": "number"}. Kinds: ' + ", ".join(SCALAR_KINDS) + ". "
            "Defaults: DateTime date-time, Date date, JSON any, JSONObject object; other "
            "custom scalars string."
        ),
    ),
).to_dict()["properties"]


def _config_jsonschema() -> dict[str, t.Any]:
    properties = {**connection_properties(default_rate=DEFAULT_RATE), **_TAP_PROPERTIES}
    properties[PLANS_SETTING] = PLANS_PROPERTY
    return {"type": "object", "properties": properties, "required": list(CONNECTION_REQUIRED)}


class TapMoovago(Tap):
    """Singer tap for the Moovago sales CRM: streams and fields from its GraphQL schema file."""

    name = "tap-moovago"
    package_name = "moovago-connectors"
    config_jsonschema = _config_jsonschema()

    _client: MoovagoClient | None = None
    #: What the doctor measured at this api_url (setting doctor_report), if given.
    measured: Measured | None = None

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """JSON Schema checks, then the rules it cannot express, each as one line."""
        # The SDK keeps the config only in _config: a number given as text is typed before the check
        numbers_from_text(self._config, self.config_jsonschema["properties"])
        errors = super()._validate_config(raise_errors=raise_errors)
        if errors:
            return errors
        try:
            schema = self.moovago_schema
            schema.scalar_kinds(self.config.get("scalar_types"))
            schema.entities()  # checks the plan overrides
            client = self.client  # checks the connection settings
            if start_date := self.config.get("start_date"):
                _parse_start_date(start_date)
            if self.config.get("doctor_report"):
                self.measured = load_doctor_report(
                    self.config["doctor_report"], api_url=client.api_url, logger=self.logger
                )
                if self.measured is not None:
                    page_size = int(self.config.get("page_size", DEFAULT_PAGE_SIZE))
                    self.measured.refuse_unsafe(page_size, schema.entities())
        except SchemaFileError as exc:
            errors = [f"Setting schema_path: {exc}"]
        except ConfigError as exc:
            errors = [str(exc)]
        if errors and raise_errors:
            raise ConfigValidationError(errors[0], errors=errors)
        return errors

    @property
    def client(self) -> MoovagoClient:
        """The one Moovago client of this tap, shared by all streams."""
        if self._client is None:
            self._client = client_from_config(
                self.config, default_rate=DEFAULT_RATE, logger=self.logger
            )
        return self._client

    @property
    def moovago_schema(self) -> MoovagoSchema:
        """The schema file of `schema_path` (or the bundled one) with the plan overrides."""
        return schema_from_config(self.config)

    def load_state(self, state: dict[str, t.Any]) -> None:
        """The SDK's, each bookmark checked first (records.checked_bookmark): refused or capped."""
        started = datetime.datetime.now(datetime.timezone.utc)
        bookmarks = dict(state.get("bookmarks") or {})
        for stream, bookmark in bookmarks.items():
            if isinstance(bookmark, dict) and bookmark.get("replication_key_value") is not None:
                key, value = str(bookmark.get("replication_key")), bookmark["replication_key_value"]
                instant = checked_bookmark(stream, key, value, started=started, logger=self.logger)
                if instant == started:  # capped: the SDK reads from this run's start
                    bookmarks[stream] = dict(
                        bookmark, replication_key_value=format_datetime(instant)
                    )
        super().load_state({**state, "bookmarks": bookmarks})

    def discover_streams(self) -> list[MoovagoStream]:
        """One stream per entity of the plan; `team` is the parent of the others."""
        schema = self.moovago_schema
        self._log_discovery(schema)
        # A catalog that leaves `team` out (hand-written, Airbyte-made) gets no team stream: the
        # SDK cannot sync a parent it has no catalog entry for; team_id gives the id instead.
        team_listed = self.input_catalog is None or "team" in self.input_catalog
        parent: type[MoovagoStream] | None = None
        streams: list[MoovagoStream] = []
        for entity in schema.entities():
            is_team = entity.name == "team"
            if is_team and not team_listed:
                continue
            # A thin subclass per entity: the SDK links child streams to parents by class.
            attributes = {"parent_stream_type": None if is_team else parent}
            stream_class = type(entity.type_name + "Stream", (MoovagoStream,), attributes)
            parent = stream_class if is_team else parent
            streams.append(stream_class(self, entity=entity, moovago_schema=schema))
        return streams

    @cached_property
    def team_id(self) -> str:
        """The API key's team when the catalog has no team stream: one `team` query, not emitted."""
        schema = self.moovago_schema
        entity = schema.entity("team")
        if entity.team_arg is not None and self.config.get("team_id"):  # named, not implied
            return str(self.config["team_id"])
        name, label = "TapMoovagoTeamId", "The team query"
        pager = Pager(schema, entity, [entity.id_field], operation_name=name, label=label)
        team_id = str(pager.team(self.client, self.config.get("team_id"))[entity.id_field])
        self.logger.info(
            "Team %s read with one team query (no team stream in the catalog)", team_id
        )
        return team_id

    def _log_discovery(self, schema: MoovagoSchema) -> None:
        """A line per root field not taken, per stream (its plan, then any problem, deprecation
        or full-table read), per custom scalar typed by guess."""
        where, log = f"Schema file {schema.path.name}", self.logger
        kinds = schema.scalar_kinds(self.config.get("scalar_types"))  # may refuse: before any line
        for skipped in schema.skipped_fields():
            if skipped.lists_rows:  # rows no stream reads: never only an INFO line
                fix = f"to read them, add a stream with {PLANS_SETTING}.<name>.root_field"
                text = f"{skipped.coordinate} lists rows but is not a stream: {skipped.reason}"
                log.warning("%s: %s (%s)", where, text, fix)
            else:
                log.info("%s: %s is not a stream: %s", where, skipped.coordinate, skipped.reason)
        for entity in schema.entities():
            stream = f"stream '{entity.stream_name}'"
            if entity.stream_name not in BUNDLED_STREAMS:
                text = f"has entity '{entity.name}' (Query.{entity.root_field})"
                log.info("%s %s: discovered as %s", where, text, stream)
            log.info("Stream '%s' plan: %s", entity.stream_name, entity.summary())
            if entity.read_problem():
                text = f"{stream} is listed but a sync of it fails: {entity.read_problem()}"
                log.warning("%s: %s (not selected by default)", where, text)
            if entity.deprecated is not None:
                text = f"reads Query.{entity.root_field}, marked deprecated ({entity.deprecated})"
                log.warning("%s: %s %s", where, stream, text)
            if entity.full_table_reason:
                fix = f"set {PLANS_SETTING}.{entity.stream_name}.incremental"
                text = f"reads full table: {entity.full_table_reason} ({fix})"
                log.warning("Stream '%s' %s", entity.stream_name, text)
        for name in schema.custom_scalars():
            if name not in kinds:
                text = f"custom scalar {name} is extracted as a string"
                log.info("%s: %s; set scalar_types to type it otherwise", where, text)

    def run_team_check(self) -> None:
        """Run the `team` query once and emit its record: proves URL, key and schema agree."""
        team = self.streams.get("team")
        if team is None:
            msg = f"The schema file {self.moovago_schema.path} has no team query to test with"
            raise ConfigError(msg)
        for child in team.child_streams:
            child.selected = False
        self._client = client_from_config(
            self.config, default_rate=DEFAULT_RATE, logger=self.logger, connection_test=True
        )

        def quiet(record: logging.LogRecord) -> bool:  # the SDK's second ERROR names no address
            return record.levelno < logging.ERROR

        team.logger.addFilter(quiet)
        try:
            self.run_sync_dry_run(dry_run_record_limit=1, streams=[team])
        except TransientError as exc:
            msg = f"no answer from {self._client.api_url} (one attempt): {exc}"
            raise TransientError(msg, status=exc.status, ambiguous=False) from None
        finally:
            team.logger.removeFilter(quiet)
        self.logger.info("Connection test passed: the API answered the team query")

    @classmethod
    def invoke(cls, **kwargs: t.Any) -> None:
        """Run the tap; our own errors end it with their one clear line, not a traceback."""
        with _one_line(cls.logger):
            super().invoke(**kwargs)

    @classmethod
    def cb_discover(cls, ctx: click.Context, param: click.Option, value: bool) -> None:
        """`--discover`: a setting or schema file discovery cannot use is one line, exit 1."""
        with _one_line(cls.logger):
            super().cb_discover(ctx, param, value)

    @classmethod
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """`--test` runs the team query once instead of a record of every stream."""
        if value != CliTestOptionValue.All.value:
            super().cb_test(ctx, param, value)
            return
        config = ctx.params.get("config")
        with _one_line(cls.logger, "Connection test failed: "):
            cls(
                config=config.config if config else None,
                parse_env_config=bool(config and config.parse_env),
                validate_config=True,
            ).run_team_check()
        ctx.exit()


@contextlib.contextmanager
def _one_line(logger: logging.Logger, prefix: str = "") -> t.Iterator[None]:
    """Our errors and settings errors end the run with one line each (exit 1), no traceback."""
    try:
        yield
    except ConfigValidationError as exc:
        if not prefix:  # the SDK's own handler prints these
            raise
        for error in exc.errors or [str(exc)]:
            logger.error("%s%s", prefix, error)
        raise click.exceptions.Exit(1) from None
    except MoovagoError as exc:
        logger.error("%s%s", prefix, exc)  # the message says what to change
        raise click.exceptions.Exit(1) from None


def _parse_start_date(value: str) -> None:
    try:
        datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        example = "e.g. 2026-01-01T00:00:00Z"
        msg = f"Setting start_date {value!r} is not an ISO-8601 date-time ({example})"
        raise ConfigError(msg) from None
