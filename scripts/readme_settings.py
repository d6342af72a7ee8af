"""Regenerate the settings tables of docs/settings.md from the plugins' own `--about`.

    python scripts/readme_settings.py          # rewrite docs/settings.md in place
    python scripts/readme_settings.py --check  # exit 1 when docs/settings.md is out of date

Each table sits between `<!-- settings:PLUGIN -->` and `<!-- /settings:PLUGIN -->` markers, so
the page says exactly what the code declares, never a hand-written copy.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_PAGE = ROOT / "docs" / "settings.md"
PLUGINS = ("tap-moovago", "target-moovago")


def settings_table(plugin: str) -> str:
    """The `## Settings` table of `PLUGIN --about --format=markdown`."""
    executable = Path(sys.executable).with_name(plugin)
    about = subprocess.run(
        [str(executable), "--about", "--format=markdown"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    section = about.split("## Settings", 1)[1]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return "\n".join(lines)


def render(readme: str) -> str:
    """The page's text with every marked settings table regenerated."""
    for plugin in PLUGINS:
        name = re.escape(plugin)
        pattern = re.compile(
            rf"(<!-- settings:{name} -->\n)(?:.*?\n)?(<!-- /settings:{name} -->)", re.DOTALL
        )
        if not pattern.search(readme):
            raise SystemExit(f"{SETTINGS_PAGE} has no <!-- settings:{plugin} --> markers")
        table = settings_table(plugin)
        readme = pattern.sub(lambda m, t=table: f"{m.group(1)}{t}\n{m.group(2)}", readme)
    return readme


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the page is stale")
    args = parser.parse_args(argv)
    current = SETTINGS_PAGE.read_text(encoding="utf-8")
    fresh = render(current)
    if args.check:
        if fresh != current:
            sys.stderr.write(f"{SETTINGS_PAGE} settings tables are stale: run `make readme`\n")
            return 1
        return 0
    SETTINGS_PAGE.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
