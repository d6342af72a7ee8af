"""Pure decisions: mapped rows against the index of remote records -> create, update, delete,
unchanged or reject; a row that cannot be written is rejected before any write."""

from __future__ import annotations

import re
import typing as t
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum

from jsonschema import Draft202012Validator, FormatChecker

from moovago_api.wire import is_datetime_text
from target_moovago.index import (
    BadKeyError,
    KeySpec,
    MappedRow,
    Problem,
    RemoteIndex,
    comparable,
    json_types,
    key_part,
    leaves,
    shown,
)

KEYLESS_SETTING = "allow_keyless_creates"
_SURROGATE = re.compile("[\ud800-\udfff]")  # what UTF-8 cannot encode


class Mode(str, Enum):
    UPSERT = "upsert"
    CREATE_ONLY = "create_only"
    UPDATE_ONLY = "update_only"


class Policy(str, Enum):
    """What an update may do to one field (`field_policies`); a create writes every field."""

    OVERWRITE = "overwrite"
    FILL_EMPTY = "fill_empty"  # only where Moovago's value is empty: null, '' or []
    CREATE_ONLY = "create_only"


class Kind(str, Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    UNCHANGED = "unchanged"
    REJECT = "reject"
    SUPERSEDED = "superseded"
    SKIP_DELETE = "skipped_delete"


WRITES = frozenset({Kind.CREATE, Kind.UPDATE, Kind.DELETE})
# The ledger counter a settled row of each kind adds to (a rejection has its own line).
COUNTER = {
    Kind.CREATE: "created",
    Kind.UPDATE: "updated",
    Kind.DELETE: "deleted",
    Kind.UNCHANGED: "unchanged",
    Kind.SUPERSEDED: "superseded",
    Kind.SKIP_DELETE: "skipped_deletes",
}


FORMAT_CHECKER = FormatChecker()  # jsonschema checks `date`; `date-time` is the client's rule
FORMAT_CHECKER.checks("date-time")(lambda v: not isinstance(v, str) or is_datetime_text(v))


class InputValidator:
    """Validates payloads against one input type's JSON Schema (from the SDL)."""

    def __init__(self, schema: Mapping[str, t.Any]) -> None:
        self._validator = Draft202012Validator(schema, format_checker=FORMAT_CHECKER)
        self.properties: Mapping[str, Mapping[str, t.Any]] = schema.get("properties", {})

    def problems(self, payload: Mapping[str, t.Any]) -> list[Problem]:
        found = [
            Problem(path, "text holds a lone surrogate, which cannot be encoded as UTF-8")
            for path, value in leaves(payload)
            if isinstance(value, str) and _SURROGATE.search(value)
        ]
        for err in sorted(self._validator.iter_errors(payload), key=lambda e: list(e.path)):
            name = ".".join(str(p) for p in err.absolute_path) or None
            reason = err.message
            if err.validator == "required" and name is None:
                missing = re.search(r"'([^']+)' is a required property", err.message)
                name = missing.group(1) if missing else None
                reason = f"required field {name} is missing or null"
            elif err.validator == "format":
                reason = f"{shown(err.instance)} is not a valid {err.validator_value}"
            found.append(Problem(name, reason))
        return found


@dataclass
class Row:
    """One input row, as the sink read it, with its mapped payload."""

    position: int  # order of arrival in the stream, for messages
    record: Mapping[str, t.Any]
    mapped: MappedRow

    @property
    def payload(self) -> dict[str, t.Any]:
        return self.mapped.payload

    def key_label(self, specs: Sequence[KeySpec]) -> str:
        """How messages name the row: its id, else its match key, else its position."""
        if self.mapped.record_id:
            return f"id={self.mapped.record_id}"
        for spec in specs:
            if spec.value(self.payload) is not None:
                return ",".join(f"{f}={self.payload.get(f)!r}" for f in spec.fields)
        return f"row #{self.position}"


@dataclass
class Action:
    kind: Kind
    row: Row
    record_id: str | None = None  # the remote record for update/delete/unchanged
    data: dict[str, t.Any] = field(default_factory=dict)  # create input, or update data
    held: dict[str, str] = field(default_factory=dict)  # field -> the policy that kept it
    reason: str = ""
    field: str | None = None
    before: dict[str, t.Any] | None = None  # the indexed values it replaces, to undo a refusal


class PendingId(str):
    """The id a planned create stands under until Moovago answers with the real one."""

    __slots__ = ()


@dataclass
class PendingIds:
    """Planned creates of the run: their real ids once confirmed, None once refused."""

    _ids: dict[str, str | None] = field(default_factory=dict)

    def new(self, stream: str) -> PendingId:
        pending = PendingId(f"pending-{stream}-{len(self._ids) + 1}")
        self._ids[pending] = pending
        return pending

    def settle(self, pending: str, record_id: str | None) -> None:
        self._ids[pending] = record_id

    def resolve(self, value: t.Any) -> t.Any:
        """The real id for a pending one; KeyError when that create is refused or unconfirmed."""
        if not isinstance(value, PendingId):
            return value
        found = self._ids.get(value)
        if found is None or isinstance(found, PendingId):
            raise KeyError(value)
        return found


def _invalid(row: Row, problems: Sequence[Problem], record_id: str | None = None) -> Action:
    reason = "; ".join(f"{p.field}: {p.reason}" if p.field else p.reason for p in problems)
    return Action(Kind.REJECT, row, record_id, reason=reason, field=problems[0].field)


@dataclass
class Decider:
    """Decides what to do with each row of a batch against the remote index."""

    index: RemoteIndex
    create_validator: InputValidator
    update_validator: InputValidator
    mode: Mode = Mode.UPSERT
    hard_delete: bool = False
    clearable: frozenset[str] | None = None  # fields a NULL may clear on update (None: all)
    keyless_creates: bool = False  # create rows without id or key: a resume may duplicate them
    key_hint: str = "set match_keys"  # how to fix a missing key (moovago_api.documents)
    policies: Mapping[str, Policy] = field(default_factory=dict)  # absent fields overwrite

    def decide(self, rows: Sequence[Row]) -> list[Action]:
        """One action per row, in row order. Rows addressing one record (by id, by a key the
        index resolves, or by the same key of a new record) merge into the last of them, field
        by field: how a row names the record, or a rerun, never decides which value wins."""
        actions: list[Action | None] = [None] * len(rows)
        merged: dict[int, Row] = {}
        last_by_key: dict[tuple[t.Any, ...], int] = {}
        props = {**self.update_validator.properties, **self.create_validator.properties}
        for number, row in enumerate(rows):
            if problem := self._problem(row, props):
                actions[number] = Action(
                    Kind.REJECT, row, reason=problem.reason, field=problem.field
                )
                continue
            identity = self.identity(row)
            earlier = last_by_key.get(identity) if identity is not None else None
            if earlier is not None:
                reason = f"merged into a later row (#{row.position}) for the same record"
                actions[earlier] = Action(Kind.SUPERSEDED, rows[earlier], reason=reason)
                merged[number] = _merge(merged.pop(earlier, rows[earlier]), row)
            if identity is not None:
                last_by_key[identity] = number
        return [a or self._decide_one(merged.get(n, rows[n])) for n, a in enumerate(actions)]

    def _problem(self, row: Row, props: Mapping[str, t.Any]) -> Problem | None:
        """A mapping problem, or a match-key value that cannot be a key."""
        if row.mapped.problems:
            return row.mapped.problems[0]
        for name in dict.fromkeys(f for spec in self.index.key_specs for f in spec.fields):
            value = row.payload.get(name)
            try:
                key_part(value)
            except BadKeyError as exc:
                return Problem(name, f"{exc}; a match key must be one text or number")
            types = json_types(props.get(name) or {})
            if isinstance(value, bool) and types and "boolean" not in types:
                why = "a boolean cannot be a key value of a field that is not a boolean"
                return Problem(name, why)
        return None

    def identity(self, row: Row) -> tuple[t.Any, ...] | None:
        """Two rows' one record: its id, else the record its key finds, else that key (new)."""
        if row.mapped.record_id:
            return ("id", row.mapped.record_id)
        for number, spec in enumerate(self.index.key_specs):
            key = spec.value(row.payload)
            if key is not None:
                found = self.index.lookup(number, key)
                return ("id", found[0]) if len(found) == 1 else ("key", number, *key)
        return None

    def _decide_one(self, row: Row) -> Action:
        deleted, record_id = row.mapped.deleted, row.mapped.record_id
        if deleted and not self.hard_delete:
            return Action(Kind.SKIP_DELETE, row, reason="_sdc_deleted_at is set, hard_delete off")
        if record_id is not None:
            if record_id not in self.index and not deleted:
                reason = f"no remote record with id {record_id}"
                return Action(Kind.REJECT, row, reason=reason, field="id")
            matches = [record_id] if record_id in self.index else []
        else:
            spec, matches = self.index.find(row.payload)
            if spec is None and not (self.keyless_creates and self.mode is not Mode.UPDATE_ONLY):
                return self._keyless(row)
            if spec is not None and len(matches) > 1:
                reason = f"ambiguous: {len(matches)} remote records match {spec}: "
                reason += ", ".join(matches[:5])
                return Action(Kind.REJECT, row, reason=reason, field=",".join(spec.fields))
        if deleted and not matches:
            return Action(Kind.UNCHANGED, row, reason="already absent")
        if deleted:
            return Action(Kind.DELETE, row, record_id=matches[0])
        if not matches and self.mode is Mode.UPDATE_ONLY:
            return Action(Kind.REJECT, row, reason="no matching remote record (update_only)")
        if not matches:
            data = {k: v for k, v in row.payload.items() if v is not None}
            problems = self.create_validator.problems(data)
            return _invalid(row, problems) if problems else Action(Kind.CREATE, row, data=data)
        if self.mode is Mode.CREATE_ONLY:
            reason = "already exists (create_only)"
            return Action(Kind.REJECT, row, record_id=matches[0], reason=reason)
        return self._update(row, matches[0])

    def _keyless(self, row: Row) -> Action:
        specs = self.index.key_specs
        missing = sorted({m for s in specs for m in s.missing(row.payload)})
        keys = " or ".join(str(s) for s in specs) or "none configured"
        if row.mapped.deleted:
            why = "cannot tell which record to delete"
        elif self.mode is Mode.UPDATE_ONLY:
            why = f"cannot tell whether it exists; {self.key_hint}"
        else:
            why = (
                "a create without a key cannot be found again after a failure, so a resume "
                f"could duplicate it; fill the key, {self.key_hint}, or opt in with "
                f"{KEYLESS_SETTING}"
            )
        reason = f"no id and no match key ({keys}): {why}"
        return Action(Kind.REJECT, row, reason=reason, field=",".join(missing) or None)

    def _update(self, row: Row, record_id: str) -> Action:
        stored = self.index.get(record_id) or {}
        changes: dict[str, t.Any] = {}
        held: dict[str, str] = {}
        for name, value in row.payload.items():
            if value is None and not (self.clearable is None or name in self.clearable):
                continue
            if name in stored and comparable(value) == comparable(stored[name]):
                continue
            policy = self.policies.get(name, Policy.OVERWRITE)
            if policy is Policy.CREATE_ONLY or (
                policy is Policy.FILL_EMPTY
                and (name not in stored or not _is_empty(stored[name]) or _is_empty(value))
            ):
                held[name] = policy.value  # never makes the row changed
            else:
                changes[name] = value
        if not changes:
            return Action(Kind.UNCHANGED, row, record_id=record_id, held=held)
        problems = self.update_validator.problems(changes)
        if problems:
            return _invalid(row, problems, record_id)
        return Action(Kind.UPDATE, row, record_id=record_id, data=changes, held=held)


def _is_empty(value: t.Any) -> bool:
    return value is None or value == "" or value == []


def _merge(earlier: Row, later: Row) -> Row:
    """`later` with the fields only `earlier` gave (a delete on either side is not merged)."""
    if earlier.mapped.deleted or later.mapped.deleted:
        return later
    mapped = replace(
        later.mapped,
        payload={**earlier.payload, **later.payload},
        record_id=later.mapped.record_id or earlier.mapped.record_id,
    )
    # The rejects file shows what was planned: both rows' columns, the later winning.
    return Row(later.position, {**earlier.record, **later.record}, mapped)
