"""The monthly close: site from the registry + readings from the series store → the same
case (same input hash, same cents) as the case file they came from; interpolation at
boundaries, refusals that store nothing, and a held run closed again as a new version."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cloud.apportion.case.loading import load_case
from cloud.apportion.close import CloseRefused, close_period
from cloud.apportion.close_readings import boundary_days
from cloud.apportion.configuration import import_site
from cloud.apportion.engine import apportion
from cloud.apportion.errors import CaseError
from cloud.apportion.models import ApportionRun
from cloud.apportion.runs import line_records, post_run, review_run
from cloud.apportion.site import CASE_ONLY, DEFAULT_QUANTITIES, parse_site
from cloud.apportion.site_export import stored_site
from cloud.registry.db import open_registry
from cloud.series.base import SeriesPoint
from cloud.series.sqlite import SqliteSeriesStore

CASES = Path(__file__).resolve().parents[1] / "cases"
ZONE = ZoneInfo("Asia/Shanghai")


def clock() -> datetime:
    return datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture()
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    made = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    yield made
    made.kw["bind"].dispose()


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[SqliteSeriesStore]:
    made = SqliteSeriesStore(tmp_path / "series.sqlite")
    yield made
    made.close()


def ns(at: datetime) -> int:
    return int(at.timestamp() * 1e9)


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=ZONE)


def setup(
    sessions: sessionmaker[Session], store: SqliteSeriesStore, name: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Import the case's site half; store its readings as gateway points at local midnight."""
    raw = yaml.safe_load((CASES / f"{name}.yaml").read_text())
    site = {k: v for k, v in raw.items() if k not in CASE_ONLY}
    site.setdefault("site", "site")
    with sessions.begin() as s:
        import_site(s, parse_site(yaml.safe_dump(site)), by="ops", clock=clock)
    registers = site.get("registers") or ["total"]
    multiplier = {m["id"]: m.get("multiplier", 1) for m in site["meters"]}
    points = []
    for meter, series in raw["readings"].items():
        for day, value in series.items():
            values = value if isinstance(value, dict) else {registers[0]: value}
            for register, v in values.items():
                if register == "quality":
                    continue
                points.append(
                    SeriesPoint(
                        site["site"],
                        meter,
                        DEFAULT_QUANTITIES[register],
                        ns(midnight(day)),
                        float(v) * _in_force(multiplier[meter], day),
                        "good",
                        "kWh",
                    )
                )
    store.write(points)
    return site, raw


def _in_force(multiplier: Any, day: date) -> float:
    """The multiplier on ``day``: stored points are primary-side, as gateways send them."""
    if isinstance(multiplier, list):
        steps = [x["value"] for x in multiplier if x["from"] <= day]
        return float(steps[-1] if steps else multiplier[0]["value"])
    return float(multiplier)


@pytest.mark.parametrize(
    "name", ["basic", "move_in", "replacement", "negative_residual", "rollover"]
)
def test_the_close_computes_the_same_case_as_the_case_file(
    sessions: sessionmaker[Session], store: SqliteSeriesStore, name: str
) -> None:
    site, raw = setup(sessions, store, name)
    case = load_case(CASES / f"{name}.yaml")
    with sessions.begin() as s:
        closed = close_period(
            s,
            store,
            site_id=site["site"],
            start=raw["period"]["start"],
            end=raw["period"]["end"],
            bill=raw["bill"],
            by="fin-a",
            clock=clock,
        )
        assert closed.case.input_hash() == case.input_hash()
        expected = line_records(apportion(case.to_engine_inputs()))
        assert [(r.key, r.cents) for r in line_records(closed.result)] == [
            (r.key, r.cents) for r in expected
        ]
        assert closed.run.status == "draft" and closed.run.version == 1
        assert closed.run.held == (name == "negative_residual")


def test_a_boundary_between_two_points_is_interpolated_and_marked(
    sessions: sessionmaker[Session], store: SqliteSeriesStore
) -> None:
    _site, raw = setup(sessions, store, "basic")
    start = raw["period"]["start"]
    # move M0 (× 10) off midnight: 9990 kWh at 23:00 the day before, 10010 at 01:00
    with store._lock:  # the test rewrites one stored point in place
        store._db.execute(
            "DELETE FROM points WHERE meter = 'M0' AND time_ns = ?", (ns(midnight(start)),)
        )
        store._db.commit()
    before, after = midnight(start) - timedelta(hours=1), midnight(start) + timedelta(hours=1)
    store.write(
        [
            SeriesPoint("park-a", "M0", "energy_import", ns(before), 9990.0, "good", "kWh"),
            SeriesPoint("park-a", "M0", "energy_import", ns(after), 10010.0, "good", "kWh"),
        ]
    )
    with sessions.begin() as s:
        closed = close_period(
            s,
            store,
            site_id="park-a",
            start=start,
            end=raw["period"]["end"],
            bill=raw["bill"],
            by="fin-a",
            clock=clock,
        )
    reading = closed.case.readings["M0"][start]
    assert reading.values["total"] == 1000 and reading.quality == "estimated"
    assert reading.method == "interpolated" and closed.interpolated == 1


def _runs(sessions: sessionmaker[Session]) -> int:
    with sessions() as s:
        return int(s.scalar(select(func.count()).select_from(ApportionRun)) or 0)


