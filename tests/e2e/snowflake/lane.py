"""Runs inside .venv-snowflake (`make snowflake`), never in .venv: MeltanoLabs target-snowflake
creates a table for every stream whose Singer SCHEMA message it reads, against a fakesnow server
on 127.0.0.1; writes the columns it made, {table: {column: type}}, as JSON to OUT.

    .venv-snowflake/bin/python tests/e2e/snowflake/lane.py SCHEMAS.jsonl OUT.json

Only table creation and type mapping run here: fakesnow stops at the user stage `@~`, `REMOVE`
and the `MERGE` that a load with records needs, so the input holds SCHEMA messages only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import fakesnow
import snowflake.connector
from target_snowflake.connector import SnowflakeConnector
from target_snowflake.target import TargetSnowflake

DATABASE = "MOOVAGO_RAW"
SCHEMA = "MOOVAGO"


def main(schemas_path: str, out_path: str) -> int:
    with fakesnow.server() as endpoint:
        with snowflake.connector.connect(**endpoint) as conn:
            conn.cursor().execute(f"CREATE DATABASE {DATABASE}")
        loopback = {k: endpoint[k] for k in ("host", "port", "protocol", "session_parameters")}
        own_args = SnowflakeConnector.get_connect_args

        def connect_args(self: SnowflakeConnector) -> dict[str, Any]:
            # target-snowflake has no host setting: point its connection at the local server.
            return {**own_args(self), **loopback}

        SnowflakeConnector.get_connect_args = connect_args  # type: ignore[method-assign]
        config = {
            "account": endpoint["account"],
            "user": endpoint["user"],
            "password": endpoint["password"],
            "database": DATABASE,
            "default_target_schema": SCHEMA,
            "add_record_metadata": True,
        }
        target = TargetSnowflake(config=config, validate_config=True)
        with Path(schemas_path).open(encoding="utf-8") as handle:
            target.listen(handle)
        with snowflake.connector.connect(**endpoint, database=DATABASE) as conn:
            rows = (
                conn.cursor()
                .execute(
                    "SELECT table_name, column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = %s ORDER BY table_name, ordinal_position",
                    (SCHEMA,),
                )
                .fetchall()
            )
    columns: dict[str, dict[str, str]] = {}
    for table, column, data_type in rows:
        columns.setdefault(table, {})[column] = data_type
    Path(out_path).write_text(json.dumps(columns, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
