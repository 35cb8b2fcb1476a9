"""Driver values: the daily series of a site that formula keys allocate by.

``meterflow cloud drivers import FILE.csv`` brings them in from a CSV file with the columns
``site,driver,date,value`` (any order), e.g. the lobby's daily maximum temperature in °C for
the air-conditioning formula (docs/apportionment.md, formula keys). The whole file is checked
before anything is stored, with the same discipline as the manual readings: unknown site, a
driver id outside the case file's id pattern, a date that is not YYYY-MM-DD or lies in the
future, a value that is not a finite decimal under 1e15 in magnitude (at most 6 decimals),
the same (site, driver, date) twice, or a stored value that differs (a conflict, never
overwritten) refuse the file, every problem named by its line, and nothing is stored. A
stored equal value counts as unchanged, so importing the same file again changes nothing.

:func:`load_drivers` gives the close what the case file's ``drivers`` section holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from cloud.apportion.models import DriverValue
from cloud.registry.models import Site
from cloud.series.csvimport import ImportRefused, Problems, parse_decimal, read_bytes, read_table

COLUMNS = ("site", "driver", "date", "value")
#: the case file's id pattern (cloud/apportion/case/schema.py ``_Id``)
_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}\Z")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}\Z")
#: the stored scale: Numeric(24, 6)
_PLACES = 6


@dataclass(frozen=True)
class DriverRow:
    """One valid row of a driver file; ``line`` is its line in the file."""

    line: int
    site: str
    driver: str
    day: date
    value: Decimal


@dataclass
class DriversReport:
    """Rows read, values stored, values already stored equal (unchanged), per site/driver."""

    rows: int = 0
    stored: int = 0
    unchanged: int = 0
    per_driver: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "stored": self.stored,
            "unchanged": self.unchanged,
            "per_driver": dict(sorted(self.per_driver.items())),
        }


def parse_drivers(data: bytes, source: str, today: date) -> tuple[list[DriverRow], Problems]:
    """The file's valid rows and the problems of the others (nothing is looked up here);
    a date after ``today`` is refused (a driver is measured, not forecast)."""
    rows, problems = read_table(data, source, COLUMNS)
    valid: list[DriverRow] = []
    first_line: dict[tuple[str, str, date], int] = {}
    for line, row in rows:
        before = len(problems.found)
        for column in ("site", "driver"):
            if not _ID.match(row[column]):
                problems.add(line, f"{row[column]!r} is not an id (1-64 of A-Za-z0-9_.:-)", column)
        day = _day(row["date"], line, problems, today)
        value = parse_decimal(row["value"])
        if isinstance(value, str):
            problems.add(line, value, "value")
        elif value != value.quantize(Decimal(1).scaleb(-_PLACES)):
            problems.add(line, f"{row['value']!r} has more than {_PLACES} decimals", "value")
        if len(problems.found) > before or day is None or isinstance(value, str):
            if _ID.match(row["site"]):
                problems.left_out.append((line, row["site"]))
            continue
        key = (row["site"], row["driver"], day)
        if key in first_line:
            problems.add(
                line,
                f"{key[0]} {key[1]} on {day} already given on line {first_line[key]}",
                "date",
            )
            continue
        first_line[key] = line
        valid.append(DriverRow(line, row["site"], row["driver"], day, value))
    return valid, problems


def _day(text: str, line: int, problems: Problems, today: date) -> date | None:
    try:
        if not _DAY.match(text):
            raise ValueError
        day = date.fromisoformat(text)
    except ValueError:
        problems.add(line, f"{text!r} is not a date YYYY-MM-DD", "date")
        return None
    if day > today:
        problems.add(line, f"{text} is in the future", "date")
        return None
    return day


def _stored(session: Session, keys: list[tuple[str, str, date]]) -> dict[tuple, Decimal]:
    found: dict[tuple, Decimal] = {}
    for i in range(0, len(keys), 300):
        chunk = keys[i : i + 300]
        for v in session.scalars(
            select(DriverValue).where(
                tuple_(DriverValue.site_id, DriverValue.driver, DriverValue.day).in_(chunk)
            )
        ):
            found[(v.site_id, v.driver, v.day)] = v.value
    return found


def import_drivers(
    session: Session,
    rows: Iterable[DriverRow],
    by: str,
    problems: Problems | None = None,
    now: datetime | None = None,
) -> DriversReport:
    """Store the rows' new values as imported by ``by``, in ``session`` (the caller commits).

    ``problems`` are those found while parsing; registry checks (unknown site) and conflicts
    with stored values are added to them, and any problem raises ImportRefused with nothing
    added to the session.
    """
    rows = list(rows)
    problems = problems if problems is not None else Problems("drivers")
    sites = sorted({r.site for r in rows} | {site for _, site in problems.left_out})
    known: set[str] = set()
    for i in range(0, len(sites), 500):
        known.update(session.scalars(select(Site.id).where(Site.id.in_(sites[i : i + 500]))))
    for line, site in problems.left_out:
        if site not in known:
            problems.add(line, f"unknown site {site!r} (not in the registry)", "site")
    report = DriversReport(rows=len(rows))
    in_sites = [r for r in rows if r.site in known]
    for r in rows:
        if r.site not in known:
            problems.add(r.line, f"unknown site {r.site!r} (not in the registry)", "site")
    stored = _stored(session, [(r.site, r.driver, r.day) for r in in_sites])
    new: list[DriverRow] = []
    for r in in_sites:
        counts = report.per_driver.setdefault(f"{r.site}/{r.driver}", {"stored": 0, "unchanged": 0})
        have = stored.get((r.site, r.driver, r.day))
        if have is None:
            new.append(r)
            counts["stored"] += 1
        elif have == r.value:
            report.unchanged += 1
            counts["unchanged"] += 1
        else:
            problems.add(
                r.line,
                f"conflict: {r.site} {r.driver} on {r.day} is stored as {have.normalize()}, "
                f"the file says {r.value}; not overwritten",
                "value",
            )
    if problems:
        raise problems.refuse()
    at = now or datetime.now(UTC)
    session.add_all(
        DriverValue(
            site_id=r.site,
            driver=r.driver,
            day=r.day,
            value=r.value,
            imported_by=by,
            imported_at=at,
        )
        for r in new
    )
    session.flush()
    report.stored = len(new)
    return report


def import_drivers_file(
    session: Session, path: Path, by: str, now: datetime | None = None
) -> DriversReport:
    """Parse the CSV file at ``path`` and import it (see :func:`import_drivers`); a date is
    in the future when it is after tomorrow in UTC (tomorrow already began somewhere east)."""
    at = now or datetime.now(UTC)
    rows, problems = parse_drivers(read_bytes(path), str(path), (at + timedelta(days=1)).date())
    return import_drivers(session, rows, by, problems, at)


def load_drivers(
    session: Session, site_id: str, start: date, end: date
) -> dict[str, dict[date, Decimal]]:
    """The site's driver values with ``start`` <= day < ``end``: driver id → {day: value},
    ordered by driver and day (the case file's ``drivers`` section)."""
    out: dict[str, dict[date, Decimal]] = {}
    for v in session.scalars(
        select(DriverValue)
        .where(DriverValue.site_id == site_id, DriverValue.day >= start, DriverValue.day < end)
        .order_by(DriverValue.driver, DriverValue.day)
    ):
        out.setdefault(v.driver, {})[v.day] = Decimal(v.value)
    return out


__all__ = ["DriversReport", "ImportRefused", "import_drivers", "load_drivers", "parse_drivers"]
