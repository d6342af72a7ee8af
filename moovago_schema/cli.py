"""`moovago-schema`: each stream's plan (`plan`), deprecations in a schema file, drift between
two files, whether a tap catalog and a target config still fit a file, and (`doctor`) whether
the live API behaves as the connectors assume.

Exit codes: 0 fine; 1 `diff` found a change that breaks what the connector uses, `check` found
a missing stream or field, or `doctor` found an assumption that does not hold; 2 a file cannot be
read or parsed (one line naming file:line), a setting is wrong, or the command line is wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from moovago_api.errors import ConfigError, MoovagoError, SchemaFileError
from moovago_api.plan import SETTING
from moovago_api.schema import DEFAULT_SCHEMA_PATH, MoovagoSchema, load_schema
from moovago_schema.check import (
    CHANGED,
    NEW,
    CheckIssue,
    check_catalog,
    check_target_fields,
    target_streams_from_config,
)
from moovago_schema.deprecations import DEPRECATED, MISSING
from moovago_schema.drift import NEW_ENTITY, DiffReport, diff_schemas, usage_index
from moovago_schema.plan_view import add_plan_command
from moovago_schema.view import BREAKING, DANGEROUS

PROG = "moovago-schema"
BUNDLED = "bundled"


class InputFileError(Exception):
    """A catalog or config file that cannot be read or is not what the command expects."""


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the command; returns the exit code (the console script exits with it)."""
    out = out or sys.stdout
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse has printed the usage error already
        return exit_.code if isinstance(exit_.code, int) else 2
    command: Callable[[argparse.Namespace, TextIO], int] = args.command
    try:
        return command(args, out)
    except (SchemaFileError, InputFileError, ConfigError) as err:
        sys.stderr.write(f"{PROG}: error: {' '.join(str(err).split())}\n")
        return 2
    except MoovagoError as err:  # the API failed past its retries: one line, no traceback
        sys.stderr.write(f"{PROG}: error: {' '.join(str(err).split())}\n")
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Check Moovago schema files before they break a pipeline. A schema FILE may"
        f" be '{BUNDLED}' for the file shipped with the connectors ({DEFAULT_SCHEMA_PATH.name}).",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    deprecations = commands.add_parser(
        "deprecations",
        help="every deprecated field, argument, input field and enum value, with its reason",
    )
    deprecations.add_argument("--schema", default=BUNDLED, metavar="FILE")
    _format_option(deprecations)
    deprecations.set_defaults(command=_deprecations)

    diff = commands.add_parser(
        "diff",
        help="breaking and dangerous changes, new deprecations and new entities, by stream;"
        " exit 1 when a change breaks what the connector uses",
    )
    diff.add_argument("old", metavar="OLD", help=f"schema file in use (or '{BUNDLED}')")
    diff.add_argument("new", metavar="NEW", help="schema file to move to")
    _format_option(diff)
    diff.set_defaults(command=_diff)

    check = commands.add_parser(
        "check",
        help="the fields a tap catalog selects and a target config writes, held against a"
        " schema file; exit 1 when any is missing",
    )
    check.add_argument("--schema", default=BUNDLED, metavar="FILE")
    check.add_argument("--catalog", metavar="CATALOG.json", help="Singer catalog of the tap")
    check.add_argument("--target-config", metavar="CONFIG.json", help="target-moovago config")
    _format_option(check)
    check.set_defaults(command=_check)

    doctor = commands.add_parser(
        "doctor",
        help="read-only check of the live API against what the connectors assume (page cap,"
        " order, limit, latency, rate limit, clock, the schema file); exit 1 when one does"
        " not hold",
    )
    doctor.add_argument(
        "--config",
        required=True,
        metavar="CONFIG.json|ENV",
        help="the tap's config file, or ENV for the TAP_MOOVAGO_* variables",
    )
    doctor.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 also when an assumption is unproven (the answers could not show it)",
    )
    _format_option(doctor)
    doctor.set_defaults(command=_doctor)
    add_plan_command(commands, BUNDLED)
    return parser


def _format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "json"), default="table")


def _load(name: str) -> MoovagoSchema:
    return load_schema(None if name == BUNDLED else name)


# -- deprecations ----------------------------------------------------------------------------


