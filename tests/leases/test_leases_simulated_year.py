"""A simulated year on PostgreSQL: a portfolio of a few hundred leases run day by day
through the daily job and monthly billing (tests/support/leases_portfolio.py). Every invoice
total is rent + utilities + fees − credits, the exact sum of its lines; no notice is
delivered twice; rerunning the last bill and the last day changes nothing."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cloud.leases.jobs import run_daily
from cloud.leases.models import (
    CollectionEvent,
    Invoice,
    InvoiceLine,
    Lease,
    LeaseTransition,
    RenewalReminder,
)
from cloud.notify.outbox import NotificationRow
from tests.support.leases_portfolio import (
    simulate_year,
    table_counts,
)


def test_a_simulated_year_bills_exactly_and_never_repeats_a_notice(
    lease_pg: sessionmaker[Session],
) -> None:
    result = simulate_year(lease_pg, units=120)
    c = result.counters
    with lease_pg() as s:
        leases = s.scalar(select(func.count()).select_from(Lease))
        statuses = Counter(s.scalars(select(Lease.status)))
        invoices = s.scalars(select(Invoice)).all()
        by_kind: dict[str, dict[str, int]] = {}
        for invoice_id, kind, cents in s.execute(
            select(InvoiceLine.invoice_id, InvoiceLine.kind, InvoiceLine.cents)
        ):
            by_kind.setdefault(invoice_id, Counter())[kind] += cents
        for inv in invoices:
            kinds = by_kind[inv.id]
            assert kinds["credit"] <= 0
            assert inv.total_cents == (
                kinds["rent"] + kinds["utility"] + kinds["late_fee"] + kinds["credit"]
            ), inv.id
            assert inv.fee_cents == kinds["late_fee"]
            assert 0 <= inv.paid_cents <= max(inv.total_cents, 0)
        reminder_rows = s.execute(
            select(RenewalReminder.lease_id, RenewalReminder.kind, RenewalReminder.offset_days)
        ).all()
        outbox = s.execute(select(NotificationRow.key, NotificationRow.status)).all()
        fees = sum(k["late_fee"] for k in by_kind.values())
        credits = -sum(k["credit"] for k in by_kind.values())
        transitions = Counter(s.scalars(select(LeaseTransition.to_status)))
        events = Counter(s.scalars(select(CollectionEvent.step)))
    sent = Counter(m.key for m in result.channel.sent)
    assert sent and max(sent.values()) == 1, [k for k, n in sent.items() if n > 1]
    assert len(reminder_rows) == len(set(reminder_rows))
    assert {status for _, status in outbox} == {"delivered"}
    assert set(sent) == {key for key, _ in outbox}
    # the year had what it should have had
    assert leases >= 200 and len(invoices) > 1_000
    assert c["move_in"] > 10 and c["move_out"] > 20 and c["renewed_by_offer"] > 10
    assert c["auto_renewed"] > 3 and c["open_ended"] > 3 and c["escalations"] > 5
    assert c["sla_flags"] > 0 and c["payment_late"] > 50 and c["utility_runs"] == 12
    assert fees > 0 and credits > 0 and set(events) == {1, 3, 7, 15}
    assert transitions["terminated"] == statuses["terminated"]
    # a bill rerun on its day made nothing; rerunning the last day changes nothing
    assert len(result.bills) == 12 and result.bill_reruns == [0] * 12
    with lease_pg() as s:
        before = table_counts(s)
    assert not run_daily(
        lease_pg, result.last_day, channels={"email": result.channel}
    ).changed_anything
    with lease_pg() as s:
        assert table_counts(s) == before
    assert max(Counter(m.key for m in result.channel.sent).values()) == 1
