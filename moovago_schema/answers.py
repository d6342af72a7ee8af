"""An answer held against the schema file, and the form of a refused one: coordinates, kinds and
counts only, never a value (the doctor's reports leave the process)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
)

from moovago_api.wire import is_datetime_text

__all__ = ["Selection", "answer_shape", "check_answer"]

#: The fields read: a name, or a name and its nested selection (as `moovago_api.documents` takes).
Selection = list["str | tuple[str, Selection]"]


def check_answer(
    value: Any,
    gql_type: GraphQLOutputType,
    selection: Selection | None,
    where: str,
    problems: dict[str, int],
) -> None:
    """Count each way `value` differs from `gql_type` (coordinate: what), never the value."""

    def problem(text: str, at: str = where) -> None:
        problems[f"{at}: {text}"] = problems.get(f"{at}: {text}", 0) + 1

    if isinstance(gql_type, GraphQLNonNull):
        if value is None:
            problem(f"null, but the file declares {gql_type}")
            return
        gql_type = gql_type.of_type
    if value is None:
        return
    if isinstance(gql_type, GraphQLList):
        if not isinstance(value, list):
            problem(f"{_json_kind(value)}, but the file declares a list {gql_type}")
            return
        for item in value:
            check_answer(item, gql_type.of_type, selection, where, problems)
        return
    if isinstance(gql_type, (GraphQLObjectType, GraphQLInterfaceType)):
        if not isinstance(value, Mapping):
            problem(f"{_json_kind(value)}, but the file declares an object {gql_type.name}")
            return
        for item in selection or []:
            name, nested = (item, None) if isinstance(item, str) else item
            coordinate = f"{gql_type.name}.{name}"
            if name not in value:
                problem("missing from the answer", coordinate)
                continue
            check_answer(value[name], gql_type.fields[name].type, nested, coordinate, problems)
        return
    if isinstance(gql_type, GraphQLEnumType):
        if not isinstance(value, str) or value not in gql_type.values:
            problem(f"a value that is not in enum {gql_type.name}")
        return
    if isinstance(gql_type, GraphQLScalarType):
        expected = _SCALAR_KINDS.get(gql_type.name)
        if expected is not None and not expected(value):
            problem(f"{_json_kind(value)}, but the file declares {gql_type.name}")


_SCALAR_KINDS: dict[str, Callable[[Any], bool]] = {
    "Int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "Float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "String": lambda v: isinstance(v, str),
    "Boolean": lambda v: isinstance(v, bool),
    "ID": lambda v: isinstance(v, (str, int)) and not isinstance(v, bool),
    "DateTime": is_datetime_text,  # the wire form the tap's bookmarks parse
    "Date": lambda v: isinstance(v, str),
}


def _json_kind(value: Any) -> str:
    kinds = (("a boolean", bool), ("a number", (int, float)), ("a string", str), ("a list", list))
    for kind, types in (*kinds, ("an object", Mapping)):
        if isinstance(value, types):
            return kind
    return "a value"


def answer_shape(answer: Any) -> str:
    """'application/json {errors}' for a non-200 answer: its form, never its text."""
    content_type = str(answer.headers.get("Content-Type") or "no content type").split(";")[0]
    try:
        payload = json.loads(answer.content)
    except (ValueError, TypeError):
        return f"{content_type}, not JSON"
    if isinstance(payload, dict):
        keys = sorted(payload)
        codes = sorted(
            {
                str(err.get("extensions", {}).get("code"))
                for err in payload.get("errors") or []
                if isinstance(err, dict) and isinstance(err.get("extensions"), dict)
                if err["extensions"].get("code")
            }
        )
        text = f"{content_type} {{{', '.join(keys)}}}"
        return text + (f" codes {', '.join(codes)}" if codes else "")
    return f"{content_type} {type(payload).__name__}"
