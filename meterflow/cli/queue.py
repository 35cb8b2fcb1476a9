"""The work queue and renewal offers on the command line (issue #18, decision 0034):
``meterflow cloud queue`` (list, ``ack``, ``done``, ``ack-reminders --due``) and
``meterflow cloud offer`` (``make``, ``approve``, ``reject``, ``invite``, ``negotiate``,
``sign``, ``lose``). Each acts as ``--as ACCOUNT`` (its role and scope; origin ``cli``) or
the host's operator. Registered in ``meterflow/cli/cloud.py``.

Only typer is imported at module level; the services are imported when a command runs.
"""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import typer

from meterflow.cli.common import acting_as, fail

if TYPE_CHECKING:
    from cloud.leases.offers import OfferDesk, OfferRow
    from cloud.leases.queue import WorkQueue
    from cloud.staff.accounts import Principal

queue_app = typer.Typer(help="The work queue (待办): reminders, tasks, approvals.")
offer_app = typer.Typer(help="Renewal offers: make, approve, move along.", no_args_is_help=True)

AsOpt = Annotated[
    str | None,
    typer.Option("--as", help="act as this staff account (its role and scope); default: admin"),
]
_YUAN = re.compile(r"^[0-9]{1,10}(\.[0-9]{1,2})?$")


def _services(account: str | None) -> tuple[WorkQueue, OfferDesk, Principal]:
    from cloud.leases.offers import OfferDesk
    from cloud.leases.queue import WorkQueue
    from meterflow.assembly import registry
    from meterflow.settings import Settings

    sessions = registry(Settings())
    return WorkQueue(sessions), OfferDesk(sessions), acting_as(sessions, account)


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        raise fail(f"--date {value[:20]!r}: expected YYYY-MM-DD") from None


def _run(call: Any) -> Any:
    from cloud.leases.errors import LeaseError

    try:
        return call()
    except (LeaseError, PermissionError) as exc:
        raise fail(str(exc)) from None


@queue_app.callback(invoke_without_command=True)
def queue_list(
    ctx: typer.Context,
    account: AsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON document")] = False,
    overdue: Annotated[
        bool, typer.Option(help="everybody's overdue items in scope (supervisor, admin)")
    ] = False,
    day: Annotated[
        str | None, typer.Option("--date", help="judge due days as of YYYY-MM-DD (default today)")
    ] = None,
) -> None:
    """List the work queue of ``--as`` (most urgent first), with SLA and action."""
    if ctx.invoked_subcommand is not None:
        return
    queue, _, who = _services(account)
    today = _day(day)
    items = _run(
        lambda: queue.overdue(who, today=today) if overdue else queue.items(who, today=today)
    )
    if as_json:
        typer.echo(json.dumps([i.as_dict() for i in items], default=str, ensure_ascii=False))
        return
    for i in items:
        typer.echo(
            f"{i.sla:5}  {i.due_on}  {i.id:32}  {i.action or '-':7}  "
            f"{i.site_id}/{i.building} {i.unit_name}  {i.tenant_name}  {i.note}"
        )
    typer.echo(f"{len(items)} item(s)", err=True)


@queue_app.command("ack")
def queue_ack(
    item: Annotated[str, typer.Argument(help="the item id, e.g. reminder:L-A1:90")],
    account: AsOpt = None,
) -> None:
    """Acknowledge a renewal reminder or escalation (it stops escalating)."""
    queue, _, who = _services(account)
    n = _run(lambda: queue.ack(who, item))
    typer.echo(json.dumps({"item": item, "acknowledged": n}))


@queue_app.command("done")
def queue_done(
    item: Annotated[str, typer.Argument(help="the item id, e.g. task:17")],
    account: AsOpt = None,
) -> None:
    """Mark a task done."""
    queue, _, who = _services(account)
    _run(lambda: queue.done(who, item))
    typer.echo(json.dumps({"item": item, "done": True}))


@queue_app.command("ack-reminders")
def queue_ack_reminders(
    due: Annotated[bool, typer.Option("--due", help="every reminder due in the queue")] = False,
    account: AsOpt = None,
) -> None:
    """Acknowledge every renewal reminder and escalation in the queue of ``--as``."""
    if not due:
        raise fail("ack-reminders: add --due (acknowledge every reminder in your queue)")
    queue, _, who = _services(account)
    leases = _run(lambda: queue.ack_due(who))
    typer.echo(json.dumps({"leases": leases, "acknowledged": len(leases)}))


def _print(row: OfferRow) -> None:
    typer.echo(json.dumps(row.as_dict(), default=str, ensure_ascii=False))


@offer_app.command("make")
def offer_make(
    lease: Annotated[str, typer.Argument(help="the lease id")],
    rent: Annotated[str, typer.Option(help="the rent offered, yuan per month, e.g. 8000.00")],
    account: AsOpt = None,
) -> None:
    """Make a renewal offer; outside the price band it waits for a supervisor's approval."""
    if not _YUAN.fullmatch(rent) or Decimal(rent) <= 0:
        raise fail(f"--rent {rent[:20]!r}: expected yuan like 8000.00 (more than 0)")
    _, desk, who = _services(account)
    _print(_run(lambda: desk.make(who, lease, int(Decimal(rent) * 100))))


def _offer_action(action: str, help_text: str) -> None:
    def command(
        offer: Annotated[int, typer.Argument(help="the offer id", min=1, max=2**31 - 1)],
        account: AsOpt = None,
    ) -> None:
        _, desk, who = _services(account)
        _print(_run(lambda: desk.act(who, offer, action)))

    command.__doc__ = help_text
    offer_app.command(action)(command)


for _action, _help in (
    ("approve", "Approve an offer outside its band (a supervisor or admin, not its maker)."),
    ("reject", "Reject an offer outside its band (a supervisor or admin, not its maker)."),
    ("invite", "待续签 → 已邀约: the tenant is invited."),
    ("negotiate", "已邀约 → 协商中."),
    ("sign", "已签约: the lease is renewed at the offered rent."),
    ("lose", "已流失: the tenant does not renew."),
):
    _offer_action(_action, _help)
