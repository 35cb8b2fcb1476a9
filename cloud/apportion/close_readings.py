"""The close's readings: from the series store to the case file's ``readings`` and
``history`` sections (see :mod:`cloud.apportion.close` and decision 0012).

Every point stamped exactly at a local midnight of the period is a reading; at the days the
engine cuts the period at, a meter without one gets a value interpolated in time between its
nearest points within :data:`INTERPOLATION_WINDOW`, marked ``estimated`` / ``interpolated``.
Stored values are primary-side (× CT × PT); readings are registers, so each is divided by
the site file's multiplier in force that day. Pure over a store: no registry, no writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np

from cloud.apportion.case.readings import ReadingTable
from cloud.apportion.case.schema import MeterSpec
from cloud.apportion.site import SiteFile
from cloud.series.base import SeriesStore

#: How far from a boundary a point may lie to be interpolated from (each side).
INTERPOLATION_WINDOW = timedelta(days=1)


def boundary_days(site: SiteFile, start: date, end: date) -> list[date]:
    """The days the engine cuts [start, end) at: where readings are needed."""
    s = site.schema
    days = {start, end}
    dated: list[date | None] = []
    for t in s.tariffs:
        dated += [t.from_, t.to]
    for stays in s.occupancy.values():
        for stay in stays:
            dated += [stay.from_, stay.to]
    for m in s.meters:
        dated += [m.installed, m.removed]
        if isinstance(m.multiplier, list):
            dated += [x.from_ for x in m.multiplier]
    days |= {d for d in dated if d is not None and start < d < end}
    return sorted(days)


def midnight_ns(day: date, zone: ZoneInfo) -> int:
    local = datetime(day.year, day.month, day.day, tzinfo=zone)
    return int(local.astimezone(UTC).timestamp()) * 1_000_000_000


def boundary_readings(
    store: SeriesStore,
    site: SiteFile,
    start: date,
    end: date,
    window: timedelta = INTERPOLATION_WINDOW,
) -> tuple[ReadingTable, int, list[tuple[str, str]]]:
    """Per meter, its readings at the local midnights of [start, end] (the case's
    ``readings``, as a :class:`ReadingTable`: arrays, decision 0036).

    Every day's point stamped exactly at midnight is taken (daily freeze snapshots give
    the engine day-by-day registers for rollover and gap checks). At the days the engine
    cuts the period at (:func:`boundary_days`) a meter without such a point gets a value
    interpolated between its nearest points within ``window`` on either side, marked
    ``estimated`` / ``interpolated``; failing that the (meter, day) is returned as missing.
    Only a meter's installed part of the period is read. Values are divided by the
    multiplier in force that day and written with at most 6 decimals.

    Returns (readings, how many readings were interpolated, (meter, day) pairs missing,
    by day then meter). Queries: the midnight points of every day per register
    (:meth:`points_at`), and at each cut day one window query over the meters still
    lacking a value (the store chunks by meters). No Python object per reading: the
    points stay in arrays (meters × days × registers) to the table.
    """
    s = site.schema
    zone = ZoneInfo(s.timezone)
    meters = sorted(m.id for m in s.meters)
    by_id = {m.id: m for m in s.meters}
    cuts = set(boundary_days(site, start, end))
    span = int(window.total_seconds()) * 1_000_000_000
    days = [start + timedelta(days=d) for d in range((end - start).days + 1)]
    instants = [midnight_ns(day, zone) for day in days]
    nreg = len(s.registers)
    midnights = np.full((len(meters), len(days), nreg), np.nan)
    for j, register in enumerate(s.registers):
        idx, times, vals, _quality = store.points_at(
            meters, s.quantity(register), instants, site=s.site
        )
        midnights[idx, np.searchsorted(np.asarray(instants), times), j] = vals  # exact hits
    first = np.array(
        [(max(start, by_id[m].installed or start) - start).days for m in meters], dtype=np.int64
    )
    last = np.array(
        [(min(end, by_id[m].removed or end) - start).days for m in meters], dtype=np.int64
    )
    k = np.arange(len(days))
    installed = (k >= first[:, None]) & (k <= last[:, None])  # meters × days
    read = ~np.isnan(midnights).any(axis=2)  # every register read exactly
    for d, day in enumerate(days):
        if day not in cuts:
            continue
        lacking = np.flatnonzero(installed[:, d] & ~read[:, d])
        if not lacking.size:
            continue
        names = [meters[i] for i in lacking]
        at = instants[d]
        for j, register in enumerate(s.registers):
            idx, times, vals, _quality = store.raw_points(
                names, s.quantity(register), at - span, at + span + 1, site=s.site
            )
            guess, _ = _at_instant(len(names), idx, times, vals, at)
            column = midnights[lacking, d, j]
            midnights[lacking, d, j] = np.where(np.isnan(column), guess, column)
    multiplier = np.ones((len(meters), len(days)))
    for i, m in enumerate(meters):
        if isinstance(by_id[m].multiplier, list):
            multiplier[i] = [float(multiplier_on(by_id[m], day)) for day in days]
        else:
            multiplier[i] = float(by_id[m].multiplier)
    values = midnights / multiplier[:, :, None]  # stored values are primary-side (× CT × PT)
    complete = installed & ~np.isnan(values).any(axis=2)
    cut = np.array([day in cuts for day in days])
    lost = (installed & ~complete & cut[None, :]).T  # days × meters: by day, then meter
    missing = [(meters[m], days[d].isoformat()) for d, m in zip(*np.nonzero(lost), strict=True)]
    rows_m, rows_d = np.nonzero(complete)  # by meter, then day
    estimated = ~read[rows_m, rows_d]
    counts = np.bincount(rows_m, minlength=len(meters))
    have = counts > 0
    table = ReadingTable.from_values(
        [m for m, h in zip(meters, have.tolist(), strict=True) if h],
        list(s.registers),
        counts[have],
        rows_d.astype(np.int64) + start.toordinal(),
        values[rows_m, rows_d].reshape(-1, nreg),
        estimated,
    )
    return table, int(estimated.sum()), missing


#: The comparable period a meter's history (average daily use) is taken from: the days
#: just before the close's period.
HISTORY_DAYS = 28


def meter_history(
    store: SeriesStore, site: SiteFile, start: date, meters: Sequence[str]
) -> dict[str, dict[str, str]]:
    """The case's ``history`` [kWh/day] of ``meters``: per register, the use between the
    local midnights :data:`HISTORY_DAYS` days before ``start`` and ``start`` ÷ the days, from
    points stamped exactly there (primary-side already). A meter without both points, or
    whose register went down (a rollover or a replacement), gets none."""
    s = site.schema
    zone = ZoneInfo(s.timezone)
    names = sorted(set(meters))
    if not names:
        return {}
    first = midnight_ns(start - timedelta(days=HISTORY_DAYS), zone)
    last = midnight_ns(start, zone)
    use = np.full((len(names), len(s.registers)), np.nan)
    for j, register in enumerate(s.registers):
        idx, times, vals, _quality = store.points_at(
            names, s.quantity(register), [first, last], site=s.site
        )
        ends = np.full((len(names), 2), np.nan)
        ends[idx, (times == last).astype(np.int64)] = vals
        use[:, j] = (ends[:, 1] - ends[:, 0]) / HISTORY_DAYS
    return {
        meter: dict(zip(s.registers, map(_decimal_text, use[i]), strict=True))
        for i, meter in enumerate(names)
        if not np.isnan(use[i]).any() and (use[i] >= 0).all()
    }


def installed_on(meter: MeterSpec, day: date, start: date, end: date) -> bool:
    """Whether a reading of ``meter`` on ``day`` belongs to the case (its installed part)."""
    return max(start, meter.installed or start) <= day <= min(end, meter.removed or end)


def multiplier_on(meter: MeterSpec, day: date) -> Decimal:
    """The site file's multiplier of ``meter`` in force on ``day``."""
    if not isinstance(meter.multiplier, list):
        return meter.multiplier
    steps = [x.value for x in sorted(meter.multiplier, key=lambda x: x.from_) if x.from_ <= day]
    return steps[-1] if steps else meter.multiplier[0].value


