"""Deposit refunds (退押金) on the command line (decision 0041): ``meterflow cloud deposit``
``list``, ``show``, ``request``, ``deduct``, ``inspect``, ``settle``, ``approve``, ``pay``.
Each acts as ``--as ACCOUNT`` (its role and scope; origin ``cli``) or the host's operator,
through :class:`cloud.leases.deposit_desk.DepositDesk`; a refused act or bad input exits 2
with the reason. Registered in ``meterflow/cli/cloud.py``.

Only typer is imported at module level; the services are imported when a command runs.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from meterflow.cli.common import acting_as, fail

if TYPE_CHECKING:
    from cloud.leases.deposit_desk import DepositDesk, RefundRow
    from cloud.staff.accounts import Principal

deposit_app = typer.Typer(
    help="Deposit refunds: request, deduct, inspect, settle, approve, pay.", no_args_is_help=True
)

AsOpt = Annotated[
    str | None,
    typer.Option("--as", help="act as this staff account (its role and scope); default: admin"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON document")]
RefundArg = Annotated[int, typer.Argument(help="the refund's number", min=1, max=2**31 - 1)]
_YUAN = re.compile(r"^[0-9]{1,10}(\.[0-9]{1,2})?$")


def _desk(account: str | None) -> tuple[DepositDesk, Principal]:
    from cloud.leases.deposit_desk import DepositDesk
    from meterflow.assembly import registry
    from meterflow.settings import Settings

    sessions = registry(Settings())
    return DepositDesk(sessions), acting_as(sessions, account)


def _run(call: Any) -> Any:
    from cloud.leases.errors import LeaseError

    try:
        return call()
    except LeaseError as exc:
        raise fail(str(exc)) from None


def _yuan(cents: int | None) -> str:
    from cloud.apportion.money import cny

    return "—" if cents is None else cny(cents)


def _show(row: RefundRow, as_json: bool, full: bool = True) -> None:
    if as_json:
        typer.echo(json.dumps(row.as_dict(), default=str, ensure_ascii=False, indent=2))
        return
    waiting = f"{row.waiting_for} due {row.due_at:%Y-%m-%d %H:%M} UTC ({row.sla})" if (
        row.waiting_for and row.due_at
    ) else "—"  # fmt: skip
    typer.echo(
        f"refund {row.id}  lease {row.lease_id}  {row.site_id}/{row.building}/{row.unit_name}  "
        f"{row.tenant_name}  {row.state}  deposit {_yuan(row.deposit_cents)}  "
        f"deducted {_yuan(row.deductions_cents)}  paid invoices {_yuan(row.arrears_cents)}  "
        f"refund {_yuan(row.refund_cents)}  "
        f"shortfall {_yuan(row.shortfall_cents)}  next: {waiting}"
    )
    if not full:
        return
    for state, at, by in row.steps:
        typer.echo(f"  {state:<10} {at:%Y-%m-%d %H:%M} UTC  {by}")
    for d in row.deductions:
        files = ", ".join(f"{sha[:12]}… {kind}" for sha, kind in d.files)
        typer.echo(f"  deduction {d.id}: {_yuan(d.cents)} {d.reason} [{files}] by {d.added_by}")
    if row.payment_ref:
        typer.echo(f"  paid with bank transfer {row.payment_ref}")


@deposit_app.command("list")
def deposit_list(
    account: AsOpt = None,
    state: Annotated[
        str | None,
        typer.Option(help="requested, inspected, settled, approved or paid"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The refunds in scope, the most urgent first, with the step waited for and its SLA."""
    desk, who = _desk(account)
    rows = _run(lambda: desk.refunds(who, state=state))
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in rows], default=str, ensure_ascii=False))
        return
    for row in rows:
        _show(row, False, full=False)
    if not rows:
        typer.echo("no deposit refunds")


