"""`moovago-schema`: deprecations, diff and check on the schema variants in tests/schema_variants.

Each variant is base.gql (a snapshot of the bundled schema) with one change: a field removed, a
field deprecated, a type changed, an enum value removed, an entity added.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from singer_sdk.singerlib import MetadataMapping

from moovago_api.schema import load_schema
from moovago_schema.check import check_catalog, selected_fields, target_streams_from_config
from moovago_schema.cli import main, render_table
from moovago_schema.deprecations import field_report
from moovago_schema.drift import Usage, diff_schemas, usage_index

VARIANTS = Path(__file__).resolve().parent.parent / "schema_variants"
BASE = VARIANTS / "base.gql"
VARIANT_NAMES = [
    "field_removed",
    "field_deprecated",
    "type_changed",
    "enum_value_removed",
    "entity_added",
]

ZIP = "Use postalCode; zipCode will be removed on 2027-03-31."
FUNCTION = "Use position; function will be removed on 2027-03-31."
OFFSET = "Use skip; offset will be removed on 2027-06-30."
ERP = "Use erpCode; customerCode will be removed on 2027-09-30."
SUSPECT = "Use PROSPECT; SUSPECT will be removed on 2027-09-30."


def variant(name: str) -> str:
    return str(VARIANTS / f"{name}.gql")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code, out, _ = run(capsys, *argv, "--format", "json")
    return code, json.loads(out)


def make_catalog(
    schema_path: Path | str,
    *,
    deselect: dict[str, list[str]] | None = None,
    unselected_streams: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A Singer catalog as discovery writes it (every field, deprecated ones included), all
    selected except `deselect` fields and `unselected_streams`."""
    schema = load_schema(schema_path)
    streams = []
    for entity in schema.entities():
        json_schema = schema.output_json_schema(entity.type_name)
        metadata = MetadataMapping.get_standard_metadata(
            schema=json_schema,
            key_properties=["id"],
            valid_replication_keys=[entity.replication_key] if entity.replication_key else None,
        )
        metadata.root.selected = entity.stream_name not in unselected_streams
        for breadcrumb, entry in metadata.items():
            if breadcrumb:
                entry.selected = breadcrumb[-1] not in (deselect or {}).get(entity.stream_name, [])
        streams.append(
            {
                "tap_stream_id": entity.stream_name,
                "stream": entity.stream_name,
                "schema": json_schema,
                "metadata": metadata.to_list(),
            }
        )
    return {"streams": streams}


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(make_catalog(BASE)), encoding="utf-8")
    return path


def write_json(path: Path, payload: object) -> str:
    path.write_text(json.dumps(payload), encoding="utf-8")
    return str(path)


def sdl_variant(tmp_path: Path, name: str, old: str, new: str) -> str:
    text = BASE.read_text(encoding="utf-8")
    assert text.count(old) == 1
    path = tmp_path / name
    path.write_text(text.replace(old, new), encoding="utf-8")
    return str(path)


# -- the variants themselves ---------------------------------------------------------------


def test_base_is_the_bundled_schema_snapshot() -> None:
    base, bundled = load_schema(BASE), load_schema()
    assert diff_schemas(bundled, base).changes == ()
    assert [e.stream_name for e in base.entities()] == [
        "team",
        "company",
        "contact",
        "mandator",
        "turnover",
    ]


# -- usage index -----------------------------------------------------------------------------


def test_usage_index_maps_types_and_root_fields_to_streams_and_sides() -> None:
    index = usage_index(load_schema(BASE))
    company_read, company_write = Usage("company", "read"), Usage("company", "write")
    assert index.usages("Company") == (company_read,)
    assert index.usages("Company.zipCode") == (company_read,)
    assert index.usages("CompanyCreateInput.name") == (company_write,)
    assert index.usages("FilterManyCompanyContactInput") == (Usage("contact", "read"),)
    assert index.usages("Query.companyList(offset:)") == (company_read,)
    assert index.usages("Mutation.turnover") == (Usage("turnover", "write"),)
    assert index.usages("TeamMember.alias") == (Usage("team", "read"),)
    # Company.mandators: a change to Mandator touches the company stream too.
    assert index.usages("Mandator.code") == (company_read, Usage("mandator", "read"))
    # The enum is read (Company.status) and written (CompanyCreateInput.status).
    assert index.usages("CompanyStatus.SUSPECT") == (company_read, company_write)
    assert index.usages("NoSuchType.field") == ()
    assert index.usages("Query.noSuchList") == ()


