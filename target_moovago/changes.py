"""What a reverse-ETL run may change (`field_policies`, checked at start) and what it did change
(the change log `changes_path`, which `moovago-revert` puts back).

Each write the target confirms is one JSON line in the change log, appended when Moovago
confirms it, so before the STATE that covers it. When its request leaves, the write is first
noted in a journal beside the log (`<changes_path>.inflight`); a run killed before the answer
leaves it there, and the next run settles it against what Moovago holds before it plans
anything (reconcile.landed_write): a write that landed is logged then, once."""

from __future__ import annotations

import datetime as dt
import json
import os
import typing as t
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from singer_sdk import typing as th

from moovago_api.errors import ConfigError, MoovagoError
from moovago_api.wire import redact, secret_forms
from target_moovago.ledger import json_default
from target_moovago.plan import Action, Kind, Policy
from target_moovago.remote import writes_of

if t.TYPE_CHECKING:
    from target_moovago.index import KeySpec
    from target_moovago.remote import Remote

JOURNAL_SUFFIX = ".inflight"

PROPERTIES = (
    th.Property(
        "field_policies",
        th.ObjectType(
            additional_properties=th.ObjectType(
                additional_properties=th.StringType(allowed_values=[p.value for p in Policy]),
            ),
        ),
        title="Field policies",
        description=(
            "Per stream and field, what an update may write: `overwrite` (default), "
            "`fill_empty` (only where Moovago's value is null, '' or []) or `create_only` "
            '(written on create, never on update), e.g. {"company": {"note": "fill_empty"}}. '
            "A field a policy keeps never makes a row changed."
        ),
    ),
    th.Property(
        "changes_path",
        th.StringType,
        title="Change log",
        description="JSONL file (owner-readable only) every confirmed write is appended to "
        "before the STATE covering it: run id, time, stream, record id, match key, operation, "
        "and each written field's value before and after. `moovago-revert` puts it back.",
    ),
)


def check_field_policies(remote: Remote) -> None:
    """At start: each stream `field_policies` names is one the target writes, each field one
    its mutations take, each fill_empty field one it reads back (to see it empty)."""
    for stream, fields in (remote.config.get("field_policies") or {}).items():
        try:
            entity = remote.entity_for(stream)
        except MoovagoError as exc:
            raise ConfigError(f"field_policies: {exc}") from None
        inputs = {name for shape in writes_of(entity).shapes.values() for name in shape.writable()}
        output = remote.schema.output_json_schema(entity.type_name)["properties"]
        for name, policy in fields.items():
            if name not in inputs:
                msg = (
                    f"field_policies: {stream}.{name}: the {entity.type_name} mutations in "
                    f"{remote.schema.path} take no field {name!r}"
                )
                raise ConfigError(msg)
            if policy == Policy.FILL_EMPTY and name not in output:
                msg = (
                    f"field_policies: {stream}.{name} is fill_empty, but {entity.type_name} "
                    f"has no field {name!r} to read back whether it is empty"
                )
                raise ConfigError(msg)


