"""Fixtures of the core unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.stub_server import StubServer


@pytest.fixture
def stub() -> Iterator[StubServer]:
    """A scripted HTTP server on 127.0.0.1, stopped after the test."""
    server = StubServer().start()
    yield server
    server.stop()
