"""moovago-revert: put back what a change log changed, newest first, through a run of the target
(client, governor, business-hours gate, writer, rejects, summary and change log).

A field goes back to its value before only where Moovago still holds the value the log wrote; a
record the log created is deleted only when unchanged since; a record it deleted is created
again with its last known fields. Anything else is a conflict: reported, left alone. What is
already back (an interrupted revert run again) is left as it is."""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import itertools
import json
import logging
import sys
import typing as t
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import itemgetter
from pathlib import Path

import click
from singer_sdk.exceptions import ConfigValidationError

from moovago_api.documents import check_writes
from moovago_api.errors import MoovagoError
from target_moovago.decide import WRITES, Action, InputValidator, Kind, Row
from target_moovago.index import MappedRow, comparable
from target_moovago.ledger import ChangeLog
from target_moovago.remote import writes_of
from target_moovago.sinks import Run, input_schema
from target_moovago.target import TargetMoovago
from target_moovago.writer import BatchWriter

PROG = "moovago-revert"
Entry = Mapping[str, t.Any]  # one change-log line
View = dict[str, t.Any] | None  # a record as the writes planned so far leave it; None: absent
OPERATIONS = {"create": "delete", "update": "update", "delete": "create"}  # -> what undoes it
_stream = itemgetter("stream")


class RevertError(MoovagoError):
    """The change log or the config cannot be reverted as given."""


def read_changes(path: Path) -> list[dict[str, t.Any]]:
    """The change log's lines, in file order; one that is not a change stops the revert."""
    if not path.is_file():
        raise RevertError(f"{path}: no such change log")
    entries = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                entry = None
            if not (
                isinstance(entry, dict)
                and entry.get("operation") in OPERATIONS
                and isinstance(entry.get("stream"), str)
                and isinstance(entry.get("record_id"), str)
                and isinstance(entry.get("fields"), dict)
                and all(isinstance(c, dict) for c in entry["fields"].values())
            ):
                raise RevertError(f"{path}:{number}: not a change-log line")
            entries.append(entry)
    return entries


class Reverter:
    """Plans the undoing of change-log entries, newest first, and hands the writes to the gate."""

    def __init__(self, run: Run, entries: Sequence[Entry], echo: Callable[[str], None]) -> None:
        """One writer per stream, tracking every field its entries name that can be read back;
        the mutations the revert needs checked against the schema file first."""
        self.run, self.echo = run, echo
        self.writers: dict[str, BatchWriter] = {}
        self.writer: BatchWriter  # the stream being planned
        self.readable: dict[str, set[str]] = {}
        self.creatable: dict[str, InputValidator] = {}
        self.conflicts = self.writes = self._position = 0
        remote = run.remote
        for stream, group in itertools.groupby(sorted(entries, key=_stream), key=_stream):
            items = list(group)
            entity = remote.entity_for(stream)
            check_writes(remote.schema, entity, sorted({OPERATIONS[e["operation"]] for e in items}))
            output = set(remote.schema.output_json_schema(entity.type_name)["properties"])
            fields = sorted({f for e in items for f in e["fields"] if f in output})
            self.readable[stream] = output
            if create := writes_of(entity).shapes.get("create"):
                self.creatable[stream] = InputValidator(input_schema(remote.schema, create))
            self.writers[stream] = BatchWriter(run, entity, remote.key_specs(entity), fields)
            self.writers[stream].settle_killed_writes(output)

    def plan(self, stream: str, entries: Iterable[Entry]) -> None:
        """Undo one stream's consecutive entries (newest first) against its index as the
        writes planned so far leave it; one action per record, then project and admit."""
        self.writer = writer = self.writers[stream]
        actions: dict[str, Action] = {}
        for entry in entries:
            self._position += 1
            operation, record_id = entry["operation"], entry["record_id"]
            planned = actions.get(record_id)
            stored = writer.index.get(record_id)
            view = None if stored is None else {**stored, **(planned.data if planned else {})}
            if planned is not None and planned.kind is Kind.DELETE:
                view = None
            action = getattr(self, f"_undo_{operation}")(entry, view, planned)
            if action is not None:
                actions[record_id] = action
        writes = [a for a in actions.values() if a.kind in WRITES]
        self.writes += len(writes)
        for action in writes:  # one line of the plan, as the writes will be sent
            label = f"{writer.label} id={action.row.mapped.record_id}"
            if action.kind is Kind.UPDATE:
                changes = ", ".join(f"{k} -> {v!r}" for k, v in action.data.items())
                what = f"update {label}: {changes}"
            elif action.kind is Kind.DELETE:
                what = f"delete {label}: created by the run, unchanged since"
            else:
                what = f"create again {label}, deleted by the run: {', '.join(sorted(action.data))}"
            self.echo(("would " if self.run.dry_run else "") + what)
        if writes:
            writer.project(writes)
            self.run.gate.admit(writer.write, writes)

    def _row(self, entry: Entry, data: Mapping[str, t.Any]) -> Row:
        mapped = MappedRow(payload=dict(data), record_id=entry["record_id"])
        return Row(self._position, entry, mapped)

    def _conflict(self, entry: Entry, why: str, field: str | None) -> None:
        self.conflicts += 1
        where = f" field {field}" if field else ""
        self.echo(f"conflict: {self.writer.label} id={entry['record_id']}{where}: {why}")
        self.writer.reject(self._row(entry, {}), f"conflict: {why}", field)

    def _undo_update(self, entry: Entry, view: View, planned: Action | None) -> Action | None:
        """Each field back to its value before, where Moovago still holds the value after."""
        if view is None:
            self._conflict(entry, "the record no longer exists; nothing put back", None)
            return planned
        data = dict(planned.data) if planned is not None else {}
        for name, change in entry["fields"].items():
            before, after = change.get("before"), change.get("after")
            if name not in self.readable[self.writer.label]:
                self._conflict(entry, f"{name} cannot be read back; left alone", name)
            elif comparable(view.get(name)) == comparable(after):
                data[name] = before
            elif comparable(view.get(name)) != comparable(before):
                why = f"Moovago holds {view.get(name)!r}, not {after!r} as written; left alone"
                self._conflict(entry, why, name)
        data = {k: v for k, v in data.items() if comparable(view.get(k)) != comparable(v)}
        if not data:
            return planned
        return Action(Kind.UPDATE, self._row(entry, data), entry["record_id"], data=data)

    def _undo_create(self, entry: Entry, view: View, planned: Action | None) -> Action | None:
        """Delete the record the log created, when unchanged since."""
        if view is None:
            return planned  # already gone
        readable = self.readable[self.writer.label]
        for name, change in entry["fields"].items():
            if name in readable and comparable(view.get(name)) != comparable(change.get("after")):
                now = view.get(name)
                why = f"created by the run and changed since ({name} is {now!r}); not deleted"
                self._conflict(entry, why, name)
                return planned
        return Action(Kind.DELETE, self._row(entry, {}), entry["record_id"])

    def _undo_delete(self, entry: Entry, view: View, planned: Action | None) -> Action | None:
        """Create the record the log deleted again, with its last known fields."""
        before = {k: c.get("before") for k, c in entry["fields"].items()}
        label = self.writer.label
        _, found = self.writer.index.find(before)
        if view is not None or found:
            there = entry["record_id"] if view is not None else found[0]
            self.echo(f"{label} id={entry['record_id']}: there again (id={there}); left")
            return planned
        validator = self.creatable.get(label)
        known = validator.properties if validator else {}
        data = {k: v for k, v in before.items() if v is not None and k in known}
        problems = validator.problems(data) if validator else []
        if validator is None or problems:
            why = "; ".join(p.reason for p in problems) or "the schema file has no create"
            self._conflict(entry, f"cannot be created again: {why}", None)
            return planned
        return Action(Kind.CREATE, self._row(entry, data), data=data)


