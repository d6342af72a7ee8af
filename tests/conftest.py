"""Fixtures every test area shares: the sandbox (read-only, once per process) and fresh ones."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from moovago_sandbox.testing import SandboxHandle, SandboxPool, shared_sandbox


@pytest.fixture(scope="session")
def sandbox() -> SandboxHandle:
    """The process-wide sandbox: read it, never write to it (use `sandbox_factory` to write)."""
    return shared_sandbox()


@pytest.fixture(scope="session")
def sandbox_pool() -> Iterator[SandboxPool]:
    """The worker's idle sandbox processes, rebuilt in place for each test that takes one."""
    pool = SandboxPool()
    yield pool
    pool.close()


@pytest.fixture
def sandbox_factory(sandbox_pool: SandboxPool) -> Iterator[Callable[..., SandboxHandle]]:
    """Call with `start_sandbox` arguments: a sandbox as fresh as a new process (store, stats,
    limits, faults), taken from the pool and given back when the test ends."""
    with contextlib.ExitStack() as stack:

        def factory(**kwargs: Any) -> SandboxHandle:
            return stack.enter_context(sandbox_pool.sandbox(**kwargs))

        yield factory
