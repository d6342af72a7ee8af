"""Fixtures of the target tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.target.helpers import Runner


@pytest.fixture
def run_target(tmp_path: Path) -> Runner:
    """Call with (sandbox handle, messages, **config overrides) -> Result."""
    return Runner(tmp_path)
