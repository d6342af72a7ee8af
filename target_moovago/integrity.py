"""The settings that keep every row exactly once (matching, keyless rows, empty strings, the
run lock, the request size) and the request-size rule: declared here, read where they act."""

from __future__ import annotations

import json
import typing as t
from collections.abc import Mapping

from graphql import DocumentNode
from singer_sdk import typing as th

from moovago_api.client import encode_request
from target_moovago.index import NORMALIZATIONS
from target_moovago.plan import KEYLESS_SETTING

if t.TYPE_CHECKING:
    from target_moovago.plan import Action
    from target_moovago.run import Run

DEFAULT_MAX_REQUEST_BYTES = 1_048_576  # 1 MiB: a common proxy default (nginx, API gateways)
MIN_REQUEST_BYTES = 1024

PROPERTIES = (
    th.Property(
        "match_normalize",
        th.ObjectType(
            additional_properties=th.ArrayType(th.StringType(allowed_values=list(NORMALIZATIONS)))
        ),
        title="Match key normalisation",
        description=(
            "Per stream, opt in to compare match-key text after `trim` (ignore surrounding "
            "blanks) and/or `case` (case-folded: `abc` = `ABC`, `ß` = `ss`), e.g. "
            '{"company": ["trim", "case"]}. Default: exact comparison. Risk: records Moovago '
            "keeps apart (`abc`, `ABC`) become one key, so a row updates one of them or is "
            "rejected as ambiguous."
        ),
    ),
    th.Property(
        KEYLESS_SETTING,
        th.ArrayType(th.StringType),
        title="Allow keyless creates",
        description=(
            "Streams whose rows with neither `id` nor a match key are created anyway "
            '(`create_only`, `upsert`), e.g. ["turnover"]. Such a create cannot be looked up '
            "after an ambiguous failure, so a crash and a resume from an earlier STATE may "
            "duplicate those rows. Default: none; such rows are rejected before any write."
        ),
    ),
    th.Property(
        "keep_empty_strings",
        th.ObjectType(additional_properties=th.ArrayType(th.StringType)),
        title="Keep empty strings",
        description=(
            "Per stream, input fields where `''` is sent as a value (`*`: every field), e.g. "
            '{"company": ["status"]}. Elsewhere `\'\'` in a field that does not take free text '
            "(enum, number, boolean, date, list, object, ID) means no value, like NULL."
        ),
    ),
    th.Property(
        "lock_dir",
        th.StringType,
        title="Run lock directory",
        description=(
            "Directory of the run lock files: one run at a time per API URL and team on this "
            "machine. Default: $XDG_STATE_HOME/target-moovago/locks, else "
            "~/.local/state/target-moovago/locks. It cannot guard runs on two machines."
        ),
    ),
    th.Property(
        "lock_wait_seconds",
        th.IntegerType(minimum=0),
        default=0,
        title="Run lock wait",
        description=(
            "How long a run waits for another run of the same account to end before it "
            "refuses (0: refuse at once)."
        ),
    ),
    th.Property(
        "max_request_bytes",
        th.IntegerType(minimum=MIN_REQUEST_BYTES),
        default=DEFAULT_MAX_REQUEST_BYTES,
        title="Max request bytes",
        description=(
            "Largest request body sent, measured before sending: a larger batch is split by "
            "size down to one row, and a row that alone is larger is rejected naming its size. "
            "An HTTP 413 from the server splits the same way."
        ),
    ),
)


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
