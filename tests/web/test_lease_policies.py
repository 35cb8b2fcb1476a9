"""Lease policies through the API and the pages (issue #18, decision 0031): a supervisor
creates policy sets of their site (from a preset or single fields), a lease's policy says
per field where each value comes from (site and type > site > default), a lease override of
one field wins while the rest follows the site, and clearing it gives the site's back;
finance and managers read but do not write, other sites are not found, bad fields are
refused naming them, every change is audited with who made it."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select

from cloud.leases.policies import PRESETS
from cloud.staff.accounts import Role, SessionKind
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


def cookie_of(rig: WebRig, client: httpx.Client, who: str) -> tuple[dict[str, str], str]:
    session = rig.web.accounts.sign_in(who, PASSWORD, SessionKind.COOKIE)
    client.cookies.clear()
    return {"Cookie": f"mf_session={session.token}"}, session.csrf


def form_of(page: str) -> dict[str, str]:
    """The inputs of the page's policy form as a browser would send them."""
    html = page[page.index('data-testid="policy-form"') :]
    html = html[: html.index("</form>")]
    out = dict(re.findall(r'<input name="([a-z0-9_]+)"[^>]* value="([^"]*)"', html))
    out.update(re.findall(r'<input type="hidden" name="([a-z]+)" value="([^"]*)"', html))
    for name, options in re.findall(r'<select name="([a-z0-9_]+)"[^>]*>(.*?)</select>', html):
        chosen = re.search(r'<option value="([^"]*)" selected>', options)
        out[name] = chosen.group(1) if chosen else ""
    return out


def site_sets(client: httpx.Client, rig: WebRig) -> list[dict[str, Any]]:
    reply = client.get("/api/v1/policies?site=park-a", headers=as_(client, rig, "sup-a"))
    return reply.json()["policies"]


def test_the_policies_page_sets_every_field_and_shows_the_values(rig, client) -> None:
    cookie, _ = cookie_of(rig, client, "sup-a")
    page = client.get("/policies?preset=short", headers=cookie)
    assert page.status_code == 200 and 'data-testid="policy-form"' in page.text
    form = form_of(page.text)
    # prefilled from the short preset: every field, in days, percent, yuan and hours
    assert form["preset"] == "short" and form["reminder_offsets_days"] == "45, 30, 15"
    assert form["price_band_low_pct"] == "3" and form["late_fee_daily_rate_pct"] == "0.05"
    assert form["arrears_block_yuan"] == "1000.00" and form["deposit_sla_hours_settlement"] == "48"
    assert (form["ladder_3_days"], form["ladder_3_action"]) == ("14", "legal_handover")
    assert (form["ladder_4_days"], form["ladder_4_action"]) == ("", "")
    form.update(
        site="park-a",
        property_type="residential",
        effective_from="2090-03-01",
        reminder_offsets_days="60，20",
        price_band_low_pct="1.5",
        price_band_high_pct="4",
        deposit_sla_hours_payment="72",
        ladder_4_days="30",
        ladder_4_action="escalation",
        risk_lead_days="",  # blank: the preset's value
    )
    done = client.post("/policies", data=form, headers=cookie)
    assert done.status_code == 303 and "done=" in done.headers["location"], done.text
    made = next(p for p in site_sets(client, rig) if p["effective_from"] == "2090-03-01")
    short = PRESETS["short"].model_dump(mode="json")
    changes = {
        "reminder_offsets_days": [60, 20],
        "price_band": ["0.015", "0.04"],
        "deposit_sla_hours": {**short["deposit_sla_hours"], "payment": 72},
        "ladder": [*short["ladder"], {"days": 30, "action": "escalation"}],
    }
    assert made["preset"] == "short" and made["fields"] == {**short, **changes}

    # the lease's policy on a day of the set: exactly those values, the rest the preset's
    resolved = sources(
        client.get("/api/v1/leases/L-A1/policy?day=2090-03-02", headers=as_(client, rig, "mgr-a"))
    )
    assert {f: v for f, (v, _) in resolved.items()} == {**short, **changes}
    assert {label for _, label in resolved.values()} == {"site/type since 2090-03-01"}

    # the list shows each value in words and marks what differs from the preset
    client.cookies.clear()
    shown = client.get("/policies?site=park-a", headers=cookie).text
    row = shown[shown.index(f'data-policy="{made["id"]}"') :]
    row = row[: row.index("</tr>")]
    assert "与预设不同：到期前续租提醒、续租调价区间、押金退还时限、催收流程" in row
    assert re.search(r'data-mark="changed">60/20 天', row)
    assert re.search(r'data-mark="changed">1.50 % – 4.00 %', row)
    assert "付款 72 小时" in row and "T+30 上报主管" in row
    assert re.search(r'data-mark="preset">1000.00 元 <span class="badge">取自预设', row)
    english = client.get("/policies?site=park-a&lang=en", headers=cookie).text
    row = english[english.index(f'data-policy="{made["id"]}"') :]
    assert "60/20 days" in row and "1000.00 CNY" in row and "T+30 " in row

    # the set in force for a site and type prefills the form too
    parking = {
        "site": "park-a",
        "property_type": "parking",
        "effective_from": "2026-01-05",
        "preset": "short",
        "fields": {"acknowledge_within_days": 3},
    }
    sup = as_(client, rig, "sup-a")
    assert client.post("/api/v1/policies", json=parking, headers=sup).status_code == 201
    client.cookies.clear()
    current = client.get(
        "/policies?preset=current&for_site=park-a&for_type=parking&lang=en", headers=cookie
    )
    assert current.status_code == 200 and 'data-testid="policy-prefilled"' in current.text
    prefilled = form_of(current.text)
    assert prefilled["acknowledge_within_days"] == "3" and prefilled["preset"] == "short"
    assert prefilled["property_type"] == "parking" and prefilled["ladder_3_days"] == "14"
    client.cookies.clear()
    elsewhere = client.get("/policies?preset=current&for_site=park-b", headers=cookie)
    assert elsewhere.status_code == 404 and "park-b 不在您的辖区内" in elsewhere.text

    # a finance reader and a manager see the list and its values but no form
    for reader in ("fin-a", "mgr-a"):
        their, csrf = cookie_of(rig, client, reader)
        seen = client.get("/policies?preset=short", headers=their)
        assert seen.status_code == 200 and "60/20 天" in seen.text
        assert "policy-form" not in seen.text and "policy-prefill" not in seen.text
        client.cookies.clear()
        refused = client.post("/policies", data={**form, "csrf": csrf}, headers=their)
        assert refused.status_code == 403
    # a supervisor of some buildings of a site writes no site's sets: no form either
    rig.web.accounts.create_account("sup-b", PASSWORD, Role.SUPERVISOR, [], buildings=["park-a/B"])
    their, _ = cookie_of(rig, client, "sup-b")
    seen = client.get("/policies", headers=their)
    assert seen.status_code == 200 and "policy-form" not in seen.text
    client.cookies.clear()


