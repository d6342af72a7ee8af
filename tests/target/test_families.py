"""The target on the schema-file families (tests/schema_variants/families/) without
configuration, against a sandbox serving the same file: writes land once, a rerun writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.target.helpers import entity_rows, mutation_count, stream_messages

FAMILIES = Path(__file__).resolve().parents[1] / "schema_variants" / "families"
SORT_ENUM = FAMILIES / "sort_enum.gql"
PAGINATION = FAMILIES / "compose_pagination.gql"
OPERATORS = FAMILIES / "operators_filter.gql"


@pytest.mark.slow
@pytest.mark.parametrize("family", [SORT_ENUM, PAGINATION, OPERATORS], ids=lambda p: p.stem)
def test_a_family_writes_once_and_a_rerun_writes_nothing(sandbox_factory, run_target, family):
    # The sort-enum family's sandbox lists rows in no stable order unless `sort` is sent.
    unstable = family == SORT_ENUM
    box = sandbox_factory(
        companies=20, unstable_order=unstable, extra_args=["--schema", str(family)]
    )
    companies = [
        {"customerCode": f"SE-{n}", "name": f"Sorted {n}", "city": "Niort"} for n in range(4)
    ]
    messages = stream_messages("company", companies)
    first = run_target(box, messages, schema_path=str(family))
    assert first.counts("company")["created"] == 4, first.rejects
    assert not first.rejects
    stored = [
        c for c in entity_rows(box, "company") if (c.get("customerCode") or "").startswith("SE-")
    ]
    assert sorted(c["customerCode"] for c in stored) == [f"SE-{n}" for n in range(4)]
    before = mutation_count(box)
    rerun = run_target(box, messages, schema_path=str(family))
    assert rerun.counts("company")["unchanged"] == 4
    assert mutation_count(box) == before


COMPOSE_MUTATIONS = FAMILIES / "compose_mutations.gql"


@pytest.mark.slow
def test_compose_root_mutations_write_once_and_a_payload_error_is_a_reject(
    sandbox_factory, run_target
):
    box = sandbox_factory(companies=6, extra_args=["--schema", str(COMPOSE_MUTATIONS)])
    path = str(COMPOSE_MUTATIONS)
    companies = [{"customerCode": f"GC-{n}", "name": f"Compose {n}"} for n in range(3)]
    first = run_target(box, stream_messages("company", companies), schema_path=path)
    assert first.counts("company")["created"] == 3, first.rejects
    before = mutation_count(box)
    rerun = run_target(box, stream_messages("company", companies), schema_path=path)
    assert rerun.counts("company")["unchanged"] == 3
    assert mutation_count(box) == before

    # The server refuses an unknown mandator in the payload's `error`: a reject with its
    # message, nothing written, the other row written.
    unknown = {"mandatorIds": ["no-such-mandator"], "name": "Never stored"}
    changed = [dict(companies[0], **unknown), dict(companies[1], name="Renamed")]
    update = run_target(box, stream_messages("company", changed), schema_path=path)
    assert update.counts("company")["updated"] == 1
    (reject,) = update.rejects
    assert "no mandator with id 'no-such-mandator' in this team" in reject["reason"], reject
    stored = {c["customerCode"]: c["name"] for c in entity_rows(box, "company")}
    assert (stored["GC-0"], stored["GC-1"]) == ("Compose 0", "Renamed")

    (gone,) = [c for c in entity_rows(box, "company") if c.get("customerCode") == "GC-2"]
    deleted = [{"id": gone["id"], "_sdc_deleted_at": "2026-11-02T10:00:00Z"}]
    delete = run_target(
        box, stream_messages("company", deleted), schema_path=path, hard_delete=True
    )
    assert delete.counts("company")["deleted"] == 1, delete.rejects
    assert not [c for c in entity_rows(box, "company") if c.get("customerCode") == "GC-2"]


COMPOSE = FAMILIES / "compose.gql"


@pytest.mark.slow
def test_the_compose_family_writes_by_id_with_root_mutations_and_team_by_id(
    sandbox_factory, run_target
):
    box = sandbox_factory(companies=5, unstable_order=True, extra_args=["--schema", str(COMPOSE)])
    settings = {"schema_path": str(COMPOSE), "team_id": box.team_id}
    settings["match_keys"] = {"company": ["name"]}
    rows = [{"teamId": box.team_id, "name": f"Mongo {n}", "city": "Niort"} for n in range(3)]
    first = run_target(box, stream_messages("company", rows), **settings)
    assert first.counts("company")["created"] == 3, first.rejects
    before = mutation_count(box)
    rerun = run_target(box, stream_messages("company", rows), **settings)
    assert rerun.counts("company")["unchanged"] == 3, rerun.rejects
    assert mutation_count(box) == before
    stored = [c for c in entity_rows(box, "company") if c["name"].startswith("Mongo ")]
    assert sorted(c["name"] for c in stored) == [f"Mongo {n}" for n in range(3)]
    bare = {k: v for k, v in settings.items() if k != "team_id"}
    with pytest.raises(Exception, match=r"Query.team\(id:\) needs the team id: set team_id"):
        run_target(box, stream_messages("company", rows), **bare)
