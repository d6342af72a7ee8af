"""The sandbox generated from each schema file: it starts, every list pages through every row
exactly once in its own paging shape, every served value is valid for the file, and a create,
update and delete round-trip in the file's mutation layout.

The checks here walk the file's types on their own (strict: no string for an Int, no enum
value the file does not declare, no null where it requires a value), independently of the
sandbox's own value checker.
"""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path
from typing import Any

import pytest
import requests
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    build_schema,
    get_named_type,
    is_abstract_type,
    is_enum_type,
    is_input_object_type,
    is_leaf_type,
    is_list_type,
    is_object_type,
)

from moovago_api.wire import parse_datetime
from moovago_sandbox.app import Sandbox, SandboxConfig
from moovago_sandbox.engine import RequestContext
from moovago_sandbox.model import ListField, MutationOp, op_field

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "moovago_api" / "schema" / "moovago_api_graphql_schema.gql"
VARIANT_DIR = ROOT / "tests" / "schema_variants"
VARIANTS = [BUNDLED, *sorted(VARIANT_DIR.glob("*.gql")), *sorted(VARIANT_DIR.glob("shapes/*.gql"))]
PAGE = 4


@functools.cache
def reference_schema(path: Path) -> GraphQLSchema:
    """The file's schema, built apart from the sandbox's (nothing bound to it)."""
    return build_schema(path.read_text(encoding="utf-8"))


def make(path: Path) -> Sandbox:
    return Sandbox(
        SandboxConfig(schema_path=path, companies=9, api_keys=[("a", None), ("b", None)])
    )


def run(box: Sandbox, query: str, variables: dict[str, Any], team: str) -> dict[str, Any]:
    ctx = RequestContext(box.store, team, box.owners[team])
    return box.engine.run(ctx, query, variables)


def run_both(box: Sandbox, query: str, variables: dict[str, Any], team: str) -> dict[str, Any]:
    """The answer of the fast path, checked equal to graphql-core's."""
    ctx = RequestContext(box.store, team, box.owners[team])
    fast = box.engine.run(ctx, query, variables, fast=True)
    assert box.engine.run(ctx, query, variables, fast=False) == fast
    return fast


# -- selections and a strict check of what comes back ------------------------------------------


def selection(schema: GraphQLSchema, type_: Any, depth: int = 0, alias: str = "") -> str:
    """Every field of the type, deep; inside a union or interface each concrete type's fields
    are aliased `<Type>_<field>` (two members may type one field name differently)."""
    named = get_named_type(type_)
    if is_leaf_type(named):
        return ""
    if depth > 3:
        return "{ __typename }"
    if is_abstract_type(named):
        parts = [
            f"... on {t.name} {selection(schema, t, depth + 1, alias=t.name + '_')}"
            for t in schema.get_possible_types(named)  # type: ignore[arg-type]
        ]
        return "{ __typename " + " ".join(parts) + " }"
    assert isinstance(named, GraphQLObjectType)
    parts = [
        f"{alias + n + ': ' if alias else ''}{n} {selection(schema, f.type, depth + 1)}"
        for n, f in named.fields.items()
    ]
    return "{ " + " ".join(parts) + " }"


def check(schema: GraphQLSchema, value: Any, type_: Any, where: str, depth: int = 0) -> None:
    if isinstance(type_, GraphQLNonNull):
        assert value is not None, f"{where}: null for {type_}"
        check(schema, value, type_.of_type, where, depth)
        return
    if value is None:
        return
    if isinstance(type_, GraphQLList):
        assert isinstance(value, list), f"{where}: {value!r} is not a list"
        for i, item in enumerate(value):
            check(schema, item, type_.of_type, f"{where}[{i}]", depth)
        return
    named = get_named_type(type_)
    name = named.name
    if is_enum_type(named):
        assert isinstance(named, GraphQLEnumType)
        assert value in named.values, f"{where}: {value!r} is not a value of {name}"
    elif name == "Int":
        assert type(value) is int, f"{where}: {value!r} not Int"
        assert -(2**31) <= value < 2**31, f"{where}: {value!r} not Int"
    elif name == "Float":
        assert type(value) in (int, float), f"{where}: {value!r} not Float"
        assert math.isfinite(value), f"{where}: {value!r} not Float"
    elif name == "Boolean":
        assert type(value) is bool, f"{where}: {value!r} not Boolean"
    elif name in ("String", "ID"):
        assert type(value) is str, f"{where}: {value!r} not {name}"
    elif name == "DateTime":
        parse_datetime(value)
    elif name == "Date":
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", value), f"{where}: {value!r} not a Date"
    elif is_abstract_type(named) or is_object_type(named):
        assert isinstance(value, dict), f"{where}: {value!r} is not an object"
        obj = named
        if is_abstract_type(named):
            possible = {t.name: t for t in schema.get_possible_types(named)}  # type: ignore[arg-type]
            assert value.get("__typename") in possible, f"{where}: __typename {value!r}"
            obj = possible[value["__typename"]]
            prefix = obj.name + "_"
            value = {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in value.items()}
        if depth > 3:
            return
        assert isinstance(obj, GraphQLObjectType)
        assert set(value) - {"__typename"} == set(obj.fields), f"{where}: keys {sorted(value)}"
        for fname, fdef in obj.fields.items():
            check(schema, value[fname], fdef.type, f"{where}.{fname}", depth + 1)


