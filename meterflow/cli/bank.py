"""Bank statements and credit notes on the command line (decision 0033):

``meterflow cloud bank import FILE.csv [--dry-run] [--json] [--as ACCOUNT]``,
``meterflow cloud bank unmatched [--json]``, ``meterflow cloud bank assign LINE --lease ID``,
``meterflow cloud bank dismiss LINE --reason TEXT``, and
``meterflow cloud credit-note request|approve|reject|list``.

Every command acts as ``--as ACCOUNT`` (its role, sites and buildings; default: the host's
operator, an admin) and is audited with origin ``cli``. Refusals print one line on stderr
and exit with status 2. Only typer is imported at module level.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from meterflow.cli.common import acting_as, fail

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

bank_app = typer.Typer(help="Bank statements: import, the unmatched queue.", no_args_is_help=True)
credit_note_app = typer.Typer(
    help="Credit notes: requested by one person, approved by another.", no_args_is_help=True
)
As = Annotated[str | None, typer.Option("--as", help="act as this staff account (default: admin)")]
Json = Annotated[bool, typer.Option("--json", help="print JSON")]


def _sessions() -> sessionmaker[Session]:
    from meterflow.assembly import registry
    from meterflow.settings import Settings

    return registry(Settings())


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, default=str))


@bank_app.command("import")
def bank_import(
    file: Annotated[Path, typer.Argument(help="the statement CSV (UTF-8 or GB18030)")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show, store nothing")] = False,
    as_json: Json = False,
    account: As = None,
) -> None:
    """Import a bank statement: match each credit line to a lease and record it as its
    payment, or leave it unmatched. Prints the matched, unmatched, duplicate and ignored
    (money out) counts and amounts [cents]; a file with malformed rows is refused whole
    (``--dry-run`` lists them)."""
    from cloud.leases.bankfile import MAX_BYTES
    from cloud.leases.banking import BankService
    from cloud.leases.errors import BankFileError, LeaseError

    try:
        if file.stat().st_size > MAX_BYTES:
            raise fail(f"{file}: {file.stat().st_size} bytes, expected at most {MAX_BYTES}")
        raw = file.read_bytes()
    except OSError as exc:
        raise fail(f"{file}: {exc.strerror or exc}") from None
    sessions = _sessions()
    who = acting_as(sessions, account)
    try:
        report = BankService(sessions).import_statement(who, raw, dry_run=dry_run)
    except BankFileError as exc:
        for problem in exc.problems:
            typer.echo(f"{file}: {problem}", err=True)
        raise fail(f"{file}: nothing imported ({len(exc.problems)} problems)") from None
    except LeaseError as exc:
        raise fail(str(exc)) from None
    summary = report.summary()
    if as_json:
        _echo_json({**summary, "lines": [o.as_dict() for o in report.outcomes]})
        return
    for o in report.outcomes:
        target = o.lease_id or (",".join(o.candidates) if o.candidates else "-")
        typer.echo(
            f"row {o.row}: {o.status} {o.cents} cents {o.booked_on} {o.payer or '-'} → "
            f"{target}{' (' + o.matched_by + ')' if o.matched_by else ''}"
        )
    for problem in report.problems:
        typer.echo(f"problem: {problem}")
    typer.echo(
        ("dry run: " if dry_run else "")
        + ", ".join(
            f"{s} {summary[s]} ({summary[s + '_cents']} cents)"
            for s in ("matched", "unmatched", "duplicate", "ignored")
        )
    )


@bank_app.command("unmatched")
def bank_unmatched(as_json: Json = False, account: As = None) -> None:
    """The unmatched lines with their candidate leases."""
    from cloud.leases.banking import UNMATCHED, BankService

    sessions = _sessions()
    rows = BankService(sessions).lines(acting_as(sessions, account), status=UNMATCHED)
    if as_json:
        _echo_json([r.as_dict() for r in rows])
        return
    for r in rows:
        typer.echo(
            f"{r.id}\t{r.booked_on}\t{r.cents} cents\t{r.payer or '-'}\t{r.payer_account or '-'}"
            f"\t{r.reference or '-'}\tcandidates: {','.join(r.candidates) or '-'}"
        )
    if not rows:
        typer.echo("no unmatched lines")


@bank_app.command("assign")
def bank_assign(
    line: Annotated[int, typer.Argument(help="the bank line's id (bank unmatched)", min=1)],
    lease: Annotated[str, typer.Option(help="the lease it was paid for")],
    account: As = None,
) -> None:
    """Assign an unmatched line to a lease: it becomes the lease's payment."""
    from cloud.leases.banking import BankService
    from cloud.leases.errors import LeaseError

    sessions = _sessions()
    try:
        row = BankService(sessions).assign(acting_as(sessions, account), line, lease)
    except LeaseError as exc:
        raise fail(str(exc)) from None
    _echo_json(row.as_dict())


