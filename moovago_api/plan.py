"""The plan of each stream, how it is read and written, as plain data (docs/stream-plan.md):
built by `read_plan` and `write_plan`, corrected by the `stream_plans` setting."""

from __future__ import annotations

import typing as t
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from graphql import get_named_type, get_nullable_type, is_list_type

from moovago_api.errors import SchemaFileError

#: The setting, shared by tap and target, that overrides any part of a plan.
SETTING = "stream_plans"
#: Its declaration (JSON Schema), the same in tap and target.
SETTING_PROPERTY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": {"type": "object"},
    "title": "Stream plans",
    "description": "Per stream, corrections of how it is read and written (`moovago-schema "
    'plan` prints it), checked against the schema file at start, e.g. {"company": {"id_field": '
    '"_id", "paging": {"kind": "page", "page_arg": "page", "size_arg": "perPage"}}}. Parts: '
    "root_field, id_field, paging, order, incremental, team_field, writes.",
}
KINDS = ("create", "update", "delete")


@dataclass(frozen=True)
class Paging:
    """How a list pages (`problem`: why the tap cannot, with kind 'unsupported')."""

    kind: str = "none"  # offset | page | cursor | none | unsupported
    rows: str = "list"  # or the connection's field holding the rows: nodes | items | edges
    offset_arg: str | None = None
    size_arg: str | None = None
    page_arg: str | None = None
    first_page: int = 1
    after_arg: str | None = None
    row_cursor: str | None = None  # a row's own cursor field
    page_info: str | None = None  # a connection's `{ hasNextPage endCursor }`
    sort_arg: str | None = None
    sort_value: Any = None
    problem: str | None = None

    @property
    def start_arg(self) -> str | None:
        """The argument saying where a page starts: offset, page number or cursor."""
        starts = {"offset": self.offset_arg, "page": self.page_arg, "cursor": self.after_arg}
        return starts.get(self.kind)


@dataclass(frozen=True)
class StreamPlan:
    """One stream: how the tap reads it and the target writes it."""

    name: str  # the row type in lower camel case: 'companyContact'
    stream_name: str  # 'contact'
    type_name: str
    root_field: str
    id_field: str = "id"
    team_arg: str | None = None  # `team(id:)`: the argument given the team id
    filter_arg: str | None = None
    filter_type: str | None = None
    team_filter_field: str | None = None
    # Where the incremental lower bound goes in the filter: ('updatedSince',) or
    # ('_operators', 'updatedAt', 'gte').
    bound_path: tuple[str, ...] = ()
    replication_key: str | None = None
    full_table_reason: str | None = None  # why an entity with `updatedAt` reads full table
    deprecated: str | None = None  # the root field's deprecation reason
    problem: str | None = None  # why the conventions cannot read it (a sync refuses)
    overridden: tuple[str, ...] = ()  # the parts set by the `stream_plans` setting
    paging: Paging = Paging()
    writes: EntityWrites | None = field(default=None, compare=False, repr=False)

    def read_problem(self) -> str | None:
        """Why a sync of this stream must fail, or None."""
        return self.problem or (self.paging.problem if self.paging.kind == "unsupported" else None)

    def filter_value(self, team_id: str | None, since: str | None = None) -> dict[str, Any]:
        """The filter argument's value: the team, and the lower bound where the plan puts it."""
        value: dict[str, Any] = {}
        if self.team_filter_field and team_id is not None:
            value[self.team_filter_field] = team_id
        if since is not None and self.bound_path:
            node = value
            for step in self.bound_path[:-1]:
                node = node.setdefault(step, {})
            node[self.bound_path[-1]] = since
        return value

    def summary(self) -> str:
        """The plan in one line, for discovery's log and `moovago-schema plan`."""
        p, bound = self.paging, ".".join((str(self.filter_arg), *self.bound_path))
        paging = p.kind + (f"({p.start_arg}/{p.size_arg})" if p.start_arg else "")
        team = self.team_arg or (
            self.team_filter_field and f"{self.filter_arg}.{self.team_filter_field}"
        )
        writes = [
            f"{k} {s.coordinate}" for k, s in (self.writes.shapes if self.writes else {}).items()
        ]
        parts = [
            f"Query.{self.root_field}",
            f"id {self.id_field}",
            f"paging {paging}" + (f" in {p.rows}" if p.rows != "list" else ""),
            f"order {p.sort_arg}={p.sort_value}" if p.sort_value is not None else "",
            f"team {team}" if team else "",
            f"incremental {self.replication_key} > {bound}" if self.replication_key else "",
            f"full table ({self.full_table_reason})" if self.full_table_reason else "",
            f"writes {', '.join(writes) or 'none'}",
            f"DEPRECATED ({self.deprecated})" if self.deprecated is not None else "",
            f"overridden: {', '.join(self.overridden)}" if self.overridden else "",
            f"CANNOT READ: {self.read_problem()}" if self.read_problem() else "",
        ]
        return "; ".join(part for part in parts if part)


@dataclass(frozen=True)
class SkippedField:
    """A root field that is not a stream, and why."""

    coordinate: str  # 'Query.noteList'
    reason: str
    lists_rows: bool = False  # it answers rows of objects that no stream reads: a WARNING


class MutationShapeError(SchemaFileError):
    """A mutation the schema file declares (or lacks) cannot be used to write an entity."""


