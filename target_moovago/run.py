"""One target run: the typed handle every sink gets, and what the target asks of it.

It holds what the sinks share (the remote side, the ledger, the business-hours gate, the
pending creates, progress) and the run's lifecycle: stop on a signal, finish once.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import typing as t
from collections.abc import Callable, Mapping, Sequence

from singer_sdk import typing as th

from moovago_api.wire import is_loopback_url, secret_forms
from target_moovago.changes import ChangeLog, check_field_policies
from target_moovago.errors import TargetStopped
from target_moovago.index import PendingIds
from target_moovago.ledger import Ledger, Progress, Tally, check_writable
from target_moovago.plan import DEFAULT_MAX_REQUEST_BYTES
from target_moovago.remote import Remote
from target_moovago.runlock import BulkGate

if t.TYPE_CHECKING:
    from moovago_api.client import MoovagoClient

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