def revert(run: Run, entries: Sequence[Entry], echo: Callable[[str], None]) -> Reverter:
    """Plan every entry newest first (a stream's consecutive entries together), then let the
    gate decide on the whole and write."""
    reverter = Reverter(run, entries, echo)
    run.gate.hold_until_end()
    for stream, group in itertools.groupby(reversed(entries), key=_stream):
        reverter.plan(stream, list(group))
    run.gate.end_of_input()
    return reverter


def _config(path: Path) -> dict[str, t.Any]:
    """The config file as JSON; its settings are checked by the target, as for a run."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RevertError(f"--config {path}: {exc}") from None
    if not isinstance(config, dict):
        raise RevertError(f"--config {path}: not a JSON object")
    return config


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, type=Path, help="the target's config (JSON)")
    parser.add_argument("changes", type=Path, metavar="CHANGES_FILE", help="a change log")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    parser.add_argument(
        "--run", action="append", metavar="RUN_ID", help="only the lines of this run (repeatable)"
    )
    parser.add_argument(
        "--changes-path",
        type=Path,
        help="this revert's own change log (default: CHANGES_FILE with .revert.jsonl)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    now = functools.partial(dt.datetime.now, dt.timezone.utc)
    run = None
    try:
        config = _config(args.config)
        entries = read_changes(args.changes)
        if args.run:
            entries = [e for e in entries if e.get("run_id") in args.run]
            if not entries:
                raise RevertError(f"{args.changes}: no line of run {', '.join(args.run)}")
        if left := ChangeLog(args.changes, clock=now).unsettled:
            msg = (
                f"{args.changes}: {sum(map(len, left.values()))} writes a stopped run never saw "
                f"answered ({args.changes}.inflight); run the target again with the same "
                "changes_path first, so the log is complete"
            )
            raise RevertError(msg)
        own = args.changes_path or args.changes.with_name(f"{args.changes.stem}.revert.jsonl")
        config.update(dry_run=args.dry_run, changes_path=str(own))
        # The target checks the settings and, on SIGTERM/SIGINT, stops sending once the
        # requests in flight are answered.
        run = TargetMoovago(config=config, clock=now).run
        done = revert(run, entries, click.echo)
    except ConfigValidationError as exc:
        click.echo(f"{PROG}: error: --config {args.config}: {'; '.join(exc.errors)}", err=True)
        return 1
    except MoovagoError as exc:
        if run is not None:
            run.failed(exc)
            run.close()
        click.echo(f"{PROG}: error: {exc}", err=True)
        return 1
    run.finish(failed=False)
    run.close()
    sent = "planned (dry run: nothing sent)" if args.dry_run else "sent"
    plural = "s" * (done.conflicts != 1)
    click.echo(
        f"{PROG}: {len(entries)} changes read, {done.writes} writes {sent}, "
        f"{done.conflicts} conflict{plural} reported"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
