"""``meterflow cloud readings import``: manual readings beside the gateways', through the CLI on
the SQLite store, one round trip on the real influxd, and the in-place upgrade of an older
SQLite points table."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cloud.registry.db import open_registry
from cloud.registry.service import ensure_site, register_meter
from cloud.series.base import SeriesPoint, to_ns
from cloud.series.csvimport import ImportRefused
from cloud.series.influx import InfluxSeriesStore, line_protocol
from cloud.series.manual import import_readings
from cloud.series.sqlite import SqliteSeriesStore
from meterflow.cli import app

HEADER = "meter,quantity,read_at,value,quality,note\n"
GOOD = (
    HEADER + "M1,energy_import,2026-03-01T08:00:00+08:00,1234.5,good,walk round 人工抄表\n"
    "M1,energy_import_t1,2026-03-01T08:00:00+08:00,400.25,,\n"
    "W1,water_volume,2026-03-01T09:30:00+08:00,88.125,estimated,dial fogged\n"
)


@pytest.fixture()
def cloud(tmp_path: Path) -> dict[str, str]:
    """Environment of a cloud with site s1 and meters M1, W1 registered."""
    data = tmp_path / "cloud"
    sessions = open_registry(f"sqlite:///{data / 'registry.sqlite'}")
    with sessions.begin() as session:
        ensure_site(session, "s1")
        for meter in ("M1", "W1"):
            register_meter(session, "s1", meter, protocol="dlt645", address="1")
    sessions.kw["bind"].dispose()
    return {"MF_DATA_DIR": str(data), "MF_SERIES_BACKEND": "sqlite"}


def run(env: dict[str, str], tmp_path: Path, text: str, *extra: str):
    path = tmp_path / "reads.csv"
    path.write_text(text, encoding="utf-8")
    return CliRunner().invoke(
        app, ["cloud", "readings", "import", str(path), "--as", "alice", *extra], env=env
    )


def stored(env: dict[str, str]) -> list[tuple]:
    path = Path(env["MF_DATA_DIR"]) / "series.sqlite"
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT meter, quantity, time_ns, value, quality, unit, site, source, note,"
            " imported_by FROM points ORDER BY meter, quantity, time_ns"
        ).fetchall()


def test_import_stores_manual_points_then_a_reimport_changes_nothing(cloud, tmp_path):
    out = run(cloud, tmp_path, GOOD, "--json")
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert (doc["rows"], doc["stored"], doc["unchanged"], doc["by"]) == (3, 3, 0, "alice")
    assert doc["per_meter"] == {
        "M1": {"stored": 2, "unchanged": 0},
        "W1": {"stored": 1, "unchanged": 0},
    }
    t = to_ns(datetime(2026, 3, 1, 0, 0, tzinfo=UTC))
    assert stored(cloud) == [
        (
            "M1",
            "energy_import",
            t,
            1234.5,
            "good",
            "kWh",
            "s1",
            "manual",
            "walk round 人工抄表",
            "alice",
        ),
        ("M1", "energy_import_t1", t, 400.25, "good", "kWh", "s1", "manual", "", "alice"),
        (
            "W1",
            "water_volume",
            t + 90 * 60 * 10**9,
            88.125,
            "estimated",
            "m³",
            "s1",
            "manual",
            "dial fogged",
            "alice",
        ),
    ]
    again = run(cloud, tmp_path, GOOD)
    assert again.exit_code == 0, again.output
    assert "3 rows: 0 points stored, 3 already stored unchanged" in again.stdout
    assert "M1: 0 stored, 2 unchanged" in again.stdout
    assert len(stored(cloud)) == 3


def test_a_stored_point_with_another_value_is_a_conflict_and_nothing_is_stored(cloud, tmp_path):
    assert run(cloud, tmp_path, GOOD).exit_code == 0
    before = stored(cloud)
    changed = (
        HEADER + "W1,water_volume,2026-03-02T09:30:00+08:00,90,,\n"  # new: would be stored
        "M1,energy_import,2026-03-01T00:00:00Z,1240,good,\n"  # same instant as line 2 before
    )
    out = run(cloud, tmp_path, changed, "--json")
    assert out.exit_code == 2
    assert json.loads(out.stdout)["problems"] == [
        "line 3, column value: conflict: M1 energy_import at 2026-03-01T00:00:00Z is stored"
        " as 1234.5, the file says 1240; not overwritten"
    ]
    assert "refused, nothing stored (1 problem)" in out.stderr
    assert stored(cloud) == before


def test_a_failed_read_at_the_key_is_a_conflict_too(cloud, tmp_path):
    store = SqliteSeriesStore(Path(cloud["MF_DATA_DIR"]) / "series.sqlite")
    t = to_ns(datetime(2026, 3, 1, tzinfo=UTC))
    store.write([SeriesPoint("s1", "M1", "energy_import", t, None, "timeout", "kWh", "gw1", "r1")])
    store.close()
    out = run(cloud, tmp_path, HEADER + "M1,energy_import,2026-03-01T00:00:00Z,5,,\n")
    assert out.exit_code == 2 and "stored as a failed read (no value)" in out.stderr
    assert [row[3] for row in stored(cloud)] == [None]


@pytest.mark.parametrize(
    ("row", "column", "says"),
    [
        ("M9,energy_import,2026-03-01T08:00:00+08:00,1,,", "meter", "unknown meter 'M9'"),
        ("M1,voltage_a,2026-03-01T08:00:00+08:00,1,,", "quantity", "unknown quantity"),
        ("M1,energy_import,2026-03-01T08:00:00,1,,", "read_at", "has no UTC offset"),
        ("M1,energy_import,2026-03-01,1,,", "read_at", "has no UTC offset"),
        ("M1,energy_import,01/03/2026 08:00,1,,", "read_at", "not an ISO 8601 time"),
        ("M1,energy_import,2999-03-01T08:00:00+08:00,1,,", "read_at", "in the future"),
        ("M1,energy_import,1969-12-31T08:00:00+00:00,1,,", "read_at", "before 1970"),
        ("M1,energy_import,2026-03-01T08:00:00+08:00,nan,,", "value", "not a finite decimal"),
        ("M1,energy_import,2026-03-01T08:00:00+08:00,inf,,", "value", "not a finite decimal"),
        ('M1,energy_import,2026-03-01T08:00:00+08:00,"1,234",,', "value", "not a finite"),
        ("M1,energy_import,2026-03-01T08:00:00+08:00,-1,,", "value", "is negative"),
        ("M1,energy_import,2026-03-01T08:00:00+08:00,1e15,,", "value", "out of range"),
        ("M1,energy_import,2026-03-01T08:00:00+08:00,1,suspect,", "quality", "good or estimated"),
        ('M1,energy_import,2026-03-01T08:00:00+08:00,1,,"two\nlines"', "note", "one line"),
        ("M 1,energy_import,2026-03-01T08:00:00+08:00,1,,", "meter", "is not a meter id"),
    ],
)
def test_a_bad_row_is_named_and_nothing_is_stored(cloud, tmp_path, row, column, says):
    text = GOOD + row + "\n"
    out = run(cloud, tmp_path, text, "--json")
    assert out.exit_code == 2, out.output
    problems = json.loads(out.stdout)["problems"]
    assert len(problems) == 1 and problems[0].startswith(f"line 5, column {column}: "), problems
    assert says in problems[0]
    assert f"line 5, column {column}" in out.stderr
    assert stored(cloud) == []


def test_a_row_with_several_problems_lists_them_all(cloud, tmp_path):
    out = run(cloud, tmp_path, GOOD + "M9,energy_import,2026-03-01T08:00,-1,,\n", "--json")
    assert json.loads(out.stdout)["problems"] == [
        "line 5, column read_at: '2026-03-01T08:00' has no UTC offset; write it like"
        " 2026-03-01T08:00:00+08:00",
        "line 5, column value: '-1' is negative; registers are >= 0",
        "line 5, column meter: unknown meter 'M9' (not in the registry)",
    ]
    assert out.exit_code == 2 and stored(cloud) == []


def test_the_same_key_twice_in_the_file_is_refused(cloud, tmp_path):
    text = GOOD + "M1,energy_import,2026-03-01T00:00:00Z,1234.5,,\n"  # line 2's instant in UTC
    out = run(cloud, tmp_path, text)
    assert out.exit_code == 2
    assert "line 5, column read_at: M1 energy_import at 2026-03-01T00:00:00+00:00" in out.stderr
    assert "already given on line 2" in out.stderr
    assert stored(cloud) == []


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty file"),
        ("meter,quantity,value\n", "missing column(s) read_at"),
        ("meter,quantity,read_at,value,tariff\n", "unknown column(s) 'tariff'"),
        ("meter,meter,quantity,read_at,value\n", "column(s) named twice meter"),
        (HEADER + "M1,energy_import\n", "line 2: 2 fields, expected 6"),
        (
            b"meter,quantity,read_at,value\nM1,energy_import,2026-03-01T08:00:00+08:00,\xb3\xad\n",
            "not UTF-8",
        ),
    ],
)
def test_a_malformed_file_is_refused_with_the_place_named(cloud, tmp_path, text, says):
    path = tmp_path / "reads.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    out = CliRunner().invoke(app, ["cloud", "readings", "import", str(path)], env=cloud)
    assert out.exit_code == 2 and says in out.stderr, out.output
    assert "Traceback" not in out.output and stored(cloud) == []


def test_every_problem_is_listed_up_to_fifty_and_the_rest_counted(cloud, tmp_path):
    rows = "".join(
        f"M1,energy_import,2026-03-01T08:{i // 60:02}:{i % 60:02}+08:00,-1,,\n" for i in range(60)
    )
    out = run(
        cloud,
        tmp_path,
        HEADER + "M1,energy_import,2026-02-01T08:00:00+08:00,1,,\n" + rows,
        "--json",
    )
    doc = json.loads(out.stdout)
    assert out.exit_code == 2 and len(doc["problems"]) == 50 and doc["more"] == 10
    assert doc["problems"][0].startswith("line 3, column value") and stored(cloud) == []
    assert "... and 10 more" in out.stderr and "(60 problems)" in out.stderr


def test_an_older_points_table_gains_the_new_columns_in_place(tmp_path):
    path = tmp_path / "series.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE points (meter TEXT NOT NULL, quantity TEXT NOT NULL, time_ns INTEGER"
            " NOT NULL, value REAL, quality TEXT NOT NULL, unit TEXT NOT NULL, site TEXT NOT"
            " NULL, gateway TEXT NOT NULL, round TEXT NOT NULL, flags TEXT NOT NULL DEFAULT '',"
            " PRIMARY KEY (meter, quantity, time_ns)) WITHOUT ROWID"
        )
        db.execute(
            "INSERT INTO points VALUES ('M1','energy_import',5,1.5,'good','kWh','s1','g','r','')"
        )
    store = SqliteSeriesStore(path)
    store.write(
        [
            SeriesPoint(
                "s1", "M1", "energy_import", 7, 2.0, "good", source="manual", imported_by="bob"
            )
        ]
    )
    store.close()
    SqliteSeriesStore(path).close()  # opening an upgraded table again is a no-op
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT time_ns, value, source, note, imported_by FROM points ORDER BY time_ns"
        ).fetchall()
    assert rows == [(5, 1.5, "", "", ""), (7, 2.0, "manual", "", "bob")]


def test_a_manual_point_round_trips_with_its_source_on_influxdb(fresh_influx_db, tmp_path):
    base_url, db_name = fresh_influx_db
    store = InfluxSeriesStore(base_url, db_name)
    sessions = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    with sessions.begin() as session:
        ensure_site(session, "s1")
        register_meter(session, "s1", "M1", protocol="dlt645", address="1")
    gateway = SeriesPoint(
        "s1",
        "M1",
        "energy_import",
        to_ns(datetime(2026, 3, 1, tzinfo=UTC)) - 60 * 10**9,
        1200.0,
        "good",
        "kWh",
        "gw1",
        "r1",
    )
    store.write([gateway])
    path = tmp_path / "reads.csv"
    path.write_text(
        HEADER + 'M1,energy_import,2026-03-01T08:00:00+08:00,1234.5,good,"say ""hi"", \\ 抄表"\n'
    )
    now = datetime(2026, 3, 2, tzinfo=UTC)
    with sessions() as session:
        report = import_readings(store, session, path, "alice", now)
        assert (report.stored, report.unchanged) == (1, 0)
        assert import_readings(store, session, path, "alice", now).unchanged == 1
        path.write_text(HEADER + "M1,energy_import,2026-03-01T07:59:00+08:00,1200.5,,\n")
        with pytest.raises(ImportRefused, match=r"stored as 1200, the file says 1200\.5"):
            import_readings(store, session, path, "alice", now)
    series = store.query(
        'SELECT value, quality, source, note, imported_by FROM "reading" ORDER BY time'
    )[0]["series"][0]
    cols = series["columns"]
    rows = [dict(zip(cols, r, strict=True)) for r in series["values"]]
    assert [(r["value"], r["source"], r["note"], r["imported_by"]) for r in rows] == [
        (1200, None, None, None),
        (1234.5, "manual", 'say "hi", \\ 抄表', "alice"),
    ]
    frame = store.read("M1", "energy_import", datetime(2026, 2, 28, tzinfo=UTC), now, site="s1")
    assert frame.values.tolist() == [1200.0, 1234.5]
    store.close()


def test_gateway_lines_do_not_carry_the_manual_fields():
    p = SeriesPoint("s1", "M1", "energy_import", 1, 2.0, "good", "kWh", "g", "r")
    assert "source" not in line_protocol(p) and "note" not in line_protocol(p)
    manual = line_protocol(
        SeriesPoint(
            "s1",
            "M1",
            "energy_import",
            1,
            2.0,
            "good",
            source="manual",
            note='a"b',
            imported_by="x",
        )
    )
    assert 'imported_by="x",note="a\\"b",quality="good",round="",source="manual",unit=""' in manual


def test_rows_after_the_row_limit_are_refused(cloud, tmp_path, monkeypatch):
    monkeypatch.setattr("cloud.series.csvimport.MAX_ROWS", 2)
    out = run(cloud, tmp_path, GOOD)
    assert out.exit_code == 2 and "more than 2 rows" in out.stderr and stored(cloud) == []


def test_a_future_read_within_the_skew_is_accepted(cloud, tmp_path):
    soon = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    out = run(cloud, tmp_path, HEADER + f"M1,energy_import,{soon},1,,\n")
    assert out.exit_code == 0, out.output


def test_a_meter_id_of_two_sites_needs_the_site_named(cloud, tmp_path):
    sessions = open_registry(f"sqlite:///{Path(cloud['MF_DATA_DIR']) / 'registry.sqlite'}")
    with sessions.begin() as session:
        ensure_site(session, "s2")
        register_meter(session, "s2", "M1", protocol="dlt645", address="1")
    sessions.kw["bind"].dispose()
    text = HEADER + "M1,energy_import,2026-03-01T08:00:00+08:00,10.5,,\n"
    result = run(cloud, tmp_path, text)
    assert result.exit_code == 2 and stored(cloud) == []
    assert "meter 'M1' is in sites s1, s2: name the site (--site)" in result.output
    assert run(cloud, tmp_path, text, "--site", "s2").exit_code == 0
    assert run(cloud, tmp_path, text.replace("10.5", "11"), "--site", "s1").exit_code == 0
    assert sorted((r[6], r[0], r[3]) for r in stored(cloud)) == [
        ("s1", "M1", 11.0),
        ("s2", "M1", 10.5),
    ]
    result = run(cloud, tmp_path, text, "--site", "s3")
    assert "unknown meter 'M1' (not in the registry for site 's3')" in result.output
