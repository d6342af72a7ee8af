"""What a schema file says about the fields a connector uses: missing, or deprecated.

`field_report` holds field names (dotted paths for nested objects) against an object or input
type of a loaded schema; `moovago-schema check` and `diff` build on it (the target reads the
deprecations of what it writes from the plan's input fields). Pure: no I/O, no Singer code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from graphql import GraphQLNamedType, get_named_type, is_abstract_type

from moovago_api.schema import MoovagoSchema

__all__ = ["DEPRECATED", "MISSING", "FieldIssue", "field_report"]

MISSING = "missing"
DEPRECATED = "deprecated"


@dataclass(frozen=True)
class FieldIssue:
    """A field a connector uses that the schema file no longer has, or deprecates."""

    type_name: str  # the type the field was looked up in: 'Company'
    field: str  # a field name, or a dotted path through nested objects: 'coordinates.latitude'
    status: str  # 'missing' | 'deprecated'
    coordinate: str  # the element missing or deprecated: 'Company.zipCode', 'Coordinates.lat'
    detail: str  # the deprecation reason, or where the element was looked for

    @property
    def reason(self) -> str:
        """One line for a log or a table: 'Company.zipCode: Use postalCode; ...'."""
        return f"{self.coordinate}: {self.detail}"


def field_report(
    schema: MoovagoSchema, type_name: str, field_names: Iterable[str]
) -> list[FieldIssue]:
    """Each of `field_names` of an object or input type that is missing from or deprecated in
    `schema`, with the reason, in the order given. Nested fields go as dotted paths
    ('coordinates.latitude'); fields under a missing parent are not repeated. Callers warn on
    'deprecated' and fail on 'missing'.
    """
    issues: list[FieldIssue] = []
    missing_parents: list[str] = []
    root = schema.graphql.get_type(type_name)
    not_in_file = f"not in {schema.path.name}"
    for name in field_names:
        if any(name.startswith(f"{parent}.") for parent in missing_parents):
            continue
        if root is None:
            issues.append(FieldIssue(type_name, name, MISSING, type_name, f"type {not_in_file}"))
            continue
        owner: GraphQLNamedType = root
        parts = name.split(".")
        for depth, part in enumerate(parts):
            fields = getattr(owner, "fields", None)
            element = fields.get(part) if isinstance(fields, dict) else None
            coordinate = f"{owner.name}.{part}"
            if element is None and is_abstract_type(owner):
                # A union or interface: the tap reads `__typename` and each member's fields.
                if part == "__typename" and depth == len(parts) - 1:
                    break
                for member in schema.graphql.get_possible_types(owner):
                    if part in member.fields:
                        element, coordinate = member.fields[part], f"{member.name}.{part}"
                        break
            if element is None:
                missing_parents.append(".".join(parts[: depth + 1]))
                issues.append(FieldIssue(type_name, name, MISSING, coordinate, not_in_file))
                break
            if depth == len(parts) - 1:
                if element.deprecation_reason is not None:
                    issues.append(
                        FieldIssue(
                            type_name, name, DEPRECATED, coordinate, element.deprecation_reason
                        )
                    )
                break
            owner = get_named_type(element.type)
    return issues