@bank_app.command("dismiss")
def bank_dismiss(
    line: Annotated[int, typer.Argument(help="the bank line's id", min=1)],
    reason: Annotated[str, typer.Option(help="why it is not ours")],
    account: As = None,
) -> None:
    """Mark an unmatched line as not ours, with the reason."""
    from cloud.leases.banking import BankService
    from cloud.leases.errors import LeaseError

    sessions = _sessions()
    try:
        row = BankService(sessions).dismiss(acting_as(sessions, account), line, reason)
    except LeaseError as exc:
        raise fail(str(exc)) from None
    _echo_json(row.as_dict())


@credit_note_app.command("request")
def credit_note_request(
    lease: Annotated[str, typer.Option(help="the lease whose account is credited")],
    amount: Annotated[str, typer.Option(help="yuan, at most two decimals")],
    reason: Annotated[str, typer.Option(help="why")],
    account: As = None,
) -> None:
    """Request a credit note; another person approves or rejects it."""
    from decimal import Decimal

    from cloud.leases.credit_notes import CreditNoteService
    from cloud.leases.errors import LeaseError

    if not re.fullmatch(r"[0-9]{1,10}(\.[0-9]{1,2})?", amount) or Decimal(amount) <= 0:
        raise fail(f"--amount {amount!r}: expected yuan above 0 with at most two decimals")
    sessions = _sessions()
    try:
        row = CreditNoteService(sessions).request(
            acting_as(sessions, account), lease, int(Decimal(amount) * 100), reason
        )
    except LeaseError as exc:
        raise fail(str(exc)) from None
    _echo_json(row.as_dict())


def _decide(note: int, approve: bool, comment: str, account: str | None) -> None:
    from cloud.leases.credit_notes import CreditNoteService
    from cloud.leases.errors import LeaseError

    sessions = _sessions()
    try:
        row = CreditNoteService(sessions).decide(
            acting_as(sessions, account), note, approve=approve, note=comment
        )
    except LeaseError as exc:
        raise fail(str(exc)) from None
    _echo_json(row.as_dict())


@credit_note_app.command("approve")
def credit_note_approve(
    note: Annotated[int, typer.Argument(help="the credit note's id", min=1)],
    comment: Annotated[str, typer.Option("--note", help="a note on the decision")] = "",
    account: As = None,
) -> None:
    """Approve a credit note (not your own): the next bill applies its credit."""
    _decide(note, True, comment, account)


@credit_note_app.command("reject")
def credit_note_reject(
    note: Annotated[int, typer.Argument(help="the credit note's id", min=1)],
    comment: Annotated[str, typer.Option("--note", help="why")] = "",
    account: As = None,
) -> None:
    """Reject a credit note (not your own): nothing is credited."""
    _decide(note, False, comment, account)


@credit_note_app.command("list")
def credit_note_list(
    status: Annotated[str | None, typer.Option(help="requested, approved or rejected")] = None,
    account: As = None,
) -> None:
    """Credit notes of the leases you see, newest first (JSON lines)."""
    from cloud.leases.credit_notes import STATUSES, CreditNoteService

    if status is not None and status not in STATUSES:
        raise fail(f"--status {status!r}: expected one of {', '.join(STATUSES)}")
    sessions = _sessions()
    for row in CreditNoteService(sessions).notes(acting_as(sessions, account), status=status):
        _echo_json(row.as_dict())
