"""Leasing's reference data: tenants, staff, unit profiles, named policies, the CPI series.

Plain registry writes and reads, each checked for the records it refers to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.apportion.models import Unit
from cloud.leases.errors import UnknownRecord
from cloud.leases.models import (
    PROPERTY_TYPES,
    CpiIndex,
    LeasePolicyRow,
    Staff,
    Tenant,
    UnitProfile,
)
from cloud.leases.schedule import CPI_BASES, CPI_LEVEL, CpiFigure
from cloud.leases.terms import DEFAULT_POLICY, LeasePolicy
from cloud.wording import DEFAULT_LANGUAGE, check_language


def add_tenant(
    session: Session,
    tenant_id: str,
    name: str,
    *,
    channel: str = "email",
    address: str = "",
    id_number: str | None = None,
    language: str = DEFAULT_LANGUAGE,
) -> Tenant:
    """Register a tenant; ``channel``/``address`` say where notices go and ``language``
    (``zh-CN`` or ``en``) what they are written in; ``id_number`` is the person's ID number
    or the company's credit code (kept as given, at most 32 characters)."""
    check_language(language, f"tenant {tenant_id!r}: language")
    if id_number is not None and not 1 <= len(id_number.strip()) <= 32:
        raise ValueError(f"tenant {tenant_id!r}: an ID number has 1-32 characters")
    tenant = Tenant(
        id=tenant_id,
        name=name,
        channel=channel,
        address=address,
        id_number=id_number.strip() if id_number else None,
        language=language,
    )
    session.add(tenant)
    return tenant


def add_staff(
    session: Session,
    staff_id: str,
    name: str,
    *,
    channel: str = "email",
    address: str = "",
    supervisor_id: str | None = None,
    language: str = DEFAULT_LANGUAGE,
) -> Staff:
    """Register a manager or supervisor (``language``: of their notices, zh-CN or en)."""
    check_language(language, f"staff {staff_id!r}: language")
    if supervisor_id is not None and session.get(Staff, supervisor_id) is None:
        raise UnknownRecord(f"staff {staff_id!r}: supervisor {supervisor_id!r} is not registered")
    person = Staff(
        id=staff_id,
        name=name,
        channel=channel,
        address=address,
        supervisor_id=supervisor_id,
        language=language,
    )
    session.add(person)
    return person


CHANNELS = ("email", "sms", "wecom", "dingtalk")
"""Where a person's notices go: e-mail, or a webhook gateway of that name."""


def set_staff(
    session: Session,
    staff_id: str,
    name: str,
    *,
    channel: str = "email",
    address: str = "",
    supervisor_id: str | None = None,
    language: str | None = None,
) -> tuple[dict[str, object] | None, dict[str, object]]:
    """Register a manager or supervisor, or change one: (the record before — None when new —
    and after, as plain fields for the audit log). Refused: an id or name that is not 1-64 /
    1-200 printable characters, an unknown channel or language (``zh-CN``, ``en``: what
    their notices are written in), an unknown supervisor, or a supervisor chain that comes
    back to the person. ``language`` None keeps the person's (Chinese for someone new)."""
    if not 1 <= len(staff_id) <= 64 or not staff_id.isprintable() or staff_id != staff_id.strip():
        raise ValueError(f"staff id {staff_id!r}: expected 1-64 printable characters")
    if not 1 <= len(name.strip()) <= 200:
        raise ValueError(f"staff {staff_id!r}: a name has 1-200 characters")
    if channel not in CHANNELS:
        raise ValueError(f"staff {staff_id!r}: channel {channel!r}, expected one of {CHANNELS}")
    if len(address) > 200:
        raise ValueError(f"staff {staff_id!r}: an address has at most 200 characters")
    if language is not None:
        check_language(language, f"staff {staff_id!r}: language")
    boss = supervisor_id
    for _ in range(100):
        if boss is None:
            break
        if boss == staff_id:
            raise ValueError(f"staff {staff_id!r}: supervisor {supervisor_id!r} reports to them")
        found = session.get(Staff, boss)
        if found is None:
            raise UnknownRecord(
                f"staff {staff_id!r}: supervisor {boss!r} is not registered; register them first"
            )
        boss = found.supervisor_id
    person = session.get(Staff, staff_id)
    fields = ("name", "channel", "address", "supervisor_id", "language")
    before = {f: getattr(person, f) for f in fields} if person is not None else None
    if person is None:
        person = Staff(id=staff_id)
        session.add(person)
    person.name, person.channel, person.address = name.strip(), channel, address
    person.supervisor_id = supervisor_id
    person.language = language or person.language or DEFAULT_LANGUAGE
    return before, {f: getattr(person, f) for f in fields}


def set_unit_profile(
    session: Session,
    unit_id: str,
    unit_type: str,
    *,
    rentable: bool = True,
    asking_cents: int = 0,
    property_type: str = "residential",
) -> UnitProfile:
    """A unit's type, its property type (one of :data:`PROPERTY_TYPES`), whether it is
    rentable, and its asking rent [cents per month]."""
    if session.get(Unit, unit_id) is None:
        raise UnknownRecord(f"unit {unit_id!r} is not registered")
    if property_type not in PROPERTY_TYPES:
        raise ValueError(
            f"unit {unit_id!r}: property type {property_type!r}, expected one of "
            f"{', '.join(PROPERTY_TYPES)}"
        )
    profile = session.get(UnitProfile, unit_id) or UnitProfile(unit_id=unit_id)
    profile.unit_type, profile.rentable, profile.asking_cents = unit_type, rentable, asking_cents
    profile.property_type = property_type
    session.add(profile)
    return profile


def save_policy(session: Session, policy_id: str, policy: LeasePolicy) -> None:
    """Store a named policy (replacing one of the same name)."""
    row = session.get(LeasePolicyRow, policy_id) or LeasePolicyRow(id=policy_id)
    row.doc = policy.model_dump(mode="json")
    session.add(row)


def policy_for(session: Session, policy_id: str | None) -> LeasePolicy:
    """The named policy ``policy_id``, or the default (a lease's policy on a day is
    :func:`cloud.leases.policies.resolve`'s business)."""
    if policy_id is None:
        return DEFAULT_POLICY
    row = session.get(LeasePolicyRow, policy_id)
    if row is None:
        raise UnknownRecord(f"policy {policy_id!r} is not registered")
    return LeasePolicy.model_validate(row.doc)


def publish_cpi(
    session: Session,
    levels: Mapping[date, Decimal] | Iterable[tuple[date, Decimal]],
    *,
    basis: str = CPI_LEVEL,
) -> None:
    """Store CPI figures by month (the first day of each month; any day is moved there), all
    on ``basis`` (``level``, 定基, or ``yoy``, 上年同月=100). Unchecked: the operators'
    checked and audited way in is :mod:`cloud.leases.cpi`."""
    if basis not in CPI_BASES:
        raise ValueError(f"CPI basis {basis!r}, expected one of {', '.join(CPI_BASES)}")
    items = levels.items() if isinstance(levels, Mapping) else levels
    for month, level in items:
        first = month.replace(day=1)
        row = session.get(CpiIndex, first) or CpiIndex(month=first)
        row.level, row.basis = Decimal(level), basis
        session.add(row)
    session.flush()


def cpi_series(session: Session) -> dict[date, CpiFigure]:
    """The whole CPI series, keyed by the first day of each month."""
    return {
        r.month: CpiFigure(r.basis or CPI_LEVEL, Decimal(r.level))
        for r in session.scalars(select(CpiIndex))
    }
