"""`diff`: what a new schema file changes for the streams using each element (pure, no I/O).

Sides: `read` is the list query and its record types (the tap, and the target's lookups of
existing rows); `write` is the mutations and their input types (the target).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    GraphQLObjectType,
    GraphQLType,
    GraphQLUnionType,
    find_breaking_changes,
    find_dangerous_changes,
    get_named_type,
)

from moovago_api.schema import MoovagoSchema
from moovago_schema.deprecations import DEPRECATED
from moovago_schema.view import (
    BREAKING,
    DANGEROUS,
    ViewChange,
    connector_view,
    root_mapped,
    view_changes,
)

__all__ = ["DiffReport", "SchemaChange", "Usage", "UsageIndex", "diff_schemas", "usage_index"]

READ = "read"
WRITE = "write"
NEW_ENTITY = "new_entity"

# A schema coordinate (`Type`, `Type.member`, `Type.field(argument:)`, `@directive`), as
# graphql-core's change descriptions spell them too ("Field Company.zipCode was removed.").
_COORDINATE = r"(@?)([_A-Za-z]\w*)(?:\.([_A-Za-z]\w*)(?:\([_A-Za-z]\w*:\))?)?"
_COORDINATE_IN_TEXT = re.compile(rf"(?<![\w@.]){_COORDINATE}(?![\w(])")


# -- which streams use what -----------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Usage:
    """One stream's use of a schema element: `read` (list query, records) or `write` (mutations)."""

    stream: str
    side: str

    def __str__(self) -> str:
        return f"{self.stream} ({self.side})"


@dataclass
class UsageIndex:
    """Type names and root fields mapped to the streams whose queries or mutations use them."""

    query_type: str | None
    mutation_type: str | None
    stream_order: list[str] = field(default_factory=list)
    types: dict[str, set[Usage]] = field(default_factory=dict)
    root_fields: dict[tuple[str, str], set[Usage]] = field(default_factory=dict)

    def usages(self, coordinate: str) -> tuple[Usage, ...]:
        """Streams using this element, in stream order; () when the connector does not use it."""
        match = re.fullmatch(_COORDINATE, coordinate.strip())
        if match is None or match[1]:  # not a coordinate, or a directive's
            return ()
        type_name, member = match[2], match[3]
        found: set[Usage] = set()
        if type_name in (self.query_type, self.mutation_type):
            for (root, name), usages in self.root_fields.items():
                if root == type_name and member in (None, name):
                    found |= usages
        else:
            found = self.types.get(type_name, set())
        order = {name: i for i, name in enumerate(self.stream_order)}
        return tuple(
            sorted(found, key=lambda u: (order.get(u.stream, len(order)), u.stream, u.side))
        )

    def add(self, gql_type: GraphQLType, usage: Usage, *, deep: bool = True) -> None:
        """`usage` on a type and (`deep`) every type it reaches: fields, arguments, members."""
        named = get_named_type(gql_type)
        usages = self.types.setdefault(named.name, set())
        if usage in usages:
            return
        usages.add(usage)
        if not deep:
            return
        for member in named.types if isinstance(named, GraphQLUnionType) else ():
            self.add(member, usage)
        for gql_field in getattr(named, "fields", {}).values():  # object, interface or input
            self.add(gql_field.type, usage)
            for arg in getattr(gql_field, "args", {}).values():
                self.add(arg.type, usage)


def usage_index(schema: MoovagoSchema) -> UsageIndex:
    """Which streams use each type and root field of `schema`, and on which side."""
    gql = schema.graphql
    query, mutation = gql.query_type, gql.mutation_type
    index = UsageIndex(query.name if query else None, mutation.name if mutation else None)
    for entity in schema.entities():
        index.stream_order.append(entity.stream_name)
        read, write = Usage(entity.stream_name, READ), Usage(entity.stream_name, WRITE)
        root = query.fields.get(entity.root_field) if query else None
        if query is not None and root is not None:
            index.root_fields.setdefault((query.name, entity.root_field), set()).add(read)
            for arg in root.args.values():
                index.add(arg.type, read)
            index.add(root.type, read)
        if mutation is None or entity.writes is None:
            continue
        for shape in entity.writes.shapes.values():
            index.root_fields.setdefault((mutation.name, shape.path[0]), set()).add(write)
            parent = gql.get_type(shape.parent_type)
            if len(shape.path) > 1 and parent is not None:
                index.add(parent, write, deep=False)  # the namespace: CompanyMutation
            action = (
                parent.fields.get(shape.path[-1]) if isinstance(parent, GraphQLObjectType) else None
            )
            if action is None:
                continue
            for arg in action.args.values():
                index.add(arg.type, write)
            # The payload only: the target reads the id; a record in it is the read side.
            index.add(action.type, write, deep=False)
    return index


