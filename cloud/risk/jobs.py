"""Risk jobs: train and store a model version, score running leases, the managers' risk
list, the vacancy forecast. Used by the CLI (``meterflow cloud risk ...``), the API and the
renewal reminders (:func:`high_risk_leases`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from cloud.apportion.models import Unit
from cloud.leases.models import Lease
from cloud.risk.features import (
    NEVER,
    feature_matrix,
    health_band,
    health_components,
    health_score,
)
from cloud.risk.forecast import (
    MonthForecast,
    forecast,
    kaplan_meier,
    load_occupancy,
    month_ends,
    vacancy_state,
)
from cloud.risk.loader import load_inputs
from cloud.risk.model import RiskModel, reasons
from cloud.risk.models import RiskModelRow, RiskScore
from cloud.risk.training import FORECAST_LEAD_DAYS, train
from cloud.risk.wording import Reason
from cloud.series.base import SeriesStore

HIGH_RISK = 0.5  # a lease at or above this probability is "high risk" for the reminders


class NoModel(LookupError):
    """No trained model version exists yet: run ``meterflow cloud risk train``."""


def train_job(
    session: Session,
    store: SeriesStore,
    as_of: date,
    *,
    history_from: date | None = None,
    now: datetime | None = None,
) -> RiskModelRow:
    """Train on every outcome known by ``as_of`` and store the version with its metrics."""
    if history_from is None:
        first = session.scalar(select(func.min(Lease.start_on)))
        if first is None:
            raise ValueError("no leases: nothing to train on")
        history_from = first
    model, info = train(session, store, history_from=history_from, as_of=as_of)
    far, far_info = train(
        session, store, history_from=history_from, as_of=as_of, lead_days=FORECAST_LEAD_DAYS
    )
    info["forecast_model"] = far_info
    row = RiskModelRow(
        trained_at=now or datetime.now(UTC),
        as_of=as_of,
        examples=info["examples"],
        params={**model.to_json(), "forecast": far.to_json()},
        metrics=info,
        active=True,
    )
    session.add(row)
    session.flush()
    return row


def active_model(session: Session) -> tuple[int, RiskModel]:
    """The newest active model version."""
    row = session.scalars(
        select(RiskModelRow)
        .where(RiskModelRow.active.is_(True))
        .order_by(RiskModelRow.version.desc())
        .limit(1)
    ).first()
    if row is None:
        raise NoModel("no move-out model has been trained: run `meterflow cloud risk train`")
    return row.version, RiskModel.from_json(row.params)


def forecast_model(session: Session) -> tuple[int, RiskModel]:
    """The newest active version's forecast model: trained on leases scored 90 days before
    their end (a lease months from its end shows none of the late signs the 45-day model
    learned from, which would read as "stays" and bias far-ahead probabilities low)."""
    version, _ = active_model(session)
    row = session.get(RiskModelRow, version)
    assert row is not None
    return version, RiskModel.from_json(row.params.get("forecast") or row.params)


@dataclass(frozen=True)
class Scores:
    """Scores of the running leases at ``as_of`` (parallel lists / arrays)."""

    as_of: date
    model_version: int | None
    lease_ids: list[str]
    tenant_ids: list[str]
    unit_ids: list[str]
    buildings: list[str]
    end_day: np.ndarray
    probability: np.ndarray  # NaN without a model
    health: np.ndarray
    band: np.ndarray
    components: dict[str, np.ndarray]
    reasons: list[list[dict[str, Any]]]  # {"feature", "value"} each (cloud.risk.model.reasons)


def score(
    session: Session,
    store: SeriesStore,
    as_of: date,
    *,
    site_id: str | None = None,
    model: tuple[int, RiskModel] | None = None,
    ends_before: date | None = None,
    with_reasons: bool = True,
) -> Scores:
    """Features, probability, reasons and health score of every running lease."""
    inputs = load_inputs(session, store, as_of, site_id=site_id, ends_before=ends_before)
    n = len(inputs.lease_ids)
    x = feature_matrix(inputs.daily, inputs.ledger, inputs.facts, inputs.as_of_day)
    comps = health_components(inputs.ledger, n, inputs.as_of_day)
    health = health_score(comps) if n else np.zeros(0)
    try:
        version, fitted = model or active_model(session)
        p = fitted.predict(x)
        why = reasons(fitted, x) if with_reasons else [[] for _ in range(n)]
    except NoModel:
        version, p, why = None, np.full(n, np.nan), [[] for _ in range(n)]
    return Scores(
        as_of,
        version,
        inputs.lease_ids,
        inputs.tenant_ids,
        inputs.unit_ids,
        inputs.buildings,
        inputs.facts.end_day,
        p,
        health,
        health_band(health) if n else np.zeros(0, dtype=object),
        comps,
        why,
    )


def store_scores(session: Session, scores: Scores) -> int:
    """Replace the stored scores of ``scores.as_of`` by these; returns the rows written."""
    session.execute(delete(RiskScore).where(RiskScore.scored_on == scores.as_of))
    rows = [
        {
            "lease_id": lid,
            "scored_on": scores.as_of,
            "model_version": scores.model_version,
            "probability": None if np.isnan(p) else round(float(p), 6),
            "health": round(float(h), 2),
            "band": str(b),
            "reasons": why,
        }
        for lid, p, h, b, why in zip(
            scores.lease_ids,
            scores.probability,
            scores.health,
            scores.band,
            scores.reasons,
            strict=True,
        )
    ]
    for i in range(0, len(rows), 5000):
        session.execute(insert(RiskScore), rows[i : i + 5000])
    session.flush()
    return len(rows)


def risk_list(
    session: Session, *, site_id: str | None = None, limit: int = 200, scored_on: date | None = None
) -> list[dict[str, Any]]:
    """The managers' list from the latest stored scores: highest probability first (the
    health score orders leases scored without a model), with the reasons as stored
    (``{"feature", "value"}``, or words in rows stored before: cloud.risk.wording words them)."""
    day = scored_on or session.scalar(select(func.max(RiskScore.scored_on)))
    if day is None:
        return []
    q = (
        select(
            RiskScore,
            Lease.tenant_id,
            Lease.unit_id,
            Lease.end_on,
            Lease.manager_id,
            Unit.site_id,
            Unit.building,
        )
        .join(Lease, Lease.id == RiskScore.lease_id)
        .join(Unit, Unit.id == Lease.unit_id)
        .where(RiskScore.scored_on == day)
    )
    if site_id is not None:
        q = q.where(Unit.site_id == site_id)
    rows = session.execute(q).all()
    rows.sort(
        key=lambda r: (
            -(r[0].probability if r[0].probability is not None else -1),
            r[0].health,
            r[0].lease_id,
        )
    )
    return [
        {
            "lease_id": s.lease_id,
            "tenant_id": tenant,
            "unit_id": unit,
            "site_id": site,
            "building": building,
            "manager_id": manager,
            "end_on": end_on.isoformat(),
            "scored_on": s.scored_on.isoformat(),
            "model_version": s.model_version,
            "probability": s.probability,
            "health": s.health,
            "band": s.band,
            "high_risk": s.probability is not None and s.probability >= HIGH_RISK,
            "reasons": s.reasons,
        }
        for s, tenant, unit, end_on, manager, site, building in rows[:limit]
    ]


def high_risk_leases(
    session: Session, lease_ids: list[str], *, threshold: float = HIGH_RISK
) -> dict[str, tuple[float, list[Reason]]]:
    """For the given leases, their latest stored score at or above ``threshold``:
    (probability, reasons as stored — ``{"feature", "value"}`` or, stored before, words)."""
    out: dict[str, tuple[float, list[Reason]]] = {}
    for i in range(0, len(lease_ids), 500):
        chunk = lease_ids[i : i + 500]
        latest = (
            select(RiskScore.lease_id, func.max(RiskScore.scored_on).label("day"))
            .where(RiskScore.lease_id.in_(chunk))
            .group_by(RiskScore.lease_id)
            .subquery()
        )
        for s in session.scalars(
            select(RiskScore).join(
                latest,
                (latest.c.lease_id == RiskScore.lease_id) & (latest.c.day == RiskScore.scored_on),
            )
        ):
            if s.probability is not None and s.probability >= threshold:
                out[s.lease_id] = (s.probability, list(s.reasons))
    return out


def vacancy_forecast(
    session: Session,
    store: SeriesStore,
    site_id: str,
    as_of: date,
    *,
    months: int = 6,
    model: tuple[int, RiskModel] | None = None,
) -> list[MonthForecast]:
    """The six-month forecast of a site's buildings (cloud.risk.forecast) as of ``as_of``,
    with the move-out probabilities of the leases ending in the horizon scored now."""
    occ = load_occupancy(session, site_id)
    since, until, durations, observed = vacancy_state(occ, as_of)
    horizon_end = month_ends(as_of, months)[-1] + timedelta(days=1)
    scores = score(
        session,
        store,
        as_of,
        site_id=site_id,
        model=model or forecast_model(session),
        ends_before=horizon_end,
        with_reasons=False,
    )
    if scores.model_version is None:
        raise NoModel(
            "the vacancy forecast needs a move-out model: run `meterflow cloud risk train`"
        )
    survival = kaplan_meier(durations, observed, horizon=31 * 60)  # calendar offsets
    vacant = sorted(since)
    buildings = sorted(set(occ.unit_building.values()))
    return forecast(
        as_of,
        vacant_building=[occ.unit_building[u] for u in vacant],
        vacant_since=np.array([since[u] for u in vacant], dtype=np.int64),
        vacant_until=np.array([until.get(u, NEVER) for u in vacant], dtype=np.int64),
        lease_building=scores.buildings,
        lease_end=scores.end_day,
        lease_p=scores.probability,
        survival=survival,
        buildings=buildings,
        months=months,
    )


class RiskListService:
    """The risk list for the web: the latest stored scores within a staff member's sites."""

    def __init__(self, sessions: Any) -> None:
        self.sessions = sessions

    def items(
        self,
        sites: frozenset[str] | None,
        *,
        site: str | None = None,
        limit: int = 200,
        keep: Callable[[str, str], bool] | None = None,
    ) -> list[dict[str, Any]]:
        """``sites``: the sites allowed (None: all); ``site``: one of them, or all allowed;
        ``keep(site, building)``: whether a unit's building is in scope too (building scope of
        a staff account, e.g. ``Principal.may_see_unit``)."""
        if site is not None and sites is not None and site not in sites:
            return []
        narrowed = sites is not None or keep is not None
        with self.sessions() as session:
            rows = risk_list(session, site_id=site, limit=100_000 if narrowed else limit)
        if sites is not None:
            rows = [r for r in rows if r["site_id"] in sites]
        if keep is not None:
            rows = [r for r in rows if keep(r["site_id"], r["building"])]
        return rows[:limit]
