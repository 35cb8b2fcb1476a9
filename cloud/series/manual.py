"""Manual readings (人工抄表) imported beside the gateways' readings.

A CSV file with the columns ``meter,quantity,read_at,value`` and optionally ``quality,note``
(any order) brings in what no gateway read: a walk-round read, a replaced meter's final read,
history from before the gateway. Each row becomes a series point with source ``manual`` and
the importing account, at the meter's site. Meter ids are unique within a site only: an
import names its site (``--site``), or else each meter id must be registered in one site.

The whole file is checked before anything is stored (see :mod:`cloud.series.csvimport`):
unknown meter or quantity, a ``read_at`` without a UTC offset or in the future, a value that
is not a finite non-negative number under 1e15, a quality other than good/estimated, the
same (meter, quantity, read_at) twice, or a point already stored at that key with another
value (a conflict: never overwritten silently). A point already stored with the same value is
counted as unchanged, so importing a file again changes nothing.

Values are in the quantity's unit as the series holds it (kWh, kvarh, m³), that is after the
meter's multiplier (CT × PT), like the gateways' readings; nothing is multiplied here.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.registry.models import Meter
from cloud.series.base import SeriesPoint, SeriesStore, SeriesStoreError
from cloud.series.csvimport import (
    ImportRefused,
    Problems,
    has_control,
    parse_decimal,
    read_bytes,
    read_table,
)
from cloud.series.matrix import to_ns

SOURCE = "manual"
COLUMNS = ("meter", "quantity", "read_at", "value")
OPTIONAL_COLUMNS = ("quality", "note")
QUALITIES = ("good", "estimated")
#: the register quantities a manual reading may carry, with the unit the series stores them in
#: (the gateways' names: DL/T645 and Modbus profiles); all are registers, never negative
QUANTITY_UNITS: dict[str, str] = {
    **{f"energy_import{t}": "kWh" for t in ("", "_t1", "_t2", "_t3", "_t4")},
    **{f"energy_export{t}": "kWh" for t in ("", "_t1", "_t2", "_t3", "_t4")},
    "reactive_import": "kvarh",
    "reactive_export": "kvarh",
    "max_demand_import": "kW",
    "max_demand_export": "kW",
    "water_volume": "m³",
    "water_volume_reverse": "m³",
    "gas_volume": "m³",
}
#: a read time may be this far ahead of the importing machine's clock
FUTURE_SKEW = timedelta(minutes=5)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NOTE_CHARS = 500
#: per (meter, quantity), stored points are read in windows of at most this span
_WINDOW_NS = 86_400 * 10**9
#: points per store write
_WRITE_CHUNK = 5_000


@dataclass(frozen=True)
class ManualRead:
    """One valid row: ``line`` of the file, read time in UTC ns, value in the unit."""

    line: int
    meter: str
    quantity: str
    time_ns: int
    value: float
    quality: str
    note: str


@dataclass
class ReadingsReport:
    """What an import did: rows read, points stored, points already stored with the same
    value (unchanged), and both per meter."""

    rows: int = 0
    stored: int = 0
    unchanged: int = 0
    per_meter: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "stored": self.stored,
            "unchanged": self.unchanged,
            "per_meter": dict(sorted(self.per_meter.items())),
        }


_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}\Z")


def parse_readings(data: bytes, source: str, now: datetime) -> tuple[list[ManualRead], Problems]:
    """The file's valid rows and the problems of the others (nothing is looked up here)."""
    rows, problems = read_table(data, source, COLUMNS, OPTIONAL_COLUMNS)
    reads: list[ManualRead] = []
    first_line: dict[tuple[str, str, int], int] = {}
    latest = now + FUTURE_SKEW
    for line, row in rows:
        before = len(problems.found)
        meter, quantity = row["meter"], row["quantity"]
        if not _ID.match(meter):
            problems.add(line, f"{meter!r} is not a meter id (1-64 of A-Za-z0-9_.:-)", "meter")
        if quantity not in QUANTITY_UNITS:
            problems.add(
                line,
                f"unknown quantity {quantity!r}; expected one of {', '.join(QUANTITY_UNITS)}",
                "quantity",
            )
        moment = _read_at(row["read_at"], line, problems, latest)
        value = parse_decimal(row["value"])
        if isinstance(value, str):
            problems.add(line, value, "value")
        elif value < 0:
            problems.add(line, f"{row['value']!r} is negative; registers are >= 0", "value")
        quality = (row.get("quality") or "good").lower()
        if quality not in QUALITIES:
            problems.add(line, f"{row['quality']!r}: expected good or estimated", "quality")
        note = row.get("note", "")
        if has_control(note) or len(note) > _NOTE_CHARS:
            problems.add(line, f"one line of at most {_NOTE_CHARS} characters expected", "note")
        if len(problems.found) > before or moment is None or isinstance(value, str):
            if _ID.match(meter):
                problems.left_out.append((line, meter))
            continue
        time_ns = to_ns(moment)
        key = (meter, quantity, time_ns)
        if key in first_line:
            problems.add(
                line,
                f"{meter} {quantity} at {moment.isoformat()} already given on line "
                f"{first_line[key]}",
                "read_at",
            )
            continue
        first_line[key] = line
        number = float(value)
        if not math.isfinite(number):  # pragma: no cover - bounded by parse_decimal
            problems.add(line, f"{row['value']!r} is out of range", "value")
            continue
        reads.append(ManualRead(line, meter, quantity, time_ns, number, quality, note))
    return reads, problems