def _deprecations(args: argparse.Namespace, out: TextIO) -> int:
    schema = _load(args.schema)
    index = usage_index(schema)
    found = [(item, index.usages(item.coordinate)) for item in schema.deprecations()]
    if args.format == "json":
        rows = [
            {
                "kind": item.kind,
                "coordinate": item.coordinate,
                "reason": item.reason,
                "streams": [{"stream": u.stream, "side": u.side} for u in usages],
            }
            for item, usages in found
        ]
        _write_json(out, {"schema": str(schema.path), "deprecations": rows})
        return 0
    if not found:
        out.write(f"No deprecated elements in {schema.path}.\n")
        return 0
    out.write(f"{len(found)} deprecated elements in {schema.path}\n\n")
    table = [
        [item.kind, item.coordinate, ", ".join(map(str, usages)) or "-", item.reason]
        for item, usages in found
    ]
    out.write(render_table(["kind", "element", "used by", "reason"], table))
    return 0


# -- diff ------------------------------------------------------------------------------------


def _diff(args: argparse.Namespace, out: TextIO) -> int:
    report = diff_schemas(_load(args.old), _load(args.new))
    if args.format == "json":
        _write_json(out, {**report.to_dict(), "exit_code": report.exit_code})
    else:
        out.write(render_diff(report))
    return report.exit_code


def render_diff(report: DiffReport) -> str:
    lines = [f"old: {report.old_path}", f"new: {report.new_path}"]
    if report.root_renames:
        renamed = ", ".join(f"{new} as {old}" for new, old in report.root_renames.items())
        lines.append(f"root types compared by role: {renamed} (documents never name them)")
    lines.append("")
    groups = report.by_stream()
    view = report.view_not_shown()
    if not groups and not view:
        lines += ["No breaking or dangerous changes, new deprecations or new entities.", ""]
    for stream, rows in groups.items():
        lines.append(f"stream {stream}" if stream else "not used by the connector")
        table = [
            [
                change.severity,
                change.kind,
                change.coordinate,
                sides or "-",
                change.description
                + (f" ({change.note})" if change.note else "")
                + (f" (adapted: {change.adapted})" if change.adapted else ""),
            ]
            for change, sides in rows
        ]
        lines.append(render_table(["severity", "change", "element", "side", "detail"], table))
    if view:
        lines.append("connector view (what tap and target do differently)")
        table = [
            [
                change.severity,
                change.stream,
                change.aspect,
                change.element,
                f"{change.old} -> {change.new}",
                change.detail,
            ]
            for change in view
        ]
        headers = ["severity", "stream", "aspect", "element", "change", "detail"]
        lines.append(render_table(headers, table))
    counts = report.counts()
    lines.append(
        f"{counts[BREAKING]} breaking ({counts['breaking_used']} used by the connector),"
        f" {counts[DANGEROUS]} dangerous, {counts[DEPRECATED]} newly deprecated,"
        f" {counts[NEW_ENTITY]} new entities."
    )
    if view:
        breaking = sum(change.severity == BREAKING for change in view)
        plural = "s" if len(view) != 1 else ""
        lines.append(f"Connector view: {len(view)} more change{plural} ({breaking} breaking).")
    if report.breaks_connector:
        lines.append(
            "Result: BREAKING. The new file removes or changes what the connector uses;"
            " run `moovago-schema check` on your catalog and target config before switching."
        )
    else:
        lines.append("Result: nothing the connector uses breaks.")
    return "\n".join(lines) + "\n"


# -- check -----------------------------------------------------------------------------------