# -- reading every list -------------------------------------------------------------------------


def list_document(schema: GraphQLSchema, lf: ListField) -> tuple[str, Any]:
    """A document paging `lf` PAGE rows at a time, and the type of one row."""
    query = schema.query_type
    assert query is not None
    fdef = query.fields[lf.name]
    p = lf.paging
    args, decls = [], []
    if lf.filter_arg:
        ftype = fdef.args[lf.filter_arg].type
        decls.append(f"$f: {ftype}")
        args.append(f"{lf.filter_arg}: $f")
    for role, name in (("size", p.size), ("offset", p.offset), ("page", p.page)):
        if name:
            decls.append(f"${role}: Int")
            args.append(f"{name}: ${role}")
    if p.after:
        decls.append(f"$after: {fdef.args[p.after].type}")
        args.append(f"{p.after}: $after")
    head = f"query ({', '.join(decls)})" if decls else "query"
    call = f"{lf.name}({', '.join(args)})" if args else lf.name
    conn = lf.connection
    if conn is None:
        row_type = get_named_type(fdef.type)
        body = selection(schema, row_type)
    else:
        conn_type = get_named_type(fdef.type)
        assert isinstance(conn_type, GraphQLObjectType)
        if conn.edges:
            edge_type = get_named_type(conn_type.fields[conn.edges].type)
            assert isinstance(edge_type, GraphQLObjectType)
            row_type = get_named_type(edge_type.fields["node"].type)
            body = f"{{ {conn.edges} {{ cursor node {selection(schema, row_type)} }} "
        else:
            assert conn.nodes is not None
            row_type = get_named_type(conn_type.fields[conn.nodes].type)
            body = f"{{ {conn.nodes} {selection(schema, row_type)} "
        body += f"{conn.page_info} {{ hasNextPage endCursor }} }}"
    return f"{head} {{ {call} {body} }}", row_type


def read_all(box: Sandbox, path: Path, lf: ListField, team: str) -> list[dict[str, Any]]:
    schema = reference_schema(path)
    document, row_type = list_document(schema, lf)
    p = lf.paging
    variables: dict[str, Any] = {}
    if lf.filter_arg:
        variables["f"] = {"teamId": team} if lf.filter_team else {}
    if p.size:
        variables["size"] = PAGE if p.kind != "limit" else 1000
    rows: list[dict[str, Any]] = []
    for page in range(1, 200):
        if p.offset:
            variables["offset"] = len(rows)
        if p.page:
            variables["page"] = page - 1 + p.page_base
        result = run_both(box, document, variables, team)
        assert "errors" not in result, result["errors"][:2]
        data = result["data"][lf.name]
        conn = lf.connection
        if conn is None:
            got = data
        elif conn.edges:
            got = [e["node"] for e in data[conn.edges]]
        else:
            got = data[conn.nodes]
        for i, row in enumerate(got):
            check(schema, row, GraphQLNonNull(row_type), f"{lf.name}[{len(rows) + i}]")
        rows += got
        if p.kind in ("limit", "none"):
            break
        if conn is not None:
            info = data[conn.page_info]
            if not info["hasNextPage"]:
                break
            variables["after"] = info["endCursor"]
        elif not got:
            break
        elif p.after:
            variables["after"] = got[-1]["cursor"]
    return rows


@pytest.mark.parametrize("path", VARIANTS, ids=lambda p: p.stem)
def test_every_list_serves_every_row_once_with_values_valid_for_the_file(path: Path) -> None:
    box = make(path)
    team, other = box.keys["a"], box.keys["b"]
    export = box.store.export()
    assert box.model.lists, "no list field found"
    for lf in box.model.lists.values():
        rows = read_all(box, path, lf, team)
        ids = [r["id"] for r in rows]
        expected = [r["id"] for r in export[lf.entity] if r["teamId"] == team]
        assert expected, f"{lf.entity}: no rows seeded"
        assert sorted(ids) == sorted(expected), lf.name
        assert len(set(ids)) == len(ids)
        assert not {r["id"] for r in export[lf.entity] if r["teamId"] == other} & set(ids)
    schema = reference_schema(path)
    if box.model.team_field:
        query = schema.query_type
        assert query is not None
        team_type = query.fields[box.model.team_field].type
        result = run(box, f"{{ team {selection(schema, team_type)} }}", {}, team)
        assert "errors" not in result
        check(schema, result["data"]["team"], team_type, "team")


