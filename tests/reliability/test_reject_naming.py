"""A rejected row without a key is named by its position: the position in the stream's input,
so it can be found, not its position inside an internal batch."""

from __future__ import annotations

from tests.harness.runs import SECRET, lines, run_target, target_config


def test_a_keyless_rejected_row_is_named_by_its_position_in_the_stream(sandbox_factory, tmp_path):
    box = sandbox_factory(companies=3, api_keys=[SECRET], rate_limit=0)
    parent = {"customerCode": "RN-PARENT", "name": "Parent"}
    contacts = [
        {"companyCustomerCode": "RN-PARENT", "lastName": f"Nom {n}", "email": f"c{n}@exemple.fr"}
        for n in range(1, 31)
    ]
    contacts[24]["companyCustomerCode"] = "NO-SUCH-COMPANY"  # the 25th contact
    messages = [
        {
            "type": "SCHEMA",
            "stream": "company",
            "key_properties": ["customerCode"],
            "schema": {"type": "object", "properties": {"customerCode": {}, "name": {}}},
        },
        {"type": "RECORD", "stream": "company", "record": parent},
        {
            "type": "SCHEMA",
            "stream": "contact",
            "key_properties": [],
            "schema": {"type": "object", "properties": {c: {} for c in contacts[0]}},
        },
        *({"type": "RECORD", "stream": "contact", "record": c} for c in contacts),
    ]
    config = target_config(box, tmp_path, batch_size_rows=20)
    run = run_target(config, lines(messages), tmp_path)
    assert run.returncode == 0
    (reject,) = run.rejects
    assert reject["field"] == "companyCustomerCode"
    assert reject["row_key"] == "row #25"
