"""Move-out features and health-score components: pure numpy over arrays (no I/O).

Days are integers (``date.toordinal()``); the cutoff day ``as_of`` is the first day NOT seen:
every input was selected by the loader (:mod:`cloud.risk.loader`) to end before it, and
nothing here looks at a date ≥ ``as_of`` except contract dates known at signing (the end
of the lease, the paid-through date of payments already made).

Daily use is a leases × days matrix [kWh per day] of the ``window`` days before the cutoff,
NaN where unknown; the last ``RECENT_DAYS`` are "recent", the days before them the unit's
own "baseline".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RECENT_DAYS = 30
#: a day counts as (near) zero use below this share of the baseline's mean day, or 0.5 kWh
ZERO_SHARE = 0.05
ZERO_FLOOR_KWH = 0.5
LATE_WINDOW_DAYS = 365
TICKET_WINDOW_DAYS = 90
ACTIVITY_WINDOW_DAYS = 180
NEVER = np.iinfo(np.int32).max  # a day that never comes (unpaid, unresolved)

FEATURES: tuple[str, ...] = (
    "use_ratio",  # log(recent mean ÷ baseline mean) of the unit's own use
    "peer_ratio",  # use_ratio − the median use_ratio of comparable units
    "use_slope",  # least-squares slope of the recent days ÷ baseline mean, × 30
    "zero_streak",  # longest run of near-zero days in the window [days]
    "late_share",  # share of invoices due in the last 365 days paid late / unpaid
    "days_late",  # mean days late of those invoices (each capped at 60)
    "collections_stage",  # highest collections step reached by an invoice unpaid now
    "open_tickets",  # repair tickets open at the cutoff
    "recent_tickets",  # repair tickets opened in the last 90 days
    "days_to_expiry",  # contract end − cutoff [days]
    "days_to_paid_through",  # paid-through date − cutoff [days]
    "rent_ratio",  # log(rent per m² ÷ the comparable units' median rent per m²)
    "tenure_years",  # years since the tenant's first lease of the unit began
    "nps",  # the latest survey score 0–10 (7 when never answered)
    "activities",  # community activities joined in the last 180 days
)


@dataclass(frozen=True)
class Ledger:
    """Ledger rows as parallel arrays; ``*_lease`` are row indexes of the scored leases.

    Invoices [cents, days]: due day, day paid in full (``NEVER`` if not by the cutoff).
    Collections: the ladder rung (1 reminder, 2 internal task, 3 call, 4 escalation) an
    event of an invoice reached, its day, and whether the invoice was unpaid at the cutoff.
    Tickets: opened and resolved day (``NEVER`` if open at the cutoff).
    Activities: day of a participation. Surveys: day and score 0–10.
    """

    inv_lease: np.ndarray
    inv_due: np.ndarray
    inv_paid: np.ndarray
    col_lease: np.ndarray
    col_step: np.ndarray
    col_day: np.ndarray
    col_unpaid: np.ndarray
    tk_lease: np.ndarray
    tk_opened: np.ndarray
    tk_resolved: np.ndarray
    act_lease: np.ndarray
    act_day: np.ndarray
    nps_lease: np.ndarray
    nps_day: np.ndarray
    nps_score: np.ndarray


@dataclass(frozen=True)
class LeaseFacts:
    """Per lease: contract end, paid-through and tenure start [days], rent per m² [cents per
    m² per month], comparable group id (site, building, unit type)."""

    end_day: np.ndarray
    paid_through_day: np.ndarray
    tenure_start_day: np.ndarray
    rent_per_m2: np.ndarray
    group: np.ndarray


def group_median(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """For each row, the median of ``values`` over the rows of its group, NaNs ignored
    (NaN where the whole group is NaN)."""
    out = np.full(len(values), np.nan)
    ok = ~np.isnan(values)
    if not ok.any():
        return out
    g, v = group[ok], values[ok]
    order = np.lexsort((v, g))
    g, v = g[order], v[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    counts = np.diff(np.r_[starts, len(g)])
    lo = v[starts + (counts - 1) // 2]
    hi = v[starts + counts // 2]
    medians = (lo + hi) / 2
    groups = g[starts]
    pos = np.searchsorted(groups, group)
    pos = np.minimum(pos, len(groups) - 1)
    found = groups[pos] == group
    out[found] = medians[pos[found]]
    return out


def longest_run(flags: np.ndarray) -> np.ndarray:
    """Longest run of True per row of a boolean matrix [cells]."""
    n, d = flags.shape
    if d == 0:
        return np.zeros(n, dtype=np.int64)
    padded = np.zeros((n, d + 2), dtype=np.int8)
    padded[:, 1:-1] = flags
    change = np.diff(padded, axis=1)
    rows_s, cols_s = np.nonzero(change == 1)
    _, cols_e = np.nonzero(change == -1)  # row-major order pairs each start with its end
    lengths = cols_e - cols_s
    out = np.zeros(n, dtype=np.int64)
    np.maximum.at(out, rows_s, lengths)
    return out


def usage_features(daily: np.ndarray, group: np.ndarray) -> dict[str, np.ndarray]:
    """``use_ratio``, ``peer_ratio``, ``use_slope``, ``zero_streak`` of a leases × days
    matrix of daily use [kWh] (NaN unknown); NaN where the baseline is unknown or empty."""
    _n, d = daily.shape
    recent_n = min(RECENT_DAYS, d)
    base, recent = daily[:, : d - recent_n], daily[:, d - recent_n :]
    with np.errstate(invalid="ignore", divide="ignore"):
        base_mean = _nanmean(base)
        recent_mean = _nanmean(recent)
        usable = base_mean > 0
        ratio = np.where(usable, np.log((recent_mean + 0.1) / (base_mean + 0.1)), np.nan)
        # slope per day of the recent days (NaN days left out), relative to the baseline
        t = np.arange(recent_n, dtype=np.float64)
        known = ~np.isnan(recent)
        k = known.sum(axis=1)
        y = np.where(known, recent, 0.0)
        tt = np.where(known, t, 0.0)
        st, sy = tt.sum(axis=1), y.sum(axis=1)
        stt, sty = (tt * tt).sum(axis=1), (tt * y).sum(axis=1)
        den = k * stt - st * st
        slope = np.where(den > 0, (k * sty - st * sy) / np.where(den > 0, den, 1), np.nan)
        slope = np.where(usable, slope / base_mean * RECENT_DAYS, np.nan)
        threshold = np.maximum(ZERO_FLOOR_KWH, ZERO_SHARE * np.nan_to_num(base_mean))
        zero = daily < threshold[:, None]  # NaN compares False: unknown is not zero
    return {
        "use_ratio": ratio,
        "peer_ratio": ratio - group_median(ratio, group),
        "use_slope": slope,
        "zero_streak": longest_run(zero).astype(np.float64),
    }


def _nanmean(a: np.ndarray) -> np.ndarray:
    known = ~np.isnan(a)
    k = known.sum(axis=1)
    s = np.where(known, a, 0.0).sum(axis=1)
    return np.where(k > 0, s / np.maximum(k, 1), np.nan)


def ledger_features(ledger: Ledger, n: int, as_of: int) -> dict[str, np.ndarray]:
    """Payment, collections and ticket features of ``n`` leases at the cutoff day."""
    due_in = (ledger.inv_due < as_of) & (ledger.inv_due >= as_of - LATE_WINDOW_DAYS)
    lease = ledger.inv_lease[due_in]
    settled = np.minimum(ledger.inv_paid[due_in], as_of)
    late_days = np.clip(settled - ledger.inv_due[due_in], 0, 60).astype(np.float64)
    due_count = np.bincount(lease, minlength=n)
    late_count = np.bincount(lease, weights=late_days > 0, minlength=n)
    late_sum = np.bincount(lease, weights=late_days, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        late_share = np.where(due_count > 0, late_count / np.maximum(due_count, 1), 0.0)
        days_late = np.where(due_count > 0, late_sum / np.maximum(due_count, 1), 0.0)
    stage = np.zeros(n, dtype=np.int64)
    live = ledger.col_unpaid & (ledger.col_day < as_of)
    np.maximum.at(stage, ledger.col_lease[live], ledger.col_step[live])
    seen = ledger.tk_opened < as_of
    open_now = seen & (ledger.tk_resolved >= as_of)
    recent = seen & (ledger.tk_opened >= as_of - TICKET_WINDOW_DAYS)
    return {
        "late_share": late_share,
        "days_late": days_late,
        "collections_stage": stage.astype(np.float64),
        "open_tickets": np.bincount(ledger.tk_lease[open_now], minlength=n).astype(np.float64),
        "recent_tickets": np.bincount(ledger.tk_lease[recent], minlength=n).astype(np.float64),
    }


def contract_features(facts: LeaseFacts, as_of: int) -> dict[str, np.ndarray]:
    """Days to expiry and to the paid-through date, rent vs comparable units, tenure."""
    rent = facts.rent_per_m2.astype(np.float64)
    rent = np.where(rent > 0, rent, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        rent_ratio = np.log(rent / group_median(rent, facts.group))
    return {
        "days_to_expiry": np.clip(facts.end_day - as_of, -90, 800).astype(np.float64),
        "days_to_paid_through": np.clip(facts.paid_through_day - as_of, -365, 800).astype(
            np.float64
        ),
        "rent_ratio": rent_ratio,
        "tenure_years": np.maximum(as_of - facts.tenure_start_day, 0) / 365.25,
    }


def feature_matrix(daily: np.ndarray, ledger: Ledger, facts: LeaseFacts, as_of: int) -> np.ndarray:
    """The leases × :data:`FEATURES` matrix (float64, NaN where unknown)."""
    n = len(facts.end_day)
    cols = usage_features(daily, facts.group)
    cols |= ledger_features(ledger, n, as_of)
    cols |= contract_features(facts, as_of)
    comps = health_components(ledger, n, as_of)
    cols["nps"] = comps["nps"] / 10
    cols["activities"] = comps["activity"] * EXPECTED_ACTIVITIES / 100
    return np.column_stack([cols[name] for name in FEATURES]) if n else np.zeros((0, len(FEATURES)))


# --- the health score of docs/domain.md §5 ------------------------------------------------------

HEALTH_WEIGHTS = {"payment": 0.30, "repair": 0.25, "activity": 0.20, "deviation": 0.15, "nps": 0.10}
GREEN, YELLOW = 85.0, 70.0
NPS_UNKNOWN = 7  # no survey answer: scored as a passive (7 of 10)
EXPECTED_ACTIVITIES = 3  # participations in 180 days that earn the full activity score


def health_components(ledger: Ledger, n: int, as_of: int) -> dict[str, np.ndarray]:
    """The five components of the tenant health score, each 0–100:

    - payment timeliness: 100 × on-time share of the invoices due in the last 365 days,
      less 10 per collections step reached by an invoice unpaid now;
    - repair response: 100, less 20 per ticket open now and 10 per ticket of the last 90
      days;
    - activity participation: 100 × participations in the last 180 days ÷ 3, at most 100;
    - contract deviations: 100, less 25 per invoice that reached the call step (T+7) in the
      last 365 days;
    - NPS: 10 × the latest survey score (7 when never answered).
    """
    led = ledger_features(ledger, n, as_of)
    payment = 100 * (1 - led["late_share"]) - 10 * led["collections_stage"]
    repair = 100 - 20 * led["open_tickets"] - 10 * led["recent_tickets"]
    seen = (ledger.act_day < as_of) & (ledger.act_day >= as_of - ACTIVITY_WINDOW_DAYS)
    activity = 100 * np.bincount(ledger.act_lease[seen], minlength=n) / EXPECTED_ACTIVITIES
    called = (
        (ledger.col_step >= 3)
        & (ledger.col_day < as_of)
        & (ledger.col_day >= as_of - LATE_WINDOW_DAYS)
    )
    deviation = 100 - 25 * np.bincount(ledger.col_lease[called], minlength=n)
    nps = np.full(n, float(NPS_UNKNOWN))
    answered = ledger.nps_day < as_of
    if answered.any():
        lease, day, score = (
            ledger.nps_lease[answered],
            ledger.nps_day[answered],
            ledger.nps_score[answered],
        )
        order = np.lexsort((day, lease))  # per lease by day
        lease, score = lease[order], score[order]
        last = np.r_[lease[1:] != lease[:-1], True]
        nps[lease[last]] = score[last]
    return {
        name: np.clip(values, 0, 100).astype(np.float64)
        for name, values in (
            ("payment", payment),
            ("repair", repair),
            ("activity", activity),
            ("deviation", deviation),
            ("nps", 10 * nps),
        )
    }


def health_score(components: dict[str, np.ndarray]) -> np.ndarray:
    """Σ weight × component (0–100)."""
    return sum(HEALTH_WEIGHTS[k] * components[k] for k in HEALTH_WEIGHTS)  # type: ignore[return-value]


def health_band(score: np.ndarray) -> np.ndarray:
    """green ≥ 85, yellow 70–84, red < 70 (rounded to whole points first)."""
    s = np.round(score)
    return np.where(s >= GREEN, "green", np.where(s >= YELLOW, "yellow", "red"))
