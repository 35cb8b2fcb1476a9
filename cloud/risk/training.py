"""Outcomes, cohorts, training sets and the time-split backtest.

A lease's outcome is read from the registry as it stood on a ``known_by`` date: *stayed*
when a renewal (a lease with ``renewed_from_id`` = it) was signed by then, or the tenant is
still there 60 days after the contract end (open-ended); *left* when it ended by then with
no renewal. Otherwise it is unknown and left out.

Cohorts: every week, on day t, the leases running at t whose contract ends in [t + lead,
t + 7 + lead) — each lease is scored once, ``lead`` to ``lead`` + 6 days before its end (45
days: the seeds' "45 days ahead"). The backtest trains on the
cohorts whose contracts end before the split (outcomes known by the split) and tests on
those ending after it (outcomes known by the end of the history).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.leases.models import Lease
from cloud.risk.features import feature_matrix, health_components, health_score
from cloud.risk.loader import load_inputs
from cloud.risk.model import RiskModel, fit, metrics
from cloud.series.base import SeriesStore

LEAD_DAYS = 45
FORECAST_LEAD_DAYS = 90  # the forecast's model: scored ~3 months ahead, mid-horizon
OPEN_ENDED_STAY_DAYS = 60


def outcomes(session: Session, lease_ids: list[str], known_by: date) -> dict[str, int]:
    """1 = left, 0 = stayed, for the leases whose outcome is known by ``known_by``."""
    if not lease_ids:
        return {}
    out: dict[str, int] = {}
    for i in range(0, len(lease_ids), 500):
        chunk = lease_ids[i : i + 500]
        renewed = {
            r
            for (r,) in session.execute(
                select(Lease.renewed_from_id).where(
                    Lease.renewed_from_id.in_(chunk),
                    Lease.signed_on.is_not(None),
                    Lease.signed_on < known_by,
                )
            )
        }
        for lease_id, end_on, ended_on in session.execute(
            select(Lease.id, Lease.end_on, Lease.ended_on).where(Lease.id.in_(chunk))
        ):
            if lease_id in renewed:
                out[lease_id] = 0
            elif ended_on is not None and ended_on <= known_by:
                out[lease_id] = 1
            elif (ended_on is None or ended_on > known_by) and end_on + timedelta(
                days=OPEN_ENDED_STAY_DAYS
            ) <= known_by:
                out[lease_id] = 0
    return out


SNAPSHOT_DAYS = 7


def snapshots(first: date, last: date) -> list[date]:
    """Snapshot days from the first Monday on or after ``first`` to ``last``, a week apart."""
    t = first + timedelta(days=(7 - first.weekday()) % 7)
    out = []
    while t <= last:
        out.append(t)
        t += timedelta(days=SNAPSHOT_DAYS)
    return out


@dataclass
class Examples:
    """Feature rows of scored cohorts with their outcomes and health scores."""

    lease_ids: list[str] = field(default_factory=list)
    scored_on: list[date] = field(default_factory=list)
    x: list[np.ndarray] = field(default_factory=list)
    health: list[np.ndarray] = field(default_factory=list)
    y: list[int] = field(default_factory=list)

    def matrices(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from cloud.risk.features import FEATURES

        x = np.vstack(self.x) if self.x else np.zeros((0, len(FEATURES)))
        h = np.concatenate(self.health) if self.health else np.zeros(0)
        return x, h, np.asarray(self.y, dtype=int)


def cohort_examples(
    session: Session,
    store: SeriesStore,
    snapshots: list[date],
    known_by: date,
    *,
    lead_days: int = LEAD_DAYS,
    ends_before: date | None = None,
) -> Examples:
    """Features at each snapshot of its cohort, kept where the outcome is known."""
    ex = Examples()
    for t in snapshots:
        lo = t + timedelta(days=lead_days)
        hi = t + timedelta(days=SNAPSHOT_DAYS + lead_days)
        if ends_before is not None:
            hi = min(hi, ends_before)
        if hi <= lo:
            continue
        inputs = load_inputs(session, store, t, ends_from=lo, ends_before=hi)
        if not inputs.lease_ids:
            continue
        known = outcomes(session, inputs.lease_ids, known_by)
        keep = np.array([lid in known for lid in inputs.lease_ids])
        if not keep.any():
            continue
        x = feature_matrix(inputs.daily, inputs.ledger, inputs.facts, inputs.as_of_day)
        h = health_score(health_components(inputs.ledger, len(inputs.lease_ids), inputs.as_of_day))
        ex.x.append(x[keep])
        ex.health.append(h[keep])
        for lid in np.asarray(inputs.lease_ids, dtype=object)[keep]:
            ex.lease_ids.append(lid)
            ex.scored_on.append(t)
            ex.y.append(known[lid])
    return ex


def train(
    session: Session,
    store: SeriesStore,
    *,
    history_from: date,
    as_of: date,
    lead_days: int = LEAD_DAYS,
) -> tuple[RiskModel, dict[str, Any]]:
    """Fit on every cohort whose outcome is known by ``as_of``; metrics: in-sample and a
    time-split validation (fitted on the older 70 % of snapshots, measured on the rest)."""
    snaps = snapshots(history_from + timedelta(days=90), as_of - timedelta(days=lead_days))
    ex = cohort_examples(session, store, snaps, as_of, lead_days=lead_days, ends_before=as_of)
    x, health, y = ex.matrices()
    model = fit(x, y)
    info: dict[str, Any] = {
        "examples": len(y),
        "snapshots": len(snaps),
        "train": metrics(y, model.predict(x)),
    }
    cut = snaps[int(len(snaps) * 0.7)] if len(snaps) >= 4 else None
    if cut is not None:
        old = np.array([d < cut for d in ex.scored_on])
        if old.any() and (~old).any() and len(np.unique(y[old])) == 2:
            held = fit(x[old], y[old])
            info["validation"] = metrics(y[~old], held.predict(x[~old]))
            info["validation_baseline"] = metrics(y[~old], baseline_risk(health[~old]))
    return model, info


def baseline_risk(health: np.ndarray) -> np.ndarray:
    """The health score as a move-out risk for ranking metrics: (100 − score) ÷ 100."""
    return (100.0 - health) / 100.0


def backtest_examples(
    session: Session,
    store: SeriesStore,
    *,
    history_from: date,
    split: date,
    history_to: date,
    lead_days: int = LEAD_DAYS,
) -> tuple[Examples, Examples]:
    """Training examples (contracts ending before ``split``, outcomes as known by it) and
    test examples (ending in [split, history_to), outcomes known by ``history_to``). Both
    sides only take contracts that ended before their ``known_by``: a renewal is known
    before the end and a move-out only at it, so later ones would be all stayers."""
    first = history_from + timedelta(days=90)
    train_snaps = snapshots(first, split - timedelta(days=lead_days))
    test_snaps = snapshots(
        split - timedelta(days=lead_days) + timedelta(days=1),
        history_to - timedelta(days=lead_days),
    )
    tr = cohort_examples(session, store, train_snaps, split, lead_days=lead_days, ends_before=split)
    te = cohort_examples(
        session, store, test_snaps, history_to, lead_days=lead_days, ends_before=history_to
    )
    return tr, te


def backtest(
    session: Session,
    store: SeriesStore,
    *,
    history_from: date,
    split: date,
    history_to: date,
    lead_days: int = LEAD_DAYS,
) -> dict[str, Any]:
    """Train on outcomes known by ``split``, test on the cohorts ending after it; ROC AUC
    and precision at the top 10 % for the model and for the health-score baseline."""
    tr, te = backtest_examples(
        session,
        store,
        history_from=history_from,
        split=split,
        history_to=history_to,
        lead_days=lead_days,
    )
    x_tr, _, y_tr = tr.matrices()
    x_te, h_te, y_te = te.matrices()
    model = fit(x_tr, y_tr)
    p = model.predict(x_te)
    return {
        "train": {"leases": len(y_tr), "left": int(y_tr.sum())},
        "test": {"leases": len(y_te), "left": int(y_te.sum())},
        "model": metrics(y_te, p),
        "baseline": metrics(y_te, baseline_risk(h_te)),
        "model_params": model.to_json(),
    }
