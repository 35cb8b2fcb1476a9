"""The deposit desk's rules on SQLite and PostgreSQL (decision 0041): deductions above the
deposit settle to a refund of 0 and a shortfall, which is still paid to close the refund and
told to the tenant; evidence is judged by its bytes and kept once per content, within its
bounds; the page offers each person only the step they may do; the step words have one
source."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cloud.leases import deposits, evidence, lifecycle
from cloud.leases.deposit_desk import DepositDesk
from cloud.leases.errors import DepositInputError, EvidenceMissing, EvidenceTooLarge
from cloud.leases.models import DepositEvidence, Invoice, Payment
from cloud.leases.notices import DEPOSIT_STEPS
from cloud.notify.outbox import NotificationRow
from cloud.staff.accounts import Principal, Role
from cloud.web.rendering import translations
from tests.support.leases_portfolio import SITE, UnitSpec, clock, running_lease, seed_site, terms

T = datetime(2026, 7, 1, 2, 0, tzinfo=UTC)
JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF"
PDF = b"%PDF-1.7\n"
ADMIN = Principal("adm", Role.ADMIN, frozenset(), origin="test")
SUP = Principal("sup", Role.SUPERVISOR, frozenset({SITE}), origin="test")
FIN = Principal("fin", Role.FINANCE, frozenset({SITE}), origin="test")


def desk(sessions: sessionmaker[Session], hours: int = 0) -> DepositDesk:
    return DepositDesk(sessions, clock=lambda: T + timedelta(hours=hours))


def terminated(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        seed_site(s, [UnitSpec("A101")], tenants=1)
        running_lease(
            s, terms("L1", "A101", "T1", date(2026, 1, 1), date(2027, 1, 1), monthly_cents=400_000)
        )
        lifecycle.terminate(
            s, "L1", on=date(2026, 7, 1), today=date(2026, 6, 15), by="m1", reason="x", clock=clock
        )


def test_deductions_above_the_deposit_settle_to_a_shortfall_and_still_close(
    lease_db: sessionmaker[Session],
) -> None:
    terminated(lease_db)
    rid = desk(lease_db).request(SUP, "L1").id
    for cents, content in ((500_000, JPEG), (400_000, PDF)):
        desk(lease_db, 1).deduct(SUP, rid, cents=cents, reason="damage", files=[("f", content)])
    desk(lease_db, 2).act(SUP, rid, "inspect")
    settled = desk(lease_db, 3).act(SUP, rid, "settle")
    assert (settled.deposit_cents, settled.deductions_cents) == (800_000, 900_000)
    assert (settled.refund_cents, settled.shortfall_cents) == (0, 100_000)
    assert desk(lease_db).acts_for(SUP, settled) == []  # who settled does not approve
    assert desk(lease_db).acts_for(FIN, settled) == ["approve"]
    desk(lease_db, 4).act(FIN, rid, "approve")
    with pytest.raises(DepositInputError, match="reference: expected the bank transfer"):
        desk(lease_db, 5).act(FIN, rid, "pay", "   ")
    paid = desk(lease_db, 5).act(FIN, rid, "pay", "NO-TRANSFER-0")
    assert (paid.state, paid.payment_ref, paid.waiting_for, paid.sla) == (
        "paid",
        "NO-TRANSFER-0",
        None,
        None,
    )
    assert desk(lease_db).acts_for(ADMIN, paid) == []
    with lease_db() as s:
        settled_notice = s.scalars(
            select(NotificationRow).where(NotificationRow.key == f"deposit-settled:{rid}")
        ).one()
    assert settled_notice.subject == "押金结算：租约 L1"
    assert "damage 5000.00 元；damage 4000.00 元" in settled_notice.body
    assert "扣款超出押金 1000.00 元" in settled_notice.body


def test_evidence_is_judged_by_its_bytes_and_kept_once(lease_db: sessionmaker[Session]) -> None:
    assert [evidence.sniff(b) for b in (JPEG, PDF, b"\x89PNG\r\n\x1a\nrest", b"GIF89a")] == [
        "image/jpeg",
        "application/pdf",
        "image/png",
        None,
    ]
    with pytest.raises(EvidenceMissing):
        evidence.check_files([])
    with pytest.raises(DepositInputError, match=r"file 2 \('page.pdf.exe'\): expected a JPEG"):
        evidence.check_files([("a.jpg", JPEG), ("page.pdf.exe", b"MZ\x90\x00")])
    with pytest.raises(EvidenceTooLarge, match="at most 3 files with one deduction"):
        evidence.check_files([("a", JPEG)] * 4)
    with pytest.raises(EvidenceTooLarge, match="it has 19, 2 more do not fit"):
        evidence.check_files([("a", JPEG)] * 2, already=19)
    with pytest.raises(EvidenceTooLarge, match=r"10000010 bytes, expected at most 10000000 "):
        evidence.check_files([("a", JPEG + b"\x00" * evidence.MAX_BYTES)])
    terminated(lease_db)
    rid = desk(lease_db).request(SUP, "L1").id
    for n in range(2):  # the same photo with two deductions: stored once
        desk(lease_db, 1).deduct(SUP, rid, cents=100 + n, reason=f"r{n}", files=[("p", JPEG)])
    with lease_db() as s:
        assert s.scalar(select(func.count()).select_from(DepositEvidence)) == 1
        assert evidence.count_on(s, rid) == 2
    row = desk(lease_db).refund(ADMIN, rid)
    assert [d.files[0][1] for d in row.deductions] == ["image/jpeg", "image/jpeg"]
    kind, content = desk(lease_db).evidence(ADMIN, rid, row.deductions[0].files[0][0])
    assert (kind, content) == ("image/jpeg", JPEG)


def test_a_refund_waits_with_its_sla_colour(lease_db: sessionmaker[Session]) -> None:
    terminated(lease_db)
    rid = desk(lease_db).request(SUP, "L1").id
    # inspection within 24 h of the request: due 2 July 10:00 local
    assert desk(lease_db).refund(SUP, rid).due_at == T + timedelta(hours=24)
    assert desk(lease_db, 47).refund(SUP, rid).sla == "red"
    with lease_db.begin() as s:  # the policy's hours are deposits.py's: one source
        assert deposits.step_due(s.get(deposits.DepositRefund, rid), {"inspection": 5}) == (
            "inspection",
            T + timedelta(hours=5),
        )


def test_the_step_words_have_one_source() -> None:
    i18n = Path(__file__).parents[2] / "cloud" / "web" / "i18n"
    for lang in ("zh-CN", "en"):
        stored = json.loads((i18n / f"{lang}.json").read_text(encoding="utf-8"))
        assert not [k for k in stored if k.startswith("deposit_step_")]
        t = translations(lang)
        for step, words in DEPOSIT_STEPS.items():
            assert t[f"deposit_step_{step}"] == words[lang]


def test_the_deposit_pays_the_unpaid_invoices_first_and_the_rest_is_refunded(
    lease_db: sessionmaker[Session],
) -> None:
    """At the settlement, what the deposit has left after the deductions pays the account's
    open invoices, oldest first, due or not (a payment ``deposit-refund:ID``); only the
    rest is refunded, and the tenant is told both; invoices it cannot cover stay open for
    what is left."""
    terminated(lease_db)
    with lease_db.begin() as s:
        for n, (due, total, paid) in enumerate(
            [(date(2026, 6, 10), 400_000, 150_000), (date(2026, 7, 10), 300_000, 0)], 1
        ):
            s.add(
                Invoice(id=f"INV-{n}", lease_id="L1", period_start=due.replace(day=1),
                        period_end=due.replace(day=28), issued_on=due.replace(day=1), due_on=due,
                        total_cents=total, paid_cents=paid, status="open")
            )  # fmt: skip
    rid = desk(lease_db).request(SUP, "L1").id
    desk(lease_db, 1).deduct(SUP, rid, cents=100_000, reason="damage", files=[("f", JPEG)])
    desk(lease_db, 2).act(SUP, rid, "inspect")
    settled = desk(lease_db, 3).act(SUP, rid, "settle")
    # 8,000.00 − 1,000.00 deducted = 7,000.00; owed 2,500.00 + 3,000.00 = 5,500.00
    assert (settled.deductions_cents, settled.arrears_cents) == (100_000, 550_000)
    assert (settled.refund_cents, settled.shortfall_cents) == (150_000, 0)
    assert settled.deposit_cents == 100_000 + 550_000 + 150_000
    with lease_db() as s:
        invoices = s.execute(select(Invoice.id, Invoice.status, Invoice.paid_cents)).all()
        payment = s.scalars(select(Payment).where(Payment.ref == f"deposit-refund:{rid}")).one()
        body = s.scalars(
            select(NotificationRow.body).where(NotificationRow.key == f"deposit-settled:{rid}")
        ).one()
    assert sorted(tuple(r) for r in invoices) == [
        ("INV-1", "paid", 400_000),
        ("INV-2", "paid", 300_000),
    ]
    assert payment.cents == 550_000
    assert "其中 5500.00 元已用于结清未付账单。退还 1500.00 元。" in body


def test_a_small_deposit_pays_the_oldest_invoice_and_leaves_the_rest_owed(
    lease_db: sessionmaker[Session],
) -> None:
    terminated(lease_db)
    with lease_db.begin() as s:
        s.add(
            Invoice(id="INV-9", lease_id="L1", period_start=date(2026, 6, 1),
                    period_end=date(2026, 7, 1), issued_on=date(2026, 6, 1),
                    due_on=date(2026, 6, 10), total_cents=1_000_000, paid_cents=0, status="open")
        )  # fmt: skip
    rid = desk(lease_db).request(SUP, "L1").id
    desk(lease_db, 2).act(SUP, rid, "inspect")
    settled = desk(lease_db, 3).act(SUP, rid, "settle")
    assert (settled.arrears_cents, settled.refund_cents, settled.shortfall_cents) == (800_000, 0, 0)
    with lease_db() as s:
        assert s.get(Invoice, "INV-9").paid_cents == 800_000
        assert s.get(Invoice, "INV-9").status == "open"
