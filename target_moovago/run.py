"""One target run: the typed handle every sink gets, and what the target asks of it.

It holds what the sinks share (the remote side, the ledger, the business-hours gate, the
pending creates, progress) and the run's lifecycle: stop on a signal, finish once.

What a reverse-ETL run may change (`field_policies`, checked at start) and what it did change
(the change log `changes_path`, which `moovago-revert` puts back).

Each write the target confirms is one JSON line in the change log, appended when Moovago
confirms it, so before the STATE that covers it. When its request leaves, the write is first
noted in a journal beside the log (`<changes_path>.inflight`); a run killed before the answer
leaves it there, and the next run settles it against what Moovago holds before it plans
anything (the writer's `settle_killed_writes`): a write that landed is logged then, once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
import typing as t
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from singer_sdk import typing as th

from moovago_api.errors import ConfigError, MoovagoError
from moovago_api.wire import is_loopback_url, redact, secret_forms
from target_moovago.index import comparable
from target_moovago.ledger import (
    Ledger,
    Progress,
    Tally,
    TargetStopped,
    check_writable,
    json_default,
)
from target_moovago.plan import DEFAULT_MAX_REQUEST_BYTES, Action, Kind, PendingIds, Policy
from target_moovago.remote import Remote, writes_of
from target_moovago.runlock import BulkGate

if TYPE_CHECKING:
    from moovago_api.client import MoovagoClient
    from target_moovago.index import KeySpec, RemoteIndex


JOURNAL_SUFFIX = ".inflight"

PROPERTIES = (
    th.Property(
        "field_policies",
        th.ObjectType(
            additional_properties=th.ObjectType(
                additional_properties=th.StringType(allowed_values=[p.value for p in Policy]),
            ),
        ),
        title="Field policies",
        description=(
            "Per stream and field, what an update may write: `overwrite` (default), "
            "`fill_empty` (only where Moovago's value is null, '' or []) or `create_only` "
            '(written on create, never on update), e.g. {"company": {"note": "fill_empty"}}. '
            "A field a policy keeps never makes a row changed."
        ),
    ),
    th.Property(
        "changes_path",
        th.StringType,
        title="Change log",
        description="JSONL file (owner-readable only) every confirmed write is appended to "
        "before the STATE covering it: run id, time, stream, record id, match key, operation, "
        "and each written field's value before and after. `moovago-revert` puts it back.",
    ),
)


def check_field_policies(remote: Remote) -> None:
    """At start: each stream `field_policies` names is one the target writes, each field one
    its mutations take, each fill_empty field one it reads back (to see it empty)."""
    for stream, fields in (remote.config.get("field_policies") or {}).items():
        try:
            entity = remote.entity_for(stream)
        except MoovagoError as exc:
            raise ConfigError(f"field_policies: {exc}") from None
        inputs = {
            name
            for shape in writes_of(entity).shapes.values()
            for name in (f.name for f in shape.fields)
        }
        output = remote.schema.output_json_schema(entity.type_name)["properties"]
        for name, policy in fields.items():
            if name not in inputs:
                msg = (
                    f"field_policies: {stream}.{name}: the {entity.type_name} mutations in "
                    f"{remote.schema.path} take no field {name!r}"
                )
                raise ConfigError(msg)
            if policy == Policy.FILL_EMPTY and name not in output:
                msg = (
                    f"field_policies: {stream}.{name} is fill_empty, but {entity.type_name} "
                    f"has no field {name!r} to read back whether it is empty"
                )
                raise ConfigError(msg)


def read_lines(path: Path) -> Iterator[dict[str, t.Any]]:
    """The JSON objects of a JSONL file; a line cut short by a kill is skipped."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict):
                yield entry


def match_key(specs: Sequence[KeySpec], values: Mapping[str, t.Any]) -> dict[str, t.Any] | None:
    """The first match key `values` fill, as {field: value}."""
    for spec in specs:
        if spec.value(values) is not None:
            return {name: values.get(name) for name in spec.fields}
    return None


