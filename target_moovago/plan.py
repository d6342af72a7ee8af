"""Pure planning: mapped rows + an index of remote records -> create/update/delete/unchanged/reject.

Nothing here does I/O; the sink feeds it rows and an index and sends what it returns.

Match-key values compare exactly: `abc` and `ABC` are two records. A stream may opt in to
normalisation (`trim`, `case`: str.strip, str.casefold), which also merges `Straße`/`STRASSE`
and the Kelvin sign with `K`. A value that cannot be a key (object, list, NaN, a boolean in a
field that is not one) rejects its row; a stored record with such a value is not indexed.
"""

from __future__ import annotations

import decimal
import math
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from target_moovago.mapping import InputValidator, MappedRow, Problem, comparable

NORMALIZATIONS = ("trim", "case")
KEYLESS_SETTING = "allow_keyless_creates"


class Mode(str, Enum):
    UPSERT = "upsert"
    CREATE_ONLY = "create_only"
    UPDATE_ONLY = "update_only"


class Kind(str, Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    UNCHANGED = "unchanged"
    REJECT = "reject"
    SUPERSEDED = "superseded"
    SKIP_DELETE = "skipped_delete"


WRITES = frozenset({Kind.CREATE, Kind.UPDATE, Kind.DELETE})


class BadKeyError(ValueError):
    """A value that cannot be (part of) a match key: an object, a list, NaN or Infinity."""


def parse_normalize(stream: str, value: Any) -> frozenset[str]:
    """The `match_normalize` entry of one stream, e.g. ["trim", "case"]; ValueError with a
    sentence for anything else."""
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        msg = f"match_normalize: {stream!r} must be a list of {', '.join(NORMALIZATIONS)}"
        raise ValueError(msg)
    unknown = [v for v in value if v not in NORMALIZATIONS]
    if unknown:
        msg = (
            f"match_normalize: {stream!r} names {', '.join(map(repr, unknown))}; "
            f"use {' and/or '.join(NORMALIZATIONS)}"
        )
        raise ValueError(msg)
    return frozenset(value)


@dataclass(frozen=True)
class KeySpec:
    """One match key: its fields, those of them that may be null (written `field?`), and the
    normalisation its text values get before comparing (none by default: exact)."""

    fields: tuple[str, ...]
    optional: frozenset[str] = frozenset()
    normalize: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, names: Sequence[str], normalize: Iterable[str] = ()) -> KeySpec:
        fields = tuple(n.rstrip("?") for n in names)
        optional = frozenset(n.rstrip("?") for n in names if n.endswith("?"))
        return cls(fields, optional, frozenset(normalize))

    def __str__(self) -> str:
        return "+".join(f + ("?" if f in self.optional else "") for f in self.fields)

    def value(self, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The key of a row or record, or None when a required part is empty or cannot be a
        key (the planner rejects such rows before asking; such stored records stay unindexed)."""
        parts = []
        for name in self.fields:
            try:
                part = key_part(values.get(name), self.normalize)
            except BadKeyError:
                return None
            if part is None and name not in self.optional:
                return None
            parts.append(part)
        if all(p is None for p in parts):
            return None
        return tuple(parts)

    def missing(self, values: Mapping[str, Any]) -> list[str]:
        return [n for n in self.fields if n not in self.optional and _empty(values.get(n))]


def _empty(value: Any) -> bool:
    try:
        return key_part(value) is None
    except BadKeyError:
        return False


def key_part(value: Any, normalize: Iterable[str] = ()) -> Any:
    """One part of a key, compared exactly unless the stream opts in to `trim`/`case`.

    '' is no value; 1.0 and 1 are the same number; BadKeyError for what cannot be a key."""
    if value is None:
        return None
    if isinstance(value, str):
        if "trim" in normalize:
            value = value.strip()
        if "case" in normalize:
            value = value.casefold()
        return value or None
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float | decimal.Decimal):
        if not (value.is_finite() if isinstance(value, decimal.Decimal) else math.isfinite(value)):
            raise BadKeyError("NaN and Infinity cannot be key values")
        return int(value) if value == int(value) else float(value)
    kinds = {dict: "an object", list: "a list"}
    kind = next((k for t, k in kinds.items() if isinstance(value, t)), type(value).__name__)
    raise BadKeyError(f"{kind} cannot be a key value")


def key_value_problem(value: Any, prop: Mapping[str, Any]) -> str | None:
    """Why `value` cannot be a match-key value of the input field `prop`, else None."""
    try:
        key_part(value)
    except BadKeyError as exc:
        return f"{exc}; a match key must be one text or number"
    kind = prop.get("type", [])
    types = {kind} if isinstance(kind, str) else set(kind)
    if isinstance(value, bool) and types and "boolean" not in types:
        return "a boolean cannot be a key value of a field that is not a boolean"
    return None


DEFAULT_MATCH_KEYS: dict[str, list[list[str]]] = {
    "company": [["customerCode"]],
    "contact": [["companyId", "email"]],
    "mandator": [["code"], ["name"]],
    "turnover": [["companyId", "mandatorId?", "startDate", "endDate"]],
}


class RemoteIndex:
    """The remote records of one entity: id -> stored values of the tracked fields, and
    match key -> ids. Values are kept as tuples in `fields` order to bound memory.
    Thread-safe: sinks drained in parallel may read a parent's index."""

    def __init__(self, fields: Iterable[str], key_specs: Sequence[KeySpec]) -> None:
        names = list(dict.fromkeys(fields))
        for spec in key_specs:
            names.extend(f for f in spec.fields if f not in names)
        self.fields: tuple[str, ...] = tuple(names)
        self.key_specs = tuple(key_specs)
        self._values: dict[str, tuple[Any, ...]] = {}
        # key -> one id, or a list of ids when several records share the key (rare): a list
        # per key would cost ~70 bytes per record for nothing. One-field keys are stored bare.
        self._keys: list[dict[Any, str | list[str]]] = [{} for _ in self.key_specs]
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._values

    def add(self, record_id: str, values: Mapping[str, Any]) -> None:
        """Store (or replace) a record; `values` may hold more fields than tracked."""
        with self._lock:
            old = self._values.get(record_id)
            if old is not None:
                self._unlink(record_id, dict(zip(self.fields, old, strict=True)))
            self._values[record_id] = tuple(values.get(f) for f in self.fields)
            for spec, keys in zip(self.key_specs, self._keys, strict=True):
                key = _compact(spec.value(values))
                if key is None:
                    continue
                held = keys.get(key)
                if held is None:
                    keys[key] = record_id
                elif isinstance(held, list):
                    held.append(record_id)
                else:
                    keys[key] = [held, record_id]

    def update(self, record_id: str, changes: Mapping[str, Any]) -> None:
        current = self.get(record_id) or {}
        self.add(record_id, {**current, **changes})

    def remove(self, record_id: str) -> None:
        with self._lock:
            old = self._values.pop(record_id, None)
            if old is not None:
                self._unlink(record_id, dict(zip(self.fields, old, strict=True)))

    def _unlink(self, record_id: str, values: Mapping[str, Any]) -> None:
        for spec, keys in zip(self.key_specs, self._keys, strict=True):
            key = _compact(spec.value(values))
            held = keys.get(key) if key is not None else None
            if held == record_id:
                del keys[key]
            elif isinstance(held, list) and record_id in held:
                held.remove(record_id)
                if len(held) == 1:
                    keys[key] = held[0]

    def get(self, record_id: str) -> dict[str, Any] | None:
        values = self._values.get(record_id)
        return None if values is None else dict(zip(self.fields, values, strict=True))

    def lookup(self, spec_index: int, key: tuple[Any, ...]) -> list[str]:
        with self._lock:
            held = self._keys[spec_index].get(_compact(key))
        if held is None:
            return []
        return list(held) if isinstance(held, list) else [held]

    def lookup_field(self, name: str, value: Any) -> list[str]:
        """Ids whose `name` equals `value` (as keys compare), e.g. a parent's customerCode."""
        normalize = next((s.normalize for s in self.key_specs if name in s.fields), frozenset())
        single = KeySpec((name,), normalize=normalize)
        key = single.value({name: value})
        if key is None:
            return []
        for number, spec in enumerate(self.key_specs):
            if spec.fields == (name,):
                return self.lookup(number, key)
        if name not in self.fields:
            return []
        position = self.fields.index(name)
        with self._lock:
            return [i for i, v in self._values.items() if single.value({name: v[position]}) == key]

    def find(self, values: Mapping[str, Any]) -> tuple[KeySpec | None, list[str]]:
        """Ids matching the first key spec the values fill; (None, []) when none applies."""
        for number, spec in enumerate(self.key_specs):
            key = spec.value(values)
            if key is not None:
                return spec, self.lookup(number, key)
        return None, []


def _compact(key: tuple[Any, ...] | None) -> Any:
    return key[0] if key is not None and len(key) == 1 else key


@dataclass
class Row:
    """One input row, as the sink read it, with its mapped payload."""

    position: int  # order of arrival in the stream, for messages
    record: Mapping[str, Any]
    mapped: MappedRow

    @property
    def payload(self) -> dict[str, Any]:
        return self.mapped.payload

    def key_label(self, specs: Sequence[KeySpec]) -> str:
        """How messages name the row: its id, else its match key, else its position."""
        if self.mapped.record_id:
            return f"id={self.mapped.record_id}"
        for spec in specs:
            if spec.value(self.payload) is not None:
                return ",".join(f"{f}={self.payload.get(f)!r}" for f in spec.fields)
        return f"row #{self.position}"

    def problem(self, specs: Sequence[KeySpec], props: Mapping[str, Any]) -> Problem | None:
        """What makes this row unwritable before planning: a mapping problem (NaN, a bad
        `_sdc_deleted_at`, conflicting columns) or a match-key value that cannot be a key."""
        if self.mapped.problems:
            return self.mapped.problems[0]
        for name in dict.fromkeys(f for spec in specs for f in spec.fields):
            reason = key_value_problem(self.payload.get(name), props.get(name) or {})
            if reason is not None:
                return Problem(name, reason)
        return None


@dataclass
class Action:
    kind: Kind
    row: Row
    record_id: str | None = None  # the remote record for update/delete/unchanged
    data: dict[str, Any] = field(default_factory=dict)  # create input, or update data
    reason: str = ""
    field: str | None = None

    def variables(self) -> dict[str, Any]:
        """The mutation's `input` variable."""
        if self.kind is Kind.CREATE:
            return self.data
        if self.kind is Kind.UPDATE:
            return {"id": self.record_id, "input": self.data}
        return {"id": self.record_id}


@dataclass
class Planner:
    """Decides what to do with each row of a batch against the remote index."""

    index: RemoteIndex
    create_validator: InputValidator
    update_validator: InputValidator
    mode: Mode = Mode.UPSERT
    hard_delete: bool = False
    # Fields a NULL may clear on update (nullable scalars or objects of the output type). A NULL
    # in any other field (non-null output, lists) leaves the stored value alone.
    clearable: frozenset[str] | None = None  # None: every field
    # Create rows with neither id nor match key (create_only, upsert): a create that fails
    # ambiguously cannot be found again, so a crash and resume may duplicate it.
    keyless_creates: bool = False

    def plan(self, rows: Sequence[Row]) -> list[Action]:
        """One action per row, in row order; later rows with the same key supersede earlier."""
        actions: list[Action | None] = [None] * len(rows)
        last_by_key: dict[tuple[Any, ...], int] = {}
        props = {**self.update_validator.properties, **self.create_validator.properties}
        for number, row in enumerate(rows):
            problem = row.problem(self.index.key_specs, props)
            if problem is not None:
                actions[number] = Action(
                    Kind.REJECT, row, reason=problem.reason, field=problem.field
                )
                continue
            identity = self.identity(row)
            if identity is not None:
                earlier = last_by_key.get(identity)
                if earlier is not None:
                    actions[earlier] = Action(
                        Kind.SUPERSEDED,
                        rows[earlier],
                        reason=f"a later row (#{row.position}) has the same key",
                    )
                last_by_key[identity] = number
        for number, row in enumerate(rows):
            if actions[number] is None:
                actions[number] = self._plan_one(row)
        return [a for a in actions if a is not None]

    def identity(self, row: Row) -> tuple[Any, ...] | None:
        """What makes two rows the same record: the id, else the first match key filled."""
        if row.mapped.record_id:
            return ("id", row.mapped.record_id)
        for number, spec in enumerate(self.index.key_specs):
            key = spec.value(row.payload)
            if key is not None:
                return ("key", number, *key)
        return None

    def _plan_one(self, row: Row) -> Action:
        if row.mapped.deleted and not self.hard_delete:
            return Action(Kind.SKIP_DELETE, row, reason="_sdc_deleted_at is set, hard_delete off")
        record_id = row.mapped.record_id
        if record_id is not None:
            if record_id not in self.index:
                if row.mapped.deleted:
                    return Action(Kind.UNCHANGED, row, reason="already absent")
                reason = f"no remote record with id {record_id}"
                return Action(Kind.REJECT, row, reason=reason, field="id")
            matches = [record_id]
        else:
            spec, matches = self.index.find(row.payload)
            if spec is None and not (self.keyless_creates and self.mode is not Mode.UPDATE_ONLY):
                return self._keyless(row)
            if len(matches) > 1:
                return Action(
                    Kind.REJECT,
                    row,
                    reason=f"ambiguous: {len(matches)} remote records match {spec}: "
                    + ", ".join(matches[:5]),
                    field=",".join(spec.fields) if spec else None,
                )
        if row.mapped.deleted:
            if not matches:
                return Action(Kind.UNCHANGED, row, reason="already absent")
            return Action(Kind.DELETE, row, record_id=matches[0])
        if not matches:
            if self.mode is Mode.UPDATE_ONLY:
                return Action(Kind.REJECT, row, reason="no matching remote record (update_only)")
            return self._create(row)
        if self.mode is Mode.CREATE_ONLY:
            return Action(
                Kind.REJECT, row, record_id=matches[0], reason="already exists (create_only)"
            )
        return self._update(row, matches[0])

    def _keyless(self, row: Row) -> Action:
        """A row with neither id nor match key: it cannot be found again, so it is refused."""
        specs = self.index.key_specs
        missing = sorted({m for s in specs for m in s.missing(row.payload)})
        keys = " or ".join(str(s) for s in specs) or "none configured"
        if row.mapped.deleted:
            why = "cannot tell which record to delete"
        elif self.mode is Mode.UPDATE_ONLY:
            why = "cannot tell whether it exists"
        else:
            why = (
                "a create without a key cannot be found again after a failure, so a resume "
                "could duplicate it; fill the key, set match_keys, or opt in with "
                f"{KEYLESS_SETTING}"
            )
        return Action(
            Kind.REJECT,
            row,
            reason=f"no id and no match key ({keys}): {why}",
            field=",".join(missing) or None,
        )

    def _create(self, row: Row) -> Action:
        data = {k: v for k, v in row.payload.items() if v is not None}
        problems = self.create_validator.problems(data)
        if problems:
            first = problems[0]
            return Action(Kind.REJECT, row, reason=_join(problems), field=first.field)
        return Action(Kind.CREATE, row, data=data)

    def _update(self, row: Row, record_id: str) -> Action:
        stored = self.index.get(record_id) or {}
        changes = {
            name: value
            for name, value in row.payload.items()
            if (value is not None or self.clearable is None or name in self.clearable)
            and (name not in stored or comparable(value) != comparable(stored[name]))
        }
        if not changes:
            return Action(Kind.UNCHANGED, row, record_id=record_id)
        problems = self.update_validator.problems(changes)
        if problems:
            reason, first = _join(problems), problems[0].field
            return Action(Kind.REJECT, row, record_id=record_id, reason=reason, field=first)
        return Action(Kind.UPDATE, row, record_id=record_id, data=changes)


def _join(problems: Iterable[Any]) -> str:
    return "; ".join(f"{p.field}: {p.reason}" if p.field else p.reason for p in problems)


def chunks(items: Sequence[Action], size: int) -> Iterator[list[Action]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
