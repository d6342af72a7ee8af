"""The index of remote records: match keys, the stored values of tracked fields, and the
pending ids of planned creates. Pure data: nothing here does I/O.

Match-key values compare exactly: `abc` and `ABC` are two records. A stream may opt in to
normalisation (`trim`, `case`: str.strip, str.casefold), which also merges `Straße`/`STRASSE`
and the Kelvin sign with `K`. A value that cannot be a key (object, list, NaN, a boolean in a
field that is not one) rejects its row; a stored record with such a value is not indexed."""

from __future__ import annotations

import decimal
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NORMALIZATIONS = ("trim", "case")


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
    match key -> ids. Values are kept as tuples in `fields` order to bound memory."""

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

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._values

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        """Every record as (id, values of the tracked fields)."""
        return [(i, dict(zip(self.fields, v, strict=True))) for i, v in self._values.items()]

    def add(self, record_id: str, values: Mapping[str, Any]) -> None:
        """Store (or replace) a record; `values` may hold more fields than tracked."""
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
        old = self._values.pop(record_id, None)
        if old is not None:
            self._unlink(record_id, dict(zip(self.fields, old, strict=True)))

    def rename(self, old_id: str, new_id: str) -> None:
        """The record planned as `old_id` (a pending create) is `new_id` on the server."""
        values = self.get(old_id)
        if values is not None:
            self.remove(old_id)
            self.add(new_id, values)

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


class PendingId(str):
    """The id a planned create stands under until Moovago answers with the real one."""

    __slots__ = ()


class PendingIds:
    """Planned creates of the run: their real ids once confirmed, None once refused."""

    def __init__(self) -> None:
        self._count = 0
        self._ids: dict[str, str | None] = {}

    def new(self, stream: str) -> PendingId:
        self._count += 1
        pending = PendingId(f"pending-{stream}-{self._count}")
        self._ids[pending] = pending
        return pending

    def settle(self, pending: str, record_id: str | None) -> None:
        self._ids[pending] = record_id

    def resolve(self, value: Any) -> Any:
        """`value`, with the real id in place of a pending one; KeyError when that create was
        refused (or is not confirmed yet)."""
        if not isinstance(value, PendingId):
            return value
        found = self._ids.get(value)
        if found is None or isinstance(found, PendingId):
            raise KeyError(value)
        return found
