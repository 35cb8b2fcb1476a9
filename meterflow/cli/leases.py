"""Lease jobs on the command line: ``meterflow cloud bill``, ``meterflow cloud daily`` and
``meterflow cloud payment`` (a payment received, entered by hand).

Only typer is imported at module level; the services are imported when a command runs.
Registered in ``meterflow/cli/cloud.py``::

    from meterflow.cli.leases import cloud_bill, cloud_daily
    cloud_app.command("bill")(cloud_bill)
    cloud_app.command("daily")(cloud_daily)

Both are idempotent: running one twice changes nothing the second time. Channels for the
daily run: e-mail over SMTP (``--smtp-host`` ...) and signed webhooks (``--webhook
NAME=URL``, one per gateway: sms, wecom, dingtalk; the HMAC secret from
``MF_WEBHOOK_SECRET``). Messages for channels not configured wait in the outbox.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated

import typer

from meterflow.cli.common import (
    MailFrom,
    SmtpHost,
    SmtpPassword,
    SmtpPort,
    SmtpStarttls,
    SmtpUser,
    acting_as,
    fail,
    smtp_channel,
)


def cloud_bill(
    period: Annotated[str, typer.Option(help="billing period YYYY-MM (local calendar)")],
    day: Annotated[
        str | None,
        typer.Option(
            "--date",
            help="day of the run, YYYY-MM-DD (default: today in Asia/Shanghai); "
            "invoices are issued on the later of it and the period's first day",
        ),
    ] = None,
) -> None:
    """Bill a period: one invoice per billing lease with rent, posted utilities, late fees
    and credits. Prints one JSON line with the run's figures; ``waiting_for_cpi`` lists the
    CPI-linked leases held for an index not published yet (``meterflow cloud cpi``)."""
    from cloud.leases.errors import LeaseError
    from cloud.leases.jobs import run_monthly_billing
    from cloud.leases.periods import BillingPeriod, local_today
    from meterflow.assembly import registry
    from meterflow.settings import Settings

    try:
        today = date.fromisoformat(day) if day else local_today()
    except ValueError:
        raise fail(f"--date {day!r}: expected YYYY-MM-DD") from None
    try:
        report = run_monthly_billing(registry(Settings()), BillingPeriod.parse(period), today=today)
    except LeaseError as exc:
        raise fail(str(exc)) from None
    for lease_id, reason in report.held:
        typer.echo(f"held {lease_id}: {reason}", err=True)
    for charge in report.unmatched:
        typer.echo(
            f"no lease for utilities of {charge.party} in {charge.unit_id} "
            f"(run {charge.run_id}, {charge.cents} cents)",
            err=True,
        )
    typer.echo(
        json.dumps(
            {
                "period": report.period,
                "invoices": report.invoices,
                "lines": report.lines,
                "rent_cents": report.rent_cents,
                "utility_cents": report.utility_cents,
                "fee_cents": report.fee_cents,
                "credit_cents": report.credit_cents,
                "total_cents": report.total_cents,
                "already_billed": report.already_billed,
                "held": len(report.held),
                "waiting_for_cpi": [
                    {
                        "lease": lease_id,
                        "since": since.isoformat(),
                        "cpi_months": [m.strftime("%Y-%m") for m in months],
                    }
                    for lease_id, since, months in report.cpi_waiting
                ],
                "unmatched_utilities": len(report.unmatched),
            }
        )
    )


def cloud_daily(
    day: Annotated[
        str | None,
        typer.Option(
            "--date", help="local day to run for, YYYY-MM-DD (default: today in Asia/Shanghai)"
        ),
    ] = None,
    smtp_host: SmtpHost = None,
    smtp_port: SmtpPort = 25,
    smtp_starttls: SmtpStarttls = False,
    smtp_user: SmtpUser = None,
    smtp_password: SmtpPassword = None,
    mail_from: MailFrom = "meterflow@localhost",
    webhook: Annotated[
        list[str] | None,
        typer.Option(help="NAME=URL of a webhook gateway (repeatable), e.g. sms=https://gw/sms"),
    ] = None,
    webhook_secret: Annotated[
        str | None, typer.Option(envvar="MF_WEBHOOK_SECRET", help="HMAC-SHA256 key of the webhooks")
    ] = None,
) -> None:
    """Daily run: expiries and auto-renewals, renewal reminders and escalations, the
    collections ladder, deposit SLA checks, then deliver the outbox. Prints one JSON line."""
    from cloud.leases.jobs import run_daily
    from cloud.leases.periods import local_today
    from cloud.notify.channels import Channel, WebhookChannel
    from meterflow.assembly import registry
    from meterflow.settings import Settings

    try:
        today = date.fromisoformat(day) if day else local_today()
    except ValueError:
        raise fail(f"--date {day!r}: expected YYYY-MM-DD") from None
    channels: dict[str, Channel] = {}
    email = smtp_channel(smtp_host, smtp_port, smtp_starttls, smtp_user, smtp_password, mail_from)
    if email is not None:
        channels["email"] = email
    for item in webhook or []:
        name, sep, url = item.partition("=")
        if not sep or not name or not url:
            raise fail(f"--webhook {item!r}: expected NAME=URL")
        if not webhook_secret:
            raise fail("--webhook needs a secret: set MF_WEBHOOK_SECRET")
        channels[name] = WebhookChannel(url, webhook_secret.encode())
    report = run_daily(registry(Settings()), today, channels=channels)
    e = report.expiries
    typer.echo(
        json.dumps(
            {
                "day": today.isoformat(),
                "started": len(e.started),
                "expiring": len(e.expiring),
                "auto_renewed": len(e.auto_renewed),
                "open_ended": len(e.open_ended),
                "renewal_blocked": len(e.blocked),
                "reminders": report.reminders,
                "escalations": report.escalations,
                "collection_events": report.collection_events,
                "sla_flags": report.sla_flags,
                "delivered": report.delivery.delivered,
                "retrying": report.delivery.retrying,
                "failed": report.delivery.failed,
                "channels": sorted(channels),
            }
        )
    )


def cloud_payment(
    lease: Annotated[str, typer.Option(help="the lease the payment is for")],
    amount: Annotated[str, typer.Option(help="amount received in yuan, e.g. 8000.00")],
    received: Annotated[str, typer.Option("--date", help="day received, YYYY-MM-DD")],
    ref: Annotated[str, typer.Option(help="the bank's reference of the payment")],
    account: Annotated[
        str | None,
        typer.Option("--as", help="the staff account entering it (default: the host's operator)"),
    ] = None,
) -> None:
    """Record a payment received and allocate it to the lease's open invoices, oldest
    first; what is left is credit. The same reference again changes nothing. Prints one JSON
    line: the account, each invoice settled [cents], the credit left [cents]. Exit status 0
    recorded (or recorded before), 2 refused with one line on stderr."""
    import re
    from decimal import Decimal

    from cloud.leases.errors import LeaseError
    from cloud.leases.roster import LeaseRoster
    from meterflow.assembly import registry
    from meterflow.settings import Settings

    if not re.fullmatch(r"[0-9]{1,10}(\.[0-9]{1,2})?", amount) or Decimal(amount) <= 0:
        raise fail(f"--amount {amount!r}: expected yuan above 0 with at most two decimals")
    try:
        day = date.fromisoformat(received)
    except ValueError:
        raise fail(f"--date {received!r}: expected YYYY-MM-DD") from None
    if not 1 <= len(ref) <= 64:
        raise fail(f"--ref: expected 1 to 64 characters, got {len(ref)}")
    sessions = registry(Settings())
    who = acting_as(sessions, account)
    try:
        receipt = LeaseRoster(sessions).record_payment(
            who, lease, cents=int(Decimal(amount) * 100), received_on=day, ref=ref
        )
    except LeaseError as exc:
        raise fail(str(exc)) from None
    typer.echo(
        json.dumps(
            {
                "payment_id": receipt.payment_id,
                "account": receipt.account_id,
                "allocations": [{"invoice": i, "cents": c} for i, c in receipt.allocations],
                "credit_cents": receipt.credit_cents,
                "duplicate": receipt.duplicate,
            }
        )
    )
