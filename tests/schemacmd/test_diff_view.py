"""`moovago-schema diff` compares the connector's view of both files (streams, read and write
fields, paging, incremental key, writability) and maps root types by role before comparing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from graphql import find_breaking_changes

from moovago_api.schema import load_schema
from moovago_schema.cli import main
from moovago_schema.view import connector_view, root_mapped

VARIANTS = Path(__file__).resolve().parents[1] / "schema_variants"
BASE = VARIANTS / "base.gql"
#: Written by the `reads` engineer (tests/schema_variants/shapes/); used when it is there.
SHAPES_RENAMED_ROOTS = VARIANTS / "shapes" / "renamed_roots.gql"


def variant(tmp_path: Path, name: str, *edits: tuple[str, str]) -> str:
    """base.gql with each (old, new) text replaced once: the edit must be where it is meant."""
    text = BASE.read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / f"{name}.gql"
    path.write_text(text, encoding="utf-8")
    return str(path)


def renamed_roots(tmp_path: Path, *more: tuple[str, str]) -> str:
    return variant(
        tmp_path,
        "renamed_roots",
        (
            "  query: Query\n  mutation: Mutation\n",
            "  query: RootQuery\n  mutation: RootMutation\n",
        ),
        ("type Query {", "type RootQuery {"),
        ("type Mutation {", "type RootMutation {"),
        *more,
    )


NULLABLE_MANDATOR_FILTER = (
    "  mandatorList(\n    filter: FilterManyMandatorInput!\n",
    "  mandatorList(\n    filter: FilterManyMandatorInput\n",
)


def diff_json(capsys: pytest.CaptureFixture[str], old: str, new: str) -> tuple[int, Any]:
    code = main(["diff", old, new, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def diff_table(capsys: pytest.CaptureFixture[str], old: str, new: str) -> tuple[int, list[str]]:
    code = main(["diff", old, new])
    captured = capsys.readouterr()
    assert captured.err == ""
    return code, captured.out.splitlines()


def view_rows(payload: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    return [
        (c["severity"], c["stream"], c["aspect"], c["element"], c["old"], c["new"])
        for c in payload["connector"]
    ]


# -- root types ------------------------------------------------------------------------------


def renamed_root_files(tmp_path: Path) -> list[str]:
    files = [renamed_roots(tmp_path)]
    if SHAPES_RENAMED_ROOTS.exists():
        files.append(str(SHAPES_RENAMED_ROOTS))
    return files


def test_renamed_root_types_are_the_same_api(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for new in renamed_root_files(tmp_path):
        # graphql-core alone, comparing by type name, calls this a removed Query.
        raw = find_breaking_changes(load_schema(BASE).graphql, load_schema(new).graphql)
        assert "Query was removed." in [change.description for change in raw]
        code, payload = diff_json(capsys, str(BASE), new)
        assert code == 0, payload
        assert payload["root_types"] == {"RootQuery": "Query", "RootMutation": "Mutation"}
        assert [c for c in payload["changes"] if c["severity"] == "breaking"] == []
        assert view_rows(payload) == []
        code, lines = diff_table(capsys, str(BASE), new)
        assert code == 0
        assert lines[2] == (
            "root types compared by role: RootQuery as Query, RootMutation as Mutation"
            " (documents never name them)"
        )
        assert lines[-1] == "Result: nothing the connector uses breaks."
        # And the other way round.
        code, payload = diff_json(capsys, new, str(BASE))
        assert (code, payload["root_types"]) == (
            0,
            {"Query": "RootQuery", "Mutation": "RootMutation"},
        )


def test_changes_behind_renamed_roots_keep_their_streams(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    new = renamed_roots(
        tmp_path,
        ('  "Company mutations. [vendor]"\n  company: CompanyMutation\n', ""),
        (
            '    "Same as skip. [reconstruction]"\n    offset: Int @deprecated(reason: "Use skip;'
            ' offset will be removed on 2027-06-30.")\n',
            "",
        ),
    )
    code, payload = diff_json(capsys, str(BASE), new)
    assert code == 1
    found = {(c["kind"], c["coordinate"]): c["streams"] for c in payload["changes"]}
    assert found[("FIELD_REMOVED", "Mutation.company")] == [{"stream": "company", "side": "write"}]
    assert found[("ARG_REMOVED", "Query.companyList(offset:)")] == [
        {"stream": "company", "side": "read"}
    ]
    assert ("breaking", "company", "writable", "Mutation.company", "yes", "no") in view_rows(
        payload
    )


def test_root_mapping_refuses_a_collision(tmp_path: Path) -> None:
    """A file whose roots are RootQuery but which also has a type Query is compared as is."""
    new = renamed_roots(tmp_path, ("scalar DateTime\n", "scalar DateTime\ntype Query { x: Int }\n"))
    mapped, renames = root_mapped(load_schema(BASE), load_schema(new))
    assert renames == {}
    assert mapped.graphql.query_type is not None
    assert mapped.graphql.query_type.name == "RootQuery"


# -- the connector's view --------------------------------------------------------------------


def test_view_of_the_base_file() -> None:
    view = connector_view(load_schema(BASE))
    assert list(view) == ["team", "company", "contact", "mandator", "turnover"]
    company = view["company"]
    assert company.root == "Query.companyList"
    assert company.mutation == "Mutation.company"
    assert company.read_fields["coordinates.latitude"] == "Float!"
    assert company.read_coordinates["coordinates.latitude"] == "Coordinates.latitude"
    assert company.write_fields["name"] == "String!"
    assert company.write_coordinates["customerCode"] == [
        "CompanyCreateInput.customerCode",
        "CompanyUpdateDataInput.customerCode",
    ]
    assert company.incremental == "updatedAt (filter updatedSince)"
    assert view["team"].mutation is None


def test_an_entity_that_stops_being_detected_breaks(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # No id and a nullable filter: neither the spelling rule nor the shape rule takes it.
    new = variant(
        tmp_path,
        "mandator_gone",
        (
            "  mandatorList(\n    filter: FilterManyMandatorInput!\n",
            "  mandatorList(\n    filter: FilterManyMandatorInput\n",
        ),
        ('type Mandator {\n  "[vendor]"\n  id: ID!\n', "type Mandator {\n"),
    )
    # Still listed (never silently gone), but no sync can read it.
    assert load_schema(new).entity("mandator").problem == (
        "Query.mandatorList: Mandator has no id or _id field (set stream_plans.mandator.id_field)"
    )
    code, payload = diff_json(capsys, str(BASE), new)
    assert code == 1
    [gone] = [c for c in payload["connector"] if c["aspect"] == "stream"]
    assert (gone["severity"], gone["stream"], gone["element"], gone["new"]) == (
        "breaking",
        "mandator",
        "Query.mandatorList",
        "not detected",
    )
    assert "still in the file but is not read as a list of Mandator" in gone["detail"]
    code, lines = diff_table(capsys, str(BASE), new)
    assert code == 1
    assert "connector view (what tap and target do differently)" in lines
    row = next(line for line in lines if line.split()[:3] == ["breaking", "mandator", "stream"])
    assert "detected -> not detected" in row
    assert lines[-1].startswith("Result: BREAKING.")


def test_detection_changes_are_reported_exactly(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A nullable filter is only a safe change to graphql-core; the diff says whatever it does to
    discovery: the streams reported gone are exactly the streams discovery loses."""
    new = variant(
        tmp_path,
        "nullable_filter",
        (
            "  mandatorList(\n    filter: FilterManyMandatorInput!\n",
            "  mandatorList(\n    filter: FilterManyMandatorInput\n",
        ),
    )
    raw = find_breaking_changes(load_schema(BASE).graphql, load_schema(new).graphql)
    assert raw == []
    lost = {e.stream_name for e in load_schema(BASE).entities()} - {
        e.stream_name for e in load_schema(new).entities()
    }
    code, payload = diff_json(capsys, str(BASE), new)
    reported = {c["stream"] for c in payload["connector"] if c["new"] == "not detected"}
    assert reported == lost
    assert code == (1 if lost else 0)


