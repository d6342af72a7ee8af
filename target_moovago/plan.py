"""Pure planning: mapped rows + an index of remote records -> create/update/delete/unchanged/reject.

Nothing here does I/O; the sink feeds it rows and an index and sends what it returns.

A row that cannot be written (a mapping problem, a value that cannot be a key, no key at all
in create_only/upsert unless keyless creates are allowed) is rejected before any write.

The request-size rule (`max_request_bytes`; every setting is declared in target.py).
"""

from __future__ import annotations

import json
import typing as t
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Any

from graphql import DocumentNode

from moovago_api.client import encode_request
from target_moovago.index import (
    DEFAULT_MATCH_KEYS,
    BadKeyError,
    KeySpec,
    RemoteIndex,
    key_part,
    key_value_problem,
    parse_normalize,
)
from target_moovago.mapping import InputValidator, MappedRow, Problem, comparable

if TYPE_CHECKING:
    from target_moovago.sinks import Run


KEYLESS_SETTING = "allow_keyless_creates"

__all__ = [  # the index's names are re-exported: the planner's vocabulary
    "COUNTER",
    "DEFAULT_MATCH_KEYS",
    "KEYLESS_SETTING",
    "WRITES",
    "Action",
    "BadKeyError",
    "KeySpec",
    "Kind",
    "Mode",
    "Planner",
    "Policy",
    "RemoteIndex",
    "Row",
    "chunks",
    "key_part",
    "parse_normalize",
]


class Mode(str, Enum):
    UPSERT = "upsert"
    CREATE_ONLY = "create_only"
    UPDATE_ONLY = "update_only"


class Policy(str, Enum):
    """What an update may do to one field (`field_policies`); a create writes every field."""

    OVERWRITE = "overwrite"
    FILL_EMPTY = "fill_empty"  # only where Moovago's value is empty: null, '' or []
    CREATE_ONLY = "create_only"


def is_empty(value: Any) -> bool:
    return value is None or value == "" or value == []


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
    held: dict[str, str] = field(default_factory=dict)  # field -> the policy that kept it
    reason: str = ""
    field: str | None = None
    before: dict[str, Any] | None = None  # the indexed values it replaces, to undo a refusal


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
    # How to fix a missing key: 'set match_keys, e.g. {...}' (moovago_api.mutations).
    key_hint: str = "set match_keys"
    # field -> Policy: what an update may write (`field_policies`); absent fields overwrite.
    policies: Mapping[str, Policy] = field(default_factory=dict)

    def plan(self, rows: Sequence[Row]) -> list[Action]:
        """One action per row, in row order. Rows addressing one remote record (by id, by a
        match key the index resolves, or by the same key of a new record) merge into the
        last of them, field by field in input order: how a row names the record, and whether
        the run is a rerun, never decides which value wins."""
        actions: list[Action | None] = [None] * len(rows)
        merged: dict[int, Row] = {}
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
                        reason=f"merged into a later row (#{row.position}) for the same record",
                    )
                    merged[number] = _merge(merged.pop(earlier, rows[earlier]), row)
                last_by_key[identity] = number
        for number, row in enumerate(rows):
            if actions[number] is None:
                actions[number] = self._plan_one(merged.get(number, row))
        return [a for a in actions if a is not None]

    def identity(self, row: Row) -> tuple[Any, ...] | None:
        """What makes two rows the same record: its id, else the one remote record its match
        key finds in the index, else the first match key filled (a record to create)."""
        if row.mapped.record_id:
            return ("id", row.mapped.record_id)
        for number, spec in enumerate(self.index.key_specs):
            key = spec.value(row.payload)
            if key is not None:
                found = self.index.lookup(number, key)
                return ("id", found[0]) if len(found) == 1 else ("key", number, *key)
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
            why = f"cannot tell whether it exists; {self.key_hint}"
        else:
            why = (
                "a create without a key cannot be found again after a failure, so a resume "
                f"could duplicate it; fill the key, {self.key_hint}, or opt in with "
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
        changes: dict[str, Any] = {}
        held: dict[str, str] = {}
        for name, value in row.payload.items():
            if value is None and not (self.clearable is None or name in self.clearable):
                continue
            if name in stored and comparable(value) == comparable(stored[name]):
                continue
            policy = self.policies.get(name, Policy.OVERWRITE)
            if policy is Policy.CREATE_ONLY or (
                policy is Policy.FILL_EMPTY
                and (name not in stored or not is_empty(stored[name]) or is_empty(value))
            ):
                held[name] = policy.value  # never makes the row changed
                continue
            changes[name] = value
        if not changes:
            return Action(Kind.UNCHANGED, row, record_id=record_id, held=held)
        problems = self.update_validator.problems(changes)
        if problems:
            reason, first = _join(problems), problems[0].field
            return Action(Kind.REJECT, row, record_id=record_id, reason=reason, field=first)
        return Action(Kind.UPDATE, row, record_id=record_id, data=changes, held=held)


def _merge(earlier: Row, later: Row) -> Row:
    """`later` with the fields only `earlier` gave (a delete on either side is not merged)."""
    if earlier.mapped.deleted or later.mapped.deleted:
        return later
    mapped = replace(
        later.mapped,
        payload={**earlier.payload, **later.payload},
        sources={**earlier.mapped.sources, **later.mapped.sources},
        record_id=later.mapped.record_id or earlier.mapped.record_id,
    )
    # The rejects file shows what was planned: both rows' columns, the later winning.
    return Row(later.position, {**earlier.record, **later.record}, mapped)


def _join(problems: Iterable[Any]) -> str:
    return "; ".join(f"{p.field}: {p.reason}" if p.field else p.reason for p in problems)


def chunks(items: Sequence[Action], size: int) -> Iterator[list[Action]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def request_bytes(document: DocumentNode, variables: Mapping[str, t.Any], name: str | None) -> int:
    """The size of the body the client sends for this request (the client's own encoding)."""
    return len(encode_request(document, variables, name))


def largest_field(action: Action) -> str | None:
    """The input field holding most of a row's bytes: the one to name when it is too big."""
    sizes = {k: len(json.dumps(v, default=str, ensure_ascii=False)) for k, v in action.data.items()}
    return max(sizes, key=lambda k: sizes[k]) if sizes else None


def too_large_reason(action: Action, size: int, run: Run, *, refused: bool) -> str:
    """Why a row alone cannot be sent: its request's size and the limit it is over."""
    kind, configured = action.kind.value, run.max_request_bytes
    if refused:
        return (
            f"{kind} refused by the server with HTTP 413: the request for this row alone is "
            f"{size} bytes, over the server's limit (max_request_bytes={configured})"
        )
    return (
        f"{kind} not sent: the request for this row alone is {size} bytes, over the limit of "
        f"{run.request_limit} bytes (max_request_bytes={configured})"
    )
