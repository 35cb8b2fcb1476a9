"""Registry tables of apportionment: configuration, source bills, runs and their lines.

Changed only through Alembic migrations (revisions 0002 and 0009). Calendar dates (occupancy,
tariff versions, installations, periods) are dates of the site's local calendar, because a
lease or a tariff starts on a date, not at an instant; instants (approvals, postings) are
UTC. Money is integer cents; areas, multipliers, prices and energies are exact decimals.

Issued runs are immutable, enforced here for every ORM session: lines, statement drafts
and signed statements are insert-only, a posted run may only move to ``void``, a void run
not at all.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    event,
    inspect,
)
from sqlalchemy.orm import Mapped, mapped_column

from cloud.apportion.errors import RunStateError
from cloud.registry.base import Base


class Unit(Base):
    """A leasable unit: floor area [m²], building, floor."""

    __tablename__ = "units"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    area_m2: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    building: Mapped[str] = mapped_column(String(64), default="")
    floor: Mapped[str] = mapped_column(String(32), default="")
    name: Mapped[str] = mapped_column(String(100), default="")


class TreeNode(Base):
    """A node of a site's meter tree: main, branch, unit, common or landlord."""

    __tablename__ = "meter_tree_nodes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("meter_tree_nodes.id"), index=True)
    unit_id: Mapped[str | None] = mapped_column(ForeignKey("units.id"), unique=True)
    landlord_area_m2: Mapped[Decimal | None] = mapped_column(Numeric(14, 4))
    name: Mapped[str] = mapped_column(String(100), default="")


class MeterInstallation(Base):
    """A meter installed on a tree node between two local dates; ``replaced_by_id`` names
    the installation that took over."""

    __tablename__ = "meter_installations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: a meter of the node's site; no foreign key, a meter id being unique per site only
    meter_id: Mapped[str] = mapped_column(String(64), index=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("meter_tree_nodes.id"), index=True)
    installed_on: Mapped[date | None] = mapped_column(Date)
    removed_on: Mapped[date | None] = mapped_column(Date)
    capacity: Mapped[Decimal | None] = mapped_column(Numeric(20, 4))
    bidirectional: Mapped[bool] = mapped_column(Boolean, default=False)
    replaced_by_id: Mapped[str | None] = mapped_column(ForeignKey("meter_installations.id"))
    #: display name shown on statements (empty: the id)
    name: Mapped[str] = mapped_column(String(100), default="", server_default="")


class MultiplierStepRow(Base):
    """An installation's multiplier (CT × PT) in force from a local date."""

    __tablename__ = "multiplier_steps"

    installation_id: Mapped[str] = mapped_column(
        ForeignKey("meter_installations.id"), primary_key=True
    )
    effective_from: Mapped[date] = mapped_column(Date, primary_key=True)
    multiplier: Mapped[Decimal] = mapped_column(Numeric(16, 6))


class OccupancySegment(Base):
    """A tenant in a unit node from ``from_`` (inclusive) to ``to`` (exclusive, open)."""

    __tablename__ = "occupancy_segments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("meter_tree_nodes.id"), index=True)
    tenant: Mapped[str] = mapped_column(String(64))
    from_: Mapped[date] = mapped_column("from_date", Date)
    to: Mapped[date | None] = mapped_column("to_date", Date)
    #: the tenant's display name shown on statements (empty: the id)
    tenant_name: Mapped[str] = mapped_column(String(100), default="", server_default="")


class AllocationRule(Base):
    """How a main, branch or common node allocates (basis, blend p, formula, loss cap,
    vacancy, estimates, common-area type)."""

    __tablename__ = "allocation_rules"

    node_id: Mapped[str] = mapped_column(ForeignKey("meter_tree_nodes.id"), primary_key=True)
    basis: Mapped[str] = mapped_column(String(16))
    blend_p: Mapped[Decimal] = mapped_column(Numeric(6, 4))
    coefficients: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    formula_driver: Mapped[str | None] = mapped_column(String(64))
    formula_base: Mapped[Decimal | None] = mapped_column(Numeric(10, 4))
    formula_span: Mapped[Decimal | None] = mapped_column(Numeric(10, 4))
    loss_cap: Mapped[Decimal | None] = mapped_column(Numeric(6, 4))
    vacant: Mapped[str] = mapped_column(String(16))
    estimate_limit: Mapped[Decimal] = mapped_column(Numeric(6, 4))
    on_estimate_excess: Mapped[str] = mapped_column(String(8))
    common_type: Mapped[str | None] = mapped_column(String(16))
    exclusive_to: Mapped[str | None] = mapped_column(ForeignKey("meter_tree_nodes.id"))
    shared_by: Mapped[list[str]] = mapped_column(JSON, default=list)


