"""The connector's own view of a schema file, and what changes in it between two files.

graphql-core compares types; the connectors see entities: which streams discovery offers, the
fields each reads and writes, how it pages, what makes it incremental, whether it is writable.
A file can keep every type and still change that view (a filter made nullable, `updatedAt`
deprecated), or rename the root types and change nothing at all. `root_mapped` renames the root
types of one file to the other's (`schema { query: RootQuery }` against `type Query`) so that
graphql-core compares like with like; `view_changes` lists what the connector would do
differently.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLNamedType,
    NamedTypeNode,
    NameNode,
    ObjectTypeDefinitionNode,
    ObjectTypeExtensionNode,
    Source,
    Visitor,
    build_ast_schema,
    get_named_type,
    parse,
    visit,
)

from moovago_api.plan import MutationShape
from moovago_api.schema import Entity, MoovagoSchema

__all__ = [
    "EntityView",
    "ViewChange",
    "connector_view",
    "root_mapped",
    "view_changes",
]

BREAKING = "breaking"
DANGEROUS = "dangerous"
INFO = "info"

_ROOTS = ("query", "mutation", "subscription")


# -- root types ------------------------------------------------------------------------------


def root_names(schema: MoovagoSchema) -> dict[str, str]:
    """{'query': 'Query', 'mutation': 'Mutation'}: the root operation types a file declares."""
    gql = schema.graphql
    types = {"query": gql.query_type, "mutation": gql.mutation_type, "subscription": None}
    types["subscription"] = gql.subscription_type
    return {kind: t.name for kind, t in types.items() if t is not None}


def root_mapped(old: MoovagoSchema, new: MoovagoSchema) -> tuple[MoovagoSchema, dict[str, str]]:
    """`new` with its root types named as in `old`, and the renames made ({'RootQuery': 'Query'}).

    Unchanged (and no renames) when the names already agree, or when a rename would collide with
    another type of `new` (then graphql-core reports the roots as they are).
    """
    old_roots, new_roots = root_names(old), root_names(new)
    renames = {
        new_roots[kind]: old_roots[kind]
        for kind in _ROOTS
        if kind in old_roots and kind in new_roots and old_roots[kind] != new_roots[kind]
    }
    if not renames:
        return new, {}
    taken = set(new.graphql.type_map) - set(renames)
    if any(target in taken for target in renames.values()):
        return new, {}
    document = parse(Source(new.sdl, str(new.path)))
    renamed = _rename_types(document, renames)
    mapped = MoovagoSchema(new.path, new.sdl, build_ast_schema(renamed, assume_valid_sdl=True))
    return mapped, renames


class _Renamer(Visitor):
    def __init__(self, renames: Mapping[str, str]) -> None:
        super().__init__()
        self.renames = renames

    def _renamed(self, node: Any) -> Any:
        """A copy of the node with its type name mapped; None (keep it) when not renamed."""
        if node.name.value not in self.renames:
            return None
        name = NameNode(value=self.renames[node.name.value])
        if dataclasses.is_dataclass(node) and not isinstance(node, type):  # graphql-core 3.3
            return dataclasses.replace(node, name=name)
        renamed = copy.copy(node)
        renamed.name = name
        return renamed

    def enter_named_type(self, node: NamedTypeNode, *_: object) -> Any:
        return self._renamed(node)

    def enter_object_type_definition(self, node: ObjectTypeDefinitionNode, *_: object) -> Any:
        return self._renamed(node)

    def enter_object_type_extension(self, node: ObjectTypeExtensionNode, *_: object) -> Any:
        return self._renamed(node)


def _rename_types(document: DocumentNode, renames: Mapping[str, str]) -> DocumentNode:
    renamed = visit(document, _Renamer(renames))
    if not isinstance(renamed, DocumentNode):  # pragma: no cover (visit keeps the node kind)
        raise TypeError("renaming the root types did not give a document")
    return renamed


# -- the view --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntityView:
    """One stream as the tap and target see it in one file."""

    stream: str
    entity: str
    type_name: str
    root: str  # 'Query.companyList'
    read_fields: dict[str, str] = field(default_factory=dict)  # dotted path -> type text
    read_coordinates: dict[str, str] = field(default_factory=dict)  # path -> 'Coordinates.lat'
    write_fields: dict[str, str] = field(default_factory=dict)  # name -> 'String!' (required)
    write_coordinates: dict[str, list[str]] = field(default_factory=dict)
    paging: str = "none"
    incremental: str = "none"
    mutation: str | None = None  # 'Mutation.company' when writable (top-level: each, joined)
    #: kind -> the mutation the target calls: {'create': 'Mutation.company.create', ...}
    writes: dict[str, str] = field(default_factory=dict)


def connector_view(schema: MoovagoSchema) -> dict[str, EntityView]:
    """Every entity of `schema` by stream name, in discovery order."""
    gql = schema.graphql
    query_name = gql.query_type.name if gql.query_type else "Query"
    mutation_name = gql.mutation_type.name if gql.mutation_type else "Mutation"
    views: dict[str, EntityView] = {}
    for entity in schema.entities():
        if entity.problem is not None:  # listed, but no sync can read it: not a stream here
            continue
        read_fields: dict[str, str] = {}
        read_coordinates: dict[str, str] = {}
        _walk_output(gql.get_type(entity.type_name), "", read_fields, read_coordinates, ())
        write_fields: dict[str, str] = {}
        write_coordinates: dict[str, list[str]] = {}
        for shape in write_shapes(entity):
            for input_field in shape.fields:
                name = input_field.name
                write_fields.setdefault(name, input_field.type)
                write_coordinates.setdefault(name, []).append(f"{shape.data_type}.{name}")
        writes = _writes(entity, mutation_name)
        views[entity.stream_name] = EntityView(
            stream=entity.stream_name,
            entity=entity.name,
            type_name=entity.type_name,
            root=f"{query_name}.{entity.root_field}",
            read_fields=read_fields,
            read_coordinates=read_coordinates,
            write_fields=write_fields,
            write_coordinates=write_coordinates,
            paging=_paging(entity),
            incremental=_incremental(entity),
            mutation=_mutation(entity, mutation_name),
            writes=writes,
        )
    return views


def write_shapes(entity: Entity) -> list[MutationShape]:
    """The create and update mutations of a writable entity (what the target sends fields to)."""
    writes = entity.writes
    if writes is None or not writes.writable:
        return []
    return [writes.shapes[kind] for kind in ("create", "update") if kind in writes.shapes]


def _writes(entity: Entity, mutation_name: str) -> dict[str, str]:
    writes = entity.writes
    if writes is None or not writes.writable:
        return {}
    return {kind: ".".join((mutation_name, *shape.path)) for kind, shape in writes.shapes.items()}


def _mutation(entity: Entity, mutation_name: str) -> str | None:
    """'Mutation.company' (a namespace), or the top-level mutations joined; None: read only."""
    writes = entity.writes
    if writes is None or not writes.writable:
        return None
    roots = dict.fromkeys(shape.path[0] for shape in writes.shapes.values())
    return ", ".join(f"{mutation_name}.{root}" for root in roots)


def _walk_output(
    named: GraphQLNamedType | None,
    prefix: str,
    fields: dict[str, str],
    coordinates: dict[str, str],
    seen: tuple[str, ...],
) -> None:
    own = getattr(named, "fields", None)
    if named is None or not isinstance(own, dict) or named.name in seen:
        return
    for name, gql_field in own.items():
        path = f"{prefix}{name}"
        fields[path] = str(gql_field.type)
        coordinates[path] = f"{named.name}.{name}"
        _walk_output(
            get_named_type(gql_field.type), f"{path}.", fields, coordinates, (*seen, named.name)
        )


def _paging(entity: Entity) -> str:
    """How the tap pages the list, in words: 'offset skip/limit', 'cursor after/first in nodes'."""
    shape = entity.paging
    if shape.kind == "unsupported":
        return f"unsupported ({shape.problem or 'unknown'})"
    if shape.kind == "none":
        return "none (one request)"
    text = f"{shape.kind} {shape.start_arg}/{shape.size_arg}"
    if shape.rows != "list":
        text += f" in {shape.rows}"
    if shape.sort_arg:
        text += f", sorted by {shape.sort_arg}"
    return text


def _incremental(entity: Entity) -> str:
    if entity.replication_key and entity.bound_path:
        return f"{entity.replication_key} (filter {entity.bound_path[0]})"
    return "none (full table)"


# -- changes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ViewChange:
    """One difference in what a stream does between two files."""

    stream: str
    aspect: str  # 'stream' | 'read field' | 'write field' | 'paging' | 'incremental' | 'writable'
    element: str  # the field path, or the root field
    old: str
    new: str
    severity: str  # 'breaking' | 'dangerous' | 'info'
    coordinates: tuple[str, ...] = ()  # the schema elements behind it, in the old file's names
    detail: str = ""
    covered_by: str = ""  # the graphql-core change that says the same, if any

    @property
    def side(self) -> str:
        return "write" if self.aspect in ("write field", "writable", "writes") else "read"

    def to_dict(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "aspect": self.aspect,
            "element": self.element,
            "old": self.old,
            "new": self.new,
            "severity": self.severity,
            "side": self.side,
            "detail": self.detail,
            "covered_by": self.covered_by,
        }


def view_changes(
    old: MoovagoSchema, new: MoovagoSchema, covered: Mapping[str, str] | None = None
) -> list[ViewChange]:
    """What each stream does differently with `new` than with `old`.

    `new` should be root-mapped (`root_mapped`) first. `covered` maps schema coordinates to the
    graphql-core change kind already reported for them; a view change behind one of those is
    marked `covered_by` it (it says the same thing in the connector's words).
    """
    covered = covered or {}
    before, after = connector_view(old), connector_view(new)
    changes: list[ViewChange] = []
    for stream, was in before.items():
        now = after.get(stream)
        if now is None:
            changes.append(_not_detected(was, new, covered))
            continue
        changes += _field_changes(was, now, covered)
        # A paging shape the tap refuses stops the stream; any other change reads differently.
        paging_severity = BREAKING if now.paging.startswith("unsupported") else DANGEROUS
        for aspect, old_value, new_value, severity in (
            ("paging", was.paging, now.paging, paging_severity),
            ("incremental", was.incremental, now.incremental, DANGEROUS),
        ):
            if old_value != new_value:
                changes.append(ViewChange(stream, aspect, was.root, old_value, new_value, severity))
        if (was.mutation is None) != (now.mutation is None):
            lost = now.mutation is None
            changes.append(
                ViewChange(
                    stream,
                    "writable",
                    was.mutation or now.mutation or "",
                    "yes" if was.mutation else "no",
                    "yes" if now.mutation else "no",
                    BREAKING if lost else INFO,
                    (was.mutation,) if lost and was.mutation else (),
                    "target-moovago can no longer write this stream" if lost else "",
                    covered.get(was.mutation or "", ""),
                )
            )
        elif was.writes != now.writes:
            changes.append(_writes_change(was, now))
    for stream, now in after.items():
        if stream not in before:
            changes.append(
                ViewChange(
                    stream,
                    "stream",
                    now.root,
                    "-",
                    "detected",
                    INFO,
                    detail="offered by discovery",
                    covered_by="ENTITY_ADDED",
                )
            )
    return changes


def _writes_change(was: EntityView, now: EntityView) -> ViewChange:
    """The stream stays writable through other mutations: a kind lost breaks the target."""
    lost = [kind for kind in was.writes if kind not in now.writes]
    moved = ", ".join(
        f"{kind} {was.writes[kind]} -> {now.writes[kind]}"
        for kind in was.writes
        if kind in now.writes and was.writes[kind] != now.writes[kind]
    )
    detail = f"target-moovago can no longer {' or '.join(lost)} this stream" if lost else ""
    if not lost:
        detail = f"target-moovago writes with the new mutations ({moved})" if moved else ""
    return ViewChange(
        was.stream,
        "writes",
        was.mutation or "",
        ", ".join(sorted(was.writes)),
        ", ".join(sorted(now.writes)),
        BREAKING if lost else INFO,
        tuple(was.writes[kind] for kind in lost),
        detail,
    )


def _not_detected(was: EntityView, new: MoovagoSchema, covered: Mapping[str, str]) -> ViewChange:
    query = new.graphql.query_type
    root_field = was.root.split(".", 1)[1]
    present = query is not None and root_field in query.fields
    if present and query is not None:
        shape = str(query.fields[root_field].type)
        args = ", ".join(f"{n}: {a.type}" for n, a in query.fields[root_field].args.items())
        why = (
            f"{was.root}({args}): {shape} is still in the file but is not read as a list of"
            f" {was.type_name}: the stream disappears from discovery"
        )
    else:
        why = f"{was.root} is not in the file: the stream disappears from discovery"
    return ViewChange(
        was.stream,
        "stream",
        was.root,
        "detected",
        "not detected",
        BREAKING,
        (was.root,),
        why,
        covered.get(was.root, ""),
    )


def _field_changes(
    was: EntityView, now: EntityView, covered: Mapping[str, str]
) -> list[ViewChange]:
    changes: list[ViewChange] = []
    for aspect, old_fields, new_fields in (
        ("read field", was.read_fields, now.read_fields),
        ("write field", was.write_fields, now.write_fields),
    ):
        gone: list[str] = []
        for name in [*old_fields, *(n for n in new_fields if n not in old_fields)]:
            old_type, new_type = old_fields.get(name), new_fields.get(name)
            if old_type == new_type or any(name.startswith(f"{g}.") for g in gone):
                continue
            if new_type is None:
                gone.append(name)  # its nested fields go with it: one change, not one per field
            if aspect == "read field":
                coordinates = [was.read_coordinates.get(name) or now.read_coordinates[name]]
            else:
                coordinates = was.write_coordinates.get(name) or now.write_coordinates[name]
            if old_type is None:
                required = aspect == "write field" and str(new_type).endswith("!")
                severity = BREAKING if required else INFO
            else:
                severity = BREAKING
            kinds = [covered[c] for c in coordinates if c in covered]
            changes.append(
                ViewChange(
                    was.stream,
                    aspect,
                    name,
                    old_type or "-",
                    new_type or "-",
                    severity,
                    tuple(coordinates),
                    covered_by=kinds[0] if kinds else "",
                )
            )
    return changes