def test_incremental_key_lost(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    text = BASE.read_text(encoding="utf-8")
    start = text.index("type Company {")
    at = text.index("  updatedAt: DateTime!\n", start)
    path = tmp_path / "no_incremental.gql"
    path.write_text(
        text[:at]
        + '  updatedAt: DateTime! @deprecated(reason: "Going away.")\n'
        + text[at + len("  updatedAt: DateTime!\n") :],
        encoding="utf-8",
    )
    code, payload = diff_json(capsys, str(BASE), str(path))
    assert code == 0  # not breaking: the stream still reads every row, as a full table
    assert ("dangerous", "company", "incremental", "Query.companyList") in [
        row[:4] for row in view_rows(payload)
    ]
    [row] = [r for r in view_rows(payload) if r[2] == "incremental"]
    assert row[4:] == ("updatedAt (filter updatedSince)", "none (full table)")
    code, lines = diff_table(capsys, str(BASE), str(path))
    assert any(line.split()[:3] == ["dangerous", "company", "incremental"] for line in lines)
    assert "Connector view: 1 more change (0 breaking)." in lines


def test_paging_and_write_fields(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    new = variant(
        tmp_path,
        "paging_and_inputs",
        (
            "  companyContactList(\n    filter: FilterManyCompanyContactInput!\n"
            '    "Rows to pass over before the first one returned. [reconstruction]"\n'
            "    skip: Int = 0\n",
            "  companyContactList(\n    filter: FilterManyCompanyContactInput!\n",
        ),
        (
            'input CompanyCreateInput {\n  "Owners; the API key\'s user when omitted. [vendor]"\n',
            "input CompanyCreateInput {\n  region: String!\n  \"Owners; the API key's user when"
            ' omitted. [vendor]"\n',
        ),
    )
    code, payload = diff_json(capsys, str(BASE), new)
    assert code == 1
    rows = {(c["stream"], c["aspect"], c["element"]): c for c in payload["connector"]}
    paging = rows[("contact", "paging", "Query.companyContactList")]
    # A list left with `limit` and no offset or cursor is refused by the tap: the stream stops.
    assert paging["old"] == "offset skip/limit"
    assert paging["new"].startswith("unsupported (")
    assert paging["severity"] == "breaking"
    region = rows[("company", "write field", "region")]
    assert (region["old"], region["new"], region["severity"]) == ("-", "String!", "breaking")
    assert region["covered_by"] == "REQUIRED_INPUT_FIELD_ADDED"
    assert region["side"] == "write"


SHAPES_CURSOR = VARIANTS / "shapes" / "cursor_paging.gql"


def cursor_variant(tmp_path: Path) -> str:
    """companyList paged by `after`/`first` with a row cursor instead of skip/limit."""
    if SHAPES_CURSOR.exists():
        return str(SHAPES_CURSOR)
    return variant(
        tmp_path,
        "cursor_company",
        (
            '  companyList(\n    filter: FilterManyCompanyInput!\n    "Rows to pass over before the'
            ' first one returned. [reconstruction]"\n    skip: Int = 0\n    "Most rows returned,'
            ' 1 to 1000. [reconstruction]"\n    limit: Int\n',
            "  companyList(\n    filter: FilterManyCompanyInput!\n    after: String\n"
            "    first: Int\n",
        ),
        (
            'type Company {\n  "[vendor]"\n  id: ID!\n',
            'type Company {\n  "[vendor]"\n  id: ID!\n  cursor: String!\n',
        ),
    )


def test_removed_paging_arguments_break_unless_the_tap_pages_another_way(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    new = cursor_variant(tmp_path)
    code, payload = diff_json(capsys, str(BASE), new)
    paging = {c["stream"]: c["new"] for c in payload["connector"] if c["aspect"] == "paging"}
    assert "company" in paging
    removed = [
        c
        for c in payload["changes"]
        if c["kind"] == "ARG_REMOVED" and c["coordinate"].startswith("Query.companyList(")
    ]
    assert {c["coordinate"] for c in removed} >= {
        "Query.companyList(skip:)",
        "Query.companyList(limit:)",
    }
    repaged = not paging["company"].startswith(("none", "unsupported"))
    for change in removed:
        # Adapted exactly when the connector's view pages the list another supported way.
        assert bool(change["adapted"]) is repaged, change
        assert change["breaks_connector"] is not repaged
    if not repaged:
        assert code == 1