class TariffVersionRow(Base):
    """An effective-dated tariff version of a site: prices [CNY/kWh], tiers, demand price
    [CNY per kW·month], markup over catalog [CNY/kWh]."""

    __tablename__ = "tariff_versions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    effective_from: Mapped[date] = mapped_column(Date)
    effective_to: Mapped[date | None] = mapped_column(Date)
    prices: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    tiers: Mapped[list[dict[str, str | None]]] = mapped_column(JSON, default=list)
    demand_price: Mapped[Decimal | None] = mapped_column(Numeric(12, 4))
    markup: Mapped[Decimal] = mapped_column(Numeric(12, 6), default=Decimal(0))


class SourceBill(Base):
    """A utility invoice for a site's main meter and period."""

    __tablename__ = "source_bills"
    __table_args__ = (UniqueConstraint("site_id", "invoice"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    invoice: Mapped[str] = mapped_column(String(64))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    demand_kw: Mapped[Decimal | None] = mapped_column(Numeric(14, 4))


class SourceBillAmount(Base):
    """One amount of an invoice: a register (T1..T4, total) or ``demand`` [cents]."""

    __tablename__ = "source_bill_amounts"

    bill_id: Mapped[int] = mapped_column(ForeignKey("source_bills.id"), primary_key=True)
    register: Mapped[str] = mapped_column(String(16), primary_key=True)
    cents: Mapped[int] = mapped_column(BigInteger)


class DriverValue(Base):
    """One day's value of a site's driver (e.g. ``lobby_tmax``, the lobby's daily maximum
    temperature in °C) for formula keys; ``day`` is a date of the site's local calendar.
    Imported with ``meterflow cloud drivers import`` by ``imported_by`` at ``imported_at``
    (UTC); a stored value is never changed by an import."""

    __tablename__ = "driver_values"

    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    driver: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    value: Mapped[Decimal] = mapped_column(Numeric(24, 6))
    imported_by: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApportionRun(Base):
    """One apportionment of a site's period: state, inputs snapshot, hashes, flags, audit.

    ``inputs`` is the canonical JSON of everything computed from (rules and tariff
    snapshot, readings, bill); ``input_hash`` its SHA-256; ``result_hash`` the SHA-256 of
    the canonical lines. Posted runs are immutable (see :mod:`cloud.apportion.runs`).
    """

    __tablename__ = "apportion_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), index=True)
    input_hash: Mapped[str] = mapped_column(String(64), index=True)
    result_hash: Mapped[str] = mapped_column(String(64))
    #: deferred: loaded on first use, not with every run (a large site's is tens of MB)
    inputs: Mapped[str] = mapped_column(Text, deferred=True)
    flags: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    held: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The held or void run of the same site and period this one was closed again for.
    supersedes_id: Mapped[str | None] = mapped_column(ForeignKey("apportion_runs.id"))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reviewed_by: Mapped[str | None] = mapped_column(String(64))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    approved_by: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    posted_by: Mapped[str | None] = mapped_column(String(64))
    posted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    voided_by: Mapped[str | None] = mapped_column(String(64))
    voided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    void_reason: Mapped[str | None] = mapped_column(Text)
    #: The meter tree's balances as computed when the run was created (JSON text, see
    #: :mod:`cloud.apportion.balances`); None for runs created before revision 0009.
    balances: Mapped[str | None] = mapped_column(Text)
    #: The posted run's signed summary (:mod:`cloud.apportion.run_summary`): canonical
    #: JSON, key id, signature; None before posting and for runs posted before revision 0020.
    summary_payload: Mapped[str | None] = mapped_column(Text)
    summary_kid: Mapped[str | None] = mapped_column(String(64))
    summary_signature: Mapped[str | None] = mapped_column(String(128))


class ApportionLine(Base):
    """A rounded line of a run [cents]; ``kind`` ``charge`` or ``adjustment`` (a
    correction of the posted run ``adjusts_run_id``)."""

    __tablename__ = "apportion_lines"

    run_id: Mapped[str] = mapped_column(ForeignKey("apportion_runs.id"), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16))
    adjusts_run_id: Mapped[str | None] = mapped_column(ForeignKey("apportion_runs.id"))
    register: Mapped[str] = mapped_column(String(16))
    tariff: Mapped[str] = mapped_column(String(64))
    unit: Mapped[str] = mapped_column(String(64))
    party: Mapped[str] = mapped_column(String(64), index=True)
    from_: Mapped[str] = mapped_column("from_date", String(10))
    to: Mapped[str] = mapped_column("to_date", String(10))
    component: Mapped[str] = mapped_column(String(24))
    origin: Mapped[str] = mapped_column(String(64))
    kwh: Mapped[Decimal] = mapped_column(Numeric(24, 6))
    cents: Mapped[int] = mapped_column(BigInteger)


class ApportionStatement(Base):
    """A posted run's statement for one unit and party, as signed (canonical JSON text,
    key id, Ed25519 signature)."""

    __tablename__ = "apportion_statements"

    run_id: Mapped[str] = mapped_column(ForeignKey("apportion_runs.id"), primary_key=True)
    unit: Mapped[str] = mapped_column(String(64), primary_key=True)
    party: Mapped[str] = mapped_column(String(64), primary_key=True)
    payload: Mapped[str] = mapped_column(Text)
    kid: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))


