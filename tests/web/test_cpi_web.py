"""The CPI API (decision 0042): admin and finance read the series and the leases waiting for
a month (their sites only) and publish a month or a CSV; managers, legal and engineers are
refused (403). A refusal is 422 with every problem named and nothing stored; a file above
the bound is 413; every change is audited with the API as its origin."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import httpx
import pytest
from sqlalchemy import select

from cloud.leases.cpi_file import MAX_BYTES
from cloud.leases.models import Lease
from cloud.staff.models import AuditEntry
from tests.support.browser import WebRig, serve
from tests.support.cpi_samples import (
    CPI_LEASE,
    CPI_TENANT,
    cpi_months_stored,
    cpi_rig,
)
from tests.support.ledger_web import auth


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = cpi_rig(tmp_path_factory.mktemp("cpi-api"))
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def client(rig: WebRig) -> Iterator[httpx.Client]:
    with serve(rig.app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


def stored(rig: WebRig) -> int:
    return cpi_months_stored(rig.sessions)


def csv_file(text: str) -> dict:
    return {"file": ("cpi.csv", text.encode(), "text/csv")}


@pytest.mark.parametrize("who", ["mgr-a", "legal-a", "eng-a"])
def test_roles_that_do_not_keep_the_cpi_are_refused(rig, client, who: str) -> None:
    headers = auth(client, rig, who)
    assert client.get("/api/v1/cpi", headers=headers).status_code == 403
    put = client.put(
        "/api/v1/cpi/2025-12", json={"basis": "yoy", "value": "100.4"}, headers=headers
    )
    assert put.status_code == 403
    reply = client.post(
        "/api/v1/cpi/import",
        files=csv_file("month,basis,value\n2025-12,yoy,100.4\n"),
        headers=headers,
    )
    assert reply.status_code == 403 and stored(rig) == 0


def test_finance_sees_the_waiting_lease_of_its_sites_and_publishes_the_month(rig, client):
    fin_a, fin_b = auth(client, rig, "fin-a"), auth(client, rig, "fin-b")
    body = client.get("/api/v1/cpi", headers=fin_a).json()
    waiting = {w["lease_id"]: w for w in body["waiting"]}
    assert waiting[CPI_LEASE]["tenant_name"] == CPI_TENANT
    assert (waiting[CPI_LEASE]["months"], waiting[CPI_LEASE]["since"]) == (
        ["2025-12"],
        "2026-01-01",
    )
    assert client.get("/api/v1/cpi", headers=fin_b).json()["waiting"] == []  # park-b only
    # refusals: 422 naming the problem, 413 above the bound, nothing stored
    bad = client.put("/api/v1/cpi/2025-12", json={"basis": "yoy", "value": "300"}, headers=fin_a)
    assert bad.status_code == 422 and "within 50–200" in bad.json()["detail"]
    assert (
        client.put(
            "/api/v1/cpi/2025-13", json={"basis": "yoy", "value": "100"}, headers=fin_a
        ).status_code
        == 422
    )
    assert (
        client.put(
            "/api/v1/cpi/2025-12", json={"basis": "mom", "value": "100"}, headers=fin_a
        ).status_code
        == 400
    )
    rows = "month,basis,value\n2025-11,yoy,100.7\n2025-12,yoy,1e2\n2025-11,level,600\n"
    reply = client.post("/api/v1/cpi/import", files=csv_file(rows), headers=fin_a)
    assert reply.status_code == 422
    problems = reply.json()["problems"]
    assert any(p.startswith("row 3, column value") for p in problems), problems
    assert any("row 4, column month: 2025-11 is given twice" in p for p in problems), problems
    big = "month,basis,value\n" + "x" * MAX_BYTES
    assert client.post("/api/v1/cpi/import", files=csv_file(big), headers=fin_a).status_code == 413
    assert stored(rig) == 0
    # a dry run stores nothing; the upload stores both months and re-plans the lease
    good = "month,basis,value\n2025-11,yoy,100.7\n2025-12,yoy,102.37\n"
    dry = client.post(
        "/api/v1/cpi/import", files=csv_file(good), data={"dry_run": "true"}, headers=fin_a
    )
    assert dry.status_code == 200 and dry.json()["new"] == 2 and stored(rig) == 0
    done = client.post("/api/v1/cpi/import", files=csv_file(good), headers=fin_a)
    assert done.status_code == 200 and done.json()["new"] == 2, done.text
    # its rent is known now until the next adjustment, which waits for December 2026
    waits = {w["lease_id"]: w for w in client.get("/api/v1/cpi", headers=fin_a).json()["waiting"]}
    assert (waits[CPI_LEASE]["since"], waits[CPI_LEASE]["months"]) == ("2027-01-01", ["2026-12"])
    with rig.sessions() as s:
        assert s.get(Lease, CPI_LEASE).plan_known_until == date(2027, 1, 1)
    # a changed month: only as a correction with a note
    again = client.put(
        "/api/v1/cpi/2025-12", json={"basis": "yoy", "value": "102.5"}, headers=fin_a
    )
    assert again.status_code == 422 and "correction" in again.json()["detail"] + str(
        again.json()["problems"]
    )
    fixed = client.put(
        "/api/v1/cpi/2025-12",
        json={"basis": "yoy", "value": "102.5", "correct": True, "note": "NBS revised"},
        headers=fin_a,
    )
    assert fixed.status_code == 200 and fixed.json()["corrected"] == 1
    assert fixed.json()["months"][0]["before"] == {
        "month": "2025-12",
        "basis": "yoy",
        "value": "102.3700",
    }
    with rig.sessions() as s:
        entry = s.scalars(
            select(AuditEntry)
            .where(AuditEntry.subject == "cpi:2025-12")
            .order_by(AuditEntry.id.desc())
        ).first()
        assert entry.actor == "fin-a" and entry.action == "cpi_correct"
        assert '"from": "api 127.0.0.1"' in entry.detail and "NBS revised" in entry.detail
    series = client.get("/api/v1/cpi", headers=auth(client, rig, "admin")).json()["series"]
    assert [r["month"] for r in series] == ["2025-12", "2025-11"]


def test_the_cpi_routes_are_in_openapi(client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"get"} <= paths["/api/v1/cpi"].keys()
    assert {"put"} <= paths["/api/v1/cpi/{month}"].keys()
    assert {"post"} <= paths["/api/v1/cpi/import"].keys()