# -- deprecations ----------------------------------------------------------------------------


def test_deprecations_table_on_base(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "deprecations", "--schema", str(BASE))
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"3 deprecated elements in {BASE}",
        "",
        "kind      element                     used by         reason",
        "--------  --------------------------  --------------  " + "-" * len(ZIP),
        f"argument  Query.companyList(offset:)  company (read)  {OFFSET}",
        f"field     Company.zipCode             company (read)  {ZIP}",
        f"field     CompanyContact.function     contact (read)  {FUNCTION}",
    ]


def test_deprecations_defaults_to_the_bundled_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, payload = run_json(capsys, "deprecations")
    assert code == 0
    assert payload["schema"] == str(load_schema().path)
    assert {d["coordinate"] for d in payload["deprecations"]} >= {
        "Company.zipCode",
        "CompanyContact.function",
    }


BASE_DEPRECATIONS = [
    ("argument", "Query.companyList(offset:)", OFFSET, [("company", "read")]),
    ("field", "Company.zipCode", ZIP, [("company", "read")]),
    ("field", "CompanyContact.function", FUNCTION, [("contact", "read")]),
]
EXPECTED_DEPRECATIONS = {
    "field_removed": [d for d in BASE_DEPRECATIONS if d[1] != "Company.zipCode"],
    "field_deprecated": [
        (
            "enum_value",
            "CompanyStatus.SUSPECT",
            SUSPECT,
            [("company", "read"), ("company", "write")],
        ),
        *BASE_DEPRECATIONS[:2],
        ("field", "Company.customerCode", ERP, [("company", "read")]),
        ("input_field", "CompanyCreateInput.customerCode", ERP, [("company", "write")]),
        ("input_field", "CompanyUpdateDataInput.customerCode", ERP, [("company", "write")]),
        BASE_DEPRECATIONS[2],
    ],
    "type_changed": BASE_DEPRECATIONS,
    "enum_value_removed": BASE_DEPRECATIONS,
    "entity_added": BASE_DEPRECATIONS,
}


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_deprecations_of_each_variant(capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, payload = run_json(capsys, "deprecations", "--schema", variant(name))
    assert code == 0
    found = [
        (d["kind"], d["coordinate"], d["reason"], [(s["stream"], s["side"]) for s in d["streams"]])
        for d in payload["deprecations"]
    ]
    assert sorted(found) == sorted(EXPECTED_DEPRECATIONS[name])
    code, out, _ = run(capsys, "deprecations", "--schema", variant(name))
    assert code == 0
    assert out.startswith(f"{len(found)} deprecated elements in {variant(name)}\n")
    for kind, coordinate, reason, _streams in found:
        assert any(
            line.split()[:2] == [kind, coordinate] and line.endswith(reason)
            for line in out.splitlines()
        ), coordinate


def test_deprecations_when_there_are_none(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "plain.gql"
    path.write_text("type Query { team: Team }\ntype Team { id: ID! }\n", encoding="utf-8")
    code, out, _ = run(capsys, "deprecations", "--schema", str(path))
    assert (code, out) == (0, f"No deprecated elements in {path}.\n")


# -- diff ------------------------------------------------------------------------------------

# severity, change kind, element, streams, note; and the exit code.
EXPECTED_DIFF: dict[str, tuple[int, list[tuple[str, str, str, list[str], str]]]] = {
    "field_removed": (
        1,
        [
            (
                "breaking",
                "FIELD_REMOVED",
                "Company.zipCode",
                ["company read"],
                f"was deprecated: {ZIP}",
            )
        ],
    ),
    "field_deprecated": (
        0,
        [
            (
                "dangerous",
                "OPTIONAL_INPUT_FIELD_ADDED",
                "CompanyCreateInput.erpCode",
                ["company write"],
                "",
            ),
            (
                "dangerous",
                "OPTIONAL_INPUT_FIELD_ADDED",
                "CompanyUpdateDataInput.erpCode",
                ["company write"],
                "",
            ),
            (
                "deprecated",
                "DEPRECATED",
                "CompanyStatus.SUSPECT",
                ["company read", "company write"],
                SUSPECT,
            ),
            ("deprecated", "DEPRECATED", "Company.customerCode", ["company read"], ERP),
            (
                "deprecated",
                "DEPRECATED",
                "CompanyCreateInput.customerCode",
                ["company write"],
                ERP,
            ),
            (
                "deprecated",
                "DEPRECATED",
                "CompanyUpdateDataInput.customerCode",
                ["company write"],
                ERP,
            ),
        ],
    ),
    "type_changed": (
        1,
        [
            ("breaking", "FIELD_CHANGED_KIND", "Turnover.amount", ["turnover read"], ""),
            (
                "breaking",
                "FIELD_CHANGED_KIND",
                "TurnoverCreateInput.amount",
                ["turnover write"],
                "",
            ),
            (
                "breaking",
                "FIELD_CHANGED_KIND",
                "TurnoverUpdateDataInput.amount",
                ["turnover write"],
                "",
            ),
        ],
    ),
    "enum_value_removed": (
        1,
        [
            (
                "breaking",
                "VALUE_REMOVED_FROM_ENUM",
                "CompanyStatus.SUSPECT",
                ["company read", "company write"],
                "",
            )
        ],
    ),
    "entity_added": (
        0,
        [("new_entity", "ENTITY_ADDED", "Query.visitList", ["visit read"], "")],
    ),
}


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_diff_json_of_each_variant(capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, payload = run_json(capsys, "diff", str(BASE), variant(name))
    expected_code, expected = EXPECTED_DIFF[name]
    assert code == expected_code == payload["exit_code"]
    assert payload["breaks_connector"] is bool(expected_code)
    found = [
        (
            c["severity"],
            c["kind"],
            c["coordinate"],
            [f"{s['stream']} {s['side']}" for s in c["streams"]],
            c["note"],
        )
        for c in payload["changes"]
    ]
    assert sorted(found) == sorted(expected)


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_diff_table_of_each_variant_groups_by_stream(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    code, out, err = run(capsys, "diff", str(BASE), variant(name))
    expected_code, expected = EXPECTED_DIFF[name]
    assert (code, err) == (expected_code, "")
    lines = out.splitlines()
    assert lines[:2] == [f"old: {BASE}", f"new: {variant(name)}"]
    sections = [line for line in lines if line.startswith("stream ")]
    streams = list(dict.fromkeys(s.split()[0] for _, _, _, ss, _ in expected for s in ss))
    assert sections == [f"stream {stream}" for stream in streams]
    for severity, kind, coordinate, _, note in expected:
        row = next(line for line in lines if line.split()[:3] == [severity, kind, coordinate])
        assert note in row
    if expected_code:
        assert lines[-1].startswith("Result: BREAKING.")
    else:
        assert lines[-1] == "Result: nothing the connector uses breaks."


def test_diff_table_of_a_removed_field_in_full(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "diff", str(BASE), variant("field_removed"))
    detail = f"Field Company.zipCode was removed. (was deprecated: {ZIP})"
    assert code == 1
    assert out.splitlines()[2:] == [
        "",
        "stream company",
        "severity  change         element          side  detail",
        "--------  -------------  ---------------  ----  " + "-" * len(detail),
        f"breaking  FIELD_REMOVED  Company.zipCode  read  {detail}",
        "",
        "1 breaking (1 used by the connector), 0 dangerous, 0 newly deprecated, 0 new entities.",
        "Result: BREAKING. The new file removes or changes what the connector uses; run"
        " `moovago-schema check` on your catalog and target config before switching.",
    ]


def test_diff_of_identical_files(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "diff", str(BASE), str(BASE))
    assert code == 0
    assert "No breaking or dangerous changes, new deprecations or new entities." in out


def test_diff_breaking_change_outside_the_connector_exits_0(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    old = tmp_path / "old.gql"
    old.write_text(BASE.read_text(encoding="utf-8") + "\ntype Unused { a: Int }\n", "utf-8")
    code, payload = run_json(capsys, "diff", str(old), str(BASE))
    assert code == 0
    [change] = payload["changes"]
    assert (change["kind"], change["coordinate"], change["streams"]) == (
        "TYPE_REMOVED",
        "Unused",
        [],
    )
    code, out, _ = run(capsys, "diff", str(old), str(BASE))
    assert code == 0
    assert "not used by the connector" in out.splitlines()


def test_diff_removed_argument_and_entity(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    new = sdl_variant(
        tmp_path,
        "no_offset.gql",
        '    "Same as skip. [reconstruction]"\n'
        '    offset: Int @deprecated(reason: "Use skip; offset will be removed on 2027-06-30.")\n',
        "",
    )
    code, payload = run_json(capsys, "diff", str(BASE), new)
    assert code == 1
    [change] = payload["changes"]
    assert change["coordinate"] == "Query.companyList(offset:)"
    assert change["streams"] == [{"stream": "company", "side": "read"}]
    assert change["note"] == f"was deprecated: {OFFSET}"
    # The other way round the argument is new (and deprecated already): nothing breaks.
    code, payload = run_json(capsys, "diff", new, str(BASE))
    assert code == 0
    assert [c["kind"] for c in payload["changes"]] == ["OPTIONAL_ARG_ADDED", "DEPRECATED"]
    # An entity gone: its root field is removed, which breaks its stream.
    code, payload = run_json(capsys, "diff", variant("entity_added"), str(BASE))
    assert code == 1
    removed = {c["coordinate"]: c["streams"] for c in payload["changes"]}
    assert removed["Query.visitList"] == [{"stream": "visit", "side": "read"}]


def test_diff_accepts_bundled_as_a_file_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, payload = run_json(capsys, "diff", "bundled", variant("enum_value_removed"))
    assert code == 1
    assert payload["old"] == str(load_schema().path)
    assert "CompanyStatus.SUSPECT" in {c["coordinate"] for c in payload["changes"]}


# -- check -----------------------------------------------------------------------------------

BASE_CATALOG_ISSUES = [
    ("catalog", "company", "zipCode", "deprecated", f"Company.zipCode: {ZIP}"),
    ("catalog", "contact", "function", "deprecated", f"CompanyContact.function: {FUNCTION}"),
]
EXPECTED_CHECK: dict[str, tuple[int, list[tuple[str, str, str, str, str]]]] = {
    "field_removed": (
        1,
        [
            (
                "catalog",
                "company",
                "zipCode",
                "missing",
                "Company.zipCode: not in field_removed.gql",
            ),
            BASE_CATALOG_ISSUES[1],
        ],
    ),
    "field_deprecated": (
        0,
        [
            ("catalog", "company", "customerCode", "deprecated", f"Company.customerCode: {ERP}"),
            *BASE_CATALOG_ISSUES,
        ],
    ),
    "type_changed": (
        0,
        [
            *BASE_CATALOG_ISSUES,
            (
                "catalog",
                "turnover",
                "amount",
                "changed",
                "type in catalog: number; in schema: string",
            ),
        ],
    ),
    "enum_value_removed": (
        0,
        [
            (
                "catalog",
                "company",
                "status",
                "changed",
                "enum values no longer in the schema: SUSPECT",
            ),
            *BASE_CATALOG_ISSUES,
        ],
    ),
    "entity_added": (
        0,
        [
            *BASE_CATALOG_ISSUES,
            (
                "catalog",
                "visit",
                "",
                "new",
                "stream visit (visitList) is not in the catalog: run discovery to offer it",
            ),
        ],
    ),
}


def issues_of(payload: dict[str, Any]) -> list[tuple[str, ...]]:
    return [
        (i["source"], i["stream"], i["field"], i["status"], i["reason"]) for i in payload["issues"]
    ]


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_check_catalog_against_each_variant(
    capsys: pytest.CaptureFixture[str], catalog_file: Path, name: str
) -> None:
    argv = ("check", "--schema", variant(name), "--catalog", str(catalog_file))
    code, payload = run_json(capsys, *argv)
    expected_code, expected = EXPECTED_CHECK[name]
    assert code == expected_code == payload["exit_code"]
    assert issues_of(payload) == expected
    code, out, err = run(capsys, *argv)
    assert (code, err) == (expected_code, "")
    lines = out.splitlines()
    assert lines[:2] == [f"schema: {variant(name)}", f"checked: catalog {catalog_file}"]
    for source, stream, field, status, reason in expected:
        assert any(
            line.split()[:4] == [source, stream, field or "-", status] and line.endswith(reason)
            for line in lines
        ), (field, reason)
    if expected_code:
        assert lines[-1].startswith("Result: MISSING.")
    else:
        assert lines[-1] == "Result: nothing selected or written is missing."


def test_check_on_base_reports_only_deprecations(
    capsys: pytest.CaptureFixture[str], catalog_file: Path
) -> None:
    code, payload = run_json(capsys, "check", "--schema", str(BASE), "--catalog", str(catalog_file))
    assert code == 0
    assert issues_of(payload) == BASE_CATALOG_ISSUES


def test_check_follows_catalog_selection(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # zipCode deselected and contact not selected: the removal breaks nothing selected.
    catalog = make_catalog(BASE, deselect={"company": ["zipCode"]}, unselected_streams=("contact",))
    path = write_json(tmp_path / "catalog.json", catalog)
    code, payload = run_json(
        capsys, "check", "--schema", variant("field_removed"), "--catalog", path
    )
    assert (code, issues_of(payload)) == (0, [])
    code, out, _ = run(capsys, "check", "--schema", variant("field_removed"), "--catalog", path)
    assert code == 0
    assert "Every selected and written field is in the schema file, none deprecated." in out
    # Automatic inclusion wins over selected: false (Singer rules), so zipCode counts again.
    company = catalog["streams"][1]
    for entry in company["metadata"]:
        if entry["breadcrumb"] == ["properties", "zipCode"]:
            entry["metadata"]["inclusion"] = "automatic"
    write_json(tmp_path / "catalog.json", catalog)
    code, payload = run_json(
        capsys, "check", "--schema", variant("field_removed"), "--catalog", path
    )
    assert code == 1
    assert issues_of(payload)[0][2:4] == ("zipCode", "missing")


def test_check_nested_fields_and_missing_stream(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    catalog = make_catalog(variant("entity_added"))
    path = write_json(tmp_path / "catalog.json", catalog)
    new = sdl_variant(
        tmp_path,
        "no_lat.gql",
        "  latitude: Float!\n  longitude: Float!\n}\n\n"
        '"A point on the map, WGS 84. [reconstruction]"\ninput',
        "  lat: Float!\n  longitude: Float!\n}\n\n"
        '"A point on the map, WGS 84. [reconstruction]"\ninput',
    )
    code, payload = run_json(capsys, "check", "--schema", new, "--catalog", path)
    assert code == 1
    assert issues_of(payload) == [
        BASE_CATALOG_ISSUES[0],
        (
            "catalog",
            "company",
            "coordinates.latitude",
            "missing",
            "Coordinates.latitude: not in no_lat.gql",
        ),
        BASE_CATALOG_ISSUES[1],
        (
            "catalog",
            "visit",
            "",
            "missing",
            "no stream 'visit' in no_lat.gql (it has: team, company, contact, mandator, turnover)",
        ),
    ]


def test_check_target_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = write_json(
        tmp_path / "target.json",
        {"api_url": "http://127.0.0.1:1/graphql", "stream_modes": {"company": "upsert"}},
    )
    code, payload = run_json(
        capsys, "check", "--schema", variant("field_deprecated"), "--target-config", config
    )
    assert code == 0
    assert issues_of(payload) == [
        ("target", "company", "status", "deprecated", f"value CompanyStatus.SUSPECT: {SUSPECT}"),
        (
            "target",
            "company",
            "customerCode",
            "deprecated",
            f"CompanyCreateInput.customerCode and CompanyUpdateDataInput.customerCode: {ERP}",
        ),
        # The target's default match key for companies.
        (
            "target",
            "company",
            "customerCode",
            "deprecated",
            f"match key: Company.customerCode: {ERP}",
        ),
    ]
    # The base file: nothing deprecated on the write side, the config fits.
    code, payload = run_json(capsys, "check", "--schema", str(BASE), "--target-config", config)
    assert (code, issues_of(payload)) == (0, [])


def test_check_target_missing_match_key_and_stream(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = write_json(
        tmp_path / "target.json",
        {
            "match_keys": {"contact": ["companyId", "mail"], "mandator": ["code?"]},
            "stream_modes": {"team": "upsert"},
        },
    )
    code, payload = run_json(capsys, "check", "--schema", str(BASE), "--target-config", config)
    assert code == 1
    assert issues_of(payload) == [
        ("target", "contact", "mail", "missing", "match key: CompanyContact.mail: not in base.gql"),
        ("target", "team", "", "missing", "no mutation for stream 'team' in base.gql"),
    ]
    code, out, _ = run(capsys, "check", "--schema", str(BASE), "--target-config", config)
    assert code == 1
    assert "1 missing" not in out
    assert "2 missing, 0 deprecated, 0 changed, 0 new streams." in out


def test_check_catalog_and_target_together(
    capsys: pytest.CaptureFixture[str], catalog_file: Path, tmp_path: Path
) -> None:
    config = write_json(tmp_path / "target.json", {})
    code, payload = run_json(
        capsys,
        "check",
        "--schema",
        variant("field_removed"),
        "--catalog",
        str(catalog_file),
        "--target-config",
        config,
    )
    assert code == 1
    assert payload["checked"] == [f"catalog {catalog_file}", f"target config {config}"]
    assert {i["source"] for i in payload["issues"]} == {"catalog"}


def test_target_streams_from_config() -> None:
    names = ["team", "company", "contact", "companyContact", "mandator", "turnover"]
    writable = ["company", "contact", "mandator", "turnover"]
    defaults = {"company": [["customerCode"]], "mandator": [["code"], ["name"]]}
    streams, keys = target_streams_from_config({}, names, writable, defaults)
    assert list(streams) == writable
    assert keys == {"company": ["customerCode"], "mandator": ["code", "name"]}
    config = {
        "stream_modes": {"contact": "update_only"},
        "match_keys": {"company": ["name", "city?"]},
    }
    streams, keys = target_streams_from_config(config, names, writable, defaults)
    assert list(streams) == ["contact", "company"]
    assert keys == {"company": ["name", "city"]}
    # An object keyed by something else (an SDK stream map on warehouse names) is not a stream.
    streams, _ = target_streams_from_config(
        {"stream_maps": {"public-companies": {}}}, names, writable, defaults
    )
    assert list(streams) == writable


# -- field_report (for the tap and target start-up checks) ------------------------------------


def test_field_report() -> None:
    schema = load_schema(variant("field_deprecated"))
    issues = field_report(
        schema,
        "Company",
        ["id", "zipCode", "customerCode", "coordinates.latitude", "nope", "nope.deeper", "x.y"],
    )
    assert [(i.field, i.status, i.coordinate, i.reason) for i in issues] == [
        ("zipCode", "deprecated", "Company.zipCode", f"Company.zipCode: {ZIP}"),
        ("customerCode", "deprecated", "Company.customerCode", f"Company.customerCode: {ERP}"),
        ("nope", "missing", "Company.nope", "Company.nope: not in field_deprecated.gql"),
        ("x.y", "missing", "Company.x", "Company.x: not in field_deprecated.gql"),
    ]
    assert field_report(schema, "Company", ["coordinates.lat"])[0].coordinate == "Coordinates.lat"
    assert [i.status for i in field_report(schema, "CompanyCreateInput", ["customerCode"])] == [
        "deprecated"
    ]
    assert [i.reason for i in field_report(schema, "Visit", ["id"])] == [
        "Visit: type not in field_deprecated.gql"
    ]


def test_selected_fields_follow_singer_rules() -> None:
    catalog = make_catalog(BASE, deselect={"company": ["coordinates", "note"]})
    company = catalog["streams"][1]
    paths = selected_fields(company)
    assert paths is not None
    assert "note" not in paths
    assert "coordinates" not in paths
    assert "coordinates.latitude" not in paths
    assert {"id", "name", "mandators", "coordinates"} & set(paths) == {"id", "name", "mandators"}
    company["metadata"][-1]["metadata"]["selected"] = False  # the stream itself (root is last)
    assert company["metadata"][-1]["breadcrumb"] == []
    assert selected_fields(company) is None
    # An unselected stream is not held against the file: zipCode's removal is not reported.
    issues = check_catalog(load_schema(variant("field_removed")), {"streams": [company]})
    assert issues
    assert {(i.stream, i.status) for i in issues} == {
        ("team", "new"),
        ("contact", "new"),
        ("mandator", "new"),
        ("turnover", "new"),
    }
    assert "coordinates.latitude" in (selected_fields(make_catalog(BASE)["streams"][1]) or [])


def tap_catalog(**config: object) -> dict[str, Any]:
    """The catalog tap-moovago discovers from the bundled schema (no request is made)."""
    from tap_moovago.tap import TapMoovago

    tap = TapMoovago(config={"api_url": "http://127.0.0.1:9/graphql", "api_key": "k", **config})
    return tap.catalog_dict


def test_check_a_real_tap_catalog(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # Discovered with deprecated fields kept: zipCode is selected, so its removal breaks.
    path = write_json(tmp_path / "with.json", tap_catalog(include_deprecated_fields=True))
    argv = ("check", "--schema", variant("field_removed"), "--catalog", path)
    code, payload = run_json(capsys, *argv)
    assert (code, issues_of(payload)) == (
        1,
        [
            (
                "catalog",
                "company",
                "zipCode",
                "missing",
                "Company.zipCode: not in field_removed.gql",
            ),
            BASE_CATALOG_ISSUES[1],
        ],
    )
    # By default the tap leaves deprecated fields out of discovery: nothing to miss.
    path = write_json(tmp_path / "default.json", tap_catalog())
    code, payload = run_json(
        capsys, "check", "--schema", variant("field_removed"), "--catalog", path
    )
    assert (code, issues_of(payload)) == (0, [])
    code, payload = run_json(
        capsys, "check", "--schema", variant("type_changed"), "--catalog", path
    )
    assert (code, issues_of(payload)) == (
        0,
        [
            (
                "catalog",
                "turnover",
                "amount",
                "changed",
                "type in catalog: number; in schema: string",
            )
        ],
    )


# -- errors ----------------------------------------------------------------------------------


def test_broken_schema_file_is_one_line_with_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.gql"
    broken.write_text("type Query {\n  team: Team\n}\n\ntype Team {\n  id: ID!\n  name String\n}\n")
    for argv in (
        ("deprecations", "--schema", str(broken)),
        ("diff", str(BASE), str(broken)),
        ("check", "--schema", str(broken), "--target-config", str(broken)),
    ):
        code, out, err = run(capsys, *argv)
        assert (code, out) == (2, "")
        assert err.count("\n") == 1
        assert err.startswith("moovago-schema: error: ")
        assert f"{broken}:7:" in err


def test_missing_and_invalid_input_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "diff", str(BASE), str(tmp_path / "absent.gql"))
    assert code == 2
    assert f"{tmp_path / 'absent.gql'}" in err
    assert err.count("\n") == 1
    bad_json = tmp_path / "catalog.json"
    bad_json.write_text('{\n  "streams": [\n    {"tap_stream_id": "company",}\n  ]\n}\n')
    code, _, err = run(capsys, "check", "--schema", str(BASE), "--catalog", str(bad_json))
    assert code == 2
    assert err.startswith(f"moovago-schema: error: Invalid catalog {bad_json}:3: ")
    not_catalog = write_json(tmp_path / "config.json", {"api_url": "x"})
    code, _, err = run(capsys, "check", "--schema", str(BASE), "--catalog", not_catalog)
    assert code == 2
    assert 'no "streams" list' in err
    code, _, err = run(capsys, "check", "--schema", str(BASE), "--target-config", str(bad_json))
    assert code == 2
    assert f"Invalid target config {bad_json}:3:" in err
    code, _, err = run(capsys, "check", "--schema", str(BASE))
    assert code == 2
    assert "--catalog" in err
    code, _, _ = run(capsys, "diff", str(BASE))
    assert code == 2


def test_render_table() -> None:
    assert render_table(["a", "long header"], [["wide cell", "x"], ["b", ""]]) == (
        "a          long header\n---------  -----------\nwide cell  x\nb\n"
    )


# -- the installed command -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["deprecations"], 0),
        (["diff", "bundled", variant("field_removed")], 1),
        (["diff", str(BASE), variant("entity_added")], 0),
        (["check", "--schema", str(BASE), "--target-config", "/nonexistent/config.json"], 2),
    ],
)
def test_installed_script_exit_codes(argv: list[str], code: int) -> None:
    script = Path(sys.executable).parent / "moovago-schema"
    result = subprocess.run([str(script), *argv], capture_output=True, text=True, check=False)
    assert result.returncode == code, result.stderr
    if code == 2:
        assert result.stderr.startswith("moovago-schema: error: Cannot read target config")
    else:
        assert result.stdout
        assert not result.stderr
