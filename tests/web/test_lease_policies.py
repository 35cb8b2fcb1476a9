"""Lease policies through the API and the pages (issue #18, decision 0031): a supervisor
creates policy sets of their site (from a preset or single fields), a lease's policy says
per field where each value comes from (site and type > site > default), a lease override of
one field wins while the rest follows the site, and clearing it gives the site's back;
finance and managers read but do not write, other sites are not found, bad fields are
refused naming them, every change is audited with who made it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cloud.staff.accounts import SessionKind
from cloud.staff.models import AuditEntry
from tests.support.browser import PASSWORD, WebRig, make_rig, serve
from tests.support.lease_scope import seed_leases

LADDER_14 = [
    {"days": 1, "action": "reminder"},
    {"days": 3, "action": "internal_task"},
    {"days": 7, "action": "call_task"},
    {"days": 14, "action": "legal_handover"},
]


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("policies"), months=1)
    seed_leases(rig.sessions, PASSWORD)
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def client(rig: WebRig) -> Iterator[httpx.Client]:
    with serve(rig.app) as url, httpx.Client(base_url=url) as client:
        yield client


def as_(client: httpx.Client, rig: WebRig, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {rig.token(client, who)}"}


def sources(reply: httpx.Response) -> dict[str, tuple[Any, str]]:
    assert reply.status_code == 200, reply.text
    return {f["field"]: (f["value"], f["label"]) for f in reply.json()["fields"]}


def test_site_sets_resolve_per_field_and_a_lease_override_wins(rig, client) -> None:
    sup = as_(client, rig, "sup-a")
    site_wide = {
        "site": "park-a",
        "property_type": "all",
        "effective_from": "2026-01-01",
        "preset": "standard",
        "fields": {"ladder": LADDER_14},
    }
    made = client.post("/api/v1/policies", json=site_wide, headers=sup)
    assert made.status_code == 201, made.text
    assert made.json()["fields"]["ladder"] == LADDER_14
    residential = {
        "site": "park-a",
        "property_type": "residential",
        "effective_from": "2026-02-01",
        "fields": {"reminder_offsets_days": [45, 30, 15]},
    }
    assert client.post("/api/v1/policies", json=residential, headers=sup).status_code == 201
    # the same site, type and day again: a conflict, nothing stored
    again = client.post("/api/v1/policies", json=residential, headers=sup)
    assert again.status_code == 409 and "date a new one later" in again.text

    policy = sources(client.get("/api/v1/leases/L-A1/policy", headers=as_(client, rig, "mgr-a")))
    assert policy["reminder_offsets_days"] == ([45, 30, 15], "site/type since 2026-02-01")
    assert policy["ladder"] == (LADDER_14, "site since 2026-01-01")
    assert policy["late_fee"][0]["grace_days"] == 5
    # before the residential set's first day only the site-wide set applies
    january = sources(
        client.get("/api/v1/leases/L-A1/policy?day=2026-01-15", headers=as_(client, rig, "fin-a"))
    )
    assert january["reminder_offsets_days"] == ([90, 60, 30], "site since 2026-01-01")
    # park-b has no set: the built-in default
    other = sources(client.get("/api/v1/leases/L-P1/policy", headers=as_(client, rig, "admin")))
    assert {label for _, label in other.values()} == {"default"}

    grace = {"grace_days": 10, "daily_rate": "0.0005", "cap_rate": "0.10"}
    put = client.put(
        "/api/v1/leases/L-A1/policy-overrides", json={"set": {"late_fee": grace}}, headers=sup
    )
    after = sources(put)
    assert after["late_fee"] == (
        {"grace_days": 10, "daily_rate": "0.0005", "cap_rate": "0.10"},
        "lease",
    )
    assert after["reminder_offsets_days"][1] == "site/type since 2026-02-01"
    assert after["ladder"][1] == "site since 2026-01-01"
    # the lease next door follows the site still
    next_door = sources(client.get("/api/v1/leases/L-A2/policy", headers=sup))
    assert next_door["late_fee"][1] == "site since 2026-01-01"

    # the lease page says where each value comes from (Chinese by default, English too)
    session = rig.web.accounts.sign_in("mgr-a", PASSWORD, SessionKind.COOKIE)
    client.cookies.clear()
    page = client.get("/leases/L-A1", headers={"Cookie": f"mf_session={session.token}"})
    assert page.status_code == 200
    assert 'data-field="late_fee" data-source="lease"' in page.text
    assert "本租约单独设定" in page.text and "园区及物业类型" in page.text
    assert "T+14 移交法务" in page.text
    english = client.get("/leases/L-A1?lang=en", headers={"Cookie": f"mf_session={session.token}"})
    assert "this lease" in english.text and "hand-over to legal" in english.text

    cleared = sources(
        client.put(
            "/api/v1/leases/L-A1/policy-overrides", json={"clear": ["late_fee"]}, headers=sup
        )
    )
    assert cleared["late_fee"][1] == "site since 2026-01-01"

    with rig.sessions() as s:
        audit = s.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    created = [a for a in audit if a.action == "policy_create"]
    assert len(created) == 2 and all(a.actor == "sup-a" for a in created)
    assert all(a.subject.startswith("policy:") for a in created)
    overrides = [a for a in audit if a.action == "policy_overrides"]
    assert [(a.actor, a.subject) for a in overrides] == [("sup-a", "lease:L-A1")] * 2
    assert '"grace_days": 10' in overrides[0].detail


def test_readers_read_writers_write_and_bad_fields_are_named(rig, client) -> None:
    fin = as_(client, rig, "fin-a")
    body = {"site": "park-a", "effective_from": "2027-01-01", "preset": "short"}
    assert client.post("/api/v1/policies", json=body, headers=fin).status_code == 403
    assert (
        client.put(
            "/api/v1/leases/L-A1/policy-overrides",
            json={"set": {"risk_lead_days": 10}},
            headers=as_(client, rig, "mgr-a"),
        ).status_code
        == 403
    )
    # a supervisor of park-a: park-b is not found, nor is its lease
    sup = as_(client, rig, "sup-a")
    other = {**body, "site": "park-b"}
    assert client.post("/api/v1/policies", json=other, headers=sup).status_code == 404
    assert client.get("/api/v1/leases/L-P1/policy", headers=sup).status_code == 404
    bad_ladder = {
        **body,
        "fields": {"ladder": [{"days": 7, "action": "reminder"}, {"days": 3, "action": "sue"}]},
    }
    reply = client.post("/api/v1/policies", json=bad_ladder, headers=sup)
    assert reply.status_code == 422 and "ladder.1.action" in reply.text
    unknown = client.put(
        "/api/v1/leases/L-A1/policy-overrides", json={"set": {"colour": "red"}}, headers=sup
    )
    assert unknown.status_code == 422 and "unknown field colour" in unknown.text
    too_long = client.post(
        "/api/v1/policies",
        json={
            **body,
            "fields": {"ladder": [{"days": d, "action": "reminder"} for d in range(1, 12)]},
        },
        headers=sup,
    )
    assert too_long.status_code == 422 and "ladder" in too_long.text
    # finance of park-b sees no set of park-a
    listed = client.get("/api/v1/policies", headers=as_(client, rig, "fin-b")).json()
    assert all(p["site_id"] == "park-b" for p in listed["policies"])


def test_the_policies_page_creates_a_set_from_a_preset(rig, client) -> None:
    session = rig.web.accounts.sign_in("sup-a", PASSWORD, SessionKind.COOKIE)
    cookie = {"Cookie": f"mf_session={session.token}"}
    client.cookies.clear()
    page = client.get("/policies", headers=cookie)
    assert page.status_code == 200 and 'data-testid="policy-form"' in page.text
    form = {
        "csrf": session.csrf,
        "site": "park-a",
        "property_type": "office",
        "effective_from": "2026-03-01",
        "preset": "short",
        "legal_day": "12",
    }
    done = client.post("/policies", data=form, headers=cookie)
    assert done.status_code == 303 and "done=" in done.headers["location"]
    listed = client.get("/api/v1/policies?site=park-a", headers=as_(client, rig, "sup-a")).json()
    office = [p for p in listed["policies"] if p["property_type"] == "office"]
    assert office[0]["preset"] == "short"
    assert office[0]["fields"]["reminder_offsets_days"] == [45, 30, 15]
    assert office[0]["fields"]["ladder"][-1] == {"days": 12, "action": "legal_handover"}
    shown = client.get("/policies?site=park-a", headers=cookie).text
    assert "办公" in shown and "短租" in shown
    # a finance reader sees the list but no form
    reader = rig.web.accounts.sign_in("fin-a", PASSWORD, SessionKind.COOKIE)
    client.cookies.clear()
    seen = client.get("/policies", headers={"Cookie": f"mf_session={reader.token}"})
    assert seen.status_code == 200 and "policy-form" not in seen.text and "办公" in seen.text