@pytest.mark.parametrize("path", VARIANTS, ids=lambda p: p.stem)
def test_a_list_without_a_filter_or_with_another_teams_filter(path: Path) -> None:
    box = make(path)
    team, other = box.keys["a"], box.keys["b"]
    schema = reference_schema(path)
    for lf in box.model.lists.values():
        query = schema.query_type
        assert query is not None
        fdef = query.fields[lf.name]
        document, _ = list_document(schema, lf)
        required = lf.filter_arg and isinstance(fdef.args[lf.filter_arg].type, GraphQLNonNull)
        if not required and lf.filter_arg:
            result = run(box, document, {}, team)  # $f omitted: no filter at all
            assert "errors" not in result, result
        if lf.filter_team:
            refused = run(box, document, {"f": {"teamId": other}, "size": PAGE}, team)
            assert refused["data"] is None
            assert refused["errors"][0]["message"] == "You are not authorized to access this data"


# -- mutations ----------------------------------------------------------------------------------


def input_value(box: Sandbox, team: str, itype: Any, *, required_only: bool) -> dict[str, Any]:
    named = get_named_type(itype)
    assert isinstance(named, GraphQLInputObjectType)
    out: dict[str, Any] = {}
    export = box.store.export()
    for name, f in named.fields.items():
        if required_only and not isinstance(f.type, GraphQLNonNull):
            continue
        inner = get_named_type(f.type)
        entity = name[:-3] if name.endswith("Ids") else name[:-2] if name.endswith("Id") else ""
        pool = [r["id"] for r in export.get(entity, []) if r["teamId"] == team]
        if pool:
            out[name] = [pool[0]] if is_list_type(getattr(f.type, "of_type", f.type)) else pool[0]
        elif is_enum_type(inner):
            out[name] = sorted(inner.values)[0]  # type: ignore[attr-defined]
        elif is_input_object_type(inner):
            out[name] = input_value(box, team, inner, required_only=True)
        elif inner.name in ("Int", "Float"):
            out[name] = 7
        elif inner.name == "Boolean":
            out[name] = True
        elif inner.name == "DateTime":
            out[name] = "2026-01-05T10:00:00.000Z"
        elif inner.name == "Date":
            out[name] = "2026-01-05"
        else:
            out[name] = f"test {name}"
    return out


def mutation_document(box: Sandbox, op: MutationOp) -> tuple[str, list[tuple[str, Any]]]:
    fdef = op_field(box.schema, op)
    decls = [f"${n}: {a.type}" for n, a in fdef.args.items()]
    call = f"{op.name}({', '.join(f'{n}: ${n}' for n in fdef.args)})"
    named = get_named_type(fdef.type)
    if is_leaf_type(named):
        pick = ""
    elif named.name == box.model.entities[op.entity].type_name:
        pick = "{ id }"
    else:
        leaves = [n for n, f in named.fields.items() if is_leaf_type(get_named_type(f.type))]  # type: ignore[attr-defined]
        pick = "{ " + " ".join(leaves) + " }"
    inner = f"{op.namespace} {{ {call} {pick} }}" if op.namespace else f"{call} {pick}"
    return f"mutation ({', '.join(decls)}) {{ {inner} }}", list(fdef.args.items())


def answer_id(data: Any) -> str | None:
    while isinstance(data, dict):
        for key in ("recordId", "id"):
            if isinstance(data.get(key), str):
                return data[key]
        if len(data) != 1:
            return None
        data = next(iter(data.values()))
    return data if isinstance(data, str) else None


