"""Accounting of a run: the rejects file, the summary, progress lines, the change log and its
journal (docs/reverse-etl.md), and the errors that end a run."""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import errno
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moovago_api.errors import ConfigError, MoovagoError
from moovago_api.wire import redact, secret_forms
from target_moovago.decide import Kind
from target_moovago.index import comparable

if TYPE_CHECKING:
    from target_moovago.decide import Action
    from target_moovago.index import KeySpec, RemoteIndex


class UnsupportedStreamError(MoovagoError):
    """A stream the target cannot write (read-only or not in the schema)."""


class ReadOnlyStreamError(UnsupportedStreamError):
    """A stream the schema file declares no mutation for (`team`)."""


class BusinessHoursError(MoovagoError):
    """A bulk job was refused during French business hours."""


class TooManyRejectsError(MoovagoError):
    """More rows were rejected than `max_rejects` allows."""


@dataclass
class StreamCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    rejected: int = 0
    superseded: int = 0
    skipped_deletes: int = 0
    unknown_columns: list[str] = field(default_factory=list)
    held_by_policy: dict[str, int] = field(default_factory=dict)  # field -> rows it was kept


# Every settled row ends in exactly one of these counters.
COUNTERS = tuple(f.name for f in fields(StreamCounts) if f.default == 0)


def json_default(value: object) -> object:
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value.isoformat() if isinstance(value, dt.date | dt.time) else str(value)


def _private(path: str, flags: int) -> int:
    """Row data (names, e-mails, phones) is readable by its owner only."""
    return os.open(path, flags, 0o600)


def write_lines(fd: int, entries: Iterable[Mapping[str, Any]], secrets: Collection[str]) -> None:
    """Whole lines in one write each: a kill cuts none."""
    for entry in entries:
        text = json.dumps(redact(dict(entry), secrets), default=json_default, ensure_ascii=False)
        # backslashreplace: a lone surrogate (rejected for it) is kept as its JSON escape
        data = (text + "\n").encode("utf-8", "backslashreplace")
        while data:
            data = data[os.write(fd, data) :]


def _unwritable(setting: str, path: Path, exc: OSError) -> ConfigError:
    why = exc.strerror or type(exc).__name__
    return ConfigError(f"{setting} {path} cannot be written ({why}); set {setting} to a file path")


def check_writable(setting: str, path: str | Path) -> None:
    """Before the first request: a run must not fail on its outputs after writing rows."""
    path = Path(path)
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "it is a directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            path.unlink()
        except FileExistsError:
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
    except OSError as exc:
        raise _unwritable(setting, path, exc) from None


@dataclass(eq=False)
class Tally:
    """Rows of one sink: received so far, and settled from the first on (STATE needs it)."""

    stream: str
    received: int = 0
    settled: int = 0


