"""Values valid for a GraphQL output type of the file in use: a check, and a generator (Faker).

The seed's hand-written French rows are checked field by field against the file; a value the
file does not allow (a string for an `Int`, an enum value it removed, null where it requires a
value) is replaced by a generated one, so the sandbox serves only what its file allows.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from faker import Faker
from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    get_named_type,
    is_abstract_type,
    is_enum_type,
    is_object_type,
)

from moovago_sandbox.scalars import UTC, format_datetime, parse_datetime

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
JSON_SCALARS = ("JSON", "JSONObject", "Json", "JSONObjectScalar")
BASE = datetime(2024, 1, 2, 7, 0, tzinfo=UTC)
MAX_DEPTH = 4

Check = Callable[[Any], bool]


def checker(schema: GraphQLSchema, type_: Any, depth: int = 0) -> Check:
    """A function telling whether a stored value is valid for `type_` (output coercion rules)."""
    if isinstance(type_, GraphQLNonNull):
        inner = checker(schema, type_.of_type, depth)
        return lambda v: v is not None and inner(v)
    if isinstance(type_, GraphQLList):
        item = checker(schema, type_.of_type, depth)
        return lambda v: v is None or (isinstance(v, list) and all(item(x) for x in v))
    named = get_named_type(type_)
    if depth > MAX_DEPTH:
        return lambda v: True
    if is_enum_type(named):
        assert isinstance(named, GraphQLEnumType)
        allowed = frozenset(named.values)
        return lambda v: v is None or v in allowed
    if is_object_type(named):
        assert isinstance(named, GraphQLObjectType)
        fields = {n: checker(schema, f.type, depth + 1) for n, f in named.fields.items()}
        return lambda v: (
            v is None or (isinstance(v, dict) and all(c(v.get(n)) for n, c in fields.items()))
        )
    if is_abstract_type(named):
        possible = {t.name: checker(schema, t, depth + 1) for t in schema.get_possible_types(named)}
        return lambda v: (
            v is None
            or (
                isinstance(v, dict)
                and v.get("__typename") in possible
                and possible[v["__typename"]](v)
            )
        )
    return _scalar_check(named.name)


def _scalar_check(name: str) -> Check:
    if name == "Int":
        return lambda v: (
            v is None
            or (isinstance(v, int) and not isinstance(v, bool) and INT_MIN <= v <= INT_MAX)
        )
    if name == "Float":
        return lambda v: (
            v is None
            or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))
        )
    if name == "Boolean":
        return lambda v: v is None or isinstance(v, bool)
    if name in ("String", "ID"):
        return lambda v: v is None or isinstance(v, str)
    if name == "DateTime":
        return lambda v: v is None or (isinstance(v, str) and _parses(parse_datetime, v))
    if name == "Date":
        return lambda v: (
            v is None or (isinstance(v, str) and len(v) == 10 and _parses(date.fromisoformat, v))
        )
    if name in JSON_SCALARS:
        return lambda v: True
    return lambda v: v is None or isinstance(v, str)


def _parses(parse: Callable[[str], Any], value: str) -> bool:
    try:
        parse(value)
    except (ValueError, TypeError):
        return False
    return True


class ValueMaker:
    """Generated values for any output type, seeded (French Faker words, hints by field name)."""

    def __init__(self, schema: GraphQLSchema, seed: int) -> None:
        self.schema = schema
        self.rng = random.Random(seed ^ 0x5A17)  # noqa: S311 (reproducible fake data)
        fake = Faker("fr_FR")
        fake.seed_instance(seed ^ 0x5A17)
        self.words = [fake.word() for _ in range(200)]
        self.names = [fake.company() for _ in range(200)]
        self.people = [fake.last_name() for _ in range(200)]
        self.cities = [fake.city() for _ in range(200)]
        self.sentences = [fake.sentence(nb_words=6) for _ in range(100)]

    def value(self, type_: GraphQLOutputType | Any, field_name: str = "", depth: int = 0) -> Any:
        """A value valid for `type_`; nullable types get a value too (null is not interesting)."""
        rng = self.rng
        if isinstance(type_, GraphQLNonNull):
            return self.value(type_.of_type, field_name, depth)
        if isinstance(type_, GraphQLList):
            if depth > MAX_DEPTH:
                return []
            return [
                self.value(type_.of_type, field_name, depth + 1) for _ in range(rng.randint(0, 2))
            ]
        named = get_named_type(type_)
        if is_enum_type(named):
            assert isinstance(named, GraphQLEnumType)
            return rng.choice(sorted(named.values))
        if is_object_type(named):
            assert isinstance(named, GraphQLObjectType)
            return self.object(named, depth + 1)
        if is_abstract_type(named):
            choices = sorted(
                self.schema.get_possible_types(named),
                key=lambda t: t.name,
            )
            if not choices:
                return None
            obj = rng.choice(choices)
            return {"__typename": obj.name, **(self.object(obj, depth + 1) or {})}
        return self.scalar(named.name, field_name)

    def object(self, obj: GraphQLObjectType, depth: int) -> dict[str, Any] | None:
        if depth > MAX_DEPTH:
            return None
        out: dict[str, Any] = {}
        for name, fdef in obj.fields.items():
            if depth > MAX_DEPTH - 1 and not isinstance(fdef.type, GraphQLNonNull):
                out[name] = None
            else:
                out[name] = self.value(fdef.type, name, depth)
        return out

    def scalar(self, name: str, field_name: str = "") -> Any:
        rng, hint = self.rng, field_name.lower()
        if name == "Int":
            return rng.randint(0, 10_000)
        if name == "Float":
            return round(rng.uniform(0, 10_000), 2)
        if name == "Boolean":
            return rng.random() < 0.5
        if name == "ID":
            return f"{rng.getrandbits(96):024x}"
        if name == "DateTime":
            return format_datetime(BASE + timedelta(seconds=rng.randint(0, 600 * 86400)))
        if name == "Date":
            return (BASE.date() + timedelta(days=rng.randint(0, 600))).isoformat()
        if name in JSON_SCALARS:
            return {
                "source": "sandbox",
                "score": rng.randint(0, 100),
                "tags": [rng.choice(self.words)],
            }
        return self._text(hint)

    def _text(self, hint: str) -> str:
        rng = self.rng
        if "mail" in hint:
            return f"{rng.choice(self.words)}.{rng.randint(1, 999)}@example.fr"
        if "phone" in hint:
            return (
                "0"
                + str(rng.randint(1, 7))
                + "".join(f" {rng.randrange(100):02d}" for _ in range(4))
            )
        if "city" in hint:
            return rng.choice(self.cities)
        if "postal" in hint or "zip" in hint:
            return f"{rng.randint(1000, 95999):05d}"
        if "web" in hint or "url" in hint:
            return f"https://www.{rng.choice(self.words)}.fr"
        if "note" in hint or "description" in hint or "comment" in hint:
            return rng.choice(self.sentences)
        if "name" in hint:
            return rng.choice(self.people if "first" in hint or "last" in hint else self.names)
        if "code" in hint:
            return f"{rng.choice(self.words)[:3].upper()}-{rng.randint(1, 999_999):06d}"
        return rng.choice(self.words)


STRING, NULLABLE_STRING, OTHER = range(3)


def string_kind(type_: Any) -> int:
    """STRING or NULLABLE_STRING for a String or ID field (checked inline by `conform`, the
    common case), OTHER for the rest (checked by its `checker`)."""
    if isinstance(type_, GraphQLNonNull):
        return STRING if string_kind(type_.of_type) == NULLABLE_STRING else OTHER
    named = type_ if not isinstance(type_, GraphQLList) else None
    return NULLABLE_STRING if named is not None and named.name in ("String", "ID") else OTHER


class FieldChecks:
    """The checks of a row's fields: String and ID fields inline (most of them), the rest by
    their `checker`."""

    def __init__(self, schema: GraphQLSchema, types: dict[str, Any]) -> None:
        self.entries = [(n, checker(schema, t), t, string_kind(t)) for n, t in types.items()]


def conform(row: dict[str, Any], checks: FieldChecks, maker: ValueMaker) -> dict[str, Any]:
    """Replace every value of `row` its field's type does not allow by a converted or
    generated one."""
    for name, check, type_, kind in checks.entries:
        value = row.get(name)
        if kind == NULLABLE_STRING:
            if value is None or value.__class__ is str:
                continue
        elif kind == STRING:
            if value.__class__ is str:
                continue
        elif check(value):
            continue
        converted = _convert(value, type_)
        row[name] = converted if check(converted) else maker.value(type_, name)
    return row


def _convert(value: Any, type_: Any) -> Any:
    """The same value in the field's scalar type when it has one (1234.5 -> "1234.50" for a
    String, "79000" -> 79000 for an Int); None otherwise."""
    name = get_named_type(type_).name
    if isinstance(value, bool) or value is None:
        return None
    if name in ("String", "ID") and isinstance(value, (int, float)):
        return f"{value:.2f}" if isinstance(value, float) else str(value)
    if name == "Int" and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if name == "Float" and isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None
