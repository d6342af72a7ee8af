"""Schema drift: what a new Moovago schema file changes for the connectors, before it breaks them.

Pure functions over loaded schemas (no I/O): which streams use each type, field and argument
(`usage_index`), the breaking, dangerous and newly deprecated elements between two files grouped
by stream (`diff_schemas`), and the catalog fields a tap selects or the input fields a target
writes held against a file (`check_catalog`, `check_target_fields`; the per-field check is
`moovago_schema.deprecations.field_report`).

Sides: `read` is the list query and its record types (the tap, and the target's lookups of
existing rows); `write` is the mutations and their input types (the target).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLUnionType,
    find_breaking_changes,
    find_dangerous_changes,
    get_named_type,
)
from singer_sdk.singerlib import MetadataMapping

from moovago_api.schema import MoovagoSchema
from moovago_schema.deprecations import DEPRECATED, MISSING, FieldIssue, field_report
from moovago_schema.view import (
    ViewChange,
    connector_view,
    root_mapped,
    view_changes,
    write_shapes,
)

__all__ = [
    "CheckIssue",
    "Coordinate",
    "DiffReport",
    "FieldIssue",
    "SchemaChange",
    "Usage",
    "UsageIndex",
    "check_catalog",
    "check_target_fields",
    "diff_schemas",
    "field_report",
    "parse_coordinate",
    "selected_fields",
    "target_streams_from_config",
    "usage_index",
]

READ = "read"
WRITE = "write"

BREAKING = "breaking"
DANGEROUS = "dangerous"
NEW_ENTITY = "new_entity"

CHANGED = "changed"
NEW = "new"


# -- coordinates -----------------------------------------------------------------------------

_COORDINATE = re.compile(
    r"^(?P<directive>@)?(?P<type>[_A-Za-z]\w*)"
    r"(?:\.(?P<member>[_A-Za-z]\w*)(?:\((?P<argument>[_A-Za-z]\w*):\))?)?$"
)
# A coordinate inside graphql-core's change descriptions ("Field Company.zipCode was removed.").
_COORDINATE_IN_TEXT = re.compile(
    r"(?<![\w@.])@?[_A-Za-z]\w*(?:\.[_A-Za-z]\w*(?:\([_A-Za-z]\w*:\))?)?(?![\w(])"
)


@dataclass(frozen=True)
class Coordinate:
    """A schema coordinate: `Type`, `Type.member` or `Type.field(argument:)`."""

    type_name: str
    member: str | None = None
    argument: str | None = None
    directive: bool = False

    def __str__(self) -> str:
        text = ("@" if self.directive else "") + self.type_name
        if self.member is not None:
            text += f".{self.member}"
            if self.argument is not None:
                text += f"({self.argument}:)"
        return text


def parse_coordinate(text: str) -> Coordinate:
    """`Company.zipCode` -> Coordinate('Company', 'zipCode'); ValueError when not a coordinate."""
    match = _COORDINATE.match(text.strip())
    if match is None:
        raise ValueError(f"Not a schema coordinate: {text!r}")
    return Coordinate(
        match["type"], match["member"], match["argument"], directive=bool(match["directive"])
    )


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

    def usages(self, coordinate: Coordinate | str) -> tuple[Usage, ...]:
        """Streams using this element, in stream order; () when the connector does not use it."""
        if isinstance(coordinate, str):
            coordinate = parse_coordinate(coordinate)
        if coordinate.directive:
            return ()
        found: set[Usage] = set()
        if coordinate.type_name in (self.query_type, self.mutation_type):
            if coordinate.member is None:
                for (type_name, _), usages in self.root_fields.items():
                    if type_name == coordinate.type_name:
                        found |= usages
            else:
                found = self.root_fields.get((coordinate.type_name, coordinate.member), set())
        else:
            found = self.types.get(coordinate.type_name, set())
        return self.sort(found)

    def sort(self, usages: Iterable[Usage]) -> tuple[Usage, ...]:
        order = {name: i for i, name in enumerate(self.stream_order)}
        return tuple(
            sorted(set(usages), key=lambda u: (order.get(u.stream, len(order)), u.stream, u.side))
        )

    def _add_type(self, named: GraphQLNamedType, usage: Usage) -> bool:
        usages = self.types.setdefault(named.name, set())
        if usage in usages:
            return False
        usages.add(usage)
        return True

    def _walk_output(self, gql_type: GraphQLOutputType, usage: Usage) -> None:
        named = get_named_type(gql_type)
        if not self._add_type(named, usage):
            return
        if isinstance(named, (GraphQLObjectType, GraphQLInterfaceType)):
            for gql_field in named.fields.values():
                self._walk_output(gql_field.type, usage)
                for arg in gql_field.args.values():
                    self._walk_input(arg.type, usage)
        elif isinstance(named, GraphQLUnionType):
            for member in named.types:
                self._walk_output(member, usage)

    def _walk_input(self, gql_type: GraphQLInputType, usage: Usage) -> None:
        named = get_named_type(gql_type)
        if not self._add_type(named, usage):
            return
        if isinstance(named, GraphQLInputObjectType):
            for input_field in named.fields.values():
                self._walk_input(input_field.type, usage)


def usage_index(schema: MoovagoSchema) -> UsageIndex:
    """Which streams use each type and root field of `schema`, and on which side."""
    gql = schema.graphql
    query, mutation = gql.query_type, gql.mutation_type
    index = UsageIndex(
        query_type=query.name if query else None,
        mutation_type=mutation.name if mutation else None,
    )
    for entity in schema.entities():
        index.stream_order.append(entity.stream_name)
        read = Usage(entity.stream_name, READ)
        root = query.fields.get(entity.root_field) if query else None
        if query is not None and root is not None:
            index.root_fields.setdefault((query.name, entity.root_field), set()).add(read)
            for arg in root.args.values():
                index._walk_input(arg.type, read)
            index._walk_output(root.type, read)
        if mutation is None:
            continue
        write = Usage(entity.stream_name, WRITE)
        writes = entity.writes
        for shape in writes.shapes.values() if writes is not None else ():
            index.root_fields.setdefault((mutation.name, shape.path[0]), set()).add(write)
            parent = gql.get_type(shape.parent_type)
            if len(shape.path) > 1 and parent is not None:
                index._add_type(parent, write)  # the namespace: CompanyMutation
            action = (
                parent.fields.get(shape.path[-1]) if isinstance(parent, GraphQLObjectType) else None
            )
            if action is None:
                continue
            for arg in action.args.values():
                index._walk_input(arg.type, write)
            # The payload only: the target reads the id; a record in it is the read side.
            index._add_type(get_named_type(action.type), write)
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
            coordinate = _changed_coordinate(change.type.name, change.description, old.graphql)
            note = ""
            if change.type.name in ("FIELD_REMOVED", "ARG_REMOVED", "VALUE_REMOVED_FROM_ENUM"):
                reason = old_deprecations.get(str(coordinate))
                note = f"was deprecated: {reason}" if reason is not None else ""
            changes.append(
                SchemaChange(
                    severity=severity,
                    kind=change.type.name,
                    coordinate=str(coordinate),
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
                description=f"{_KIND_LABELS[deprecation.kind]} {deprecation.coordinate}"
                " is newly deprecated.",
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
    changes = _adapted(changes, view, old)
    changes = _write_adapted(changes, view, old, new)
    return DiffReport(
        str(old.path),
        str(new.path),
        tuple(changes),
        tuple(stream_order),
        tuple(view),
        renames,
    )


def _adapted(
    changes: list[SchemaChange], view: Sequence[ViewChange], old: MoovagoSchema
) -> list[SchemaChange]:
    """Paging arguments removed from a list the tap now pages another supported way do not break
    it: such changes are marked `adapted`, with the new paging shape. (Not when the list loses
    paging altogether: one request for every row is a risk, not an adaptation.)"""
    repaged = {
        change.element: change.new
        for change in view
        if change.aspect == "paging" and not change.new.startswith(("none", "unsupported"))
    }
    filters = {
        f"{old.graphql.query_type.name}.{e.root_field}": e.filter_arg
        for e in old.entities()
        if old.graphql.query_type is not None
    }
    result = []
    for change in changes:
        root, _, argument = change.coordinate.partition("(")
        removed_paging_arg = change.kind == "ARG_REMOVED" and argument.rstrip(":)") != filters.get(
            root
        )
        # A list that became a connection: the rows are read from its nodes or edges.
        connection = (
            change.kind == "FIELD_CHANGED_KIND"
            and not argument
            and " in " in (repaged.get(root) or "")
        )
        if root in repaged and (removed_paging_arg or connection):
            change = dataclasses.replace(change, adapted=f"the tap pages with {repaged[root]}")
        result.append(change)
    return result


def _write_adapted(
    changes: list[SchemaChange],
    view: Sequence[ViewChange],
    old: MoovagoSchema,
    new: MoovagoSchema,
) -> list[SchemaChange]:
    """A breaking change that only touches the write side of streams the target still writes
    the same way (every kind still has a mutation, every write field is still there) is absorbed:
    e.g. Mutation.company { create } became Mutation.createCompany, or update(input: {id, input})
    became update(id:, input:). It is marked `adapted` with the mutations the target now calls."""
    before, after = connector_view(old), connector_view(new)
    broken = {
        change.stream for change in view if change.side == WRITE and change.severity == BREAKING
    }
    result = []
    for change in changes:
        streams = {usage.stream for usage in change.usages}
        if (
            change.severity == BREAKING
            and not change.adapted
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


_KIND_LABELS = {
    "field": "Field",
    "argument": "Argument",
    "enum_value": "Enum value",
    "input_field": "Input field",
}


def _changed_coordinate(kind: str, description: str, old: GraphQLSchema) -> Coordinate:
    """The element a graphql-core change description is about.

    Union and interface changes name the member first and the container last; every other
    description names its element first, as `Type.member(arg:)` or as a bare type name.
    """
    found = [parse_coordinate(text) for text in _COORDINATE_IN_TEXT.findall(description)]
    typed = [c for c in found if c.directive or c.member is not None or c.type_name in old.type_map]
    if not typed:
        return Coordinate(description)
    if kind in ("TYPE_ADDED_TO_UNION", "TYPE_REMOVED_FROM_UNION", "IMPLEMENTED_INTERFACE_ADDED"):
        return typed[-1]
    return typed[0]


# -- field checks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckIssue:
    """One finding of `moovago-schema check`."""

    source: str  # 'catalog' | 'target'
    stream: str
    field: str
    status: str  # 'missing' | 'deprecated' | 'changed' | 'new'
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {
            "source": self.source,
            "stream": self.stream,
            "field": self.field,
            "status": self.status,
            "reason": self.reason,
        }


def selected_fields(catalog_entry: Mapping[str, Any]) -> list[str] | None:
    """Dotted paths of the properties a Singer catalog entry selects; None when the stream
    itself is not selected. Selection follows the Singer SDK's rules (`selected`,
    `inclusion: automatic`, `selected-by-default`, parents before children).
    """
    metadata = MetadataMapping.from_iterable(catalog_entry.get("metadata") or [])
    mask = metadata.resolve_selection()
    if not mask[()]:
        return None
    breadcrumbs: list[tuple[str, ...]] = []

    def walk(properties: Mapping[str, Any], prefix: tuple[str, ...]) -> None:
        for name, prop in properties.items():
            breadcrumb = (*prefix, "properties", name)
            breadcrumbs.append(breadcrumb)
            if isinstance(prop, Mapping) and isinstance(prop.get("properties"), Mapping):
                walk(prop["properties"], breadcrumb)

    schema = catalog_entry.get("schema") or {}
    walk(schema.get("properties") or {}, ())
    breadcrumbs += [b for b in metadata if b and b not in breadcrumbs]
    paths = []
    for breadcrumb in breadcrumbs:
        if len(breadcrumb) % 2 or any(b != "properties" for b in breadcrumb[::2]):
            continue
        if mask[breadcrumb]:
            paths.append(".".join(breadcrumb[1::2]))
    return paths


def check_catalog(schema: MoovagoSchema, catalog: Mapping[str, Any]) -> list[CheckIssue]:
    """The fields a tap catalog selects, held against `schema`.

    'missing': the stream or field is not in the file (the tap would fail); 'deprecated': it will
    be removed (the reason says when); 'changed': its JSON type or enum values differ from what
    the catalog recorded (re-run discovery); 'new': a stream the catalog does not have yet.
    """
    issues: list[CheckIssue] = []
    known = {entity.stream_name: entity for entity in schema.entities()}
    names = ", ".join(known)
    seen: set[str] = set()
    for entry in catalog.get("streams") or []:
        stream = str(entry.get("tap_stream_id") or entry.get("stream"))
        seen.add(stream)
        paths = selected_fields(entry)
        if paths is None:
            continue
        entity = known.get(stream)
        if entity is None:
            issues.append(
                CheckIssue(
                    "catalog",
                    stream,
                    "",
                    MISSING,
                    f"no stream {stream!r} in {schema.path.name} (it has: {names})",
                )
            )
            continue
        found: dict[str, list[FieldIssue]] = {}
        for issue in field_report(schema, entity.type_name, paths):
            found.setdefault(issue.field, []).append(issue)
        live = schema.output_json_schema(entity.type_name)
        catalog_schema = entry.get("schema") or {}
        for path in paths:
            issues += [
                CheckIssue("catalog", stream, path, i.status, i.reason) for i in found.get(path, [])
            ]
            if any(i.status == MISSING for i in found.get(path, [])):
                continue
            reason = _shape_change(_property(catalog_schema, path), _property(live, path))
            if reason:
                issues.append(CheckIssue("catalog", stream, path, CHANGED, reason))
    for stream, entity in known.items():
        if stream not in seen:
            issues.append(
                CheckIssue(
                    "catalog",
                    stream,
                    "",
                    NEW,
                    f"stream {stream} ({entity.root_field}) is not in the catalog:"
                    " run discovery to offer it",
                )
            )
    return issues


def check_target_fields(
    schema: MoovagoSchema,
    written: Mapping[str, Sequence[str] | None],
    match_keys: Mapping[str, Sequence[str]] | None = None,
) -> list[CheckIssue]:
    """The fields a target writes per stream, held against the stream's mutation inputs.

    `written` maps stream names to input field names (None: every field of the stream's create
    and update inputs, which is what the target writes when the rows have those columns). A
    field must be in the create or the update data input, and the stream must have a mutation.
    `match_keys` fields are also looked up in the record type, since the target finds existing
    rows by them. Types and enum values are not compared: the target validates every row.
    """
    issues: list[CheckIssue] = []
    known = {entity.stream_name: entity for entity in schema.entities()}
    by_name = {entity.name: entity for entity in schema.entities()}
    for stream, fields in written.items():
        entity = known.get(stream) or by_name.get(stream)
        shapes = write_shapes(entity) if entity is not None else []
        if entity is None or not shapes:
            why = "no stream" if entity is None else "no mutation for stream"
            issues.append(
                CheckIssue("target", stream, "", MISSING, f"{why} {stream!r} in {schema.path.name}")
            )
            continue
        inputs = list(dict.fromkeys(s.data_type for s in shapes if s.data_type))
        writable = [f.name for shape in shapes for f in shape.fields]
        names = list(fields) if fields is not None else list(dict.fromkeys(writable))
        reports = {name: field_report(schema, name, names) for name in inputs}
        for field_name in names:
            per_input = [i for report in reports.values() for i in report if i.field == field_name]
            missing = [i for i in per_input if i.status == MISSING]
            if missing and len(missing) == len(inputs):
                reason = _joined(missing)
                issues.append(CheckIssue("target", stream, field_name, MISSING, reason))
                continue
            deprecated = [i for i in per_input if i.status == DEPRECATED]
            for detail in dict.fromkeys(i.detail for i in deprecated):
                same = [i for i in deprecated if i.detail == detail]
                issues.append(CheckIssue("target", stream, field_name, DEPRECATED, _joined(same)))
            for value in _deprecated_values(schema, inputs, field_name):
                reason = f"value {value.coordinate}: {value.detail}"
                issues.append(CheckIssue("target", stream, field_name, DEPRECATED, reason))
        keys = list((match_keys or {}).get(stream) or ())
        for issue in field_report(schema, entity.type_name, keys):
            reason = f"match key: {issue.reason}"
            issues.append(CheckIssue("target", stream, issue.field, issue.status, reason))
    return issues


def _deprecated_values(
    schema: MoovagoSchema, input_types: Sequence[str], field_name: str
) -> list[FieldIssue]:
    """Deprecated values of the enum an input field takes: rows must stop sending them."""
    found: dict[str, FieldIssue] = {}
    for type_name in input_types:
        gql_type = schema.graphql.get_type(type_name)
        fields = gql_type.fields if isinstance(gql_type, GraphQLInputObjectType) else {}
        input_field = fields.get(field_name)
        enum = get_named_type(input_field.type) if input_field is not None else None
        if not isinstance(enum, GraphQLEnumType):
            continue
        for value_name, value in enum.values.items():
            coordinate = f"{enum.name}.{value_name}"
            if value.deprecation_reason is not None and coordinate not in found:
                found[coordinate] = FieldIssue(
                    type_name, field_name, DEPRECATED, coordinate, value.deprecation_reason
                )
    return list(found.values())


def _joined(issues: Sequence[FieldIssue]) -> str:
    """'A.x and B.x: reason' for issues sharing one detail, else their reasons joined."""
    if len({i.detail for i in issues}) == 1:
        return " and ".join(i.coordinate for i in issues) + f": {issues[0].detail}"
    return "; ".join(i.reason for i in issues)


def _property(json_schema: Mapping[str, Any], path: str) -> Mapping[str, Any] | None:
    node: Any = json_schema
    for part in path.split("."):
        while isinstance(node, Mapping) and "items" in node and "properties" not in node:
            node = node["items"]
        properties = node.get("properties") if isinstance(node, Mapping) else None
        if not isinstance(properties, Mapping) or part not in properties:
            return None
        node = properties[part]
    return node if isinstance(node, Mapping) else None


def _types(prop: Mapping[str, Any]) -> list[str]:
    declared = prop.get("type")
    listed = declared if isinstance(declared, list) else [declared] if declared else []
    return sorted(str(t) for t in listed if t != "null")


def _shape_change(recorded: Mapping[str, Any] | None, live: Mapping[str, Any] | None) -> str:
    """Why a catalog property no longer matches the schema's, or '' when it still does."""
    if recorded is None or live is None or not _types(recorded):
        return ""
    if _types(recorded) != _types(live) or recorded.get("format") != live.get("format"):
        return f"type in catalog: {_type_text(recorded)}; in schema: {_type_text(live)}"
    if "items" in recorded and "items" in live:
        inner = _shape_change(recorded["items"], live["items"])
        if inner:
            return f"items: {inner}"
    old_values, new_values = recorded.get("enum"), live.get("enum")
    if isinstance(old_values, list) and isinstance(new_values, list):
        gone = [v for v in old_values if v is not None and v not in new_values]
        if gone:
            return "enum values no longer in the schema: " + ", ".join(map(str, gone))
    return ""