def test_a_bad_field_is_named_in_the_readers_language(rig, client) -> None:
    cookie, _ = cookie_of(rig, client, "sup-a")
    form = form_of(client.get("/policies", headers=cookie).text)
    form.update(site="park-a", property_type="office", effective_from="2091-01-01")
    before = len(site_sets(client, rig))
    cases = [
        (
            {"risk_lead_days": "ten"},
            "高风险提前提醒：应为 0 至 180 的整数天数。",
            "Earlier reminder for a high risk: expected a whole number of days from 0 to 180.",
            "risk_lead_days",
        ),
        (
            {"risk_lead_days": "999999999"},
            "高风险提前提醒：应为 0 至 180 的整数天数。",
            "Earlier reminder for a high risk: expected a whole number of days from 0 to 180.",
            "risk_lead_days",
        ),
        (
            {"price_band_low_pct": "6"},
            "续租调价区间：应为两个百分数",
            "Renewal price band: expected two percentages",
            "price_band_low_pct",
        ),
        (
            {"ladder_1_days": "9"},  # 1, 9, 7, 15: not increasing
            "催收流程：每级应为逾期 1 至 90 的整数天数",
            "Collections ladder: expected a whole number of days from 1 to 90",
            "ladder_1_days",
        ),
        (
            {"ladder_5_days": "40", "ladder_5_action": ""},
            "催收流程第 6 级：",
            "Collections ladder, rung 6: expected",
            "ladder_5_action",
        ),
        (
            {"deposit_sla_hours_approval": "0"},
            "押金退还时限：每个步骤应为 1 至 8760 的整数小时数。",
            "Deposit refund time limits: expected a whole number of hours from 1 to 8760",
            "deposit_sla_hours_approval",
        ),
        (
            {"reminder_offsets_days": "30, 30"},
            "到期前续租提醒：应为 1 至 10 个互不相同的天数",
            "Renewal reminders before the end: expected 1 to 10 different numbers of days",
            "reminder_offsets_days",
        ),
        (
            {"late_fee_daily_rate_pct": "5"},
            "滞纳金：宽限期应为 0 至 60 的整数天数，每日费率 0 至 1 %",
            "Late fee: expected a grace period of 0 to 60 whole days, a daily rate of 0 to 1 %",
            "late_fee_daily_rate_pct",
        ),
        (
            {"arrears_block_yuan": "12.345"},
            "阻止续租的欠款：应为 0 至 100 亿元的金额",
            "Arrears that block a renewal: expected an amount from 0 to 10,000,000,000 CNY",
            "arrears_block_yuan",
        ),
        (
            {"effective_from": "2026-02-30"},
            "生效日：应为 2000-01-01 至 2099-12-31 之间的日期",
            "From: expected a date YYYY-MM-DD from 2000-01-01 to 2099-12-31.",
            "effective_from",
        ),
        (
            {"preset": "long"},
            "预设：应为标准或短租。",
            "Preset: expected standard or short lease.",
            "preset",
        ),
    ]
    for change, chinese, english, name in cases:
        for lang, words in (("zh-CN", chinese), ("en", english)):
            client.cookies.clear()
            reply = client.post(f"/policies?lang={lang}", data={**form, **change}, headers=cookie)
            assert reply.status_code == 422, (change, reply.status_code)
            alert = reply.text[reply.text.index('data-testid="policy-errors"') :]
            assert words in html.unescape(alert[: alert.index("</div>")]), (change, lang)
            # the form comes back as posted, the bad input marked
            assert re.search(rf'name="{name}"[^>]*aria-invalid="true"', reply.text), change
            assert form_of(reply.text)["site"] == "park-a"
    # a set that exists already for the site, type and day: 409, named
    client.cookies.clear()
    assert client.post("/policies", data=form, headers=cookie).status_code == 303
    client.cookies.clear()
    again = client.post("/policies?lang=en", data=form, headers=cookie)
    assert again.status_code == 409 and "has a set from 2091-01-01 already" in again.text
    made = [p for p in site_sets(client, rig) if p["effective_from"] == "2091-01-01"]
    # the form unchanged from the standard preset: the preset's fields, nothing else
    assert len(site_sets(client, rig)) == before + 1 and made[0]["preset"] == "standard"
    assert made[0]["fields"] == PRESETS["standard"].model_dump(mode="json")


