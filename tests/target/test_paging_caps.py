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
