"""The renewal itself (docs/domain.md §5): expiry, auto-renewal, prices, offers, review queue.

Expiry, auto-renewal, price suggestions inside a band consistent across comparable units,
offers, the review queue; the reminders before the end and their escalation are
:mod:`cloud.leases.reminders`.

Expiry is judged on the later of the contract end and the paid-through date (a quarterly
payer runs past the contract date). The daily :func:`process_expiries` moves leases along:
renewal successors start, ``active`` → ``expiring`` at the first reminder offset before the
end, and at the end an ``expiring`` lease is auto-renewed when its contract says so and a
payment covering the next cycle arrived within the window (30 days) before the end —
unless arrears block it — or becomes ``open_ended`` once its expiry has passed.

Price suggestion for comparable units (same site, building and unit type): the group's
median current rent per m² raised by the middle of the band is the target; each lease's
suggestion is the target × its area, clamped into [current × (1 + low), current × (1 +
high)], rounded half up to the cent. Identical units at the same rent get the same price,
and a gap between identical units narrows at each renewal instead of being carried on.
Each suggestion names the comparable leases it came from (unit, area, rent per m²).
An offer outside its band is recorded, flagged with the reason, and waits for a supervisor's
approval (``approval`` ``pending``) before it can be signed; offers move along the states of
:mod:`cloud.leases.offers` (to_renew → invited → negotiating → signed / lost).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.apportion.models import Unit
from cloud.apportion.money import cny
from cloud.leases.errors import (
    IllegalTransition,
    OfferAwaitsApproval,
    RenewalBlocked,
    UnknownRecord,
)
from cloud.leases.lifecycle import (
    activate_successor,
    get_lease,
    mark_expiring,
    mark_open_ended,
    renew,
)
from cloud.leases.models import (
    Lease,
    LeaseStatus,
    RenewalOffer,
    RenewalOfferStep,
    RenewalReminder,
    RentStepRow,
    UnitProfile,
)
from cloud.leases.money import round_half_up, scale_cents
from cloud.leases.notices import review_reasons
from cloud.leases.payments import account_of, arrears, covering_payment_between, paid_through
from cloud.leases.policies import PolicyBook, load_book, policy_of
from cloud.leases.reminders import poor_history
from cloud.leases.schedule import RentStep, rent_in_force
from cloud.leases.terms import LeasePolicy

S = LeaseStatus


def effective_expiry(session: Session, lease: Lease) -> date:
    """The later of the contract end and the paid-through date of the payments made up to
    the contract end."""
    through = paid_through(session, lease, as_of=lease.end_on)
    return max(lease.end_on, through) if through else lease.end_on


@dataclass(frozen=True)
class ExpiryReport:
    """What :func:`process_expiries` did, as lease ids."""

    started: tuple[str, ...] = ()
    expiring: tuple[str, ...] = ()
    auto_renewed: tuple[str, ...] = ()
    open_ended: tuple[str, ...] = ()
    blocked: tuple[str, ...] = ()


def process_expiries(
    session: Session,
    today: date,
    *,
    by: str = "daily",
    rules: PolicyBook | None = None,
) -> ExpiryReport:
    """Start due renewal successors, mark leases expiring, auto-renew or open-end expired
    ones (see the module doc). ``rules``: the policies, if loaded already."""
    rules = rules or load_book(session, today)
    started = []
    for lease in session.scalars(
        select(Lease)
        .where(
            Lease.status == S.SIGNED, Lease.renewed_from_id.is_not(None), Lease.start_on <= today
        )
        .order_by(Lease.id)
    ):
        activate_successor(session, lease, today=today, by=by)
        started.append(lease.id)
    expiring = []
    horizon = today + timedelta(days=max(max(p.reminder_offsets_days) for p in rules.all()))
    for lease in session.scalars(
        select(Lease).where(Lease.status == S.ACTIVE, Lease.end_on <= horizon).order_by(Lease.id)
    ):
        policy = rules.policy(lease.id)
        if lease.end_on - timedelta(days=policy.expiring_window_days) <= today:
            mark_expiring(session, lease, today=today, by=by)
            expiring.append(lease.id)
    renewed, open_ended, blocked = [], [], []
    for lease in session.scalars(
        select(Lease).where(Lease.status == S.EXPIRING, Lease.end_on <= today).order_by(Lease.id)
    ):
        policy = rules.policy(lease.id)
        if lease.auto_renew:
            window = lease.end_on - timedelta(days=policy.auto_renew_window_days)
            paid_on = covering_payment_between(session, lease, window, lease.end_on)
            if paid_on is not None:
                owed = arrears(session, account_of(session, lease.id).id, today)
                if owed <= policy.arrears_block_cents:
                    renew(
                        session,
                        lease.id,
                        monthly_cents=None,
                        today=today,
                        by=by,
                        start_on=lease.end_on,
                        reason=f"auto-renewed: contract clause, covering payment on {paid_on}",
                    )
                    renewed.append(lease.id)
                    continue
                blocked.append(lease.id)
        expiry = effective_expiry(session, lease)
        if today >= expiry:
            mark_open_ended(session, lease, today=today, expiry=expiry, by=by)
            open_ended.append(lease.id)
    session.flush()
    return ExpiryReport(
        tuple(started), tuple(expiring), tuple(renewed), tuple(open_ended), tuple(blocked)
    )


def acknowledge_reminders(session: Session, lease_id: str, *, by: str, at: datetime) -> int:
    """The manager acts on the lease's renewal: every open reminder is acknowledged."""
    rows = session.scalars(
        select(RenewalReminder).where(
            RenewalReminder.lease_id == lease_id,
            RenewalReminder.kind == "reminder",
            RenewalReminder.acknowledged_at.is_(None),
        )
    ).all()
    for r in rows:
        r.acknowledged_at, r.acknowledged_by = at, by
    session.flush()
    return len(rows)


