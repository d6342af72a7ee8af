"""Fixtures of the end-to-end tests: the Meltano CLI and plugins (installed once per session),
PostgreSQL (MOOVAGO_TEST_POSTGRES_URL or embedded) and a database per test module."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import meltano_project
from tests.harness.pg import PgServer, fresh_database, postgres_server


@pytest.fixture(scope="session")
def e2e_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def meltano_installed(e2e_workdir: Path) -> Path:
    """`make meltano` then `meltano install`, once per session; returns the meltano executable."""
    meltano_project.install_plugins(meltano_project.base_env(e2e_workdir))
    return meltano_project.MELTANO


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    # Not under pytest's base temp dir: every pytest session that starts on the machine resets it
    # to mode 0700, which locks out the user an embedded server runs as when we are root.
    workdir = Path(tempfile.mkdtemp(prefix="moovago-e2e-pg-"))
    try:
        with postgres_server(workdir) as server:
            yield server
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_database(pg_server: PgServer) -> Iterator[str]:
    """A database of its own for the module, dropped at teardown."""
    with fresh_database(pg_server) as name:
        yield name
