"""One contract for every series store: SQLite here, InfluxDB on the real influxd."""

from __future__ import annotations

import math
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.series.base import SeriesPoint, SeriesStore, to_ns
from cloud.series.influx import InfluxSeriesStore
from cloud.series.sqlite import SqliteSeriesStore
from tests.support.factories import T0
from tests.support.influx_v2_adapter import influx_v2_adapter


@pytest.fixture(params=["sqlite", "influxdb", "influxdb-v2-write"])
def store(request, tmp_path) -> Iterator[SeriesStore]:
    """Each store; ``influxdb-v2-write`` writes through influxdb-client's /api/v2/write, via
    the test-only adapter in front of the real influxd 1.6."""
    if request.param == "sqlite":
        s: SeriesStore = SqliteSeriesStore(tmp_path / "series.sqlite")
        yield s
        s.close()
        return
    base_url, db_name = request.getfixturevalue("fresh_influx_db")
    if request.param == "influxdb":
        s = InfluxSeriesStore(base_url, db_name)
        yield s
        s.close()
        return
    with influx_v2_adapter(base_url) as (adapter_url, calls):
        s = InfluxSeriesStore(adapter_url, db_name, token="user:password", write_path="v2")
        yield s
        s.close()
        # Every test writes: all writes went through the v2 API, none straight to /write.
        assert "POST /api/v2/write" in calls and "POST /write" not in calls


def point(
    minute: int,
    value: float | None = 1.5,
    meter: str = "M1",
    quality: str = "good",
    flags: str = "",
) -> SeriesPoint:
    return SeriesPoint(
        site="s1",
        meter=meter,
        quantity="energy_import",
        time_ns=to_ns(T0 + timedelta(minutes=minute)),
        value=value,
        quality=quality,
        unit="kWh",
        gateway="gw1",
        round=f"r{minute}",
        flags=flags,
    )


def read(store: SeriesStore, meter: str = "M1", start: int = 0, end: int = 60):
    return store.read(
        meter,
        "energy_import",
        T0 + timedelta(minutes=start),
        T0 + timedelta(minutes=end),
        site="s1",
    )


def test_points_come_back_in_time_order_within_a_half_open_window(store):
    store.write([point(30, 3.0), point(10, 1.0), point(20, 2.0), point(40, 4.0)])
    frame = read(store, start=10, end=40)
    assert frame.values.tolist() == [1.0, 2.0, 3.0]
    assert frame.times_ns.tolist() == [to_ns(T0 + timedelta(minutes=m)) for m in (10, 20, 30)]


def test_writing_the_same_point_twice_stores_it_once(store):
    store.write([point(5, 12345.67)])
    store.write([point(5, 12345.67)])
    assert read(store).values.tolist() == [12345.67]


def test_a_failed_read_is_stored_with_its_quality_and_no_value(store):
    store.write([point(5, None, quality="timeout")])
    frame = read(store)
    assert math.isnan(frame.values[0]) and frame.quality.tolist() == ["timeout"]


def test_meters_do_not_mix(store):
    store.write([point(1, 1.0, meter="M1"), point(1, 2.0, meter="M2")])
    assert read(store, "M2").values.tolist() == [2.0]


@pytest.mark.parametrize("meter", ["unit 3,b=4", "a'b\\c", 'q"uote'])
def test_ids_with_spaces_commas_equals_and_quotes_round_trip(store, meter):
    store.write([point(1, 7.25, meter=meter), point(1, 9.0, meter="other")])
    assert read(store, meter).values.tolist() == [7.25]


def test_register_values_keep_their_digits(store):
    store.write([point(1, 999999.99), point(2, 0.01)])
    assert read(store).values.tolist() == [999999.99, 0.01]


def test_latest_gives_the_newest_valued_point_before_a_time(store):
    store.write(
        [
            point(1, 10.0),
            point(5, 11.0),
            point(9, None, quality="timeout"),
            point(3, 20.0, meter="M2"),
            point(30, 12.0),
        ]
    )
    latest = store.latest(
        ["M1", "M2", "M3"], "energy_import", to_ns(T0 + timedelta(minutes=10)), site="s1"
    )
    assert latest == {
        "M1": (to_ns(T0 + timedelta(minutes=5)), 11.0),
        "M2": (to_ns(T0 + timedelta(minutes=3)), 20.0),
    }


def test_register_matrix_keeps_the_last_value_per_interval(store):
    # Hourly intervals over [T0, T0 + 3 h); M2 has nothing in the second hour.
    store.write(
        [
            point(5, 1.0),
            point(50, 2.0),
            point(70, 3.0),
            point(170, 4.0),
            point(10, 7.0, meter="M2"),
            point(130, 8.0, meter="M2", quality="estimated"),
            point(140, None, meter="M2", quality="timeout"),
            point(175, 9.0, meter="M1", quality="suspect", flags="spike"),
        ]
    )
    matrix = store.register_matrix(
        ["M2", "M1", "M9"], "energy_import", T0, T0 + timedelta(hours=3), "1h", site="s1"
    )
    assert matrix.meters == ("M2", "M1", "M9")
    np.testing.assert_array_equal(
        matrix.values, [[7.0, np.nan, 8.0], [2.0, 3.0, 9.0], [np.nan, np.nan, np.nan]]
    )
    assert matrix.mask.tolist() == [[True, False, True], [True, True, False], [False, False, False]]