@pytest.mark.parametrize(
    ("change", "error", "expected"),
    [
        (lambda k: k.update(site_id="nowhere"), CloseRefused, "no site file imported"),
        (lambda k: k.update(end=k["start"]), CloseRefused, "must be after"),
        (lambda k: k.update(end=k["start"] + timedelta(days=400)), CloseRefused, "at most 366"),
        (lambda k: k["bill"]["amounts"].update(T1=5), CaseError, "bill: amounts for"),
        (lambda k: k["bill"].update(total=7), CaseError, "bill.total"),
        (lambda k: k["bill"].pop("invoice"), CaseError, "bill.invoice"),
    ],
)
def test_bad_close_input_is_refused_naming_the_item_and_stores_nothing(
    sessions: sessionmaker[Session],
    store: SqliteSeriesStore,
    change: Any,
    error: type[Exception],
    expected: str,
) -> None:
    site, raw = setup(sessions, store, "basic")
    kwargs: dict[str, Any] = {
        "site_id": site["site"],
        "start": raw["period"]["start"],
        "end": raw["period"]["end"],
        "bill": dict(raw["bill"], amounts=dict(raw["bill"]["amounts"])),
    }
    change(kwargs)
    with pytest.raises(error, match=expected), sessions.begin() as s:
        close_period(s, store, by="fin-a", clock=clock, **kwargs)
    assert _runs(sessions) == 0


def test_a_held_run_fixed_by_a_manual_reading_closes_again_as_a_new_version(
    sessions: sessionmaker[Session], store: SqliteSeriesStore
) -> None:
    _site, raw = setup(sessions, store, "basic")
    start, end = raw["period"]["start"], raw["period"]["end"]
    # U2's end reading never arrived: its month is estimated, over the node's limit → held
    with store._lock:
        store._db.execute(
            "DELETE FROM points WHERE meter = 'U2' AND time_ns = ?", (ns(midnight(end)),)
        )
        store._db.commit()
    args: dict[str, Any] = {"site_id": "park-a", "start": start, "end": end, "bill": raw["bill"]}
    with sessions.begin() as s:
        held = close_period(s, store, by="fin-a", clock=clock, **args)
        assert held.run.held and ("U2", end.isoformat()) in held.missing
        held_id = held.run.id
    # the manual reading (人工抄表), then close again
    value = raw["readings"]["U2"][end]
    store.write(
        [
            SeriesPoint(
                "park-a", "U2", "energy_import", ns(midnight(end)), float(value), "good", "kWh"
            )
        ]
    )
    with sessions.begin() as s:
        again = close_period(s, store, by="fin-a", clock=clock, **args)
        assert not again.run.held
        assert (again.run.version, again.run.supersedes_id) == (2, held_id)
        old = s.get(ApportionRun, held_id)
        assert old is not None and old.status == "void" and again.run.id in (old.void_reason or "")


def test_a_posted_period_is_not_closed_again(
    sessions: sessionmaker[Session], store: SqliteSeriesStore
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from cloud.apportion.runs import approve_run

    _site, raw = setup(sessions, store, "basic")
    args: dict[str, Any] = {
        "site_id": "park-a",
        "start": raw["period"]["start"],
        "end": raw["period"]["end"],
        "bill": raw["bill"],
    }
    with sessions.begin() as s:
        run_id = close_period(s, store, by="fin-a", clock=clock, **args).run.id
        review_run(s, run_id, by="fin-a", clock=clock)
        approve_run(s, run_id, by="fin-b", clock=clock)
        post_run(s, run_id, by="fin-b", key=Ed25519PrivateKey.generate(), clock=clock)
    with pytest.raises(CloseRefused, match="posted already"), sessions.begin() as s:
        close_period(s, store, by="fin-a", clock=clock, **args)


def test_boundary_days_are_the_engine_cuts_inside_the_period(
    sessions: sessionmaker[Session], store: SqliteSeriesStore
) -> None:
    setup(sessions, store, "move_in")
    with sessions() as s:
        site = stored_site(s, "site")
    days = boundary_days(site, date(2026, 4, 1), date(2026, 5, 1))
    assert days == [date(2026, 4, 1), date(2026, 4, 11), date(2026, 4, 16), date(2026, 5, 1)]


def test_a_meter_missing_a_reading_takes_its_history_from_the_days_before_the_period(
    sessions: sessionmaker[Session], store: SqliteSeriesStore
) -> None:
    _site, raw = setup(sessions, store, "basic")
    start, end = raw["period"]["start"], raw["period"]["end"]
    with store._lock:  # U2's end reading never arrived
        store._db.execute(
            "DELETE FROM points WHERE meter = 'U2' AND time_ns = ?", (ns(midnight(end)),)
        )
        store._db.commit()
    # 28 days before the period U2 read 60 kWh, at its start 200: (200 − 60) ÷ 28 = 5 kWh/day
    before = midnight(start - timedelta(days=28))
    store.write([SeriesPoint("park-a", "U2", "energy_import", ns(before), 60.0, "good", "kWh")])
    with sessions.begin() as s:
        closed = close_period(
            s, store, site_id="park-a", start=start, end=end, bill=raw["bill"], by="fin-a",
            clock=clock,
        )  # fmt: skip
    assert closed.case.history == {"U2": {"total": Decimal(5)}}
    assert set(closed.case.history) == {m for m, _day in closed.missing}