def read_lines(path: Path) -> Iterator[dict[str, t.Any]]:
    """The JSON objects of a JSONL file; a line cut short by a kill is skipped."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict):
                yield entry


def match_key(specs: Sequence[KeySpec], values: Mapping[str, t.Any]) -> dict[str, t.Any] | None:
    """The first match key `values` fill, as {field: value}."""
    for spec in specs:
        if spec.value(values) is not None:
            return {name: values.get(name) for name in spec.fields}
    return None


class ChangeLog:
    """The change log of one run and its journal; does nothing without a path (dry run)."""

    def __init__(
        self,
        path: str | Path | None,
        *,
        clock: Callable[[], dt.datetime],
        secrets: Iterable[str] = (),
    ) -> None:
        self.path = Path(path) if path else None
        self.journal = Path(f"{path}{JOURNAL_SUFFIX}") if path else None
        self.run_id = uuid.uuid4().hex
        self._clock = clock
        self._secrets = secret_forms(*secrets)
        self._count = 0
        self._sent: dict[int, tuple[Action, dict[str, t.Any]]] = {}  # id(action) -> its entry
        self._fds: dict[Path, int] = {}
        # stream -> writes an earlier run sent and never saw answered, settled before planning
        self.unsettled: dict[str, list[dict[str, t.Any]]] = self._unsettled()

    def sending(self, stream: str, actions: Iterable[Action], specs: Sequence[KeySpec]) -> None:
        """Note the writes of a request about to leave in the journal (once per write)."""
        if self.journal is None:
            return
        for action in actions:
            if id(action) not in self._sent:
                entry = self._entry(stream, action, specs)
                self._sent[id(action)] = (action, entry)
                self._append(self.journal, entry)

    def confirmed(self, stream: str, action: Action, specs: Sequence[KeySpec]) -> None:
        """Moovago confirmed the write: one line in the change log."""
        if self.path is None:
            return
        sent = self._sent.pop(id(action), None)
        entry = sent[1] if sent is not None else self._entry(stream, action, specs)
        self._append(self.path, {**entry, "record_id": action.record_id, "time": self._now()})

    def dropped(self, action: Action) -> None:
        """The write was refused or never sent: nothing to settle after a kill."""
        sent = self._sent.pop(id(action), None)
        if sent is not None and self.journal is not None:
            self._append(self.journal, {"write": sent[1]["write"], "dropped": True})

    def settled(self, entry: Mapping[str, t.Any], record_id: str | None) -> None:
        """An earlier run's unanswered write, judged against Moovago: logged when it landed."""
        if self.path is None or self.journal is None:
            return
        if record_id is None:
            self._append(self.journal, {"write": entry["write"], "dropped": True})
        else:
            line = {**entry, "record_id": record_id, "time": self._now(), "recovered": True}
            self._append(self.path, line)

    def close(self) -> None:
        """Close the files; the journal keeps only what is still unsettled (else it goes)."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        if self.journal is None or not self.journal.exists():
            return
        left = [e for _, e in self._sent.values()]
        left += [e for entries in self.unsettled.values() for e in entries]
        if not left:
            self.journal.unlink()
            return
        fresh = self.journal.with_name(self.journal.name + ".new")
        fresh.unlink(missing_ok=True)
        self._append(fresh, *left)
        os.close(self._fds.pop(fresh))
        fresh.replace(self.journal)

    def _entry(self, stream: str, action: Action, specs: Sequence[KeySpec]) -> dict[str, t.Any]:
        self._count += 1
        before = action.before or {}
        if action.kind is Kind.DELETE:
            fields = {k: {"before": v, "after": None} for k, v in before.items()}
        else:
            fields = {k: {"before": before.get(k), "after": v} for k, v in action.data.items()}
        return {
            "run_id": self.run_id,
            "time": None,  # when it was confirmed
            "stream": stream,
            "record_id": None if action.kind is Kind.CREATE else action.record_id,
            "match_key": match_key(specs, {**before, **action.data}),
            "operation": action.kind.value,
            "fields": fields,
            "write": f"{self.run_id}-{self._count}",
        }

    def _now(self) -> str:
        return self._clock().isoformat()

    def _append(self, path: Path, *entries: Mapping[str, t.Any]) -> None:
        """Whole lines in one write each to a file only its owner reads: a kill cuts none."""
        fd = self._fds.get(path)
        if fd is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.fchmod(fd, 0o600)
            self._fds[path] = fd
        for entry in entries:
            entry = redact(dict(entry), self._secrets)
            text = json.dumps(entry, default=json_default, ensure_ascii=False)
            data = (text + "\n").encode("utf-8", "backslashreplace")
            while data:
                data = data[os.write(fd, data) :]

    def _unsettled(self) -> dict[str, list[dict[str, t.Any]]]:
        """Writes the journal holds that neither the change log nor a drop settles."""
        if self.journal is None or self.path is None:
            return {}
        sent: dict[str, dict[str, t.Any]] = {}
        for entry in read_lines(self.journal):
            if entry.get("dropped"):
                sent.pop(str(entry.get("write")), None)
            elif entry.get("write") and entry.get("stream"):
                sent[str(entry["write"])] = entry
        if sent:
            for entry in read_lines(self.path):
                sent.pop(str(entry.get("write")), None)
        by_stream: dict[str, list[dict[str, t.Any]]] = {}
        for entry in sent.values():
            by_stream.setdefault(str(entry["stream"]), []).append(entry)
        return by_stream
