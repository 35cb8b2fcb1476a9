"""Vacancy forecast per building and month, with an interval (pure functions + a loader).

The issue's rule — expected vacant units = current vacancies + Σ move-out probability of the
leases ending in the month — is taken one step further, because a unit vacated in month 1 is
often let again by month 3 and a vacancy of today is not always one at the end of the
month. For the last day L of each of the next six months:

    E[vacant on L] = Σ_vacant units  S(c(v, L)) ÷ S(c(v, as_of))
                   + Σ_leases ending by L  p × S(c(end, L))

where v is the first vacant day of a vacant unit, ``end`` a lease's contract end (its first
uncovered day), p its calibrated move-out probability, and S(x) the probability that a
vacancy lasts beyond x — Kaplan–Meier over the vacancies of the history (ongoing ones
censored). Durations are measured on the calendar, c(a, b) = 31 × (months from a's month
to b's) + (b's day − a's day): a vacancy from the 1st of one month to the 1st of the next is
one month (31) whether the month has 28 or 31 days, so lettings that start on the 1st do
not smear across month lengths. With no history S = 1 and the rule is the issue's, counted
cumulatively. A vacant unit with a lease already signed is vacant exactly until that lease starts.

Each unit is vacant on L or not, independently: the count is a sum of Bernoulli variables,
so its distribution is Poisson-binomial, computed exactly; the interval is its 5th–95th
percentile (90 %).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.apportion.models import Unit
from cloud.leases.models import Lease, UnitProfile
from cloud.leases.periods import add_months

LEVEL = 0.90
HISTORY_DAYS = 730
_EPOCH = date(1970, 1, 1).toordinal()


def kaplan_meier(durations: np.ndarray, observed: np.ndarray, horizon: int) -> np.ndarray:
    """S[d] = P(duration > d) for d = 0..horizon (any integer unit); ``observed`` False =
    censored (the duration is known to exceed the value; a negative one tells nothing)."""
    keep = np.asarray(durations) >= 0
    durations, observed = np.asarray(durations)[keep], np.asarray(observed)[keep]
    durations = np.asarray(durations, dtype=np.int64)
    observed = np.asarray(observed, dtype=bool)
    surv = np.ones(horizon + 1)
    if len(durations) == 0:
        return surv
    ends = np.bincount(durations[observed].clip(0, horizon + 1), minlength=horizon + 2)
    leaves = np.bincount(durations.clip(0, horizon + 1), minlength=horizon + 2)
    at_risk = len(durations) - np.concatenate([[0], np.cumsum(leaves)[:-1]])
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(at_risk > 0, 1 - ends / np.maximum(at_risk, 1), 1.0)
    return np.cumprod(factor)[: horizon + 1]


def poisson_binomial(p: np.ndarray) -> np.ndarray:
    """P(Σ Bernoulli(p_i) = k) for k = 0..n (exact, O(n²))."""
    dist = np.zeros(len(p) + 1)
    dist[0] = 1.0
    for i, q in enumerate(np.clip(p, 0.0, 1.0)):
        dist[1 : i + 2] = dist[1 : i + 2] * (1 - q) + dist[: i + 1] * q
        dist[0] *= 1 - q
    return dist


def interval(p: np.ndarray, level: float = LEVEL) -> tuple[int, int]:
    """The central ``level`` interval [low, high] of a Poisson-binomial count."""
    cdf = np.cumsum(poisson_binomial(np.asarray(p, dtype=float)))
    tail = (1 - level) / 2
    low = int(np.searchsorted(cdf, tail - 1e-12))
    high = int(np.searchsorted(cdf, 1 - tail - 1e-12))
    return low, min(high, len(p))


@dataclass(frozen=True)
class MonthForecast:
    """Expected vacant units of a building on the last day of a month, with the interval."""

    building: str
    month: date
    on: date
    current: int
    expected: float
    low: int
    high: int
    move_outs: float


def _month_index(days: np.ndarray) -> np.ndarray:
    d = np.asarray(days, dtype=np.int64) - _EPOCH
    return d.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)


def calendar_offset(first: np.ndarray, last: np.ndarray | int) -> np.ndarray:
    """31 × (months from ``first``'s month to ``last``'s) + (last's day − first's day), for
    day ordinals: 31 per calendar month, 1 per day within one; increasing in ``last``."""
    first = np.asarray(first, dtype=np.int64)
    last = np.broadcast_to(np.asarray(last, dtype=np.int64), first.shape)
    return (
        31 * (_month_index(last) - _month_index(first)) + _day_of_month(last) - _day_of_month(first)
    )


def _day_of_month(days: np.ndarray) -> np.ndarray:
    d = (np.asarray(days, dtype=np.int64) - _EPOCH).astype("datetime64[D]")
    return (d - d.astype("datetime64[M]")).astype(np.int64) + 1


def month_ends(as_of: date, months: int = 6) -> list[date]:
    """Last days of the ``months`` months from ``as_of``'s own month."""
    first = as_of.replace(day=1)
    return [add_months(first, k + 1) - timedelta(days=1) for k in range(months)]


