"""The jobs: the monthly billing run and the daily run, each idempotent.

``run_monthly_billing`` bills one period in one transaction (:mod:`cloud.leases.billing`).
``run_daily`` judges everything as of the end of ``today`` (local): in one transaction it
starts renewal successors, marks leases expiring, auto-renews or open-ends expired ones,
sends due renewal reminders and escalations, climbs the collections ladder and flags
deposit steps past their SLA; then it delivers the outbox (one message per transaction) and
copies the delivery outcome onto the reminder and collections events. Every row it writes
has a natural key, so a second run of the same day writes nothing and sends nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from cloud.leases.billing import BillingReport, run_billing
from cloud.leases.deposits import check_slas
from cloud.leases.dunning import run_collections
from cloud.leases.models import CollectionEvent, RenewalReminder
from cloud.leases.periods import BillingPeriod, end_of_day
from cloud.leases.policies import load_book
from cloud.leases.reminders import escalate_unacknowledged, send_renewal_reminders
from cloud.leases.renewals import ExpiryReport, process_expiries
from cloud.leases.utilities import PostedApportionment, UtilityChargeSource
from cloud.notify.channels import Channel
from cloud.notify.outbox import DELIVERED, FAILED, DeliveryReport, NotificationRow, deliver

_DAILY_LOCK = 7_240_418


@dataclass(frozen=True)
class DailyReport:
    """What one daily run did."""

    day: date
    expiries: ExpiryReport
    reminders: int
    escalations: int
    collection_events: int
    sla_flags: int
    delivery: DeliveryReport

    @property
    def changed_anything(self) -> bool:
        e = self.expiries
        return bool(
            e.started
            or e.expiring
            or e.auto_renewed
            or e.open_ended
            or self.reminders
            or self.escalations
            or self.collection_events
            or self.sla_flags
            or self.delivery.delivered
            or self.delivery.retrying
            or self.delivery.failed
        )


def run_monthly_billing(
    sessions: sessionmaker[Session],
    period: BillingPeriod,
    *,
    today: date | None = None,
    utilities: UtilityChargeSource | None = None,
) -> BillingReport:
    """Bill ``period`` in one transaction (utilities from posted apportionment runs);
    ``today`` is the day of the run (invoices made after the period began are issued then)."""
    with sessions.begin() as session:
        return run_billing(
            session, period, utilities=utilities or PostedApportionment(), today=today
        )


def run_daily(
    sessions: sessionmaker[Session], today: date, *, channels: Mapping[str, Channel]
) -> DailyReport:
    """The daily run for local day ``today`` (see the module doc)."""
    at = end_of_day(today)
    with sessions.begin() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _DAILY_LOCK})
        rules = load_book(session, today)
        expiries = process_expiries(session, today, rules=rules)
        reminders = send_renewal_reminders(session, today, at=at, rules=rules)
        escalations = escalate_unacknowledged(session, today, at=at, rules=rules)
        events = run_collections(session, today, at=at, rules=rules)
        flags = check_slas(session, at, rules)
    delivery = deliver(sessions, channels, now=at)
    if delivery.delivered or delivery.failed:
        with sessions.begin() as session:
            record_outcomes(session)
    return DailyReport(today, expiries, reminders, escalations, events, len(flags), delivery)


def record_outcomes(session: Session) -> None:
    """Copy the outbox's final state (delivered / failed) onto the events that queued it."""
    for model in (CollectionEvent, RenewalReminder):
        table = model.__table__
        status = (
            select(NotificationRow.status)
            .where(NotificationRow.key == table.c.notification_key)
            .scalar_subquery()
        )
        session.execute(
            update(table)
            .where(
                table.c.outcome == "queued",
                table.c.notification_key.in_(
                    select(NotificationRow.key).where(
                        NotificationRow.status.in_([DELIVERED, FAILED])
                    )
                ),
            )
            .values(outcome=status)
        )
