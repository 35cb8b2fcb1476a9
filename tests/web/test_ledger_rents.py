"""The ledger (台账) and rents that rise: percent-rise and CPI-linked leases imported from the
workbook and the CSV (optional rise columns), every kind of rent exported and imported again
unchanged, bad rise cells named with nothing stored, and a ledger made before the columns
(without them) still importing, keeping a stored lease's rise."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from cloud.leases import lifecycle
from cloud.leases.ledger_columns import CSV_COLUMNS, LEASE_COLUMNS, LEASES_SHEET, STEPS_SHEET
from cloud.leases.ledger_sheets import LeaseRec
from cloud.leases.models import CpiIndex, Lease, RentStepRow
from cloud.leases.plans import schedule_of
from cloud.leases.terms import CpiLinked, FixedRent, LeaseTerms, PercentRise, SteppedRent
from cloud.staff.models import AuditEntry
from tests.support.browser import WebRig, serve
from tests.support.ledger_book import MANAGER, write_ledger
from tests.support.ledger_web import SITE, auth, count, edit_sheet, ledger_rig, upload


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = ledger_rig(tmp_path_factory.mktemp("ledger-rents"))
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def client(rig: WebRig) -> Iterator[httpx.Client]:
    with serve(rig.app) as url, httpx.Client(base_url=url, timeout=120) as client:
        yield client


#: building R's leases of every kind of rent, stored with the lease services (not the
#: ledger): (id, unit, rent, status)
EVERY_RENT = [
    ("R-FIXED", "park-a-R0001", FixedRent(monthly_cents=400_000), "active"),
    (
        "R-STEPPED",
        "park-a-R0002",
        SteppedRent(
            steps=[
                {"from": date(2026, 1, 1), "monthly_cents": 400_000},
                {"from": date(2027, 1, 1), "monthly_cents": 420_000},
            ]
        ),
        "signed",
    ),
    ("R-PERCENT", "park-a-R0003", PercentRise(monthly_cents=400_000, rise="0.05"), "active"),
    (
        "R-CPI",
        "park-a-R0004",
        CpiLinked(monthly_cents=400_000, floor="0.01", cap="0.045", every_months=12, lag_months=2),
        "signed",
    ),
    (
        "R-PERCENT-DRAFT",
        "park-a-R0005",
        PercentRise(monthly_cents=300_000, rise="0.035", every_months=24),
        "draft",
    ),
    ("R-CPI-DRAFT", "park-a-R0006", CpiLinked(monthly_cents=300_000, cap="0.03"), "draft"),
]


def _store_every_rent(rig: WebRig) -> None:
    with rig.sessions.begin() as s:
        for lease_id, unit, rent, status in EVERY_RENT:
            if s.get(Lease, lease_id) is not None:
                continue
            terms = LeaseTerms(
                id=lease_id,
                tenant_id="T-ZHANG",
                unit_id=unit,
                manager_id=MANAGER,
                start_on=date(2026, 1, 1),
                end_on=date(2028, 1, 1),
                rent=rent,
            )
            lifecycle.create_lease(s, terms, by="test", today=date(2025, 12, 1))
            if status != "draft":
                lifecycle.sign(s, lease_id, on=date(2025, 12, 1), by="test")
            if status == "active":
                lifecycle.hand_over(s, lease_id, on=date(2026, 1, 1), by="test")


def test_every_kind_of_rent_exports_and_imports_again_unchanged(rig, client, tmp_path) -> None:
    """Fixed, stepped, percent-rise and CPI-linked rents (signed, active and draft): the
    export imported again changes nothing — a percent or CPI rent is not read back as a
    fixed one (a signed lease refused, a draft silently made fixed)."""
    _store_every_rent(rig)
    mgr = auth(client, rig, "mgr-r")
    for fmt in ("xlsx", "csv"):
        reply = client.get(f"/api/v1/ledger/export?site={SITE}&format={fmt}", headers=mgr)
        assert reply.status_code == 200, reply.text
        again = upload(client, mgr, reply.content, f"every.{fmt}", dry_run=False)
        assert again.status_code == 200, again.text
        body = again.json()
        assert body["unchanged"] == len(EVERY_RENT), body
        assert body["created"] == [] and body["updated"] == []
    with rig.sessions() as s:
        for lease_id, _unit, rent, _status in EVERY_RENT:
            assert schedule_of(s.get(Lease, lease_id))[0] == rent, lease_id
    # a draft's row changed in the export (its due days): updated, its rent still rising
    path = tmp_path / "every.xlsx"
    path.write_bytes(
        client.get(f"/api/v1/ledger/export?site={SITE}&format=xlsx", headers=mgr).content
    )
    ids = [r[0] for r in load_workbook(path)[LEASES_SHEET].iter_rows(min_row=2, values_only=True)]
    row = ids.index("R-PERCENT-DRAFT") + 2
    changed = edit_sheet(path, LEASES_SHEET, {(row, "Due days"): 15})
    reply = upload(client, mgr, changed, "every.xlsx", dry_run=False)
    assert reply.status_code == 200 and reply.json()["updated"] == ["R-PERCENT-DRAFT"], reply.text
    with rig.sessions() as s:
        draft = s.get(Lease, "R-PERCENT-DRAFT")
        assert draft.due_days == 15
        assert schedule_of(draft)[0] == EVERY_RENT[4][2]


#: a lease of building R as the ledger holds it, for the files the tests write
R_LEASE = LeaseRec(
    id="R-X",
    tenant="T-ZHANG",
    unit="park-a-R0030",
    manager=MANAGER,
    kind="standard",
    start_on=date(2026, 1, 1),
    end_on=date(2028, 1, 1),
    rent_cents=400_000,
    steps=(),
    free_months=0,
    free_days=0,
    free_anchor="start",
    deposit_months=Decimal(2),
    deposit_cents=None,
    cycle=1,
    due_days=10,
    parent=None,
    signed_on=date(2025, 12, 1),
    handover_on=date(2026, 1, 1),
    status="active",
)
RISE_COLUMNS = ("Rent rise", "Rise (%)", "CPI floor (%)", "Rise every (months)", "CPI lag (months)")


def _row_of(path: Path, lease_id: str) -> int:
    ids = [r[0] for r in load_workbook(path)[LEASES_SHEET].iter_rows(min_row=2, values_only=True)]
    return ids.index(lease_id) + 2


def _csv(rows: list[dict[str, object]], columns: list[str]) -> bytes:
    """A CSV with the columns (keys) named in Chinese, as an operator might write it."""
    names = {c.key: c.zh for c in CSV_COLUMNS}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([names[k] for k in columns])
    for row in rows:
        writer.writerow(["" if row.get(k) is None else str(row[k]) for k in columns])
    return out.getvalue().encode()


def test_percent_rise_and_cpi_leases_import_from_the_workbook_and_csv(rig, client, tmp_path):
    """The rise columns give PercentRise and CpiLinked terms (5, 5% or a number cell is
    5 %; blank cells the terms' defaults); an active CPI lease needs no published index to
    be imported: its plan is known until the first adjustment, as billing expects."""
    assert count(rig, CpiIndex) == 0
    path = tmp_path / "rises.xlsx"
    percent = replace(
        R_LEASE,
        id="R-IN-PCT",
        unit="park-a-R0007",
        escalation="percent",
        rise=Decimal("0.05"),
        every_months=6,
    )
    cpi = replace(
        R_LEASE,
        id="R-IN-CPI",
        unit="park-a-R0008",
        escalation="cpi",
        rise=Decimal("0.045"),
        floor=Decimal("0.01"),
    )
    write_ledger(path, SITE, 0, building="R", extra=[percent, cpi])
    # as typed by hand: 5 without the sign, the cap a number cell, lag left blank
    data = edit_sheet(path, LEASES_SHEET, {(2, "Rise (%)"): "5", (3, "Rise (%)"): 4.5})
    mgr = auth(client, rig, "mgr-r")
    reply = upload(client, mgr, data, "rises.xlsx", dry_run=False)
    assert reply.status_code == 200, reply.text
    assert reply.json()["created"] == ["R-IN-PCT", "R-IN-CPI"]
    header = [str(c.value).split("\n")[-1] for c in load_workbook(path)[LEASES_SHEET][1]]
    assert all(name in header for name in RISE_COLUMNS)
    # the CSV form, written by hand: 3.5%, cpi with every cell but the cap blank
    columns = [c.key for c in LEASE_COLUMNS]
    rows = [
        {
            "id": "R-IN-PCT2",
            "tenant": "T-ZHANG",
            "unit": "park-a-R0009",
            "manager": MANAGER,
            "start_on": "2026-01-01",
            "end_on": "2028-01-01",
            "rent": "3000",
            "escalation": "percent",
            "rise": "3.5%",
            "every_months": "24",
        },
        {
            "id": "R-IN-CPI2",
            "tenant": "T-ZHANG",
            "unit": "park-a-R0010",
            "manager": MANAGER,
            "start_on": "2026-01-01",
            "end_on": "2028-01-01",
            "rent": "3000",
            "escalation": "cpi",
            "rise": "3",
            "status": "signed",
            "signed_on": "2025-12-01",
        },
    ]
    reply = upload(client, mgr, _csv(rows, columns), "rises.csv", dry_run=False)
    assert reply.status_code == 200, reply.text
    assert reply.json()["created"] == ["R-IN-PCT2", "R-IN-CPI2"]
    with rig.sessions() as s:
        rents = {i: schedule_of(s.get(Lease, i))[0] for i in ("R-IN-PCT", "R-IN-CPI")}
        rents |= {i: schedule_of(s.get(Lease, i))[0] for i in ("R-IN-PCT2", "R-IN-CPI2")}
        active = s.get(Lease, "R-IN-CPI")
        assert active.status == "active" and active.plan_known_until == date(2027, 1, 1)
        steps = s.scalars(select(RentStepRow).where(RentStepRow.lease_id == "R-IN-CPI")).all()
        assert [(r.monthly_cents) for r in steps] == [400_000]
    assert rents == {
        "R-IN-PCT": PercentRise(monthly_cents=400_000, rise=Decimal("0.05"), every_months=6),
        "R-IN-CPI": CpiLinked(monthly_cents=400_000, floor=Decimal("0.01"), cap=Decimal("0.045")),
        "R-IN-PCT2": PercentRise(monthly_cents=300_000, rise=Decimal("0.035"), every_months=24),
        "R-IN-CPI2": CpiLinked(monthly_cents=300_000, cap=Decimal("0.03")),
    }
    assert rents["R-IN-CPI2"].floor == 0 and rents["R-IN-CPI2"].lag_months == 1


def test_bad_rise_cells_are_named_and_nothing_is_stored(rig, client, tmp_path) -> None:
    """An unknown kind of rise, a rise out of bounds, a floor above the cap, a stepped rent
    that also rises, a missing rise, rise cells of a rent that does not rise: each cell
    named with what was expected; nothing stored."""
    steps = ((date(2026, 1, 1), 400_000), (date(2027, 1, 1), 420_000))
    bad = {
        "R-B-KIND": {"escalation": "yearly", "rise": Decimal("0.05")},
        "R-B-HIGH": {"escalation": "percent", "rise": Decimal("1.5")},
        "R-B-FLOOR": {"escalation": "cpi", "rise": Decimal("0.03"), "floor": Decimal("0.05")},
        "R-B-STEPS": {
            "escalation": "percent",
            "rise": Decimal("0.05"),
            "rent_cents": None,
            "steps": steps,
        },
        "R-B-NORISE": {"escalation": "percent"},
        "R-B-FIXED": {"rise": Decimal("0.05")},
        "R-B-LAG": {"escalation": "percent", "rise": Decimal("0.05"), "lag_months": 2},
        "R-B-EVERY": {"escalation": "cpi", "rise": Decimal("0.05"), "every_months": 0},
    }
    extra = [
        replace(R_LEASE, id=lease_id, unit=f"park-a-R00{11 + n}", **fields)
        for n, (lease_id, fields) in enumerate(bad.items())
    ]
    path = tmp_path / "bad-rises.xlsx"
    write_ledger(path, SITE, 0, building="R", extra=extra)
    data = edit_sheet(path, LEASES_SHEET, {(_row_of(path, "R-B-HIGH"), "Rise (%)"): "150%"})
    before = count(rig, Lease), count(rig, AuditEntry)
    mgr = auth(client, rig, "mgr-r")
    reply = upload(client, mgr, data, "bad-rises.xlsx", dry_run=False)
    assert reply.status_code == 422, reply.text
    issues = reply.json()["issues"]
    named = {(i["sheet"], i["row"], i["column"]): i["message"] for i in issues}
    row = {lease_id: n + 2 for n, lease_id in enumerate(bad)}
    expected = {
        (
            row["R-B-KIND"],
            "涨租方式/escalation",
        ): "expected one of fixed, percent, cpi, got 'yearly'",
        (row["R-B-HIGH"], "涨幅（%）/rise"): "expected a percentage from -50 to 100",
        (row["R-B-FLOOR"], "CPI 下限（%）/floor"): "expected a floor at most the cap 3%, got 5%",
        (row["R-B-STEPS"], "涨租方式/escalation"): "the rent is stepped on 租金阶梯 Rent steps",
        (row["R-B-NORISE"], "涨幅（%）/rise"): "expected the rise in percent",
        (row["R-B-FIXED"], "涨幅（%）/rise"): "rises only with 涨租方式/escalation percent or cpi",
        (row["R-B-LAG"], "CPI 滞后（月）/lag_months"): "only a CPI-linked rent has it",
        (row["R-B-EVERY"], "调整周期（月）/every_months"): "expected a whole number 1–60",
    }
    for (line, column), words in expected.items():
        message = named.get((LEASES_SHEET, line, column), "")
        assert words in message, f"{line} {column}: {words!r} not in {message!r}\n{named}"
    # the stepped lease's first step row is named too
    assert any(
        sheet == STEPS_SHEET and column == "租约编号/lease" and "rises by percent" in message
        for (sheet, _line, column), message in named.items()
    ), named
    assert len(issues) == len(expected) + 1, named
    assert (count(rig, Lease), count(rig, AuditEntry)) == before
    # the CSV: a stepped rent that rises names both cells
    columns = [c.key for c in CSV_COLUMNS]
    row_csv = {
        "id": "R-B-CSV",
        "tenant": "T-ZHANG",
        "unit": "park-a-R0020",
        "manager": MANAGER,
        "start_on": "2026-01-01",
        "end_on": "2028-01-01",
        "escalation": "cpi",
        "rise": "5%",
        "steps": "2026-01-01=4000; 2027-01-01=4200",
    }
    reply = upload(client, mgr, _csv([row_csv], columns), "bad.csv", dry_run=False)
    assert reply.status_code == 422, reply.text
    assert {i["column"] for i in reply.json()["issues"]} == {
        "涨租方式/escalation",
        "租金阶梯/steps",
    }
    assert (count(rig, Lease), count(rig, AuditEntry)) == before


def test_a_ledger_without_the_rise_columns_imports(rig, client, tmp_path) -> None:
    """A workbook or CSV made before the rise columns were added: a new lease's rent is
    fixed, and a stored lease's percent or CPI rise is kept (the file could not say it)."""
    _store_every_rent(rig)
    mgr = auth(client, rig, "mgr-r")
    path = tmp_path / "old.xlsx"
    path.write_bytes(
        client.get(f"/api/v1/ledger/export?site={SITE}&format=xlsx", headers=mgr).content
    )
    wb = load_workbook(path)
    leases = wb[LEASES_SHEET]
    for name in RISE_COLUMNS:
        header = [str(c.value).split("\n")[-1] for c in leases[1]]
        leases.delete_cols(header.index(name) + 1)
    last = leases.max_row + 1
    header = [str(c.value).split("\n")[-1] for c in leases[1]]
    assert not set(RISE_COLUMNS) & set(header)
    for key, value in {
        "Lease id": "R-OLD",
        "Tenant id": "T-ZHANG",
        "Unit id": "park-a-R0029",
        "Manager id": MANAGER,
        "Start": date(2026, 1, 1),
        "End": date(2027, 1, 1),
        "Monthly rent (CNY)": 2500,
    }.items():
        leases.cell(row=last, column=header.index(key) + 1, value=value)
    out = io.BytesIO()
    wb.save(out)
    stored = count(rig, Lease, Lease.unit_id.like("park-a-R%"))
    reply = upload(client, mgr, out.getvalue(), "old.xlsx", dry_run=False)
    assert reply.status_code == 200, reply.text
    assert reply.json()["created"] == ["R-OLD"] and reply.json()["updated"] == []
    assert reply.json()["unchanged"] == stored
    with rig.sessions() as s:
        assert schedule_of(s.get(Lease, "R-OLD"))[0] == FixedRent(monthly_cents=250_000)
        for lease_id, _unit, rent, _status in EVERY_RENT:
            if lease_id != "R-PERCENT-DRAFT":  # its due days changed above, not its rent
                assert schedule_of(s.get(Lease, lease_id))[0] == rent, lease_id
        assert schedule_of(s.get(Lease, "R-PERCENT-DRAFT"))[0] == EVERY_RENT[4][2]
    # the CSV of before: the required columns only
    old_csv = [
        {
            "id": "R-OLD2",
            "tenant": "T-ZHANG",
            "unit": "park-a-R0028",
            "manager": MANAGER,
            "start_on": "2026-01-01",
            "end_on": "2027-01-01",
            "rent": "2600",
        }
    ]
    columns = [c.key for c in LEASE_COLUMNS if not c.optional]
    reply = upload(client, mgr, _csv(old_csv, columns), "old.csv", dry_run=False)
    assert reply.status_code == 200 and reply.json()["created"] == ["R-OLD2"], reply.text
    with rig.sessions() as s:
        assert schedule_of(s.get(Lease, "R-OLD2"))[0] == FixedRent(monthly_cents=260_000)
