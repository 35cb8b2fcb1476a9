"""A run's statements as finance's pages list them: one per unit and tenant and one for the
landlord (as the run posts them), each with its total from the run's lines and the tenant's
answer; all of them (:func:`statement_totals`) or a page of them, optionally only those a
search text finds (:func:`statement_page`), read with SQL ``LIMIT``/``OFFSET`` and ``COUNT``
so that a 10,000-unit run does not load 10,000 rows for a page of 100.

A search finds a statement whose unit (its meter-tree node) or party contains the text, whose
unit's display name (the node's name, else its unit's, as the site registry has them now)
contains it, or whose party has a tenant name containing it (the occupancy's tenant names,
and whoever else keeps tenants through ``tenants_named``: apportionment does not import the
leases). Case is ignored; ``%`` and ``_`` are plain characters.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, or_, select
from sqlalchemy.orm import Session

from cloud.apportion.exports import StatementTotal
from cloud.apportion.models import (
    ApportionLine,
    ApportionRun,
    OccupancySegment,
    StatementConfirmation,
    StatementDispute,
    TreeNode,
    Unit,
)
from cloud.apportion.statement import LANDLORD_PARTY
from cloud.registry.base import as_utc

#: text → a query of the tenant ids whose name contains the text (one column)
TenantSearch = Callable[[str], Select[Any]]


#: A line's statement's unit: the landlord's statement is one for all its lines, whatever
#: their unit. One expression object for SELECT, GROUP BY and ORDER BY alike: PostgreSQL
#: matches them by their bound parameters too.
_UNIT = case((ApportionLine.party == LANDLORD_PARTY, ""), else_=ApportionLine.unit)


def _found(run: ApportionRun, text: str, tenants_named: TenantSearch | None) -> ColumnElement[bool]:
    """Whether a line's statement (its unit key and party: whole statements, never some of
    their lines) is one that ``text`` finds."""
    named_nodes = (
        select(TreeNode.id)
        .outerjoin(Unit, TreeNode.unit_id == Unit.id)
        .where(
            TreeNode.site_id == run.site_id,
            or_(
                TreeNode.name.icontains(text, autoescape=True),
                Unit.name.icontains(text, autoescape=True),
            ),
        )
    )
    occupants = (
        select(OccupancySegment.tenant)
        .join(TreeNode, OccupancySegment.node_id == TreeNode.id)
        .where(
            TreeNode.site_id == run.site_id,
            OccupancySegment.tenant_name.icontains(text, autoescape=True),
        )
    )
    found = [
        _UNIT.icontains(text, autoescape=True),
        ApportionLine.party.icontains(text, autoescape=True),
        _UNIT.in_(named_nodes),
        ApportionLine.party.in_(occupants),
    ]
    if tenants_named is not None:
        found.append(ApportionLine.party.in_(tenants_named(text)))
    return or_(*found)


def _answers(
    session: Session, run_id: str, units: Collection[str] | None
) -> tuple[dict[tuple[str, str], StatementConfirmation], set[tuple[str, str]]]:
    """The tenants' confirmations and open disputes of the run (of ``units`` only, if given)."""
    confirmed = select(StatementConfirmation).where(StatementConfirmation.run_id == run_id)
    disputes = select(StatementDispute.unit, StatementDispute.party).where(
        StatementDispute.run_id == run_id, StatementDispute.status == "open"
    )
    if units is not None:
        confirmed = confirmed.where(StatementConfirmation.unit.in_(sorted(units)))
        disputes = disputes.where(StatementDispute.unit.in_(sorted(units)))
    confirmations = {(c.unit, c.party): c for c in session.scalars(confirmed)}
    return confirmations, {(u, p) for u, p in session.execute(disputes).all()}


def _totals(
    session: Session, run_id: str, rows: list[Any], units: Collection[str] | None
) -> list[StatementTotal]:
    confirmations, disputed = _answers(session, run_id, units)
    out = []
    for unit, party, cents in rows:
        confirmation = confirmations.get((unit, party))
        out.append(
            StatementTotal(
                unit,
                party,
                int(cents),
                as_utc(confirmation.confirmed_at) if confirmation else None,
                (unit, party) in disputed,
                confirmation.confirmed_name if confirmation else "",
            )
        )
    return out


def page_start(start: int, total: int, count: int) -> int:
    """``start`` (from 0), or the last page's start when it is past the end of ``total``
    rows (``count`` a page)."""
    return min(max(start, 0), max(total - 1, 0) // count * count)


def _grouped(run_id: str) -> Select[Any]:
    return (
        select(_UNIT, ApportionLine.party, func.sum(ApportionLine.cents))
        .where(ApportionLine.run_id == run_id)
        .group_by(_UNIT, ApportionLine.party)
    )


def statement_totals(session: Session, run_id: str) -> list[StatementTotal]:
    """Every statement of the run, by unit and party (the landlord's first: no unit)."""
    rows = session.execute(_grouped(run_id).order_by(_UNIT, ApportionLine.party)).all()
    return _totals(session, run_id, list(rows), None)


def statement_page(
    session: Session,
    run: ApportionRun,
    start: int,
    count: int,
    search: str = "",
    tenants_named: TenantSearch | None = None,
    *,
    tenants_only: bool = False,
    clamp: bool = True,
) -> tuple[list[StatementTotal], int, int]:
    """The statements ``start`` … ``start + count − 1`` (from 0, by unit and party) of those
    ``search`` finds (all when it is empty; the tenants' only, without the landlord's own,
    when ``tenants_only``); how many it finds; and the ``start`` used: one past the end is
    moved back to the last page's (``count`` ≥ 1 a page) unless not ``clamp``."""
    query = _grouped(run.id)
    if tenants_only:
        query = query.where(ApportionLine.party != LANDLORD_PARTY)
    if search:
        query = query.where(_found(run, search, tenants_named))
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    start = page_start(start, total, count) if clamp else max(start, 0)
    rows = session.execute(
        query.order_by(_UNIT, ApportionLine.party).offset(start).limit(count)
    ).all()
    return _totals(session, run.id, list(rows), {u for u, _p, _c in rows}), total, start


def unit_names(session: Session, site: str, nodes: Collection[str]) -> dict[str, str]:
    """Node → its display name (the node's name, else its unit's) in the site registry, for
    the ``nodes`` that have one."""
    wanted = sorted({n for n in nodes if n})
    if not wanted:
        return {}
    rows = session.execute(
        select(TreeNode.id, TreeNode.name, Unit.name)
        .outerjoin(Unit, TreeNode.unit_id == Unit.id)
        .where(TreeNode.site_id == site, TreeNode.id.in_(wanted))
    ).all()
    return {node: name or unit or "" for node, name, unit in rows if name or unit}
