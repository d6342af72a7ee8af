"""What `moovago-schema doctor` asks the live API, and what it sees: read-only, governed.

Every request goes through `moovago_api.client` (rate, retries) with queries built from the schema
file in use; lists are read with the pager's own documents and answer handling, so every paging
shape the tap reads is measured the same way. Per list stream at most 6 requests: a small page
twice (answers as the file declares, limit honoured, same order twice), a page larger than
`page_size` (the cap; `page_size` itself when that is refused), the next page when it came back
short (more rows: a cap; none: the end), and the page after the small one, held against the large
page (the paging argument honoured). Nothing read leaves the process but counts, type names and
schema coordinates: no record value, no key.
"""

from __future__ import annotations

import time
import typing as t
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLUnionType,
    get_named_type,
    is_required_argument,
)

from moovago_api.client import MoovagoClient
from moovago_api.errors import AuthError, ConfigError, MoovagoError, QueryError, short
from moovago_api.pager import Pager
from moovago_api.plan import is_list
from moovago_api.schema import Entity, MoovagoSchema
from moovago_schema.answers import Selection, answer_shape, check_answer

__all__ = ["Answer", "Probe", "StreamProbe", "probe"]

#: Rows of the small page read twice: enough to see an order change, cheap on any server.
SMALL_PAGE = 5
#: Nested objects are selected this deep (the tap selects every level; the doctor samples).
MAX_DEPTH = 3
PAGED = ("offset", "page", "cursor")


@dataclass
class Answer:
    """One HTTP answer as the client received it (headers only, never the body's values)."""

    status: int
    seconds: float  # from sending the request to the whole body read
    received: datetime  # this machine's clock when it arrived
    date: datetime | None  # the server's `Date` header
    retry_after: str | None
    shape: str = ""  # for non-200 answers: content type and top-level JSON keys


@dataclass
class Page:
    rows: int
    ids: list[str]
    seconds: float | None
    start: int = 0  # position of its first row in the list
    next_cursor: str | None = None  # cursor paging: where the page after this one starts


@dataclass
class StreamProbe:
    """What one stream's requests showed."""

    stream: str
    entity: str
    paging: str  # 'offset (skip/limit)', 'page (page/perPage)', 'cursor (after/first)', 'none ...'
    paged: bool
    requests: int = 0
    small_asked: int = 0
    small: Page | None = None
    small_again: Page | None = None
    big_asked: int = 0
    big: Page | None = None
    big_refused: str = ""  # the server's error when it refused the large page
    after_big: Page | None = None  # the page after a short large page: more rows, or the end
    offset_page: Page | None = None  # the page after `small`: held against `big`
    problems: dict[str, int] = field(default_factory=dict)  # answer vs file: coordinate: count
    error: str = ""  # the request failed: why (one line, no key)
    auth_error: str = ""  # the key was refused half-way: nothing more is asked
    unsupported: str = ""  # the doctor cannot read this stream: why

    @property
    def after_big_rows(self) -> int:
        return self.after_big.rows if self.after_big is not None else 0


@dataclass
class Probe:
    """Everything the doctor saw, for the verdicts."""

    schema: MoovagoSchema
    page_size: int
    team_error: str = ""  # the team query got no answer, or no team
    team_query_error: str = ""  # the team query was answered with errors
    team_requests: int = 0
    team_problems: dict[str, int] = field(default_factory=dict)
    streams: list[StreamProbe] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)  # empty when they could not be observed
    auth_error: str = ""
    server_offset: float | None = None  # seconds, from the client's server_time(), if it has it


