"""Accounting of a run: the rejects file (JSONL) and the summary (log table + JSON file).

Progress while writing: one log line per stream at least every 30 s and every N requests.

The target's own errors: each one ends the run with one line naming what happened.
"""

from __future__ import annotations

import datetime as dt
import decimal
import errno
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from singer_sdk.exceptions import RecordsWithoutSchemaException

from moovago_api.errors import ConfigError, MoovagoError
from moovago_api.wire import redact, secret_forms


class UnsupportedStreamError(MoovagoError):
    """A stream the target cannot write (read-only or not in the schema)."""


class ReadOnlyStreamError(UnsupportedStreamError):
    """A stream the schema file declares no mutation for (`team`): skipped unless
    `read_only_streams` is `error`."""


class BusinessHoursError(MoovagoError):
    """A bulk job was refused during French business hours."""


class TooManyRejectsError(MoovagoError):
    """More rows were rejected than `max_rejects` allows."""


class InputError(MoovagoError):
    """The Singer input is broken (not a bad row): the run stops."""


class RecordBeforeSchemaError(InputError, RecordsWithoutSchemaException):
    """A RECORD came before its stream's SCHEMA (still the SDK's exception for it)."""


class TargetStopped(MoovagoError):
    """A termination signal stopped the run after the request in flight."""

    def __init__(self, signum: int) -> None:
        super().__init__(
            f"stopped by signal {signum}: every row before the last STATE emitted is written, "
            "rejected or counted; rerun from that STATE (from the start if none was emitted)"
        )


COUNTERS = (
    "created",
    "updated",
    "unchanged",
    "deleted",
    "rejected",
    "superseded",
    "skipped_deletes",
)


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


def json_default(value: object) -> object:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return str(value)


