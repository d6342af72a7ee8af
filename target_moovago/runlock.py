"""One target run at a time per Moovago account on this machine, and the business-hours gate.

The run lock is a file in `lock_dir` named after the API URL and the team, held with `flock`: the
kernel drops it when the process ends however it ends (SIGKILL included), so a file left by a dead
run never blocks the next. It guards one machine only.

The gate: a run writing more than `bulk_threshold` rows to a production API is a bulk job, which
Moovago asks for none Monday-Friday 08:00-18:30 Paris. The gate holds every planned batch until
the run's writes cross the threshold (or the input ends under it), decides once (refuse, wait or
go) and releases the held batches in arrival order, exactly as planned.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import socket
import time
import typing as t
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from moovago_api.errors import MoovagoError
from moovago_api.governor import bulk_window
from target_moovago.ledger import BusinessHoursError

if t.TYPE_CHECKING:
    from target_moovago.decide import Action

POLICIES = ("refuse", "wait", "ignore")
Write = Callable[[Sequence["Action"]], None]


class RunLockError(MoovagoError):
    """Another run holds the account's lock, or the lock file cannot be used."""


def default_lock_dir() -> Path:
    """$XDG_STATE_HOME/target-moovago/locks, else ~/.local/state/target-moovago/locks."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "target-moovago" / "locks"


def lock_name(api_url: str, team_id: str) -> str:
    """One file name per account: `HTTPS://Host/graphql/` is `https://host/graphql`."""
    parts = urlsplit(api_url.strip())
    url = f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"
    digest = hashlib.sha256(f"{url}\n{team_id}".encode()).hexdigest()[:20]
    return f"run-{digest}.lock"


class RunLock:
    """An exclusive lock on (API URL, team); `acquire` waits up to `wait_seconds` (0: refuse
    at once) and raises RunLockError with one line saying who holds it."""

    def __init__(
        self,
        api_url: str,
        team_id: str,
        *,
        lock_dir: str | Path | None = None,
        wait_seconds: float = 0.0,
    ) -> None:
        self.team_id = team_id
        self.directory = Path(lock_dir).expanduser() if lock_dir else default_lock_dir()
        self.path = self.directory / lock_name(api_url, team_id)
        self.wait_seconds = max(0.0, float(wait_seconds))
        self._fd: int | None = None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            msg = f"cannot use the run lock file {self.path} ({exc.strerror or exc}); set lock_dir"
            raise RunLockError(f"{msg} to a directory this user can write") from None
        deadline = time.monotonic() + self.wait_seconds
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise RunLockError(self._held_message(fd)) from None
                    time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
            since = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": since}
            os.ftruncate(fd, 0)  # who holds it, for the message a second run prints
            os.pwrite(fd, (json.dumps({**holder, "team": self.team_id}) + "\n").encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Let the next run go. The file stays: removing it would let two runs lock two files."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor of the open file drops the flock

    def _held_message(self, fd: int) -> str:
        try:
            holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        except (OSError, ValueError):
            holder = {}
        who = (
            f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
            if isinstance(holder, dict) and holder.get("pid")
            else "a process that has not written its name yet"
        )
        waited = f" after waiting {self.wait_seconds:g} s" if self.wait_seconds else ""
        return (
            f"another target-moovago run for team {self.team_id} at this API URL holds the run "
            f"lock{waited} ({who}; lock file {self.path}); two runs at once would duplicate "
            "new rows. Let it finish, or set lock_wait_seconds to wait for it"
        )


@dataclasses.dataclass
class BulkGate:
    """Holds planned write batches while the bulk rule is undecided."""

    production: dataclasses.InitVar[bool]
    policy: str
    threshold: int
    clock: Callable[[], dt.datetime]
    sleep: Callable[[float], None]
    logger: logging.Logger
    writes: int = 0  # writes of the batches held so far
    _held: deque[tuple[Write, Sequence[Action]]] = dataclasses.field(default_factory=deque)
    _until_end: bool = False  # the input has ended: decide on the whole run only

    def __post_init__(self, production: bool) -> None:
        self.decided = not production or self.policy == "ignore"

    @property
    def holding(self) -> bool:
        """Rows are held: no STATE may cover them yet."""
        return bool(self._held)

    def admit(self, write: Write, actions: Sequence[Action]) -> None:
        """Write a planned batch now (a stream writer's `write`), or hold it until the rule is
        decided."""
        if self.decided:
            write(actions)
            return
        self._held.append((write, actions))
        self.writes += len(actions)
        if not self._until_end and self.writes > self.threshold:
            self._decide()
            self.release()

    def hold_until_end(self) -> None:
        """The final drain plans every stream before the rule is decided on their sum."""
        self._until_end = True

    def end_of_input(self) -> None:
        """Decide on the whole run (nothing to decide under the threshold) and release."""
        if not self.decided and self.writes > self.threshold:
            self._decide()
        self.decided = True
        self.release()

    def release(self) -> None:
        while self._held:
            write, actions = self._held.popleft()
            write(actions)

    def _decide(self) -> None:
        """Refuse (raise before any write), wait until the window opens, or go."""
        window = bulk_window(self.clock())
        if window.allowed:
            self.decided = True
            return
        opens = window.opens_at.isoformat() if window.opens_at else "later"
        if self.policy == "refuse" or window.opens_at is None:
            msg = (
                f"bulk job refused: {self.writes} rows to write (bulk_threshold="
                f"{self.threshold}) during Moovago's business hours (Mon-Fri 08:00-18:30 "
                f"Europe/Paris); the window opens at {opens}. Set business_hours to 'wait' or "
                "'ignore' to change this."
            )
            raise BusinessHoursError(msg)
        seconds = (window.opens_at - self.clock()).total_seconds()
        self.logger.warning(
            "Bulk job of %d rows during business hours: waiting %.0f s until %s",
            self.writes,
            seconds,
            opens,
        )
        self.sleep(max(0.0, seconds))
        self.decided = True
