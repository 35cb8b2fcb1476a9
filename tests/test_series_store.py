"""One contract for every series store: SQLite here, InfluxDB on the real influxd."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta

import pytest

from cloud.series.base import SeriesPoint, SeriesStore, to_ns
from cloud.series.influx import InfluxSeriesStore
from cloud.series.sqlite import SqliteSeriesStore
from tests.factories import T0


@pytest.fixture(params=["sqlite", "influxdb"])
def store(request, tmp_path) -> Iterator[SeriesStore]:
    if request.param == "influxdb":
        base_url, db_name = request.getfixturevalue("fresh_influx_db")
        s: SeriesStore = InfluxSeriesStore(base_url, db_name)
    else:
        s = SqliteSeriesStore(tmp_path / "series.sqlite")
    yield s
    s.close()


def point(minute: int, value: float | None = 1.5, meter: str = "M1",
          quality: str = "good") -> SeriesPoint:
    return SeriesPoint(site="s1", meter=meter, quantity="energy_import",
                       time_ns=to_ns(T0 + timedelta(minutes=minute)), value=value,
                       quality=quality, unit="kWh", gateway="gw1", round=f"r{minute}")


def read(store: SeriesStore, meter: str = "M1", start: int = 0, end: int = 60):
    return store.read(meter, "energy_import", T0 + timedelta(minutes=start),
                      T0 + timedelta(minutes=end))


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
