"""One run at a time per account on a machine (issue 11 item 3): the run lock, no server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from target_moovago.runlock import RunLock, RunLockError, default_lock_dir, lock_name

URL = "https://api.example.test/graphql"
HOLD = """
import sys, time
from target_moovago.runlock import RunLock
lock = RunLock(sys.argv[1], sys.argv[2], lock_dir=sys.argv[3])
lock.acquire()
print("held", flush=True)
time.sleep(60)
"""


def holder(tmp_path: Path, team: str = "T1") -> subprocess.Popen[str]:
    """Another process holding the lock (killed by the test)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, URL, team, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture
def hold(tmp_path):
    """Acquire a lock in `tmp_path` (released at the end of the test)."""
    locks = []

    def acquire(url: str = URL, team: str = "T1", **kwargs) -> RunLock:
        lock = RunLock(url, team, lock_dir=tmp_path, **kwargs)
        lock.acquire()
        locks.append(lock)
        return lock

    yield acquire
    for lock in locks:
        lock.release()


def refused(tmp_path: Path, url: str = URL, team: str = "T1") -> bool:
    """Whether another run of (url, team) is refused now: the lock is held."""
    lock = RunLock(url, team, lock_dir=tmp_path)
    try:
        lock.acquire()
    except RunLockError:
        return True
    lock.release()
    return False


def test_a_second_run_is_refused_with_one_line_naming_the_holder(tmp_path, hold):
    hold()
    with pytest.raises(RunLockError) as caught:
        RunLock(URL, "T1", lock_dir=tmp_path).acquire()
    text = str(caught.value)
    assert "\n" not in text
    assert f"pid {os.getpid()}" in text
    assert "lock_wait_seconds" in text
    assert str(tmp_path) in text


def test_the_lock_is_per_api_url_and_team(tmp_path, hold):
    hold()
    hold(team="T2")
    hold("https://other.example.test/graphql")
    assert refused(tmp_path, team="T2")
    assert refused(tmp_path, "https://other.example.test/graphql")
    assert lock_name("HTTPS://API.example.test/graphql/", "T1") == lock_name(URL, "T1")
    assert lock_name(URL, "T1") != lock_name(URL, "T2")


def test_released_lock_can_be_taken_again(tmp_path, hold):
    first = RunLock(URL, "T1", lock_dir=tmp_path)
    first.acquire()
    first.release()
    assert not refused(tmp_path)
    hold()
    assert refused(tmp_path)


def test_a_waiting_run_goes_once_the_first_ends(tmp_path):
    first = RunLock(URL, "T1", lock_dir=tmp_path)
    first.acquire()
    timer = threading.Timer(0.5, first.release)
    timer.start()
    started = time.monotonic()
    second = RunLock(URL, "T1", lock_dir=tmp_path, wait_seconds=10)
    second.acquire()
    waited = time.monotonic() - started
    timer.join()
    assert refused(tmp_path)
    assert 0.3 < waited < 9
    second.release()


def test_waiting_has_a_limit(tmp_path, hold):
    hold()
    with pytest.raises(RunLockError, match=r"after waiting 0\.5 s"):
        RunLock(URL, "T1", lock_dir=tmp_path, wait_seconds=0.5).acquire()


def test_a_lock_held_by_another_process_refuses_and_a_killed_holder_frees_it(tmp_path):
    proc = holder(tmp_path)
    try:
        with pytest.raises(RunLockError, match=f"pid {proc.pid} "):
            RunLock(URL, "T1", lock_dir=tmp_path).acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
    assert not refused(tmp_path)  # the stale file left behind does not block


def test_an_unusable_lock_dir_is_one_clear_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(RunLockError, match="set lock_dir"):
        RunLock(URL, "T1", lock_dir=blocker / "locks").acquire()


def test_default_lock_dir_is_the_per_user_state_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_lock_dir() == tmp_path / "target-moovago" / "locks"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_lock_dir() == Path.home() / ".local" / "state" / "target-moovago" / "locks"
