"""The repository's Meltano project as the end-to-end tests (and the demo) drive it: the Meltano
CLI from `.venv-meltano` (built by `make meltano`), plugins installed once into `.meltano/`, and
`meltano.yml`'s settings compared with the plugins' own `--about`.

After a connector's settings change, regenerate their blocks in meltano.yml from `--about`:
`.venv/bin/python -m tests.harness.meltano_project --write`."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MELTANO_VENV = ROOT / ".venv-meltano"
MELTANO = MELTANO_VENV / "bin" / "meltano"
MELTANO_YML = ROOT / "meltano.yml"
PLUGIN_DIRS = {kind: ROOT / ".meltano" / kind for kind in ("extractors", "loaders")}
_PLUGIN_ENV_PREFIXES = ("TAP_MOOVAGO_", "TARGET_MOOVAGO_", "TAP_POSTGRES_", "TARGET_POSTGRES_")


class MeltanoError(RuntimeError):
    """A Meltano command failed; the message holds its output tail."""


@contextmanager
def _install_lock() -> Iterator[None]:
    """Several test sessions (or a demo) on one machine share `.meltano/`: install one at a time."""
    lock_path = ROOT / ".meltano" / ".install.lock"
    lock_path.parent.mkdir(exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sys_dir(workdir: Path) -> Path:
    """A Meltano system directory of `workdir`'s own: its `run/` (the config and catalog files
    Meltano writes, under fixed names, for each invocation), logs and caches, with the plugins
    installed once in `.meltano/` linked in, so Meltano commands can run in parallel."""
    root = workdir / ".meltano-sys"
    root.mkdir(parents=True, exist_ok=True)
    for kind in ("extractors", "loaders", "utilities"):
        shared = ROOT / ".meltano" / kind
        shared.mkdir(parents=True, exist_ok=True)
        link = root / kind
        if not link.is_symlink():
            link.symlink_to(shared, target_is_directory=True)
    return root


def base_env(workdir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a Meltano command: state, run history and run files in `workdir`, not
    `.meltano/`, so test runs and demos never share bookmarks or run files; no telemetry (no
    network here)."""
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(_PLUGIN_ENV_PREFIXES)
    }
    env.update(
        {
            "MELTANO_DATABASE_URI": f"sqlite:///{workdir / 'meltano.db'}",
            "MELTANO_SYS_DIR_ROOT": str(sys_dir(workdir)),
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "MELTANO_PROJECT_READONLY": "false",
            "NO_COLOR": "1",
        }
    )
    env.update(extra or {})
    return env