@deposit_app.command("show")
def deposit_show(refund: RefundArg, account: AsOpt = None, as_json: JsonOpt = False) -> None:
    """One refund: its steps (who, when) and deductions with their evidence."""
    desk, who = _desk(account)
    _show(_run(lambda: desk.refund(who, refund)), as_json)


@deposit_app.command("request")
def deposit_request(
    lease: Annotated[str, typer.Argument(help="the terminated lease's id")],
    account: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Request the refund of a terminated lease's deposit."""
    if not 1 <= len(lease) <= 64:
        raise fail("lease: expected a lease id of 1 to 64 characters")
    desk, who = _desk(account)
    _show(_run(lambda: desk.request(who, lease)), as_json)


def _evidence(paths: list[Path]) -> list[tuple[str, bytes]]:
    from cloud.leases.evidence import MAX_BYTES

    out = []
    for path in paths:
        try:
            size = path.stat().st_size
            if size > MAX_BYTES:
                raise fail(
                    f"--evidence {str(path)[:200]}: {size} bytes, expected at most "
                    f"{MAX_BYTES} (10 MB)"
                )
            out.append((path.name, path.read_bytes()))
        except OSError as exc:
            raise fail(f"--evidence {str(path)[:200]}: cannot read it ({exc.strerror})") from None
    return out


@deposit_app.command("deduct")
def deposit_deduct(
    refund: RefundArg,
    yuan: Annotated[str, typer.Option("--yuan", help="the deduction in yuan, e.g. 300.00")],
    reason: Annotated[str, typer.Option("--reason", help="what it is for (≤ 500 characters)")],
    evidence: Annotated[
        list[Path] | None,
        typer.Option("--evidence", help="a JPEG, PNG or PDF file (≤ 10 MB); repeat, up to 3"),
    ] = None,
    account: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a deduction with its evidence files before the settlement."""
    if not _YUAN.fullmatch(yuan):
        raise fail(f"--yuan {yuan[:20]!r}: expected yuan like 300.00")
    if not evidence:
        raise fail("--evidence: a deduction needs at least one file (JPEG, PNG or PDF)")
    files = _evidence(evidence)
    desk, who = _desk(account)
    cents = int(Decimal(yuan) * 100)
    _show(_run(lambda: desk.deduct(who, refund, cents=cents, reason=reason, files=files)), as_json)


@deposit_app.command("take-back")
def deposit_take_back(
    refund: RefundArg,
    deduction: Annotated[int, typer.Argument(help="the deduction's id (deposit show)", min=1)],
    reason: Annotated[
        str, typer.Option("--reason", help="why it is taken back (≤ 500 characters)")
    ],
    account: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Take back a deduction added by mistake, before the settlement (audited with why)."""
    desk, who = _desk(account)
    _show(_run(lambda: desk.remove_deduction(who, refund, deduction, reason=reason)), as_json)


def _step(refund: int, step: str, account: str | None, as_json: bool, ref: str = "") -> None:
    desk, who = _desk(account)
    _show(_run(lambda: desk.act(who, refund, step, ref)), as_json)


@deposit_app.command("inspect")
def deposit_inspect(refund: RefundArg, account: AsOpt = None, as_json: JsonOpt = False) -> None:
    """requested → inspected."""
    _step(refund, "inspect", account, as_json)


@deposit_app.command("settle")
def deposit_settle(refund: RefundArg, account: AsOpt = None, as_json: JsonOpt = False) -> None:
    """inspected → settled: refund = deposit − deductions; the tenant is notified."""
    _step(refund, "settle", account, as_json)


@deposit_app.command("approve")
def deposit_approve(refund: RefundArg, account: AsOpt = None, as_json: JsonOpt = False) -> None:
    """settled → approved (not by the account that settled it)."""
    _step(refund, "approve", account, as_json)


@deposit_app.command("pay")
def deposit_pay(
    refund: RefundArg,
    reference: Annotated[str, typer.Option("--reference", help="the bank transfer's number")],
    account: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """approved → paid, with the bank transfer's number; the tenant is notified."""
    _step(refund, "pay", account, as_json, reference)
