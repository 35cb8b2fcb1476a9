"""Bank statements: import, matching of each credit line to a billing account, the unmatched
queue (assign to a lease, or dismiss as not ours). Decision 0033; docs/leases.md.

Every credit line is stored once (:class:`~cloud.leases.models.BankLine`, unique natural key:
the bank's serial, else a hash of the line), so importing a statement again records nothing
new. A matched line becomes a payment through :func:`cloud.leases.payments.record_payment`
(oldest invoice first, the rest credit) with the bank's serial as the payment's reference.

Matching, within the importer's sites and buildings (a line that would match a lease outside
them stays unmatched, for somebody who sees that lease to assign):

1. by reference: a lease id or an invoice id (``L-A1/2026-03``, also written ``L-A1-2026-03``
   or ``L-A1 2026-03``... as one token) in the reference text — one billing account found:
   matched; two or more: unmatched, with them as candidates;
2. by amount and payer: the amount equals an open invoice's outstanding amount and the payer's
   name is the tenant's, or the payer's bank account is one the tenant paid from before
   (learned from every matched or assigned line) — one account: matched; more: unmatched;
3. else unmatched, with the accounts owed that amount or of that payer as suggestions.

Unmatched lines are the company's unidentified receipts: every role that takes payments sees
them (candidates limited to the leases the caller sees); matched lines are seen by whoever
sees their lease. Amounts are integer cents; days are local calendar days (Asia/Shanghai).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.apportion.models import Unit
from cloud.leases.bank_matching import match_line, scoped_accounts
from cloud.leases.bankfile import StatementFileError, StatementLine, read_statement
from cloud.leases.errors import (
    AlreadyDecided,
    BankFileError,
    BankLineError,
    NotPermitted,
    PaymentConflict,
    PaymentError,
    UnknownRecord,
)
from cloud.leases.models import BankLine, Lease, PayerAccount
from cloud.leases.payments import PaymentReceipt, account_of, record_payment
from cloud.leases.roster import (
    ScopedDesk,
    audit_payment,
    check_received_on,
    scope_condition,
)
from cloud.staff.accounts import PAYMENT_ROLES, Principal
from cloud.staff.audit import record_change

MATCHED, UNMATCHED, IGNORED, DUPLICATE = "matched", "unmatched", "ignored", "duplicate"
STATUSES = (MATCHED, UNMATCHED, IGNORED)
#: The most lines one listing returns.
MAX_LIST = 1000
#: The longest dismissal reason [characters].
MAX_REASON = 500


@dataclass(frozen=True)
class LineOutcome:
    """What became of one credit line of a statement: ``status`` matched, unmatched or
    duplicate (imported before); the billing account and the invoices settled [cents], the
    credit left [cents], how it matched (``reference``, ``name``, ``account``, ``assigned``),
    the candidates of an unmatched line, and why it is unmatched (``note``)."""

    row: int
    line_id: int | None
    booked_on: date
    cents: int
    payer: str
    payer_account: str
    reference: str
    serial: str
    status: str
    lease_id: str | None = None
    matched_by: str = ""
    candidates: tuple[str, ...] = ()
    settled: tuple[tuple[str, int], ...] = ()
    credit_cents: int = 0
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["booked_on"] = self.booked_on.isoformat()
        out["candidates"] = list(self.candidates)
        out["settled"] = [{"invoice": i, "cents": c} for i, c in self.settled]
        return out


@dataclass(frozen=True)
class ImportReport:
    """A statement's import (or dry run): each credit line's outcome, the debit lines
    ignored (count and cents) and the malformed rows (``problems``; an import with any is
    refused, a dry run shows them)."""

    dry_run: bool
    sha256: str
    outcomes: tuple[LineOutcome, ...]
    ignored: int
    ignored_cents: int
    problems: tuple[str, ...] = ()

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def cents(self, status: str) -> int:
        return sum(o.cents for o in self.outcomes if o.status == status)

    def summary(self) -> dict[str, Any]:
        """Counts and amounts [cents] per outcome."""
        out: dict[str, Any] = {"dry_run": self.dry_run, "statement_sha256": self.sha256}
        for status in (MATCHED, UNMATCHED, DUPLICATE):
            out[status] = self.count(status)
            out[f"{status}_cents"] = self.cents(status)
        out["ignored"] = self.ignored
        out["ignored_cents"] = self.ignored_cents
        out["problems"] = list(self.problems)
        return out


@dataclass(frozen=True)
class BankLineRow:
    """A stored bank line as the caller may see it (candidates limited to their leases)."""

    id: int
    row: int
    statement: str
    booked_on: date
    cents: int
    payer: str
    payer_account: str
    reference: str
    serial: str
    status: str
    lease_id: str | None
    payment_id: int | None
    matched_by: str
    candidates: tuple[str, ...]
    note: str
    imported_by: str
    imported_at: datetime
    settled: tuple[tuple[str, int], ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["candidates"] = list(self.candidates)
        out["settled"] = [{"invoice": i, "cents": c} for i, c in self.settled]
        return out


def _may_take_money(who: Principal) -> None:
    if who.role not in PAYMENT_ROLES:
        raise NotPermitted(
            f"the {who.role.value} role takes no money: bank statements are for admin, "
            "finance, managers and supervisors"
        )


class BankService(ScopedDesk):
    """Imports statements and works the unmatched queue for one staff member at a time."""

    # -- import ---------------------------------------------------------------------------

    def import_statement(self, who: Principal, raw: bytes, *, dry_run: bool) -> ImportReport:
        """Import a CSV statement (:mod:`cloud.leases.bankfile`): store each new credit line,
        match it, record the matched ones as payments; audited. ``dry_run``: the same, rolled
        back, malformed rows listed with the rest. BankFileError for a file that is not a
        statement, or (not a dry run) with any malformed row: nothing is stored then."""
        _may_take_money(who)
        try:
            statement = read_statement(raw)
        except StatementFileError as exc:
            raise BankFileError(str(exc), [str(exc)]) from None
        today = self.today()
        lines: list[StatementLine] = []
        for line in statement.lines:
            try:
                check_received_on(line.booked_on, today)
            except PaymentError as exc:  # the bounds of a payment's day
                statement.problem(f"row {line.row}, the date: {exc}")
                continue
            lines.append(line)
        problems = list(statement.problems)
        if statement.more_problems:
            problems.append(f"… and {statement.more_problems} more malformed rows")
        if problems and not dry_run:
            raise BankFileError(
                f"the statement has {len(problems)} malformed rows; nothing was imported: "
                + "; ".join(problems[:3]),
                problems,
            )
        session = self.sessions()
        try:
            outcomes = self._store(session, who, statement.sha256, lines)
            if dry_run:
                session.rollback()
            else:
                session.commit()
        except IntegrityError:
            session.rollback()
            raise AlreadyDecided(
                "another import stored some of these lines at the same time; nothing of this "
                "one was stored: import the statement again (its lines are then duplicates)"
            ) from None
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
        return ImportReport(
            dry_run,
            statement.sha256,
            tuple(outcomes),
            statement.debits,
            statement.debit_cents,
            tuple(problems),
        )

    def _store(
        self, session: Session, who: Principal, sha256: str, lines: list[StatementLine]
    ) -> list[LineOutcome]:
        keys = [line.key for line in lines]
        known: set[str] = set()
        for i in range(0, len(keys), 500):
            known.update(
                session.scalars(select(BankLine.key).where(BankLine.key.in_(keys[i : i + 500])))
            )
        at = self.clock()
        outcomes: list[LineOutcome] = []
        for line in lines:
            if line.key in known:
                outcomes.append(_outcome(line, None, DUPLICATE))
                continue
            known.add(line.key)
            account, how, candidates, note = match_line(session, who, line)
            row = BankLine(
                key=line.key,
                statement=sha256,
                row=line.row,
                booked_on=line.booked_on,
                cents=line.cents,
                payer=line.payer,
                payer_account=line.payer_account,
                reference=line.reference,
                serial=line.serial,
                status=UNMATCHED,
                candidates=list(candidates),
                note=note,
                imported_at=at,
                imported_by=who.username,
            )
            session.add(row)
            session.flush()
            receipt = None
            if account is not None:
                try:
                    receipt = self._pay(session, who, row, account, how)
                except PaymentConflict as exc:
                    row.note = str(exc)[:500]
                    row.candidates = [account]
            record_change(
                session,
                at=at,
                actor=who.username,
                origin=who.origin,
                action="bank_line",
                subject=f"bankline:{row.id}",
                before=None,
                after=_line_values(row),
                note=f"imported from statement {sha256[:12]} row {line.row}",
            )
            outcomes.append(
                _outcome(
                    line,
                    row.id,
                    row.status,
                    lease_id=row.lease_id,
                    matched_by=row.matched_by,
                    candidates=tuple(row.candidates),
                    receipt=receipt,
                    note=row.note,
                )
            )
        return outcomes

    def _pay(
        self, session: Session, who: Principal, row: BankLine, account: str, how: str
    ) -> PaymentReceipt:
        """Record the line as a payment of ``account`` (the one allocation path), learn the
        payer's bank account, mark the line matched; audited."""
        ref = row.serial or f"BANK-{row.key.split(':', 1)[1][:24]}"
        receipt = record_payment(
            session, account, cents=row.cents, received_on=row.booked_on, ref=ref
        )
        row.status, row.lease_id, row.payment_id = MATCHED, receipt.account_id, receipt.payment_id
        row.matched_by, row.candidates, row.note = how, [], ""
        if row.payer_account:
            tenant = session.get(Lease, receipt.account_id).tenant_id  # type: ignore[union-attr]
            known = session.get(PayerAccount, row.payer_account)
            if known is None:
                session.add(
                    PayerAccount(
                        account_no=row.payer_account, tenant_id=tenant, learned_on=row.booked_on
                    )
                )
            elif known.tenant_id != tenant:
                known.tenant_id, known.learned_on = tenant, row.booked_on
        if not receipt.duplicate:
            audit_payment(
                session,
                who,
                receipt,
                self.clock(),
                cents=row.cents,
                received_on=row.booked_on,
                ref=ref,
                note=f"payment {receipt.payment_id} from bank line {row.id} ({how})",
            )
        session.flush()
        return receipt

    # -- the queue ------------------------------------------------------------------------

    def lines(
        self, who: Principal, *, status: str | None = None, limit: int = 500
    ) -> list[BankLineRow]:
        """Stored lines the caller may see, newest day first: unmatched and ignored lines
        (nobody's yet) and the matched lines of leases in the caller's scope."""
        _may_take_money(who)
        query = (
            select(BankLine)
            .outerjoin(Lease, Lease.id == BankLine.lease_id)
            .outerjoin(Unit, Unit.id == Lease.unit_id)
            .order_by(BankLine.booked_on.desc(), BankLine.id.desc())
            .limit(min(max(limit, 1), MAX_LIST))
        )
        if status is not None:
            query = query.where(BankLine.status == status)
        scope = scope_condition(who)
        if scope is not None:
            query = query.where((BankLine.status != MATCHED) | scope)
        with self.sessions() as session:
            rows = session.scalars(query).all()
            visible = scoped_accounts(session, who, {c for r in rows for c in (r.candidates or [])})
            settled = _settled(session, [r.payment_id for r in rows if r.payment_id])
            return [_row(r, visible, settled) for r in rows]

    def line(self, who: Principal, line_id: int) -> BankLineRow:
        """One line; UnknownRecord when there is none the caller may see."""
        _may_take_money(who)
        with self.sessions() as session:
            row = session.get(BankLine, line_id)
            if row is None or not self._may_see(session, who, row):
                raise UnknownRecord(f"no bank line {line_id} you may see")
            visible = scoped_accounts(session, who, row.candidates or [])
            settled = _settled(session, [row.payment_id] if row.payment_id else [])
            return _row(row, visible, settled)

    def _may_see(self, session: Session, who: Principal, row: BankLine) -> bool:
        return row.status != MATCHED or bool(
            row.lease_id and scoped_accounts(session, who, [row.lease_id])
        )

    def _locked(self, session: Session, who: Principal, line_id: int) -> BankLine:
        row = session.scalars(
            select(BankLine).where(BankLine.id == line_id).with_for_update()
        ).first()
        if row is None or not self._may_see(session, who, row):
            raise UnknownRecord(f"no bank line {line_id} you may see")
        if row.status != UNMATCHED:
            raise AlreadyDecided(
                f"bank line {line_id} is {row.status}"
                + (f" (lease {row.lease_id})" if row.lease_id else "")
                + ": only an unmatched line can be assigned or dismissed"
            )
        return row

    def assign(self, who: Principal, line_id: int, lease_id: str) -> BankLineRow:
        """Assign an unmatched line to ``lease_id``: it becomes a payment of the lease's
        billing account (allocated oldest invoice first), the payer's account is learned.
        UnknownRecord for a line or lease the caller does not see; AlreadyDecided when the
        line is not unmatched; PaymentError for a day out of the payments' bounds or a
        serial recorded with another amount."""
        _may_take_money(who)
        self.roster.lease(who, lease_id)
        with self.sessions.begin() as session:
            row = self._locked(session, who, line_id)
            check_received_on(row.booked_on, self.today())
            before = _line_values(row)
            account = account_of(session, lease_id).id
            self._pay(session, who, row, account, "assigned")
            record_change(
                session,
                at=self.clock(),
                actor=who.username,
                origin=who.origin,
                action="bank_line",
                subject=f"bankline:{row.id}",
                before=before,
                after=_line_values(row),
                note=f"assigned to lease {lease_id}",
            )
        return self.line(who, line_id)

    def dismiss(self, who: Principal, line_id: int, reason: str) -> BankLineRow:
        """Mark an unmatched line as not ours (``ignored``) with the reason; audited."""
        _may_take_money(who)
        reason = reason.strip()
        if not 1 <= len(reason) <= MAX_REASON:
            raise BankLineError(f"reason: expected 1 to {MAX_REASON} characters")
        with self.sessions.begin() as session:
            row = self._locked(session, who, line_id)
            before = _line_values(row)
            row.status, row.note, row.candidates = IGNORED, reason, []
            record_change(
                session,
                at=self.clock(),
                actor=who.username,
                origin=who.origin,
                action="bank_line",
                subject=f"bankline:{row.id}",
                before=before,
                after=_line_values(row),
                note="dismissed: not ours",
            )
        return self.line(who, line_id)


