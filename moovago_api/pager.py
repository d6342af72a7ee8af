"""The one way to read a list: every paging shape the SDL declares, checked page by page.

The rules, the proof that each page continues the rows read, and what that proof assumes of the
server: docs/reliability.md, "Reading lists" (reading.py holds one read).
"""

from __future__ import annotations

import logging
import typing as t
from dataclasses import dataclass, field

from moovago_api.documents import (
    ANCHOR_ALIAS,
    ANCHOR_PAGE_VAR,
    ANCHOR_SIZE_VAR,
    has_aliases,
    list_document,
    restore_aliases,
)
from moovago_api.errors import ConfigError, MoovagoError, PagingError, QueryError
from moovago_api.reading import ListRead

if t.TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from moovago_api.client import MoovagoClient
    from moovago_api.documents import Selection
    from moovago_api.schema import Entity, MoovagoSchema

DEFAULT_PAGE_SIZE = 500

Row = dict[str, t.Any]
OnPage = t.Callable[[int, int], None]

_log = logging.getLogger(__name__)


@dataclass
class Page:
    rows: list[Row]
    cursors: list[str | None] = field(default_factory=list)
    has_next: bool | None = None
    end_cursor: str | None = None
    anchor: list[Row] = field(default_factory=list)


class Pager:
    """Reads one entity's list with the document built for `fields` (built and checked once)."""

    def __init__(
        self,
        schema: MoovagoSchema,
        entity: Entity,
        fields: Sequence[Selection],
        *,
        operation_name: str | None = None,
        label: str | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.entity = entity
        self.label = label or f"Stream '{entity.stream_name}'"
        self.logger = logger or _log
        self.operation_name = name = operation_name or f"MoovagoRead{entity.type_name}"
        self.document = list_document(schema, entity, fields, name=name)
        # Offset paging: the page with the row before it beside it (alias `anchor`).
        self.anchored = list_document(schema, entity, fields, name=name, anchored=True)
        problems = schema.validate_document(self.anchored)  # the document and the row before
        if problems:
            msg = f"{self.label}: the query built for the selected fields does not validate "
            raise ConfigError(msg + f"against {schema.path}: {'; '.join(problems)}")
        self._aliased = has_aliases(self.document)

    def read(
        self,
        client: MoovagoClient,
        *,
        filter: Mapping[str, t.Any] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        on_page: OnPage | None = None,
    ) -> Iterator[Row]:
        """Every row of the list, each once, in the server's order (docs/reliability.md)."""
        paging = self.entity.paging
        problem = self.entity.read_problem()
        if problem is not None:
            raise PagingError(f"{self.label} cannot be read: {problem}")
        if page_size < 1:
            msg = f"{self.label}: page size must be at least 1, not {page_size}"
            raise ConfigError(msg)
        if paging.sort_arg and paging.sort_value is None:
            why = "%s: cannot ask Query.%s(%s:) for ascending ids; assuming the server's own "
            why += "order does not change between pages"
            self.logger.warning(why, self.label, self.entity.root_field, paging.sort_arg)
        if paging.kind == "none":
            self.logger.info(
                "%s: Query.%s has no paging argument: read in one request",
                self.label,
                self.entity.root_field,
            )
        return ListRead(self, client, dict(filter or {}), page_size, on_page).run()

    def execute(self, client: MoovagoClient, variables: Mapping[str, t.Any]) -> dict[str, t.Any]:
        try:
            return client.execute(self.document, variables, self.operation_name)
        except QueryError as exc:
            raise self.labelled(exc) from exc

    def team(self, client: MoovagoClient, team_id: str | None) -> Row:
        """The API key's team (this pager reads `team`); refuses a team_id naming another team."""
        entity, variables = self.entity, {}
        if entity.team_arg is not None:  # `team(id: ID!)`: the team is named, never implied
            if not team_id:
                msg = f"{self.label}: Query.{entity.root_field}({entity.team_arg}:) needs "
                raise ConfigError(msg + "the team id: set team_id")
            variables[entity.team_arg] = team_id
        row = self.execute(client, variables).get(entity.root_field)
        if not row:
            msg = f"{self.label}: the API returned no {entity.root_field} for this API key"
            raise MoovagoError(msg)
        if team_id and str(row.get(entity.id_field)) != str(team_id):
            msg = f"Setting team_id is {team_id!r} but the API key belongs to team "
            raise ConfigError(msg + f"{row.get(entity.id_field)!r}; fix team_id or leave it empty")
        return t.cast("Row", row)

    def labelled(self, exc: QueryError) -> QueryError:
        """The API's errors for this list, naming the stream and where they are."""
        where = ", ".join(".".join(str(p) for p in path) or "(no path)" for path in exc.paths())
        messages = "; ".join(str(err.get("message", "")) for err in exc.errors)
        msg = f"{self.label}: the API returned errors at {where}: {messages}"
        return QueryError(msg, exc.errors, exc.data)

    def page_variables(
        self,
        *,
        filter: Mapping[str, t.Any] | None = None,
        size: int | None = None,
        start: int = 0,
        after: str | None = None,
    ) -> dict[str, t.Any]:
        """One page of `size` rows from row `start` (page numbers: a whole number of pages;
        cursors: `after`); `size=None` leaves paging out. The doctor uses it too."""
        paging = self.entity.paging
        variables: dict[str, t.Any] = {}
        if self.entity.filter_arg is not None:
            variables[self.entity.filter_arg] = dict(filter or {})
        if paging.sort_arg and paging.sort_value is not None:
            variables[paging.sort_arg] = paging.sort_value
        if size is None or paging.kind in ("none", "unsupported"):
            return variables
        variables[t.cast("str", paging.size_arg)] = size
        if paging.kind == "offset":
            variables[t.cast("str", paging.offset_arg)] = start
        elif paging.kind == "page":
            number = paging.first_page + start // size
            variables[t.cast("str", paging.page_arg)] = number
            variables[ANCHOR_PAGE_VAR] = max(paging.first_page, number - 1)
            variables[ANCHOR_SIZE_VAR] = size
        else:
            variables[t.cast("str", paging.after_arg)] = after
        return variables

    def page(self, data: Mapping[str, t.Any]) -> Page:
        """The rows (and cursors, pageInfo, anchor rows) of one answer."""
        paging, root = self.entity.paging, self.entity.root_field
        value = data.get(root)
        info: dict[str, t.Any] = {}
        if isinstance(value, dict) and paging.page_info:
            info = value.get(paging.page_info) or {}
        rows, cursors = self._listed(value, root)
        anchor, _ = self._listed(data.get(ANCHOR_ALIAS), ANCHOR_ALIAS)
        has_next = info.get("hasNextPage")
        has_next = has_next if isinstance(has_next, bool) else None
        return Page(rows, cursors, has_next, info.get("endCursor"), anchor)

    def _listed(self, value: t.Any, where: str) -> tuple[list[Row], list[str | None]]:
        """The rows of the list or connection answered at `where`, and their cursors."""
        paging = self.entity.paging
        if value is None:
            return [], []
        items = value
        if paging.rows != "list":
            if not isinstance(value, dict):
                raise self._bad(f"{where} is not a connection object")
            items, where = value.get(paging.rows) or [], f"{where}.{paging.rows}"
        if paging.rows != "edges":
            rows = self._rows(items, where)
            return rows, [row.get(paging.row_cursor) for row in rows] if paging.row_cursor else []
        if not isinstance(items, list) or not all(isinstance(e, dict) for e in items):
            raise self._bad(f"{where} is not a list of edges")
        rows = self._rows([e.get("node") for e in items], f"{where}.node")
        return rows, [e.get(paging.row_cursor) for e in items] if paging.row_cursor else []

    def _rows(self, value: t.Any, where: str) -> list[Row]:
        if not isinstance(value, list):
            raise self._bad(f"{where} is not a list")
        for index, row in enumerate(value):
            if not isinstance(row, dict) or row.get(self.entity.id_field) is None:
                raise self._bad(f"row {index} of {where} has no id")
        if self._aliased:
            return [restore_aliases(row) for row in value]
        return value

    def _bad(self, what: str) -> PagingError:
        return PagingError(f"{self.label}: the API answered a list the pager cannot read: {what}")
