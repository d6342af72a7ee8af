"""The wire rules live once in moovago_api.wire; client, target and sandbox agree through it."""

from __future__ import annotations

import datetime as dt

import pytest

from moovago_api import wire
from moovago_api.errors import ConfigError
from moovago_api.wire import check_api_url
from moovago_sandbox import scalars
from target_moovago.index import to_api_value

LOOPBACK_HOSTS = [
    "127.0.0.1",
    "127.1.2.3",
    "[::1]",
    "localhost",
    "LOCALHOST",
]
REMOTE_HOSTS = ["api.example.test", "10.0.0.5", "[2001:db8::1]", "localhost.example.test"]


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_client_and_target_agree_on_loopback_hosts(host):
    url = f"http://{host}:8080/graphql"
    assert wire.is_loopback_url(url)
    assert check_api_url(url) == url  # the client accepts plain http:// exactly there


@pytest.mark.parametrize("host", REMOTE_HOSTS)
def test_client_and_target_agree_on_remote_hosts(host):
    url = f"http://{host}/graphql"
    assert not wire.is_loopback_url(url)
    with pytest.raises(ConfigError, match="https://"):
        check_api_url(url)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (
            dt.datetime(2026, 11, 29, 8, 30, 0, 123456, tzinfo=dt.timezone.utc),
            "2026-11-29T08:30:00.123Z",
        ),
        (
            dt.datetime(2026, 11, 29, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))),
            "2026-11-29T08:30:00.000Z",
        ),
        (dt.datetime(2026, 11, 29, 8, 30), "2026-11-29T08:30:00.000Z"),  # naive means UTC
    ],
)
def test_one_datetime_format_everywhere(value, text):
    assert wire.format_datetime(value) == text
    assert scalars.format_datetime is wire.format_datetime
    assert to_api_value(value, {"type": "string", "format": "date-time"}) == text


@pytest.mark.parametrize("text", ["2026-11-29", "2026-11-29T08:30:00", "yesterday", "", None, 5])
def test_parse_datetime_refuses_what_is_not_an_instant(text):
    with pytest.raises(ValueError, match="date-time"):
        wire.parse_datetime(text)


def test_parse_datetime_reads_zones():
    assert wire.parse_datetime("2026-11-29T09:30:00+01:00") == dt.datetime(
        2026, 11, 29, 8, 30, tzinfo=dt.timezone.utc
    )
    assert wire.format_datetime(wire.parse_datetime("2026-11-29T08:30:00Z")) == (
        "2026-11-29T08:30:00.000Z"
    )


def test_redact_covers_the_key_as_configured_stripped_and_as_a_header_line():
    forms = wire.secret_forms("X-API-KEY: s3cr3t-key-value\n")
    text = "gateway said: X-API-KEY: s3cr3t-key-value is bad; key s3cr3t-key-value"
    out = wire.redact({"msg": text, "list": [text]}, forms)
    assert "s3cr3t" not in repr(out)
    assert wire.redact("nothing here", forms) == "nothing here"


# Names are loopback by where they resolve, at the time of asking, never by how they end.
RESOLVER = {
    "app.localhost": ["127.0.0.1", "::1"],
    "evil.localhost": ["203.0.113.7"],
    "split.localhost": ["127.0.0.1", "203.0.113.7"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "scoped.test": ["::1%lo"],
    "nowhere.localhost": [],
}


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("app.localhost", True),
        ("mapped.test", True),
        ("scoped.test", True),
        ("evil.localhost", False),  # before: any name ending in .localhost
        ("split.localhost", False),
        ("nowhere.localhost", False),
        ("127.0.0.2", True),
        ("[::1]", True),
        ("10.0.0.1", False),
    ],
)
def test_plain_http_is_loopback_only_by_where_the_name_resolves(host, loopback):
    asked: list[str] = []

    def resolve(name: str) -> list[str]:
        asked.append(name)
        return RESOLVER[name]

    url = f"http://{host}:8080/graphql"
    assert wire.is_loopback_url(url, resolve) is loopback
    if loopback:
        wire.check_plain_http(url, resolve)
    else:
        with pytest.raises(ConfigError, match="resolving only to loopback"):
            wire.check_plain_http(url, resolve)
    assert bool(asked) is (host in RESOLVER)  # IP literals are never resolved
    wire.check_plain_http(f"https://{host}/graphql", resolve)  # https: any host


def test_the_client_checks_the_name_again_before_each_request(monkeypatch, sandbox_factory):
    sandbox = sandbox_factory(companies=1)
    from moovago_api.settings import client_from_config

    answers = {"localhost": ["127.0.0.1"]}
    monkeypatch.setattr(wire, "resolve_host", lambda name: answers[name])
    url = sandbox.url.replace("127.0.0.1", "localhost")
    config = {"api_url": url, "api_key": sandbox.api_key, "max_retries": 0}
    client = client_from_config(config, default_rate=5)
    assert client.execute("query { team { id } }")["team"]["id"]
    answers["localhost"] = ["203.0.113.7"]  # the resolver now sends the name elsewhere
    with pytest.raises(ConfigError, match="api_url must use https:// for localhost"):
        client.execute("query { team { id } }")
    assert sandbox.stats()["requests"] == 1  # the second request never left
