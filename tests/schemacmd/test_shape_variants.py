"""`moovago-schema check` and `diff` on every shape variant (issue 12 item 9, the diff/check part).

Each file of tests/schema_variants/shapes/ is checked against a catalog the tap discovers from it
and a target config pointing at it, and diffed against the bundled schema: no traceback, exit
codes as documented (0 fine, 1 breaks, 2 unreadable), and the connector view names write-side
changes in the target's terms.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from moovago_api.errors import MoovagoError
from moovago_schema.cli import main

SHAPES = Path(__file__).resolve().parents[1] / "schema_variants" / "shapes"
VARIANTS = sorted(path.stem for path in SHAPES.glob("*.gql"))


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main([*argv, "--format", "json"])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, json.loads(out)


def discovered(path: Path) -> dict[str, Any] | None:
    from tap_moovago.tap import TapMoovago

    config = {"api_url": "http://127.0.0.1:9/graphql", "api_key": "k", "schema_path": str(path)}
    try:
        return TapMoovago(config=config).catalog_dict
    except MoovagoError:  # the tap refuses the file (unsupported_paging): nothing to check
        return None


def test_every_variant_is_covered() -> None:
    assert "toplevel_mutations" in VARIANTS
    assert "readonly_parent" in VARIANTS
    assert len(VARIANTS) >= 20


@pytest.mark.parametrize("name", VARIANTS)
def test_check_a_variant_against_its_own_catalog_and_target_config(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = SHAPES / f"{name}.gql"
    config = tmp_path / "target.json"
    config.write_text(json.dumps({"schema_path": str(path)}), encoding="utf-8")
    argv = ["check", "--schema", str(path), "--target-config", str(config)]
    catalog = discovered(path)
    if catalog is not None:
        (tmp_path / "catalog.json").write_text(json.dumps(catalog), encoding="utf-8")
        argv += ["--catalog", str(tmp_path / "catalog.json")]
    code, payload = run_json(capsys, *argv)
    missing = [i for i in payload["issues"] if i["status"] == "missing"]
    # What the tap discovered from a file, and the target's defaults, fit that same file.
    assert (code, missing) == (0, [])


def write_view(payload: dict[str, Any], stream: str) -> list[dict[str, Any]]:
    return [c for c in payload["connector"] if c["stream"] == stream and c["side"] == "write"]


@pytest.mark.parametrize("name", VARIANTS)
def test_diff_bundled_against_each_variant(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, payload = run_json(capsys, "diff", "bundled", str(SHAPES / f"{name}.gql"))
    unabsorbed = [
        c
        for c in payload["changes"]
        if c["severity"] == "breaking" and c["streams"] and not c["adapted"]
    ]
    breaking_view = [
        c for c in payload["connector"] if c["severity"] == "breaking" and not c["covered_by"]
    ]
    assert code in (0, 1)
    assert code == payload["exit_code"]
    assert (code == 1) == bool(unabsorbed or breaking_view)


@pytest.mark.parametrize("name", ["toplevel_mutations", "two_arg_update", "data_argument"])
def test_a_new_mutation_layout_keeps_every_stream_writable(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, payload = run_json(capsys, "diff", "bundled", str(SHAPES / f"{name}.gql"))
    assert code == 0
    for stream in ("company", "contact", "mandator", "turnover"):
        assert all(c["severity"] != "breaking" for c in write_view(payload, stream)), stream
    write_changes = [c for c in payload["changes"] if c["severity"] == "breaking"]
    assert all(c["adapted"].startswith("the target writes with") for c in write_changes)


def test_top_level_mutations_are_named_in_the_view(capsys: pytest.CaptureFixture[str]) -> None:
    code, payload = run_json(capsys, "diff", "bundled", str(SHAPES / "toplevel_mutations.gql"))
    assert code == 0
    removed = {c["coordinate"]: c for c in payload["changes"]}
    assert "Mutation.createCompany" in removed["Mutation.company"]["adapted"]
    (writes,) = write_view(payload, "company")
    assert (writes["aspect"], writes["severity"]) == ("writes", "info")
    assert "Mutation.company.create -> Mutation.createCompany" in writes["detail"]


def test_a_parent_that_loses_its_mutations_breaks_the_target(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, payload = run_json(capsys, "diff", "bundled", str(SHAPES / "readonly_parent.gql"))
    assert code == 1
    writable = [c for c in write_view(payload, "company") if c["aspect"] == "writable"]
    assert [(c["old"], c["new"], c["severity"]) for c in writable] == [("yes", "no", "breaking")]
    assert not [c for c in write_view(payload, "contact") if c["severity"] == "breaking"]
    removed = {c["coordinate"]: c for c in payload["changes"]}
    assert removed["Mutation.company"]["adapted"] == ""


def test_check_names_a_stream_without_mutations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = SHAPES / "readonly_parent.gql"
    config = tmp_path / "target.json"
    config.write_text(json.dumps({"match_keys": {"company": ["customerCode"]}}), encoding="utf-8")
    code, payload = run_json(capsys, "check", "--schema", str(path), "--target-config", str(config))
    assert code == 1
    assert [(i["stream"], i["status"]) for i in payload["issues"]] == [("company", "missing")]
    assert "no mutation for stream 'company'" in payload["issues"][0]["reason"]
