"""moovago_api.settings: connection settings schema and client construction from config."""

from __future__ import annotations

import logging

import jsonschema
import pytest

from moovago_api.client import MoovagoClient
from moovago_api.errors import ConfigError
from moovago_api.schema import DEFAULT_SCHEMA_PATH, schema_from_config
from moovago_api.settings import CONNECTION_REQUIRED, client_from_config, connection_properties

KEY = "sk-settings-0a1b2c3d-SECRET"
GOOD = {"api_url": "https://api.example.test/graphql", "api_key": KEY}


def config_schema(default_rate: float = 4) -> dict:
    return {
        "type": "object",
        "properties": connection_properties(default_rate=default_rate),
        "required": list(CONNECTION_REQUIRED),
    }


def test_every_property_is_documented():
    properties = connection_properties(default_rate=4)
    assert {
        "api_url",
        "api_key",
        "api_key_header",
        "schema_path",
        "max_requests_per_second",
        "request_timeout",
        "verify_tls",
    } <= set(properties)
    for name, prop in properties.items():
        assert prop["title"], name
        assert len(prop["description"]) > 20, name
        # Numbers with a fraction are ["string", "number"]: an environment variable is text.
        types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
        assert types, name
        assert set(types) <= {"string", "number", "integer", "boolean"}, name


def test_only_the_key_is_secret():
    properties = connection_properties(default_rate=4)
    assert properties["api_key"]["secret"] is True
    assert properties["api_key"]["writeOnly"] is True
    assert [name for name, prop in properties.items() if prop.get("secret")] == ["api_key"]
    assert "default" not in properties["api_key"]
    assert "default" not in properties["api_url"]


@pytest.mark.parametrize("default_rate", [4, 1])
def test_rate_bounds_and_default(default_rate):
    rate = connection_properties(default_rate=default_rate)["max_requests_per_second"]
    assert rate["default"] == default_rate
    assert rate["maximum"] == 5
    assert rate["exclusiveMinimum"] == 0
    defaults = connection_properties(default_rate=default_rate)
    assert defaults["api_key_header"]["default"] == "X-API-KEY"
    assert defaults["verify_tls"]["default"] is True
    assert defaults["request_timeout"]["default"] == 30


def test_properties_are_a_valid_json_schema_that_bounds_the_rate():
    schema = config_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate({**GOOD, "max_requests_per_second": 5}, schema)
    for bad in (6, 0, -1):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**GOOD, "max_requests_per_second": bad}, schema)
    with pytest.raises(jsonschema.ValidationError, match="api_key"):
        jsonschema.validate({"api_url": GOOD["api_url"]}, schema)


def test_default_rate_above_5_is_refused():
    with pytest.raises(ConfigError, match="at most 5"):
        connection_properties(default_rate=6)


def test_client_from_config_uses_defaults():
    client = client_from_config(GOOD, default_rate=1)
    assert isinstance(client, MoovagoClient)
    assert client.api_url == GOOD["api_url"]
    assert client.api_key_header == "X-API-KEY"
    assert client.max_requests_per_second == 1
    assert client.request_timeout == 30
    assert client.verify_tls is True
    assert client.governor.limit <= 1


def test_client_from_config_reads_every_setting(tmp_path):
    logger = logging.getLogger("test.settings")
    client = client_from_config(
        {
            "api_url": "http://127.0.0.1:8123/graphql",
            "api_key": f"Api-Token: {KEY}",
            "api_key_header": "X-API-KEY",
            "schema_path": str(DEFAULT_SCHEMA_PATH),
            "max_requests_per_second": "2.5",  # environment variables arrive as text
            "request_timeout": 12,
            "verify_tls": "false",
            "max_retries": 2,
            "max_retry_seconds": 60,
        },
        default_rate=4,
        logger=logger,
    )
    assert client.api_key_header == "Api-Token"
    assert client.max_requests_per_second == 2.5
    assert client.request_timeout == 12
    assert client.verify_tls is False
    assert (client.max_retries, client.max_retry_seconds) == (2, 60)
    assert client.logger is logger


