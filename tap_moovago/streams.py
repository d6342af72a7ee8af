"""One generic stream class: every entity of the schema file's plan becomes an instance of it."""

from __future__ import annotations

import typing as t
from functools import cached_property

from graphql import (
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

from moovago_api.errors import ConfigError, PagingError
from moovago_api.pager import DEFAULT_PAGE_SIZE, Pager
from moovago_api.wire import format_datetime
from tap_moovago.doctor_report import widened_start
from tap_moovago.records import RecordFit

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from singer_sdk.helpers.types import Context, Record
    from singer_sdk.singerlib import MetadataMapping

    from moovago_api.documents import Selection
    from moovago_api.schema import Entity, MoovagoSchema
    from tap_moovago.tap import TapMoovago

#: An INFO line every this many pages, so a long sync shows it is moving.
PROGRESS_EVERY_PAGES = 20


class MoovagoStream(Stream):
    """An entity of the plan: fields, JSON Schema, replication key, filter and paging from it."""

    # A plain Stream calling MoovagoClient, not GraphQLStream: that one ignores errors in 200s
    # and Retry-After, does not space requests and also sends variables as URL parameters.

    # Values come from a server typed by the same SDL as the JSON Schema: the SDK's per-value
    # conformance would only repeat that typing, at about half the tap's CPU per row.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, tap: TapMoovago, *, entity: Entity, moovago_schema: MoovagoSchema) -> None:
        """Build the stream of `entity` as the schema file describes it."""
        self.moovago_tap = tap
        self.entity = entity
        self.moovago_schema = moovago_schema
        json_schema = moovago_schema.output_json_schema(
            entity.type_name, scalar_types=tap.config.get("scalar_types")
        )
        self.deprecated_fields = list(_deprecated(json_schema.get("properties", {}), ()))
        if entity.deprecated is not None:  # the root field listing it: marked in the catalog
            json_schema["deprecated"] = True
            reason = f"Query.{entity.root_field} is deprecated: {entity.deprecated}"
            json_schema["description"] = f"DEPRECATED: {reason}"
        super().__init__(tap, schema=json_schema, name=entity.stream_name)
        self.primary_keys = [] if entity.problem else [entity.id_field]
        self.replication_key = entity.replication_key
        if entity.name != "team":
            self.state_partitioning_keys = []  # one bookmark per stream, not one per team

    @property
    def metadata(self) -> MetadataMapping:
        """Standard metadata, with deprecated fields not selected by default (unless set)."""
        # Only metadata discovery builds: an input catalog's selection is the user's.
        fresh = self._metadata is None and not self._tap_input_catalog
        metadata = super().metadata
        if fresh and not self.config.get("include_deprecated_fields", False):
            for breadcrumb in self.deprecated_fields:
                entry = metadata.get(breadcrumb)
                if entry is not None and entry.selected_by_default is None:
                    entry.selected_by_default = False
        if fresh and self.entity.read_problem():  # listed so it is seen, but no sync can read it
            metadata.root.selected_by_default = False
        return metadata

    @cached_property
    def pager(self) -> Pager:
        """The reader asking only for the selected fields, values in variables only."""
        entity = self.entity
        row_type = t.cast(
            "GraphQLObjectType", self.moovago_schema.graphql.get_type(entity.type_name)
        )
        fields = self._selections(row_type, self.effective_schema.get("properties", {}), ())
        name = f"TapMoovago{entity.type_name}"  # the Pager's label is the stream's: Stream 'x'
        pager = Pager(self.moovago_schema, entity, fields, operation_name=name, logger=self.logger)
        self.logger.debug("Query for %s: %s", pager.label, print_ast(pager.document))
        return pager

    def _selections(
        self,
        object_type: GraphQLObjectType | GraphQLInterfaceType,
        properties: Mapping[str, t.Any],
        breadcrumb: tuple[str, ...],
    ) -> list[Selection]:
        """The selected properties of `object_type` as a selection, nested ones too."""
        items: list[Selection] = []
        for name, prop in properties.items():
            here = (*breadcrumb, "properties", name)
            # A deselected parent still syncs for its children, which need its id.
            is_key = not breadcrumb and name in self.primary_keys
            if not (self.mask[here] or is_key) or name == "__typename":
                continue
            path = ".".join(here[1::2])
            field = object_type.fields.get(name)
            if field is None:
                msg = (
                    f"Stream '{self.name}': field '{path}' is selected in the catalog but "
                    f"{object_type.name}.{name} is not in the schema file "
                    f"{self.moovago_schema.path}; run discovery again or deselect it"
                )
                raise ConfigError(msg)
            if any(
                is_non_null_type(arg.type) and arg.default_value is Undefined
                for arg in field.args.values()
            ):
                self.logger.warning(
                    "Stream '%s': field '%s' needs arguments and is not extracted", self.name, path
                )
                continue
            if field.deprecation_reason is not None:
                self.logger.warning(
                    "Stream '%s': field '%s' is selected but deprecated (%s); stop using it "
                    "before it is removed",
                    self.name,
                    path,
                    field.deprecation_reason,
                )
            named = get_named_type(field.type)
            # Properties of an object, or of the items of an array of objects.
            sub_properties = prop.get("properties") or (prop.get("items") or {}).get(
                "properties", {}
            )
            if isinstance(named, GraphQLObjectType):
                sub = self._selections(named, sub_properties, here)
                items.extend([(name, sub)] if sub else [])
            elif isinstance(named, (GraphQLUnionType, GraphQLInterfaceType)):
                # `__typename` and, per possible type, the selected properties it declares.
                fragments: list[Selection] = []
                for member in self.moovago_schema.graphql.get_possible_types(named):
                    own = {k: v for k, v in sub_properties.items() if k in member.fields}
                    sub = self._selections(member, own, here)
                    fragments.extend([{member.name: sub}] if sub else [])
                items.append((name, fragments))
            else:
                items.append(name)
        return items

    def get_records(self, context: Context | None) -> Iterable[Record]:
        """Rows of the entity for the team in `context` (the team itself for `team`)."""
        entity = self.entity
        problem = entity.read_problem()
        if problem is not None:
            raise PagingError(f"Stream '{self.name}' cannot be read: {problem}")
        if entity.deprecated is not None:
            self.logger.warning(
                "Stream '%s' reads Query.%s, which the schema file marks deprecated (%s): "
                "Moovago will remove it; ask Moovago what replaces it",
                self.name,
                entity.root_field,
                entity.deprecated,
            )
        if entity.name == "team" and entity.root_field == "team":
            yield self.pager.team(self.moovago_tap.client, self.config.get("team_id"))
            return
        team_id = (context or {}).get("teamId")
        if entity.team_filter_field and team_id is None:
            team_id = self.moovago_tap.team_id  # no team stream in the catalog
        since = None
        incremental = self.replication_method == REPLICATION_INCREMENTAL
        if incremental and self.replication_key and entity.bound_path:
            start = widened_start(self.moovago_tap.measured, self.get_starting_timestamp(context))
            if start is not None:
                since = format_datetime(start)
                self.logger.info("Stream '%s': rows updated since %s", self.name, since)
        yield from self.pager.read(
            self.moovago_tap.client,
            filter=entity.filter_value(team_id, since),
            page_size=int(self.config.get("page_size", DEFAULT_PAGE_SIZE)),
            on_page=self._progress,
        )

    def _progress(self, pages: int, rows: int) -> None:
        if pages % PROGRESS_EVERY_PAGES == 0:
            self.logger.info("Stream '%s': %d rows in %d pages so far", self.name, rows, pages)

    @cached_property
    def _fit(self) -> RecordFit:
        return RecordFit(self.name, self.effective_schema, self.replication_key)

    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        """Every record fits the SCHEMA this stream emitted, or the stream stops naming it."""
        return self._fit.fit(row)

    def get_child_context(self, record: Record, context: Context | None) -> Context | None:
        """The team's id is the `teamId` context of every list stream."""
        return {"teamId": record[self.entity.id_field]}


def _deprecated(
    properties: Mapping[str, t.Any], breadcrumb: tuple[str, ...]
) -> Iterator[tuple[str, ...]]:
    """Every deprecated property, its reason copied into its description (catalogs keep only
    `deprecated`)."""
    for name, prop in properties.items():
        here = (*breadcrumb, "properties", name)
        if prop.get("deprecated"):
            if reason := prop.get("x-deprecation-reason"):
                notes = [prop.get("description"), f"DEPRECATED: {reason}"]
                prop["description"] = " ".join(filter(None, notes))
            yield here
        yield from _deprecated(prop.get("properties") or {}, here)
        yield from _deprecated((prop.get("items") or {}).get("properties") or {}, (*here, "items"))