def landed_write(
    index: RemoteIndex, entry: Mapping[str, t.Any], readable: Collection[str]
) -> str | None:
    """The record a write of the change log's journal made or changed, when the index shows
    it landed; None when it did not, or its values are not read back to tell."""
    record_id = entry.get("record_id")
    after = {k: v.get("after") for k, v in (entry.get("fields") or {}).items()}
    operation = entry.get("operation")
    if operation == "delete":
        return str(record_id) if record_id and record_id not in index else None
    if operation == "update":
        stored = index.get(str(record_id))
        shown = {k: v for k, v in after.items() if k in readable}
        if stored is None or not shown:
            return None
        same = all(comparable(stored.get(k)) == comparable(v) for k, v in shown.items())
        return str(record_id) if same else None
    spec, ids = index.find(after)
    return ids[0] if spec is not None and len(ids) == 1 else None


class ChangeLog:
    """The change log of one run and its journal; does nothing without a path (dry run)."""

    def __init__(
        self,
        path: str | Path | None,
        *,
        clock: Callable[[], dt.datetime],
        secrets: Iterable[str] = (),
    ) -> None:
        self.path = Path(path) if path else None
        self.journal = Path(f"{path}{JOURNAL_SUFFIX}") if path else None
        self.run_id = uuid.uuid4().hex
        self._clock = clock
        self._secrets = secret_forms(*secrets)
        self._count = 0
        self._sent: dict[int, tuple[Action, dict[str, t.Any]]] = {}  # id(action) -> its entry
        self._fds: dict[Path, int] = {}
        # stream -> writes an earlier run sent and never saw answered, settled before planning
        self.unsettled: dict[str, list[dict[str, t.Any]]] = self._unsettled()

    def sending(self, stream: str, actions: Iterable[Action], specs: Sequence[KeySpec]) -> None:
        """Note the writes of a request about to leave in the journal (once per write)."""
        if self.journal is None:
            return
        for action in actions:
            if id(action) not in self._sent:
                entry = self._entry(stream, action, specs)
                self._sent[id(action)] = (action, entry)
                self._append(self.journal, entry)

    def confirmed(self, stream: str, action: Action, specs: Sequence[KeySpec]) -> None:
        """Moovago confirmed the write: one line in the change log."""
        if self.path is None:
            return
        sent = self._sent.pop(id(action), None)
        entry = sent[1] if sent is not None else self._entry(stream, action, specs)
        self._append(self.path, {**entry, "record_id": action.record_id, "time": self._now()})

    def dropped(self, action: Action) -> None:
        """The write was refused or never sent: nothing to settle after a kill."""
        sent = self._sent.pop(id(action), None)
        if sent is not None and self.journal is not None:
            self._append(self.journal, {"write": sent[1]["write"], "dropped": True})

    def settled(self, entry: Mapping[str, t.Any], record_id: str | None) -> None:
        """An earlier run's unanswered write, judged against Moovago: logged when it landed."""
        if self.path is None or self.journal is None:
            return
        if record_id is None:
            self._append(self.journal, {"write": entry["write"], "dropped": True})
        else:
            line = {**entry, "record_id": record_id, "time": self._now(), "recovered": True}
            self._append(self.path, line)

    def close(self) -> None:
        """Close the files; the journal keeps only what is still unsettled (else it goes)."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        if self.journal is None or not self.journal.exists():
            return
        left = [e for _, e in self._sent.values()]
        left += [e for entries in self.unsettled.values() for e in entries]
        if not left:
            self.journal.unlink()
            return
        fresh = self.journal.with_name(self.journal.name + ".new")
        fresh.unlink(missing_ok=True)
        self._append(fresh, *left)
        os.close(self._fds.pop(fresh))
        fresh.replace(self.journal)

    def _entry(self, stream: str, action: Action, specs: Sequence[KeySpec]) -> dict[str, t.Any]:
        self._count += 1
        before = action.before or {}
        if action.kind is Kind.DELETE:
            fields = {k: {"before": v, "after": None} for k, v in before.items()}
        else:
            fields = {k: {"before": before.get(k), "after": v} for k, v in action.data.items()}
        return {
            "run_id": self.run_id,
            "time": None,  # when it was confirmed
            "stream": stream,
            "record_id": None if action.kind is Kind.CREATE else action.record_id,
            "match_key": match_key(specs, {**before, **action.data}),
            "operation": action.kind.value,
            "fields": fields,
            "write": f"{self.run_id}-{self._count}",
        }

    def _now(self) -> str:
        return self._clock().isoformat()

    def _append(self, path: Path, *entries: Mapping[str, t.Any]) -> None:
        """Whole lines in one write each to a file only its owner reads: a kill cuts none."""
        fd = self._fds.get(path)
        if fd is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.fchmod(fd, 0o600)
            self._fds[path] = fd
        for entry in entries:
            entry = redact(dict(entry), self._secrets)
            text = json.dumps(entry, default=json_default, ensure_ascii=False)
            data = (text + "\n").encode("utf-8", "backslashreplace")
            while data:
                data = data[os.write(fd, data) :]

    def _unsettled(self) -> dict[str, list[dict[str, t.Any]]]:
        """Writes the journal holds that neither the change log nor a drop settles."""
        if self.journal is None or self.path is None:
            return {}
        sent: dict[str, dict[str, t.Any]] = {}
        for entry in read_lines(self.journal):
            if entry.get("dropped"):
                sent.pop(str(entry.get("write")), None)
            elif entry.get("write") and entry.get("stream"):
                sent[str(entry["write"])] = entry
        if sent:
            for entry in read_lines(self.path):
                sent.pop(str(entry.get("write")), None)
        by_stream: dict[str, list[dict[str, t.Any]]] = {}
        for entry in sent.values():
            by_stream.setdefault(str(entry["stream"]), []).append(entry)
        return by_stream


READ_ONLY_STREAMS = th.Property(
    "read_only_streams",
    th.StringType(allowed_values=["skip", "error"]),
    default="skip",
    title="Read-only streams",
    description="What to do with a stream Moovago has no mutation for (`team`, which "
    "tap-moovago emits): `skip` (one warning naming it; its rows are counted in the "
    "summary, not written) or `error` (stop before any row is read).",
)


@t.runtime_checkable
class HasRun(t.Protocol):
    """A target that gives its sinks a run (TargetMoovago)."""

    run: Run


class Run:
    """What every sink of one run shares."""

    def __init__(
        self,
        config: Mapping[str, t.Any],
        logger: logging.Logger,
        *,
        clock: Callable[[], dt.datetime],
        sleep: Callable[[float], None],
        production: bool | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        drain_streams: Callable[[Sequence[str]], None] = lambda _names: None,
        emit_state: Callable[[], None] = lambda: None,
    ) -> None:
        """From the target: `drain_streams` drains the pending rows of the named streams,
        `emit_state` emits the newest STATE whose rows are all settled."""
        self.logger = logger
        self.drain_streams = drain_streams
        self.emit_state = emit_state
        self.summary_path: str | None = config.get("summary_path")
        self.dry_run = bool(config.get("dry_run"))
        self.hard_delete = bool(config.get("hard_delete"))
        self.mutations_per_request = int(config.get("mutations_per_request", 25))
        self.max_request_bytes = int(config.get("max_request_bytes") or DEFAULT_MAX_REQUEST_BYTES)
        self.request_limit = self.max_request_bytes  # lowered when the server answers 413
        self.remote = Remote(config, logger)
        if config.get("field_policies"):
            check_field_policies(self.remote)
        self.ledger = Ledger(
            config.get("rejects_path") or "moovago-rejects.jsonl",
            max_rejects=config.get("max_rejects"),
            secrets=secret_forms(str(config.get("api_key") or "")),
            clock=clock,
        )
        self.ledger.dry_run = self.dry_run
        self.changes = ChangeLog(
            None if self.dry_run else config.get("changes_path"),
            clock=clock,
            secrets=secret_forms(str(config.get("api_key") or "")),
        )
        # Checked before any request: a run must not fail on its outputs after writing rows.
        check_writable("rejects_path", self.ledger.rejects_path)
        if self.summary_path:
            check_writable("summary_path", self.summary_path)
        if production is None:
            production = not is_loopback_url(str(config.get("api_url") or ""))
        self.gate = BulkGate(
            production=production,
            policy=config.get("business_hours") or "refuse",
            threshold=int(config.get("bulk_threshold", 500)),
            clock=clock,
            sleep=sleep,
            logger=logger,
        )
        self.pending = PendingIds()
        self.tallies: list[Tally] = []  # one per sink, in the order they were opened
        self.progress = Progress(self.ledger, lambda: self.remote.requests, logger, clock=monotonic)
        self.draining = False  # a sink is draining now
        self.stop_signal: int | None = None  # a termination signal was received
        self.stop_after_request = False  # send no further request
        self._finished = False
        self.skip_read_only = (config.get("read_only_streams") or "skip") == "skip"
        if config.get("api_url") and config.get("api_key"):
            self.remote.client  # noqa: B018 - a bad connection setting fails now, not mid-run

    @property
    def client(self) -> MoovagoClient:
        return self.remote.client

    def tally(self, stream: str) -> Tally:
        """A new sink's tally: its rows received and settled, for STATE and progress."""
        tally = self.progress.tally(stream)
        self.tallies.append(tally)
        return tally

    def skips(self, stream: str, *, rows: int = 0) -> bool:
        """A read-only stream under `read_only_streams: skip`: warned about once, its rows
        counted in the summary and never written."""
        skipped = self.ledger.read_only_skipped
        if stream not in skipped:
            if not (self.skip_read_only and self.remote.read_only(stream)):
                return False
            self.logger.warning(
                "Stream '%s' is read-only in the Moovago API (it has no mutations): its rows "
                "are skipped and counted in the summary (read_only_streams=error refuses it).",
                stream,
            )
        skipped[stream] = skipped.get(stream, 0) + rows
        return True

    def marks(self) -> dict[Tally, int]:
        """Rows received by each sink so far: a STATE received now covers them."""
        return {tally: tally.received for tally in self.tallies}

    def settled(self, marks: Mapping[Tally, int]) -> bool:
        """Every row counted in `marks` is written, rejected or counted, and none is held."""
        return not self.gate.holding and all(tally.settled >= n for tally, n in marks.items())

    def stop(self, signum: int, *, at_once: bool) -> None:
        """A termination signal: `at_once` (inside a drain, or input all read) sends no
        further request; otherwise the rows read so far are written first."""
        self.stop_signal = signum
        if at_once:
            self.stop_after_request = True

    @property
    def stopping(self) -> bool:
        """Whether a termination signal asked to stop sending."""
        return self.stop_after_request and self.stop_signal is not None

    def check_stop(self) -> None:
        """Before each request: raise once a termination signal asked to stop sending."""
        if self.stop_after_request and self.stop_signal is not None:
            raise TargetStopped(self.stop_signal)

    def failed(self, exc: BaseException) -> None:
        """A drain failed: after a signal, emit the STATE its settled rows allow; then write
        the summary of what was done until now."""
        if isinstance(exc, TargetStopped):
            self.emit_state()
        self.finish(failed=True)

    def finish(self, *, failed: bool) -> None:
        """Log the summary table and write the JSON summary, once per run."""
        if self._finished:
            return
        self._finished = True
        self.changes.close()
        summary = self.ledger.summary(self.remote.stats())
        summary["failed"] = failed
        if self.changes.path is not None:  # what `moovago-revert --run` takes
            summary["changes"] = {"path": str(self.changes.path), "run_id": self.changes.run_id}
        self.logger.info("target-moovago summary\n%s", Ledger.table(summary))
        if self.summary_path:
            self.ledger.write_summary(self.summary_path, summary)

    def close(self) -> None:
        self.remote.close()
