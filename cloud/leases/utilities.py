"""Utility charges for invoices: what posted apportionment runs allocated to each tenant.

Billing depends only on :class:`UtilityChargeSource`: posted per-unit amounts of tenants
[cents], one per (run, unit, party), for apportionment periods ending on or before a date,
that no invoice carries yet. :class:`PostedApportionment` reads them from
``cloud.apportion``'s tables — a run in state ``posted``, its lines (charges and the
adjustment lines a later run carries) summed per unit and party — and nothing else of that
package, so the engine can change without touching billing.

A line's unit is the meter-tree node; a unit node names its unit (``meter_tree_nodes``),
and a node not stored there is taken to be named as its unit (as in case files). Parties are
tenant ids (landlord lines, vacancy and excess loss, are never a tenant's).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import NamedTuple, Protocol

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session

from cloud.apportion.models import ApportionLine, ApportionRun, TreeNode
from cloud.leases.models import Tenant, UtilityBilling
from cloud.registry.bulk import fetch_all

POSTED = "posted"


class UtilityCharge(NamedTuple):
    """A posted amount [cents] for one tenant and unit from one run; ``last_day`` is the
    tenant's last day in the run's lines (which lease of the tenant it belongs to).
    (A named tuple: a billing run makes one per tenant and unit, 100,000 at a time.)"""

    run_id: str
    unit_id: str
    party: str
    period_start: date
    period_end: date
    last_day: date
    cents: int


class UtilityChargeSource(Protocol):
    """Where billing gets utility amounts from."""

    def unbilled_charges(self, session: Session, *, through: date) -> list[UtilityCharge]:
        """Posted per-unit tenant amounts of periods ending on or before ``through`` that
        no invoice carries yet (see :class:`cloud.leases.models.UtilityBilling`)."""
        ...


class PostedApportionment:
    """:class:`UtilityChargeSource` over ``cloud.apportion``'s posted runs."""

    def unbilled_charges(self, session: Session, *, through: date) -> list[UtilityCharge]:
        unit = func.coalesce(TreeNode.unit_id, ApportionLine.unit)
        billed = exists().where(
            and_(
                UtilityBilling.run_id == ApportionRun.id,
                UtilityBilling.unit_id == unit,
                UtilityBilling.party == ApportionLine.party,
            )
        )
        rows = fetch_all(
            session,
            select(
                ApportionRun.id,
                unit,
                ApportionLine.party,
                ApportionRun.period_start,
                ApportionRun.period_end,
                func.max(ApportionLine.to),
                func.sum(ApportionLine.cents),
            )
            .join(ApportionLine, ApportionLine.run_id == ApportionRun.id)
            .join(Tenant, Tenant.id == ApportionLine.party)
            .outerjoin(TreeNode, TreeNode.id == ApportionLine.unit)
            .where(
                ApportionRun.status == POSTED,
                ApportionRun.period_end <= through,
                ApportionLine.unit != "",
                ~billed,
            )
            .group_by(
                ApportionRun.id,
                unit,
                ApportionLine.party,
                ApportionRun.period_start,
                ApportionRun.period_end,
            )
            .order_by(ApportionRun.id, unit, ApportionLine.party),
        )
        out = []
        days: dict[tuple[str | None, date], date] = {}  # most lines end with their run
        for run_id, unit_id, party, start, end, last_to, cents in rows:
            last_day = days.get((last_to, end))
            if last_day is None:
                last_day = days[(last_to, end)] = (
                    date.fromisoformat(last_to) if last_to else end
                ) - timedelta(days=1)
            out.append(UtilityCharge(run_id, unit_id, party, start, end, last_day, int(cents)))
        return out