def test_missing_api_key_names_the_setting_and_where_the_key_comes_from():
    with pytest.raises(ConfigError) as caught:
        client_from_config({"api_url": GOOD["api_url"]}, default_rate=4)
    message = str(caught.value)
    assert message.startswith("api_key is missing")
    assert "welcome e-mail" in message


def test_missing_api_url_names_the_setting():
    with pytest.raises(ConfigError, match=r"^api_url is missing"):
        client_from_config({"api_key": KEY}, default_rate=4)


def test_rate_6_is_refused_with_the_reason():
    with pytest.raises(ConfigError) as caught:
        client_from_config({**GOOD, "max_requests_per_second": 6}, default_rate=4)
    assert str(caught.value) == (
        "max_requests_per_second must be at most 5 "
        "(Moovago answers 429 above 5 requests per second)."
    )


def test_http_to_a_remote_host_is_refused():
    with pytest.raises(ConfigError, match=r"api_url must use https:// for moovago\.example\.test"):
        client_from_config(
            {**GOOD, "api_url": "http://moovago.example.test/graphql"}, default_rate=4
        )


def test_unreadable_schema_path_is_refused(tmp_path):
    missing = tmp_path / "nope.gql"
    with pytest.raises(ConfigError, match=r"^Setting schema_path: .*nope\.gql: No such file"):
        schema_from_config({**GOOD, "schema_path": str(missing)})
    with pytest.raises(ConfigError, match=r"^Setting schema_path: .*: Is a directory"):
        schema_from_config({**GOOD, "schema_path": str(tmp_path)})


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("max_requests_per_second", "fast", "max_requests_per_second must be a number"),
        ("max_requests_per_second", 0, "above 0"),
        ("max_requests_per_second", True, "max_requests_per_second must be a number"),
        ("request_timeout", 0, "request_timeout must be a number of seconds above 0"),
        ("request_timeout", "soon", "request_timeout must be"),
        ("verify_tls", "maybe", "verify_tls must be true or false"),
        ("max_retries", -1, "max_retries must be a whole number"),
        ("max_retries", 1.5, "max_retries must be a whole number"),
        ("max_retry_seconds", -5, "max_retry_seconds must be"),
        ("api_key", 12345, "api_key must be text"),
        ("api_key_header", "X API KEY", "api_key_header must be an HTTP header name"),
        ("api_url", "not a url", "api_url must be an absolute https:// URL"),
    ],
)
def test_each_bad_value_gets_its_sentence(setting, value, words):
    with pytest.raises(ConfigError, match=words):
        client_from_config({**GOOD, setting: value}, default_rate=4)


def test_several_problems_are_reported_together_without_the_key():
    bad = {"api_url": "http://moovago.example.test/graphql", "api_key": f"X-API-KEY: {KEY}\n"}
    bad |= {"max_requests_per_second": 9}
    with pytest.raises(ConfigError) as caught:
        client_from_config(bad, default_rate=4)
    message = str(caught.value)
    assert "api_url" in message
    assert "max_requests_per_second must be at most 5" in message
    assert message.count(".") >= 3
    assert KEY not in message


# -- what the schema says, and numbers given as text -----------------------------------------


def test_the_schema_says_every_range_and_form_it_can():
    properties = connection_properties(default_rate=4)
    assert properties["api_url"]["minLength"] == 1
    assert properties["api_key"]["minLength"] == 1
    assert "pattern" in properties["api_key_header"]
    for name in ("request_timeout", "max_retry_seconds", "max_retries"):
        assert "maximum" in properties[name], name
    assert properties["max_requests_in_flight"]["minimum"] == 1
    assert properties["max_requests_in_flight"]["maximum"] == 16
    assert "default" not in properties["max_requests_in_flight"]  # derived from the rate
    assert properties["max_response_bytes"]["default"] == 64 * 1024 * 1024
    schema = config_schema()
    for bad in (
        {"max_requests_in_flight": 0},
        {"max_requests_in_flight": 2.5},
        {"max_response_bytes": 10},
        {"request_timeout": 4000},
        {"request_timeout": "soon"},
        {"request_timeout": "2.5"},  # text is typed by numbers_from_text before the check
        {"max_retry_seconds": 1.5},
        {"api_key_header": "X API KEY"},
        {"api_key": ""},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**GOOD, **bad}, schema)


