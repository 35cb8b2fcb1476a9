"""Inputs of the risk features as of a cutoff, from the registry and the series store.

The cutoff ``as_of`` is a local date: the first day NOT seen. Every query selects only rows
dated before it (invoices issued, payments made, collection steps taken, tickets opened or
resolved, activities, survey answers: ``< as_of``; series points: before local midnight of
``as_of``); a state that changed later is seen as it was (an invoice paid after the cutoff
is unpaid, a ticket resolved after it is open). Contract facts known at signing (the end of
the lease, its rent plan) are used as they are. tests/risk/test_risk.py shifts everything after a
cutoff and checks that nothing computed here changes.

Scored leases: standard leases without parent, signed, started by ``as_of`` and not ended
before it; optionally only those whose contract ends in a window (a cohort).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import String, cast, func, or_, select
from sqlalchemy.orm import Session

from cloud.apportion.models import MeterInstallation, TreeNode, Unit
from cloud.leases.models import (
    CollectionEvent,
    Invoice,
    Lease,
    RentStepRow,
    RepairComplaint,
    UnitProfile,
)
from cloud.registry.models import Site
from cloud.risk.features import NEVER, LeaseFacts, Ledger
from cloud.risk.models import TenantActivity, TenantSurvey
from cloud.series.base import SeriesStore

WINDOW_DAYS = 90
QUANTITY = "energy_import"
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_FAR = "2999-12-31"


@dataclass(frozen=True)
class RiskInputs:
    """Everything the features need for the leases scored at ``as_of``."""

    as_of: date
    lease_ids: list[str]
    tenant_ids: list[str]
    unit_ids: list[str]
    site_ids: list[str]
    buildings: list[str]
    daily: np.ndarray  # leases × WINDOW_DAYS [kWh per day], NaN unknown
    ledger: Ledger
    facts: LeaseFacts

    @property
    def as_of_day(self) -> int:
        return self.as_of.toordinal()


def _days(values: list[str | None] | tuple[str | None, ...]) -> np.ndarray:
    """ISO date strings → day ordinals (int64); the far sentinel → :data:`NEVER`."""
    if not values:
        return np.zeros(0, dtype=np.int64)
    d = np.array(values, dtype="datetime64[D]").astype(np.int64) + _EPOCH_ORDINAL
    return np.where(d >= date(2999, 12, 31).toordinal(), NEVER, d)


#: A collection event's rung by what it did (its day offset depends on the lease's policy:
#: a ladder may hand over to legal at T+14 or T+15, or remind twice).
RUNGS = {"reminder": 1, "internal_task": 2, "call_task": 3, "escalation": 4, "legal_handover": 4}


def _stage(actions: list[str]) -> np.ndarray:
    """Collection events' actions → their rungs 1–4 (1 reminder, 2 internal task, 3 call,
    4 escalation or legal hand-over)."""
    return np.array([RUNGS[a] for a in actions], dtype=np.int64)


def _iso(col):  # type: ignore[no-untyped-def]
    """A date column as its ISO string (a far date for NULL): parsed by numpy at once."""
    return func.coalesce(cast(col, String), _FAR)


def scored_leases(
    as_of: date,
    *,
    site_id: str | None = None,
    ends_from: date | None = None,
    ends_before: date | None = None,
):  # type: ignore[no-untyped-def]
    """The select of the ids of the leases scored at ``as_of`` (see the module doc)."""
    q = select(Lease.id).where(
        Lease.kind == "standard",
        Lease.parent_id.is_(None),
        Lease.signed_on.is_not(None),
        Lease.signed_on < as_of,
        Lease.start_on <= as_of,
        or_(Lease.ended_on.is_(None), Lease.ended_on > as_of),
    )
    if site_id is not None:
        q = q.join(Unit, Unit.id == Lease.unit_id).where(Unit.site_id == site_id)
    if ends_from is not None:
        q = q.where(Lease.end_on >= ends_from)
    if ends_before is not None:
        q = q.where(Lease.end_on < ends_before)
    return q


def load_inputs(
    session: Session,
    store: SeriesStore,
    as_of: date,
    *,
    site_id: str | None = None,
    ends_from: date | None = None,
    ends_before: date | None = None,
    quantity: str = QUANTITY,
    window_days: int = WINDOW_DAYS,
) -> RiskInputs:
    """Read the scored leases' series and ledger as of ``as_of`` (see the module doc)."""
    ids_q = scored_leases(
        as_of, site_id=site_id, ends_from=ends_from, ends_before=ends_before
    ).subquery()
    rows = session.execute(
        select(
            Lease.id,
            Lease.tenant_id,
            Lease.unit_id,
            _iso(Lease.end_on),
            Unit.site_id,
            Unit.building,
            Unit.area_m2,
            func.coalesce(UnitProfile.unit_type, ""),
            _iso(Lease.start_on),
        )
        .join(Unit, Unit.id == Lease.unit_id)
        .outerjoin(UnitProfile, UnitProfile.unit_id == Lease.unit_id)
        .where(Lease.id.in_(select(ids_q.c.id)))
        .order_by(Lease.id)
    ).all()
    n = len(rows)
    lease_ids = [r[0] for r in rows]
    index = {lease_id: i for i, lease_id in enumerate(lease_ids)}
    pair_index = {(r[1], r[2]): i for i, r in enumerate(rows)}
    tenant_rows: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        tenant_rows.setdefault(r[1], []).append(i)
    in_scope = Lease.id.in_(select(ids_q.c.id))

    # --- contract facts -------------------------------------------------------------------
    groups: dict[tuple[str, str, str], int] = {}
    group = np.array(
        [groups.setdefault((r[4], r[5], r[7]), len(groups)) for r in rows], dtype=np.int64
    )
    area = np.array([float(r[6] or 0) for r in rows])
    end_day = _days([r[3] for r in rows])
    rent = np.zeros(n)
    rent_day = np.full(n, -1, dtype=np.int64)
    for lease_id, starts, cents in session.execute(
        select(RentStepRow.lease_id, _iso(RentStepRow.starts_on), RentStepRow.monthly_cents)
        .join(Lease, Lease.id == RentStepRow.lease_id)
        .where(in_scope, RentStepRow.starts_on <= as_of, RentStepRow.free.is_(False))
    ):
        i, day = index[lease_id], date.fromisoformat(starts).toordinal()
        if day > rent_day[i]:
            rent_day[i], rent[i] = day, cents
    with np.errstate(invalid="ignore", divide="ignore"):
        rent_per_m2 = np.where(area > 0, rent / np.where(area > 0, area, 1), np.nan)
    tenure = session.execute(
        select(Lease.tenant_id, Lease.unit_id, _iso(func.min(Lease.start_on)))
        .where(
            Lease.start_on <= as_of, Lease.tenant_id.in_(select(Lease.tenant_id).where(in_scope))
        )
        .group_by(Lease.tenant_id, Lease.unit_id)
    ).all()
    start_day = _days([r[8] for r in rows])
    tenure_start = start_day.copy()
    for tenant_id, unit_id, first in tenure:
        i = pair_index.get((tenant_id, unit_id))
        if i is not None:
            tenure_start[i] = date.fromisoformat(first).toordinal()
    paid = session.execute(
        select(Invoice.lease_id, _iso(func.max(Invoice.period_end)))
        .join(Lease, Lease.id == Invoice.lease_id)
        .where(in_scope, Invoice.paid_on.is_not(None), Invoice.paid_on < as_of)
        .group_by(Invoice.lease_id)
    ).all()
    paid_through = start_day.copy()  # nothing paid: paid through the first day
    for lease_id, last_end in paid:
        paid_through[index[lease_id]] = date.fromisoformat(last_end).toordinal()
    facts = LeaseFacts(end_day, paid_through, tenure_start, rent_per_m2, group)

    # --- ledger --------------------------------------------------------------------------
    since = as_of - timedelta(days=365)
    inv = session.execute(
        select(
            Invoice.lease_id,
            _iso(Invoice.due_on),
            func.coalesce(cast(Invoice.paid_on, String), _FAR),
        )
        .join(Lease, Lease.id == Invoice.lease_id)
        .where(
            in_scope, Invoice.issued_on < as_of, Invoice.due_on >= since, Invoice.total_cents > 0
        )
    ).all()
    inv_paid = _days([r[2] for r in inv])
    inv_paid = np.where(inv_paid >= as_of.toordinal(), NEVER, inv_paid)
    col = session.execute(
        select(
            Invoice.lease_id,
            CollectionEvent.action,
            _iso(CollectionEvent.happened_on),
            _iso(Invoice.paid_on),
        )
        .join(Invoice, Invoice.id == CollectionEvent.invoice_id)
        .join(Lease, Lease.id == Invoice.lease_id)
        .where(in_scope, CollectionEvent.happened_on < as_of, CollectionEvent.happened_on >= since)
    ).all()
    col_paid = _days([r[3] for r in col])
    tk = session.execute(
        select(
            RepairComplaint.tenant_id,
            RepairComplaint.unit_id,
            _iso(RepairComplaint.opened_on),
            _iso(RepairComplaint.resolved_on),
        ).where(
            RepairComplaint.opened_on < as_of,
            RepairComplaint.opened_on >= as_of - timedelta(days=730),
            RepairComplaint.tenant_id.in_(select(Lease.tenant_id).where(in_scope)),
        )
    ).all()
    tk = [r for r in tk if (r[0], r[1]) in pair_index]
    tk_resolved = _days([r[3] for r in tk])
    tk_resolved = np.where(tk_resolved >= as_of.toordinal(), NEVER, tk_resolved)
    act = session.execute(
        select(TenantActivity.tenant_id, _iso(TenantActivity.held_on)).where(
            TenantActivity.held_on < as_of,
            TenantActivity.held_on >= as_of - timedelta(days=365),
            TenantActivity.tenant_id.in_(select(Lease.tenant_id).where(in_scope)),
        )
    ).all()
    act_rows = [(i, day) for tenant, day in act for i in tenant_rows.get(tenant, ())]
    nps = session.execute(
        select(TenantSurvey.tenant_id, _iso(TenantSurvey.answered_on), TenantSurvey.score).where(
            TenantSurvey.answered_on < as_of,
            TenantSurvey.answered_on >= as_of - timedelta(days=730),
            TenantSurvey.tenant_id.in_(select(Lease.tenant_id).where(in_scope)),
        )
    ).all()
    nps_rows = [(i, day, score) for tenant, day, score in nps for i in tenant_rows.get(tenant, ())]
    ledger = Ledger(
        inv_lease=np.array([index[r[0]] for r in inv], dtype=np.int64),
        inv_due=_days([r[1] for r in inv]),
        inv_paid=inv_paid,
        col_lease=np.array([index[r[0]] for r in col], dtype=np.int64),
        col_step=_stage([r[1] for r in col]),
        col_day=_days([r[2] for r in col]),
        col_unpaid=col_paid >= as_of.toordinal(),
        tk_lease=np.array([pair_index[(r[0], r[1])] for r in tk], dtype=np.int64),
        tk_opened=_days([r[2] for r in tk]),
        tk_resolved=tk_resolved,
        act_lease=np.array([i for i, _ in act_rows], dtype=np.int64),
        act_day=_days([d for _, d in act_rows]),
        nps_lease=np.array([i for i, _, _ in nps_rows], dtype=np.int64),
        nps_day=_days([d for _, d, _ in nps_rows]),
        nps_score=np.array([s for _, _, s in nps_rows], dtype=np.float64),
    )

    # --- daily use -----------------------------------------------------------------------
    daily = np.full((n, window_days), np.nan)
    meters = dict(
        session.execute(
            select(TreeNode.unit_id, MeterInstallation.meter_id)
            .join(MeterInstallation, MeterInstallation.node_id == TreeNode.id)
            .where(
                TreeNode.unit_id.in_(select(Lease.unit_id).where(in_scope)),
                or_(
                    MeterInstallation.installed_on.is_(None), MeterInstallation.installed_on < as_of
                ),
                or_(MeterInstallation.removed_on.is_(None), MeterInstallation.removed_on >= as_of),
            )
            .order_by(TreeNode.unit_id, MeterInstallation.installed_on)
        ).all()
    )
    zones = dict(session.execute(select(Site.id, Site.timezone)).all())
    by_site: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        if r[2] in meters:
            by_site.setdefault(r[4], []).append(i)
    for site, members in by_site.items():
        tz = zones.get(site) or "Asia/Shanghai"
        zone = ZoneInfo(tz)
        end = datetime.combine(as_of, time(0), zone).astimezone(UTC)
        start = datetime.combine(as_of - timedelta(days=window_days), time(0), zone).astimezone(UTC)
        ids = [meters[rows[i][2]] for i in members]
        cm = store.consumption_matrix(ids, quantity, start, end, "1d", tz, site=site)
        daily[members] = np.where(cm.mask, cm.usage, np.nan)
    return RiskInputs(
        as_of,
        lease_ids,
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[4] for r in rows],
        [r[5] for r in rows],
        daily,
        ledger,
        facts,
    )
