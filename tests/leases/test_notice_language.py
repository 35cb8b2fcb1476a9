"""Notices and task notes in their reader's language (decision 0040): a tenant's payment
reminder and a supervisor's legal hand-over in the recipient's stored language (Chinese by
default), the task stored as a code and its values with its English beside them, and a
renewal review's reasons worded in both languages."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.leases.jobs import run_daily, run_monthly_billing
from cloud.leases.models import LeaseTask, Staff, Tenant
from cloud.leases.notices import NOTICES, TASK_NOTES, note_text, notice, review_reasons
from cloud.leases.periods import BillingPeriod
from cloud.leases.reference import set_staff
from tests.support.leases_portfolio import (
    RecordingChannel,
    UnitSpec,
    running_lease,
    seed_site,
    terms,
)

START, END = date(2026, 1, 1), date(2027, 1, 1)
DUE = date(2026, 1, 11)  # the January invoices' due day


def two_unpaid(sessions: sessionmaker[Session], *, english_tenant: str, english_boss: bool) -> None:
    with sessions.begin() as s:
        seed_site(s, [UnitSpec("A101"), UnitSpec("A102")], tenants=2)
        running_lease(s, terms("L1", "A101", "T1", START, END, monthly_cents=300_000))
        running_lease(s, terms("L2", "A102", "T2", START, END, monthly_cents=123_456))
        s.get(Tenant, english_tenant).language = "en"
        if english_boss:
            s.get(Staff, "boss").language = "en"
    run_monthly_billing(sessions, BillingPeriod.parse("2026-01"))


def test_a_payment_reminder_is_in_the_tenants_language(lease_db: sessionmaker[Session]) -> None:
    two_unpaid(lease_db, english_tenant="T2", english_boss=False)
    channel = RecordingChannel()
    run_daily(lease_db, DUE + timedelta(days=1), channels={"email": channel})
    sent = {m.recipient: m for m in channel.sent}
    zh, en = sent["t1@tenants.test"], sent["t2@tenants.test"]
    assert zh.subject == "缴费提醒：账单 L1/2026-01"
    assert zh.body.startswith(
        "Tenant 1，您好：账单 L1/2026-01 尚有 3000.00 元未付，已于 2026-01-11 到期。"
    )
    assert en.subject == "Payment reminder: L2/2026-01"
    assert en.body == (
        "Dear Tenant 2, 1234.56 CNY of invoice L2/2026-01 was due on 2026-01-11. "
        "Please pay at your earliest convenience."
    )
    assert zh.data == {"invoice": "L1/2026-01", "owed_cents": 300_000, "due_on": "2026-01-11"}


@pytest.mark.parametrize("english_boss", [False, True])
def test_a_legal_hand_over_is_in_the_supervisors_language_and_its_task_keeps_a_code(
    lease_db: sessionmaker[Session], english_boss: bool
) -> None:
    two_unpaid(lease_db, english_tenant="T2", english_boss=english_boss)
    channel = RecordingChannel()
    for offset in range(1, 16):
        run_daily(lease_db, DUE + timedelta(days=offset), channels={"email": channel})
    to_boss = [m for m in channel.sent if m.recipient == "boss@staff.test" and "L1" in m.key]
    assert len(to_boss) == 1
    if english_boss:
        assert to_boss[0].subject == "Handed to legal: L1/2026-01 unpaid 15 days"
        assert to_boss[0].body == (
            "Handed over to legal: invoice L1/2026-01 (A101, Tenant 1): 3000.00 CNY owed, "
            "due 2026-01-11."
        )
    else:
        assert to_boss[0].subject == "已移交法务：账单 L1/2026-01 逾期 15 天未付"
        assert (
            to_boss[0].body
            == "已移交法务：账单 L1/2026-01（A101，Tenant 1）欠款 3000.00 元，2026-01-11 到期。"
        )
    with lease_db() as s:
        task = s.scalars(
            select(LeaseTask).where(LeaseTask.kind == "legal_case", LeaseTask.lease_id == "L1")
        ).one()
    # the English stays for commands, the API and the audit log; the page words the code
    assert task.note == "invoice L1/2026-01 (A101, Tenant 1): 3000.00 CNY owed, due 2026-01-11"
    assert task.note_code == "owed"
    assert json.loads(task.note_params)["owed_cents"] == 300_000
    zh = note_text(task.note_code, task.note_params, "zh-CN", fallback=task.note)
    assert zh == "账单 L1/2026-01（A101，Tenant 1）欠款 3000.00 元，2026-01-11 到期"
    assert note_text(task.note_code, task.note_params, "en", fallback="?") == task.note


def test_a_task_from_before_or_with_broken_values_shows_its_english() -> None:
    assert note_text("", "{}", "zh-CN", fallback="old english") == "old english"
    assert note_text("owed", "not json", "zh-CN", fallback="kept") == "kept"
    assert note_text("owed", '{"invoice": "X"}', "zh-CN", fallback="kept") == "kept"
    assert note_text("nope", "{}", "zh-CN", fallback="kept") == "kept"
    assert note_text("owed", '{"owed_cents": "many"}', "zh-CN", fallback="kept") == "kept"
    assert (
        note_text(
            "renewal_review",
            '{"reasons": [{"code": "move_out_risk", "probability": "high"}]}',
            "zh-CN",
            fallback="kept",
        )
        == "kept"
    )


def test_review_reasons_in_both_languages() -> None:
    reasons = [{"code": "late_payments", "count": 2}, {"code": "open_complaints"}]
    assert review_reasons(reasons, "zh-CN") == "近 365 天逾期付款 2 次；有未解决的报修投诉"
    assert review_reasons(reasons, "en") == (
        "2 late payment(s) in the last 365 days; open repair complaint(s)"
    )
    risk = [{"code": "move_out_risk", "probability": 0.7234, "why": ["legacy words"]}]
    assert review_reasons(risk, "zh-CN") == "退租风险 72%（legacy words）"
    assert review_reasons(risk, "en") == "move-out risk 72% (legacy words)"
    assert review_reasons(["stored before 0027"], "zh-CN") == "stored before 0027"
    why = [{"feature": "open_tickets", "value": 3.0}, {"feature": "use_ratio", "value": -0.5}]
    scored = [{"code": "move_out_risk", "probability": 0.7234, "why": why}]
    assert review_reasons(scored, "zh-CN") == (
        "退租风险 72%（3 个报修未关闭；用量较自身 60 天基线 -39 %）"
    )
    assert review_reasons(scored, "en") == (
        "move-out risk 72% (3 repair ticket(s) open; use -39 % vs its own 60-day baseline)"
    )


def test_every_notice_and_note_has_both_languages_naming_the_same_values() -> None:
    import string

    def names(text: str) -> set[str]:
        return {f for _, f, _, _ in string.Formatter().parse(text) if f}

    for code, entry in NOTICES.items():
        assert set(entry) == {"zh-CN", "en"}, code
        for part in (0, 1):
            assert names(entry["zh-CN"][part]) == names(entry["en"][part]), (code, part)
    for code, words in TASK_NOTES.items():
        assert set(words) == {"zh-CN", "en"} and names(words["zh-CN"]) == names(words["en"]), code
    subject, _ = notice(
        "renewal_escalation",
        "fr",
        {  # an unknown language reads Chinese
            "manager": "陈",
            "lease": "L1",
            "unit": "A101",
            "end_on": "2027-01-01",
            "offset": 60,
            "sent_on": "2026-11-01",
        },
    )
    assert subject == "升级：租约 L1 的续签提醒未确认"


def test_a_staff_language_is_checked_and_kept_when_not_given(
    lease_db: sessionmaker[Session],
) -> None:
    with lease_db.begin() as s:
        set_staff(s, "chen", "陈管家", language="en")
        with pytest.raises(ValueError, match="expected one of zh-CN, en"):
            set_staff(s, "li", "李", language="english")
    with lease_db.begin() as s:
        before, after = set_staff(s, "chen", "陈管家", address="chen@staff.test")
        assert before["language"] == after["language"] == "en"
        set_staff(s, "wang", "王")
        assert s.get(Staff, "wang").language == "zh-CN"