class Ledger:
    """Counters per stream, the rejects file, and the final summary.

    `secrets`: strings (the API key) replaced by `***` wherever they would be written.
    """

    def __init__(
        self,
        rejects_path: str | Path,
        *,
        max_rejects: int | None = None,
        secrets: Iterable[str] = (),
        clock: Any = None,
    ) -> None:
        self.rejects_path = Path(rejects_path)
        self.max_rejects = max_rejects
        self._secrets = secret_forms(*secrets)
        self._clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self.streams: dict[str, StreamCounts] = {}
        self.read_only_skipped: dict[str, int] = {}  # rows of read-only streams, not written
        self.started = time.monotonic()
        self.dry_run = False

    def counts(self, stream: str) -> StreamCounts:
        return self.streams.setdefault(stream, StreamCounts())

    def add(self, stream: str, counter: str, n: int = 1) -> None:
        counts = self.streams.setdefault(stream, StreamCounts())
        setattr(counts, counter, getattr(counts, counter) + n)

    def note_unknown(self, stream: str, columns: Iterable[str]) -> list[str]:
        """Record unknown columns; returns those not seen before for this stream."""
        counts = self.streams.setdefault(stream, StreamCounts())
        new = [c for c in columns if c not in counts.unknown_columns]
        counts.unknown_columns.extend(new)
        return new

    def note_held(self, stream: str, held: Iterable[str]) -> None:
        """Fields `field_policies` kept one row from writing."""
        counts = self.streams.setdefault(stream, StreamCounts())
        for name in held:
            counts.held_by_policy[name] = counts.held_by_policy.get(name, 0) + 1

    @property
    def total_rejected(self) -> int:
        return sum(c.rejected for c in self.streams.values())

    def reject(
        self,
        stream: str,
        row_key: str,
        reason: str,
        *,
        field: str | None = None,
        row: Mapping[str, Any] | None = None,
    ) -> None:
        """Append one line to the rejects file (flushed at once) and count it."""
        entry = {
            "stream": stream,
            "row_key": row_key,
            "reason": reason,
            "field": field,
            "row": dict(row or {}),
            "time": self._clock().isoformat(),
        }
        line = json.dumps(redact(entry, self._secrets), default=json_default, ensure_ascii=False)
        # Opened per line: the line is on disk before the row counts as handled, and a
        # run that stops part-way leaves no open file behind.
        try:
            self.rejects_path.parent.mkdir(parents=True, exist_ok=True)
            # backslashreplace: a lone surrogate (rejected for it) is kept as its JSON escape
            with open(
                self.rejects_path,
                "a",
                encoding="utf-8",
                errors="backslashreplace",
                opener=_private,
            ) as rejects:
                rejects.write(line + "\n")
        except OSError as exc:
            raise _unwritable("rejects_path", self.rejects_path, exc) from None
        counts = self.streams.setdefault(stream, StreamCounts())
        counts.rejected += 1
        total = sum(c.rejected for c in self.streams.values())
        if self.max_rejects is not None and total > self.max_rejects:
            msg = (
                f"{total} rows rejected, more than max_rejects={self.max_rejects}: "
                f"stopping; see {self.rejects_path}"
            )
            raise TooManyRejectsError(msg)

    def summary(self, client_stats: Mapping[str, Any] | None = None) -> dict[str, Any]:
        stats = dict(client_stats or {})
        streams = {name: asdict(c) for name, c in sorted(self.streams.items())}
        return {
            "dry_run": self.dry_run,
            "streams": streams,
            "read_only_skipped": dict(sorted(self.read_only_skipped.items())),
            "requests": stats.get("requests", 0),
            "retries": stats.get("retries", 0),
            "rate_limited": stats.get("rate_limited", 0),
            "duration_seconds": round(time.monotonic() - self.started, 3),
            "rejects_path": str(self.rejects_path) if self.total_rejected else None,
        }

    @staticmethod
    def table(summary: Mapping[str, Any]) -> str:
        """The summary as a fixed-width text table for the log."""
        header = ["stream", *COUNTERS]
        rows = [
            [name, *(str(counts[c]) for c in COUNTERS)]
            for name, counts in summary["streams"].items()
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = [
            "  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True))
            for r in [header, *rows]
        ]
        for name, counts in summary["streams"].items():
            if counts["unknown_columns"]:
                ignored = ", ".join(counts["unknown_columns"])
                lines.append(f"{name}: unknown columns ignored: {ignored}")
            if counts.get("held_by_policy"):
                kept = ", ".join(f"{f} {n}" for f, n in sorted(counts["held_by_policy"].items()))
                lines.append(f"{name}: values kept by field_policies: {kept}")
        for name, rows in summary.get("read_only_skipped", {}).items():
            lines.append(f"{name}: read-only stream skipped, {rows} rows not written")
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


def _private(path: str, flags: int) -> int:
    """Row data (names, e-mails, phones) is readable by its owner only."""
    return os.open(path, flags, 0o600)


def _unwritable(setting: str, path: Path, exc: OSError) -> ConfigError:
    why = exc.strerror or type(exc).__name__
    return ConfigError(f"{setting} {path} cannot be written ({why}); set {setting} to a file path")


def check_writable(setting: str, path: str | Path) -> None:
    """Before the first request: `path` can be appended to (a missing file is created and
    removed again), else ConfigError naming the setting."""
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


EVERY_SECONDS = 30.0
EVERY_REQUESTS = 10


@dataclass(eq=False)
class Tally:
    """Rows of one stream: received so far, and settled from the first on (STATE needs it)."""

    stream: str
    received: int = 0
    settled: int = 0


def settled_rows(counts: StreamCounts) -> int:
    """Every row ends in exactly one counter."""
    return (
        counts.created
        + counts.updated
        + counts.unchanged
        + counts.deleted
        + counts.rejected
        + counts.superseded
        + counts.skipped_deletes
    )


def duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Progress:
    """Logs where a stream stands after a mutation request, when the last line is
    `every_seconds` old or `every_requests` requests ago."""

    def __init__(
        self,
        ledger: Ledger,
        requests: Callable[[], int],
        logger: logging.Logger,
        *,
        clock: Callable[[], float] = time.monotonic,
        every_seconds: float = EVERY_SECONDS,
        every_requests: int = EVERY_REQUESTS,
    ) -> None:
        self.ledger = ledger
        self.requests = requests
        self.logger = logger
        self.clock = clock
        self.every_seconds = every_seconds
        self.every_requests = every_requests
        self.tallies: dict[str, Tally] = {}
        self._started: dict[str, float] = {}
        self._last = clock()
        self._since_last = 0

    def tally(self, stream: str) -> Tally:
        """The stream's tally (a new one per sink: the SDK may open a stream again)."""
        tally = Tally(stream)
        self.tallies[stream] = tally
        self._started.setdefault(stream, self.clock())
        return tally

    def request_done(self, stream: str) -> None:
        self._since_last += 1
        now = self.clock()
        if self._since_last >= self.every_requests or now - self._last >= self.every_seconds:
            self._last = now
            self._since_last = 0
            self.logger.info("%s", self.line(stream, now))

    def line(self, stream: str, now: float) -> str:
        counts = self.ledger.counts(stream)
        settled = settled_rows(counts)
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
            f"rejected {counts.rejected}); {self.requests()} requests; {eta}"
        )
