"""Fixtures every test area shares: the sandbox (read-only, once per process) and fresh ones."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from moovago_sandbox.testing import SandboxHandle, shared_sandbox, start_sandbox


@pytest.fixture(scope="session")
def sandbox() -> SandboxHandle:
    """The process-wide sandbox: read it, never write to it (use `sandbox_factory` to write)."""
    return shared_sandbox()


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., SandboxHandle]]:
    """Call with `start_sandbox` arguments; each sandbox is stopped when the test ends."""
    with contextlib.ExitStack() as stack:

        def factory(**kwargs: Any) -> SandboxHandle:
            return stack.enter_context(start_sandbox(**kwargs))

        yield factory
