"""Registry tables of leases: tenants, staff, unit profiles, policies, leases and their audit,
rent plans, invoices, payments, credits, collections, reminders, offers, deposits, tasks.

Changed only through Alembic migrations (revision 0004; 0019 added tenants' ID numbers,
0021 units' property types, 0022 site policies and leases' policy overrides,
0024 bank lines, payer accounts and credit notes, 0025 offer states and approval, 0026 the
recipients of the monthly reports, 0028 deposit evidence and refund payment references).
Dates are dates of the site's local calendar (a lease
ends on a date, an invoice is due on a date); instants (audit, deposit steps,
acknowledgements) are UTC. Money is integer cents.
Every job writes rows with a natural key under a unique constraint — one invoice per lease
and period, one rent line per lease and first billed day, one collections event per invoice
and step, one reminder per lease, kind and offset — so that running a job twice inserts
nothing the second time.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    event,
    inspect,
)
from sqlalchemy.orm import Mapped, mapped_column

# units and the meter tree, which leases refer to, and the notification outbox join
# Base.metadata with the lease tables
import cloud.apportion.models
import cloud.notify.outbox  # noqa: F401

# bank lines, payer accounts and credit notes live beside (cloud/leases/bank_models.py)
from cloud.leases.bank_models import BankLine, CreditNote, PayerAccount  # noqa: F401
from cloud.leases.errors import IllegalTransition
from cloud.registry.base import Base

PROPERTY_TYPES = ("residential", "office", "retail", "parking")
"""Property types of units (住宅, 办公, 商铺, 车位)."""


class LeaseStatus(StrEnum):
    DRAFT = "draft"
    SIGNED = "signed"
    ACTIVE = "active"
    EXPIRING = "expiring"
    OPEN_ENDED = "open_ended"
    RENEWED = "renewed"
    TERMINATED = "terminated"


S = LeaseStatus
ALLOWED: dict[str, frozenset[str]] = {
    S.DRAFT: frozenset({S.SIGNED}),
    S.SIGNED: frozenset({S.ACTIVE, S.TERMINATED}),
    S.ACTIVE: frozenset({S.EXPIRING, S.TERMINATED}),
    S.EXPIRING: frozenset({S.RENEWED, S.TERMINATED, S.OPEN_ENDED}),
    S.OPEN_ENDED: frozenset({S.RENEWED, S.TERMINATED}),
    S.RENEWED: frozenset(),
    S.TERMINATED: frozenset(),
}


class Tenant(Base):
    """A tenant (person or company) and how to reach them: ``channel`` is ``email`` or the
    name of a webhook gateway (``sms``, ``wecom``, ``dingtalk``) and ``address`` what that
    channel delivers to. The tenant's id is the party name of apportionment statements.
    ``id_number`` (revision 0019) is the person's ID number or the company's credit code,
    shown in full only to the roles :mod:`cloud.staff.visibility` allows."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(32), default="email")
    address: Mapped[str] = mapped_column(String(200), default="")
    id_number: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: the language of the tenant's notices (revision 0027): ``zh-CN`` or ``en``
    language: Mapped[str] = mapped_column(String(8), default="zh-CN", server_default="zh-CN")


class Staff(Base):
    """A property manager or supervisor; reminders go to ``channel``/``address``."""

    __tablename__ = "staff"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(32), default="email")
    address: Mapped[str] = mapped_column(String(200), default="")
    supervisor_id: Mapped[str | None] = mapped_column(ForeignKey("staff.id"))
    #: the language of the person's notices (revision 0027): ``zh-CN`` or ``en``
    language: Mapped[str] = mapped_column(String(8), default="zh-CN", server_default="zh-CN")


class UnitProfile(Base):
    """What leasing needs to know of a unit: its type (comparable units share building and
    type), its property type (:data:`PROPERTY_TYPES`; policies and reports group by it,
    revision 0021), whether it is rentable at all, and its asking rent [cents per month]."""

    __tablename__ = "unit_profiles"

    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"), primary_key=True)
    unit_type: Mapped[str] = mapped_column(String(32))
    property_type: Mapped[str] = mapped_column(
        String(16), default="residential", server_default="residential"
    )
    rentable: Mapped[bool] = mapped_column(Boolean, default=True)
    asking_cents: Mapped[int] = mapped_column(BigInteger, default=0)


