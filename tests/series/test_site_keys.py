"""Series are keyed by site: equal meter ids of two sites never mix, in either store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from cloud.series.base import SeriesPoint, SeriesStore, SeriesStoreError, to_ns
from cloud.series.influx import InfluxSeriesStore
from cloud.series.sqlite import SqliteSeriesStore
from tests.support.factories import T0

Q = "energy_import"


@pytest.fixture(params=["sqlite", "influxdb"])
def store(request, tmp_path) -> Iterator[SeriesStore]:
    if request.param == "sqlite":
        s: SeriesStore = SqliteSeriesStore(tmp_path / "series.sqlite")
    else:
        s = InfluxSeriesStore(*request.getfixturevalue("fresh_influx_db"))
    yield s
    s.close()


def at(hours: float) -> int:
    return to_ns(T0 + timedelta(hours=hours))


def pt(site: str, meter: str, hours: float, value: float | None) -> SeriesPoint:
    return SeriesPoint(site, meter, Q, at(hours), value, "good" if value is not None else "timeout")


def test_two_sites_same_meter_ids_same_instants_stay_apart(store: SeriesStore) -> None:
    # Snapshot reads: both sites' MAIN and U101 read at the very same instants.
    a = [
        pt("A", m, h, 500.0 + h + (m == "U101") * 1000) for m in ("MAIN", "U101") for h in range(4)
    ]
    b = [pt("B", m, h, 1.0 + h) for m in ("MAIN", "U101") for h in range(4)]
    store.write(a)
    store.write(b)  # written second: would replace A's points were the key without the site
    store.write([pt("B", "MAIN", 4, None)])  # a failed read of B only

    start, end = T0, T0 + timedelta(hours=5)
    assert store.read("MAIN", Q, start, end, site="A").values.tolist() == [500, 501, 502, 503]
    frame_b = store.read("MAIN", Q, start, end, site="B")
    assert frame_b.values[:4].tolist() == [1, 2, 3, 4] and np.isnan(frame_b.values[4])
    assert len(store.read("MAIN", Q, start, end, site="C")) == 0

    meters = ["MAIN", "U101"]
    assert store.latest(meters, Q, at(10), site="A") == {
        "MAIN": (at(3), 503.0),
        "U101": (at(3), 1503.0),
    }
    assert store.latest(meters, Q, at(10), site="B") == {"MAIN": (at(3), 4.0), "U101": (at(3), 4.0)}

    idx, times, values, _q = store.raw_points(meters, Q, at(0), at(10), site="B")
    assert sorted(zip(idx.tolist(), times.tolist(), values.tolist(), strict=True)) == sorted(
        (i, at(h), 1.0 + h) for i in range(2) for h in range(4)
    )
    idx, times, values, _q = store.points_at(meters, Q, [at(1), at(3)], site="A")
    assert sorted(zip(idx.tolist(), values.tolist(), strict=True)) == [
        (0, 501.0),
        (0, 503.0),
        (1, 1501.0),
        (1, 1503.0),
    ]
    for site, first in (("A", 500.0), ("B", 1.0)):
        matrix = store.register_matrix(meters, Q, T0, T0 + timedelta(hours=4), "1h", site=site)
        assert matrix.values[0].tolist() == [first + h for h in range(4)]
        usage = store.consumption_matrix(
            meters, Q, T0 + timedelta(hours=1), T0 + timedelta(hours=4), "1h", site=site
        )
        assert usage.usage[0].tolist() == [1.0, 1.0, 1.0]  # no 499 kWh jumps between sites


_OLD_LAYOUT = """
CREATE TABLE points (
    meter TEXT NOT NULL, quantity TEXT NOT NULL, time_ns INTEGER NOT NULL, value REAL,
    quality TEXT NOT NULL, unit TEXT NOT NULL, site TEXT NOT NULL, gateway TEXT NOT NULL,
    round TEXT NOT NULL, flags TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (meter, quantity, time_ns)
) WITHOUT ROWID
"""


def test_a_series_file_of_the_old_layout_is_rekeyed_in_place(tmp_path: Path) -> None:
    path = tmp_path / "series.sqlite"
    with sqlite3.connect(path) as db:  # a dev file of the release before sources and sites
        db.execute(_OLD_LAYOUT)
        db.executemany(
            "INSERT INTO points VALUES (?, ?, ?, ?, 'good', 'kWh', ?, 'gw', 'r', '')",
            [("MAIN", Q, at(h), 100.0 + h, "A") for h in range(3)] + [("U9", Q, at(0), 7.0, "B")],
        )
    db.close()
    store = SqliteSeriesStore(path)
    assert store.read("MAIN", Q, T0, T0 + timedelta(days=1), site="A").values.tolist() == [
        100,
        101,
        102,
    ]
    assert store.latest(["U9"], Q, at(1), site="B") == {"U9": (at(0), 7.0)}
    store.write([pt("B", "MAIN", 0, 1.0)])  # the same (meter, quantity, time) as A's
    assert store.read("MAIN", Q, T0, T0 + timedelta(days=1), site="A").values[0] == 100.0
    assert store.read("MAIN", Q, T0, T0 + timedelta(days=1), site="B").values.tolist() == [1.0]
    store.close()
    with sqlite3.connect(path) as db:
        key = [r[1] for r in sorted(db.execute("PRAGMA table_info(points)"), key=lambda r: r[5])]
        pk = [r[1] for r in db.execute("PRAGMA table_info(points)") if r[5]]
        assert db.execute("SELECT count(*) FROM points").fetchone() == (5,)
        assert {"source", "note", "imported_by"} <= set(key)
    db.close()
    assert sorted(pk) == sorted(["site", "meter", "quantity", "time_ns"])
    SqliteSeriesStore(path).close()  # opening again changes nothing


def test_a_points_table_without_sites_is_refused_whole_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as db:  # some other program's table of the same name
        db.execute("CREATE TABLE points (meter TEXT, t INTEGER, PRIMARY KEY (meter, t))")
        db.execute("INSERT INTO points VALUES ('M1', 1)")
    db.close()
    with pytest.raises(SeriesStoreError, match=r"other\.sqlite: not a series file") as caught:
        SqliteSeriesStore(path)
    assert "\n" not in str(caught.value)
    with sqlite3.connect(path) as db:  # left as it was
        assert db.execute("SELECT * FROM points").fetchall() == [("M1", 1)]
    db.close()
