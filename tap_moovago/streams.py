"""One generic stream class: every entity of the schema file becomes an instance of it."""

from __future__ import annotations

import typing as t
from concurrent.futures import Future, ThreadPoolExecutor

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLField,
    GraphQLObjectType,
    get_named_type,
    is_non_null_type,
    is_object_type,
    print_ast,
)
from graphql.pyutils import Undefined
from singer_sdk import Stream
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.singerlib.catalog import REPLICATION_INCREMENTAL

from moovago_api.documents import field, list_query
from moovago_api.errors import ConfigError, MoovagoError, QueryError
from moovago_api.wire import format_datetime

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from singer_sdk.helpers.types import Context, Record

    from moovago_api.client import MoovagoClient
    from moovago_api.schema import Entity, MoovagoSchema
    from tap_moovago.tap import TapMoovago

DEFAULT_PAGE_SIZE = 500
#: A stream whose list field has no paging arguments comes back in one response; past this
#: many rows the user is told the response may get too big for the server or the tap.
LARGE_UNPAGED_RESPONSE = 5000
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
        include_deprecated = bool(tap.config.get("include_deprecated_fields", False))
        json_schema = moovago_schema.output_json_schema(
            entity.type_name, include_deprecated=include_deprecated
        )
        _describe_deprecations(json_schema)
        super().__init__(tap, schema=json_schema, name=entity.stream_name)
        self.primary_keys = ["id"]
        self.replication_key = entity.replication_key
        if entity.filter_arg is not None:
            # One bookmark per stream, not one per team context.
            self.state_partitioning_keys = []
        self._document: DocumentNode | None = None

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
    def document(self) -> DocumentNode:
        """The query for the selected fields, validated against the schema file (built once)."""
        if self._document is None:
            self._document = self.build_document()
        return self._document

    def build_document(self) -> DocumentNode:
        """Build the query asking only for the selected fields, values in variables only."""
        entity = self.entity
        query_type = self.moovago_schema.graphql.query_type
        root = query_type.fields.get(entity.root_field) if query_type else None
        object_type = get_named_type(root.type) if root else None
        if not isinstance(object_type, GraphQLObjectType):
            msg = (
                f"Stream '{self.name}': the schema file {self.moovago_schema.path} has no "
                f"Query.{entity.root_field} returning objects"
            )
            raise ConfigError(msg)
        selections = self._selections(object_type, self.effective_schema.get("properties", {}), ())
        document = list_query(
            self.moovago_schema,
            entity,
            selections,
            name=self.operation_name,
            paged=self.pages_with_arguments,
        )
        problems = self.moovago_schema.validate_document(document)
        if problems:
            msg = (
                f"Stream '{self.name}': the query built for the selected fields does not "
                f"validate against {self.moovago_schema.path}: {'; '.join(problems)}"
            )
            raise ConfigError(msg)
        self.logger.debug("Query for stream '%s': %s", self.name, print_ast(document))
        return document

    @property
    def pages_with_arguments(self) -> bool:
        """True when the list field takes both a skip and a limit argument."""
        return bool(self.entity.skip_arg and self.entity.limit_arg)

    def _selections(
        self,
        object_type: GraphQLObjectType,
        properties: Mapping[str, t.Any],
        breadcrumb: tuple[str, ...],
    ) -> list[FieldNode]:
        """Field nodes for the selected properties of `object_type`, nested ones included."""
        include_deprecated = bool(self.config.get("include_deprecated_fields", False))
        nodes: list[FieldNode] = []
        for prop_name, prop_schema in properties.items():
            prop_breadcrumb = (*breadcrumb, "properties", prop_name)
            # A deselected parent still syncs for its children, which need its id.
            is_key = not breadcrumb and prop_name in self.primary_keys
            if not (self.mask[prop_breadcrumb] or is_key):
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
                if not include_deprecated:
                    self.logger.warning(
                        "Stream '%s': field '%s' is deprecated (%s) and is not extracted; "
                        "set include_deprecated_fields to keep it until it is removed",
                        self.name,
                        path,
                        gql_field.deprecation_reason,
                    )
                    continue
                self.logger.warning(
                    "Stream '%s': field '%s' is deprecated (%s); stop using it before it is "
                    "removed",
                    self.name,
                    path,
                    gql_field.deprecation_reason,
                )
            named = get_named_type(gql_field.type)
            if is_object_type(named):
                sub_properties = _object_properties(prop_schema)
                sub_nodes = self._selections(
                    t.cast("GraphQLObjectType", named), sub_properties, prop_breadcrumb
                )
                if not sub_nodes:
                    continue
                nodes.append(field(prop_name, sub_nodes))
            else:
                nodes.append(field(prop_name))
        return nodes

    # ---- records ----------------------------------------------------------------------------

    def get_records(self, context: Context | None) -> Iterable[Record]:
        """Rows of the entity for the team in `context` (the team itself for `team`)."""
        if self.entity.filter_arg is None:
            yield from self._get_single(self.entity.root_field)
            return
        yield from self._get_list(context)

    def _execute(self, variables: Mapping[str, t.Any]) -> dict[str, t.Any]:
        try:
            return self.client.execute(self.document, variables, self.operation_name)
        except QueryError as exc:
            where = ", ".join(".".join(str(p) for p in path) or "(no path)" for path in exc.paths())
            messages = "; ".join(str(err.get("message", "")) for err in exc.errors)
            msg = f"Stream '{self.name}': the API returned errors at {where}: {messages}"
            raise QueryError(msg, exc.errors, exc.data) from exc

    def _get_single(self, root_field: str) -> Iterator[Record]:
        data = self._execute({})
        row = data.get(root_field)
        if row is None:
            msg = f"Stream '{self.name}': the API returned no {root_field} for this API key"
            raise MoovagoError(msg)
        self._check_team(row)
        yield row

    def _check_team(self, row: Mapping[str, t.Any]) -> None:
        expected = self.config.get("team_id")
        if self.entity.name == "team" and expected and str(row.get("id")) != str(expected):
            msg = (
                f"Setting team_id is {expected!r} but the API key belongs to team "
                f"{row.get('id')!r}; fix team_id or leave it empty"
            )
            raise ConfigError(msg)

    def _filter(self, context: Context | None) -> dict[str, t.Any]:
        entity = self.entity
        team_id = (context or {}).get("teamId") or self.config.get("team_id")
        if entity.team_filter_field and team_id is None:
            msg = (
                f"Stream '{self.name}' needs a team id: sync it with the team stream or set team_id"
            )
            raise ConfigError(msg)
        filter_value: dict[str, t.Any] = {}
        if entity.team_filter_field:
            filter_value[entity.team_filter_field] = team_id
        incremental = self.replication_method == REPLICATION_INCREMENTAL
        if incremental and self.replication_key and entity.updated_since_field:
            start = self.get_starting_timestamp(context)
            if start is not None:
                filter_value[entity.updated_since_field] = format_datetime(start)
                self.logger.info(
                    "Stream '%s': rows updated since %s",
                    self.name,
                    filter_value[entity.updated_since_field],
                )
        return filter_value

    def _get_list(self, context: Context | None) -> Iterator[Record]:
        entity = self.entity
        filter_arg = t.cast("str", entity.filter_arg)
        variables: dict[str, t.Any] = {filter_arg: self._filter(context)}
        if not self.pages_with_arguments:
            rows = self._execute(variables)[entity.root_field] or []
            if len(rows) > LARGE_UNPAGED_RESPONSE:
                self.logger.warning(
                    "Stream '%s': %d rows in one response because Query.%s has no paging "
                    "arguments in the schema file; large teams may hit server limits",
                    self.name,
                    len(rows),
                    entity.root_field,
                )
            yield from rows
            return

        skip_arg, limit_arg = t.cast("str", entity.skip_arg), t.cast("str", entity.limit_arg)
        skip = 0
        previous_ids: set[t.Any] = set()
        for pages, rows in enumerate(self._pages(variables), start=1):
            ids = {row.get("id") for row in rows}
            if rows and ids & previous_ids:
                msg = (
                    f"Stream '{self.name}': the API returned rows of the previous page again "
                    f"at {skip_arg}={skip}; it does not honour {skip_arg}/{limit_arg} paging"
                )
                raise MoovagoError(msg)
            previous_ids = ids
            yield from rows
            skip += len(rows)
            if pages % PROGRESS_EVERY_PAGES == 0:
                self.logger.info("Stream '%s': %d rows in %d pages so far", self.name, skip, pages)

    def _pages(self, variables: Mapping[str, t.Any]) -> Iterator[list[Record]]:
        """Pages in skip order until a short one; each page is asked for once.

        The next page is fetched while the caller handles the current one: the SDK's work per
        record would otherwise leave the rate budget unused between requests.
        """
        entity = self.entity
        page_size = int(self.config.get("page_size", DEFAULT_PAGE_SIZE))
        skip_arg, limit_arg = t.cast("str", entity.skip_arg), t.cast("str", entity.limit_arg)

        def fetch(skip: int) -> list[Record]:
            page = self._execute({**variables, skip_arg: skip, limit_arg: page_size})
            return t.cast("list[Record]", page[entity.root_field] or [])

        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"tap-moovago-{self.name}")
        try:
            pending: Future[list[Record]] | None = pool.submit(fetch, 0)
            skip = 0
            while pending is not None:
                rows = pending.result()
                skip += len(rows)
                pending = pool.submit(fetch, skip) if len(rows) >= page_size else None
                yield rows
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def get_child_context(self, record: Record, context: Context | None) -> Context | None:
        """The team's id is the `teamId` context of every list stream."""
        return {"teamId": record["id"]}


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
