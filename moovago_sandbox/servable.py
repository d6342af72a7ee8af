"""Whether the sandbox serves every plan the connectors read from a schema file.

The connectors read a file through `moovago_api.plan`; the sandbox through its own model. Where
the two differ the sandbox would answer nulls or ignore an argument the tap relies on, so a file
with a readable plan the sandbox cannot serve is refused at start, in one line, never half served.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from moovago_api.schema import load_schema

if TYPE_CHECKING:
    from pathlib import Path

    from moovago_api.plan import StreamPlan
    from moovago_sandbox.model import SandboxModel

__all__ = ["unserved"]


def unserved(schema_path: Path | None, model: SandboxModel) -> list[str]:
    """One phrase per plan of the file the sandbox would not serve as the connectors read it."""
    found = []
    for plan in load_schema(schema_path).entities():
        if plan.read_problem() is None:  # the connectors refuse the others themselves
            why = _why(plan, model)
            if why is not None:
                found.append(f"stream '{plan.stream_name}' ({why})")
    return found


def _why(plan: StreamPlan, model: SandboxModel) -> str | None:
    if plan.id_field not in ("id", "_id"):
        return f"ids in {plan.type_name}.{plan.id_field}"
    if plan.name == "team":
        if model.team_field != plan.root_field:
            return f"the team read as Query.{plan.root_field}({plan.team_arg or ''}:)"
        return None
    listed = model.lists.get(plan.root_field)
    if listed is None:
        return f"Query.{plan.root_field}"
    kind = {"limit": "none"}.get(listed.paging.kind, listed.paging.kind)
    if kind != plan.paging.kind:
        return f"{plan.paging.kind} paging of Query.{plan.root_field}"
    if len(plan.bound_path) > 1 and plan.bound_path != ("_operators", "updatedAt", "gte"):
        return f"the incremental bound {plan.filter_arg}.{'.'.join(plan.bound_path)}"
    served = {(op.kind, op.namespace, op.name) for op in model.mutations}
    for kind, shape in (plan.writes.shapes if plan.writes else {}).items():
        namespace = shape.path[0] if len(shape.path) == 2 else None
        if (kind, namespace, shape.path[-1]) not in served:
            return f"{kind} through {shape.coordinate}"
    return None
