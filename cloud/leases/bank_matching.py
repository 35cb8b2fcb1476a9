"""Matching a bank statement's credit line to a billing account (decision 0033): by a lease
or invoice id in the reference, else by the amount of an open invoice together with the
payer's name or a bank account the tenant paid from before; within the caller's scope."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.apportion.models import Unit
from cloud.leases.bankfile import StatementLine
from cloud.leases.models import Invoice, Lease, PayerAccount, Tenant
from cloud.leases.payments import OPEN
from cloud.leases.roster import scope_condition
from cloud.staff.accounts import Principal

#: The most candidates kept for an unmatched line.
MAX_CANDIDATES = 5
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./\-]*")
_PERIOD_TAIL = re.compile(r"^(.+?)[-/_.]?(\d{4})[-/_.]?(\d{2})$")


def normalise_name(name: str) -> str:
    """A payer's or tenant's name compared: NFKC (full-width brackets and letters folded),
    case-folded, without spaces and punctuation."""
    text = unicodedata.normalize("NFKC", name).casefold()
    return "".join(ch for ch in text if ch.isalnum())


def reference_ids(reference: str) -> set[str]:
    """The lease and invoice ids a reference text may name (each token as written and in
    capitals; a trailing period ``YYYY-MM`` read as an invoice of the lease before it)."""
    out: set[str] = set()
    for token in _TOKEN.findall(reference)[:40]:
        token = token.strip("./-_")
        for t in {token, token.upper()}:
            if len(t) < 2:
                continue
            out.add(t)
            found = _PERIOD_TAIL.match(t)
            if found:
                lease, year, month = found.groups()
                out.update({lease, f"{lease}/{year}-{month}"})
    return out


def scoped_accounts(session: Session, who: Principal, lease_ids: Iterable[str]) -> set[str]:
    """The billing accounts of those of ``lease_ids`` that exist within ``who``'s scope."""
    wanted = sorted(set(lease_ids))
    if not wanted:
        return set()
    query = (
        select(Lease.id, Lease.parent_id)
        .join(Unit, Unit.id == Lease.unit_id)
        .where(Lease.id.in_(wanted))
    )
    scope = scope_condition(who)
    if scope is not None:
        query = query.where(scope)
    return {parent or lease for lease, parent in session.execute(query)}


def match_line(
    session: Session, who: Principal, line: StatementLine
) -> tuple[str | None, str, tuple[str, ...], str]:
    """(account or None, how, candidates, note) of a credit line."""
    ids = reference_ids(line.reference)
    if ids:
        invoiced = session.scalars(select(Invoice.lease_id).where(Invoice.id.in_(sorted(ids))))
        accounts = scoped_accounts(session, who, [*ids, *invoiced])
        if len(accounts) == 1:
            return accounts.pop(), "reference", (), ""
        if accounts:
            found = tuple(sorted(accounts))[:MAX_CANDIDATES]
            return None, "", found, "the reference names several leases"
    owed = (
        select(Invoice.lease_id, Tenant.id, Tenant.name)
        .join(Lease, Lease.id == Invoice.lease_id)
        .join(Unit, Unit.id == Lease.unit_id)
        .join(Tenant, Tenant.id == Lease.tenant_id)
        .where(
            Invoice.status == OPEN,
            Invoice.total_cents - Invoice.paid_cents == line.cents,
        )
    )
    scope = scope_condition(who)
    if scope is not None:
        owed = owed.where(scope)
    rows = session.execute(owed).all()
    payer = normalise_name(line.payer)
    known_tenant = (
        session.scalar(
            select(PayerAccount.tenant_id).where(PayerAccount.account_no == line.payer_account)
        )
        if line.payer_account
        else None
    )
    by_account = {a for a, tenant, _ in rows if known_tenant and tenant == known_tenant}
    by_name = {a for a, _, name in rows if payer and normalise_name(name) == payer}
    both = by_account | by_name
    if len(both) == 1:
        return both.pop(), "account" if by_account else "name", (), ""
    if both:
        found = tuple(sorted(both))[:MAX_CANDIDATES]
        return None, "", found, "several leases owe this amount to this payer"
    suggestions = {a for a, *_ in rows}
    tenants = session.execute(
        select(Lease.id, Lease.parent_id, Tenant.id, Tenant.name)
        .join(Unit, Unit.id == Lease.unit_id)
        .join(Tenant, Tenant.id == Lease.tenant_id)
        .where(Lease.status.in_(("signed", "active", "expiring", "open_ended")))
        .where(*([scope] if scope is not None else []))
    ).all()
    for lease, parent, tenant, name in tenants:
        if (known_tenant and tenant == known_tenant) or (payer and normalise_name(name) == payer):
            suggestions.add(parent or lease)
    note = (
        "no lease owes this amount to this payer"
        if suggestions
        else "no reference, amount or payer of a lease you see"
    )
    return None, "", tuple(sorted(suggestions))[:MAX_CANDIDATES], note