class Payload(str, Enum):
    """How a mutation's result names the record it wrote."""

    RECORD_ID = "recordId"  # { recordId }
    ID = "id"  # { id } on a payload object
    RECORD = "record"  # the record itself: { id }
    NESTED = "nested"  # a payload object holding the record: { <field> { id } }
    SCALAR = "scalar"  # the id itself (ID or String)
    BOOLEAN = "boolean"  # true when done; the id is the one sent


@dataclass(frozen=True)
class InputField:
    """A field of a mutation's data input: what the target may write."""

    name: str
    type: str  # as the file spells it: 'String!', '[ID!]'
    required: bool  # non-null without default: a create must give it
    deprecation: str | None = None


@dataclass(frozen=True)
class MutationShape:
    """One mutation of an entity, as the file declares it."""

    kind: str  # create | update | delete
    path: tuple[str, ...]  # ('company', 'create') or ('createCompany',)
    parent_type: str  # the object type holding the mutation field: 'CompanyMutation', 'Mutation'
    id_arg: str | None = None  # the id as its own argument: update(id:, input:), delete(id:)
    input_arg: str | None = None  # the argument holding an input object
    input_type: str | None = None  # its named type
    id_field: str | None = None  # the id as a field of that input object: { id, ... }
    data_field: str | None = None  # the data nested in that input object: { id, input: {...} }
    data_type: str | None = None  # the input object holding the writable fields
    fields: tuple[InputField, ...] = ()  # writable fields of data_type (the id excluded)
    payload: Payload = Payload.RECORD_ID
    payload_field: str | None = None  # recordId / id / the nested record field
    payload_type: str = ""  # the named return type
    errors_field: str | None = None  # a list of { message } in the payload: `userErrors`
    failure_types: tuple[str, ...] = ()  # result-union members that report a failure

    @property
    def coordinate(self) -> str:
        """How messages name it: 'Mutation.company.create', 'Mutation.createCompany'."""
        return ".".join(("Mutation", *self.path))

    def arguments(self, record_id: str | None, data: Mapping[str, Any] | None) -> dict[str, Any]:
        """The argument values of one call, keyed by argument name (they go in variables)."""
        values: dict[str, Any] = {} if self.id_arg is None else {self.id_arg: record_id}
        value = dict(data or {})
        if self.data_field is not None:
            value = {self.data_field: value}
        if self.id_field is not None:
            value = {self.id_field: record_id, **value}
        if self.input_arg is not None:
            values[self.input_arg] = value
        return values

    def record_id(self, result: Any, *, sent_id: str | None = None) -> str | None:
        """The id of the record this call wrote, from its alias result; None when it says none."""
        if result is None or self.error_messages(result):  # an error in the payload: not written
            return None
        if self.payload is Payload.BOOLEAN:
            return sent_id if result is True else None
        if self.payload is Payload.SCALAR:
            value = result
        elif not isinstance(result, Mapping):
            return None
        elif self.payload is Payload.NESTED:
            nested = result.get(self.payload_field or "")
            value = nested.get("id") if isinstance(nested, Mapping) else None
        else:
            value = result.get(self.payload_field or "id")
        if value is None or isinstance(value, (bool, Mapping, list)) or value == "":
            return None
        return str(value)

    def error_messages(self, result: Any) -> list[str]:
        """The messages of the payload's own error list (HTTP 200, no GraphQL error), if any."""
        if isinstance(result, Mapping) and result.get("__typename") in self.failure_types:
            return [str(result.get("message") or result["__typename"])]
        if self.errors_field is None or not isinstance(result, Mapping):
            return []
        found = result.get(self.errors_field) or []
        if isinstance(found, Mapping):  # one `error { message }`, as graphql-compose sends it
            found = [found]
        if not isinstance(found, list):
            return []
        return [str(e.get("message")) for e in found if isinstance(e, Mapping) and e.get("message")]


@dataclass(frozen=True)
class EntityWrites:
    """What the file lets the target do to one entity; per kind, a shape or why not."""

    entity: str  # entity name: 'company', 'companyContact'
    type_name: str
    path: str  # the schema file, for messages
    shapes: Mapping[str, MutationShape] = field(default_factory=dict)
    refused: Mapping[str, str] = field(default_factory=dict)  # found but unusable: kind -> why
    missing: Mapping[str, str] = field(default_factory=dict)  # not found: kind -> where looked

    @property
    def writable(self) -> bool:
        """True when the file declares a usable create."""
        return "create" in self.shapes

    def shape(self, kind: str) -> MutationShape:
        """The mutation for `kind`, or MutationShapeError with the one line saying why not."""
        kind = kind_of(kind)
        if kind in self.shapes:
            return self.shapes[kind]
        raise MutationShapeError(self.refused.get(kind) or self.missing[kind], self.path)


def kind_of(kind: Any) -> str:
    value = getattr(kind, "value", kind)
    if value not in KINDS:
        msg = f"{value!r} is not a write (expected one of {', '.join(KINDS)})"
        raise ValueError(msg)
    return str(value)


def first_live(items: Mapping[str, Any] | None, names: t.Iterable[str]) -> str | None:
    """The first of `names` present in `items` and not deprecated."""
    found = (n for n in names if items and items.get(n) and items[n].deprecation_reason is None)
    return next(found, None)


def is_list(gql_type: Any) -> bool:
    return is_list_type(get_nullable_type(gql_type))


def child(parent: Any, name: str) -> Any:
    """The named type of `parent`'s field `name`, or None (no such field, or no fields)."""
    found = getattr(parent, "fields", {}).get(name)
    return None if found is None else get_named_type(found.type)
