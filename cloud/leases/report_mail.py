"""The monthly lease-report e-mail (decision 0035): who receives a site's reports, and the
month's message to each — the figures in the body, the four reports as an Excel workbook
attached — recorded in the notification outbox under the natural key
``report:SITE:YYYY-MM:ADDRESS``, so that a month is sent to an address once however often
the job runs (a recipient added later gets it on the next run). Each address has its
language (zh-CN by default, or en; revision 0031): its subject, figures and workbook are
worded in it.

Recipients are kept per site (:class:`cloud.leases.models.ReportRecipient`); only an admin
changes them, each change audited. The figures are the site's whole (the reports as an
admin sees them): the recipients are chosen by an admin for that site.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from cloud.leases.errors import LeaseError
from cloud.leases.models import ReportRecipient
from cloud.leases.report_exports import set_tables, workbook, yuan
from cloud.leases.reports import ReportSet, month_set
from cloud.notify.channels import Notification
from cloud.notify.outbox import enqueue
from cloud.registry.models import Site
from cloud.staff.accounts import Principal, Role
from cloud.staff.audit import record_change
from cloud.wording import DEFAULT_LANGUAGE, check_language
from edge.wire import Clock, utc_now

#: Most recipients of one site.
MAX_RECIPIENTS = 50
#: Key prefix of the report messages in the outbox.
KEY_PREFIX = "report:"
_ADDRESS = re.compile(r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class RecipientError(LeaseError):
    """A recipient change refused: a malformed address, an unknown site, too many, not an
    admin."""


def parse_month(text: str) -> date:
    """``YYYY-MM`` → the month's first day; ValueError saying what was expected."""
    found = _MONTH.fullmatch(text)
    if not found or not 1 <= int(found[2]) <= 12 or not 2000 <= int(found[1]) <= 2100:
        raise ValueError(f"month {text[:20]!r}: expected YYYY-MM, e.g. 2026-03")
    return date(int(found[1]), int(found[2]), 1)


def check_address(address: str) -> str:
    if len(address) > 120 or not _ADDRESS.fullmatch(address):
        raise RecipientError(
            f"address {address[:60]!r}: expected an e-mail address (name@domain), at most "
            "120 characters"
        )
    return address.lower()


def recipient_languages(session: Session, site: str | None = None) -> dict[str, dict[str, str]]:
    """Site → its recipients' addresses (sorted) → the language of their e-mail."""
    q = select(ReportRecipient.site_id, ReportRecipient.address, ReportRecipient.language)
    if site is not None:
        q = q.where(ReportRecipient.site_id == site)
    out: dict[str, dict[str, str]] = {}
    for s, a, lang in session.execute(q.order_by(ReportRecipient.site_id, ReportRecipient.address)):
        out.setdefault(s, {})[a] = lang
    return out


def recipients(session: Session, site: str | None = None) -> dict[str, list[str]]:
    """Site → its recipients' addresses (sorted)."""
    return {s: list(by) for s, by in recipient_languages(session, site).items()}


def change_recipients(
    session: Session,
    who: Principal,
    site: str,
    *,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
    language: str | None = None,
    at: datetime,
) -> dict[str, str]:
    """Add and remove recipients of ``site`` (admin only); audited as one change of
    ``report-recipients:SITE``. ``language`` is the language of the added addresses' e-mail
    (an address added again takes it; None: Chinese for a new address, an existing one
    keeps its own). Returns the site's recipients after, address → language."""
    if who.role is not Role.ADMIN:
        raise RecipientError(f"the {who.role.value} role may not change report recipients")
    if session.get(Site, site) is None:
        raise RecipientError(f"site {site[:64]!r} is not registered")
    if language is not None:
        try:
            check_language(language)
        except ValueError as exc:
            raise RecipientError(str(exc)) from None
    adding = sorted({check_address(a) for a in add})
    removing = sorted({check_address(a) for a in remove})
    before = recipient_languages(session, site).get(site, {})
    after = {a: lang for a, lang in before.items() if a not in removing}
    for address in adding:
        if address not in removing:
            after[address] = language or after.get(address, DEFAULT_LANGUAGE)
    after = dict(sorted(after.items()))
    if len(after) > MAX_RECIPIENTS:
        raise RecipientError(f"site {site}: at most {MAX_RECIPIENTS} recipients, got {len(after)}")
    if removing:
        session.execute(
            delete(ReportRecipient).where(
                ReportRecipient.site_id == site, ReportRecipient.address.in_(removing)
            )
        )
    for address, lang in after.items():
        if address not in before:
            session.add(
                ReportRecipient(
                    site_id=site,
                    address=address,
                    added_at=at,
                    added_by=who.username,
                    language=lang,
                )
            )
        elif before[address] != lang:
            row = session.get(ReportRecipient, (site, address))
            assert row is not None
            row.language = lang
    if after != before:
        record_change(
            session,
            at=at,
            actor=who.username,
            origin=who.origin,
            action="report_recipients",
            subject=f"report-recipients:{site}",
            before={"recipients": list(before), "languages": before},
            after={"recipients": list(after), "languages": after},
        )
    session.flush()
    return after


