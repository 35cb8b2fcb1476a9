"""Staff records on the command line: ``meterflow cloud staff set ID --name N`` (a manager
or supervisor whom leases, reminders and tasks name; their notices' channel and address;
their supervisor) and ``meterflow cloud staff list``. A staff account's work queue is that of
its staff record (``web-account --staff``, or the record of the same id).

Only typer is imported at module level. Registered in ``meterflow/cli/cloud.py`` as
``cloud_app.add_typer(staff_app, name="staff")``. Exit status 0 done, 2 refused (one line on
stderr saying what was expected).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from meterflow.cli.common import acting_as, fail

staff_app = typer.Typer(
    help="Staff records: managers and supervisors, whom leases and reminders name.",
    no_args_is_help=True,
)


@staff_app.command("set")
def staff_set(
    staff_id: Annotated[str, typer.Argument(help="the staff record's id, e.g. chen")],
    name: Annotated[str, typer.Option(help="display name, e.g. 陈管家")],
    channel: Annotated[
        str, typer.Option(help="where notices go: email, sms, wecom or dingtalk")
    ] = "email",
    address: Annotated[str, typer.Option(help="the e-mail address or the phone/user id")] = "",
    supervisor: Annotated[
        str | None, typer.Option(help="the staff id of their supervisor (registered first)")
    ] = None,
    language: Annotated[
        str | None,
        typer.Option(help="the language of their notices: zh-CN or en (new: zh-CN; else kept)"),
    ] = None,
    account: Annotated[
        str | None, typer.Option("--as", help="the admin or supervisor account acting")
    ] = None,
) -> None:
    """Register a staff record, or change one (the same command again changes nothing).
    Admins and supervisors; audited with the values before and after."""
    from cloud.leases.errors import LeaseError
    from cloud.leases.reference import set_staff
    from cloud.staff.accounts import Role
    from cloud.staff.audit import record_change
    from edge.wire import utc_now
    from meterflow.assembly import registry
    from meterflow.settings import Settings

    sessions = registry(Settings())
    who = acting_as(sessions, account)
    if who.role not in (Role.ADMIN, Role.SUPERVISOR):
        raise fail(f"--as: the {who.role.value} role may not register staff")
    try:
        with sessions.begin() as session:
            before, after = set_staff(
                session,
                staff_id,
                name,
                channel=channel,
                address=address,
                supervisor_id=supervisor or None,
                language=language,
            )
            if before != after:
                record_change(
                    session,
                    at=utc_now(),
                    actor=who.username,
                    origin=who.origin,
                    action="staff",
                    subject=f"staff:{staff_id}",
                    before=before,
                    after=after,
                )
    except (LeaseError, ValueError) as exc:
        raise fail(str(exc)) from None
    typer.echo(json.dumps({"staff": staff_id, "changed": before != after, **after}))


@staff_app.command("list")
def staff_list(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON line")] = False,
) -> None:
    """Every staff record: id, name, channel, address, supervisor, notice language."""
    from sqlalchemy import select

    from cloud.leases.models import Staff
    from meterflow.assembly import registry
    from meterflow.settings import Settings

    with registry(Settings())() as session:
        rows = [
            {
                "id": s.id,
                "name": s.name,
                "channel": s.channel,
                "address": s.address,
                "supervisor": s.supervisor_id,
                "language": s.language,
            }
            for s in session.scalars(select(Staff).order_by(Staff.id))
        ]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    for r in rows:
        typer.echo(
            f"{r['id']}\t{r['name']}\t{r['channel']} {r['address']}\t"
            f"{r['supervisor'] or '—'}\t{r['language']}"
        )
