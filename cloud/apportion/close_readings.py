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
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

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
) -> tuple[dict[str, dict[date, dict[str, Any]]], int, list[tuple[str, str]]]:
    """Per meter, its readings at the local midnights of [start, end] in the case file's form.

    Every day's point stamped exactly at midnight is taken (daily freeze snapshots give
    the engine day-by-day registers for rollover and gap checks). At the days the engine
    cuts the period at (:func:`boundary_days`) a meter without such a point gets a value
    interpolated between its nearest points within ``window`` on either side, marked
    ``estimated`` / ``interpolated``; failing that the (meter, day) is returned as missing.
    Only a meter's installed part of the period is read.

    Returns (readings, how many readings were interpolated, (meter, day) pairs missing).
    Queries: the midnight points of every day per register (:meth:`points_at`), and at
    each cut day one window query over the meters still lacking a value (the store chunks
    by meters).
    """
    s = site.schema
    zone = ZoneInfo(s.timezone)
    meters = sorted(m.id for m in s.meters)
    by_id = {m.id: m for m in s.meters}
    cuts = set(boundary_days(site, start, end))
    span = int(window.total_seconds()) * 1_000_000_000
    out: dict[str, dict[date, dict[str, Any]]] = {}
    interpolated = 0
    missing: list[tuple[str, str]] = []
    days = [start + timedelta(days=d) for d in range((end - start).days + 1)]
    instants = [midnight_ns(day, zone) for day in days]
    position = {m: i for i, m in enumerate(meters)}
    midnights = np.full((len(meters), len(days), len(s.registers)), np.nan)
    for j, register in enumerate(s.registers):
        idx, times, vals, _quality = store.points_at(
            meters, s.quantity(register), instants, site=s.site
        )
        midnights[idx, np.searchsorted(np.asarray(instants), times), j] = vals  # exact hits
    installed = {
        m: (max(start, by_id[m].installed or start), min(end, by_id[m].removed or end))
        for m in meters
    }
    constant = {
        m: float(by_id[m].multiplier) for m in meters if not isinstance(by_id[m].multiplier, list)
    }
    for k, day in enumerate(days):
        active = [m for m in meters if installed[m][0] <= day <= installed[m][1]]
        if not active:
            continue
        at = instants[k]
        rows = [position[m] for m in active]
        values = midnights[rows, k, :] if len(rows) < len(meters) else midnights[:, k, :].copy()
        exact = ~np.isnan(values)
        lacking = np.flatnonzero(~exact.all(axis=1))
        if day in cuts and lacking.size:
            names = [active[i] for i in lacking]
            for j, register in enumerate(s.registers):
                idx, times, vals, _quality = store.raw_points(
                    names, s.quantity(register), at - span, at + span + 1, site=s.site
                )
                guess, _ = _at_instant(len(names), idx, times, vals, at)
                column = values[lacking, j]
                values[lacking, j] = np.where(np.isnan(column), guess, column)
        multiplier = np.array(
            [constant[m] if m in constant else float(multiplier_on(by_id[m], day)) for m in active]
        )
        values /= multiplier[:, None]  # stored values are primary-side (× CT × PT)
        # plain lists per day: per-element numpy indexing is the slow part of 300,000
        complete = (~np.isnan(values).any(axis=1)).tolist()
        read = exact.all(axis=1).tolist()
        texts = [list(map(_decimal_text, column)) for column in values.T.tolist()]
        for i, meter in enumerate(active):
            if not complete[i]:
                if day in cuts:
                    missing.append((meter, day.isoformat()))
                continue
            reading: dict[str, Any] = {
                "values": {r: texts[j][i] for j, r in enumerate(s.registers)}
            }
            if not read[i]:
                reading.update(quality="estimated", method="interpolated")
                interpolated += 1
            out.setdefault(meter, {})[day] = reading
    return out, interpolated, missing


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
