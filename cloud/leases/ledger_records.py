"""A stored lease as a ledger (台账) row and a row as lease terms: the two directions of
:mod:`cloud.leases.ledger`'s export and import, one mapping per field (rents of every kind:
fixed, stepped, percent rise, CPI-linked)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from sqlalchemy.orm import Session

from cloud.leases import lifecycle
from cloud.leases.ledger_sheets import LeaseRec
from cloud.leases.models import Lease
from cloud.leases.plans import schedule_of
from cloud.leases.terms import CpiLinked, LeaseTerms, PercentRise, RentSchedule, SteppedRent

_RUNNING = ("active", "expiring", "open_ended")
#: the fields of a row compared with the stored lease, as named in a refusal
COMPARED = [f.name for f in fields(LeaseRec) if f.name not in ("at", "deposit_months")]


def record_of(lease: Lease) -> LeaseRec:
    """The ledger row of a stored lease (the deposit as its amount)."""
    rent, free = schedule_of(lease)
    window = free[0] if free else None
    return LeaseRec(
        id=lease.id,
        tenant=lease.tenant_id,
        unit=lease.unit_id,
        manager=lease.manager_id,
        kind=lease.kind,
        start_on=lease.start_on,
        end_on=lease.end_on,
        **_rent_fields(rent),
        free_months=window.months if window else 0,
        free_days=window.days if window else 0,
        free_anchor=window.anchor if window else "start",
        deposit_months=None,
        deposit_cents=lease.deposit_cents,
        cycle=lease.cycle_months,
        due_days=lease.due_days,
        parent=lease.parent_id,
        signed_on=lease.signed_on,
        handover_on=lease.handover_on,
        status=lease.status,
    )


def _rent_fields(rent: RentSchedule) -> dict[str, Any]:
    """The ledger row's fields of a rent schedule (the inverse of :func:`terms_of`'s rent)."""
    out: dict[str, Any] = {
        "rent_cents": None,
        "steps": (),
        "escalation": None,
        "rise": None,
        "floor": None,
        "every_months": None,
        "lag_months": None,
    }
    if isinstance(rent, SteppedRent):
        return out | {"steps": tuple((s.from_, s.monthly_cents) for s in rent.steps)}
    out["rent_cents"] = rent.monthly_cents
    if isinstance(rent, PercentRise):
        out |= {"escalation": "percent", "rise": rent.rise, "every_months": rent.every_months}
    elif isinstance(rent, CpiLinked):
        out |= {
            "escalation": "cpi",
            "rise": rent.cap,
            "floor": rent.floor,
            "every_months": rent.every_months,
            "lag_months": rent.lag_months,
        }
    return out


def _rent_of(rec: LeaseRec) -> dict[str, Any]:
    """The rent schedule a ledger row gives, as the terms take it (a blank cell: the
    terms' default)."""
    if rec.rent_cents is None:
        return {
            "kind": "stepped",
            "steps": [{"from": d, "monthly_cents": c} for d, c in rec.steps],
        }
    if rec.escalation == "percent":
        rent = {"kind": "percent_rise", "rise": rec.rise, "every_months": rec.every_months}
    elif rec.escalation == "cpi":
        rent = {
            "kind": "cpi",
            "cap": rec.rise,
            "floor": rec.floor,
            "every_months": rec.every_months,
            "lag_months": rec.lag_months,
        }
    else:
        rent = {"kind": "fixed"}
    return {k: v for k, v in rent.items() if v is not None} | {"monthly_cents": rec.rent_cents}


def terms_of(rec: LeaseRec) -> LeaseTerms:
    """The lease terms a ledger row gives (ValidationError when they contradict)."""
    rent = _rent_of(rec)
    free = (
        [{"months": rec.free_months, "days": rec.free_days, "anchor": rec.free_anchor}]
        if rec.free_months or rec.free_days
        else []
    )
    deposit = (
        {"cents": rec.deposit_cents}
        if rec.deposit_cents is not None
        else {"months": rec.deposit_months}
    )
    return LeaseTerms.model_validate(
        {
            "id": rec.id,
            "tenant_id": rec.tenant,
            "unit_id": rec.unit,
            "manager_id": rec.manager,
            "kind": rec.kind,
            "parent_id": rec.parent,
            "start_on": rec.start_on,
            "end_on": rec.end_on,
            "rent": rent,
            "free_rent": free,
            "deposit": deposit,
            "cycle_months": rec.cycle,
            "due_days": rec.due_days,
        }
    )


def as_stored(rec: LeaseRec, terms: LeaseTerms) -> LeaseRec:
    """``rec`` as it would be stored: the deposit as cents, the handover of a running lease
    defaulting to its start."""
    handover = rec.handover_on
    if handover is None and rec.status in _RUNNING:
        handover = rec.start_on
    if rec.status in ("draft", "signed"):
        handover = None
    return LeaseRec(
        **{
            **{f: getattr(rec, f) for f in COMPARED},
            "deposit_months": None,
            "deposit_cents": lifecycle.deposit_cents(terms),
            "handover_on": handover,
            "signed_on": None if rec.status == "draft" else rec.signed_on,
            **_rent_fields(terms.rent),
        }
    )


FIELD_KEYS = {
    "tenant_id": "tenant",
    "unit_id": "unit",
    "manager_id": "manager",
    "parent_id": "parent",
    "start_on": "start_on",
    "end_on": "end_on",
    "kind": "kind",
    "rent": "rent",
    "rise": "rise",
    "cap": "rise",
    "floor": "floor",
    "every_months": "every_months",
    "lag_months": "lag_months",
    "free_rent": "free_months",
    "deposit": "deposit",
    "cycle_months": "cycle",
    "due_days": "due_days",
}


def keep_rise(session: Session, rec: LeaseRec) -> None:
    """A file without the 涨租方式 escalation column (made before it was added) keeps how
    a stored lease's monthly rent rises: it could not say otherwise."""
    if rec.at is None or "escalation" in rec.at.letters or rec.rent_cents is None:
        return
    stored = session.get(Lease, rec.id)
    if stored is None:
        return
    rent, _free = schedule_of(stored)
    if isinstance(rent, PercentRise | CpiLinked):
        for key, value in _rent_fields(rent).items():
            if key not in ("rent_cents", "steps"):
                setattr(rec, key, value)
