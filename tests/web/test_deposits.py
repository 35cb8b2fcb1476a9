"""Deposit refunds (退押金) through the API (decision 0041): a lease terminated, its manager
requests the refund, adds a deduction with a PNG photo, inspects and settles (refund =
deposit − deduction, to the cent); the manager may not approve, nor may the supervisor who
settled another refund (four eyes); a supervisor approves and finance pays with the bank
transfer's number. The lease's history shows each step; the tenant's notices are queued in
the tenant's language (SQLite and PostgreSQL). Refused: a lease not terminated, a second
request, a deduction without a file or with a file that is not JPEG/PNG/PDF (HTML named
.png) or over 10 MB (413), a step out of order, a manager of another building (404), legal
and engineers (403).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import select, update

from cloud.leases.evidence import MAX_BYTES
from cloud.leases.jobs import run_daily
from cloud.leases.models import Tenant
from cloud.notify.outbox import NotificationRow
from cloud.staff.accounts import AccountService, Role, SessionKind
from tests.support import servers
from tests.support.browser import PASSWORD, WebRig, make_rig, serve
from tests.support.lease_scope import seed_leases

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))


def _seeded(rig: WebRig) -> WebRig:
    seed_leases(rig.sessions, PASSWORD)
    with rig.sessions.begin() as s:  # L-A2's tenant reads English
        s.execute(update(Tenant).where(Tenant.id == "T-LI").values(language="en"))
    return rig


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def rig(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[WebRig]:
    """The leases of tests/support/lease_scope.py on SQLite, then on PostgreSQL."""
    work = tmp_path_factory.mktemp(f"deposits-{request.param}")
    if request.param == "sqlite":
        rig = _seeded(make_rig(work, months=1))
        yield rig
        rig.sessions.kw["bind"].dispose()
        return
    server = request.getfixturevalue("postgres_server")
    with servers.fresh_postgres_database(server, "deposits") as url:
        rig = _seeded(make_rig(work, url=url, months=1))
        yield rig
        rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def client(rig: WebRig) -> Iterator[httpx.Client]:
    with serve(rig.app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


def as_(client: httpx.Client, rig: WebRig, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {rig.token(client, who)}"}


def deduct(client: httpx.Client, auth: dict, refund: int, files: list, yuan: str = "300.00"):
    return client.post(
        f"/api/v1/deposits/{refund}/deductions",
        headers=auth,
        data={"amount_cny": yuan, "reason": "墙面污损 repaint"},
        files=[("evidence", f) for f in files],
    )


def test_a_deposit_is_refunded_step_by_step_by_the_right_people(rig, client) -> None:
    admin, mgr = as_(client, rig, "admin"), as_(client, rig, "mgr-a")
    sup, fin = as_(client, rig, "sup-a"), as_(client, rig, "fin-a")
    for lease in ("L-A2", "L-B1"):
        done = client.post(
            f"/api/v1/leases/{lease}/terminate", headers=admin, json={"reason": "moved out"}
        )
        assert done.status_code == 200, done.text
    # refused: a lease still running
    active = client.post("/api/v1/leases/L-A1/deposit-refund", headers=mgr)
    assert active.status_code == 409 and "a deposit is refunded after termination" in active.text
    made = client.post("/api/v1/leases/L-A2/deposit-refund", headers=mgr)
    assert made.status_code == 201, made.text
    refund = made.json()
    rid, deposit = refund["id"], refund["deposit_cents"]
    assert (refund["state"], refund["waiting_for"], refund["tenant_name"]) == (
        "requested",
        "inspection",
        "李娜",
    )
    assert deposit == 1_000_000 and refund["sla"] in ("green", "amber")
    again = client.post("/api/v1/leases/L-A2/deposit-refund", headers=mgr)
    assert again.status_code == 409 and "requested already" in again.text

    # deductions: a file is needed, it must be JPEG/PNG/PDF by its bytes, at most 10 MB
    none = deduct(client, mgr, rid, [])
    assert none.status_code == 422 and "needs at least one file" in none.text
    html = deduct(client, mgr, rid, [("wall.png", b"<html><script>x</script></html>", "image/png")])
    assert html.status_code == 422 and "expected a JPEG, PNG or PDF" in html.text
    big = deduct(client, mgr, rid, [("big.png", PNG + b"\x00" * MAX_BYTES, "image/png")])
    assert big.status_code == 413 and "expected at most 10000000" in big.text
    bad_yuan = deduct(client, mgr, rid, [("wall.png", PNG, "image/png")], yuan="3,00")
    assert bad_yuan.status_code == 422 and "expected yuan like 300.00" in bad_yuan.text
    added = deduct(client, mgr, rid, [("wall.png", PNG, "image/png")])
    assert added.status_code == 201, added.text
    [d] = added.json()["deductions"]
    assert d["cents"] == 30_000 and d["files"][0]["content_type"] == "image/png"
    sha = d["files"][0]["sha256"]
    assert d["evidence_uri"] == f"evidence:sha256:{sha}"

    # out of order, then in order
    early = client.post(f"/api/v1/deposits/{rid}/settle", headers=mgr)
    assert early.status_code == 409 and "only a inspected refund can become settled" in early.text
    assert client.post(f"/api/v1/deposits/{rid}/inspect", headers=mgr).status_code == 200
    settled = client.post(f"/api/v1/deposits/{rid}/settle", headers=mgr)
    assert settled.status_code == 200, settled.text
    assert settled.json()["refund_cents"] == deposit - 30_000 == 970_000
    assert settled.json()["shortfall_cents"] == 0
    # the manager does not approve (and settled it); a supervisor does; finance pays
    own = client.post(f"/api/v1/deposits/{rid}/approve", headers=mgr)
    assert own.status_code == 403
    unpaid = client.post(f"/api/v1/deposits/{rid}/pay", headers=fin, json={"reference": "X"})
    assert unpaid.status_code == 409 and "only a approved refund can become paid" in unpaid.text
    assert client.post(f"/api/v1/deposits/{rid}/approve", headers=sup).status_code == 200
    long_ref = client.post(f"/api/v1/deposits/{rid}/pay", headers=fin, json={"reference": "9" * 65})
    assert long_ref.status_code == 400  # the body's bound (64 characters)
    paid = client.post(
        f"/api/v1/deposits/{rid}/pay", headers=fin, json={"reference": "BOC-20261207-0001"}
    )
    assert paid.status_code == 200, paid.text
    assert (paid.json()["state"], paid.json()["payment_ref"]) == ("paid", "BOC-20261207-0001")
    assert [s["state"] for s in paid.json()["steps"]] == [
        "requested",
        "inspected",
        "settled",
        "approved",
        "paid",
    ]
    assert [s["by"] for s in paid.json()["steps"]] == ["mgr-a", "mgr-a", "mgr-a", "sup-a", "fin-a"]

    # the lease's history shows each step, who and from where
    history = client.get("/api/v1/leases/L-A2/history", headers=sup).json()
    actions = [(e["action"], e["actor"]) for e in history]
    for step, by in (
        ("deposit_request", "mgr-a"),
        ("deposit_deduction", "mgr-a"),
        ("deposit_inspect", "mgr-a"),
        ("deposit_settle", "mgr-a"),
        ("deposit_approve", "sup-a"),
        ("deposit_pay", "fin-a"),
    ):
        assert (step, by) in actions, (step, actions)

    # the evidence comes back as stored, as an attachment, to those who see the refund
    got = client.get(f"/api/v1/deposits/{rid}/evidence/{sha}", headers=fin)
    assert got.status_code == 200 and got.content == PNG
    assert got.headers["content-type"] == "image/png"
    assert got.headers["content-disposition"].startswith("attachment;")
    assert got.headers["x-content-type-options"] == "nosniff"
    other = as_(client, rig, "mgr-ab")
    assert client.get(f"/api/v1/deposits/{rid}/evidence/{sha}", headers=other).status_code == 404
    assert client.get(f"/api/v1/deposits/{rid}", headers=other).status_code == 404
    paid_list = client.get("/api/v1/deposits?state=paid", headers=sup).json()["refunds"]
    assert [r["id"] for r in paid_list] == [rid]

    # four eyes: the supervisor who settled L-B1's refund does not approve it
    b1 = client.post("/api/v1/leases/L-B1/deposit-refund", headers=sup).json()["id"]
    assert client.post(f"/api/v1/deposits/{b1}/inspect", headers=sup).status_code == 200
    assert client.post(f"/api/v1/deposits/{b1}/settle", headers=sup).status_code == 200
    mine = client.post(f"/api/v1/deposits/{b1}/approve", headers=sup)
    assert mine.status_code == 403 and "settled by you" in mine.text
    # building A's manager does not see building B's refund; legal and engineers see none
    assert client.get(f"/api/v1/deposits/{b1}", headers=mgr).status_code == 404
    assert client.post(f"/api/v1/deposits/{b1}/approve", headers=mgr).status_code == 403
    assert b1 not in {
        r["id"] for r in client.get("/api/v1/deposits", headers=mgr).json()["refunds"]
    }
    for who in ("legal-a", "eng-a"):
        assert client.get("/api/v1/deposits", headers=as_(client, rig, who)).status_code == 403

    # the tenants' notices, each in the tenant's language
    with rig.sessions() as s:
        sent = {n.key: n for n in s.scalars(select(NotificationRow))}
    settled_en = sent[f"deposit-settled:{rid}"]
    assert settled_en.subject == "Deposit settled: lease L-A2"
    assert "repaint 300.00 CNY" in settled_en.body and "9700.00 CNY will be refunded" in (
        settled_en.body
    )
    assert settled_en.recipient == "T-LI@tenants.test"
    paid_en = sent[f"deposit-paid:{rid}"]
    assert "9700.00 CNY" in paid_en.body and "BOC-20261207-0001" in paid_en.body
    settled_zh = sent[f"deposit-settled:{b1}"]
    assert settled_zh.subject == "押金结算：租约 L-B1" and "扣款：无" in settled_zh.body


def test_a_refund_past_its_sla_is_a_task_that_links_to_it(rig, client) -> None:
    """The daily run days later flags the refund waiting for approval (L-B1's, settled in
    the test above); the supervisor's task names the refund its page acts on."""
    sup = as_(client, rig, "sup-a")
    waiting = client.get("/api/v1/deposits?state=settled", headers=sup).json()["refunds"]
    [refund] = [r for r in waiting if r["lease_id"] == "L-B1"]
    run_daily(rig.sessions, date.today() + timedelta(days=3), channels={})
    AccountService(rig.sessions).create_account("boss", PASSWORD, Role.SUPERVISOR, ["park-a"])
    items = client.get("/api/v1/queue", headers=as_(client, rig, "boss")).json()["items"]
    tasks = [i for i in items if i["kind"] == "task" and i["refund_id"] == refund["id"]]
    assert len(tasks) == 1 and "deposit refund" in tasks[0]["note"]
    cookie = {"Cookie": f"mf_session={_cookie(rig, 'boss')}"}
    page = client.get("/queue", headers=cookie)
    assert f'href="/deposits/{refund["id"]}?lang=zh-CN"' in page.text
    assert client.get(f"/deposits/{refund['id']}", headers=cookie).status_code == 200


def _cookie(rig: WebRig, who: str) -> str:
    return rig.web.accounts.sign_in(who, PASSWORD, SessionKind.COOKIE).token