# -- diff ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaChange:
    """One change between two schema files and the streams it touches."""

    severity: str  # 'breaking' | 'dangerous' | 'deprecated' | 'new_entity'
    kind: str  # graphql-core's change type name, 'DEPRECATED' or 'ENTITY_ADDED'
    coordinate: str
    description: str
    usages: tuple[Usage, ...] = ()
    note: str = ""  # the deprecation reason, or the old one when a deprecated element went away
    #: Why the connector's view absorbs this change (it adapts: e.g. pages by cursor instead).
    adapted: str = ""

    @property
    def breaks_connector(self) -> bool:
        return self.severity == BREAKING and bool(self.usages) and not self.adapted

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "kind": self.kind,
            "coordinate": self.coordinate,
            "description": self.description,
            "streams": [{"stream": u.stream, "side": u.side} for u in self.usages],
            "note": self.note,
            "adapted": self.adapted,
            "breaks_connector": self.breaks_connector,
        }


@dataclass(frozen=True)
class DiffReport:
    old_path: str
    new_path: str
    changes: tuple[SchemaChange, ...]
    stream_order: tuple[str, ...]
    #: What each stream does differently (the connector's view), beside graphql-core's changes.
    view: tuple[ViewChange, ...] = ()
    #: Root types of the new file renamed to the old file's names before comparing.
    root_renames: Mapping[str, str] = field(default_factory=dict)

    @property
    def breaks_connector(self) -> bool:
        return any(change.breaks_connector for change in self.changes) or any(
            change.severity == BREAKING for change in self.view
        )

    def view_not_shown(self) -> list[ViewChange]:
        """View changes the graphql-core list does not already say, and every stream change."""
        return [
            change
            for change in self.view
            if not change.covered_by or change.aspect in ("stream", "writable")
            if change.covered_by != "ENTITY_ADDED"
        ]

    @property
    def exit_code(self) -> int:
        return 1 if self.breaks_connector else 0

    def by_stream(self) -> dict[str, list[tuple[SchemaChange, str]]]:
        """Changes under each stream they touch (with the sides), then '' for unused elements."""
        groups: dict[str, list[tuple[SchemaChange, str]]] = {name: [] for name in self.stream_order}
        unused: list[tuple[SchemaChange, str]] = []
        for change in self.changes:
            sides: dict[str, list[str]] = {}
            for usage in change.usages:
                sides.setdefault(usage.stream, []).append(usage.side)
            for stream, stream_sides in sides.items():
                groups.setdefault(stream, []).append((change, ", ".join(stream_sides)))
            if not sides:
                unused.append((change, ""))
        result = {name: rows for name, rows in groups.items() if rows}
        if unused:
            result[""] = unused
        return result

    def counts(self) -> dict[str, int]:
        counts = {BREAKING: 0, DANGEROUS: 0, DEPRECATED: 0, NEW_ENTITY: 0}
        for change in self.changes:
            counts[change.severity] += 1
        counts["breaking_used"] = sum(change.breaks_connector for change in self.changes)
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": self.old_path,
            "new": self.new_path,
            "summary": self.counts(),
            "breaks_connector": self.breaks_connector,
            "changes": [change.to_dict() for change in self.changes],
            "root_types": dict(self.root_renames),
            "connector": [change.to_dict() for change in self.view],
        }


