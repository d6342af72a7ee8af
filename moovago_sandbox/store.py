"""SQLite store of the sandbox: one table per entity, rows kept as the JSON the API returns.

Every read and write is scoped to one team: a row of another team is "not found", whatever id
is guessed. Ids are 24 hex digits like MongoDB ObjectIds (creation second, then a seed salt,
then a global counter), so sorting by id sorts by creation. `updatedAt` is set by the store on
every write and strictly increases from one write to the next.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sqlite3
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from moovago_sandbox.model import EntityModel
from moovago_sandbox.scalars import UTC, format_datetime

TEAM = "team"
CURSOR_PREFIX = "cursor:"


class StoreError(Exception):
    """A write the API refuses; the message is safe to return to the client."""


class NotFoundError(StoreError):
    """No row with that id in the caller's team (rows of other teams included)."""


def cursor_of(record_id: str) -> str:
    """The opaque cursor of a row: its id, base64 encoded (rows are sorted by id)."""
    return base64.b64encode((CURSOR_PREFIX + record_id).encode()).decode()


def id_of_cursor(cursor: str) -> str:
    try:
        text = base64.b64decode(cursor.encode(), validate=True).decode()
    except (ValueError, UnicodeError) as exc:
        raise StoreError(f"Invalid cursor {cursor[:40]!r}") from exc
    if not text.startswith(CURSOR_PREFIX):
        raise StoreError(f"Invalid cursor {cursor[:40]!r}")
    return text[len(CURSOR_PREFIX) :]


def _order_key(record_id: str, salt: int) -> int:
    return zlib.crc32(f"{salt}:{record_id}".encode())


class IdFactory:
    """ObjectId-like ids: 8 hex of creation second, 4 hex of seed salt, 12 hex of counter."""

    def __init__(self, salt: int, counter: int = 0) -> None:
        self.salt = salt & 0xFFFF
        self.counter = counter
        self._last_second = 0

    def next(self, created: datetime) -> str:
        self.counter += 1
        second = max(int(created.timestamp()), self._last_second)
        self._last_second = second
        return f"{second:08x}{self.salt:04x}{self.counter:012x}"


def _q(name: str) -> str:
    return '"' + name + '"'


