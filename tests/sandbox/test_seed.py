"""Seed data: deterministic, French, well-formed ids and timestamps; the SQLite file option."""

from __future__ import annotations

import re

from moovago_sandbox import seed
from moovago_sandbox.app import Sandbox, SandboxConfig
from moovago_sandbox.ratelimit import PeakMeter, RollingLimiter


def export(seed: int, companies: int = 15, db: str = ":memory:") -> dict:
    box = Sandbox(
        SandboxConfig(seed=seed, companies=companies, api_keys=[("a", None), ("b", "XYZ")], db=db)
    )
    return box.store.export()


def test_same_seed_gives_an_identical_export() -> None:
    first, second = export(7), export(7)
    assert first == second
    assert export(8)["company"] != first["company"]


def test_the_data_looks_french_and_well_formed() -> None:
    data = export(42, companies=40)
    companies = [c for c in data["company"] if c["teamId"] != "XYZ"]
    assert len(companies) == 40
    assert len([c for c in data["company"] if c["teamId"] == "XYZ"]) == 5
    for company in companies:
        assert re.fullmatch(r"\d{5}", company["postalCode"])
        assert company["zipCode"] == company["postalCode"]
        assert re.fullmatch(r"0[1-5]( \d\d){4}", company["phone"]), company["phone"]
        assert 41 < company["coordinates"]["latitude"] < 51.5
        assert -5.5 < company["coordinates"]["longitude"] < 10
        assert company["country"] == "FR"
        assert company["status"] in ("CLIENT", "PROSPECT", "SUSPECT")
        if company["customerCode"] is not None:
            assert re.fullmatch(r"CLI-\d{6}", company["customerCode"])
    assert any(c["customerCode"] for c in companies)
    assert len({m["id"] for m in data["mandator"] if m["teamId"] != "XYZ"}) == 10
    assert len(data["companyContact"]) >= 20
    assert data["turnover"]
    for rows in data.values():
        ids = [r["id"] for r in rows]
        assert ids == sorted(ids)
    for name in ("company", "companyContact", "mandator", "turnover"):
        for row in data[name]:
            assert row["id"] == "XYZ" or re.fullmatch(r"[0-9a-f]{24}", row["id"])
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", row["createdAt"])
            assert row["createdAt"] <= row["updatedAt"]
    by_creation = sorted(data["company"], key=lambda r: (r["createdAt"], r["id"]))
    assert [r["id"] for r in by_creation] == sorted(r["id"] for r in data["company"])


def test_a_sqlite_file_keeps_the_rows_between_runs(tmp_path) -> None:
    db = str(tmp_path / "sandbox.sqlite3")
    box = Sandbox(SandboxConfig(seed=3, companies=4, db=db))
    team = box.keys["sandbox-key"]
    box.store.create("company", team, {"name": "Persistante"}, owner_id=None)
    again = Sandbox(SandboxConfig(seed=3, companies=4, db=db))
    names = [c["name"] for c in again.store.export()["company"]]
    assert "Persistante" in names
    created = again.store.create("company", team, {"name": "Suivante"}, owner_id=None)
    assert created["id"] > max(
        c["id"] for c in again.store.export()["company"] if c["name"] != "Suivante"
    )


def test_rolling_limiter_allows_n_in_any_window() -> None:
    now = [0.0]
    limiter = RollingLimiter(5, clock=lambda: now[0])
    accepted = []
    for step in range(40):
        now[0] = step * 0.1
        if limiter.acquire("k") is None:
            accepted.append(now[0])
    assert all(sum(1 for t in accepted if s <= t < s + 1.0) <= 5 for s in accepted)
    assert len(accepted) == 20  # 5 per second over 4 seconds
    now[0] = 10.0
    assert RollingLimiter(0, clock=lambda: now[0]).acquire("k") is None


def test_peak_meter_counts_the_busiest_rolling_second() -> None:
    now = [0.0]
    meter = PeakMeter(clock=lambda: now[0])
    for t in (0.0, 0.5, 0.9, 1.2, 1.3, 1.35, 3.0):
        now[0] = t
        meter.hit()
    assert meter.peak == 5  # 0.5, 0.9, 1.2, 1.3, 1.35


def test_chunked_generation_gives_the_same_rows(monkeypatch) -> None:
    whole = export(5, companies=11)
    monkeypatch.setattr(seed, "CHUNK", 4)  # 11 companies: chunks of 4, 4, 3
    assert export(5, companies=11) == whole