def run(
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    timeout: float = 600,
    log: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """`meltano ARGS` in the project root; MeltanoError with the output tail when it fails."""
    proc = subprocess.run(
        [str(MELTANO), *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if log is not None:
        with log.open("a") as handle:
            handle.write(f"$ meltano {' '.join(args)}\n{proc.stdout}\n{proc.stderr}\n")
    if proc.returncode != 0:
        raise MeltanoError(
            f"meltano {' '.join(args)} exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-8000:]}"
        )
    return proc


def ensure_meltano() -> Path:
    """The Meltano CLI, built by `make meltano` (the Makefile holds the pinned version)."""
    proc = subprocess.run(
        ["make", "-s", "meltano"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise MeltanoError(f"make meltano failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return MELTANO


def install_plugins(env: Mapping[str, str]) -> None:
    """`meltano install`: our two plugins from this checkout, the MeltanoLabs ones from the
    package index (pinned in meltano.yml). Meltano skips what is already installed."""
    ensure_meltano()
    with _install_lock():
        run(["install"], env, timeout=1200)


def plugin_executable(kind: str, name: str) -> Path:
    """The plugin's own executable in the venv `meltano install` made for it."""
    return PLUGIN_DIRS[kind] / name / "venv" / "bin" / name


def about(executable: Path | str) -> dict[str, Any]:
    proc = subprocess.run(
        [str(executable), "--about", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(proc.stdout)


def _kind(prop: Mapping[str, Any]) -> str:
    """The Meltano setting kind for a JSON-schema property of a Singer SDK plugin's config."""
    if prop.get("secret"):
        return "password"
    if prop.get("enum") or any("enum" in option for option in prop.get("anyOf", [])):
        return "options"
    types = prop.get("type", "string")
    types = [types] if isinstance(types, str) else [t for t in types if t != "null"]
    if not types and prop.get("anyOf"):
        types = [t for option in prop["anyOf"] for t in [option.get("type")] if t and t != "null"]
    first = types[0] if types else "string"
    if first == "string" and prop.get("format") == "date-time":
        return "date_iso8601"
    # A JSON `number` is `kind: string`, not `decimal`: Meltano 4.4 turns a decimal given as an
    # environment variable into a Decimal, then fails writing the plugin's config ("Decimal is not
    # JSON serializable"); the plugins type the text themselves (moovago_api.settings).
    return {
        "integer": "integer",
        "number": "string",
        "boolean": "boolean",
        "object": "object",
        "array": "array",
    }.get(first, "string")


def settings_from_about(about_json: Mapping[str, Any]) -> list[dict[str, Any]]:
    """meltano.yml `settings:` entries equivalent to a plugin's `--about --format=json`."""
    settings = []
    for name, prop in about_json["settings"]["properties"].items():
        entry: dict[str, Any] = {"name": name, "kind": _kind(prop)}
        entry["label"] = prop.get("title") or name.replace("_", " ").capitalize()
        if prop.get("description"):
            entry["description"] = prop["description"]
        if "default" in prop and prop["default"] is not None:
            entry["value"] = prop["default"]
        if entry["kind"] == "options":
            values = prop.get("enum") or next(o["enum"] for o in prop["anyOf"] if "enum" in o)
            entry["options"] = [{"label": str(v), "value": v} for v in values if v is not None]
        if prop.get("secret"):
            entry["sensitive"] = True
        settings.append(entry)
    return settings


def settings_yaml(settings: list[dict[str, Any]], indent: int = 4) -> str:
    """The entries as the YAML block to paste into meltano.yml under the plugin."""
    import yaml

    body = yaml.safe_dump(
        {"settings": settings}, sort_keys=False, allow_unicode=True, width=96, indent=2
    )
    return "\n".join(" " * indent + line for line in body.splitlines())


def rewrite_settings(text: str, plugin: str, block: str) -> str:
    """meltano.yml text with the `settings:` block of `plugin` replaced by `block`."""
    lines = text.splitlines(keepends=True)
    begin = lines.index(f"  - name: {plugin}\n")
    first = next(i for i in range(begin + 1, len(lines)) if lines[i] == "    settings:\n")
    last = first + 1
    while last < len(lines) and lines[last].startswith(("    - ", "      ")):
        last += 1
    return "".join([*lines[:first], block.rstrip("\n") + "\n", *lines[last:]])


#: The Hub-format definitions shipped in plugins/, for `meltano add --from-ref` in any project.
HUB_DEFINITIONS = {
    "tap-moovago": ROOT / "plugins" / "extractors" / "tap-moovago--moovago.yml",
    "target-moovago": ROOT / "plugins" / "loaders" / "target-moovago--moovago.yml",
}
DISTRIBUTION = "moovago-connectors"
_HUB_TEXT = {
    "tap-moovago": (
        "Moovago (extractor)",
        "Extracts teams, companies, contacts, mandators and turnovers from the Moovago sales "
        "CRM's GraphQL API; streams and fields follow the schema file.",
    ),
    "target-moovago": (
        "Moovago (loader)",
        "Upserts warehouse rows into the Moovago sales CRM through its GraphQL mutations "
        "(reverse-ETL), duplicate-safe and within the API's rate limit.",
    ),
}
_HUB_HEADER = (
    "# Meltano Hub-format definition of {name}, generated from `{name} --about` by\n"
    "# `.venv/bin/python -m tests.harness.meltano_project --write`\n"
    "# (tests/e2e/test_hub_definitions.py fails when it falls behind).\n"
    "# Add it to any Meltano project:\n"
    "#   meltano add --from-ref <this file or its raw URL> {name}\n"
)


#: Plugin commands (`meltano invoke tap-moovago:doctor`), as in meltano.yml.
_HUB_COMMANDS: dict[str, dict[str, Any]] = {
    "tap-moovago": {
        "doctor": {
            "executable": "moovago-schema",
            "args": "doctor --config=ENV",
            "description": (
                "Read-only check of what the connectors assume about the live API; add "
                "--format=json for the report the tap's doctor_report setting reads."
            ),
        }
    }
}


def hub_definition(name: str, about_json: Mapping[str, Any]) -> dict[str, Any]:
    """The Hub-format plugin definition of one of our plugins, from its `--about`."""
    label, description = _HUB_TEXT[name]
    return {
        "name": name,
        "namespace": name.replace("-", "_"),
        "variant": "moovago",
        "label": label,
        "description": description,
        "domain_url": "https://www.moovago.com",
        "keywords": ["moovago", "crm", "graphql", "singer-sdk"],
        "maintenance_status": "active",
        "pip_url": DISTRIBUTION,
        "executable": name,
        "capabilities": list(about_json["capabilities"]),
        **({"commands": _HUB_COMMANDS[name]} if name in _HUB_COMMANDS else {}),
        "settings_group_validation": [sorted(about_json["settings"].get("required", []))],
        # The Hub spells a secret `sensitive: true` on a string (`kind: password` is deprecated).
        "settings": [
            {**s, "kind": "string"} if s["kind"] == "password" else s
            for s in settings_from_about(about_json)
        ],
    }


def hub_yaml(name: str, definition: Mapping[str, Any]) -> str:
    import yaml

    body = yaml.safe_dump(dict(definition), sort_keys=False, allow_unicode=True, width=96)
    return _HUB_HEADER.format(name=name) + body


def main(argv: Sequence[str]) -> None:
    """`python -m tests.harness.meltano_project [--write] [PLUGIN...]`: print the
    settings block of each plugin (default: ours) from its `--about`, or write them into
    meltano.yml and the plugin's Hub-format definition under plugins/."""
    write = "--write" in argv
    plugins = [a for a in argv if a != "--write"] or ["tap-moovago", "target-moovago"]
    text = MELTANO_YML.read_text()
    for plugin in plugins:
        about_json = about(ROOT / ".venv" / "bin" / plugin)
        block = settings_yaml(settings_from_about(about_json))
        if write:
            text = rewrite_settings(text, plugin, block)
            if plugin in HUB_DEFINITIONS:
                path = HUB_DEFINITIONS[plugin]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(hub_yaml(plugin, hub_definition(plugin, about_json)))
        else:
            sys.stdout.write(block + "\n")
    if write:
        MELTANO_YML.write_text(text)


if __name__ == "__main__":
    main(sys.argv[1:])
