"""Hostile input corpus for the target: tests/reliability/hostile/*.singer, expectations in
hostile/expectations.json.

Row cases: each file holds valid rows around one bad (or hostile but valid) row. The bad row is
rejected in the rejects file naming its stream, its key and the field; every other row lands
with exactly its values; the documents sent hold no row value (values travel in variables).
Protocol cases: a clear fatal error, exit code non-zero, no row half-written.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from moovago_sandbox.testing import SandboxHandle, start_sandbox
from target_moovago.target import TargetMoovago
from tests.harness.runs import SECRET, run_target, target_config

HOSTILE = Path(__file__).parent / "hostile"
EXPECTATIONS: dict[str, dict[str, Any]] = json.loads(
    (HOSTILE / "expectations.json").read_text(encoding="utf-8")
)["cases"]
ROW_CASES = [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=case["xfail"]))
    if case.get("xfail")
    else name
    for name, case in sorted(EXPECTATIONS.items())
    if case["kind"] == "rows"
]
FATAL_CASES = [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=case["xfail"]))
    if case.get("xfail")
    else name
    for name, case in sorted(EXPECTATIONS.items())
    if case["kind"] == "fatal"
]
FATAL_NAMES = sorted(name for name, case in EXPECTATIONS.items() if case["kind"] == "fatal")
COMPANY_OUTPUT = {"customerCode", "name", "city", "postalCode", "status", "note", "coordinates"}


def test_the_corpus_is_complete():
    files = {p.name for p in HOSTILE.glob("*.singer")}
    assert files == set(EXPECTATIONS)
    assert len(files) >= 50


@pytest.fixture(scope="module")
def box() -> Iterator[SandboxHandle]:
    with start_sandbox(companies=5, api_keys=[SECRET], rate_limit=0) as handle:
        yield handle


def _messages(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _matches(reject: dict[str, Any], expected: dict[str, Any]) -> bool:
    """Same stream and row; the field as expected or a part of it (`coordinates.latitude`)."""
    field = reject["field"] or ""
    return (
        reject["stream"] == expected["stream"]
        and expected["row"] in str(reject["row_key"])
        and (
            expected["field"] is None
            or field == expected["field"]
            or field.startswith(expected["field"] + ".")
        )
    )


def _is_bad(record: dict[str, Any]) -> bool:
    """The corpus names the one hostile row of each file: `H-...-BAD` or `bad-...@`."""
    return str(record.get("customerCode", "")).endswith("-BAD") or str(
        record.get("email", "")
    ).startswith("bad-")


@pytest.mark.parametrize("case", ROW_CASES)
def test_row_case(case, box, tmp_path, capsys, caplog):
    expected = EXPECTATIONS[case]
    messages = _messages(HOSTILE / case)
    config = target_config(box, tmp_path, max_requests_per_second=5)
    out = io.StringIO()
    with caplog.at_level(logging.DEBUG), contextlib.redirect_stdout(out):
        TargetMoovago(config=config).listen(io.StringIO((HOSTILE / case).read_text("utf-8")))
    rejects_path = Path(config["rejects_path"])
    rejects = (
        [json.loads(line) for line in rejects_path.read_text("utf-8").splitlines()]
        if rejects_path.exists()
        else []
    )
    # 1. exactly the expected rejections, each naming stream, row and field, with a reason
    assert len(rejects) == len(expected["rejects"]), rejects
    for want in expected["rejects"]:
        assert any(_matches(r, want) for r in rejects), (want, rejects)
    for reject in rejects:
        assert reject["reason"].strip()
    # 2. every other row landed with exactly its values
    bad_rejected = bool(expected["rejects"])
    export = box.export()
    companies = {r.get("customerCode"): r for r in export["company"] if r["teamId"] == box.team_id}
    contacts = {r.get("email"): r for r in export["companyContact"] if r["teamId"] == box.team_id}
    for message in messages:
        if message.get("type") != "RECORD":
            continue
        record = message["record"]
        if message["stream"] == "company":
            if bad_rejected and _is_bad(record):
                assert record["customerCode"] not in companies
                continue
            remote = companies[record["customerCode"]]
            # "lands": what a hostile but valid row's value becomes ('' in an enum: no value)
            lands = expected.get("lands", {}) if _is_bad(record) else {}
            for name, value in record.items():
                if name in COMPANY_OUTPUT:
                    want = lands.get(name, value)
                    assert remote.get(name) == want, (name, remote.get(name), want)
        else:
            if bad_rejected and _is_bad(record):
                assert record["email"] not in contacts
                continue
            remote = contacts[record["email"]]
            assert remote["lastName"] == record["lastName"]
            parent = companies[record["companyCustomerCode"]]
            assert remote["companyId"] == parent["id"]
    # 3. row values never in a document: mutations carry them in variables only
    values = {s for m in messages if m.get("type") == "RECORD" for s in _strings(m["record"])}
    values = {v for v in values if len(v.strip()) >= 3}
    for request in box.requests():
        if (request.get("operationName") or "").startswith("TargetMoovago"):
            leaked = [v for v in values if v in request["query"]]
            assert leaked == [], f"row values in the document text: {leaked[:3]}"
    # 4. the key appears nowhere
    captured = capsys.readouterr()
    summary = Path(config["summary_path"]).read_text("utf-8")
    for text in (out.getvalue(), captured.out, captured.err, caplog.text, summary):
        assert SECRET not in text
    if rejects_path.exists():
        assert SECRET not in rejects_path.read_text("utf-8")


@pytest.mark.parametrize("case", FATAL_CASES)
def test_protocol_case_is_a_clear_fatal_error(case, box, tmp_path):
    expected = EXPECTATIONS[case]
    config = target_config(box, tmp_path, **expected.get("config", {}))
    before = box.export()["company"]
    run = run_target(config, (HOSTILE / case).read_text("utf-8"), tmp_path, timeout=60)
    assert run.returncode not in (0, None), "a broken protocol must fail the run"
    assert expected["message"].lower() in run.last_stderr_line().lower()
    assert box.export()["company"] == before, "rows were written from a broken input"


@pytest.mark.parametrize("case", FATAL_NAMES)
def test_protocol_case_has_no_traceback_spam(case, box, tmp_path):
    config = target_config(box, tmp_path, **EXPECTATIONS[case].get("config", {}))
    run = run_target(config, (HOSTILE / case).read_text("utf-8"), tmp_path)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