@pytest.mark.parametrize("name", ["max_requests_per_second", "request_timeout"])
def test_fractional_number_settings_are_numbers_and_also_take_text(name):
    prop = connection_properties(default_rate=4)[name]
    assert prop["type"] == "number"
    jsonschema.validate({**GOOD, name: 2.5}, config_schema())
    client = client_from_config({**GOOD, name: " 2.5 "}, default_rate=4)
    assert getattr(client, name) == 2.5


def test_numbers_given_as_text_are_held_to_the_same_ranges():
    with pytest.raises(ConfigError) as caught:
        client_from_config({**GOOD, "max_requests_per_second": "6"}, default_rate=4)
    assert str(caught.value) == (
        "max_requests_per_second must be at most 5 "
        "(Moovago answers 429 above 5 requests per second)."
    )
    with pytest.raises(ConfigError, match="request_timeout must be a number of seconds above 0"):
        client_from_config({**GOOD, "request_timeout": "0"}, default_rate=4)
    with pytest.raises(ConfigError, match="max_retry_seconds must be"):
        client_from_config({**GOOD, "max_retry_seconds": "-1"}, default_rate=4)


def test_requests_in_flight_and_response_cap_settings():
    client = client_from_config(GOOD, default_rate=4)
    assert client.max_requests_in_flight == 8  # twice the rate
    assert client.max_response_bytes == 64 * 1024 * 1024
    assert client_from_config(GOOD, default_rate=1).max_requests_in_flight == 2
    client = client_from_config(
        {**GOOD, "max_requests_in_flight": 3, "max_response_bytes": 2048}, default_rate=4
    )
    assert (client.max_requests_in_flight, client.max_response_bytes) == (3, 2048)
    for name, value in (("max_requests_in_flight", 17), ("max_response_bytes", 100)):
        with pytest.raises(ConfigError, match=f"^{name} must be a whole number"):
            client_from_config({**GOOD, name: value}, default_rate=4)


@pytest.mark.parametrize("key", ["sk-ключ-0123456789", "sk-\x1b[31m-0123456789", "sk-🔑-0123"])
def test_a_key_that_cannot_go_in_a_header_is_refused_by_the_config_check(key):
    with pytest.raises(ConfigError) as caught:
        client_from_config({**GOOD, "api_key": key}, default_rate=4)
    assert str(caught.value).startswith("api_key cannot be sent in an HTTP header")
    assert key not in str(caught.value)


def test_the_connection_in_effect_is_logged_once(caplog):
    caplog.set_level(logging.INFO)
    client_from_config(
        {**GOOD, "max_requests_per_second": "2", "request_timeout": 7}, default_rate=4
    )
    (line,) = [r.getMessage() for r in caplog.records if "Moovago connection" in r.getMessage()]
    assert "at most 2 requests/s and 4 in flight (default)" in line
    assert "within 7 s" in line
    assert KEY not in line


def test_a_connection_test_client_tries_once_and_connects_within_a_few_seconds():
    config = {**GOOD, "max_retries": 8, "request_timeout": 30}
    normal = client_from_config(config, default_rate=4)
    test = client_from_config(config, default_rate=4, connection_test=True)
    try:
        assert (normal.max_retries, normal.connect_timeout) == (8, 30.0)
        assert test.max_retries == 0
        assert 0 < test.connect_timeout <= 5 < test.request_timeout
    finally:
        normal.close()
        test.close()
