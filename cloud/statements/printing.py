"""The printable 分摊明细确认单: what a paper statement carries besides the statement itself.

A :class:`Slip` is one statement of a run with the property company (the site file's
``property`` section), the amount in capitals, the due date, who reviewed and approved the
run (their display names) and the signature's fingerprint. :class:`StatementPrintService`
makes the slip of one statement, or of every tenant statement of a run for batch printing;
scope and signature checks are the run service's (:class:`cloud.apportion.review.RunReviewService`).

Dates: the due date is the run's posting day in the site's time zone plus ``due_days``
(default :data:`cloud.apportion.site.DEFAULT_DUE_DAYS`); a run not posted has none.
Decision record: docs/decisions/0022-printable-statement.md.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cloud.apportion.models import ApportionRun, SiteSettings
from cloud.apportion.review import NotFound, RunReviewService
from cloud.apportion.run_statements import statement_page
from cloud.apportion.site import DEFAULT_DUE_DAYS
from cloud.registry.base import as_utc
from cloud.registry.models import Site
from cloud.staff.accounts import Principal, display_names
from cloud.statements.capitals import rmb_capitals

#: Hex digits of the SHA-256 of the signature shown as its fingerprint (4 groups of 4).
FINGERPRINT_HEX = 16


#: Most slips one batch print holds (each an A4 page with its QR code) [slips].
PRINT_BATCH = 100


@dataclass(frozen=True)
class PropertyCompany:
    """The property company printed on the statements of a site (blank fields: not given)."""

    company: str = ""
    address: str = ""
    phone: str = ""
    due_days: int = DEFAULT_DUE_DAYS

    @classmethod
    def from_settings(cls, stored: dict[str, Any] | None) -> PropertyCompany:
        """From the stored ``property`` section (None: no section, the defaults)."""
        if not stored:
            return cls()
        return cls(
            str(stored.get("company") or ""),
            str(stored.get("address") or ""),
            str(stored.get("phone") or ""),
            int(stored.get("due_days", DEFAULT_DUE_DAYS)),
        )


@dataclass(frozen=True)
class Slip:
    """One statement as printed: the document (and its signed form once posted), the site's
    display name, the property company, the amount [cents] and in capitals, the posting and
    due dates (site-local), reviewer and approver (display names), signature fingerprint."""

    document: dict[str, Any]
    signed: dict[str, str] | None
    unit: str
    party: str
    site_name: str
    company: PropertyCompany
    cents: int
    capitals: str
    posted_on: date | None
    due_on: date | None
    reviewer: str
    approver: str
    fingerprint: str


def local_day(instant: datetime, zone: str) -> date:
    """The calendar day of ``instant`` (aware or naive UTC) in time zone ``zone``."""
    return (as_utc(instant) or instant).astimezone(ZoneInfo(zone)).date()


def due_date(posted_at: datetime | None, zone: str, due_days: int) -> date | None:
    """The posting day in ``zone`` plus ``due_days`` days; None before posting."""
    return None if posted_at is None else local_day(posted_at, zone) + timedelta(days=due_days)


def signature_fingerprint(signature: str) -> str:
    """The first :data:`FINGERPRINT_HEX` hex digits (upper case, groups of 4 joined by
    ``-``) of the SHA-256 of the signature's bytes (``signature`` in base64url)."""
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    digest = hashlib.sha256(raw).hexdigest()[:FINGERPRINT_HEX].upper()
    return "-".join(digest[i : i + 4] for i in range(0, FINGERPRINT_HEX, 4))


class StatementPrintService:
    """Slips of a run's statements for the printable pages (finance's scope)."""

    def __init__(self, runs: RunReviewService) -> None:
        self.runs = runs

    def _facts(
        self, who: Principal, run_id: str
    ) -> tuple[ApportionRun, str, str, PropertyCompany, dict[str, str]]:
        with self.runs.sessions() as session:
            run = session.get(ApportionRun, run_id)
            if run is None or not who.may_act_on(run.site_id):
                raise NotFound(f"no run {run_id!r}")
            site = session.get(Site, run.site_id)
            settings = session.get(SiteSettings, run.site_id)
            names = display_names(session, [run.reviewed_by or "", run.approved_by or ""])
            session.expunge(run)
        zone = site.timezone if site is not None else "Asia/Shanghai"
        site_name = site.name if site is not None and site.name else run.site_id
        company = PropertyCompany.from_settings(settings.property if settings else None)
        return run, zone, site_name, company, names

    def _slip(
        self,
        run: ApportionRun,
        zone: str,
        site_name: str,
        company: PropertyCompany,
        names: dict[str, str],
        document: dict[str, Any],
        signed: dict[str, str] | None,
        unit: str,
        party: str,
    ) -> Slip:
        cents = int(document["total"]["cents"])
        posted_at = run.posted_at if signed else None
        return Slip(
            document,
            signed,
            unit,
            party,
            site_name,
            company,
            cents,
            rmb_capitals(cents),
            local_day(posted_at, zone) if posted_at else None,
            due_date(posted_at, zone, company.due_days),
            names.get(run.reviewed_by or "", ""),
            names.get(run.approved_by or "", ""),
            signature_fingerprint(signed["signature"]) if signed else "",
        )

    def slip(self, who: Principal, run_id: str, unit: str, party: str) -> Slip:
        """The slip of one statement (NotFound outside the principal's sites)."""
        run, zone, site_name, company, names = self._facts(who, run_id)
        document, signed = self.runs.statement(who, run_id, unit, party)
        return self._slip(run, zone, site_name, company, names, document, signed, unit, party)

    def run_slips(
        self, who: Principal, run_id: str, start: int = 0, count: int = PRINT_BATCH
    ) -> tuple[list[Slip], int]:
        """The slips of the run's tenant statements ``start`` … ``start + count − 1`` (from
        0, by unit and tenant; the landlord's own statement is not a tenant's: it has no link
        and is not printed), and how many tenant statements the run has. At most
        :data:`PRINT_BATCH` a call: a large site prints in batches."""
        run, zone, site_name, company, names = self._facts(who, run_id)
        with self.runs.sessions() as session:  # the batch only, read by the database
            tenants, found, _ = statement_page(
                session,
                run,
                start,
                min(max(count, 1), PRINT_BATCH),
                tenants_only=True,
                clamp=False,
            )
        if count < 1:
            tenants = []
        out = []
        for total in tenants:
            document, signed = self.runs.statement(who, run_id, total.unit, total.party)
            out.append(
                self._slip(
                    run, zone, site_name, company, names, document, signed, total.unit, total.party
                )
            )
        return out, found
