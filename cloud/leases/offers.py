"""Renewal offers as staff work them (issue #18, decision 0034): states, approval, funnel.

An offer (made by :func:`cloud.leases.renewals.make_offer`) moves ``to_renew`` (待续签) →
``invited`` (已邀约) → ``negotiating`` (协商中) → ``signed`` (已签约) or ``lost`` (已流失);
it may be signed or lost from any open state, and invited only from ``to_renew``. Signing
renews the lease at the offered rent (:func:`~cloud.leases.renewals.accept_offer`). An offer
outside its price band waits for a supervisor's (or an admin's) approval — never its maker's —
and cannot be invited or signed before; a rejected one can only be lost. Every move is a row
of ``renewal_offer_steps`` (who, when) and an audit entry (subject ``offer:ID``) in the same
transaction.

:class:`OfferDesk` is the service behind the pages, the API and the commands: it applies the
caller's role and scope (sites, buildings; an offer out of scope is not found). The funnel
counts the offers made in a period at a site by their state now. Amounts are integer cents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.apportion.models import Unit
from cloud.leases.errors import OfferAwaitsApproval, OfferError, UnknownRecord
from cloud.leases.models import Lease, RenewalOffer, RenewalOfferStep, Tenant
from cloud.leases.renewals import (
    OPEN_OFFER_STATES,
    PriceSuggestion,
    accept_offer,
    make_offer,
    suggest_prices,
)
from cloud.leases.roster import ScopedDesk, scope_condition
from cloud.staff.accounts import Principal, Role
from cloud.staff.audit import record_change

#: the states in funnel order
STATES = ("to_renew", "invited", "negotiating", "signed", "lost")
#: state → the states it may move to (signing goes through :func:`accept_offer`)
NEXT: dict[str, frozenset[str]] = {
    "to_renew": frozenset({"invited", "signed", "lost"}),
    "invited": frozenset({"negotiating", "signed", "lost"}),
    "negotiating": frozenset({"signed", "lost"}),
}
#: who makes offers and moves them along (their buildings)
OFFER_ROLES = frozenset({Role.ADMIN, Role.MANAGER, Role.SUPERVISOR})
#: who approves or rejects an offer outside its band (not its maker)
APPROVER_ROLES = frozenset({Role.ADMIN, Role.SUPERVISOR})
#: who reads offers and the funnel
OFFER_READ_ROLES = frozenset({Role.ADMIN, Role.FINANCE, Role.MANAGER, Role.SUPERVISOR})
#: the most offers one listing returns
MAX_OFFERS = 500


def _snapshot(offer: RenewalOffer) -> dict[str, Any]:
    return {
        "status": offer.status,
        "approval": offer.approval,
        "offered_cents": offer.offered_cents,
        "successor_id": offer.successor_id,
        "decided_by": offer.decided_by,
    }


def get_offer(session: Session, offer_id: int) -> RenewalOffer:
    offer = session.get(RenewalOffer, offer_id)
    if offer is None:
        raise UnknownRecord(f"no renewal offer {offer_id}")
    return offer


def decide(session: Session, offer_id: int, *, approve: bool, by: str, at: datetime) -> None:
    """Approve or reject an offer waiting for approval; its maker may not (OfferError)."""
    offer = get_offer(session, offer_id)
    if offer.approval != "pending":
        raise OfferError(
            f"renewal offer {offer.id} does not wait for approval (approval: {offer.approval})"
        )
    if offer.by == by:
        raise OfferError(
            f"renewal offer {offer.id} was made by {by}; another supervisor or an admin decides"
        )
    offer.approval = "approved" if approve else "rejected"
    offer.decided_by, offer.decided_at = by, at
    session.add(
        RenewalOfferStep(
            offer_id=offer.id, from_status="pending", to_status=offer.approval, at=at, by=by
        )
    )
    session.flush()


def move(session: Session, offer_id: int, to: str, *, by: str, at: datetime, today: date) -> None:
    """Move an open offer to ``to`` (``invited``, ``negotiating``, ``signed``, ``lost``);
    ``signed`` renews the lease. OfferError for a move its state does not lead to,
    OfferAwaitsApproval to invite or sign an offer not approved."""
    offer = get_offer(session, offer_id)
    allowed = NEXT.get(offer.status, frozenset())
    if to not in allowed:
        raise OfferError(
            f"renewal offer {offer.id} is {offer.status}; it can move to "
            f"{', '.join(sorted(allowed)) or 'nothing'}, not {to}"
        )
    if to in ("invited", "negotiating", "signed") and offer.approval in ("pending", "rejected"):
        raise OfferAwaitsApproval(
            f"renewal offer {offer.id} is outside its price band and "
            + ("was rejected" if offer.approval == "rejected" else "awaits a supervisor's approval")
            + f"; it cannot be {to}"
        )
    if to == "signed":
        accept_offer(session, offer.id, by=by, today=today, at=at)
        return
    session.add(
        RenewalOfferStep(offer_id=offer.id, from_status=offer.status, to_status=to, at=at, by=by)
    )
    offer.status = to
    session.flush()


@dataclass(frozen=True)
class OfferRow:
    """An offer as the pages list it. Amounts in cents per month."""

    id: int
    lease_id: str
    site_id: str
    building: str
    unit_name: str
    tenant_name: str
    made_on: date
    by: str
    current_cents: int
    suggested_cents: int
    band_low_cents: int
    band_high_cents: int
    offered_cents: int
    flagged: bool
    flag_reason: str
    status: str
    approval: str
    decided_by: str | None
    successor_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Funnel:
    """Offers made from ``since`` to ``until`` (inclusive) at ``site`` (None: every site of
    the caller), counted by their state now; ``pending_approval`` of the open ones."""

    site: str | None
    since: date
    until: date
    counts: dict[str, int]
    pending_approval: int

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class OfferDesk(ScopedDesk):
    """Offers within a staff member's role and scope, audited (see the module doc)."""

    @staticmethod
    def _may(who: Principal, roles: frozenset[Role], what: str) -> None:
        if who.role not in roles:
            raise PermissionError(f"the {who.role.value} role may not {what}")

    def suggestion(self, who: Principal, lease_id: str) -> PriceSuggestion:
        """The suggested renewal rent of a lease in scope, its band and comparables;
        UnknownRecord when out of scope or when no suggestion can be made."""
        self._may(who, OFFER_READ_ROLES, "read renewal offers")
        self.roster.lease(who, lease_id)
        with self.sessions() as session:
            found = suggest_prices(session, self.today(), [lease_id]).get(lease_id)
        if found is None:
            raise UnknownRecord(
                f"lease {lease_id!r}: no price suggestion (a running standard lease with "
                "a unit profile, an area and a rent in force is needed)"
            )
        return found

    def make(self, who: Principal, lease_id: str, cents: int) -> OfferRow:
        """Make an offer at ``cents`` per month for a lease in scope (audited)."""
        self._may(who, OFFER_ROLES, "make renewal offers")
        self.roster.lease(who, lease_id)
        now = self.clock()
        with self.sessions.begin() as session:
            offer = make_offer(
                session, lease_id, cents, by=who.username, today=self.today(), at=now
            )
            record_change(
                session,
                at=now,
                actor=who.username,
                origin=who.origin,
                action="offer_made",
                subject=f"offer:{offer.id}",
                before=None,
                after={**_snapshot(offer), "lease": lease_id, "band": offer.flag_reason},
                note=offer.flag_reason,
            )
            offer_id = offer.id
        return self.offer(who, offer_id)

    def _scoped(self, who: Principal, session: Session, offer_id: int) -> RenewalOffer:
        offer = session.get(RenewalOffer, offer_id)
        if offer is None:
            raise UnknownRecord(f"no renewal offer {offer_id} in your sites and buildings")
        try:
            self.roster.lease(who, offer.lease_id)
        except UnknownRecord:
            raise UnknownRecord(
                f"no renewal offer {offer_id} in your sites and buildings"
            ) from None
        return offer

    def act(self, who: Principal, offer_id: int, action: str) -> OfferRow:
        """``approve``, ``reject`` (supervisor, admin; not the maker), ``invite``,
        ``negotiate``, ``sign``, ``lose`` (managers of the building, supervisors, admin)."""
        targets = {
            "invite": "invited",
            "negotiate": "negotiating",
            "sign": "signed",
            "lose": "lost",
        }
        if action in ("approve", "reject"):
            self._may(who, APPROVER_ROLES, "approve renewal offers")
        elif action in targets:
            self._may(who, OFFER_ROLES, "move renewal offers along")
        else:
            raise OfferError(
                f"offer action {action!r}: expected approve, reject, {', '.join(targets)}"
            )
        now = self.clock()
        with self.sessions.begin() as session:
            offer = self._scoped(who, session, offer_id)
            before = _snapshot(offer)
            if action in ("approve", "reject"):
                decide(session, offer.id, approve=action == "approve", by=who.username, at=now)
            else:
                move(
                    session, offer.id, targets[action], by=who.username, at=now, today=self.today()
                )
            record_change(
                session,
                at=now,
                actor=who.username,
                origin=who.origin,
                action=f"offer_{action}",
                subject=f"offer:{offer.id}",
                before=before,
                after=_snapshot(offer),
            )
        return self.offer(who, offer_id)

    def _query(self, who: Principal) -> Any:
        query = (
            select(RenewalOffer, Unit, Tenant.name)
            .join(Lease, Lease.id == RenewalOffer.lease_id)
            .join(Unit, Unit.id == Lease.unit_id)
            .join(Tenant, Tenant.id == Lease.tenant_id)
        )
        scope = scope_condition(who)
        return query if scope is None else query.where(scope)

    @staticmethod
    def _row(offer: RenewalOffer, unit: Unit, tenant_name: str) -> OfferRow:
        return OfferRow(
            id=offer.id,
            lease_id=offer.lease_id,
            site_id=unit.site_id,
            building=unit.building,
            unit_name=unit.name or unit.id,
            tenant_name=tenant_name,
            made_on=offer.made_on,
            by=offer.by,
            current_cents=offer.current_cents,
            suggested_cents=offer.suggested_cents,
            band_low_cents=offer.band_low_cents,
            band_high_cents=offer.band_high_cents,
            offered_cents=offer.offered_cents,
            flagged=offer.flagged,
            flag_reason=offer.flag_reason,
            status=offer.status,
            approval=offer.approval,
            decided_by=offer.decided_by,
            successor_id=offer.successor_id,
        )

    def offer(self, who: Principal, offer_id: int) -> OfferRow:
        """One offer in scope; UnknownRecord otherwise."""
        self._may(who, OFFER_READ_ROLES, "read renewal offers")
        with self.sessions() as session:
            found = session.execute(self._query(who).where(RenewalOffer.id == offer_id)).first()
        if found is None:
            raise UnknownRecord(f"no renewal offer {offer_id} in your sites and buildings")
        return self._row(*found)

    def offers(
        self,
        who: Principal,
        *,
        site: str | None = None,
        status: str | None = None,
        lease_id: str | None = None,
        pending: bool = False,
        limit: int = MAX_OFFERS,
    ) -> list[OfferRow]:
        """Offers in scope, newest first; narrowed to a site, a status, a lease, or those
        waiting for approval."""
        self._may(who, OFFER_READ_ROLES, "read renewal offers")
        query = self._query(who).order_by(RenewalOffer.made_on.desc(), RenewalOffer.id.desc())
        if site is not None:
            query = query.where(Unit.site_id == site)
        if status is not None:
            query = query.where(RenewalOffer.status == status)
        if lease_id is not None:
            query = query.where(RenewalOffer.lease_id == lease_id)
        if pending:
            query = query.where(RenewalOffer.approval == "pending")
        with self.sessions() as session:
            rows = session.execute(query.limit(min(max(limit, 1), MAX_OFFERS))).all()
        return [self._row(*r) for r in rows]

    def funnel(self, who: Principal, *, site: str | None, since: date, until: date) -> Funnel:
        """The offers made from ``since`` to ``until`` in scope, by state (see the class)."""
        self._may(who, OFFER_READ_ROLES, "read renewal offers")
        query = (
            select(RenewalOffer.status, RenewalOffer.approval, func.count())
            .join(Lease, Lease.id == RenewalOffer.lease_id)
            .join(Unit, Unit.id == Lease.unit_id)
            .where(RenewalOffer.made_on >= since, RenewalOffer.made_on <= until)
            .group_by(RenewalOffer.status, RenewalOffer.approval)
        )
        scope = scope_condition(who)
        if scope is not None:
            query = query.where(scope)
        if site is not None:
            query = query.where(Unit.site_id == site)
        counts = dict.fromkeys(STATES, 0)
        pending = 0
        with self.sessions() as session:
            for status, approval, n in session.execute(query):
                counts[status] = counts.get(status, 0) + int(n)
                if approval == "pending" and status in OPEN_OFFER_STATES:
                    pending += int(n)
        return Funnel(site, since, until, counts, pending)
