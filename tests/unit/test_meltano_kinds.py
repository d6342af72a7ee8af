"""The Meltano plugin definitions type every number: `kind: integer` for whole numbers, and
`kind: string` only for the two fractional settings Meltano cannot take as `decimal` from an
environment variable (tests.harness.meltano_project says why); the plugins type that
text themselves, the same from a file, `--config=ENV` and Meltano."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from moovago_api.settings import connection_properties, numbers_from_text
from tap_moovago.tap import TapMoovago
from target_moovago.target import TargetMoovago

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = {"tap-moovago": TapMoovago, "target-moovago": TargetMoovago}
#: JSON `number` settings: Meltano `kind: string` (see the module docstring).
FRACTIONAL = {"max_requests_per_second", "request_timeout"}


def _definitions() -> list[tuple[str, str, dict[str, Any]]]:
    """(file, plugin name, setting) for every setting of every plugin definition."""
    found = []
    project = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    for plugins in project["plugins"].values():
        for plugin in plugins:
            found += [("meltano.yml", plugin["name"], s) for s in plugin.get("settings", [])]
    for path in sorted((ROOT / "plugins").rglob("*.yml")):
        plugin = yaml.safe_load(path.read_text(encoding="utf-8"))
        name = str(path.relative_to(ROOT))
        found += [(name, plugin["name"], s) for s in plugin.get("settings", [])]
    return found


def _about(plugin: Any) -> dict[str, Any]:
    """The settings `--about` lists: the plugin's own, then the SDK's built-ins."""
    schema = copy.deepcopy(plugin.config_jsonschema)
    plugin.append_builtin_config(schema)
    return schema["properties"]


def _json_types(prop: dict[str, Any]) -> set[str]:
    types = prop.get("type") or [o.get("type") for o in prop.get("anyOf", [])]
    return {types} if isinstance(types, str) else {t for t in types if t and t != "null"}


def test_every_definition_file_is_read() -> None:
    files = {file for file, _, _ in _definitions()}
    assert "meltano.yml" in files
    assert len(files) >= 3  # meltano.yml and the Hub definitions of tap and target


def test_no_whole_number_setting_is_text_and_numbers_are_text_only_where_meltano_needs_it() -> None:
    checked = 0
    for file, plugin, setting in _definitions():
        where = f"{file}: {plugin}.{setting['name']}"
        if plugin in PLUGINS:
            prop = _about(PLUGINS[plugin])[setting["name"]]
            types = _json_types(prop)
            if "integer" in types:
                assert setting["kind"] == "integer", where
                checked += 1
            elif "number" in types:
                assert setting["name"] in FRACTIONAL, where
                assert setting["kind"] == "string", where
                checked += 1
        default = setting.get("value")
        if isinstance(default, int | float) and not isinstance(default, bool):
            assert setting["kind"] in ("integer", "decimal") or setting["name"] in FRACTIONAL, where
    assert checked >= 20


def test_about_types_numbers_as_numbers() -> None:
    for plugin in PLUGINS.values():
        for name, prop in _about(plugin).items():
            types = _json_types(prop)
            assert not ({"integer", "number"} & types and "string" in types), name
    assert {
        n for n, p in connection_properties(default_rate=1).items() if p["type"] == "number"
    } == (FRACTIONAL)


@pytest.mark.parametrize("plugin", list(PLUGINS.values()))
def test_numbers_given_as_text_are_typed_before_the_config_check(plugin: Any) -> None:
    config = {
        "api_url": "http://127.0.0.1:9/graphql",
        "api_key": "k",
        "max_requests_per_second": "2",
        "request_timeout": " 7.5 ",
        "max_retries": 3,
    }
    numbers_from_text(config, plugin.config_jsonschema["properties"])
    assert (config["max_requests_per_second"], config["request_timeout"]) == (2.0, 7.5)
    instance = plugin(config={**config, "request_timeout": "7.5"}, validate_config=True)
    assert instance.config["request_timeout"] == 7.5
    bad = {**config, "request_timeout": "soon"}
    numbers_from_text(bad, plugin.config_jsonschema["properties"])
    assert bad["request_timeout"] == "soon"  # left for the check to name
