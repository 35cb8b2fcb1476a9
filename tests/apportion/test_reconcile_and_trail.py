"""The run page's pure parts: the reconciliation (bill = Σ lines per register) and the audit
trail merged to one record per event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import yaml

from cloud.apportion.balances import tree_balances
from cloud.apportion.case.conversion import build_engine_inputs
from cloud.apportion.case.document import Case
from cloud.apportion.case.loading import case_from_data, load_case
from cloud.apportion.engine import apportion
from cloud.apportion.engine_result import EngineResult
from cloud.apportion.lines import Component
from cloud.apportion.reconcile import GROUPS, LineSum, bill_cents, reconcile, total
from cloud.apportion.statement import line_rows
from cloud.apportion.trail import merge_trail
from cloud.staff.audit import AuditRecord
from tests.support.browser import CASES

T0 = datetime(2026, 5, 2, 9, 0, tzinfo=UTC)


def compute(case: Case) -> EngineResult:
    return apportion(build_engine_inputs(case))


def test_every_line_component_belongs_to_one_part() -> None:
    assert set(GROUPS) == {c.label for c in Component}
    assert set(GROUPS.values()) == {"own_use", "shared", "loss"}


def test_basic_case_reconciles_to_the_cent_and_the_kwh() -> None:
    """docs/apportionment.md's worked example: main 1200 kWh, bill 720.00 = own use 450.00
    (A101 180, A102 150, A103 30, office 90) + lift 210.00 + loss 60.00."""
    case = load_case(CASES / "basic.yaml")
    result = compute(case)
    roots = [n for n in tree_balances(result) if n.parent is None]
    meter = {r: Decimal(repr(k)) for r, k in (roots[0].kwh_by_register or {}).items()}
    lines = [LineSum(x.register, x.component, Decimal(x.kwh), x.cents) for x in line_rows(result)]
    (row,) = reconcile(bill_cents(case.bill.model_dump()), meter, lines)
    assert (row.register, row.bill_cents, row.lines_cents, row.diff_cents) == (
        "total",
        72000,
        72000,
        0,
    )
    assert dict(row.cents) == {"own_use": 45000, "shared": 21000, "loss": 6000}
    assert row.meter_kwh == Decimal("1200") and row.diff_kwh == Decimal("0.00")
    assert dict(row.kwh) == {"own_use": Decimal(750), "shared": Decimal(350), "loss": Decimal(100)}
    assert row.balanced


def test_tou_registers_and_demand_each_get_a_row_and_the_total_sums_them() -> None:
    bill = bill_cents({"amounts": {"T1": "10.00", "T2": "20.5"}, "demand": "5"})
    assert bill == {"T1": 1000, "T2": 2050, "demand": 500}
    lines = [
        LineSum("T1", "own_use", Decimal("10"), 600),
        LineSum("T1", "loss", Decimal("1"), 400),
        LineSum("T2", "common", Decimal("30"), 2049),
        LineSum("demand", "demand", Decimal("0"), 500),
    ]
    rows = reconcile(bill, {"T1": Decimal("11"), "T2": Decimal("30.004")}, lines)
    assert [r.register for r in rows] == ["T1", "T2", "demand"]
    assert [r.diff_cents for r in rows] == [0, 1, 0]  # T2 is one cent short: shown, not hidden
    assert not rows[1].balanced and rows[0].balanced
    assert rows[1].diff_kwh == Decimal("0.00")  # to the hundredth, never "-0.00"
    assert rows[2].meter_kwh is None and rows[2].diff_kwh is None
    summed = total(rows)
    assert (summed.bill_cents, summed.lines_cents, summed.diff_cents) == (3550, 3549, 1)
    assert summed.meter_kwh == Decimal("41.004") and summed.lines_kwh == Decimal(41)


def test_negative_residual_shows_the_kwh_gap_while_the_money_reconciles() -> None:
    case = case_from_data(yaml.safe_load((CASES / "negative_residual.yaml").read_text()))
    result = compute(case)
    roots = [n for n in tree_balances(result) if n.parent is None]
    meter = {r: Decimal(repr(k)) for r, k in (roots[0].kwh_by_register or {}).items()}
    lines = [LineSum(x.register, x.component, Decimal(x.kwh), x.cents) for x in line_rows(result)]
    (row,) = reconcile(bill_cents(case.bill.model_dump()), meter, lines)
    assert row.diff_cents == 0 and row.diff_kwh == Decimal("-20.00")


def record(minutes: int, actor: str, action: str, detail: str = "") -> AuditRecord:
    return AuditRecord(T0 + timedelta(minutes=minutes), actor, action, "run:r1", detail)


def test_each_step_is_listed_once_with_the_logs_detail() -> None:
    steps = [
        record(0, "fin-a", "create"),
        record(5, "fin-b", "reviewed"),
        record(9, "fin-a", "voided", "wrong bill"),
    ]
    entries = [
        record(0, "fin-a", "run.close", "site park-a 2026-04-01 … 2026-05-01 version 1; …"),
        record(3, "fin-a", "reading.manual", "U2 2026-05-01 display 450 × 1"),
        record(5, "fin-b", "review"),
        record(7, "tenant:ACME", "dispute", "unit A101: too high"),
        record(9, "fin-a", "void", "wrong bill"),
    ]
    merged = merge_trail(steps, entries)
    assert [(e.actor, e.action) for e in merged] == [
        ("fin-a", "create"),
        ("fin-a", "reading.manual"),
        ("fin-b", "reviewed"),
        ("tenant:ACME", "dispute"),
        ("fin-a", "voided"),
    ]
    assert merged[0].detail.startswith("site park-a")  # the log's detail, kept
    assert merged[-1].detail == "wrong bill"


def test_a_log_step_the_run_does_not_show_is_kept_under_the_steps_name() -> None:
    merged = merge_trail([record(0, "seed", "create")], [record(1, "fin-a", "approve")])
    assert [(e.actor, e.action) for e in merged] == [("seed", "create"), ("fin-a", "approved")]
