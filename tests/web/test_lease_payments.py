"""Payments entered by hand, through the API and the command line (issue #18): a payment is
allocated to the lease's oldest open invoice, the rest kept as credit; the same bank
reference again changes nothing, with another amount it is refused; a day in the future, an
amount of nothing or a lease outside the caller's buildings is refused with what was
expected; legal cannot take money; every payment is in the audit log with who entered it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from cloud.leases.models import CreditEntry, Invoice
from cloud.staff.models import AuditEntry
from tests.support.browser import PASSWORD, WebRig, make_rig, serve
from tests.support.lease_scope import seed_leases


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("payments"), months=1)
    seed_leases(rig.sessions, PASSWORD)
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def client(rig: WebRig) -> Iterator[httpx.Client]:
    with serve(rig.app) as url, httpx.Client(base_url=url) as client:
        yield client


def as_(client: httpx.Client, rig: WebRig, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {rig.token(client, who)}"}


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def invoices(rig: WebRig, lease: str) -> list[tuple[str, int, int]]:
    with rig.sessions() as s:
        rows = s.execute(
            select(Invoice.status, Invoice.total_cents, Invoice.paid_cents)
            .where(Invoice.lease_id == lease)
            .order_by(Invoice.due_on)
        ).all()
    return [tuple(r) for r in rows]


def test_a_payment_settles_the_open_invoice_and_the_rest_is_credit(rig, client) -> None:
    assert invoices(rig, "L-A1") == [("open", 1_000_000, 200_000)]  # owes 8,000.00
    body = {"amount_cny": "8100.50", "received_on": today(), "ref": "BANK-2026-0311-77"}
    reply = client.post(
        "/api/v1/leases/L-A1/payments", json=body, headers=as_(client, rig, "mgr-a")
    )
    assert reply.status_code == 201, reply.text
    receipt = reply.json()
    assert receipt["account"] == "L-A1" and not receipt["duplicate"]
    assert [a["cents"] for a in receipt["allocations"]] == [800_000]
    assert receipt["credit_cents"] == 10_050
    assert invoices(rig, "L-A1") == [("paid", 1_000_000, 1_000_000)]
    with rig.sessions() as s:
        credit = s.scalars(select(CreditEntry.cents).where(CreditEntry.lease_id == "L-A1")).all()
        audit = s.scalars(select(AuditEntry).where(AuditEntry.action == "payment")).all()
    assert 10_050 in credit
    assert any(
        a.actor == "mgr-a" and a.subject == "lease:L-A1" and "8100.50" in a.detail for a in audit
    )
    # the lease's history says who, from where, and what the payment did
    history = client.get("/api/v1/leases/L-A1/history", headers=as_(client, rig, "fin-a"))
    assert history.status_code == 200, history.text
    paid = [e for e in history.json() if e["action"] == "payment"]
    assert paid[0]["actor"] == "mgr-a" and paid[0]["origin"] == "api 127.0.0.1"
    assert {c["field"]: c["after"] for c in paid[0]["changes"]}["amount"] == "8100.50"
    assert {c["field"]: c["after"] for c in paid[0]["changes"]}["credit"] == "100.50"
    # the lease now shows no arrears to finance
    lease = client.get("/api/v1/leases/L-A1", headers=as_(client, rig, "fin-a")).json()["lease"]
    assert lease["arrears_cents"] == 0
    # the same payment sent again: its receipt, nothing more
    again = client.post(
        "/api/v1/leases/L-A1/payments", json=body, headers=as_(client, rig, "fin-a")
    )
    assert again.status_code == 201 and again.json()["duplicate"] is True
    assert invoices(rig, "L-A1") == [("paid", 1_000_000, 1_000_000)]
    # the same reference with another amount: refused
    clash = client.post(
        "/api/v1/leases/L-A1/payments",
        json={**body, "amount_cny": "9.99"},
        headers=as_(client, rig, "fin-a"),
    )
    assert clash.status_code == 409 and "is recorded as" in clash.json()["detail"]


@pytest.mark.parametrize(
    ("who", "body", "status", "says"),
    [
        ("mgr-ab", {"amount_cny": "10.00", "received_on": None, "ref": "R1"}, 404, "no lease"),
        ("legal-a", {"amount_cny": "10.00", "received_on": None, "ref": "R2"}, 403, ""),
        ("fin-a", {"amount_cny": "10.00", "received_on": "future", "ref": "R3"}, 422, "to today"),
        ("fin-a", {"amount_cny": "0.00", "received_on": None, "ref": "R4"}, 422, "more than 0"),
        ("fin-a", {"amount_cny": "1e3", "received_on": None, "ref": "R5"}, 400, "amount_cny"),
        ("fin-a", {"amount_cny": "10.001", "received_on": None, "ref": "R6"}, 400, "amount_cny"),
    ],
)
def test_payments_refused_say_why_and_change_nothing(rig, client, who, body, status, says):
    day = datetime.now(UTC).date()
    body = {
        **body,
        "received_on": (day + timedelta(days=2)).isoformat()
        if body["received_on"] == "future"
        else day.isoformat(),
    }
    before = invoices(rig, "L-A2"), invoices(rig, "L-B1")
    lease = "L-B1" if who != "mgr-ab" else "L-A2"  # mgr-ab manages building B only
    reply = client.post(
        f"/api/v1/leases/{lease}/payments", json=body, headers=as_(client, rig, who)
    )
    assert reply.status_code == status, reply.text
    assert says in reply.text
    assert (invoices(rig, "L-A2"), invoices(rig, "L-B1")) == before


def test_the_command_line_records_a_payment(rig, tmp_path) -> None:
    url = str(rig.sessions.kw["bind"].url)
    env = {**os.environ, "MF_DB_URL": url, "MF_DATA_DIR": str(tmp_path)}

    def payment(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "meterflow", "cloud", "payment", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert invoices(rig, "L-P1") == [("open", 1_000_000, 0)]
    done = payment(
        "--lease", "L-P1", "--amount", "10000", "--date", today(), "--ref", "CLI-1", "--as", "admin"
    )
    assert done.returncode == 0, done.stderr
    receipt = json.loads(done.stdout)
    assert receipt["credit_cents"] == 0 and receipt["allocations"][0]["cents"] == 1_000_000
    assert invoices(rig, "L-P1") == [("paid", 1_000_000, 1_000_000)]
    entry = rig.web.leases.history(rig.web.accounts.acting("admin"), "L-P1")[0]
    assert (entry.actor, entry.origin, entry.action) == ("admin", "cli", "payment")
    bad = payment("--lease", "L-P1", "--amount", "12,000", "--date", today(), "--ref", "CLI-2")
    assert bad.returncode == 2 and "--amount '12,000': expected yuan" in bad.stderr
    out = payment(
        "--lease", "L-P1", "--amount", "1", "--date", today(), "--ref", "X", "--as", "mgr-ab"
    )
    assert out.returncode == 2 and "no lease 'L-P1'" in out.stderr and "Traceback" not in out.stderr
