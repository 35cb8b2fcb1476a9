"""``meterflow cloud drivers import``: daily driver values of formula keys, through the CLI
on the SQLite registry, and ``load_drivers`` giving the case file's ``drivers`` section."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cloud.apportion.drivers import load_drivers
from cloud.apportion.models import DriverValue
from cloud.registry.db import open_registry
from cloud.registry.service import ensure_site
from meterflow.cli import app

HEADER = "site,driver,date,value\n"
GOOD = (
    HEADER + "s1,lobby_tmax,2026-03-01,31.5\n"
    "s1,lobby_tmax,2026-03-02,-2.25\n"  # a winter day: drivers may be negative
    "s2,lobby_tmax,2026-03-01,29\n"
)


@pytest.fixture()
def cloud(tmp_path: Path) -> dict[str, str]:
    """Environment of a cloud whose registry has sites s1 and s2."""
    data = tmp_path / "cloud"
    sessions = open_registry(f"sqlite:///{data / 'registry.sqlite'}")
    with sessions.begin() as session:
        ensure_site(session, "s1")
        ensure_site(session, "s2")
    sessions.kw["bind"].dispose()
    return {"MF_DATA_DIR": str(data)}


def run(env: dict[str, str], tmp_path: Path, text: str, *extra: str):
    path = tmp_path / "drivers.csv"
    path.write_text(text, encoding="utf-8")
    return CliRunner().invoke(
        app, ["cloud", "drivers", "import", str(path), "--as", "bob", *extra], env=env
    )


def stored(env: dict[str, str]) -> list[tuple]:
    sessions = open_registry(f"sqlite:///{Path(env['MF_DATA_DIR']) / 'registry.sqlite'}")
    with sessions() as session:
        rows = [
            (v.site_id, v.driver, v.day, v.value, v.imported_by)
            for v in session.scalars(
                select(DriverValue).order_by(DriverValue.site_id, DriverValue.day)
            )
        ]
    sessions.kw["bind"].dispose()
    return rows


def test_import_stores_values_then_a_reimport_changes_nothing(cloud, tmp_path):
    out = run(cloud, tmp_path, GOOD, "--json")
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert (doc["rows"], doc["stored"], doc["unchanged"]) == (3, 3, 0)
    assert doc["per_driver"] == {
        "s1/lobby_tmax": {"stored": 2, "unchanged": 0},
        "s2/lobby_tmax": {"stored": 1, "unchanged": 0},
    }
    assert stored(cloud) == [
        ("s1", "lobby_tmax", date(2026, 3, 1), Decimal("31.5"), "bob"),
        ("s1", "lobby_tmax", date(2026, 3, 2), Decimal("-2.25"), "bob"),
        ("s2", "lobby_tmax", date(2026, 3, 1), Decimal("29"), "bob"),
    ]
    again = run(cloud, tmp_path, GOOD.replace("31.5", "31.50"))  # the same number
    assert again.exit_code == 0, again.output
    assert "3 rows: 0 values stored, 3 already stored unchanged" in again.stdout
    assert len(stored(cloud)) == 3


def test_load_drivers_gives_the_case_files_section(cloud, tmp_path):
    assert run(cloud, tmp_path, GOOD + "s1,hall_tmax,2026-03-05,27\n").exit_code == 0
    sessions = open_registry(f"sqlite:///{Path(cloud['MF_DATA_DIR']) / 'registry.sqlite'}")
    with sessions() as session:
        got = load_drivers(session, "s1", date(2026, 3, 2), date(2026, 3, 5))
        assert got == {"lobby_tmax": {date(2026, 3, 2): Decimal("-2.25")}}  # end is exclusive
        assert load_drivers(session, "s1", date(2026, 3, 1), date(2026, 4, 1)) == {
            "hall_tmax": {date(2026, 3, 5): Decimal(27)},
            "lobby_tmax": {date(2026, 3, 1): Decimal("31.5"), date(2026, 3, 2): Decimal("-2.25")},
        }
        assert load_drivers(session, "s3", date(2026, 3, 1), date(2026, 4, 1)) == {}
    sessions.kw["bind"].dispose()


def test_a_stored_value_that_differs_is_a_conflict_and_nothing_is_stored(cloud, tmp_path):
    assert run(cloud, tmp_path, GOOD).exit_code == 0
    out = run(
        cloud, tmp_path, HEADER + "s1,lobby_tmax,2026-03-03,30\ns1,lobby_tmax,2026-03-01,32\n"
    )
    assert out.exit_code == 2
    assert (
        "line 3, column value: conflict: s1 lobby_tmax on 2026-03-01 is stored as 31.5, "
        "the file says 32; not overwritten"
    ) in out.stderr
    assert len(stored(cloud)) == 3  # the new 2026-03-03 was not stored either


@pytest.mark.parametrize(
    ("row", "column", "says"),
    [
        ("s9,lobby_tmax,2026-03-04,1", "site", "unknown site 's9'"),
        ("s1,lobby tmax,2026-03-04,1", "driver", "is not an id"),
        ("s1,lobby_tmax,2026-3-4,1", "date", "not a date YYYY-MM-DD"),
        ("s1,lobby_tmax,20260304,1", "date", "not a date YYYY-MM-DD"),
        ("s1,lobby_tmax,2026-02-30,1", "date", "not a date YYYY-MM-DD"),
        ("s1,lobby_tmax,2999-01-01,1", "date", "in the future"),
        ("s1,lobby_tmax,2026-03-04,NaN", "value", "not a finite decimal"),
        ("s1,lobby_tmax,2026-03-04,-Infinity", "value", "not a finite decimal"),
        ("s1,lobby_tmax,2026-03-04,1e16", "value", "out of range"),
        ("s1,lobby_tmax,2026-03-04,0.1234567", "value", "more than 6 decimals"),
        ("s1,lobby_tmax,2026-03-04,", "value", "not a finite decimal"),
        ("s1,lobby_tmax,2026-03-01,31.5", "date", "already given on line 2"),
    ],
)
def test_a_bad_row_is_named_and_nothing_is_stored(cloud, tmp_path, row, column, says):
    out = run(cloud, tmp_path, GOOD + row + "\n", "--json")
    assert out.exit_code == 2, out.output
    doc = json.loads(out.stdout)
    assert doc["refused"] is True and len(doc["problems"]) == 1, doc
    assert (
        doc["problems"][0].startswith(f"line 5, column {column}: ") and says in doc["problems"][0]
    )
    assert stored(cloud) == []


def test_a_row_with_several_problems_lists_them_all(cloud, tmp_path):
    out = run(cloud, tmp_path, GOOD + "s9,lobby_tmax,2026-13-01,x\n", "--json")
    assert json.loads(out.stdout)["problems"] == [
        "line 5, column date: '2026-13-01' is not a date YYYY-MM-DD",
        "line 5, column value: 'x' is not a finite decimal number (e.g. 1234.56)",
        "line 5, column site: unknown site 's9' (not in the registry)",
    ]
    assert out.exit_code == 2 and stored(cloud) == []


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("site,driver,value\n", "missing column(s) date"),
        ("site,driver,date,value,unit\n", "unknown column(s) 'unit'"),
        (HEADER + "s1,lobby_tmax,2026-03-01\n", "line 2: 3 fields, expected 4"),
        (HEADER + 's1,lobby_tmax,"2026-03-01,1\n', "not valid CSV"),
    ],
)
def test_a_malformed_file_is_refused_with_the_place_named(cloud, tmp_path, text, says):
    out = run(cloud, tmp_path, text)
    assert out.exit_code == 2 and says in out.stderr, out.output
    assert "Traceback" not in out.output and stored(cloud) == []


def test_a_missing_file_is_one_clear_line(cloud, tmp_path):
    out = CliRunner().invoke(
        app, ["cloud", "drivers", "import", str(tmp_path / "nope.csv")], env=cloud
    )
    assert out.exit_code == 2 and "cannot read the file" in out.stderr
    assert "Traceback" not in out.output


def test_import_reimport_and_conflict_on_postgresql(fresh_postgres_url, tmp_path):
    env = {"MF_DATA_DIR": str(tmp_path / "cloud"), "MF_DB_URL": fresh_postgres_url}
    sessions = open_registry(fresh_postgres_url)
    with sessions.begin() as session:
        ensure_site(session, "s1")
        ensure_site(session, "s2")
    assert run(env, tmp_path, GOOD).exit_code == 0
    assert "0 values stored, 3 already stored unchanged" in run(env, tmp_path, GOOD).stdout
    out = run(env, tmp_path, GOOD.replace("-2.25", "-2.5"))
    assert out.exit_code == 2 and "line 3, column value: conflict" in out.stderr
    with sessions() as session:
        assert load_drivers(session, "s1", date(2026, 3, 1), date(2026, 3, 3)) == {
            "lobby_tmax": {date(2026, 3, 1): Decimal("31.5"), date(2026, 3, 2): Decimal("-2.25")}
        }
    sessions.kw["bind"].dispose()
