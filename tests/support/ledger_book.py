"""A generated lease ledger (台账) for tests and simulations: :func:`seed_ledger_site` registers
a site's units (the site import's part) and the managers, :func:`write_ledger` writes the
ledger template filled with ``leases`` leases of those units — fixed and stepped rents, free
rent, deposits in months and in yuan, payment cycles, child contracts (parking of a flat's
tenant), in draft, signed and active — as the workbook (.xlsx) or the one-file CSV.

The file is valid for the site as seeded: importing it stores every lease. Deterministic:
the same arguments give the same file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from cloud.apportion.models import Unit
from cloud.leases import reference
from cloud.leases.ledger_sheets import LeaseRec, TenantRec, UnitRec
from cloud.leases.ledger_write import write_ledger_csv, write_ledger_workbook
from cloud.leases.models import Staff
from cloud.leases.periods import add_months
from cloud.registry.models import Site

MANAGER = "mgr-ledger"


@dataclass(frozen=True)
class LedgerBook:
    """What :func:`write_ledger` wrote."""

    path: Path
    tenants: list[TenantRec]
    units: list[UnitRec]
    leases: list[LeaseRec]


def unit_ids(site: str, count: int, building: str = "L") -> list[str]:
    """The ids of the generated units of ``site`` (flats, every fifth a parking space)."""
    return [f"{site}-{building}{n:04d}" for n in range(1, count + 1)]


def seed_ledger_site(
    sessions: sessionmaker[Session],
    site: str,
    units: int = 250,
    *,
    building: str = "L",
    manager: str = MANAGER,
) -> list[str]:
    """Register ``site`` (when new), ``units`` units in ``building`` and the manager staff
    record; the unit ids."""
    ids = unit_ids(site, units, building)
    with sessions.begin() as s:
        if s.get(Site, site) is None:
            s.add(Site(id=site, name=site))
            s.flush()
        for n, unit in enumerate(ids, start=1):
            if s.get(Unit, unit) is None:
                area = Decimal(12) if n % 5 == 0 else Decimal(60 + n % 40)
                s.add(
                    Unit(
                        id=unit,
                        site_id=site,
                        area_m2=area,
                        building=building,
                        floor=str(n % 30 + 1),
                    )
                )
        if s.get(Staff, manager) is None:
            reference.add_staff(s, manager, "台账管家", address=f"{manager}@staff.test")
    return ids


def ledger_records(
    site: str,
    leases: int = 200,
    *,
    building: str = "L",
    manager: str = MANAGER,
    start: date = date(2026, 1, 1),
) -> tuple[list[TenantRec], list[UnitRec], list[LeaseRec]]:
    """The tenants, unit profiles and leases of the generated ledger (``leases`` leases of
    the units :func:`unit_ids` names; it needs ``leases * 6 // 5 + 1`` units)."""
    ids = unit_ids(site, leases * 6 // 5 + 1, building)
    flats = [u for n, u in enumerate(ids, start=1) if n % 5]
    parking = [u for n, u in enumerate(ids, start=1) if n % 5 == 0]
    tenants: list[TenantRec] = []
    units: list[UnitRec] = []
    out: list[LeaseRec] = []
    for n in range(leases):
        child = n % 10 == 9 and parking
        unit = parking.pop(0) if child else flats.pop(0)
        parent = out[-1] if child else None
        tenant = parent.tenant if parent else f"{site}-{building}-T{n:04d}"
        if parent is None:
            tenants.append(
                TenantRec(tenant, f"租户{n:04d}", "email", f"t{n:04d}@tenants.test", None)
            )
        rent = 30_000 if child else 300_000 + 5_000 * (n % 9)
        units.append(
            UnitRec(
                unit,
                "车位" if child else "两室一厅",
                "parking" if child else "residential",
                True,
                rent,
            )
        )
        begin = add_months(start, n % 6)
        end = add_months(begin, 12 if n % 4 else 24)
        stepped = n % 5 == 1 and not child
        status = (
            ("active", "active", "active", "signed", "draft")[n % 5] if not child else parent.status
        )
        out.append(
            LeaseRec(
                id=f"{site}-{building}-L{n:04d}",
                tenant=tenant,
                unit=unit,
                manager=manager,
                kind="standard",
                start_on=begin,
                end_on=end,
                rent_cents=None if stepped else rent,
                steps=((begin, rent), (add_months(begin, 12), rent + 10_000)) if stepped else (),
                free_months=1 if n % 7 == 3 else 0,
                free_days=15 if n % 11 == 4 else 0,
                free_anchor="handover" if n % 7 == 3 and n % 2 else "start",
                deposit_months=None if n % 3 == 2 else Decimal(2),
                deposit_cents=rent if n % 3 == 2 else None,
                cycle=3 if n % 4 == 1 else 1,
                due_days=10,
                parent=parent.id if parent else None,
                signed_on=None if status == "draft" else add_months(begin, -1),
                handover_on=begin if status == "active" else None,
                status=status,
            )
        )
    return tenants, units, out


def write_ledger(
    path: Path,
    site: str,
    leases: int = 200,
    *,
    building: str = "L",
    manager: str = MANAGER,
    start: date = date(2026, 1, 1),
    extra: Sequence[LeaseRec] = (),
) -> LedgerBook:
    """Write the generated ledger of ``site`` to ``path`` (.xlsx: the template filled in;
    .csv: the one-file form) with ``leases`` leases (and ``extra`` rows at the end)."""
    tenants, units, records = ledger_records(
        site, leases, building=building, manager=manager, start=start
    )
    records = [*records, *extra]
    if path.suffix.lower() == ".csv":
        path.write_bytes(write_ledger_csv(tenants, records))
    else:
        path.write_bytes(write_ledger_workbook(tenants, units, records))
    return LedgerBook(path, tenants, units, records)
