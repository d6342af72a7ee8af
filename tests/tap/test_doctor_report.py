"""The tap acts on what `moovago-schema doctor` measured (setting `doctor_report`).

Each test runs the doctor first against a sandbox that breaks an assumption, writes its JSON
report, and runs the tap with that report: a page_size above the measured cap and offset paging
through an unstable order are refused in one line (exit 1); a clock offset over 60 s widens the
incremental start. A report of another api_url is ignored with a warning.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from moovago_api.errors import ConfigError
from moovago_api.wire import parse_datetime
from moovago_schema.cli import main as schema_main
from tap_moovago.doctor_report import load_doctor_report, widened_start
from tests.tap.helpers import error_lines, run_cli, tap_config


def doctor_report(
    box: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], **settings: Any
) -> Path:
    """Run the doctor on `box`; the path of the JSON report it wrote."""
    config = {"api_url": box.url, "api_key": box.api_key, "page_size": 10, **settings}
    config_path = tmp_path / "doctor-config.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    schema_main(["doctor", "--config", str(config_path), "--format", "json"])
    out = capsys.readouterr().out
    report = tmp_path / "doctor.json"
    report.write_text(out, encoding="utf-8")
    return report


@pytest.mark.slow
def test_a_page_size_above_the_measured_cap_is_refused(
    sandbox_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    box = sandbox_factory(companies=30, extra_args=["--max-page-size", "8"])
    report = doctor_report(box, tmp_path, capsys)
    assert json.loads(report.read_text())["measured"]["page_cap"] == 8
    config = tap_config(box, page_size=10, doctor_report=str(report))
    result = run_cli([], config, tmp_path)
    assert result.returncode == 1
    lines = error_lines(result.stderr)
    assert any(
        "page_size 10 is above the page cap of 8 rows" in line
        and "set page_size to 8 or less" in line
        and str(report) in line
        for line in lines
    ), result.stderr
    assert "Traceback" not in result.stderr
    assert '"type": "RECORD"' not in result.stdout
    # Within the cap the same report lets the tap run.
    config = tap_config(box, page_size=8, doctor_report=str(report))
    assert run_cli([], config, tmp_path).returncode == 0


@pytest.mark.slow
def test_offset_paging_through_an_unstable_order_is_refused(
    sandbox_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    box = sandbox_factory(companies=30, extra_args=["--unstable-order"])
    report = doctor_report(box, tmp_path, capsys)
    assert json.loads(report.read_text())["measured"]["stable_order"] is False
    result = run_cli([], tap_config(box, page_size=10, doctor_report=str(report)), tmp_path)
    assert result.returncode == 1
    assert any(
        "with no sort argument" in line and "the list order is not stable" in line
        for line in error_lines(result.stderr)
    ), result.stderr
    assert '"type": "RECORD"' not in result.stdout


@pytest.mark.slow
def test_a_measured_clock_offset_widens_the_incremental_start(
    sandbox_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    box = sandbox_factory(companies=5, extra_args=["--clock-offset", "-3600"])
    report = doctor_report(box, tmp_path, capsys)
    offset = json.loads(report.read_text())["measured"]["clock_offset_seconds"]
    assert offset is not None
    assert abs(offset + 3600) < 30
    config = tap_config(
        box, start_date="2026-06-01T12:00:00Z", doctor_report=str(report), page_size=10
    )
    result = run_cli([], config, tmp_path)
    assert result.returncode == 0, result.stderr
    since = [line for line in result.stderr.splitlines() if "rows updated since" in line]
    assert since, result.stderr
    expected = parse_datetime("2026-06-01T12:00:00Z").timestamp() - abs(offset)
    for line in since:
        moved = parse_datetime(line.rsplit("since ", 1)[1].strip()).timestamp()
        assert abs(moved - expected) < 1, line


def _report(tmp_path: Path, **measured: Any) -> Path:
    path = tmp_path / "report.json"
    body = {
        "settings": {"api_url": "http://127.0.0.1:9/graphql"},
        "measured": {"at": "2026-12-01T10:00:00.000Z", **measured},
    }
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


def test_a_report_of_another_api_url_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _report(tmp_path, page_cap=8)
    with caplog.at_level(logging.WARNING):
        assert load_doctor_report(path, api_url="http://127.0.0.1:10/graphql") is None
    assert "not at api_url http://127.0.0.1:10/graphql: ignored" in caplog.text
    same = load_doctor_report(path, api_url="http://127.0.0.1:9/graphql/")
    assert same is not None
    assert same.page_cap == 8


@pytest.mark.parametrize(
    ("measured", "field"),
    [
        ({"page_cap": "8"}, "measured.page_cap"),
        ({"page_cap": 0}, "measured.page_cap"),
        ({"stable_order": "no"}, "measured.stable_order"),
        ({"clock_offset_seconds": True}, "measured.clock_offset_seconds"),
        ({"at": "yesterday"}, "measured.at"),
    ],
)
def test_a_report_that_is_not_a_doctor_report_is_one_error(
    tmp_path: Path, measured: dict[str, Any], field: str
) -> None:
    path = _report(tmp_path, **measured)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_doctor_report(path, api_url="http://127.0.0.1:9/graphql")
    path.write_text("not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not JSON"):
        load_doctor_report(path, api_url="http://127.0.0.1:9/graphql")


def test_a_small_clock_offset_leaves_the_start_alone(tmp_path: Path) -> None:
    start = parse_datetime("2026-06-01T12:00:00Z")
    small = load_doctor_report(
        _report(tmp_path, clock_offset_seconds=59.0), api_url="http://127.0.0.1:9/graphql"
    )
    assert widened_start(small, start) == start
    large = load_doctor_report(
        _report(tmp_path, clock_offset_seconds=61.0), api_url="http://127.0.0.1:9/graphql"
    )
    moved = widened_start(large, start)
    assert moved is not None
    assert (start - moved).total_seconds() == 61.0
