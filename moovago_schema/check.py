"""`check`: the fields a tap catalog selects and a target config writes, held against a file."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from graphql import get_named_type
from singer_sdk.singerlib import MetadataMapping

from moovago_api.schema import MoovagoSchema
from moovago_schema.deprecations import DEPRECATED, MISSING, FieldIssue, field_report
from moovago_schema.view import write_shapes

__all__ = [
    "CheckIssue",
    "check_catalog",
    "check_target_fields",
    "selected_fields",
    "target_streams_from_config",
]

CHANGED = "changed"
NEW = "new"


@dataclass(frozen=True)
class CheckIssue:
    """One finding of `moovago-schema check`."""

    source: str  # 'catalog' | 'target'
    stream: str
    field: str
    status: str  # 'missing' | 'deprecated' | 'changed' | 'new'
    reason: str

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


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
    schema: MoovagoSchema, streams: Iterable[str], match_keys: Mapping[str, Sequence[str]]
) -> list[CheckIssue]:
    """Every field of the streams' create and update inputs (the target writes whatever the rows
    hold), and their match keys in the record type (the target finds existing rows by them).
    Types and enum values are not compared: the target validates every row."""
    issues: list[CheckIssue] = []
    known = {entity.stream_name: entity for entity in schema.entities()}
    by_name = {entity.name: entity for entity in schema.entities()}
    values = [d for d in schema.deprecations() if d.kind == "enum_value"]
    for stream in streams:
        entity = known.get(stream) or by_name.get(stream)
        shapes = write_shapes(entity) if entity is not None else []
        if entity is None or not shapes:
            why = "no stream" if entity is None else "no mutation for stream"
            issues.append(
                CheckIssue("target", stream, "", MISSING, f"{why} {stream!r} in {schema.path.name}")
            )
            continue
        inputs = list(dict.fromkeys(s.data_type for s in shapes if s.data_type))
        names = list(dict.fromkeys(f.name for shape in shapes for f in shape.fields))
        reports = [i for name in inputs for i in field_report(schema, name, names)]
        deprecated = [i for i in reports if i.status == DEPRECATED]
        for field_name in names:
            found = [i for i in deprecated if i.field == field_name]
            for detail in dict.fromkeys(i.detail for i in found):
                same = " and ".join(i.coordinate for i in found if i.detail == detail)
                reason = f"{same}: {detail}"
                issues.append(CheckIssue("target", stream, field_name, DEPRECATED, reason))
            # Deprecated values of the enum the field takes: rows must stop sending them.
            for enum in dict.fromkeys(_enum_name(schema, name, field_name) for name in inputs):
                for value in (v for v in values if v.coordinate.split(".")[0] == enum):
                    reason = f"value {value.coordinate}: {value.reason}"
                    issues.append(CheckIssue("target", stream, field_name, DEPRECATED, reason))
        for issue in field_report(schema, entity.type_name, list(match_keys.get(stream) or ())):
            reason = f"match key: {issue.reason}"
            issues.append(CheckIssue("target", stream, issue.field, issue.status, reason))
    return issues


def _enum_name(schema: MoovagoSchema, input_type: str, field_name: str) -> str | None:
    input_field = getattr(schema.graphql.get_type(input_type), "fields", {}).get(field_name)
    return get_named_type(input_field.type).name if input_field is not None else None


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
    default_match_keys: Mapping[str, object],
) -> tuple[list[str], dict[str, list[str]]]:
    """The streams a target config writes: the keys of every per-stream setting (an object keyed
    only by stream or entity names: `match_keys`, `stream_modes`), else `default`; and the
    match-key fields of each (`match_keys`, else `default_match_keys`)."""
    known = set(stream_names)
    streams: dict[str, None] = {}
    for value in config.values():
        if isinstance(value, Mapping) and value and all(key in known for key in value):
            streams.update(dict.fromkeys(value))
    configured = config.get("match_keys")
    configured = configured if isinstance(configured, Mapping) else {}
    streams.update(dict.fromkeys(str(key) for key in configured))
    if not streams:
        streams = dict.fromkeys(default)
    match_keys: dict[str, list[str]] = {}
    for stream in streams:
        spec = configured.get(stream, default_match_keys.get(stream))
        if spec is not None:
            match_keys[stream] = _key_fields(spec)
    return list(streams), match_keys


def _key_fields(spec: object) -> list[str]:
    """The field names of a key spec: names (`name?`), lists of them, or 'a+b?' text."""
    if isinstance(spec, str):
        parts = re.split(r"[+,]", spec)
        return [p.strip().rstrip("?") for p in parts if p.strip().rstrip("?")]
    names: list[str] = []
    if isinstance(spec, Sequence):
        for item in spec:
            names += [name for name in _key_fields(item) if name not in names]
    return names