@dataclass(frozen=True)
class Comparable:
    """A lease of the comparable group: its unit, area [m²], current rent [cents per month]
    and rent per m² [cents per m² per month]."""

    lease_id: str
    unit_id: str
    unit_name: str
    area_m2: Decimal
    current_cents: int
    per_m2_cents: Decimal


@dataclass(frozen=True)
class PriceSuggestion:
    """A renewal price [cents per month] for a lease, with its band, the comparable
    group's target [cents per m² per month] and the comparable leases it came from."""

    lease_id: str
    group: tuple[str, str, str]
    area_m2: Decimal
    current_cents: int
    target_per_m2: Decimal
    suggested_cents: int
    band_low_cents: int
    band_high_cents: int
    comparables: tuple[Comparable, ...] = ()


def suggest_prices(
    session: Session, today: date, lease_ids: Iterable[str] | None = None
) -> dict[str, PriceSuggestion]:
    """Suggestions for running standard leases (all, or those of ``lease_ids``), each from
    its comparable group (same site, building, unit type); see the module doc."""
    rows = session.execute(
        select(
            Lease.id,
            Lease.policy_id,
            Unit.site_id,
            Unit.building,
            UnitProfile.unit_type,
            Unit.area_m2,
            Unit.name,
            Lease.unit_id,
        )
        .join(Unit, Unit.id == Lease.unit_id)
        .join(UnitProfile, UnitProfile.unit_id == Lease.unit_id)
        .where(Lease.kind == "standard", Lease.status.in_([S.ACTIVE, S.EXPIRING, S.OPEN_ENDED]))
    ).all()
    steps: dict[str, list[RentStep]] = defaultdict(list)
    for lease_id, starts_on, cents, free in session.execute(
        select(
            RentStepRow.lease_id, RentStepRow.starts_on, RentStepRow.monthly_cents, RentStepRow.free
        )
        .where(RentStepRow.lease_id.in_([r[0] for r in rows]))
        .order_by(RentStepRow.lease_id, RentStepRow.starts_on)
    ):
        steps[lease_id].append(RentStep(starts_on, cents, free))
    rules = load_book(session, today, [r[0] for r in rows])
    groups: dict[tuple[str, str, str], list[tuple[str, Decimal, int, LeasePolicy]]] = defaultdict(
        list
    )
    units: dict[str, tuple[str, str]] = {}
    for lease_id, _policy_id, site, building, unit_type, area, unit_name, unit_id in rows:
        current = rent_in_force(steps[lease_id], today)
        if current > 0 and area > 0:
            units[lease_id] = (unit_id, unit_name or unit_id)
            groups[(site, building, unit_type)].append(
                (lease_id, Decimal(area), current, rules.policy(lease_id))
            )
    wanted = set(lease_ids) if lease_ids is not None else None
    out = {}
    for group, members in groups.items():
        median = Decimal(statistics.median(Decimal(c) / a for _, a, c, _ in members))
        comparables = tuple(
            Comparable(i, *units[i], a, c, (Decimal(c) / a).quantize(Decimal("0.01")))
            for i, a, c, _ in sorted(members, key=lambda m: m[0])
        )
        for lease_id, area, current, policy in members:
            if wanted is not None and lease_id not in wanted:
                continue
            low, high = policy.price_band
            target = median * (1 + (low + high) / 2)
            band_low, band_high = scale_cents(current, 1 + low), scale_cents(current, 1 + high)
            suggested = min(max(round_half_up(target * area), band_low), band_high)
            out[lease_id] = PriceSuggestion(
                lease_id,
                group,
                area,
                current,
                target,
                suggested,
                band_low,
                band_high,
                comparables,
            )
    return out