class LeasePolicyRow(Base):
    """A named :class:`cloud.leases.terms.LeasePolicy`, as JSON."""

    __tablename__ = "lease_policies"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    doc: Mapped[dict[str, Any]] = mapped_column(JSON)


class SitePolicyRow(Base):
    """A policy set of a site (revision 0022): the :class:`cloud.leases.terms.LeasePolicy`
    fields it sets (``fields``, a partial dict as JSON; a preset's are all of them), for the
    units of one property type (:data:`PROPERTY_TYPES`) or ``all``, from ``effective_from``
    (a local date) on until a later-dated set of the same site and type. Never changed:
    a later-dated set supersedes it."""

    __tablename__ = "site_policies"
    __table_args__ = (
        UniqueConstraint("site_id", "property_type", "effective_from", name="uq_site_policy_day"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    property_type: Mapped[str] = mapped_column(String(16))
    effective_from: Mapped[date] = mapped_column(Date)
    preset: Mapped[str | None] = mapped_column(String(32), nullable=True)
    fields: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(64))


class CpiIndex(Base):
    """The consumer price index published for a month (first day of the month): ``level``
    is the figure, on ``basis`` ``level`` (定基, a fixed-base index) or ``yoy`` (上年同月=100,
    the same month a year before = 100; revision 0029). Decision 0042."""

    __tablename__ = "cpi_indices"

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    level: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    basis: Mapped[str] = mapped_column(String(8), default="level", server_default="level")


class Lease(Base):
    """A lease of one unit to one tenant, [``start_on``, ``end_on``) by contract.

    ``rent_from`` is the first day rent is due (the later of start and handover);
    ``ended_on`` the first day it is no longer due (termination, or the successor's start on
    renewal), None while the lease runs — also past ``end_on`` (open-ended). A child lease
    (``parent_id``) is billed to its parent's invoices. ``schedule`` holds the rent schedule
    and free-rent windows as agreed (:class:`cloud.leases.terms.LeaseTerms`); ``rent_steps``
    the compiled plan, known until ``plan_known_until`` (None: all).
    """

    __tablename__ = "leases"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"), index=True)
    manager_id: Mapped[str] = mapped_column(ForeignKey("staff.id"))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("leases.id"), index=True)
    renewed_from_id: Mapped[str | None] = mapped_column(ForeignKey("leases.id"), unique=True)
    policy_id: Mapped[str | None] = mapped_column(ForeignKey("lease_policies.id"))
    #: single policy fields set for this lease alone (revision 0022; None: none)
    policy_overrides: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    kind: Mapped[str] = mapped_column(String(16), default="standard")
    status: Mapped[str] = mapped_column(String(16), index=True)
    signed_on: Mapped[date | None] = mapped_column(Date)
    start_on: Mapped[date] = mapped_column(Date)
    end_on: Mapped[date] = mapped_column(Date)
    handover_on: Mapped[date | None] = mapped_column(Date)
    rent_from: Mapped[date | None] = mapped_column(Date)
    ended_on: Mapped[date | None] = mapped_column(Date)
    cycle_months: Mapped[int] = mapped_column(Integer, default=1)
    due_days: Mapped[int] = mapped_column(Integer, default=10)
    auto_renew: Mapped[bool] = mapped_column(Boolean, default=False)
    renewal_term_months: Mapped[int] = mapped_column(Integer, default=12)
    deposit_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    schedule: Mapped[dict[str, Any]] = mapped_column(JSON)
    plan_known_until: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LeaseTransition(Base):
    """One state change of a lease: who (``by``), when (``at``, and the local ``day`` it
    takes effect), from and to, why, the lease's fields before and after, and what the
    change did elsewhere (``effects``)."""

    __tablename__ = "lease_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lease_id: Mapped[str] = mapped_column(ForeignKey("leases.id"), index=True)
    from_status: Mapped[str] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    day: Mapped[date] = mapped_column(Date)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    before: Mapped[dict[str, Any]] = mapped_column(JSON)
    after: Mapped[dict[str, Any]] = mapped_column(JSON)
    effects: Mapped[list[str]] = mapped_column(JSON, default=list)


