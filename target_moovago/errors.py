"""The target's own errors: each one ends the run with one line naming what happened."""

from __future__ import annotations

from singer_sdk.exceptions import RecordsWithoutSchemaException

from moovago_api.errors import MoovagoError


class UnsupportedStreamError(MoovagoError):
    """A stream the target cannot write (read-only or not in the schema)."""


class ReadOnlyStreamError(UnsupportedStreamError):
    """A stream the schema file declares no mutation for (`team`): skipped unless
    `read_only_streams` is `error`."""


class BusinessHoursError(MoovagoError):
    """A bulk job was refused during French business hours."""


class TooManyRejectsError(MoovagoError):
    """More rows were rejected than `max_rejects` allows."""


class InputError(MoovagoError):
    """The Singer input is broken (not a bad row): the run stops."""


class RecordBeforeSchemaError(InputError, RecordsWithoutSchemaException):
    """A RECORD came before its stream's SCHEMA (still the SDK's exception for it)."""


class TargetStopped(MoovagoError):
    """A termination signal stopped the run after the request in flight."""

    def __init__(self, signum: int) -> None:
        super().__init__(
            f"stopped by signal {signum}: every row before the last STATE emitted is written, "
            "rejected or counted; rerun from that STATE (from the start if none was emitted)"
        )
