"""The ledger's (台账) web tests' rig and helpers: a served app with the lease portfolio,
three ledger buildings (L: 200-lease imports, M: another manager's, R: every kind of rent)
and their managers; uploads, counts, the command line, and workbook cell edits."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
from openpyxl import load_workbook
from sqlalchemy import func, select
from typer.testing import CliRunner

from cloud.leases.models import Lease
from cloud.staff.accounts import Role
from meterflow.cli import app as cli
from tests.support.browser import PASSWORD, WebRig, make_rig
from tests.support.lease_scope import seed_leases
from tests.support.ledger_book import seed_ledger_site

SITE = "park-a"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def ledger_rig(work: Path) -> WebRig:
    """The rig in ``work``: buildings L (200 units), M and R (30 each) of :data:`SITE`, with
    managers ``mgr-l``, ``mgr-m`` and ``mgr-r``."""
    rig = make_rig(work, months=1)
    seed_leases(rig.sessions, PASSWORD)
    seed_ledger_site(rig.sessions, SITE, building="L")
    seed_ledger_site(rig.sessions, SITE, 30, building="M")
    seed_ledger_site(rig.sessions, SITE, 30, building="R")
    for who, building in (("mgr-l", "L"), ("mgr-m", "M"), ("mgr-r", "R")):
        rig.web.accounts.create_account(
            who, PASSWORD, Role.MANAGER, [], buildings=[f"{SITE}/{building}"]
        )
    return rig


def auth(client: httpx.Client, rig: WebRig, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {rig.token(client, who)}"}


def upload(
    client: httpx.Client, headers: dict[str, str], data: bytes, name: str, dry_run: bool
) -> httpx.Response:
    kind = XLSX if name.endswith(".xlsx") else "text/csv"
    return client.post(
        f"/api/v1/ledger/import?dry_run={str(dry_run).lower()}",
        files={"file": (name, data, kind)},
        headers=headers,
    )


def count(rig: WebRig, model: type, *where: object) -> int:
    with rig.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def ledger_leases(rig: WebRig, prefix: str) -> int:
    return count(rig, Lease, Lease.id.like(f"{prefix}%"))


def cli_run(rig: WebRig, tmp: Path, *args: str) -> object:
    env = {"MF_DB_URL": str(rig.sessions.kw["bind"].url), "MF_DATA_DIR": str(tmp)}
    return CliRunner().invoke(cli, ["cloud", *args], env=env)


def edit_sheet(path: Path, sheet: str, edits: dict[tuple[int, str], object]) -> bytes:
    """The workbook at ``path`` with cells changed: (row, header's English) → value."""
    wb = load_workbook(path)
    ws = wb[sheet]
    columns = {str(c.value).split("\n")[-1]: c.column for c in ws[1]}
    for (row, header), value in edits.items():
        ws.cell(row=row, column=columns[header], value=value)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
