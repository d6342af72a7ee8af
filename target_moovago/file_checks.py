"""The schema file held against what the target writes, at start: whether the match keys (setting
`match_keys`) can find a row's remote record, with the example every key message ends with, and
the mutations no stream uses."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from graphql import GraphQLField, GraphQLObjectType, get_named_type, is_leaf_type

from moovago_api.plan import InputField
from moovago_api.write_plan import KINDS, find_mutation

if TYPE_CHECKING:
    from moovago_api.schema import Entity, MoovagoSchema

__all__ = ["match_key_problems", "match_keys_hint", "unclaimed_mutations"]

_ID_NAME = "id"


def match_key_problems(
    schema: MoovagoSchema,
    entity: Entity,
    keys: Sequence[Sequence[str]] | None,
    *,
    written: Collection[str] | None = None,
) -> list[str]:
    """Sentences saying why the match keys of `entity` will not find existing records in this
    file: none at all, a key field the record type lacks, deprecated, not writable, or absent
    from the input (`written`: the fields the input maps to). Each names `match_keys` with an
    example. [] when the keys are usable."""
    stream = entity.stream_name
    record_type = schema.graphql.get_type(entity.type_name)
    record_fields = record_type.fields if isinstance(record_type, GraphQLObjectType) else {}
    create = entity.writes.shapes.get("create") if entity.writes else None
    inputs = {f.name: f for f in create.fields} if create is not None else None
    fix = match_keys_hint(schema, entity)
    if not keys:
        return [
            f"stream {stream!r} has no match key: rows without an id cannot be matched to "
            f"existing {entity.type_name} records (they are rejected); {fix}"
        ]
    problems: list[str] = []
    for key in keys:
        for raw in key:
            name = raw.rstrip("?")
            label = f"match key {'+'.join(key)} of stream {stream!r}"
            found = record_fields.get(name)
            if found is None:
                problems.append(
                    f"{label}: {entity.type_name} has no field {name!r} in {schema.path}; {fix}"
                )
                continue
            reason = found.deprecation_reason
            if reason is None and inputs is not None and name in inputs:
                reason = inputs[name].deprecation
            if reason is not None:
                problems.append(
                    f"{label}: {entity.type_name}.{name} is deprecated in {schema.path} "
                    f"({reason}); {fix}"
                )
            elif inputs is not None and name not in inputs and name != _ID_NAME:
                problems.append(
                    f"{label}: {entity.type_name}.{name} is not writable in {schema.path} "
                    f"({create.data_type if create else 'the create input'} has no {name!r}), "
                    f"so created records cannot be found by it; {fix}"
                )
            elif written is not None and name not in written and not raw.endswith("?"):
                problems.append(
                    f"{label}: the input has no column for {name!r}, so every row without an "
                    f"id is rejected; add the column or {fix}"
                )
    return problems


def match_keys_hint(schema: MoovagoSchema, entity: Entity) -> str:
    """'set match_keys, e.g. {"visit": ["companyId", ...]}': the fix every key message ends with."""
    record_type = schema.graphql.get_type(entity.type_name)
    record_fields = record_type.fields if isinstance(record_type, GraphQLObjectType) else {}
    create = entity.writes.shapes.get("create") if entity.writes else None
    inputs = {f.name: f for f in create.fields} if create is not None else None
    example = _example(record_fields, inputs)
    return f'set match_keys, e.g. {{"{entity.stream_name}": {json.dumps(example)}}}'


def _example(
    record_fields: Mapping[str, GraphQLField], inputs: Mapping[str, InputField] | None
) -> list[str]:
    """A key to suggest: a live field the record has and a create may write, required first."""

    def usable(name: str) -> bool:
        found = record_fields.get(name)
        return (
            found is not None
            and found.deprecation_reason is None
            and is_leaf_type(get_named_type(found.type))
            and name not in (_ID_NAME, "teamId", "createdAt", "updatedAt")
        )

    if inputs is not None:
        live = [f for f in inputs.values() if f.deprecation is None and usable(f.name)]
        chosen = [f.name for f in live if f.required][:3] or [f.name for f in live][:1]
        if chosen:
            return chosen
    names = [n for n in record_fields if usable(n)]
    return names[:1] or ["<field>"]


def unclaimed_mutations(schema: MoovagoSchema, entities: Iterable[Entity]) -> list[str]:
    """One sentence per Mutation field no entity uses (a write the target cannot do)."""
    mutation = schema.graphql.mutation_type
    if mutation is None:
        return []
    claimed: set[str] = set()
    for entity in entities:
        claimed.update(s.path[0] for s in (entity.writes.shapes if entity.writes else {}).values())
        for kind in KINDS:
            found = find_mutation(schema, entity, kind)
            if found is not None:
                claimed.add(found[1][0])
    return [
        f"Mutation.{name} in {schema.path} is not used: it matches no entity's "
        "create, update or delete"
        for name in mutation.fields
        if name not in claimed
    ]