class ApportionDraft(Base):
    """A run's statement for one unit and party as computed when the run was created: the
    canonical JSON text (unsigned) that posting signs as it is, its place in the run's
    order of statements and its total [cents]."""

    __tablename__ = "apportion_statement_drafts"

    run_id: Mapped[str] = mapped_column(ForeignKey("apportion_runs.id"), primary_key=True)
    unit: Mapped[str] = mapped_column(String(64), primary_key=True)
    party: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    payload: Mapped[str] = mapped_column(Text)
    cents: Mapped[int] = mapped_column(BigInteger)


_FROZEN_STATES = ("posted", "void")
_VOID_FIELDS = frozenset({"status", "voided_by", "voided_at", "void_reason"})


@event.listens_for(ApportionLine, "before_update")
@event.listens_for(ApportionLine, "before_delete")
@event.listens_for(ApportionStatement, "before_update")
@event.listens_for(ApportionStatement, "before_delete")
@event.listens_for(ApportionDraft, "before_update")
@event.listens_for(ApportionDraft, "before_delete")
def _lines_are_immutable(_mapper: Any, _connection: Any, target: Any) -> None:
    """Lines and signed statements are written once: a correction is an adjustment line in
    a later run, never an edit."""
    raise RunStateError(
        f"run {target.run_id!r}: lines and statements are never changed; "
        "correct with adjustment lines in a later run"
    )


@event.listens_for(ApportionRun, "before_delete")
def _runs_are_kept(_mapper: Any, _connection: Any, target: ApportionRun) -> None:
    raise RunStateError(f"run {target.id!r}: runs are never deleted; void it instead")


@event.listens_for(ApportionRun, "before_update")
def _issued_runs_are_immutable(_mapper: Any, _connection: Any, target: ApportionRun) -> None:
    """A posted run may only be voided; a void run not at all."""
    state = inspect(target)
    changed = {a.key for a in state.attrs if a.history.has_changes()}
    before = state.attrs.status.history.deleted
    was = before[0] if before else target.status
    if was == "void" or (was == "posted" and not changed <= _VOID_FIELDS):
        raise RunStateError(
            f"run {target.id!r} is {was}; issued runs are immutable "
            f"(tried to change {sorted(changed)})"
        )


class StatementConfirmation(Base):
    """A tenant confirmed a statement through a link (once per statement)."""

    __tablename__ = "statement_confirmations"

    run_id: Mapped[str] = mapped_column(ForeignKey("apportion_runs.id"), primary_key=True)
    unit: Mapped[str] = mapped_column(String(64), primary_key=True)
    party: Mapped[str] = mapped_column(String(64), primary_key=True)
    link_nonce: Mapped[str] = mapped_column(String(32))
    confirmed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    total_cents: Mapped[int] = mapped_column(BigInteger)
    #: the name the tenant typed when confirming (empty before revision 0017)
    confirmed_name: Mapped[str] = mapped_column(String(100), default="", server_default="")


class StatementDispute(Base):
    """A tenant disputed a statement with a comment; finance resolves it."""

    __tablename__ = "statement_disputes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("apportion_runs.id"), index=True)
    site_id: Mapped[str] = mapped_column(String(64), index=True)
    unit: Mapped[str] = mapped_column(String(64))
    party: Mapped[str] = mapped_column(String(64))
    link_nonce: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), index=True)
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolution: Mapped[str | None] = mapped_column(Text)


class SiteSettings(Base):
    """A site's apportionment settings from its site file: registers, the wire quantity
    each register is read from, and the site policy (see cloud.apportion.site)."""

    __tablename__ = "site_settings"

    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    registers: Mapped[list[str]] = mapped_column(JSON)
    quantities: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: the site file's ``property`` section (company, address, phone, due_days); None: none
    property: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    file_sha256: Mapped[str] = mapped_column(String(64))
    imported_by: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
