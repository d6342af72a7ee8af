"""One generic stream class: every entity of the schema file becomes an instance of it."""

from __future__ import annotations

import datetime as dt
import typing as t

from graphql import (
    DocumentNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLUnionType,
    get_named_type,
    is_non_null_type,
    print_ast,
)
from graphql.pyutils import Undefined
from singer_sdk import Stream
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.singerlib.catalog import REPLICATION_INCREMENTAL

from moovago_api.errors import ConfigError, MoovagoError
from moovago_api.pager import DEFAULT_PAGE_SIZE, Pager, PagingError
from moovago_api.wire import format_datetime
from tap_moovago.doctor_report import widened_start
from tap_moovago.records import RecordFit, checked_bookmark

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from singer_sdk.helpers.types import Context, Record
    from singer_sdk.singerlib import MetadataMapping

    from moovago_api.client import MoovagoClient
    from moovago_api.documents import Selection
    from moovago_api.schema import Entity, MoovagoSchema
    from tap_moovago.tap import TapMoovago

__all__ = ["DEFAULT_PAGE_SIZE", "PROGRESS_EVERY_PAGES", "MoovagoStream"]

#: An INFO line every this many pages, so a long sync shows it is moving.
PROGRESS_EVERY_PAGES = 20


class MoovagoStream(Stream):
    """A Moovago entity read with its `team` or `<name>List` root field.

    Everything comes from the schema file: fields, JSON Schema, replication key, filter and
    paging arguments. `team` is the parent stream; its id is the `teamId` context of the list
    streams.
    """

    # A plain Stream calling MoovagoClient (not GraphQLStream): one HTTP path with our governor
    # and retries; GraphQLStream ignores errors in 200s and Retry-After, does not space requests
    # and also sends variables as URL parameters.

    # Values come from a server typed by the same SDL as the JSON Schema: the SDK's recursive
    # per-value conformance would only repeat that typing, at about half the tap's CPU per row.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, tap: TapMoovago, *, entity: Entity, moovago_schema: MoovagoSchema) -> None:
        """Build the stream of `entity` as the schema file describes it."""
        self.moovago_tap = tap
        self.entity = entity
        self.moovago_schema = moovago_schema
        # Deprecated fields are always discovered (marked, with the reason); the setting only
        # decides whether they are selected by default.
        json_schema = moovago_schema.output_json_schema(
            entity.type_name, scalar_types=tap.config.get("scalar_types")
        )
        _describe_deprecations(json_schema)
        if entity.deprecated is not None:  # the root field listing it: marked in the catalog
            json_schema["deprecated"] = True
            reason = f"Query.{entity.root_field} is deprecated: {entity.deprecated}"
            json_schema["description"] = f"DEPRECATED: {reason}"
        super().__init__(tap, schema=json_schema, name=entity.stream_name)
        self.primary_keys = [] if entity.problem else [entity.id_field]
        self.replication_key = entity.replication_key
        if entity.name != "team":
            # One bookmark per stream, not one per team context.
            self.state_partitioning_keys = []
        self._pager: Pager | None = None
        self._fit: RecordFit | None = None
        self._checked: tuple[object, dt.datetime] | None = None  # (bookmark, instant)

    @classmethod
    def subclass_for(
        cls, entity: Entity, parent: type[MoovagoStream] | None
    ) -> type[MoovagoStream]:
        """A thin subclass per entity: the SDK links child streams to parents by class."""
        class_name = entity.type_name + "Stream"
        return type(class_name, (cls,), {"parent_stream_type": parent})

    @property
    def is_sorted(self) -> bool:
        """Rows come sorted by id, not updatedAt: the SDK keeps the max, finalizes at the end."""
        return False

    @property
    def client(self) -> MoovagoClient:
        """The tap's one client, shared by every stream."""
        return self.moovago_tap.client

    # ---- document ---------------------------------------------------------------------------

    @property
    def operation_name(self) -> str:
        """Name of the operation, seen in the server's logs."""
        return f"TapMoovago{self.entity.type_name}"

    @property
    def metadata(self) -> MetadataMapping:
        """Standard metadata, with deprecated fields not selected by default (unless set)."""
        # Only metadata discovery builds: an input catalog's selection is the user's.
        fresh = self._metadata is None and not self._tap_input_catalog
        metadata = super().metadata
        if fresh and not self.config.get("include_deprecated_fields", False):
            for breadcrumb in _deprecated_breadcrumbs(self.schema.get("properties", {}), ()):
                entry = metadata.get(breadcrumb)
                if entry is not None and entry.selected_by_default is None:
                    entry.selected_by_default = False
        if fresh and self.entity.read_problem():  # listed so it is seen, but no sync can read it
            metadata.root.selected_by_default = False
        return metadata

    @property
    def pager(self) -> Pager:
        """The list reader for the selected fields, its query checked against the file (once)."""
        if self._pager is None:
            self._pager = self.build_pager()
        return self._pager

    @property
    def document(self) -> DocumentNode:
        """The query for the selected fields, validated against the schema file (built once)."""
        return self.pager.document

    def build_pager(self) -> Pager:
        """The pager asking only for the selected fields, values in variables only."""
        entity = self.entity
        object_type = self.moovago_schema.graphql.get_type(entity.type_name)
        if not isinstance(object_type, GraphQLObjectType):
            msg = (
                f"Stream '{self.name}': the schema file {self.moovago_schema.path} has no "
                f"object type {entity.type_name}"
            )
            raise ConfigError(msg)
        fields = self._selections(object_type, self.effective_schema.get("properties", {}), ())
        try:
            pager = Pager(
                self.moovago_schema,
                entity,
                fields,
                operation_name=self.operation_name,
                label=f"Stream '{self.name}'",
                logger=self.logger,
            )
        except ConfigError as exc:
            raise ConfigError(str(exc)) from None
        self.logger.debug("Query for stream '%s': %s", self.name, print_ast(pager.document))
        return pager

    def _selections(
        self,
        object_type: GraphQLObjectType | GraphQLInterfaceType,
        properties: Mapping[str, t.Any],
        breadcrumb: tuple[str, ...],
    ) -> list[Selection]:
        """The selection spec of the selected properties of `object_type`, nested ones too."""
        items: list[Selection] = []
        for prop_name, prop_schema in properties.items():
            prop_breadcrumb = (*breadcrumb, "properties", prop_name)
            # A deselected parent still syncs for its children, which need its id.
            is_key = not breadcrumb and prop_name in self.primary_keys
            if not (self.mask[prop_breadcrumb] or is_key) or prop_name == "__typename":
                continue
            path = ".".join(prop_breadcrumb[1::2])
            gql_field = object_type.fields.get(prop_name)
            if gql_field is None:
                msg = (
                    f"Stream '{self.name}': field '{path}' is selected in the catalog but "
                    f"{object_type.name}.{prop_name} is not in the schema file "
                    f"{self.moovago_schema.path}; run discovery again or deselect it"
                )
                raise ConfigError(msg)
            if _has_required_arguments(gql_field):
                self.logger.warning(
                    "Stream '%s': field '%s' needs arguments and is not extracted", self.name, path
                )
                continue
            if gql_field.deprecation_reason is not None:
                self.logger.warning(
                    "Stream '%s': field '%s' is selected but deprecated (%s); stop using it "
                    "before it is removed",
                    self.name,
                    path,
                    gql_field.deprecation_reason,
                )
            item = self._selection(prop_name, gql_field, prop_schema, prop_breadcrumb)
            if item is not None:
                items.append(item)
        return items

    def _selection(
        self,
        prop_name: str,
        gql_field: GraphQLField,
        prop_schema: Mapping[str, t.Any],
        breadcrumb: tuple[str, ...],
    ) -> Selection | None:
        named = get_named_type(gql_field.type)
        sub_properties = _object_properties(prop_schema)
        if isinstance(named, GraphQLObjectType):
            sub = self._selections(named, sub_properties, breadcrumb)
            return (prop_name, sub) if sub else None
        if isinstance(named, (GraphQLUnionType, GraphQLInterfaceType)):
            # `__typename` and, per possible type, the selected properties it declares.
            fragments: list[Selection] = []
            for member in self.moovago_schema.graphql.get_possible_types(named):
                own = {k: v for k, v in sub_properties.items() if k in member.fields}
                sub = self._selections(member, own, breadcrumb)
                if sub:
                    fragments.append({member.name: sub})
            return (prop_name, fragments)
        return prop_name

    # ---- records ----------------------------------------------------------------------------

    def get_records(self, context: Context | None) -> Iterable[Record]:
        """Rows of the entity for the team in `context` (the team itself for `team`)."""
        problem = self.entity.read_problem()
        if problem is not None:
            raise PagingError(f"Stream '{self.name}' cannot be read: {problem}")
        if self.entity.deprecated is not None:
            self.logger.warning(
                "Stream '%s' reads Query.%s, which the schema file marks deprecated (%s): "
                "Moovago will remove it; ask Moovago what replaces it",
                self.name,
                self.entity.root_field,
                self.entity.deprecated,
            )
        if self.entity.name == "team" and self.entity.root_field == "team":
            yield from self._get_single(self.entity.root_field)
            return
        yield from self._get_list(context)

    def _get_single(self, root_field: str) -> Iterator[Record]:
        variables = {}
        if self.entity.team_arg is not None:  # `team(id: ID!)`: the team is named, not implied
            if not self.config.get("team_id"):
                msg = f"Stream '{self.name}': Query.{root_field}({self.entity.team_arg}:) needs "
                raise ConfigError(msg + "the team id: set team_id")
            variables[self.entity.team_arg] = self.config["team_id"]
        data = self.pager.execute(self.client, variables)
        row = data.get(root_field)
        if row is None:
            msg = f"Stream '{self.name}': the API returned no {root_field} for this API key"
            raise MoovagoError(msg)
        self._check_team(row)
        yield row

    def _check_team(self, row: Mapping[str, t.Any]) -> None:
        expected = self.config.get("team_id")
        found = row.get(self.entity.id_field)
        if self.entity.name == "team" and expected and str(found) != str(expected):
            msg = (
                f"Setting team_id is {expected!r} but the API key belongs to team "
                f"{found!r}; fix team_id or leave it empty"
            )
            raise ConfigError(msg)

    def _filter(self, context: Context | None) -> dict[str, t.Any]:
        entity = self.entity
        team_id = (context or {}).get("teamId")
        if entity.team_filter_field and team_id is None:
            team_id = self.moovago_tap.team_id  # no team stream in the catalog
        since = None
        incremental = self.replication_method == REPLICATION_INCREMENTAL
        if incremental and self.replication_key and entity.bound_path:
            start = self.get_starting_timestamp(context)
            start = widened_start(self.moovago_tap.measured, start)
            if start is not None:
                since = format_datetime(start)
                self.logger.info("Stream '%s': rows updated since %s", self.name, since)
        return entity.filter_value(team_id, since)

    def _get_list(self, context: Context | None) -> Iterator[Record]:
        page_size = int(self.config.get("page_size", DEFAULT_PAGE_SIZE))
        yield from self.pager.read(
            self.client, filter=self._filter(context), page_size=page_size, on_page=self._progress
        )

    def _progress(self, pages: int, rows: int) -> None:
        if pages % PROGRESS_EVERY_PAGES == 0:
            self.logger.info("Stream '%s': %d rows in %d pages so far", self.name, rows, pages)

    # ---- what enters from outside (tap_moovago/records.py) ----------------------------------

    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        """Every record fits the SCHEMA this stream emitted, or the stream stops naming it."""
        if self._fit is None:
            self._fit = RecordFit(self.name, self.effective_schema, self.replication_key)
        return self._fit.fit(row)

    def _bookmark(self, context: Context | None) -> dt.datetime | None:
        """The state's bookmark of this stream, checked once (None when there is none)."""
        value = self.get_context_state(context).get("replication_key_value")
        if value is None or not self.replication_key:
            return None
        if self._checked is None or self._checked[0] != value:
            signpost = self.get_replication_key_signpost(context)
            started = (
                signpost if isinstance(signpost, dt.datetime) else dt.datetime.now(dt.timezone.utc)
            )
            instant = checked_bookmark(
                self.name, self.replication_key, value, started=started, logger=self.logger
            )
            self._checked = (value, instant)
        return self._checked[1]

    def compare_start_date(self, value: str, start_date_value: str) -> str:
        """The later of bookmark and start_date; the bookmark checked first (the SDK's own
        comparison ends in a traceback on one that is not a date-time)."""
        bookmark = self._bookmark(None)
        if bookmark is None:
            return super().compare_start_date(value, start_date_value)
        try:
            start = dt.datetime.fromisoformat(str(start_date_value).replace("Z", "+00:00"))
        except ValueError:
            return value
        start = start if start.tzinfo else start.replace(tzinfo=dt.timezone.utc)
        return start_date_value if start > bookmark else value

    def get_starting_timestamp(self, context: Context | None) -> dt.datetime | None:
        """The bookmark as checked (capped when a little ahead), else the SDK's start_date."""
        bookmark = self._bookmark(context)
        start = self.get_starting_replication_key_value(context)
        if bookmark is not None and start == self._checked_value:
            return bookmark
        return super().get_starting_timestamp(context)

    @property
    def _checked_value(self) -> object:
        return None if self._checked is None else self._checked[0]

    def get_child_context(self, record: Record, context: Context | None) -> Context | None:
        """The team's id is the `teamId` context of every list stream."""
        return {"teamId": record[self.entity.id_field]}