def _type_text(prop: Mapping[str, Any]) -> str:
    text = "|".join(_types(prop))
    if prop.get("format"):
        text += f" ({prop['format']})"
    return text


def target_streams_from_config(
    config: Mapping[str, Any],
    stream_names: Iterable[str],
    default: Iterable[str],
    default_match_keys: Mapping[str, object] | None = None,
) -> tuple[dict[str, Sequence[str] | None], dict[str, list[str]]]:
    """The streams a target config writes, and the match-key fields of each.

    Streams are the keys of every per-stream setting (an object whose keys are all stream or
    entity names: `match_keys`, `stream_modes`); with none, the `default` streams. The target
    writes whatever input fields the rows hold, so each stream's fields are None (all).
    Match keys come from `match_keys`, else `default_match_keys`; values may be field lists,
    lists of lists, or 'a+b?' strings.
    """
    known = set(stream_names)
    streams: dict[str, Sequence[str] | None] = {}
    for value in config.values():
        if isinstance(value, Mapping) and value and all(key in known for key in value):
            streams.update(dict.fromkeys(value, None))
    configured = config.get("match_keys")
    configured = configured if isinstance(configured, Mapping) else {}
    streams.update(dict.fromkeys((str(key) for key in configured), None))
    if not streams:
        streams = dict.fromkeys(default, None)
    match_keys: dict[str, list[str]] = {}
    for stream in streams:
        spec = configured.get(stream, (default_match_keys or {}).get(stream))
        if spec is not None:
            match_keys[stream] = _key_fields(spec)
    return streams, match_keys


def _key_fields(spec: object) -> list[str]:
    if isinstance(spec, str):
        parts = re.split(r"[+,]", spec)
        return [p.strip().rstrip("?") for p in parts if p.strip().rstrip("?")]
    names: list[str] = []
    if isinstance(spec, Sequence):
        for item in spec:
            names += [name for name in _key_fields(item) if name not in names]
    return names
