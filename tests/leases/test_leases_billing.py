"""The billing run on SQLite and PostgreSQL: invoices with rent, utility, late-fee and
credit lines; proration, cycles, free rent from the handover, CPI holds, parents billed for
their sub-accounts, utilities from posted apportionment runs, idempotent reruns."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.apportion.case.loading import load_case
from cloud.apportion.runs import approve_run, create_run, post_run, review_run
from cloud.leases import lifecycle, payments, reference
from cloud.leases.billing import BillingReport, run_billing
from cloud.leases.jobs import run_monthly_billing
from cloud.leases.models import Invoice, InvoiceLine, UtilityBilling
from cloud.leases.periods import BillingPeriod
from cloud.leases.terms import CpiLinked, FreeRent
from cloud.leases.utilities import PostedApportionment
from tests.support.leases_portfolio import (
    UnitSpec,
    clock,
    invoice_kinds,
    post_utility_run,
    running_lease,
    seed_site,
    table_counts,
    terms,
)

START, END = date(2026, 1, 1), date(2027, 1, 1)
P = BillingPeriod.parse
UNITS = [UnitSpec("A101"), UnitSpec("A102"), UnitSpec("A103")]


def bill(sessions: sessionmaker[Session], period: str, today: date | None = None) -> BillingReport:
    return run_monthly_billing(sessions, P(period), today=today)


def pay_everything(sessions: sessionmaker[Session], day: date) -> None:
    """Every open invoice paid in full on ``day``."""
    with sessions.begin() as s:
        for inv in s.scalars(select(Invoice).where(Invoice.status == "open")).all():
            payments.record_payment(
                s,
                inv.lease_id,
                cents=inv.total_cents - inv.paid_cents,
                received_on=day,
                ref=f"pay-{inv.id}",
            )


def lines_of(session: Session, invoice_id: str) -> list[tuple[str, str, int]]:
    return [
        (r.lease_id, r.kind, r.cents)
        for r in session.scalars(
            select(InvoiceLine)
            .where(InvoiceLine.invoice_id == invoice_id)
            .order_by(InvoiceLine.line_no)
        )
    ]


def test_monthly_rent_prorated_from_the_handover_then_full_months(
    lease_db: sessionmaker[Session],
) -> None:
    with lease_db.begin() as s:
        seed_site(s, UNITS, tenants=1)
        running_lease(
            s,
            terms("L1", "A101", "T1", START, END, monthly_cents=310_000),
            handover_on=date(2026, 1, 11),
        )
    assert bill(lease_db, "2026-01").rent_cents == 210_000  # 21 of 31 days
    pay_everything(lease_db, date(2026, 1, 5))
    assert bill(lease_db, "2026-02").rent_cents == 310_000
    with lease_db() as s:
        inv = s.get(Invoice, "L1/2026-02")
        assert (inv.issued_on, inv.due_on, inv.total_cents, inv.status) == (
            date(2026, 2, 1),
            date(2026, 2, 11),
            310_000,
            "open",
        )


def test_a_lease_handed_over_after_its_months_run_is_caught_up_next_month(
    lease_db: sessionmaker[Session],
) -> None:
    with lease_db.begin() as s:
        seed_site(s, UNITS, tenants=2)
        running_lease(s, terms("L0", "A102", "T2", START, END))
    bill(lease_db, "2026-03")
    with lease_db.begin() as s:
        running_lease(s, terms("L1", "A101", "T1", date(2026, 3, 20), END, monthly_cents=310_000))
    # a rerun bills only the new lease, issued on the day of the rerun
    assert bill(lease_db, "2026-03", today=date(2026, 3, 20)).invoices == 1
    pay_everything(lease_db, date(2026, 3, 25))
    assert bill(lease_db, "2026-04").rent_cents == 310_000 + 500_000  # no day twice
    with lease_db() as s:
        assert lines_of(s, "L1/2026-03") == [("L1", "rent", 120_000)]  # 12 of 31 days
        assert s.get(Invoice, "L1/2026-03").due_on == date(2026, 3, 30)
        assert lines_of(s, "L1/2026-04") == [("L1", "rent", 310_000)]


def test_quarterly_payer_is_billed_a_quarter_in_advance(lease_db: sessionmaker[Session]) -> None:
    with lease_db.begin() as s:
        seed_site(s, UNITS, tenants=1)
        running_lease(s, terms("L1", "A101", "T1", START, END, cycle_months=3))
    got = [bill(lease_db, f"2026-{m:02d}").rent_cents for m in range(1, 8)]
    assert got == [1_500_000, 0, 0, 1_500_000, 0, 0, 1_500_000]


def test_free_rent_from_the_handover_not_the_signing(lease_db: sessionmaker[Session]) -> None:
    with lease_db.begin() as s:
        seed_site(s, UNITS, tenants=2)
        free = [FreeRent(months=1, anchor="handover")]
        running_lease(
            s,
            terms("H", "A101", "T1", START, END, monthly_cents=310_000, free_rent=free),
            signed_on=date(2025, 12, 1),
            handover_on=date(2026, 1, 11),
        )
        running_lease(
            s,
            terms(
                "S",
                "A102",
                "T2",
                START,
                END,
                monthly_cents=310_000,
                free_rent=[FreeRent(months=1, anchor="signing")],
            ),
            signed_on=date(2025, 12, 1),
            handover_on=date(2026, 1, 11),
        )
    bill(lease_db, "2026-01")
    bill(lease_db, "2026-02")
    with lease_db() as s:
        # handover-anchored: free 11 Jan … 11 Feb → nothing in January, 18/28 of February
        assert s.get(Invoice, "H/2026-01") is None
        assert lines_of(s, "H/2026-02") == [("H", "rent", 199_286)]
        # signing-anchored: free 1 Dec … 1 Jan was spent before the keys: rent from 11 Jan
        assert lines_of(s, "S/2026-01") == [("S", "rent", 210_000)]


def test_cpi_linked_rent_is_held_until_the_index_is_published_then_capped(
    lease_db: sessionmaker[Session],
) -> None:
    with lease_db.begin() as s:
        seed_site(s, UNITS, tenants=1)
        reference.publish_cpi(s, {date(2024, 12, 1): Decimal(100)})
        running_lease(
            s,
            terms(
                "L1",
                "A101",
                "T1",
                date(2025, 1, 1),
                date(2028, 1, 1),
                rent=CpiLinked(monthly_cents=500_000, cap=Decimal("0.03")),
            ),
        )
    held = bill(lease_db, "2026-01")
    assert held.invoices == 0 and held.held[0][0] == "L1"
    assert "index it needs is not published" in held.held[0][1]
    with lease_db.begin() as s:
        reference.publish_cpi(s, {date(2025, 12, 1): Decimal("104.5")})  # +4.5 %, cap 3 %
    assert bill(lease_db, "2026-01").rent_cents == 515_000


def test_child_leases_are_billed_on_the_parents_invoice(lease_db: sessionmaker[Session]) -> None:
    with lease_db.begin() as s:
        seed_site(s, UNITS, tenants=3)
        running_lease(s, terms("CO", "A101", "T1", START, END, monthly_cents=800_000))
        running_lease(
            s, terms("CO-1", "A102", "T2", START, END, parent_id="CO", monthly_cents=300_000)
        )
        running_lease(
            s, terms("CO-2", "A103", "T3", START, END, parent_id="CO", monthly_cents=200_000)
        )
        post_utility_run(s, START, date(2026, 2, 1), {("A102", "T2"): 12_345})
    report = bill(lease_db, "2026-01")
    assert report.invoices == 1
    with lease_db.begin() as s:
        assert lines_of(s, "CO/2026-01") == [
            ("CO", "rent", 800_000),
            ("CO-1", "rent", 300_000),
            ("CO-2", "rent", 200_000),
            ("CO-1", "utility", 12_345),
        ]
        receipt = payments.record_payment(
            s, "CO-2", cents=1_312_345, received_on=date(2026, 1, 5), ref="B1"
        )
        assert receipt.account_id == "CO" and receipt.credit_cents == 0


def test_utilities_come_from_posted_runs_once_and_landlord_lines_never(
    lease_db: sessionmaker[Session],
) -> None:
    with lease_db.begin() as s:
        seed_site(s, UNITS, tenants=2)
        running_lease(s, terms("L1", "A101", "T1", date(2025, 6, 1), END))
        post_utility_run(
            s,
            date(2025, 12, 1),
            START,
            {("A101", "T1"): 23_456, ("A102", "T9"): 999},
            landlord_cents=7_000,
        )
        post_utility_run(s, date(2025, 12, 1), START, {("A101", "T1"): 50_000}, status="approved")
    report = bill(lease_db, "2026-01")
    assert (report.utility_cents, report.unmatched) == (23_456, ())
    with lease_db.begin() as s:
        post_utility_run(s, START, date(2026, 2, 1), {("A101", "T1"): 11_111})
    assert bill(lease_db, "2026-02").utility_cents == 11_111  # the December run not again
    with lease_db() as s:
        assert len(s.scalars(select(UtilityBilling)).all()) == 2


def test_utilities_of_a_posted_run_of_the_apportionment_engine(
    lease_db: sessionmaker[Session],
) -> None:
    """The move-in case of tests/cases: X leaves A on 04-11, Y comes on 04-16, Z holds B."""
    case = load_case(Path(__file__).parents[1] / "cases" / "move_in.yaml")
    t = datetime(2026, 5, 3, tzinfo=UTC)
    with lease_db.begin() as s:
        run = create_run(s, case, by="finance", clock=lambda: t)
        review_run(s, run.id, by="finance-2", clock=lambda: t)
        approve_run(s, run.id, by="controller", clock=lambda: t)
        post_run(s, run.id, by="controller", key=Ed25519PrivateKey.generate(), clock=lambda: t)
        seed_site(s, [UnitSpec("A"), UnitSpec("B")])
        for tenant in ("X", "Y", "Z"):
            reference.add_tenant(s, tenant, tenant)
        s.flush()
        running_lease(s, terms("LX", "A", "X", date(2025, 6, 1), date(2026, 6, 1)))
        lifecycle.terminate(
            s,
            "LX",
            on=date(2026, 4, 11),
            today=date(2026, 4, 11),
            by="m1",
            reason="moved out",
            clock=clock,
        )
        running_lease(s, terms("LY", "A", "Y", date(2026, 4, 16), date(2027, 4, 16)))
        running_lease(s, terms("LZ", "B", "Z", date(2026, 1, 1), date(2027, 1, 1)))
    utilities = PostedApportionment()
    with lease_db.begin() as s:
        charges = {
            (c.unit_id, c.party): c.cents
            for c in utilities.unbilled_charges(s, through=date(2026, 6, 1))
        }
        report = run_billing(s, P("2026-05"), utilities=utilities)
    assert sum(charges.values()) == report.utility_cents
    assert set(charges) == {("A", "X"), ("A", "Y"), ("B", "Z")}
    with lease_db() as s:
        assert invoice_kinds(s, "LY/2026-05")["utility"] == charges[("A", "Y")]
        assert invoice_kinds(s, "LX/2026-05") == {"utility": charges[("A", "X")]}


def test_rerunning_a_period_changes_nothing(lease_db: sessionmaker[Session]) -> None:
    with lease_db.begin() as s:
        seed_site(s, UNITS, tenants=2)
        running_lease(s, terms("L1", "A101", "T1", START, END))
        running_lease(s, terms("L2", "A102", "T2", START, END))
        post_utility_run(s, date(2025, 12, 1), START, {("A101", "T1"): 5_000})
    first = bill(lease_db, "2026-01")
    with lease_db() as s:
        before = table_counts(s)
    again = bill(lease_db, "2026-01")
    with lease_db() as s:
        assert table_counts(s) == before
    assert (first.invoices, again.invoices, again.already_billed) == (2, 0, 2)


def test_invoice_total_is_rent_plus_utilities_plus_fees_minus_credits(
    lease_db: sessionmaker[Session],
) -> None:
    with lease_db.begin() as s:
        seed_site(s, UNITS, tenants=1)
        running_lease(s, terms("L1", "A101", "T1", START, END, monthly_cents=300_000))
    bill(lease_db, "2026-01")
    with lease_db.begin() as s:  # January paid 20 days late and over-paid by 50 000
        payments.record_payment(s, "L1", cents=350_000, received_on=date(2026, 1, 31), ref="B1")
        post_utility_run(s, START, date(2026, 2, 1), {("A101", "T1"): 8_000})
    bill(lease_db, "2026-02")
    with lease_db() as s:
        kinds = invoice_kinds(s, "L1/2026-02")
        # late 17 … 30 Jan (14 days) × 300000 × 0.0005 = 2100
        assert kinds == {"rent": 300_000, "utility": 8_000, "late_fee": 2_100, "credit": -50_000}
        inv = s.get(Invoice, "L1/2026-02")
        assert inv.total_cents == sum(kinds.values()) == 260_100
        assert (inv.fee_cents, s.get(Invoice, "L1/2026-01").fee_billed_cents) == (2_100, 2_100)