def _has_required_arguments(gql_field: GraphQLField) -> bool:
    return any(
        is_non_null_type(arg.type) and arg.default_value is Undefined
        for arg in gql_field.args.values()
    )


def _object_properties(prop_schema: Mapping[str, t.Any]) -> Mapping[str, t.Any]:
    """Properties of an object or of the items of an array of objects."""
    if "properties" in prop_schema:
        return t.cast("Mapping[str, t.Any]", prop_schema["properties"])
    items = prop_schema.get("items") or {}
    return t.cast("Mapping[str, t.Any]", items.get("properties", {}))


def _describe_deprecations(schema: dict[str, t.Any]) -> None:
    """Copy each deprecation reason into the description: catalogs keep only `deprecated`."""
    for prop in schema.get("properties", {}).values():
        reason = prop.get("x-deprecation-reason")
        if prop.get("deprecated") and reason:
            prop["description"] = " ".join(
                filter(None, [prop.get("description"), f"DEPRECATED: {reason}"])
            )
        _describe_deprecations(prop)
        _describe_deprecations(prop.get("items") or {})


def _deprecated_breadcrumbs(
    properties: Mapping[str, t.Any], breadcrumb: tuple[str, ...]
) -> Iterator[tuple[str, ...]]:
    """Breadcrumbs of every deprecated property, nested ones included."""
    for name, prop in properties.items():
        here = (*breadcrumb, "properties", name)
        if prop.get("deprecated"):
            yield here
        yield from _deprecated_breadcrumbs(prop.get("properties") or {}, here)
