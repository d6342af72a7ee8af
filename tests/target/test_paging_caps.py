"""The target's index is read through the one pager (issue 11): a server that caps its pages
never makes the target create a row that exists."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.target.helpers import entity_rows, mutations, stream_messages


def _repush(box, run_target, *, changed: int):
    stored = [c for c in entity_rows(box, "company") if c.get("customerCode")]
    rows = [
        {
            "customerCode": c["customerCode"],
            "name": f"{c['name']} (renamed)" if n < changed else c["name"],
        }
        for n, c in enumerate(stored)
    ]
    before = mutations(box)
    result = run_target(box, stream_messages("company", rows), mutations_per_request=25)
    after = mutations(box)
    done = {kind: after.get(kind, 0) - before.get(kind, 0) for kind in ("create", "update")}
    return stored, result, done


@pytest.mark.slow
@pytest.mark.parametrize(("cap", "companies"), [(100, 400), (1, 12)])
def test_a_capped_server_gets_no_create_for_existing_rows(
    sandbox_factory, run_target, cap, companies
):
    box = sandbox_factory(
        companies=companies, rate_limit=0, extra_args=["--max-page-size", str(cap)]
    )
    stored, result, done = _repush(box, run_target, changed=5)
    changed = min(5, len(stored))
    assert len(stored) > cap  # more rows with a key than fit in one page
    assert done == {"create": 0, "update": changed}
    assert result.counts("company")["created"] == 0
    assert result.counts("company")["updated"] == changed
    codes = Counter(c["customerCode"] for c in entity_rows(box, "company") if c.get("customerCode"))
    assert max(codes.values()) == 1


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("seed", [3, 7, 11, 19])
def test_rows_moving_while_the_index_is_read_never_make_a_duplicate(
    sandbox_factory, run_target, seed
):
    # Every third list read deletes one company and inserts one, and pages hold 10 rows: the
    # index is read while rows move under it, five pushes in a row. A company that stayed is
    # found, never created again (only one deleted under the read may be), so none of the
    # team's codes is ever held twice, and every row pushed is accounted for.
    box = sandbox_factory(
        companies=40,
        rate_limit=0,
        extra_args=["--max-page-size", "10", "--fault-churn", "3:1:1", "--fault-seed", str(seed)],
    )
    for push in range(5):
        stored, result, done = _repush(box, run_target, changed=3)
        codes = Counter(
            c["customerCode"] for c in entity_rows(box, "company") if c.get("customerCode")
        )
        twice = sorted(code for code, count in codes.items() if count > 1)
        assert not twice, f"push {push}: codes created again although they existed: {twice}"
        counts = result.counts("company")
        settled = sum(counts.get(k, 0) for k in ("created", "updated", "unchanged", "rejected"))
        assert settled == len(stored), f"push {push}: {counts}"
        assert done["create"] <= 2, f"push {push}: {done}"  # rows deleted while it read