def make_offer(
    session: Session, lease_id: str, offered_cents: int, *, by: str, today: date, at: datetime
) -> RenewalOffer:
    """Record a renewal offer at ``offered_cents`` per month (status ``to_renew``), flagged
    and waiting for approval when outside the band; refused while arrears block the renewal.
    Acts on (acknowledges) the reminders."""
    lease = get_lease(session, lease_id)
    if lease.status not in (S.ACTIVE, S.EXPIRING, S.OPEN_ENDED):
        raise IllegalTransition(
            f"lease {lease.id!r} is {lease.status}; offers are made for running leases"
        )
    policy = policy_of(session, lease.id, today)
    owed = arrears(session, account_of(session, lease.id).id, today)
    if owed > policy.arrears_block_cents:
        raise RenewalBlocked(
            f"lease {lease.id!r}: arrears {owed} cents are above the "
            f"{policy.arrears_block_cents} cents that block a renewal"
        )
    suggestion = suggest_prices(session, today, [lease.id]).get(lease.id)
    if suggestion is None:
        raise UnknownRecord(
            f"lease {lease.id!r}: no price suggestion (a standard lease with "
            "a unit profile, an area and a rent in force is needed)"
        )
    flagged = not suggestion.band_low_cents <= offered_cents <= suggestion.band_high_cents
    reason = (
        (
            f"offered {cny(offered_cents)} is outside the band {cny(suggestion.band_low_cents)}"
            f" … {cny(suggestion.band_high_cents)} (current {cny(suggestion.current_cents)}, "
            f"suggested {cny(suggestion.suggested_cents)})"
        )
        if flagged
        else ""
    )
    offer = RenewalOffer(
        lease_id=lease.id,
        made_on=today,
        by=by,
        current_cents=suggestion.current_cents,
        suggested_cents=suggestion.suggested_cents,
        band_low_cents=suggestion.band_low_cents,
        band_high_cents=suggestion.band_high_cents,
        offered_cents=offered_cents,
        flagged=flagged,
        flag_reason=reason,
        status="to_renew",
        approval="pending" if flagged else "none",
    )
    session.add(offer)
    session.flush()
    session.add(
        RenewalOfferStep(
            offer_id=offer.id, from_status="", to_status="to_renew", at=at, by=by, note=reason
        )
    )
    acknowledge_reminders(session, lease.id, by=by, at=at)
    session.flush()
    return offer


#: the states of an offer still open (not signed, not lost)
OPEN_OFFER_STATES = ("to_renew", "invited", "negotiating")


def accept_offer(
    session: Session, offer_id: int, *, by: str, today: date, at: datetime | None = None
) -> Lease:
    """The tenant accepts (signs): the lease is renewed at the offered rent; returns the
    successor. An offer outside its band must be approved first (OfferAwaitsApproval)."""
    offer = session.get(RenewalOffer, offer_id)
    if offer is None or offer.status not in OPEN_OFFER_STATES:
        raise UnknownRecord(f"renewal offer {offer_id} does not exist or is not open")
    if offer.approval not in ("none", "approved"):
        raise OfferAwaitsApproval(
            f"renewal offer {offer.id} is outside its price band and "
            + ("was rejected" if offer.approval == "rejected" else "awaits a supervisor's approval")
            + "; it cannot be signed"
        )
    successor = renew(
        session,
        offer.lease_id,
        monthly_cents=offer.offered_cents,
        today=today,
        by=by,
        reason=f"offer {offer.id} accepted",
    )
    session.add(
        RenewalOfferStep(
            offer_id=offer.id,
            from_status=offer.status,
            to_status="signed",
            at=at or datetime.now(UTC),
            by=by,
            note=f"renewed as {successor.id}",
        )
    )
    offer.status, offer.successor_id = "signed", successor.id
    session.flush()
    return successor


@dataclass(frozen=True)
class ReviewItem:
    """A lease up for renewal in the review queue; ``reasons`` make it a priority."""

    lease_id: str
    tenant_id: str
    end_on: date
    priority: bool
    reasons: tuple[str, ...]


def review_queue(session: Session, today: date) -> list[ReviewItem]:
    """Expiring and open-ended leases, tenants with poor history first, then by end date."""
    leases = session.scalars(
        select(Lease).where(Lease.status.in_([S.EXPIRING, S.OPEN_ENDED]))
    ).all()
    flagged = poor_history(session, [lease.tenant_id for lease in leases], today)
    items = [
        ReviewItem(
            lease.id,
            lease.tenant_id,
            lease.end_on,
            bool(flagged.get(lease.tenant_id)),
            tuple(review_reasons([r], "en") for r in flagged.get(lease.tenant_id, ())),
        )
        for lease in leases
    ]
    return sorted(items, key=lambda i: (not i.priority, i.end_on, i.lease_id))