class RentStepRow(Base):
    """A step of a lease's compiled rent plan [cents per month] from ``starts_on``."""

    __tablename__ = "rent_steps"

    lease_id: Mapped[str] = mapped_column(ForeignKey("leases.id"), primary_key=True)
    starts_on: Mapped[date] = mapped_column(Date, primary_key=True)
    monthly_cents: Mapped[int] = mapped_column(BigInteger)
    free: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(16))


class Invoice(Base):
    """One invoice per billing lease (a parent, or a lease without parent) and period.

    ``total_cents`` = Σ its lines exactly; ``paid_cents`` = Σ payments allocated to it;
    ``paid_on`` the day it was paid in full. ``fee_cents`` is the part of the total that is
    late fees (of earlier invoices) — never charged a late fee itself; ``fee_billed_cents``
    the late fees billed so far, on later invoices, for paying this one late.
    """

    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("lease_id", "period_start", name="uq_invoices_lease_period"),
    )

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    lease_id: Mapped[str] = mapped_column(ForeignKey("leases.id"))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    issued_on: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date] = mapped_column(Date)
    total_cents: Mapped[int] = mapped_column(BigInteger)
    paid_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(8), index=True)
    paid_on: Mapped[date | None] = mapped_column(Date)
    fee_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    fee_billed_cents: Mapped[int] = mapped_column(BigInteger, default=0)


class InvoiceLine(Base):
    """A line of an invoice [cents]: ``rent`` (for the days [covers_from, covers_to)),
    ``utility`` (a posted apportionment run's amount, ``ref`` the run), ``late_fee`` (``ref``
    the overdue invoice) or ``credit`` (negative). ``lease_id`` is the lease whose charge it
    is (a child lease's lines sit on its parent's invoice). A lease's rent for a first day
    is billed once: unique (lease, kind, covers_from)."""

    __tablename__ = "invoice_lines"
    __table_args__ = (
        UniqueConstraint("lease_id", "kind", "covers_from", name="uq_invoice_lines_once"),
    )

    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    lease_id: Mapped[str] = mapped_column(ForeignKey("leases.id"))
    kind: Mapped[str] = mapped_column(String(16))
    covers_from: Mapped[date | None] = mapped_column(Date)
    covers_to: Mapped[date | None] = mapped_column(Date)
    cents: Mapped[int] = mapped_column(BigInteger)
    ref: Mapped[str | None] = mapped_column(String(80))
    description: Mapped[str] = mapped_column(Text)


class UtilityBilling(Base):
    """A posted apportionment amount for (run, unit, party) put on an invoice: once.

    A ledger of keys written in bulk by the billing run together with the invoice it names,
    in the same transaction; ``invoice_id`` carries no foreign key (a check per row would
    cost the run as much as writing the invoice lines themselves, docs/decisions/0007)."""

    __tablename__ = "utility_billings"

    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    party: Mapped[str] = mapped_column(String(64), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(String(80))
    cents: Mapped[int] = mapped_column(BigInteger)


class Payment(Base):
    """Money received for a billing lease [cents]; ``ref`` is the bank's or the payment
    gateway's reference, so importing a statement twice records each payment once."""

    __tablename__ = "payments"
    __table_args__ = (UniqueConstraint("lease_id", "ref", name="uq_payments_lease_ref"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lease_id: Mapped[str] = mapped_column(ForeignKey("leases.id"), index=True)
    ref: Mapped[str] = mapped_column(String(80))
    received_on: Mapped[date] = mapped_column(Date)
    cents: Mapped[int] = mapped_column(BigInteger)


class PaymentAllocation(Base):
    """The part of a payment [cents] that settles an invoice."""

    __tablename__ = "payment_allocations"

    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), primary_key=True, index=True)
    cents: Mapped[int] = mapped_column(BigInteger)
    allocated_on: Mapped[date] = mapped_column(Date)


class CreditEntry(Base):
    """The credit ledger of a billing lease [cents]: ``overpayment`` and ``refund`` (rent
    billed for days after the lease ended) add, ``applied`` (a credit line of an invoice)
    takes away. Unique (lease, kind, ref)."""

    __tablename__ = "credit_entries"
    __table_args__ = (UniqueConstraint("lease_id", "kind", "ref", name="uq_credit_once"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lease_id: Mapped[str] = mapped_column(ForeignKey("leases.id"), index=True)
    booked_on: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(16))
    ref: Mapped[str] = mapped_column(String(80))
    cents: Mapped[int] = mapped_column(BigInteger)


class CollectionEvent(Base):
    """A step of the collections ladder for an overdue invoice (T+1 reminder, T+3 internal
    task, T+7 call task, T+15 escalation): when, through which channel, with what outcome."""

    __tablename__ = "collection_events"

    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    action: Mapped[str] = mapped_column(String(24))
    due_on: Mapped[date] = mapped_column(Date)
    happened_on: Mapped[date] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(24))
    notification_key: Mapped[str | None] = mapped_column(String(200))


class LeaseTask(Base):
    """Work for a person: an internal collections task, a call, a priority renewal review,
    a deposit step past its SLA. ``key`` is its natural key (one task per reason)."""

    __tablename__ = "lease_tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(24), index=True)
    lease_id: Mapped[str] = mapped_column(ForeignKey("leases.id"), index=True)
    assignee_id: Mapped[str] = mapped_column(ForeignKey("staff.id"))
    opened_on: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date] = mapped_column(Date)
    closed_on: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str] = mapped_column(Text, default="")
    #: the note as a code and its values (JSON), worded in the reader's language when shown
    #: (revision 0027; "" for tasks opened before: their English ``note`` is shown)
    note_code: Mapped[str] = mapped_column(String(32), default="", server_default="")
    note_params: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")