def _decimal_text(value: float) -> str:
    """A register value as text with at most 6 decimals (the registers' own resolution is
    2-3 decimals; interpolated values are rounded to 1e-6)."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


def _at_instant(
    count: int, idx: np.ndarray, times: np.ndarray, values: np.ndarray, at: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per meter: the value at ``at`` (exact point, else linear between the nearest points
    before and after) and whether it was exact. NaN where neither exists."""
    out = np.full(count, np.nan)
    exact = np.zeros(count, dtype=bool)
    if idx.size == 0:
        return out, exact
    order = np.lexsort((times, idx))
    idx, times, values = idx[order], times[order], values[order]
    hit = times == at
    out[idx[hit]] = values[hit]
    exact[idx[hit]] = True
    before = times < at
    after = times > at
    # last point before ``at`` and first after, per meter (points are sorted by meter, time)
    last_before = np.full(count, -1)
    first_after = np.full(count, -1)
    positions = np.arange(idx.size)
    last_before[idx[before]] = positions[before]  # later positions overwrite earlier ones
    rev = positions[after][::-1]
    first_after[idx[after][::-1]] = rev
    need = ~exact & (last_before >= 0) & (first_after >= 0)
    b, a = last_before[need], first_after[need]
    t0, t1 = times[b].astype(np.float64), times[a].astype(np.float64)
    v0, v1 = values[b], values[a]
    out[need] = v0 + (v1 - v0) * (at - t0) / (t1 - t0)
    return out, exact
