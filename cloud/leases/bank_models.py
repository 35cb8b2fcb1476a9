"""Registry tables of the money that comes in outside invoices' own flow: the lines of
imported bank statements, the payer accounts learned from them, and credit notes waiting for
approval (revision 0024; decision 0033). Re-exported by :mod:`cloud.leases.models`, whose
tables they refer to. Money is integer cents; instants are UTC."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from cloud.registry.base import Base


class BankLine(Base):
    """A credit line of an imported bank statement (revision 0024), stored once under its
    natural ``key`` (the bank's serial, else a hash of the line and its occurrence in the
    file): ``matched`` to a billing account with the payment it became, ``unmatched`` (with
    the suggested ``candidates``, lease ids) or ``ignored`` (dismissed as not ours, with the
    reason in ``note``). ``booked_on`` is the bank's local day; ``cents`` the amount received."""

    __tablename__ = "bank_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(80), unique=True)
    statement: Mapped[str] = mapped_column(String(64), index=True)
    row: Mapped[int] = mapped_column(Integer)
    booked_on: Mapped[date] = mapped_column(Date)
    cents: Mapped[int] = mapped_column(BigInteger)
    payer: Mapped[str] = mapped_column(String(200), default="")
    payer_account: Mapped[str] = mapped_column(String(64), default="")
    reference: Mapped[str] = mapped_column(String(200), default="")
    serial: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(12), index=True)
    lease_id: Mapped[str | None] = mapped_column(ForeignKey("leases.id"), index=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    matched_by: Mapped[str] = mapped_column(String(16), default="")
    candidates: Mapped[list[str]] = mapped_column(JSON, default=list)
    note: Mapped[str] = mapped_column(Text, default="")
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    imported_by: Mapped[str] = mapped_column(String(64))


class PayerAccount(Base):
    """A bank account a tenant pays from, learned when a line from it is matched or
    assigned to one of the tenant's leases; the next line from it matches by account."""

    __tablename__ = "payer_accounts"

    account_no: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    learned_on: Mapped[date] = mapped_column(Date)


class CreditNote(Base):
    """A credit note on a billing account [cents] with its reason: ``requested`` by one staff
    member, ``approved`` (it becomes a ``credit_entries`` row the next bill applies) or
    ``rejected`` by another (four eyes)."""

    __tablename__ = "credit_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lease_id: Mapped[str] = mapped_column(ForeignKey("leases.id"), index=True)
    cents: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), index=True)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    requested_by: Mapped[str] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decision_note: Mapped[str] = mapped_column(Text, default="")