class RenewalReminder(Base):
    """A renewal reminder ``offset_days`` before a lease's end to its manager (``kind``
    ``reminder``), or its escalation to the supervisor (``escalation``)."""

    __tablename__ = "renewal_reminders"

    lease_id: Mapped[str] = mapped_column(ForeignKey("leases.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    offset_days: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    sent_on: Mapped[date] = mapped_column(Date)
    recipient_id: Mapped[str] = mapped_column(ForeignKey("staff.id"))
    outcome: Mapped[str] = mapped_column(String(24))
    priority: Mapped[bool] = mapped_column(Boolean, default=False)
    notification_key: Mapped[str | None] = mapped_column(String(200))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))


class RenewalOffer(Base):
    """A renewal offer: the suggested rent, the band around the current rent [cents per
    month], the rent offered and whether it breaks the band.

    ``status`` (revision 0025): ``to_renew`` (待续签) → ``invited`` (已邀约) →
    ``negotiating`` (协商中) → ``signed`` (已签约) or ``lost`` (已流失). ``approval``:
    ``none`` (inside the band), ``pending`` (outside: waits for a supervisor), ``approved``
    or ``rejected``, with who decided and when (UTC)."""

    __tablename__ = "renewal_offers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lease_id: Mapped[str] = mapped_column(ForeignKey("leases.id"), index=True)
    made_on: Mapped[date] = mapped_column(Date)
    by: Mapped[str] = mapped_column(String(64))
    current_cents: Mapped[int] = mapped_column(BigInteger)
    suggested_cents: Mapped[int] = mapped_column(BigInteger)
    band_low_cents: Mapped[int] = mapped_column(BigInteger)
    band_high_cents: Mapped[int] = mapped_column(BigInteger)
    offered_cents: Mapped[int] = mapped_column(BigInteger)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    flag_reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(12), default="to_renew", index=True)
    successor_id: Mapped[str | None] = mapped_column(ForeignKey("leases.id"))
    approval: Mapped[str] = mapped_column(String(12), default="none", server_default="none")
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RenewalOfferStep(Base):
    """A renewal offer's move from one status (or approval) to another: who, when (UTC),
    why. ``from_status`` is empty for the offer's making (revision 0025)."""

    __tablename__ = "renewal_offer_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("renewal_offers.id"), index=True)
    from_status: Mapped[str] = mapped_column(String(12))
    to_status: Mapped[str] = mapped_column(String(12))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    by: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")


class RepairComplaint(Base):
    """A tenant's repair ticket (opened, resolved, category: ``electrical``, ``plumbing``,
    ``hvac``, ``general`` ...); an open one puts the tenant's renewal up for review."""

    __tablename__ = "repair_complaints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"))
    opened_on: Mapped[date] = mapped_column(Date)
    resolved_on: Mapped[date | None] = mapped_column(Date)
    summary: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(32), default="general")


