"""The work queue and renewal offers through the command line and the API (issue #18,
decision 0034): a web account linked to its staff record sees that person's reminders and
tasks in its buildings only; acknowledging the reminders stops their escalation (the daily
run before and after); the supervisor sees the escalations of the others and the overdue
items of the whole site; an offer outside its band waits for a supervisor, cannot be signed
before, is not approved by its maker; states move to_renew → invited → negotiating → signed
and signing renews the lease; every offer change is audited; the funnel's counts are the
database's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text

from cloud.leases.models import Lease, RenewalReminder
from cloud.staff.models import AuditEntry
from tests.support.browser import PASSWORD, WebRig, make_rig, serve
from tests.support.lease_scope import seed_leases

#: the 90-day reminders of the leases ending on 2027-01-01 go out on this day
REMIND_ON = "2026-10-03"
#: seven days later unacknowledged reminders escalate (acknowledge_within_days)
ESCALATE_ON = "2026-10-10"


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("queue"), months=1)
    seed_leases(rig.sessions, PASSWORD)
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def client(rig: WebRig) -> Iterator[httpx.Client]:
    with serve(rig.app) as url, httpx.Client(base_url=url) as client:
        yield client


@pytest.fixture(scope="module")
def cli(rig: WebRig, tmp_path_factory: pytest.TempPathFactory):
    env = {
        **os.environ,
        "MF_DB_URL": str(rig.sessions.kw["bind"].url),
        "MF_DATA_DIR": str(tmp_path_factory.mktemp("queue-cli")),
        "MF_WEB_ACCOUNT_PASSWORD": PASSWORD,
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "meterflow", "cloud", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=Path(__file__).resolve().parents[2],
        )

    return run


def as_(client: httpx.Client, rig: WebRig, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {rig.token(client, who)}"}


def escalated(rig: WebRig) -> set[str]:
    with rig.sessions() as s:
        return set(
            s.scalars(select(RenewalReminder.lease_id).where(RenewalReminder.kind == "escalation"))
        )


def ids(items: list[dict]) -> set[str]:
    return {i["id"] for i in items}


def test_acknowledged_reminders_do_not_escalate_and_the_queue_keeps_to_its_buildings(
    rig, client, cli
) -> None:
    # the manager's account is linked to their staff record (m-a manages all four leases)
    linked = cli(
        "web-account", "mgr-a", "--role", "manager", "--building", "park-a/A", "--staff", "m-a"
    )
    assert linked.returncode == 0, linked.stderr
    wrong = cli(
        "web-account", "mgr-a", "--role", "manager", "--building", "park-a/A", "--staff", "x"
    )
    assert wrong.returncode == 2 and "staff id 'x': no such staff record" in wrong.stderr
    assert cli("web-account", "sup-a", "--role", "supervisor", "--site", "park-a", "--staff",
               "boss").returncode == 0  # fmt: skip
    accounts = client.get("/api/v1/accounts", headers=as_(client, rig, "admin")).json()
    assert {a["username"]: a["staff_id"] for a in accounts}["mgr-a"] == "m-a"

    daily = cli("daily", "--date", REMIND_ON)
    assert daily.returncode == 0, daily.stderr
    listed = cli("queue", "--as", "mgr-a", "--json", "--date", REMIND_ON)
    assert listed.returncode == 0, listed.stderr
    items = json.loads(listed.stdout)
    reminders = {i["id"] for i in items if i["kind"] == "reminder"}
    # m-a got the reminders of all four leases; the account sees those of building A only
    assert reminders == {"reminder:L-A1:90", "reminder:L-A2:90"}
    one = next(i for i in items if i["id"] == "reminder:L-A1:90")
    assert (one["due_on"], one["sla"], one["action"]) == ("2026-10-10", "green", "ack")
    assert (one["unit_name"], one["tenant_name"]) == ("PA-A101", "张伟")
    with rig.sessions() as s:  # L-B1 and L-P1 were reminded too, to the same person
        sent = set(
            s.scalars(select(RenewalReminder.lease_id).where(RenewalReminder.kind == "reminder"))
        )
    assert sent == {"L-A1", "L-A2", "L-B1", "L-P1"}

    # before: nothing escalated; the manager acknowledges everything due in the queue
    assert escalated(rig) == set()
    acked = cli("queue", "ack-reminders", "--due", "--as", "mgr-a")
    assert acked.returncode == 0, acked.stderr
    assert sorted(json.loads(acked.stdout)["leases"]) == ["L-A1", "L-A2"]
    after = cli("daily", "--date", ESCALATE_ON)
    assert after.returncode == 0, after.stderr
    # after: only the reminders nobody acknowledged went up to the supervisor
    assert escalated(rig) == {"L-B1", "L-P1"}

    # the supervisor's queue: the escalation of their site's lease, not park-b's
    sup = client.get("/api/v1/queue", headers=as_(client, rig, "sup-a")).json()["items"]
    assert {i["id"] for i in sup if i["kind"] == "escalation"} == {"escalation:L-B1:90"}
    # everybody's overdue items in park-a: L-B1's reminder (m-a's) is red there
    overdue = client.get("/api/v1/queue/overdue", headers=as_(client, rig, "sup-a")).json()
    assert "reminder:L-B1:90" in ids(overdue["items"])
    assert all(i["sla"] == "red" and i["site_id"] == "park-a" for i in overdue["items"])
    assert client.get("/api/v1/queue/overdue", headers=as_(client, rig, "mgr-a")).status_code == 403
    # the supervisor acknowledges the escalation: the reminder is acknowledged, by them
    ack = client.post("/api/v1/queue/escalation:L-B1:90/ack", headers=as_(client, rig, "sup-a"))
    assert ack.status_code == 200 and ack.json()["acknowledged"] == 1, ack.text
    with rig.sessions() as s:
        by = s.scalar(
            select(RenewalReminder.acknowledged_by).where(
                RenewalReminder.lease_id == "L-B1", RenewalReminder.kind == "reminder"
            )
        )
    assert by == "sup-a"
    again = client.post("/api/v1/queue/escalation:L-B1:90/ack", headers=as_(client, rig, "sup-a"))
    assert again.status_code == 409 and "handled already" in again.text
    # another building's item is not found for the manager of building A
    other = client.post("/api/v1/queue/reminder:L-B1:90/ack", headers=as_(client, rig, "mgr-a"))
    assert other.status_code == 404
    # a queue item id that is no item
    assert (
        client.post("/api/v1/queue/nothing/ack", headers=as_(client, rig, "mgr-a")).status_code
        == 404
    )


def test_tasks_are_done_with_one_call_and_legal_sees_its_cases(rig, client, cli) -> None:
    with rig.sessions.begin() as s:
        s.execute(
            text(
                "INSERT INTO lease_tasks (key, kind, lease_id, assignee_id, opened_on, due_on, "
                "note) VALUES ('t-1', 'call', 'L-A1', 'm-a', '2026-12-01', '2026-12-03', 'call'),"
                " ('t-2', 'legal_case', 'L-A1', 'boss', '2026-12-01', '2026-12-20', 'T+15'),"
                " ('t-3', 'legal_case', 'L-P1', 'boss', '2026-12-01', '2026-12-20', 'T+15')"
            )
        )
    mine = client.get("/api/v1/queue", headers=as_(client, rig, "mgr-a")).json()["items"]
    call = next(i for i in mine if i["kind"] == "task" and i["note"] == "call: call")
    assert (call["sla"], call["action"]) == ("red", "done")  # due 2026-12-03, today is later
    legal = client.get("/api/v1/queue", headers=as_(client, rig, "legal-a")).json()["items"]
    # park-a's cases only: the one entered here and the one the daily run's T+15 rung
    # (legal_handover, decision 0031) opened for L-A1's unpaid February invoice
    notes = {i["note"] for i in legal}
    assert "legal_case: T+15" in notes and all(n.startswith("legal_case: ") for n in notes)
    assert any("L-A1/2026-02" in n for n in notes)
    assert {i["lease_id"] for i in legal} == {"L-A1"}
    done = cli("queue", "done", call["id"], "--as", "mgr-a")
    assert done.returncode == 0, done.stderr
    mine = client.get("/api/v1/queue", headers=as_(client, rig, "mgr-a")).json()["items"]
    assert call["id"] not in ids(mine)
    twice = cli("queue", "done", call["id"], "--as", "mgr-a")
    assert twice.returncode == 2 and "handled already" in twice.stderr
    wrong = client.post(f"/api/v1/queue/{call['id']}/ack", headers=as_(client, rig, "mgr-a"))
    assert wrong.status_code == 409
    with rig.sessions() as s:
        audit = s.scalars(select(AuditEntry).where(AuditEntry.action == "task_done")).all()
    assert [(a.actor, a.subject) for a in audit] == [("mgr-a", "lease:L-A1")]
    assert "cli" in audit[0].detail


def _lease(rig: WebRig, lease_id: str) -> Lease:
    with rig.sessions() as s:
        return s.get(Lease, lease_id)


def test_an_offer_outside_its_band_waits_for_another_supervisor(rig, client, cli) -> None:
    mgr, sup = as_(client, rig, "mgr-a"), as_(client, rig, "sup-a")
    hint = client.get("/api/v1/leases/L-A2/offer-suggestion", headers=mgr).json()
    assert (hint["current_cents"], hint["band_low_cents"], hint["band_high_cents"]) == (
        500_000,
        515_000,
        525_000,
    )
    # the comparables: building A's office units, each 50 m² at 5,000.00 (100.00 per m²)
    assert {(c["lease_id"], c["unit_id"], c["per_m2_cents"]) for c in hint["comparables"]} == {
        ("L-A1", "PA-A101", "10000.00"),
        ("L-A2", "PA-A102", "10000.00"),
    }
    # inside the band: no approval needed
    made = client.post("/api/v1/leases/L-A2/offers", json={"rent_cny": "5200.00"}, headers=mgr)
    assert made.status_code == 201, made.text
    inside = made.json()
    assert (inside["status"], inside["approval"], inside["flagged"]) == ("to_renew", "none", False)
    assert (
        client.post(f"/api/v1/offers/{inside['id']}/lose", headers=mgr).json()["status"] == "lost"
    )
    # outside: pending; it cannot be invited or signed, and its maker cannot approve it
    high = cli("offer", "make", "L-A2", "--rent", "6000.00", "--as", "mgr-a")
    assert high.returncode == 0, high.stderr
    offer = json.loads(high.stdout)
    assert (offer["approval"], offer["flagged"]) == ("pending", True)
    assert "outside the band 5150.00 … 5250.00" in offer["flag_reason"]
    oid = offer["id"]
    for step in ("sign", "invite"):
        refused = client.post(f"/api/v1/offers/{oid}/{step}", headers=mgr)
        assert refused.status_code == 409 and "awaits a supervisor's approval" in refused.text
    assert _lease(rig, "L-A2").status == "expiring"  # not renewed
    assert client.post(f"/api/v1/offers/{oid}/approve", headers=mgr).status_code == 403
    # it is in the supervisor's queue to approve
    queue = client.get("/api/v1/queue", headers=sup).json()["items"]
    assert f"approval:{oid}" in ids(queue)
    # a supervisor's own out-of-band offer: not approved by its maker
    own = client.post("/api/v1/leases/L-B1/offers", json={"rent_cny": "9000"}, headers=sup).json()
    self_approval = client.post(f"/api/v1/offers/{own['id']}/approve", headers=sup)
    assert self_approval.status_code == 409 and "another supervisor" in self_approval.text
    assert f"approval:{own['id']}" not in ids(
        client.get("/api/v1/queue", headers=sup).json()["items"]
    )
    assert cli("offer", "approve", str(own["id"]), "--as", "sup-a").returncode == 2
    # approved by the supervisor, then along the states; signing renews the lease
    approved = cli("offer", "approve", str(oid), "--as", "sup-a")
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout)["decided_by"] == "sup-a"
    assert client.post(f"/api/v1/offers/{oid}/invite", headers=mgr).json()["status"] == "invited"
    assert client.post(f"/api/v1/offers/{oid}/negotiate", headers=mgr).json()["status"] == (
        "negotiating"
    )
    back = client.post(f"/api/v1/offers/{oid}/invite", headers=mgr)
    assert back.status_code == 409 and "can move to lost, signed" in back.text
    signed = cli("offer", "sign", str(oid), "--as", "mgr-a")
    assert signed.returncode == 0, signed.stderr
    successor = json.loads(signed.stdout)["successor_id"]
    assert successor and _lease(rig, "L-A2").status == "renewed"
    assert _lease(rig, successor).schedule["rent"]["monthly_cents"] == 600_000
    # another building's offer is not found; legal has no offers
    assert client.post(f"/api/v1/offers/{own['id']}/lose", headers=mgr).status_code == 404
    assert client.get("/api/v1/offers", headers=as_(client, rig, "legal-a")).status_code == 403
    # every change audited with who and from where
    with rig.sessions() as s:
        trail = s.execute(
            select(AuditEntry.action, AuditEntry.actor, AuditEntry.detail)
            .where(AuditEntry.subject == f"offer:{oid}")
            .order_by(AuditEntry.id)
        ).all()
    assert [(a, who) for a, who, _ in trail] == [
        ("offer_made", "mgr-a"),
        ("offer_approve", "sup-a"),
        ("offer_invite", "mgr-a"),
        ("offer_negotiate", "mgr-a"),
        ("offer_sign", "mgr-a"),
    ]
    assert json.loads(trail[1][2])["after"] == {"approval": "approved", "decided_by": "sup-a"}
    assert json.loads(trail[2][2])["from"].startswith("api ")
    assert json.loads(trail[4][2])["from"] == "cli"
    # bad input: a clear refusal, nothing stored
    for rent in ("12,000", "1e3", "0"):
        bad = cli("offer", "make", "L-A1", "--rent", rent)
        assert (
            bad.returncode == 2 and "expected yuan" in bad.stderr and "Traceback" not in bad.stderr
        )
    bad = client.post("/api/v1/leases/L-A1/offers", json={"rent_cny": "1.234"}, headers=mgr)
    assert bad.status_code == 400 and "rent_cny" in bad.text


def test_the_funnel_counts_are_the_databases(rig, client) -> None:
    admin = as_(client, rig, "admin")
    with rig.sessions() as s:
        sql = dict(
            s.execute(
                text(
                    "SELECT o.status, COUNT(*) FROM renewal_offers o JOIN leases l ON "
                    "l.id = o.lease_id JOIN units u ON u.id = l.unit_id WHERE u.site_id = "
                    "'park-a' AND o.made_on BETWEEN '2026-01-01' AND '2026-12-31' GROUP BY o.status"
                )
            ).all()
        )
    assert sql == {"lost": 1, "signed": 1, "to_renew": 1}
    funnel = client.get(
        "/api/v1/offers/funnel?site=park-a&from=2026-01-01&to=2026-12-31", headers=admin
    ).json()
    assert {k: v for k, v in funnel["counts"].items() if v} == sql
    assert funnel["total"] == sum(sql.values()) and funnel["pending_approval"] == 1
    # the manager of building A counts only their building's offers
    mgr = client.get(
        "/api/v1/offers/funnel?from=2026-01-01&to=2026-12-31", headers=as_(client, rig, "mgr-a")
    ).json()
    assert {k: v for k, v in mgr["counts"].items() if v} == {"lost": 1, "signed": 1}
    listed = client.get("/api/v1/offers?status=to_renew", headers=admin).json()
    assert [o["lease_id"] for o in listed] == ["L-B1"]
    wrong = client.get("/api/v1/offers/funnel?from=2026-12-31&to=2026-01-01", headers=admin)
    assert wrong.status_code == 400