@pytest.mark.parametrize("path", VARIANTS, ids=lambda p: p.stem)
def test_create_update_delete_round_trip_in_the_files_layout(path: Path) -> None:
    box = make(path)
    team = box.keys["a"]
    ops = {(o.entity, o.kind): o for o in box.model.mutations}
    mutation = reference_schema(path).mutation_type
    assert mutation is not None
    assert ops, "no mutation found"
    writable = {e for e, k in ops if k == "create"}
    assert {e for e, _ in ops} == writable
    assert all((e, k) in ops for e in writable for k in ("update", "delete"))
    for entity in sorted(writable):
        model = box.model.entities[entity]
        before = len(box.store.export()[entity])
        document, args = mutation_document(box, ops[(entity, "create")])
        ((arg, adef),) = args
        values = input_value(box, team, adef.type, required_only=True)
        created = run(box, document, {arg: values}, team)
        assert "errors" not in created, (entity, created)
        record_id = answer_id(created["data"])
        assert record_id, created
        rows = {r["id"]: r for r in box.store.export()[entity]}
        assert len(rows) == before + 1
        assert rows[record_id]["teamId"] == team
        obj = model.object_type
        assert obj is not None
        for fname in model.stored_fields:
            check(reference_schema(path), rows[record_id][fname], obj.fields[fname].type, fname)
        update = ops[(entity, "update")]
        ufield = op_field(box.schema, update)
        if update.id_arg:
            values_type = get_named_type(ufield.args[update.values_arg].type)
        else:
            values_type = get_named_type(ufield.args[update.wrapper_arg].type)
            if update.inner:
                values_type = get_named_type(values_type.fields[update.inner].type)  # type: ignore[union-attr]
        text = next(
            f
            for f, d in values_type.fields.items()  # type: ignore[union-attr]
            if get_named_type(d.type).name == "String"
            and f in model.stored_fields
            and f not in model.non_null
        )
        document, args = mutation_document(box, update)
        change = {text: "changed by the test"}
        if update.id_arg:
            variables = {update.id_arg: record_id, update.values_arg: change}
        elif update.inner:
            variables = {update.wrapper_arg: {"id": record_id, update.inner: change}}
        else:
            variables = {update.wrapper_arg: {"id": record_id, **change}}
        updated = run(box, document, variables, team)
        assert "errors" not in updated, (entity, updated)
        assert answer_id(updated["data"]) == record_id
        row = next(r for r in box.store.export()[entity] if r["id"] == record_id)
        assert row[text] == "changed by the test"
        delete = ops[(entity, "delete")]
        document, args = mutation_document(box, delete)
        variables = (
            {delete.id_arg: record_id} if delete.id_arg else {delete.wrapper_arg: {"id": record_id}}
        )
        deleted = run(box, document, variables, team)
        assert "errors" not in deleted, (entity, deleted)
        assert record_id not in {r["id"] for r in box.store.export()[entity]}


def test_serve_schema_starts_a_variant_over_http(sandbox_factory) -> None:
    path = VARIANT_DIR / "shapes" / "connection_edges.gql"
    box = sandbox_factory(companies=5, rate_limit=0, schema=path)
    query = """query ($f: FilterManyCompanyInput!) { companyList(filter: $f, first: 3) {
      edges { cursor node { id } } pageInfo { hasNextPage } } }"""
    answer = requests.post(
        box.url,
        json={"query": query, "variables": {"f": {"teamId": box.team_id}}},
        headers={"X-API-KEY": box.api_key},
        timeout=30,
    ).json()
    page = answer["data"]["companyList"]
    assert len(page["edges"]) == 3
    assert page["pageInfo"]["hasNextPage"] is True
    companies = [r for r in box.export()["company"] if r["teamId"] == box.team_id]
    assert [e["node"]["id"] for e in page["edges"]] == [r["id"] for r in companies[:3]]


def test_a_file_without_an_entity_or_with_other_types_still_serves(tmp_path: Path) -> None:
    sdl = BUNDLED.read_text(encoding="utf-8")
    start = sdl.index("): [Company!]!\n") + len("): [Company!]!\n")
    end = sdl.index('  """\n  Mandators')
    without_contacts = sdl[:start] + "\n" + sdl[end:]
    without_contacts = without_contacts.replace(
        '"CompanyContact mutations. [reconstruction]"\n  companyContact: CompanyContactMutation\n',
        "",
    )
    path = tmp_path / "no_contacts.gql"
    path.write_text(without_contacts.replace("postalCode: String\n", "postalCode: Int\n", 1))
    box = make(path)
    assert "companyContact" not in box.model.entities
    rows = read_all(box, path, box.model.lists["companyList"], box.keys["a"])
    assert rows
    assert all(isinstance(r["postalCode"], int) for r in rows)  # "79000" served as 79000
    answer = run(
        box,
        "query ($f: FilterManyCompanyInput!) { companyList(filter: $f) { id } }",
        {"f": {"teamId": box.keys["a"], "updatedSince": "2020-01-01T00:00:00Z"}},
        box.keys["a"],
    )
    assert len(answer["data"]["companyList"]) == len(rows)


def test_a_filter_field_the_sandbox_cannot_apply_is_an_error(tmp_path: Path) -> None:
    sdl = BUNDLED.read_text(encoding="utf-8").replace(
        "input FilterManyMandatorInput {\n", "input FilterManyMandatorInput {\n  nameLike: String\n"
    )
    path = tmp_path / "odd_filter.gql"
    path.write_text(sdl)
    box = make(path)
    team = box.keys["a"]
    answer = run(
        box,
        "query ($f: FilterManyMandatorInput!) { mandatorList(filter: $f) { id } }",
        {"f": {"teamId": team, "nameLike": "x"}},
        team,
    )
    assert answer["data"] is None
    assert "cannot filter mandator rows on 'nameLike'" in answer["errors"][0]["message"]