def _pct(value: object) -> str:
    return f"{float(str(value)) * 100:.2f}%"


def mail_body(reports: ReportSet, labels: Mapping[str, str]) -> str:
    """The figures of the month as plain text in the labels' language."""

    def t(key: str) -> str:
        return labels.get(f"report_{key}", key)

    occ, exp, age, col = reports.occupancy, reports.expiring, reports.aging, reports.collections
    lines = [
        f"{reports.site} · {reports.month:%Y-%m}",
        "",
        f"{t('occupancy')} ({occ.day}): {t('col_unit_rate')} {_pct(occ.total.unit_rate)} "
        f"({occ.total.occupied_units}/{occ.total.rentable_units}), {t('col_area_rate')} "
        f"{_pct(occ.total.area_rate)}, {t('col_economic_rate')} {_pct(occ.total.economic_rate)}",
        f"{t('expiring')} ({exp.day}): "
        + ", ".join(f"{t('risk_' + k)} {n}" for k, n in exp.counts.items()),
        f"{t('aging')} ({age.day}): "
        + ", ".join(
            f"{b} ¥{yuan(age.total.cents[b])} ({age.total.invoices[b]})" for b in age.buckets
        )
        + f"; {t('col_total_amount')} ¥{yuan(age.total.total_cents)}",
        f"{t('collections')} ({col.first} – {col.last}): {t('funnel_overdue')} {col.overdue}, "
        + ", ".join(
            f"{t('action_' + s.action)} {s.reached} ({t('col_paid_after')} {s.paid_after})"
            for s in col.steps
        )
        + f", {t('funnel_paid')} {col.paid}, {t('funnel_unpaid')} {col.unpaid}",
        "",
        t("mail_attached"),
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class MailRun:
    """What :func:`queue_month` did: the sites with recipients, the messages recorded now
    and those recorded before (sent or waiting in the outbox)."""

    month: str
    sites: int
    queued: int
    already: int


def _worded(reports: ReportSet, words: Mapping[str, str]) -> tuple[str, str, dict[str, str]]:
    """The month's (subject, body, workbook attachment) of a site in ``words``' language."""
    site, month = reports.site, reports.month
    return (
        f"{words.get('report_mail_subject', 'Lease reports')} {site} {month:%Y-%m}",
        mail_body(reports, words),
        {
            "filename": f"reports-{site}-{month:%Y-%m}.xlsx",
            "content_type": XLSX,
            "base64": base64.b64encode(workbook(set_tables(reports, words))).decode(),
        },
    )


def queue_month(
    session: Session,
    month: date,
    labels: Mapping[str, Mapping[str, str]],
    *,
    at: datetime,
    site: str | None = None,
) -> MailRun:
    """Record the month's report e-mail for every recipient (of ``site``, or of every
    site) in the outbox, worded in the recipient's language (``labels``: language → the
    labels in it); a (site, month, recipient) recorded before is left alone."""
    who = Principal("report-mail", Role.ADMIN, frozenset(), origin="cli")
    queued = already = 0
    wanted = recipient_languages(session, site)
    for site_id, addresses in wanted.items():
        reports = month_set(session, who, site_id, month)
        worded: dict[str, tuple[str, str, dict[str, str]]] = {}
        messages = []
        for address, lang in addresses.items():
            if lang not in worded:  # made once per site and language
                worded[lang] = _worded(reports, labels.get(lang) or labels[DEFAULT_LANGUAGE])
            subject, body, attachment = worded[lang]
            messages.append(
                (
                    "email",
                    Notification(
                        f"{KEY_PREFIX}{site_id}:{month:%Y-%m}:{address}",
                        address,
                        subject,
                        body,
                        {
                            "site": site_id,
                            "month": f"{month:%Y-%m}",
                            "language": lang,
                            "attachments": [attachment],
                        },
                    ),
                )
            )
        new = enqueue(session, messages, now=at)
        queued, already = queued + new, already + len(messages) - new
    return MailRun(f"{month:%Y-%m}", len(wanted), queued, already)


class RecipientService:
    """The recipients for the web's admin API: each call its own transaction, stamped with
    the service's clock."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock = utc_now) -> None:
        self.sessions = sessions
        self.clock = clock

    def by_site(self, site: str | None = None) -> dict[str, dict[str, str]]:
        """Site → address → the language of its e-mail."""
        with self.sessions() as session:
            return recipient_languages(session, site)

    def change(
        self,
        who: Principal,
        site: str,
        *,
        add: Iterable[str] = (),
        remove: Iterable[str] = (),
        language: str | None = None,
    ) -> dict[str, str]:
        with self.sessions.begin() as session:
            return change_recipients(
                session, who, site, add=add, remove=remove, language=language, at=self.clock()
            )
