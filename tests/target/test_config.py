"""Config is validated once: what JSON Schema can state is in `config_jsonschema` (the SDK
refuses it before the run starts); only what it cannot is checked by hand."""

from __future__ import annotations

import io
import json

import pytest
from singer_sdk.exceptions import ConfigValidationError

from moovago_api.errors import ConfigError
from target_moovago.target import TargetMoovago
from tests.target.helpers import entity_rows, schema_message, stream_messages

BASE = {"api_url": "http://127.0.0.1:9/graphql", "api_key": "k"}  # nothing listens there


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("match_keys", {"company": []}),
        ("match_keys", {"company": [""]}),
        ("stream_modes", {"company": "merge"}),
        ("mutations_per_request", 0),
        ("mutations_per_request", 101),
        ("bulk_threshold", -1),
        ("business_hours", "sometimes"),
        ("max_rejects", -1),
    ],
)
def test_what_json_schema_can_say_is_refused_by_it(setting, value):
    with pytest.raises(ConfigValidationError) as caught:
        TargetMoovago(config={**BASE, setting: value})
    assert setting in f"{caught.value} {caught.value.errors}"


def test_the_rules_are_stated_in_the_config_schema():
    props = TargetMoovago.config_jsonschema["properties"]
    keys = props["match_keys"]["additionalProperties"]
    assert keys["minItems"] == 1
    assert keys["items"]["minLength"] == 1
    assert set(props["stream_modes"]["additionalProperties"]["enum"]) == {
        "upsert",
        "create_only",
        "update_only",
    }
    per_request = props["mutations_per_request"]
    assert (per_request["minimum"], per_request["maximum"]) == (1, 100)
    assert set(props["business_hours"]["enum"]) == {"refuse", "wait", "ignore"}


def test_a_match_key_the_entity_does_not_have_is_refused_when_its_stream_opens():
    # JSON Schema cannot know the schema file's fields: this check stays by hand.
    target = TargetMoovago(config={**BASE, "match_keys": {"company": ["nickname"]}})
    text = json.dumps(schema_message("company", ["customerCode", "name"])) + "\n"
    with pytest.raises(ConfigError, match="'nickname', which Company does not have"):
        target.listen(io.StringIO(text))


def test_an_unreadable_schema_path_is_refused_when_the_first_stream_opens(tmp_path):
    target = TargetMoovago(config={**BASE, "schema_path": str(tmp_path / "nope.gql")})
    text = json.dumps(schema_message("company", ["customerCode", "name"])) + "\n"
    with pytest.raises(ConfigError, match=r"^Setting schema_path: .*nope\.gql: No such file"):
        target.listen(io.StringIO(text))


def test_mutations_no_entity_claims_are_logged_once_at_start(tmp_path, caplog) -> None:
    import logging

    from moovago_api.schema import DEFAULT_SCHEMA_PATH
    from target_moovago.remote import Remote

    sdl = DEFAULT_SCHEMA_PATH.read_text(encoding="utf-8")
    path = tmp_path / "extra.gql"
    path.write_text(sdl + "\nextend type Mutation { sendReport(id: ID!): Boolean }\n", "utf-8")
    remote = Remote({"schema_path": str(path)}, logging.getLogger("target-moovago-test"))
    with caplog.at_level(logging.WARNING):
        remote.schema  # noqa: B018 (the first load logs)
        remote.schema  # noqa: B018
    lines = [r.getMessage() for r in caplog.records if "sendReport" in r.getMessage()]
    assert lines == [
        f"Mutation.sendReport in {path} is not used: it matches no entity's "
        "create, update or delete"
    ]


def test_a_wrong_stream_plan_is_refused_when_the_stream_opens():
    plans = {"company": {"writes": {"delete": "companyErase"}}}
    target = TargetMoovago(config={**BASE, "stream_plans": plans})
    text = json.dumps(schema_message("company", ["customerCode", "name"])) + "\n"
    with pytest.raises(ConfigError, match=r"^Setting stream_plans\.company\.writes\.delete: "):
        target.listen(io.StringIO(text))


def test_a_stream_plan_override_is_what_the_target_writes_through(tmp_path):
    import logging

    from moovago_api.schema import DEFAULT_SCHEMA_PATH
    from target_moovago.remote import Remote

    sdl = DEFAULT_SCHEMA_PATH.read_text(encoding="utf-8")
    path = tmp_path / "extra.gql"
    extra = "\nextend type Mutation { eraseCompany(id: ID!): Boolean }\n"
    path.write_text(sdl + extra, "utf-8")
    plans = {"company": {"writes": {"delete": "eraseCompany"}}}
    remote = Remote({"schema_path": str(path), "stream_plans": plans}, logging.getLogger("t"))
    shape = remote.schema.entity("company").writes.shape("delete")
    assert (shape.coordinate, shape.id_arg) == ("Mutation.eraseCompany", "id")


def test_a_team_id_naming_another_team_stops_the_run_before_any_write(sandbox_factory, run_target):
    box = sandbox_factory(companies=1)
    rows = [{"customerCode": "TEAM-1", "name": "Other team"}]
    with pytest.raises(ConfigError, match="Setting team_id is 'not-my-team' but the API key"):
        run_target(box, stream_messages("company", rows), team_id="not-my-team")
    assert not [c for c in entity_rows(box, "company") if c.get("customerCode") == "TEAM-1"]
    same = run_target(box, stream_messages("company", rows), team_id=box.team_id)
    assert same.counts("company")["created"] == 1, same.rejects