def _read_at(text: str, line: int, problems: Problems, latest: datetime) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        problems.add(
            line, f"{text!r} is not an ISO 8601 time (e.g. 2026-03-01T08:00:00+08:00)", "read_at"
        )
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        problems.add(
            line, f"{text!r} has no UTC offset; write it like 2026-03-01T08:00:00+08:00", "read_at"
        )
        return None
    if moment < _EPOCH:
        problems.add(line, f"{text!r} is before 1970", "read_at")
        return None
    if moment > latest:
        problems.add(line, f"{text!r} is in the future", "read_at")
        return None
    return moment


def _meter_sites(session: Session, meters: set[str], site: str | None) -> dict[str, list[str]]:
    """Meter id → the sites (sorted) that have a meter of that id (only ``site`` if given)."""
    ids = sorted(meters)
    found: dict[str, list[str]] = defaultdict(list)
    for i in range(0, len(ids), 500):
        query = select(Meter.id, Meter.site_id).where(Meter.id.in_(ids[i : i + 500]))
        if site is not None:
            query = query.where(Meter.site_id == site)
        for meter, site_id in session.execute(query.order_by(Meter.site_id)):
            found[meter].append(site_id)
    return found


def _meter_problem(meter: str, sites: dict[str, list[str]], site: str | None) -> str | None:
    """Why ``meter`` cannot be imported (unknown, or in several sites), or None."""
    where = sites.get(meter, [])
    if not where:
        return f"unknown meter {meter!r} (not in the registry" + (
            f" for site {site!r})" if site else ")"
        )
    if len(where) > 1:
        return f"meter {meter!r} is in sites {', '.join(where)}: name the site (--site)"
    return None