def test_daily_matrix_follows_the_local_calendar(store):
    # Asia/Shanghai midnight is 16:00 UTC the day before: a reading at 15:59 UTC is in the
    # local day before the one that starts at 16:00 UTC.
    day = datetime(2026, 3, 1, 16, tzinfo=UTC)  # 2026-03-02 00:00 local
    minutes = [int((day - T0).total_seconds() // 60) + m for m in (-1, 0, 60 * 24 - 1)]
    store.write([point(minutes[0], 1.0), point(minutes[1], 2.0), point(minutes[2], 3.0)])
    matrix = store.register_matrix(
        ["M1"],
        "energy_import",
        day - timedelta(days=1),
        day + timedelta(days=1),
        "1d",
        tz="Asia/Shanghai",
        site="s1",
    )
    assert matrix.values.tolist() == [[1.0, 3.0]]


def test_consumption_matrix_differences_interval_end_registers(store):
    store.write([point(-5, 100.0), point(55, 101.5), point(115, 101.0), point(175, 104.0)])
    usage = store.consumption_matrix(
        ["M1"], "energy_import", T0, T0 + timedelta(hours=3), "1h", site="s1"
    )
    np.testing.assert_allclose(usage.usage, [[1.5, -0.5, 3.0]])
    assert usage.mask.tolist() == [[True, False, True]]  # a register going down is not usage


def test_influx_setup_creates_the_database_on_a_1x_server(influxdb_server, monkeypatch):
    from typer.testing import CliRunner

    from meterflow.cli import app

    monkeypatch.setenv("MF_INFLUX_URL", influxdb_server.url)
    monkeypatch.setenv("MF_INFLUX_BUCKET", "setup_test")
    runner = CliRunner()
    for _ in range(2):  # idempotent
        out = runner.invoke(app, ["cloud", "influx-setup"])
        assert out.exit_code == 0, out.output
        assert "database 'setup_test' present" in out.output
    store = InfluxSeriesStore(influxdb_server.url, "setup_test")
    store.write([point(1, 3.5)])
    assert read(store).values.tolist() == [3.5]
    store.query('DROP DATABASE "setup_test"')


def test_influx_setup_refuses_a_server_that_is_not_influxdb(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from meterflow.cli import app

    monkeypatch.setenv("MF_INFLUX_URL", "http://127.0.0.1:1")
    out = CliRunner().invoke(app, ["cloud", "influx-setup"])
    assert out.exit_code == 2 and "/ping" in out.output


@given(
    meter=st.text(min_size=1, max_size=12),
    site=st.text(min_size=1, max_size=8),
    text=st.text(max_size=12),
    value=st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, width=64)),
)
@settings(max_examples=300, deadline=None)
def test_line_protocol_escapes_exactly_like_influxdb_client(meter, site, text, value):
    from influxdb_client import Point, WritePrecision

    from cloud.series.influx import FAILURES, MEASUREMENT, line_protocol

    p = SeriesPoint(
        site=site,
        meter=meter,
        quantity="energy_import",
        time_ns=1234567890,
        value=value,
        quality="good",
        unit=text,
        gateway=text,
        round=text,
        flags=text,
    )
    reference = (
        Point(MEASUREMENT if value is not None else FAILURES)
        .tag("site", site)
        .tag("meter", meter)
        .tag("quantity", "energy_import")
        .field("quality", "good")
        .field("unit", text)
        .field("gateway", text)
        .field("round", text)
        .field("flags", text)
        .time(1234567890, WritePrecision.NS)
    )
    if value is not None:
        reference.field("value", value)
    assert line_protocol(p) == reference.to_line_protocol()


def test_the_sqlite_store_keeps_its_files_private(tmp_path):
    """Readings are the operator's business data: the file (and SQLite's -wal and -shm) is
    made 0600 in a 0700 directory, and an older file others could read is narrowed."""

    def mode(path):
        return stat.S_IMODE(path.stat().st_mode)

    fresh = tmp_path / "made" / "series.sqlite"
    store = SqliteSeriesStore(fresh)
    store.write([SeriesPoint("s", "M1", "energy_import", to_ns(T0), 1.0, "good", "kWh")])
    assert mode(fresh) == 0o600 and mode(fresh.parent) == 0o700
    assert [mode(p) for p in fresh.parent.glob("series.sqlite-*")] == [0o600, 0o600]
    store.close()
    old = tmp_path / "old.sqlite"
    SqliteSeriesStore(old).close()
    old.chmod(0o644)
    SqliteSeriesStore(old).close()
    assert mode(old) == 0o600