def diff_schemas(old: MoovagoSchema, new: MoovagoSchema) -> DiffReport:
    """Breaking and dangerous changes, new deprecations and new entities from `old` to `new`.

    Breaking and dangerous changes are mapped to the streams that use them in `old` (what the
    connector runs against today); new deprecations and entities to the streams of `new`.
    The root types of `new` are first named as in `old` (`schema { query: RootQuery }` is the
    same API as `type Query`), and the connector's view of both files is compared too.
    """
    new, renames = root_mapped(old, new)
    old_index, new_index = usage_index(old), usage_index(new)
    old_deprecations = {d.coordinate: d.reason for d in old.deprecations()}
    changes: list[SchemaChange] = []
    for severity, found in (
        (BREAKING, find_breaking_changes(old.graphql, new.graphql)),
        (DANGEROUS, find_dangerous_changes(old.graphql, new.graphql)),
    ):
        for change in found:
            coordinate = _changed_coordinate(change.type.name, change.description, old)
            note = ""
            if change.type.name in ("FIELD_REMOVED", "ARG_REMOVED", "VALUE_REMOVED_FROM_ENUM"):
                reason = old_deprecations.get(coordinate)
                note = f"was deprecated: {reason}" if reason is not None else ""
            changes.append(
                SchemaChange(
                    severity=severity,
                    kind=change.type.name,
                    coordinate=coordinate,
                    description=change.description,
                    usages=old_index.usages(coordinate),
                    note=note,
                )
            )
    for deprecation in new.deprecations():
        if deprecation.coordinate in old_deprecations:
            continue
        changes.append(
            SchemaChange(
                severity=DEPRECATED,
                kind="DEPRECATED",
                coordinate=deprecation.coordinate,
                description=f"{deprecation.kind.replace('_', ' ').capitalize()}"
                f" {deprecation.coordinate} is newly deprecated.",
                usages=new_index.usages(deprecation.coordinate),
                note=deprecation.reason,
            )
        )
    old_entities = {entity.name for entity in old.entities()}
    for entity in new.entities():
        if entity.name in old_entities:
            continue
        root = f"{new_index.query_type}.{entity.root_field}"
        usages = [Usage(entity.stream_name, READ)]
        can_write = entity.writes is not None and entity.writes.writable
        if can_write:
            usages.append(Usage(entity.stream_name, WRITE))
        writable = "read and write" if can_write else "read only"
        changes.append(
            SchemaChange(
                severity=NEW_ENTITY,
                kind="ENTITY_ADDED",
                coordinate=root,
                description=f"New entity {entity.name} ({entity.type_name}, {writable}):"
                f" stream {entity.stream_name} after discovery.",
                usages=tuple(usages),
            )
        )
    stream_order = list(old_index.stream_order)
    stream_order += [name for name in new_index.stream_order if name not in stream_order]
    covered = {
        change.coordinate: change.kind
        for change in changes
        if change.severity in (BREAKING, DANGEROUS)
    }
    view = view_changes(old, new, covered)
    changes = _adapted(changes, view, old, new)
    return DiffReport(
        str(old.path),
        str(new.path),
        tuple(changes),
        tuple(stream_order),
        tuple(view),
        renames,
    )


def _adapted(
    changes: list[SchemaChange], view: Sequence[ViewChange], old: MoovagoSchema, new: MoovagoSchema
) -> list[SchemaChange]:
    """The changes the connectors absorb, marked `adapted` with how: a paging argument removed
    from a list the tap now pages another supported way, or a list become a connection (not a
    list that loses paging: one request for every row is a risk); a breaking change to the write
    side only of streams the target still writes with every kind of mutation (e.g.
    Mutation.company { create } become Mutation.createCompany, or update(input: {id, input})
    become update(id:, input:))."""
    repaged = {
        change.element: change.new
        for change in view
        if change.aspect == "paging" and not change.new.startswith(("none", "unsupported"))
    }
    query = old.graphql.query_type
    filters = {f"{query.name}.{e.root_field}": e.filter_arg for e in old.entities() if query}
    before, after = connector_view(old), connector_view(new)
    broken = {c.stream for c in view if c.side == WRITE and c.severity == BREAKING}
    result = []
    for change in changes:
        root, _, argument = change.coordinate.partition("(")
        paging_arg = change.kind == "ARG_REMOVED" and argument.rstrip(":)") != filters.get(root)
        connection = (
            change.kind == "FIELD_CHANGED_KIND"
            and not argument
            and " in " in (repaged.get(root) or "")
        )
        streams = {usage.stream for usage in change.usages}
        if root in repaged and (paging_arg or connection):
            change = dataclasses.replace(change, adapted=f"the tap pages with {repaged[root]}")
        elif (
            change.severity == BREAKING
            and change.usages
            and all(usage.side == WRITE for usage in change.usages)
            and not streams & broken
            and all(
                stream in before
                and stream in after
                and before[stream].writes
                and set(before[stream].writes) <= set(after[stream].writes)
                for stream in streams
            )
        ):
            calls = "; ".join(
                f"{stream}: {', '.join(after[stream].writes.values())}"
                for stream in sorted(streams)
            )
            change = dataclasses.replace(change, adapted=f"the target writes with {calls}")
        result.append(change)
    return result


def _changed_coordinate(kind: str, description: str, old: MoovagoSchema) -> str:
    """The element a graphql-core change description is about (else the description itself).

    Union and interface changes name the member first and the container last; every other
    description names its element first, as `Type.member(arg:)` or as a bare type name.
    """
    typed = [
        found[0]
        for found in _COORDINATE_IN_TEXT.finditer(description)
        if found[1] or found[3] or found[2] in old.graphql.type_map
    ]
    if not typed:
        return description
    if kind in ("TYPE_ADDED_TO_UNION", "TYPE_REMOVED_FROM_UNION", "IMPLEMENTED_INTERFACE_ADDED"):
        return typed[-1]
    return typed[0]