def _check(args: argparse.Namespace, out: TextIO) -> int:
    if args.catalog is None and args.target_config is None:
        sys.stderr.write(
            f"{PROG} check: error: give --catalog CATALOG.json and/or --target-config CONFIG.json\n"
        )
        return 2
    schema = _load(args.schema)
    issues: list[CheckIssue] = []
    checked: list[str] = []
    if args.catalog is not None:
        catalog = _read_catalog(args.catalog)
        issues += check_catalog(schema, catalog)
        checked.append(f"catalog {args.catalog}")
    if args.target_config is not None:
        config = _read_json(args.target_config, "target config")
        if not isinstance(config, dict):
            raise InputFileError(f"Invalid target config {args.target_config}: not a JSON object")
        planned = schema.with_plans(config.get(SETTING))  # the plans the target writes by
        entities = [*planned.entities(), *load_schema().entities()]
        names = {name for e in entities for name in (e.stream_name, e.name)}
        writable = [e.stream_name for e in planned.entities() if e.writes and e.writes.writable]
        # The target's own defaults; imported here so the other commands never load the target.
        from target_moovago.index import DEFAULT_MATCH_KEYS

        # A plan corrects how a stream is read too: it does not say the target writes it.
        settings = {key: value for key, value in config.items() if key != SETTING}
        written, match_keys = target_streams_from_config(
            settings, names, writable, DEFAULT_MATCH_KEYS
        )
        issues += check_target_fields(planned, written, match_keys)
        checked.append(f"target config {args.target_config}")
    code = 1 if any(issue.status == MISSING for issue in issues) else 0
    if args.format == "json":
        _write_json(
            out,
            {
                "schema": str(schema.path),
                "checked": checked,
                "issues": [issue.to_dict() for issue in issues],
                "exit_code": code,
            },
        )
        return code
    out.write(f"schema: {schema.path}\nchecked: {', '.join(checked)}\n\n")
    if issues:
        table = [[i.source, i.stream, i.field or "-", i.status, i.reason] for i in issues]
        out.write(render_table(["source", "stream", "field", "status", "reason"], table) + "\n")
    else:
        out.write("Every selected and written field is in the schema file, none deprecated.\n\n")
    counts = {s: sum(i.status == s for i in issues) for s in (MISSING, DEPRECATED, CHANGED, NEW)}
    out.write(
        f"{counts[MISSING]} missing, {counts[DEPRECATED]} deprecated,"
        f" {counts[CHANGED]} changed, {counts[NEW]} new streams.\n"
    )
    if code:
        out.write(
            "Result: MISSING. The pipeline would fail with this schema file: deselect the"
            " missing fields (or drop the streams) and re-run discovery.\n"
        )
    else:
        out.write("Result: nothing selected or written is missing.\n")
    return code


def _read_json(path: str, what: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise InputFileError(f"Cannot read {what} {path}: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise InputFileError(f"Cannot read {what} {path}: not UTF-8 text") from err
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputFileError(
            f"Invalid {what} {path}:{err.lineno}: {err.msg} (column {err.colno})"
        ) from err


def _read_catalog(path: str) -> dict[str, Any]:
    catalog = _read_json(path, "catalog")
    streams = catalog.get("streams") if isinstance(catalog, dict) else None
    if not isinstance(streams, list):
        raise InputFileError(f'Invalid catalog {path}: no "streams" list (not a Singer catalog)')
    for position, entry in enumerate(streams, start=1):
        if not isinstance(entry, dict) or not (entry.get("tap_stream_id") or entry.get("stream")):
            raise InputFileError(f"Invalid catalog {path}: stream {position} has no tap_stream_id")
        metadata = entry.get("metadata") or []
        if not isinstance(metadata, list) or not all(
            isinstance(m, dict) and isinstance(m.get("breadcrumb"), list) and "metadata" in m
            for m in metadata
        ):
            raise InputFileError(
                f"Invalid catalog {path}: stream {entry.get('tap_stream_id')!r} has a metadata"
                " entry without breadcrumb or metadata"
            )
    return catalog


# -- doctor ----------------------------------------------------------------------------------


def _doctor(args: argparse.Namespace, out: TextIO) -> int:
    from moovago_schema.doctor import load_config, run_doctor

    report = run_doctor(load_config(args.config))
    report.strict = args.strict
    if args.format == "json":
        _write_json(out, report.to_dict())
        return report.exit_code
    settings = report.settings
    out.write(
        f"schema: {report.schema_path}\n"
        f"page_size {settings['page_size']}, max_requests_per_second"
        f" {settings['max_requests_per_second']:g}, request_timeout"
        f" {settings['request_timeout']:g} s; {report.requests['total']} requests, none a write\n\n"
    )
    table = [
        [row.assumption, row.assumes, row.observed, row.verdict, row.change or "-"]
        for row in report.rows
    ]
    headers = ["assumption", "connector assumes", "server did", "verdict", "what to change"]
    out.write(render_table(headers, table) + "\n")
    verdicts = [row.verdict for row in report.rows]
    failing, unproven = verdicts.count("does not hold"), verdicts.count("unproven")
    if failing:
        out.write(
            f"Result: {failing} of {len(verdicts)} assumptions do not hold: change what the last"
            " column says before moving data.\n"
        )
    elif not unproven:
        out.write(f"Result: all {len(verdicts)} assumptions hold.\n")
    if unproven:
        out.write(
            f"{unproven} of {len(verdicts)} assumptions are unproven: the last column says what"
            " would prove each" + (" (--strict: exit 1)" if report.strict else "") + ".\n"
        )
    return report.exit_code


# -- output ----------------------------------------------------------------------------------


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, a dashed rule under the headers."""
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = (cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)]) + "\n"


def _write_json(out: TextIO, payload: dict[str, Any]) -> None:
    out.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    sys.exit(main())
