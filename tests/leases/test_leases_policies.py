"""The policy resolver and the ladder as a policy field (service level, SQLite and
PostgreSQL): the old ``escalation`` rung still notifies the supervisor; a named policy and
a lease's overrides take their fields over the site's; a later-dated set supersedes from
its first day; ladders are validated; the book resolves many leases in three queries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from cloud.leases import lifecycle, reference
from cloud.leases.jobs import run_daily, run_monthly_billing
from cloud.leases.models import CollectionEvent, Lease, LeaseTask, SitePolicyRow
from cloud.leases.periods import BillingPeriod
from cloud.leases.policies import (
    PolicyError,
    load_book,
    preset_fields,
    resolve,
    site_resolved,
)
from cloud.leases.terms import DEFAULT_POLICY, LeasePolicy
from tests.support.leases_portfolio import (
    RecordingChannel,
    UnitSpec,
    running_lease,
    seed_site,
    terms,
)

START, END = date(2025, 7, 1), date(2026, 7, 1)


def site_set(s: Session, ptype: str, day: date, fields: dict) -> None:
    s.add(
        SitePolicyRow(
            site_id="S1",
            property_type=ptype,
            effective_from=day,
            fields=preset_fields(None, fields),
            created_at=datetime(2025, 1, 1, tzinfo=UTC),
            created_by="test",
        )
    )


def leases(sessions: sessionmaker[Session], n: int = 2) -> None:
    with sessions.begin() as s:
        seed_site(s, [UnitSpec(f"A{100 + i}") for i in range(n)], tenants=n)
        for i in range(n):
            running_lease(s, terms(f"L{i}", f"A{100 + i}", f"T{i + 1}", START, END))


def test_an_escalation_rung_still_goes_to_the_supervisor(lease_db: sessionmaker[Session]) -> None:
    leases(lease_db, 1)
    ladder = [{"days": 2, "action": "reminder"}, {"days": 5, "action": "escalation"}]
    with lease_db.begin() as s:
        s.get(Lease, "L0").policy_overrides = preset_fields(None, {"ladder": ladder})
    run_monthly_billing(lease_db, BillingPeriod.parse("2026-01"))  # due 2026-01-11
    channel = RecordingChannel()
    for offset in range(1, 8):
        run_daily(lease_db, date(2026, 1, 11) + timedelta(days=offset), channels={"email": channel})
    with lease_db() as s:
        events = {
            e.step: (e.action, e.recipient, e.happened_on)
            for e in s.scalars(select(CollectionEvent))
        }
        tasks = {t.kind: t.assignee_id for t in s.scalars(select(LeaseTask))}
    assert events == {
        2: ("reminder", "t1@tenants.test", date(2026, 1, 13)),
        5: ("escalation", "boss@staff.test", date(2026, 1, 16)),
    }
    assert tasks == {"escalation": "boss"}


def test_sources_in_order_and_a_later_set_supersedes(lease_db: sessionmaker[Session]) -> None:
    leases(lease_db, 2)
    with lease_db.begin() as s:
        reference.set_unit_profile(s, "A100", "1BR", property_type="office")
        site_set(s, "all", date(2025, 1, 1), {"risk_lead_days": 20, "acknowledge_within_days": 9})
        site_set(s, "office", date(2025, 1, 1), {"risk_lead_days": 25})
        site_set(s, "office", date(2026, 3, 1), {"risk_lead_days": 40})
        reference.save_policy(
            s, "P-STRICT", DEFAULT_POLICY.model_copy(update={"arrears_block_cents": 0})
        )
        s.flush()
        s.get(Lease, "L1").policy_id = "P-STRICT"
        s.get(Lease, "L0").policy_overrides = {"acknowledge_within_days": 3}
    with lease_db() as s:
        feb = {f.field: f.label for f in resolve(s, "L0", date(2026, 2, 28)).sources}
        mar = resolve(s, "L0", date(2026, 3, 1))
        named = {f.field: f.label for f in resolve(s, "L1", date(2026, 3, 1)).sources}
    assert feb["risk_lead_days"] == "site/type since 2025-01-01"
    assert feb["acknowledge_within_days"] == "lease"
    assert feb["price_band"] == "default"
    assert mar.policy.risk_lead_days == 40 and mar.policy.acknowledge_within_days == 3
    assert {named["arrears_block_cents"], named["risk_lead_days"]} == {"named P-STRICT"}


def test_what_a_sites_sets_give_a_type_without_a_lease(lease_db: sessionmaker[Session]) -> None:
    leases(lease_db, 1)
    with lease_db.begin() as s:
        site_set(s, "all", date(2025, 1, 1), {"risk_lead_days": 20})
        site_set(s, "office", date(2025, 6, 1), {"acknowledge_within_days": 9})
    with lease_db() as s:
        office = {
            f.field: f.label for f in site_resolved(s, "S1", "office", date(2025, 7, 1)).sources
        }
        every = site_resolved(s, "S1", "all", date(2025, 7, 1))
        early = site_resolved(s, "S1", "office", date(2025, 5, 31)).policy
    assert office["acknowledge_within_days"] == "site/type since 2025-06-01"
    assert office["risk_lead_days"] == "site since 2025-01-01" and office["ladder"] == "default"
    # the sets for all types are the site layer only, never counted again as site/type
    labels = {f.field: f.label for f in every.sources}
    assert labels["risk_lead_days"] == "site since 2025-01-01"
    assert every.policy.acknowledge_within_days == 7 and labels["ladder"] == "default"
    assert early.acknowledge_within_days == 7 and early.risk_lead_days == 20


def test_the_book_resolves_many_leases_in_three_queries(lease_db: sessionmaker[Session]) -> None:
    leases(lease_db, 6)
    with lease_db.begin() as s:
        site_set(s, "all", date(2025, 1, 1), {"risk_lead_days": 20})
    statements: list[str] = []
    engine = lease_db.kw["bind"]

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    try:
        with lease_db() as s:
            book = load_book(s, date(2026, 1, 1))
            days = {book.policy(f"L{i}").risk_lead_days for i in range(6)}
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert days == {20}
    assert len([q for q in statements if q.lstrip().upper().startswith("SELECT")]) == 3


@pytest.mark.parametrize(
    ("ladder", "message"),
    [
        ([{"days": 3, "action": "reminder"}, {"days": 3, "action": "call_task"}], "increase"),
        ([{"days": 0, "action": "reminder"}], "greater than or equal to 1"),
        ([{"days": 91, "action": "reminder"}], "less than or equal to 90"),
        ([{"days": 1, "action": "court"}], "legal_handover"),
        ([{"days": d, "action": "reminder"} for d in range(1, 12)], "at most 10"),
        ([], "at least 1"),
    ],
)
def test_ladders_are_validated(ladder: list, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LeasePolicy.model_validate({"ladder": ladder})
    with pytest.raises(PolicyError, match="ladder"):
        preset_fields(None, {"ladder": ladder})


def test_presets() -> None:
    short = preset_fields("short", {})
    assert short["reminder_offsets_days"] == [45, 30, 15]
    assert [r["days"] for r in short["ladder"]] == [1, 3, 7, 14]
    assert short["ladder"][-1]["action"] == "legal_handover"
    standard = preset_fields("standard", {"late_fee": {"grace_days": 3}})
    assert standard["reminder_offsets_days"] == [90, 60, 30]
    assert standard["late_fee"]["grace_days"] == 3
    assert [r["days"] for r in standard["ladder"]] == [1, 3, 7, 15]
    with pytest.raises(PolicyError, match="preset 'long'"):
        preset_fields("long", {})


def test_a_renewal_keeps_the_leases_overrides(lease_db: sessionmaker[Session]) -> None:
    leases(lease_db, 1)
    with lease_db.begin() as s:
        lease = s.get(Lease, "L0")
        lease.policy_overrides = preset_fields(None, {"arrears_block_cents": 0})
        lifecycle.mark_expiring(s, lease, today=date(2026, 5, 1), by="test")
        successor = lifecycle.renew(s, "L0", monthly_cents=None, today=date(2026, 5, 2), by="test")
        assert successor.policy_overrides == {"arrears_block_cents": 0}
        found = {f.field: f.label for f in resolve(s, successor.id, date(2026, 7, 1)).sources}
    assert found["arrears_block_cents"] == "lease"