class Ledger:
    """Counters per stream, the rejects file, the summary, and a progress line every
    `every_seconds` or `every_requests` requests."""

    def __init__(
        self,
        rejects_path: str | Path,
        max_rejects: int | None = None,
        secrets: Iterable[str] = (),
        clock: Callable[[], dt.datetime] | None = None,
        logger: logging.Logger | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        *,
        every_seconds: float = 30.0,
        every_requests: int = 10,
    ) -> None:
        self.rejects_path = Path(rejects_path)
        self.max_rejects = max_rejects
        self._secrets = secret_forms(*secrets)
        self._clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self.streams: dict[str, StreamCounts] = {}
        self.read_only_skipped: dict[str, int] = {}  # rows of read-only streams, not written
        self.dry_run = False
        self.logger = logger or logging.getLogger(__name__)
        self.monotonic = monotonic
        self.every_seconds, self.every_requests = every_seconds, every_requests
        self.tallies: dict[str, Tally] = {}
        self._started: dict[str, float] = {}
        self.started = self._last = monotonic()
        self._since_last = 0

    def counts(self, stream: str) -> StreamCounts:
        return self.streams.setdefault(stream, StreamCounts())

    def add(self, stream: str, counter: str, n: int = 1) -> None:
        counts = self.counts(stream)
        setattr(counts, counter, getattr(counts, counter) + n)

    def note_unknown(self, stream: str, columns: Iterable[str]) -> list[str]:
        """Record unknown columns; returns those not seen before for this stream."""
        counts = self.counts(stream)
        new = [c for c in columns if c not in counts.unknown_columns]
        counts.unknown_columns.extend(new)
        return new

    def note_held(self, stream: str, held: Iterable[str]) -> None:
        """Fields `field_policies` kept one row from writing."""
        kept = self.counts(stream).held_by_policy
        for name in held:
            kept[name] = kept.get(name, 0) + 1

    def reject(
        self,
        stream: str,
        row_key: str,
        reason: str,
        *,
        field: str | None = None,
        row: Mapping[str, Any] | None = None,
    ) -> None:
        """One line in the rejects file, on disk before the row is handled."""
        entry: dict[str, Any] = {"stream": stream, "row_key": row_key, "reason": reason}
        entry.update(field=field, row=dict(row or {}), time=self._clock().isoformat())
        try:
            self.rejects_path.parent.mkdir(parents=True, exist_ok=True)
            fd = _private(str(self.rejects_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            try:
                write_lines(fd, [entry], self._secrets)
            finally:
                os.close(fd)
        except OSError as exc:
            raise _unwritable("rejects_path", self.rejects_path, exc) from None
        self.counts(stream).rejected += 1
        total = sum(c.rejected for c in self.streams.values())
        if self.max_rejects is not None and total > self.max_rejects:
            msg = (
                f"{total} rows rejected, more than max_rejects={self.max_rejects}: "
                f"stopping; see {self.rejects_path}"
            )
            raise TooManyRejectsError(msg)

    def summary(self, client_stats: Mapping[str, Any] | None = None) -> dict[str, Any]:
        stats = dict(client_stats or {})
        rejected = any(c.rejected for c in self.streams.values())
        return {
            "dry_run": self.dry_run,
            "streams": {name: asdict(c) for name, c in sorted(self.streams.items())},
            "read_only_skipped": dict(sorted(self.read_only_skipped.items())),
            **{k: stats.get(k, 0) for k in ("requests", "retries", "rate_limited")},
            "duration_seconds": round(self.monotonic() - self.started, 3),
            "rejects_path": str(self.rejects_path) if rejected else None,
        }

    @staticmethod
    def table(summary: Mapping[str, Any]) -> str:
        """The summary as a fixed-width text table for the log."""
        rows = [["stream", *COUNTERS]]
        rows += [[name, *(str(c[k]) for k in COUNTERS)] for name, c in summary["streams"].items()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
        for name, counts in summary["streams"].items():
            if counts["unknown_columns"]:
                ignored = ", ".join(counts["unknown_columns"])
                lines.append(f"{name}: unknown columns ignored: {ignored}")
            if counts.get("held_by_policy"):
                kept = ", ".join(f"{f} {n}" for f, n in sorted(counts["held_by_policy"].items()))
                lines.append(f"{name}: values kept by field_policies: {kept}")
        for name, skipped in summary.get("read_only_skipped", {}).items():
            lines.append(f"{name}: read-only stream skipped, {skipped} rows not written")
        lines.append(
            f"requests {summary['requests']}, retries {summary['retries']}, "
            f"429s {summary['rate_limited']}, duration {summary['duration_seconds']:.1f}s"
            + (" (dry run: nothing written)" if summary["dry_run"] else "")
        )
        if summary.get("changes"):
            lines.append("change log {path}, run id {run_id}".format(**summary["changes"]))
        return "\n".join(lines)

    def write_summary(self, path: str | Path, summary: Mapping[str, Any]) -> None:
        text = json.dumps(redact(dict(summary), self._secrets), indent=2, default=json_default)
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", encoding="utf-8", opener=_private) as out:
                out.write(text + "\n")
        except OSError as exc:
            raise _unwritable("summary_path", Path(path), exc) from None

    def tally(self, stream: str) -> Tally:
        """The stream's tally (a new one per sink: the SDK may open a stream again)."""
        self.tallies[stream] = tally = Tally(stream)
        self._started.setdefault(stream, self.monotonic())
        return tally

    def request_done(self, stream: str, requests: int) -> None:
        self._since_last += 1
        now = self.monotonic()
        if self._since_last >= self.every_requests or now - self._last >= self.every_seconds:
            self._last = now
            self._since_last = 0
            self.logger.info("%s", self.line(stream, now, requests))

    def line(self, stream: str, now: float, requests: int) -> str:
        counts = self.counts(stream)
        settled = sum(getattr(counts, name) for name in COUNTERS)
        tally = self.tallies.get(stream)
        received = max(tally.received if tally else 0, settled)
        elapsed = now - self._started.get(stream, now)
        rate = settled / elapsed if elapsed > 0 else 0.0
        left = received - settled
        if not left:
            eta = "no row left to write"
        elif rate:
            eta = f"about {duration(left / rate)} left at {rate:.1f} rows/s"
        else:
            eta = "time left unknown yet"
        return (
            f"Progress {stream}: {settled} of {received} rows read settled (created "
            f"{counts.created}, updated {counts.updated}, unchanged {counts.unchanged}, "
            f"rejected {counts.rejected}); {requests} requests; {eta}"
        )


def duration(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


JOURNAL_SUFFIX = ".inflight"


def read_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file; a line cut short by a kill is skipped."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            with contextlib.suppress(json.JSONDecodeError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    yield entry


def landed_write(
    index: RemoteIndex, entry: Mapping[str, Any], readable: Collection[str]
) -> str | None:
    """The record a journal's write made or changed when the index shows it landed."""
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
    """The change log of one run and its journal; nothing without a path (dry run)."""

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
        self._sent: dict[int, tuple[Action, dict[str, Any]]] = {}  # id(action) -> its entry
        self._fds: dict[Path, int] = {}
        # stream -> writes an earlier run sent and never saw answered, settled before deciding
        self.unsettled: dict[str, list[dict[str, Any]]] = self._unsettled()

    def sending(self, stream: str, actions: Iterable[Action], specs: Sequence[KeySpec]) -> None:
        """Note the writes of a request about to leave in the journal, once per write."""
        if self.journal is None:
            return
        for action in actions:
            if id(action) not in self._sent:
                entry = self._entry(stream, action, specs)
                self._sent[id(action)] = (action, entry)
                self._append(self.journal, entry)

    def confirmed(self, stream: str, action: Action, specs: Sequence[KeySpec]) -> None:
        if self.path is None:
            return
        sent = self._sent.pop(id(action), None)
        entry = sent[1] if sent is not None else self._entry(stream, action, specs)
        now = self._clock().isoformat()
        self._append(self.path, {**entry, "record_id": action.record_id, "time": now})

    def dropped(self, action: Action) -> None:
        """Refused or never sent: nothing to settle after a kill."""
        sent = self._sent.pop(id(action), None)
        if sent is not None:
            self.settled(sent[1], None)

    def settled(self, entry: Mapping[str, Any], record_id: str | None) -> None:
        """An earlier run's unanswered write: logged when it landed."""
        if self.path is None or self.journal is None:
            return
        if record_id is None:
            self._append(self.journal, {"write": entry["write"], "dropped": True})
        else:
            now = self._clock().isoformat()
            self._append(
                self.path, {**entry, "record_id": record_id, "time": now, "recovered": True}
            )

    def close(self) -> None:
        """Close the files; the journal keeps only what is still unsettled."""
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

    def _entry(self, stream: str, action: Action, specs: Sequence[KeySpec]) -> dict[str, Any]:
        self._count += 1
        before = action.before or {}
        if action.kind is Kind.DELETE:
            fields = {k: {"before": v, "after": None} for k, v in before.items()}
        else:
            fields = {k: {"before": before.get(k), "after": v} for k, v in action.data.items()}
        values = {**before, **action.data}
        filled = [s for s in specs if s.value(values) is not None]
        return {
            "run_id": self.run_id,
            "time": None,  # when it was confirmed
            "stream": stream,
            "record_id": None if action.kind is Kind.CREATE else action.record_id,
            "match_key": {n: values.get(n) for n in filled[0].fields} if filled else None,
            "operation": action.kind.value,
            "fields": fields,
            "write": f"{self.run_id}-{self._count}",
        }

    def _append(self, path: Path, *entries: Mapping[str, Any]) -> None:
        fd = self._fds.get(path)
        if fd is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = self._fds[path] = _private(str(path), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            os.fchmod(fd, 0o600)
        write_lines(fd, entries, self._secrets)

    def _unsettled(self) -> dict[str, list[dict[str, Any]]]:
        """Writes the journal holds that neither the change log nor a drop settles."""
        if self.journal is None or self.path is None:
            return {}
        sent: dict[str, dict[str, Any]] = {}
        for entry in read_lines(self.journal):
            if entry.get("dropped"):
                sent.pop(str(entry.get("write")), None)
            elif entry.get("write") and entry.get("stream"):
                sent[str(entry["write"])] = entry
        for entry in read_lines(self.path) if sent else ():
            sent.pop(str(entry.get("write")), None)
        by_stream: dict[str, list[dict[str, Any]]] = {}
        for entry in sent.values():
            by_stream.setdefault(str(entry["stream"]), []).append(entry)
        return by_stream