def forecast(
    as_of: date,
    *,
    vacant_building: list[str],
    vacant_since: np.ndarray,
    vacant_until: np.ndarray,
    lease_building: list[str],
    lease_end: np.ndarray,
    lease_p: np.ndarray,
    survival: np.ndarray,
    buildings: list[str],
    months: int = 6,
) -> list[MonthForecast]:
    """The forecast of the module doc. Days are ordinals; ``vacant_until`` is the start of
    an already signed lease (a large number when none)."""
    horizon = len(survival) - 1

    def s(k: np.ndarray) -> np.ndarray:  # S(k), 1 before any duration
        return np.where(k < 0, 1.0, survival[np.clip(k, 0, horizon)])

    vb = np.asarray(vacant_building, dtype=object)
    lb = np.asarray(lease_building, dtype=object)
    out = []
    for end_day in month_ends(as_of, months):
        last = end_day.toordinal()
        with np.errstate(invalid="ignore", divide="ignore"):
            base = s(calendar_offset(vacant_since, as_of.toordinal()))
            q_vac = np.where(
                base > 0, s(calendar_offset(vacant_since, last)) / np.where(base > 0, base, 1), 1.0
            )
        q_vac = np.where(vacant_until <= last, 0.0, np.where(vacant_until < 2**31 - 1, 1.0, q_vac))
        ended = lease_end <= last
        q_lease = np.where(ended, lease_p * s(calendar_offset(lease_end, last)), 0.0)
        for b in buildings:
            qv, ql = q_vac[vb == b], q_lease[lb == b]
            probs = np.concatenate([qv, ql[ql > 0]])
            low, high = interval(probs)
            out.append(
                MonthForecast(
                    b,
                    end_day.replace(day=1),
                    end_day,
                    int((vb == b).sum()),
                    round(float(probs.sum()), 3),
                    low,
                    high,
                    round(float(ql.sum()), 3),
                )
            )
    return out


# --- from the registry ----------------------------------------------------------------------


@dataclass(frozen=True)
class Occupancy:
    """Rentable units and the leases that cover them (as stored: the loader filters by date)."""

    unit_building: dict[str, str]
    spans: list[tuple[str, date, date | None, date | None]]  # unit, start, ended, signed
    renewals: dict[str, tuple[int, date]] = field(default_factory=dict)
    """index in ``spans`` of a lease renewed → the day its renewal was signed"""


def load_occupancy(session: Session, site_id: str) -> Occupancy:
    """Rentable units of a site (units without a profile count as rentable) and their
    standard leases' spans."""
    units = dict(
        session.execute(
            select(Unit.id, Unit.building)
            .outerjoin(UnitProfile, UnitProfile.unit_id == Unit.id)
            .where(
                Unit.site_id == site_id,
                (UnitProfile.rentable.is_(None)) | (UnitProfile.rentable.is_(True)),
            )
        ).all()
    )
    rows = session.execute(
        select(
            Lease.id,
            Lease.unit_id,
            Lease.start_on,
            Lease.ended_on,
            Lease.signed_on,
            Lease.renewed_from_id,
        )
        .join(Unit, Unit.id == Lease.unit_id)
        .where(
            Unit.site_id == site_id,
            Lease.kind == "standard",
            Lease.parent_id.is_(None),
            Lease.signed_on.is_not(None),
        )
        .order_by(Lease.unit_id, Lease.start_on)
    ).all()
    position = {r[0]: i for i, r in enumerate(rows)}
    renewals = {position[r[5]]: (i, r[4]) for i, r in enumerate(rows) if r[5] in position}
    return Occupancy(
        units,
        [(u, s, e, g) for _, u, s, e, g, _ in rows],
        {k: (v[0], v[1]) for k, v in renewals.items()},
    )


def vacancy_state(
    occ: Occupancy, as_of: date
) -> tuple[dict[str, int], dict[str, int], np.ndarray, np.ndarray]:
    """As known on ``as_of`` (leases signed before it, ends before it): per vacant unit its
    first vacant day and the start of a lease signed for it; and the history's vacancy
    durations (:func:`calendar_offset`) with their observed flags, for :func:`kaplan_meier`."""
    by_unit: dict[str, list[tuple[date, date | None, bool]]] = {u: [] for u in occ.unit_building}
    for k, (unit, start, ended, signed) in enumerate(occ.spans):
        if unit in by_unit and signed is not None and signed < as_of:
            renewal = occ.renewals.get(k)
            renewed = renewal is not None and renewal[1] < as_of
            by_unit[unit].append(
                (start, ended if ended is not None and ended <= as_of else None, renewed)
            )
    since: dict[str, int] = {}
    until: dict[str, int] = {}
    durations, observed = [], []
    floor = as_of - timedelta(days=HISTORY_DAYS)
    for unit, spans in by_unit.items():
        spans.sort()
        covered = any(s <= as_of and (e is None or e > as_of) for s, e, _ in spans)
        for k, (_s, e, renewed) in enumerate(spans):
            if e is None or e < floor or renewed:  # a renewal is no vacancy
                continue
            nxt = [s2 for s2, _, _ in spans[k + 1 :] if s2 >= e]
            if nxt and nxt[0] <= as_of:  # vacant until the next lease starts
                durations.append(_offset(e, nxt[0]))
                observed.append(True)
            else:  # still vacant on as_of: lasts beyond its age
                durations.append(_offset(e, as_of))
                observed.append(False)
        if not covered:
            ends = [e for _, e, _ in spans if e is not None and e <= as_of]
            since[unit] = (max(ends) if ends else floor).toordinal()
            later = [s for s, _, _ in spans if s > as_of]
            if later:
                until[unit] = min(later).toordinal()
    return since, until, np.asarray(durations, dtype=np.int64), np.asarray(observed, bool)


def _offset(first: date, last: date) -> int:
    return int(calendar_offset(np.array([first.toordinal()]), last.toordinal())[0])


def realised_vacancies(occ: Occupancy, on: date) -> dict[str, int]:
    """Vacant rentable units per building on a day, from the leases as finally stored."""
    covered = {u for u, s, e, _ in occ.spans if s <= on and (e is None or e > on)}
    out: dict[str, int] = {}
    for unit, building in occ.unit_building.items():
        out.setdefault(building, 0)
        if unit not in covered:
            out[building] += 1
    return out
