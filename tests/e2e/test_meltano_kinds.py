"""Every numeric setting of both plugins through Meltano itself: `meltano config set` and an
environment variable each give a config the plugin accepts with the value typed (Meltano 4.4's
`kind: decimal` crashed here from an environment variable; see tests/unit/test_meltano_kinds.py).

Runs `meltano config` on a copy of the project in tmp_path: nothing is installed, and the
repository's meltano.yml is never written."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.harness import meltano_project
from tests.unit.test_meltano_kinds import PLUGINS, _about, _json_types

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _numeric_values(plugin: Any) -> dict[str, Any]:
    """A valid value other than the default for every numeric setting of `plugin`."""
    values: dict[str, Any] = {}
    for name, prop in _about(plugin).items():
        types = _json_types(prop)
        if "integer" in types:
            value = max(int(prop.get("minimum", 0)), int(prop.get("default") or 0)) + 1
            values[name] = min(value, int(prop.get("maximum", value)))
        elif "number" in types:
            values[name] = 2.5
    return values


def _meltano(project: Path, args: list[str], extra: dict[str, str] | None = None) -> Any:
    env = meltano_project.base_env(project, extra)
    return subprocess.run(
        [str(meltano_project.MELTANO), *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    meltano_project.ensure_meltano()
    shutil.copy(meltano_project.MELTANO_YML, tmp_path / "meltano.yml")
    return tmp_path


def _typed(plugin: Any, printed: dict[str, Any], values: dict[str, Any]) -> None:
    config = {**printed, "api_url": "http://127.0.0.1:9/graphql", "api_key": "k"}
    instance = plugin(config=config, validate_config=True)
    for name, value in values.items():
        assert instance.config[name] == value, name
        assert isinstance(instance.config[name], int | float), name


@pytest.mark.parametrize("name", list(PLUGINS))
def test_config_set_and_environment_variables_type_every_numeric_setting(
    project: Path, name: str
) -> None:
    plugin = PLUGINS[name]
    values = _numeric_values(plugin)
    assert len(values) >= 8
    for key, value in values.items():
        done = _meltano(project, ["config", "set", name, key, str(value)])
        assert done.returncode == 0, done.stderr[-3000:]
    printed = _meltano(project, ["config", "print", name])
    assert printed.returncode == 0, printed.stderr[-3000:]
    _typed(plugin, json.loads(printed.stdout), values)

    shutil.copy(meltano_project.MELTANO_YML, project / "meltano.yml")  # back to the defaults
    prefix = name.upper().replace("-", "_") + "_"
    env = {prefix + key.upper(): str(value) for key, value in values.items()}
    printed = _meltano(project, ["config", "print", name], env)
    assert printed.returncode == 0, printed.stderr[-3000:]
    assert "Decimal" not in printed.stderr
    _typed(plugin, json.loads(printed.stdout), values)