class DepositRefund(Base):
    """A deposit refund: request → inspection → settlement → approval → payment, each step's
    instant (UTC); the deposit, deductions and refund [cents]."""

    __tablename__ = "deposit_refunds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lease_id: Mapped[str] = mapped_column(ForeignKey("leases.id"), unique=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    deposit_cents: Mapped[int] = mapped_column(BigInteger)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    requested_by: Mapped[str] = mapped_column(String(64))
    inspected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    inspected_by: Mapped[str | None] = mapped_column(String(64))
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    settled_by: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    approved_by: Mapped[str | None] = mapped_column(String(64))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paid_by: Mapped[str | None] = mapped_column(String(64))
    deductions_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    refund_cents: Mapped[int | None] = mapped_column(BigInteger)
    shortfall_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    #: of the deposit left after the deductions, what paid the account's open invoices at
    #: the settlement [cents] (revision 0032)
    arrears_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    #: the bank transfer's number of the payment (revision 0028)
    payment_ref: Mapped[str | None] = mapped_column(String(64))


class DepositDeduction(Base):
    """A deduction from a deposit [cents] with its evidence (a stored attachment's URI and
    SHA-256); none is accepted without."""

    __tablename__ = "deposit_deductions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    refund_id: Mapped[int] = mapped_column(ForeignKey("deposit_refunds.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    cents: Mapped[int] = mapped_column(BigInteger)
    evidence_uri: Mapped[str] = mapped_column(String(500))
    evidence_sha256: Mapped[str] = mapped_column(String(64))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    added_by: Mapped[str] = mapped_column(String(64))


class DepositEvidence(Base):
    """A file uploaded as a deduction's evidence (JPEG, PNG or PDF, at most 10 MB), stored
    once by its SHA-256 (content-addressed); a deduction names it ``evidence:sha256:<hex>``."""

    __tablename__ = "deposit_evidence"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    uploaded_by: Mapped[str] = mapped_column(String(64))


class DepositSlaFlag(Base):
    """A deposit-refund step left waiting past its SLA [hours]: flagged once per step."""

    __tablename__ = "deposit_sla_flags"

    refund_id: Mapped[int] = mapped_column(ForeignKey("deposit_refunds.id"), primary_key=True)
    step: Mapped[str] = mapped_column(String(16), primary_key=True)
    flagged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    waited_hours: Mapped[int] = mapped_column(Integer)
    sla_hours: Mapped[int] = mapped_column(Integer)


class StatementAccess(Base):
    """A tenant's access to a unit's statements (the QR statement page), from the handover
    of ``lease_id`` until the tenant's last lease of the unit ends (a renewal keeps it)."""

    __tablename__ = "statement_access"
    __table_args__ = (Index("ix_statement_access_tenant_unit", "tenant_id", "unit_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"))
    lease_id: Mapped[str] = mapped_column(ForeignKey("leases.id"))
    granted_on: Mapped[date] = mapped_column(Date)
    revoked_on: Mapped[date | None] = mapped_column(Date)


@event.listens_for(Lease, "before_update")
def _status_moves_only_along_the_state_machine(
    _mapper: Any, _connection: Any, target: Lease
) -> None:
    """A status assigned outside :mod:`cloud.leases.lifecycle` is still checked: an illegal
    move is an error, never a silent change."""
    history = inspect(target).attrs.status.history
    if not history.has_changes() or not history.deleted:
        return
    before, after = history.deleted[0], target.status
    if after not in ALLOWED.get(before, frozenset()):
        raise IllegalTransition(
            f"lease {target.id!r}: {before} → {after} is not a transition; "
            f"from {before} a lease can become "
            f"{', '.join(sorted(ALLOWED.get(before, ()))) or 'nothing'}"
        )


class ReportRecipient(Base):
    """An e-mail address that receives a site's monthly lease reports (revision 0026):
    who added it (a staff account, or ``cli``) and when (UTC), and the language its e-mail is
    worded in."""

    __tablename__ = "report_recipients"

    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(120), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    added_by: Mapped[str] = mapped_column(String(64))
    #: the language of the address's e-mail (revision 0031): ``zh-CN`` or ``en``
    language: Mapped[str] = mapped_column(String(8), default="zh-CN", server_default="zh-CN")