def _line_values(row: BankLine) -> dict[str, Any]:
    return {
        "status": row.status,
        "lease": row.lease_id,
        "payment": row.payment_id,
        "matched_by": row.matched_by,
        "candidates": list(row.candidates or []),
        "cents": row.cents,
        "booked_on": row.booked_on,
        "payer": row.payer,
        "payer_account": row.payer_account,
        "reference": row.reference,
        "serial": row.serial,
        "note": row.note,
    }


def _settled(session: Session, payment_ids: list[int]) -> dict[int, list[tuple[str, int]]]:
    from cloud.leases.models import PaymentAllocation

    out: dict[int, list[tuple[str, int]]] = {}
    for i in range(0, len(payment_ids), 500):
        for pid, invoice, cents in session.execute(
            select(
                PaymentAllocation.payment_id, PaymentAllocation.invoice_id, PaymentAllocation.cents
            )
            .where(PaymentAllocation.payment_id.in_(payment_ids[i : i + 500]))
            .order_by(PaymentAllocation.invoice_id)
        ):
            out.setdefault(pid, []).append((invoice, int(cents)))
    return out


def _row(r: BankLine, visible: set[str], settled: dict[int, list[tuple[str, int]]]) -> BankLineRow:
    return BankLineRow(
        id=r.id,
        row=r.row,
        statement=r.statement,
        booked_on=r.booked_on,
        cents=r.cents,
        payer=r.payer,
        payer_account=r.payer_account,
        reference=r.reference,
        serial=r.serial,
        status=r.status,
        lease_id=r.lease_id,
        payment_id=r.payment_id,
        matched_by=r.matched_by,
        candidates=tuple(c for c in (r.candidates or []) if c in visible),
        note=r.note,
        imported_by=r.imported_by,
        imported_at=r.imported_at,
        settled=tuple(settled.get(r.payment_id, ())) if r.payment_id else (),
    )


def _outcome(
    line: StatementLine,
    line_id: int | None,
    status: str,
    *,
    lease_id: str | None = None,
    matched_by: str = "",
    candidates: tuple[str, ...] = (),
    receipt: PaymentReceipt | None = None,
    note: str = "",
) -> LineOutcome:
    return LineOutcome(
        row=line.row,
        line_id=line_id,
        booked_on=line.booked_on,
        cents=line.cents,
        payer=line.payer,
        payer_account=line.payer_account,
        reference=line.reference,
        serial=line.serial,
        status=status,
        lease_id=lease_id,
        matched_by=matched_by,
        candidates=candidates,
        settled=receipt.allocations if receipt else (),
        credit_cents=receipt.credit_cents if receipt else 0,
        note=note,
    )