def _observe(client: MoovagoClient, answers: list[Answer]) -> None:
    """Record the status, timing and headers of each answer `client` receives: its method that
    reads an answer is wrapped (this instance only), so the doctor sends nothing itself."""
    post = client._post

    def observed(*args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        answer = post(*args, **kwargs)
        answers.append(
            Answer(
                status=int(answer.status_code),
                seconds=time.monotonic() - started,
                received=datetime.now(timezone.utc),
                date=answer.date,
                retry_after=answer.headers.get("Retry-After"),
                shape=answer_shape(answer) if answer.status_code != 200 else "",
            )
        )
        return answer

    client._post = observed  # type: ignore[method-assign]


def probe(client: MoovagoClient, schema: MoovagoSchema, config: Mapping[str, Any]) -> Probe:
    """Run the doctor's requests: the team, then each entity stream of `schema`."""
    page_size = int(config["page_size"])
    result = Probe(schema=schema, page_size=page_size)
    _observe(client, result.answers)
    include_deprecated = bool(config.get("include_deprecated_fields", False))
    reader = _Reader(client, schema, include_deprecated, result.answers)
    entities = schema.entities()
    team_entity = next((e for e in entities if e.filter_arg is None and e.name == "team"), None)
    team_id = config.get("team_id") or None
    named = team_entity.team_arg if team_entity is not None else None
    if team_entity is not None and named and team_id is None:  # `team(id:)`: nothing implies it
        where = f"Query.{team_entity.root_field}({named}:) in {schema.path.name}"
        raise ConfigError(f"{where} needs setting team_id (the team to read)")
    if team_entity is None:
        result.team_error = f"no `team` query in {schema.path.name}"
    else:
        before = reader.requests
        try:
            row, problems = reader.single(team_entity, {named: team_id} if named else {})
            result.team_problems = problems
            if isinstance(row, Mapping) and row.get(team_entity.id_field) is not None:
                team_id = team_id or str(row[team_entity.id_field])
            elif named:
                result.team_error = f"the team query answered no team {team_id!r}: fix team_id"
            else:
                result.team_error = "the team query answered no team for this API key"
        except AuthError as err:
            result.auth_error = str(err)
            return result
        except QueryError as err:  # answered, with errors: the file asks what is not served
            result.team_query_error = _one_line(err)
        except MoovagoError as err:
            result.team_error = _one_line(err)
        result.team_requests = reader.requests - before
    for entity in entities:
        if entity is team_entity:
            continue
        stream = _stream_probe(reader, entity, team_id, page_size)
        result.streams.append(stream)
        if stream.auth_error:
            result.auth_error = stream.auth_error
            break
    server_time = client.server_time()
    if server_time is not None:
        result.server_offset = (server_time - datetime.now(timezone.utc)).total_seconds()
    return result


def _stream_probe(
    reader: _Reader, entity: Entity, team_id: str | None, page_size: int
) -> StreamProbe:
    paging, why_not = reader.paging(entity)
    stream = StreamProbe(
        entity.stream_name,
        entity.name,
        paging,
        paged=entity.paging.kind in PAGED,
    )
    if why_not:
        stream.unsupported = why_not
        return stream
    if entity.team_filter_field and team_id is None:
        stream.error = "no team id to scope the list by (the team query failed)"
        return stream
    before = reader.requests
    try:
        if not stream.paged:
            stream.small = reader.page(entity, team_id, None, stream.problems)
            return stream
        small = min(SMALL_PAGE, page_size)
        stream.small_asked = small
        stream.small = reader.page(entity, team_id, small, stream.problems)
        stream.small_again = reader.page(entity, team_id, small, stream.problems)
        stream.big_asked = 2 * page_size
        try:
            stream.big = reader.page(entity, team_id, stream.big_asked, stream.problems)
        except QueryError as err:
            # Refused rather than capped: then is page_size itself accepted?
            stream.big_refused = _one_line(err)
            stream.big_asked = page_size
            stream.big = reader.page(entity, team_id, page_size, stream.problems)
        if stream.big.rows < stream.big_asked and _can_follow(entity, stream.big):
            stream.after_big = reader.page(
                entity, team_id, small, stream.problems, after=stream.big
            )
        if (
            stream.big.rows > small
            and not stream.after_big_rows
            and stream.small.rows
            and _can_follow(entity, stream.small)
        ):
            stream.offset_page = reader.page(
                entity, team_id, small, stream.problems, after=stream.small
            )
    except AuthError as err:
        stream.auth_error = stream.error = _one_line(err)
    except (MoovagoError, ConfigError) as err:
        stream.error = _one_line(err)
    finally:
        stream.requests = reader.requests - before
    return stream


def _can_follow(entity: Entity, page: Page) -> bool:
    """Whether a page after `page` can be asked: cursor paging needs a cursor (none: the end)."""
    return entity.paging.kind != "cursor" or page.next_cursor is not None


class _Reader:
    """Builds the doctor's queries with gql.dsl and checks each answer against the file."""

    def __init__(
        self,
        client: MoovagoClient,
        schema: MoovagoSchema,
        deprecated: bool,
        answers: list[Answer],
    ) -> None:
        self.client = client
        self.answers = answers
        self.schema = schema
        self.deprecated = deprecated
        self.requests = 0
        self._pagers: dict[str, tuple[Pager, Selection]] = {}

    def paging(self, entity: Entity) -> tuple[str, str]:
        """How the doctor reads this list, and why it cannot ('' when it can)."""
        query = self.schema.graphql.query_type
        root = query.fields.get(entity.root_field) if query else None
        if root is None:
            return "-", f"Query.{entity.root_field} is not in {self.schema.path.name}"
        shape = entity.paging
        if shape.kind == "unsupported":
            problem = shape.problem or "paging the connectors cannot drive"
            return "-", f"{self._query_name()}.{entity.root_field}: {problem}"
        objects = isinstance(get_named_type(root.type), (GraphQLObjectType, GraphQLInterfaceType))
        if shape.rows == "list" and not (is_list(root.type) and objects):
            return "-", (
                f"{self._query_name()}.{entity.root_field} does not return a list of objects"
                f" ({root.type}) nor a connection the pager reads"
            )
        where = "" if shape.rows == "list" else f", {shape.rows} connection"
        if shape.kind in PAGED:
            return f"{shape.kind} ({shape.start_arg}/{shape.size_arg}){where}", ""
        return f"none (one request){where}", ""

    def single(self, entity: Entity, variables: Mapping[str, Any]) -> tuple[Any, dict[str, int]]:
        """The one object of `entity`'s root field (the team), read as the tap reads it."""
        pager, selection = self._pager(entity)
        self.requests += 1
        data = pager.execute(self.client, variables)
        problems: dict[str, int] = {}
        root = self._root_field(entity)
        row = data.get(entity.root_field)
        check_answer(
            row, root.type, selection, f"{self._query_name()}.{entity.root_field}", problems
        )
        return row, problems

    def page(
        self,
        entity: Entity,
        team_id: str | None,
        size: int | None,
        problems: dict[str, int],
        *,
        after: Page | None = None,
    ) -> Page:
        """One page of `size` rows (None: the unpaged list), from the start or right `after`.

        The request and the reading of its answer are the pager's own (`Pager.page_variables`,
        `Pager.execute`, `Pager.page`): the shapes the tap reads are the shapes measured here.
        """
        pager, selection = self._pager(entity)
        filter_value = entity.filter_value(team_id)
        start = 0 if after is None else after.start + after.rows
        variables: dict[str, Any]
        if size is None:
            variables = pager.page_variables(filter=filter_value)
        else:
            if entity.paging.kind == "page" and start % size:
                size = start  # page numbers count whole pages: the page after one of `start`
            cursor = after.next_cursor if after is not None else None
            variables = pager.page_variables(
                filter=filter_value, size=size, start=start, after=cursor
            )
        self.requests += 1
        seen = len(self.answers)
        started = time.monotonic()
        data = pager.execute(self.client, variables)
        # The answer's own time when the observer saw it; else the call's (governor wait too).
        answers = self.answers[seen:]
        seconds = answers[-1].seconds if answers else time.monotonic() - started
        root = self._root_field(entity)
        where = f"{self._query_name()}.{entity.root_field}"
        if data.get(entity.root_field) is None and isinstance(root.type, GraphQLNonNull):
            key = f"{where}: null, but the file declares {root.type}"
            problems[key] = problems.get(key, 0) + 1
        answer = pager.page(data)
        node_type = self.schema.graphql.get_type(entity.type_name)
        rows = entity.paging.rows
        inner = {"list": "", "edges": ".edges.node"}.get(rows, f".{rows}")
        for row in answer.rows:
            check_answer(
                row, t.cast("GraphQLOutputType", node_type), selection, where + inner, problems
            )
        ids = [str(row.get(entity.id_field)) for row in answer.rows]
        next_cursor = answer.end_cursor
        if entity.paging.row_cursor and answer.cursors and answer.cursors[-1] is not None:
            next_cursor = answer.cursors[-1]
        if answer.has_next is False:
            next_cursor = None  # the server declares the end: nothing to ask after it
        return Page(len(ids), ids, seconds, start=start, next_cursor=next_cursor)

    def _pager(self, entity: Entity) -> tuple[Pager, Selection]:
        if entity.root_field not in self._pagers:
            selection = self._selection(self.schema.graphql.get_type(entity.type_name), (), 0)
            if not selection:
                raise ConfigError(f"{entity.type_name} has no field the doctor can select")
            pager = Pager(
                self.schema,
                entity,
                selection,
                operation_name=f"MoovagoDoctor{entity.name[0].upper()}{entity.name[1:]}",
                label=f"Stream '{entity.stream_name}'",
            )
            self._pagers[entity.root_field] = (pager, selection)
        return self._pagers[entity.root_field]

    # -- documents ---------------------------------------------------------------------------

    def _query_name(self) -> str:
        query = self.schema.graphql.query_type
        return query.name if query else "Query"

    def _root_field(self, entity: Entity) -> GraphQLField:
        query = self.schema.graphql.query_type
        if query is None or entity.root_field not in query.fields:
            raise ConfigError(f"Query.{entity.root_field} is not in {self.schema.path}")
        return query.fields[entity.root_field]

    def _selection(self, gql_type: Any, seen: tuple[str, ...], depth: int) -> Selection:
        """The fields the doctor reads: no union, no cycle, objects MAX_DEPTH deep."""
        selection: Selection = []
        for name, gql_field in gql_type.fields.items():
            if gql_field.deprecation_reason is not None and not self.deprecated:
                continue
            if any(is_required_argument(arg) for arg in gql_field.args.values()):
                continue
            named = get_named_type(gql_field.type)
            if isinstance(named, GraphQLUnionType):
                continue  # members differ per row; the tap's own reading covers them
            if not isinstance(named, (GraphQLObjectType, GraphQLInterfaceType)):
                selection.append(name)
            elif named.name not in seen and depth < MAX_DEPTH:
                nested = self._selection(named, (*seen, gql_type.name), depth + 1)
                if nested:
                    selection.append((name, nested))
        return selection


def _one_line(err: BaseException) -> str:
    return short(" ".join(str(err).split()))