def _stored_at(
    store: SeriesStore, site: str, meter: str, quantity: str, times: list[int]
) -> dict[int, float]:
    """Stored values (NaN for a failed read) at ``times`` of one series, read in windows."""
    found: dict[int, float] = {}
    times = sorted(times)
    i = 0
    while i < len(times):
        j = i
        while j + 1 < len(times) and times[j + 1] - times[i] < _WINDOW_NS:
            j += 1
        start = _EPOCH + timedelta(microseconds=times[i] // 1000)
        end = _EPOCH + timedelta(microseconds=times[j] // 1000 + 1)
        frame = store.read(meter, quantity, start, end, site=site)
        wanted = set(times[i : j + 1])
        for t, v in zip(frame.times_ns.tolist(), frame.values.tolist(), strict=True):
            if t in wanted:
                found[t] = v
        i = j + 1
    return found


def import_readings(
    store: SeriesStore,
    session: Session,
    path: Path,
    by: str,
    now: datetime | None = None,
    *,
    site: str | None = None,
) -> ReadingsReport:
    """Check the file at ``path`` whole, then store its new points as source ``manual``
    imported by ``by``, at the meters of ``site`` (default: each meter id's one site).
    Raises ImportRefused (nothing stored) on any problem, and SeriesStoreError when the
    store fails while writing (points already written stay; importing the file again
    completes it, they then count as unchanged)."""
    return import_readings_data(store, session, read_bytes(path), str(path), by, now, site=site)


def import_readings_data(
    store: SeriesStore,
    session: Session,
    data: bytes,
    source: str,
    by: str,
    now: datetime | None = None,
    *,
    site: str | None = None,
) -> ReadingsReport:
    """:func:`import_readings` of CSV ``data`` (at most the file bound) named ``source``:
    the same checks for a file and for a reading entered on a page."""
    reads, problems = parse_readings(data, source, now or datetime.now(UTC))
    sites = _meter_sites(
        session, {r.meter for r in reads} | {m for _, m in problems.left_out}, site
    )
    for line, meter in problems.left_out:
        if (problem := _meter_problem(meter, sites, site)) is not None:
            problems.add(line, problem, "meter")
    by_series: dict[tuple[str, str], list[ManualRead]] = defaultdict(list)
    for r in reads:
        if (problem := _meter_problem(r.meter, sites, site)) is not None:
            problems.add(r.line, problem, "meter")
        else:
            by_series[(r.meter, r.quantity)].append(r)
    report = ReadingsReport(rows=len(reads))
    new: list[ManualRead] = []
    for (meter, quantity), series in by_series.items():
        stored = _stored_at(store, sites[meter][0], meter, quantity, [r.time_ns for r in series])
        counts = report.per_meter.setdefault(meter, {"stored": 0, "unchanged": 0})
        for r in series:
            if r.time_ns not in stored:
                new.append(r)
                counts["stored"] += 1
            elif stored[r.time_ns] == r.value:
                report.unchanged += 1
                counts["unchanged"] += 1
            else:
                have = stored[r.time_ns]
                shown = "a failed read (no value)" if math.isnan(have) else _number(have)
                problems.add(
                    r.line,
                    f"conflict: {meter} {quantity} at {_utc(r.time_ns)} is stored as {shown},"
                    f" the file says {_number(r.value)}; not overwritten",
                    "value",
                )
    if problems:
        raise problems.refuse()
    points = [
        SeriesPoint(
            site=sites[r.meter][0],
            meter=r.meter,
            quantity=r.quantity,
            time_ns=r.time_ns,
            value=r.value,
            quality=r.quality,
            unit=QUANTITY_UNITS[r.quantity],
            source=SOURCE,
            note=r.note,
            imported_by=by,
        )
        for r in sorted(new, key=lambda r: r.line)
    ]
    for i in range(0, len(points), _WRITE_CHUNK):
        try:
            store.write(points[i : i + _WRITE_CHUNK])
        except SeriesStoreError as exc:
            raise SeriesStoreError(
                f"{source}: stored {i} of {len(points)} points, then the store failed ({exc});"
                " import the file again to complete it"
            ) from exc
        report.stored += len(points[i : i + _WRITE_CHUNK])
    return report


def _number(value: float) -> str:
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def _utc(time_ns: int) -> str:
    return (_EPOCH + timedelta(microseconds=time_ns // 1000)).isoformat().replace("+00:00", "Z")


__all__ = [
    "ImportRefused",
    "ReadingsReport",
    "import_readings",
    "import_readings_data",
    "parse_readings",
]
