"""Runs inside .venv-pyairbyte (`make pyairbyte`), never in .venv: PyAirbyte drives
source-moovago and destination-moovago as local executables, with a DuckDB cache.

    python run.py read  SOURCE_EXE CONFIG.json CACHE_DIR OUT.json
    python run.py write SOURCE_EXE DESTINATION_EXE SOURCE.json DESTINATION.json CACHE_DIR STREAM
                        OUT.json [SQL]

`read` reads every stream into the cache (incremental where the stream has a cursor, from the
state the cache keeps) and writes what it read: per stream the rows in the cache and the ids
this read brought. `write` catches the cache up, runs SQL on it (e.g. an UPDATE a warehouse user
makes), then writes the cached STREAM to the destination.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import airbyte as ab
from sqlalchemy import text


def _cache(cache_dir: str) -> Any:
    return ab.new_local_cache("moovago", cache_dir=cache_dir, cleanup=False)


def _table(cache: Any, stream: str) -> str:
    return f'{cache.schema_name}."{cache.processor.get_sql_table_name(stream)}"'


def read(executable: str, config_path: str, cache_dir: str, out_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    source = ab.get_source(
        "source-moovago", local_executable=executable, config=config, install_if_missing=False
    )
    source.check()
    source.select_all_streams()
    cache = _cache(cache_dir)
    started = time.time()
    result = source.read(cache=cache)
    streams: dict[str, Any] = {}
    with cache.get_sql_engine().connect() as conn:
        for name in result.streams:
            # PyAirbyte lower-cases column names (updatedAt -> updatedat).
            query = f"SELECT id, _airbyte_extracted_at FROM {_table(cache, name)}"  # noqa: S608
            rows = conn.execute(text(query)).fetchall()
            streams[name] = {
                "ids": sorted(str(row[0]) for row in rows),
                "read_now": sorted(str(row[0]) for row in rows if row[1].timestamp() >= started),
            }
    report = {"processed_records": result.processed_records, "streams": streams}
    Path(out_path).write_text(json.dumps(report))


def write(
    source_executable: str,
    destination_executable: str,
    source_config: str,
    destination_config: str,
    cache_dir: str,
    stream: str,
    out_path: str,
    sql: str = "",
) -> None:
    """Catch the cache up with the source (PyAirbyte writes from a read's result), run `sql`
    on the cache, then write the cached `stream` to the destination."""
    source = ab.get_source(
        "source-moovago",
        local_executable=source_executable,
        config=json.loads(Path(source_config).read_text()),
        install_if_missing=False,
    )
    source.select_streams([stream])
    cache = _cache(cache_dir)
    result = source.read(cache=cache)
    if sql:
        with cache.get_sql_engine().begin() as conn:
            conn.execute(text(sql.replace("{table}", _table(cache, stream))))
    destination = ab.get_destination(
        "destination-moovago",
        local_executable=destination_executable,
        config=json.loads(Path(destination_config).read_text()),
        install_if_missing=False,
    )
    destination.check()
    written = destination.write(result, streams=[stream], force_full_refresh=True)
    Path(out_path).write_text(json.dumps({"processed_records": written.processed_records}))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"read": read, "write": write}[command](*args)
