"""After an ambiguous failure (the request may have been applied): which of its creates landed;
after a kill, which writes of the change log's journal landed.

Records are re-read from the server's clock on (its `Date` header as last seen, else the newest
`updatedAt` read this run, a lower bound of it), minus a margin; never from the local clock,
which may be minutes off the server's. With no server clock at all, every record is read.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from collections.abc import Collection, Mapping, Sequence

from moovago_api.wire import format_datetime
from target_moovago.index import KeySpec, RemoteIndex
from target_moovago.values import comparable

if t.TYPE_CHECKING:
    from moovago_api.schema import Entity
    from target_moovago.changes import ChangeLog
    from target_moovago.plan import Action
    from target_moovago.remote import Remote

# The Date header's whole seconds and the request's own time; a wider margin only re-reads more.
RECONCILE_MARGIN = dt.timedelta(minutes=5)


def server_clock(remote: Remote) -> dt.datetime | None:
    """The server's time now, as far as this run has seen it; None when it has seen nothing."""
    return remote.client.server_time() or remote.newest_updated_at


def landed_creates(
    remote: Remote,
    entity: Entity,
    index: RemoteIndex,
    key_specs: Sequence[KeySpec],
    creates: Sequence[Action],
    reference: dt.datetime | None,
) -> list[str | None]:
    """For each create, the id of the record it made, or None when it did not land: the
    records created since `reference` (the server's clock before sending) that the index does
    not hold yet, matched by key, else by the same values."""
    fields = list(index.fields)
    extra: dict[str, t.Any] = {}
    if entity.updated_since_field and reference is not None:
        extra[entity.updated_since_field] = format_datetime(reference - RECONCILE_MARGIN)
    elif entity.updated_since_field:
        remote.logger.info(
            "%s: no server clock seen (no Date header, no updatedAt read): reconciling by "
            "reading every record",
            entity.stream_name,
        )
    recent = RemoteIndex(fields, key_specs)
    found: dict[str, dict[str, t.Any]] = {}
    for record in remote.list_records(entity, fields, **extra):
        record_id = str(record["id"])
        if record_id not in index:
            recent.add(record_id, record)
            found[record_id] = record
    landed: list[str | None] = []
    for action in creates:
        match = _find_landed(recent, found, action)
        if match is not None:
            recent.remove(match)
            found.pop(match, None)
        landed.append(match)
    return landed


def _find_landed(
    recent: RemoteIndex, records: Mapping[str, Mapping[str, t.Any]], action: Action
) -> str | None:
    spec, ids = recent.find(action.data)
    if spec is not None:
        return ids[0] if ids else None
    for record_id, record in records.items():  # no key: the same values mean the same row
        if all(record.get(k) == v for k, v in action.data.items() if k in record):
            return record_id
    return None


def landed_write(
    index: RemoteIndex, entry: Mapping[str, t.Any], readable: Collection[str]
) -> str | None:
    """The record a write of the change log's journal made or changed, when the index shows
    it landed; None when it did not, or its values are not read back to tell."""
    record_id = entry.get("record_id")
    after = {k: v.get("after") for k, v in (entry.get("fields") or {}).items()}
    operation = entry.get("operation")
    if operation == "delete":
        return str(record_id) if record_id and record_id not in index else None
    if operation == "update":
        stored = index.get(str(record_id))
        shown = {k: v for k, v in after.items() if k in readable}
        if stored is None or not shown:
            return None
        same = all(comparable(stored.get(k)) == comparable(v) for k, v in shown.items())
        return str(record_id) if same else None
    spec, ids = index.find(after)
    return ids[0] if spec is not None and len(ids) == 1 else None


def settle_killed_writes(
    remote: Remote,
    changes: ChangeLog,
    entity: Entity,
    fields: Sequence[str],
    readable: Collection[str],
) -> None:
    """Before a stream's first plan: the writes a killed run sent and never saw answered go
    to the change log, once, where Moovago shows they landed."""
    entries = changes.unsettled.pop(entity.stream_name, [])
    if not entries:
        return
    wanted = sorted({f for e in entries for f in e.get("fields") or {} if f in readable})
    index = remote.index(entity, [*fields, *wanted])
    landed = 0
    for entry in entries:
        record_id = landed_write(index, entry, readable)
        changes.settled(entry, record_id)
        landed += record_id is not None
    remote.logger.info(
        "Stream %s: %d writes of a stopped run were never answered; %d had landed (logged now)",
        entity.stream_name,
        len(entries),
        landed,
    )