class Store:
    """Rows of every team, in SQLite (`:memory:` by default).

    Every stored field is a column (lists and objects as JSON text), so a page of rows costs
    one `dict(zip(...))` each instead of decoding a whole JSON document per row. Every write
    runs in one transaction that is rolled back when any part of it fails.
    """

    def __init__(
        self,
        models: Mapping[str, EntityModel],
        path: str = ":memory:",
        *,
        id_salt: int = 0,
        clock_offset: float = 0.0,
    ) -> None:
        self.models = dict(models)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=" + ("MEMORY" if path == ":memory:" else "WAL"))
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.create_function("sandbox_order", 2, _order_key, deterministic=True)
        self.ids = IdFactory(id_salt)
        self.clock_offset = clock_offset
        self._last_write_ms = 0
        self._select = {
            name: "SELECT " + ", ".join(_q(c) for c in m.columns) + f" FROM {m.table}"  # noqa: S608 (names from the SDL; values are always bound)
            for name, m in self.models.items()
        }
        self._create_tables()

    # -- setup ----------------------------------------------------------------------------

    def _create_tables(self) -> None:
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self.db.execute("CREATE TABLE IF NOT EXISTS team (id TEXT PRIMARY KEY, data TEXT NOT NULL)")
        for model in self.models.values():
            columns = ", ".join(_q(c) for c in (*model.columns, *model.json_shadows) if c != "id")
            self.db.execute(
                f"CREATE TABLE IF NOT EXISTS {model.table} (id TEXT PRIMARY KEY, {columns})"
            )
            self.db.execute(
                f"CREATE INDEX IF NOT EXISTS {model.table}_team ON {model.table} (teamId, id)"
            )
        self._load_meta()

    def _load_meta(self) -> None:
        meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        self.ids.counter = int(meta.get("id_counter", self.ids.counter))
        self._last_write_ms = int(meta.get("last_write_ms", self._last_write_ms))

    def _save_meta(self) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [("id_counter", str(self.ids.counter)), ("last_write_ms", str(self._last_write_ms))],
        )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN ... COMMIT, or ROLLBACK (ids and clock too) when the block raises."""
        counter, last_ms = self.ids.counter, self._last_write_ms
        self.db.execute("BEGIN")
        try:
            yield
            self._save_meta()
        except BaseException:
            self.db.execute("ROLLBACK")
            self.ids.counter, self._last_write_ms = counter, last_ms
            raise
        self.db.execute("COMMIT")

    def is_empty(self) -> bool:
        return self.db.execute("SELECT count(*) FROM team").fetchone()[0] == 0

    def clear(self) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM team")
            self.db.execute("DELETE FROM meta")
            for model in self.models.values():
                self.db.execute(f"DELETE FROM {model.table}")  # noqa: S608
            self.ids.counter = 0
            self._last_write_ms = 0

    def _encode(self, model: EntityModel, row: Mapping[str, Any]) -> tuple[Any, ...]:
        json_fields = model.json_fields
        values = tuple(
            None
            if (v := row.get(c)) is None
            else json.dumps(v, ensure_ascii=False, separators=(",", ":"))
            if c in json_fields
            else v
            for c in model.columns
        )
        shadows = tuple(
            json.dumps(row.get(c), ensure_ascii=False)
            for c in model.columns
            if c not in json_fields
        )
        return values + shadows

    def _decode(self, model: EntityModel, cursor: Any) -> list[dict[str, Any]]:
        columns, json_fields, loads = model.columns, tuple(model.json_fields), json.loads
        rows = []
        for values in cursor:
            row = dict(zip(columns, values, strict=True))
            for f in json_fields:
                if (v := row[f]) is not None:
                    row[f] = loads(v)
            rows.append(row)
        return rows

    def _insert_sql(self, model: EntityModel, verb: str = "INSERT") -> str:
        all_columns = (*model.columns, *model.json_shadows)
        marks = ", ".join("?" for _ in all_columns)
        columns = ", ".join(_q(c) for c in all_columns)
        return f"{verb} INTO {model.table} ({columns}) VALUES ({marks})"

    def load(self, dataset: Mapping[str, Sequence[Mapping[str, Any]]], *, id_counter: int) -> None:
        """Bulk insert seed rows (already complete, ids and timestamps included)."""
        with self.transaction():
            self.db.executemany(
                "INSERT INTO team (id, data) VALUES (?, ?)",
                [(t["id"], json.dumps(t, ensure_ascii=False)) for t in dataset.get(TEAM, ())],
            )
            last = ""
            for name, model in self.models.items():
                rows = dataset.get(name, ())
                self.db.executemany(self._insert_sql(model), [self._encode(model, r) for r in rows])
                last = max([last, *(r.get("updatedAt") or "" for r in rows)])
            if last:
                stamp = datetime.fromisoformat(last.replace("Z", "+00:00"))
                self._last_write_ms = max(self._last_write_ms, int(stamp.timestamp() * 1000))
            self.ids.counter = max(self.ids.counter, id_counter)

    # -- reads ------------------------------------------------------------------------------

    def team(self, team_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT data FROM team WHERE id = ?", (team_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def _where(
        self,
        model: EntityModel,
        team_id: str,
        *,
        updated_since: str | None = None,
        ids: Sequence[str] | None = None,
        equals: Mapping[str, Any] | None = None,
        after_id: str | None = None,
        skip: int = 0,
        limit: int | None = None,
        order_salt: int | None = None,
    ) -> tuple[str, list[Any]]:
        where: list[str] = ["teamId = ?"]
        params: list[Any] = [team_id]
        if updated_since is not None and model.has_updated_at:
            where.append("updatedAt >= ?")
            params.append(updated_since)
        if ids is not None:
            where.append("id IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(list(ids)))
        if after_id is not None:
            where.append("id > ?")
            params.append(after_id)
        for fname, value in (equals or {}).items():
            if fname not in model.stored_fields or fname in model.json_fields:
                raise StoreError(f"Unknown filter field {fname!r}")
            if isinstance(value, list):
                where.append(f"{_q(fname)} IN (SELECT value FROM json_each(?))")  # noqa: S608
                params.append(json.dumps(value))
            else:
                where.append(f"{_q(fname)} = ?")
                params.append(value)
        sql = f" WHERE {' AND '.join(where)} ORDER BY "
        if order_salt is None:
            sql += "id"
        else:
            sql += "sandbox_order(id, ?), id"
            params.append(order_salt)
        if limit is not None or skip:
            sql += " LIMIT ? OFFSET ?"
            params += [-1 if limit is None else limit, skip]
        return sql, params

    def select(self, entity: str, team_id: str, **query: Any) -> list[dict[str, Any]]:
        """Rows of one team, sorted by id (or shuffled by `order_salt`), filtered and paged:
        keywords updated_since, ids, equals, after_id, skip, limit, order_salt."""
        model = self.models[entity]
        where, params = self._where(model, team_id, **query)
        return self._decode(model, self.db.execute(self._select[entity] + where, params))

    def select_json(self, entity: str, team_id: str, projection: str, **query: Any) -> list[str]:
        """Like `select`, but each row as the JSON text SQL expression `projection` builds
        (over the table aliased `t`), so no row passes through Python objects."""
        model = self.models[entity]
        where, params = self._where(model, team_id, **query)
        sql = f"SELECT {projection} FROM {model.table} AS t{where}"  # noqa: S608
        return [text for (text,) in self.db.execute(sql, params)]

    def count(self, entity: str, team_id: str, **query: Any) -> int:
        model = self.models[entity]
        where, params = self._where(model, team_id, **query)
        where = where.split(" ORDER BY ")[0]
        sql = f"SELECT count(*) FROM {model.table}{where}"  # noqa: S608
        return int(self.db.execute(sql, params).fetchone()[0])

    def ids_of(self, entity: str, team_id: str) -> list[str]:
        model = self.models[entity]
        sql = f"SELECT id FROM {model.table} WHERE teamId = ? ORDER BY id"  # noqa: S608
        return [i for (i,) in self.db.execute(sql, (team_id,))]

    def by_ids(self, entity: str, team_id: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Rows of `ids` that exist in the team, in the order of `ids`."""
        if not ids:
            return []
        found = {row["id"]: row for row in self.select(entity, team_id, ids=ids)}
        return [found[i] for i in ids if i in found]

    def export(self) -> dict[str, list[dict[str, Any]]]:
        """Every team's rows by entity, each row with its teamId, sorted by id."""
        teams = [json.loads(d) for (d,) in self.db.execute("SELECT data FROM team ORDER BY id")]
        out: dict[str, list[dict[str, Any]]] = {TEAM: [{**t, "teamId": t["id"]} for t in teams]}
        for name, model in self.models.items():
            out[name] = self._decode(model, self.db.execute(f"{self._select[name]} ORDER BY id"))
        return out

    # -- writes -----------------------------------------------------------------------------

    def now(self) -> datetime:
        """The server's clock (the real one plus `clock_offset`)."""
        return datetime.fromtimestamp(time.time() + self.clock_offset, tz=UTC)

    def _now(self) -> datetime:
        """Now, in whole milliseconds, strictly after the previous write."""
        now_ms = max(int((time.time() + self.clock_offset) * 1000), self._last_write_ms + 1)
        self._last_write_ms = now_ms
        return datetime.fromtimestamp(now_ms / 1000, tz=UTC)

    def _get(self, model: EntityModel, team_id: str, record_id: str) -> dict[str, Any]:
        rows = self._decode(
            model,
            self.db.execute(
                f"{self._select[model.name]} WHERE id = ? AND teamId = ?", (record_id, team_id)
            ),
        )
        if not rows:
            raise NotFoundError(f"No {model.name} with id {record_id!r} in this team")
        return rows[0]

    def _check(self, model: EntityModel, team_id: str, row: Mapping[str, Any]) -> None:
        for fname in sorted(model.non_null):
            if row.get(fname) is None:
                raise StoreError(f"Field {fname!r} of a {model.name} cannot be null")
        for fname, target in model.references.items():
            value = row.get(fname)
            wanted = list(value) if isinstance(value, list) else [] if value is None else [value]
            if not wanted:
                continue
            found = {r["id"] for r in self.by_ids(target, team_id, wanted)}
            missing = [v for v in wanted if v not in found]
            if missing:
                raise StoreError(
                    f"Field {fname!r}: no {target} with id {missing[0]!r} in this team"
                )
        start, end = row.get("startDate"), row.get("endDate")
        if isinstance(start, str) and isinstance(end, str) and end < start:
            raise StoreError("Field 'endDate' is before 'startDate'")

    def _write(self, model: EntityModel, row: dict[str, Any], *, insert: bool) -> None:
        verb = "INSERT" if insert else "REPLACE"
        self.db.execute(self._insert_sql(model, verb), self._encode(model, row))

    def _with_mirrors(self, model: EntityModel, row: dict[str, Any]) -> dict[str, Any]:
        for mirror, source in model.mirrors.items():
            row[mirror] = row.get(source)
        if model.cursor_field and row.get("id"):
            row[model.cursor_field] = cursor_of(row["id"])
        return row

    def _stamp(self, model: EntityModel, row: dict[str, Any], *, created: bool) -> datetime:
        now = self._now()
        stamp = format_datetime(now)
        if "updatedAt" in model.stored_fields:
            row["updatedAt"] = stamp
        if created and "createdAt" in model.stored_fields:
            row["createdAt"] = stamp
        return now

    def create(
        self, entity: str, team_id: str, values: Mapping[str, Any], *, owner_id: str | None
    ) -> dict[str, Any]:
        model = self.models[entity]
        row: dict[str, Any] = {}
        for fname in model.stored_fields:
            value = values.get(fname)
            if value is None:
                value = model.create_defaults.get(fname)
            if value is None and fname == "ownerIds" and owner_id:
                value = [owner_id]
            if value is None and fname in model.list_fields and fname in model.non_null:
                value = []
            row[fname] = value
        unknown = sorted(set(values) - set(model.stored_fields))
        if unknown:
            raise StoreError(f"Field {unknown[0]!r} cannot be set on a {model.name}")
        with self.transaction():
            now = self._stamp(model, row, created=True)
            row.update(id="pending", teamId=team_id)
            self._check(model, team_id, self._with_mirrors(model, row))
            row["id"] = self.ids.next(now)
            self._write(model, self._with_mirrors(model, row), insert=True)
        return row

    def update(
        self, entity: str, team_id: str, record_id: str, changes: Mapping[str, Any]
    ) -> dict[str, Any]:
        model = self.models[entity]
        row = self._get(model, team_id, record_id)
        for fname, value in changes.items():
            if fname not in model.stored_fields or fname in ("id", "teamId"):
                raise StoreError(f"Field {fname!r} of a {model.name} cannot be changed")
            row[fname] = value
        row = self._with_mirrors(model, row)
        self._check(model, team_id, row)
        with self.transaction():
            self._stamp(model, row, created=False)
            self._write(model, row, insert=False)
        return row

    def delete(self, entity: str, team_id: str, record_id: str) -> dict[str, Any]:
        """Delete a row; rows that cannot live without it go too, lists of ids forget it."""
        model = self.models[entity]
        row = self._get(model, team_id, record_id)
        with self.transaction():
            self._delete(model, team_id, record_id)
        return row

    def _delete(self, model: EntityModel, team_id: str, record_id: str) -> None:
        self.db.execute(f"DELETE FROM {model.table} WHERE id = ?", (record_id,))  # noqa: S608
        for other in self.models.values():
            for fname, target in other.references.items():
                if target == model.name:
                    self._forget(other, team_id, fname, record_id)

    def _forget(self, model: EntityModel, team_id: str, fname: str, record_id: str) -> None:
        if fname in model.list_fields:
            cond = f"EXISTS (SELECT 1 FROM json_each({_q(fname)}) WHERE value = ?)"  # noqa: S608
        else:
            cond = f"{_q(fname)} = ?"
        rows = self._decode(
            model,
            self.db.execute(
                f"{self._select[model.name]} WHERE teamId = ? AND {cond}", (team_id, record_id)
            ),
        )
        for row in rows:
            if fname in model.list_fields:
                row[fname] = [v for v in row[fname] if v != record_id]
            elif fname in model.non_null:
                self._delete(model, team_id, row["id"])
                continue
            else:
                row[fname] = None
            self._stamp(model, row, created=False)
            self._write(model, row, insert=False)