def test_hostile_posts_are_refused(rig, client) -> None:
    cookie, csrf = cookie_of(rig, client, "sup-a")
    form = form_of(client.get("/policies", headers=cookie).text)
    form.update(site="park-a", property_type="retail", effective_from="2092-01-01")
    before = len(site_sets(client, rig))
    rows = [(f"ladder_{i}_days", str(i + 1)) for i in range(1000)]
    rows += [(f"ladder_{i}_action", "reminder") for i in range(1000)]
    hostile = [
        ({k: v for k, v in form.items() if k != "csrf"}, 403, ""),  # no CSRF token
        ({**form, "csrf": "stale"}, 403, ""),
        ({**form, "risk_lead_days": "9" * 5000}, 400, "超过 9 个字符"),
        ({**form, "ladder_10_days": "91"}, 400, "未知的项目 ladder_10_days"),
        ({**form, "colour": "red"}, 400, "未知的项目 colour"),
        ({**form, "site": "x" * 65}, 400, "site 超过 64 个字符"),
        ([*form.items(), ("reminder_offsets_days", "1")], 400, "出现了多次"),
        ([*form.items(), *rows], 400, ""),  # 1,000 ladder rows
        ({**form, "reminder_offsets_days": "9" * 70_000}, 413, ""),  # over the body bound
    ]
    for data, status, words in hostile:
        client.cookies.clear()
        items = data if isinstance(data, list) else list(data.items())
        reply = client.post(
            "/policies",
            content=urlencode(items),
            headers={**cookie, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert reply.status_code == status, (status, reply.text[:300])
        assert words in reply.text
        assert "9" * 100 not in reply.text  # a refused value is not echoed back
    assert len(site_sets(client, rig)) == before
    # with its token the same form is taken: what was refused was the post, not the set
    client.cookies.clear()
    taken = client.post("/policies", data={**form, "csrf": csrf}, headers=cookie)
    assert taken.status_code == 303 and len(site_sets(client, rig)) == before + 1
