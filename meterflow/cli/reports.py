"""``meterflow cloud report ...``: the lease reports on the command line (decision 0035).

    meterflow cloud report occupancy|expiring|aging|collections [--site S] [--building B]
        [--type T] [--date D] [--from D --to D] [--json] [--xlsx OUT] [--csv OUT] [--as ACCT]
    meterflow cloud report recipients --site S [--add a@b ... [--language en]] [--remove a@b ...]
        [--as ACCT]
    meterflow cloud report mail --month YYYY-MM [--site S] [--smtp-host H ...]

A report prints its table (tab-separated, headers in ``--lang``), or with ``--json`` the
API's JSON; ``--xlsx``/``--csv`` also write the table to a file. ``--as`` acts as a staff
account (its role and scope, as on the web; default: the host's operator, an admin). Bad
input exits with status 2 and one line on stderr. ``mail`` records the month's e-mail per
recipient in the outbox (once per site, month and recipient), in the recipient's language,
and delivers those messages over SMTP; it prints one JSON line. Only typer is imported at
module level.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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

if TYPE_CHECKING:
    from cloud.leases.report_exports import Table

report_app = typer.Typer(
    help="Lease reports: occupancy, expiring, aging, collections; the monthly e-mail.",
    no_args_is_help=True,
)

Site = Annotated[str | None, typer.Option(help="site id")]
Building = Annotated[str | None, typer.Option(help="building of the site, as in the site file")]
Kind = Annotated[
    str | None, typer.Option("--type", help="property type: residential, office, retail, parking")
]
Day = Annotated[str | None, typer.Option("--date", help="local day YYYY-MM-DD (default: today)")]
First = Annotated[str | None, typer.Option("--from", help="first local day of a range")]
Last = Annotated[str | None, typer.Option("--to", help="last local day of a range")]
AsJson = Annotated[bool, typer.Option("--json", help="print the JSON the API answers")]
Xlsx = Annotated[Path | None, typer.Option("--xlsx", help="also write the table as an .xlsx")]
Csv = Annotated[Path | None, typer.Option("--csv", help="also write the table as CSV (BOM)")]
Lang = Annotated[str, typer.Option(help="language of headers and labels: zh-CN or en")]
Account = Annotated[
    str | None, typer.Option("--as", help="the staff account to act as (default: the operator)")
]


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise fail(f"{option} {text[:20]!r}: expected YYYY-MM-DD") from None


def _labels(lang: str) -> dict[str, str]:
    from cloud.web.rendering import LANGUAGES, translations

    if lang not in LANGUAGES:
        raise fail(f"--lang {lang[:20]!r}: expected one of {', '.join(LANGUAGES)}")
    return translations(lang)


def _run(
    kind: str,
    account: str | None,
    filters: tuple[str | None, str | None, str | None],
    lang: str,
    as_json: bool,
    xlsx: Path | None,
    csv: Path | None,
    produce: Any,
) -> None:
    """Resolve the principal and filters, make the report, print and write it."""
    from cloud.leases import report_exports as rx
    from cloud.leases.errors import LeaseError
    from cloud.leases.reports import Filters, ReportService
    from meterflow.assembly import registry
    from meterflow.settings import Settings

    labels = _labels(lang)
    sessions = registry(Settings())
    who = acting_as(sessions, account)
    service = ReportService(sessions)
    try:
        found = Filters(*filters)
        report = produce(service, who, found)
    except LeaseError as exc:
        raise fail(str(exc)) from None
    table: Table = getattr(rx, f"{kind}_table")(report, labels)
    for path, make in ((xlsx, lambda: rx.workbook([table])), (csv, lambda: rx.table_csv(table))):
        if path is None:
            continue
        try:
            path.write_bytes(make())
        except OSError as exc:
            raise fail(f"cannot write {path}: {exc.strerror or exc}") from None
    if as_json:
        typer.echo(report.model_dump_json())
        return
    typer.echo("\t".join(table.head))
    for row in table.rows:
        typer.echo("\t".join("" if v is None else str(v) for v in row))


@report_app.command("occupancy")
def report_occupancy(
    site: Site = None,
    building: Building = None,
    kind: Kind = None,
    day: Day = None,
    first: First = None,
    last: Last = None,
    as_json: AsJson = False,
    xlsx: Xlsx = None,
    csv: Csv = None,
    lang: Lang = "zh-CN",
    account: Account = None,
) -> None:
    """Occupancy (one definition) on a day by site, building and property type; with
    --from and --to also at each month end (at most 36)."""
    when, a, b = _day(day, "--date"), _day(first, "--from"), _day(last, "--to")
    if (a is None) != (b is None):
        raise fail("--from and --to: expected both days of the range, or neither")
    series = (a, b) if a is not None and b is not None else None
    _run(
        "occupancy",
        account,
        (site, building, kind),
        lang,
        as_json,
        xlsx,
        csv,
        lambda svc, who, f: svc.occupancy(who, when or svc.today(), f, series),
    )


def _day_command(kind: str, doc: str) -> Callable[..., None]:
    """A command for a report of one day (``expiring``, ``aging``)."""

    def command(
        site: Site = None,
        building: Building = None,
        kind_: Kind = None,
        day: Day = None,
        as_json: AsJson = False,
        xlsx: Xlsx = None,
        csv: Csv = None,
        lang: Lang = "zh-CN",
        account: Account = None,
    ) -> None:
        when = _day(day, "--date")
        _run(
            kind, account, (site, building, kind_), lang, as_json, xlsx, csv,
            lambda svc, who, f: getattr(svc, kind)(who, when or svc.today(), f),
        )  # fmt: skip

    command.__name__ = f"report_{kind}"
    command.__doc__ = doc
    return command


report_app.command("expiring")(
    _day_command("expiring", "Running leases expired, within 7 days or within 30 days of a day.")
)
report_app.command("aging")(
    _day_command(
        "aging",
        "Outstanding money of invoices past due on a day, by 0-30 / 31-60 / 61-90 / 90+ "
        "days, per site and building [cents in --json].",
    )
)


@report_app.command("collections")
def report_collections(
    site: Site = None,
    building: Building = None,
    kind: Kind = None,
    first: First = None,
    last: Last = None,
    as_json: AsJson = False,
    xlsx: Xlsx = None,
    csv: Csv = None,
    lang: Lang = "zh-CN",
    account: Account = None,
) -> None:
    """The collections funnel of invoices that became overdue from --from to --to (default:
    this month up to today)."""
    a, b = _day(first, "--from"), _day(last, "--to")
    _run(
        "collections",
        account,
        (site, building, kind),
        lang,
        as_json,
        xlsx,
        csv,
        lambda svc, who, f: svc.collections(
            who, a or svc.today().replace(day=1), b or svc.today(), f
        ),
    )


@report_app.command("recipients")
def report_recipients(
    site: Annotated[str, typer.Option(help="site id")],
    add: Annotated[list[str] | None, typer.Option(help="address to add (repeatable)")] = None,
    remove: Annotated[list[str] | None, typer.Option(help="address to remove (repeatable)")] = None,
    language: Annotated[
        str | None,
        typer.Option(
            help="language of the --add addresses' e-mail: zh-CN or en (default: zh-CN for a"
            " new address; an address added again takes it)"
        ),
    ] = None,
    account: Account = None,
) -> None:
    """Show, add or remove who receives a site's monthly reports (admins only), and the
    language each one's e-mail is worded in. Prints one JSON line: the site, its recipients
    and their languages."""
    from cloud.leases.report_mail import RecipientError, change_recipients, recipient_languages
    from edge.wire import utc_now
    from meterflow.assembly import registry
    from meterflow.settings import Settings

    if language is not None and not add:
        raise fail("--language: give the addresses it is for with --add")
    sessions = registry(Settings())
    who = acting_as(sessions, account)
    try:
        with sessions.begin() as session:
            if add or remove:
                now = change_recipients(
                    session,
                    who,
                    site,
                    add=add or (),
                    remove=remove or (),
                    language=language,
                    at=utc_now(),
                )
            else:
                now = recipient_languages(session, site).get(site, {})
    except RecipientError as exc:
        raise fail(str(exc)) from None
    typer.echo(json.dumps({"site": site, "recipients": list(now), "languages": now}))


@report_app.command("mail")
def report_mail(
    month: Annotated[str, typer.Option(help="the month YYYY-MM (local calendar)")],
    site: Site = None,
    smtp_host: SmtpHost = None,
    smtp_port: SmtpPort = 25,
    smtp_starttls: SmtpStarttls = False,
    smtp_user: SmtpUser = None,
    smtp_password: SmtpPassword = None,
    mail_from: MailFrom = "meterflow@localhost",
) -> None:
    """Send the month's reports (figures in the body, the workbook attached) to each site's
    recipients, each in the language set for the address (`report recipients --language`),
    once per site, month and recipient; without --smtp-host they wait in the outbox. Prints
    one JSON line."""
    from cloud.leases.report_mail import KEY_PREFIX, parse_month, queue_month
    from cloud.notify.outbox import deliver
    from edge.wire import utc_now
    from meterflow.assembly import registry
    from meterflow.settings import Settings

    try:
        first = parse_month(month)
    except ValueError as exc:
        raise fail(f"--month: {exc}") from None
    from cloud.wording import LANGUAGES

    labels = {lang: _labels(lang) for lang in LANGUAGES}
    sessions = registry(Settings())
    now = utc_now()
    with sessions.begin() as session:
        run = queue_month(session, first, labels, at=now, site=site)
    email = smtp_channel(smtp_host, smtp_port, smtp_starttls, smtp_user, smtp_password, mail_from)
    sent = deliver(sessions, {"email": email} if email else {}, now=now, key_prefix=KEY_PREFIX)
    typer.echo(
        json.dumps(
            {
                "month": run.month,
                "sites": run.sites,
                "queued": run.queued,
                "already_queued": run.already,
                "delivered": sent.delivered,
                "retrying": sent.retrying,
                "failed": sent.failed,
            }
        )
    )
