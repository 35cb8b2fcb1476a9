"""The tenant's statement link and page: the numbers are the run's, the signature is checked,
links expire, are revoked when the lease ends and never open another unit; confirm and
dispute are recorded once."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from cloud.apportion.models import ApportionLine, ApportionStatement, StatementConfirmation, Unit
from cloud.apportion.runs import void_run
from cloud.leases.models import Lease, Staff, StatementAccess, Tenant
from cloud.staff.models import AuditEntry
from cloud.statements.links import (
    LinkRefused,
    RefusalReason,
    StatementKey,
    TenantLinkService,
    revoke_unit_links,
)
from cloud.statements.wording import line_formula
from cloud.web.qr import qr_svg
from tests.support.browser import MONTHS, WebRig, make_rig, serve


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("tenant"))
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def client(rig: WebRig) -> Iterator[httpx.Client]:
    with serve(rig.app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def stored_lines(rig: WebRig, run: str, unit: str, party: str) -> list[ApportionLine]:
    with rig.sessions() as s:
        return list(
            s.scalars(
                select(ApportionLine)
                .where(
                    ApportionLine.run_id == run,
                    ApportionLine.unit == unit,
                    ApportionLine.party == party,
                )
                .order_by(ApportionLine.line_no)
            )
        )


def test_statement_page_shows_the_runs_numbers(rig: WebRig, client: httpx.Client) -> None:
    run = rig.seeded.latest
    path = rig.link(run)
    page = client.get(path)
    assert page.status_code == 200 and page.headers["content-language"] == "zh-CN"
    data = client.get(path.replace("/t/", "/api/v1/tenant/", 1)).json()
    lines = stored_lines(rig, run, "A101", "ACME")
    shown = data["statement"]["lines"]
    # every non-empty stored line, in order, to the cent and to the engine's kWh
    assert [(x["component"], x["origin"], x["cents"]) for x in shown] == [
        (line.component, line.origin, line.cents) for line in lines if line.cents or line.kwh
    ]
    for x, line in zip(shown, [x for x in lines if x.cents or x.kwh], strict=True):
        assert Decimal(x["kwh"]) == Decimal(line.kwh).quantize(Decimal("0.001"))
        assert x["amount_cny"] == f"{Decimal(line.cents) / 100:.2f}"
        assert f"¥{x['amount_cny']}" in page.text
        if x["component"] != "own_use":  # the formula in Chinese with its numbers
            for text in line_formula(x, "zh-CN", {}):
                assert html.escape(text, quote=False) in page.text
    total = sum(line.cents for line in lines)
    assert data["statement"]["total"]["cents"] == total
    assert f'data-cents="{total}">{Decimal(total) / 100:.2f}<' in page.text
    assert data["genuine"] and "真实账单" in page.text
    # readings with their read times (local) and quality
    meter = data["statement"]["meters"][0]
    assert meter["meter"] == "U1" and meter["start"]["quality"] == "good"
    assert "2026-04-01 00:00" in page.text and "2026-05-01 00:00" in page.text
    assert "实抄" in page.text
    # loss rate and the landlord's part at the main node
    node = data["statement"]["nodes"][0]
    assert node["node"] == "MAIN" and f"{float(node['loss_rate']) * 100:.2f}%" in page.text
    assert f"¥{node['landlord_part']}" in page.text


def test_english_on_request(rig: WebRig, client: httpx.Client) -> None:
    page = client.get(rig.link(rig.seeded.latest) + "?lang=en")
    assert page.headers["content-language"] == "en"
    assert "Genuine" in page.text and "Common share" in page.text and "真实账单" not in page.text


def test_the_tenant_downloads_the_lines_as_csv_for_excel(rig: WebRig, client: httpx.Client) -> None:
    """The page's 下载明细 link gives the statement's lines in the page's language: one row
    per shown line with its plain numbers, the last day each covers, a total row equal to
    the statement's total; a refused link gets the refusal page, not a file."""
    path = rig.link(rig.seeded.latest)
    page = client.get(path).text
    assert f'href="{path}/statement.csv?lang=zh-CN"' in page
    data = client.get(path.replace("/t/", "/api/v1/tenant/", 1)).json()["statement"]
    got = client.get(f"{path}/statement.csv")
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    assert 'filename="statement-' in got.headers["content-disposition"]
    assert got.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(got.content.decode("utf-8-sig"))))
    assert rows[0] == ["项目", "时段", "起始日", "截止日", "电量（kWh）", "单价（元/kWh）",
                       "金额（元）", "计算"]  # fmt: skip
    body, total = rows[1:-1], rows[-1]
    assert total[0] == "合计" and Decimal(total[6]) == Decimal(data["total"]["amount_cny"])
    assert sum(Decimal(r[6]) for r in body) == Decimal(data["total"]["cents"]) / 100
    assert sorted(Decimal(r[6]) for r in body) == sorted(
        Decimal(x["amount_cny"]) for x in data["lines"]
    )
    own = next(x for x in data["lines"] if x["component"] == "own_use")
    mine = next(r for r in body if r[0].startswith("本户用电"))
    assert Decimal(mine[4]) == Decimal(own["kwh"]) and mine[2] == own["from"]
    assert mine[3] == (date.fromisoformat(own["to"]) - timedelta(days=1)).isoformat()
    english = client.get(f"{path}/statement.csv?lang=en").content.decode("utf-8-sig")
    assert english.startswith("Item,Time band,From,To (last day),Energy (kWh)")
    assert "\r\nTotal," in english and "Own use" in english
    run = rig.seeded.posted[MONTHS[0]]
    past = TenantLinkService(
        rig.sessions, rig.secret, clock=lambda: datetime.now(UTC) - timedelta(days=200)
    )
    refused = client.get(past.link_for(StatementKey(run, "A101", "ACME")).path() + "/statement.csv")
    assert refused.status_code == 410 and "text/html" in refused.headers["content-type"]
    assert "ACME" not in refused.text


def test_history_holds_twelve_months_of_posted_statements(
    rig: WebRig, client: httpx.Client
) -> None:
    data = client.get(rig.link(rig.seeded.latest).replace("/t/", "/api/v1/tenant/", 1)).json()
    history = data["history"]
    assert [h["period_start"] for h in history] == [m.isoformat() for m in MONTHS]
    for month, point in zip(MONTHS, history, strict=True):
        cents = sum(
            line.cents for line in stored_lines(rig, rig.seeded.posted[month], "A101", "ACME")
        )
        assert point["cents"] == cents
    page = client.get(rig.link(rig.seeded.latest)).text
    assert page.count('<g class="bar') == 12 and '<g class="bar current">' in page


def test_expired_and_revoked_links_are_refused_with_the_reason(
    rig: WebRig, client: httpx.Client
) -> None:
    run = rig.seeded.posted[MONTHS[0]]
    past = TenantLinkService(
        rig.sessions, rig.secret, clock=lambda: datetime.now(UTC) - timedelta(days=200)
    )
    expired = past.link_for(StatementKey(run, "A101", "ACME"))
    page = client.get(expired.path())
    assert page.status_code == 410 and 'data-reason="expired"' in page.text
    assert "ACME" not in page.text and "链接已过期" in page.text

    link = rig.web.links.link_for(StatementKey(rig.seeded.posted[MONTHS[-2]], "A102", "BETA"))
    assert client.get(link.path()).status_code == 200
    with rig.sessions.begin() as s:
        assert revoke_unit_links(s, "A102", date(2026, 3, 1)) >= 1
    page = client.get(link.path() + "?lang=en")
    assert page.status_code == 410 and "lease has ended" in page.text
    # a later tenant's new link for the unit is not affected by the old revocation
    with rig.sessions.begin() as s:
        assert revoke_unit_links(s, "A102", date(2026, 3, 1)) == 0


def test_a_link_without_statement_is_not_issued(rig: WebRig) -> None:
    from cloud.statements.links import NoStatement

    with pytest.raises(NoStatement):
        rig.web.links.link_for(StatementKey(rig.seeded.draft, "A101", "ACME"))
    with pytest.raises(NoStatement):
        rig.web.links.link_for(StatementKey(rig.seeded.latest, "A101", "BETA"))


def test_a_changed_statement_is_not_shown(rig: WebRig, client: httpx.Client) -> None:
    run = rig.seeded.posted[MONTHS[1]]
    path = rig.link(run)
    assert client.get(path).status_code == 200
    with rig.sessions() as s:
        stored = s.get(ApportionStatement, (run, "A101", "ACME"))
        assert stored is not None
        payload = stored.payload
    with rig.sessions.begin() as s:  # bypasses the ORM's immutability guard, as an attacker
        s.execute(
            update(ApportionStatement.__table__)
            .where(
                ApportionStatement.run_id == run,
                ApportionStatement.unit == "A101",
                ApportionStatement.party == "ACME",
            )
            .values(payload=payload.replace('"cents":', '"cents": ', 1))
        )
    page = client.get(path)
    assert page.status_code == 409 and 'data-reason="not_genuine"' in page.text
    assert client.get(path.replace("/t/", "/api/v1/tenant/", 1)).status_code == 409


def test_confirm_once_and_dispute_for_finance(rig: WebRig, client: httpx.Client) -> None:
    run = rig.seeded.posted[MONTHS[2]]
    path = rig.link(run)
    missing = client.post(f"{path}/confirm", data={"name": "  "}, follow_redirects=False)
    assert missing.status_code == 409 and "type your name" in missing.text  # a page, not JSON
    assert missing.headers["content-type"].startswith("text/html")
    reply = client.post(f"{path}/confirm", data={"name": "张 三"}, follow_redirects=False)
    assert reply.status_code == 303 and "done=confirmed" in reply.headers["location"]
    page = client.get(reply.headers["location"])
    assert 'data-testid="confirmed"' in page.text and 'data-testid="confirm"' not in page.text
    assert "确认人 张 三" in page.text
    assert client.post(f"{path}/confirm", data={"name": "张三"}).status_code == 409
    api = path.replace("/t/", "/api/v1/tenant/", 1)
    assert client.post(f"{api}/dispute", json={"comment": "too late"}).status_code == 409
    with rig.sessions() as s:
        done = s.get(StatementConfirmation, (run, "A101", "ACME"))
        assert done is not None and done.total_cents == sum(
            x.cents for x in stored_lines(rig, run, "A101", "ACME")
        )
        assert done.confirmed_name == "张 三"
        assert s.scalars(
            select(AuditEntry).where(
                AuditEntry.subject == f"run:{run}", AuditEntry.action == "confirm"
            )
        ).one()

    run = rig.seeded.posted[MONTHS[-1]]
    beta = rig.link(rig.seeded.posted[MONTHS[-1]], "A102", "BETA")
    api = beta.replace("/t/", "/api/v1/tenant/", 1)
    assert client.post(f"{beta}/dispute", data={"comment": "  "}).status_code == 409
    reply = client.post(f"{api}/dispute", json={"comment": "the lift share looks high"})
    assert reply.status_code == 200 and reply.json()["dispute_id"] > 0
    assert client.post(f"{api}/confirm", json={"name": "Li"}).status_code == 409  # finance first
    assert "财务正在处理" in client.get(beta).text
    queue = rig.web.runs.disputes(_admin(rig))
    item = next(d for d in queue if d.run_id == run and d.unit == "A102")
    rig.web.runs.resolve_dispute(_admin(rig), item.id, "the lift meter was checked: right")
    page = client.get(beta).text
    assert "the lift meter was checked" in page and 'data-testid="confirm"' in page
    assert client.post(f"{api}/confirm").status_code == 400  # the name is required
    reply = client.post(f"{api}/confirm", json={"name": "Li Na"})
    assert reply.json() == {"status": "confirmed", "dispute_id": None}
    detail = rig.web.runs.run_detail(_admin(rig), run)
    shown = next(s for s in detail.statements if s.unit == "A102" and s.party == "BETA")
    assert shown.confirmed_name == "Li Na"


def _admin(rig: WebRig):  # type: ignore[no-untyped-def]
    from cloud.staff.accounts import Principal, Role

    return Principal("admin", Role.ADMIN, frozenset())


def test_a_voided_run_withdraws_its_links(rig: WebRig, client: httpx.Client) -> None:
    run = rig.seeded.posted[MONTHS[3]]
    path = rig.link(run)
    with rig.sessions.begin() as s:
        void_run(s, run, by="controller", reason="wrong bill")
    page = client.get(path)
    assert page.status_code == 410 and 'data-reason="withdrawn"' in page.text


def test_printable_statement_carries_the_links_qr_code(rig: WebRig, client: httpx.Client) -> None:
    token = rig.token(client, "fin-a")
    reply = client.get(
        f"/api/v1/runs/{rig.seeded.latest}/statements/A101/ACME",
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    url = reply["link"]["url"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/t/A101/[\w-]{22}\.[\w-]{22}", url)
    assert client.get(url).status_code == 200  # the QR's link opens the statement
    session = rig.web.accounts.sign_in("fin-a", "correct horse battery")
    page = client.get(
        f"/finance/runs/{rig.seeded.latest}/statements/A101/ACME",
        headers={"Cookie": f"mf_session={session.token}"},
    )
    assert page.status_code == 200 and str(qr_svg(url)) in page.text
    assert 'href="/static/print.css" media="print"' in page.text


def test_lease_end_closes_the_statement_link(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, months=1)
    link = rig.web.links.link_for(StatementKey(rig.seeded.latest, "A101", "ACME"))
    today = datetime.now(UTC).date()
    with rig.sessions.begin() as s:
        s.add_all(
            [
                Unit(id="A101", site_id="park-a", area_m2=Decimal(60)),
                Tenant(id="ACME", name="Acme Ltd"),
                Staff(id="m1", name="Manager"),
            ]
        )
        s.flush()
        s.add(
            Lease(
                id="L1",
                tenant_id="ACME",
                unit_id="A101",
                manager_id="m1",
                status="active",
                start_on=date(2025, 1, 1),
                end_on=date(2027, 1, 1),
                schedule={},
                created_at=datetime.now(UTC),
            )
        )
        s.flush()
        s.add(
            StatementAccess(
                tenant_id="ACME", unit_id="A101", lease_id="L1", granted_on=date(2025, 1, 1)
            )
        )
    assert rig.web.links.open("A101", link.token).statement.party == "ACME"
    with rig.sessions.begin() as s:
        s.execute(update(StatementAccess).values(revoked_on=today))
    with pytest.raises(LinkRefused) as refused:
        rig.web.links.open("A101", link.token)
    assert refused.value.reason is RefusalReason.REVOKED
    rig.sessions.kw["bind"].dispose()


def test_tenant_and_finance_pages_on_postgres(tmp_path: Path, fresh_postgres_url: str) -> None:
    rig = make_rig(tmp_path, url=fresh_postgres_url, months=2)
    try:
        with serve(rig.app) as url, httpx.Client(base_url=url, timeout=30) as client:
            path = rig.link(rig.seeded.latest)
            assert client.get(path).status_code == 200
            assert (
                client.post(
                    f"{path.replace('/t/', '/api/v1/tenant/', 1)}/dispute",
                    json={"comment": "check U1"},
                ).status_code
                == 200
            )
            auth = {"Authorization": f"Bearer {rig.token(client, 'fin-a')}"}
            detail = client.get(f"/api/v1/runs/{rig.seeded.latest}", headers=auth).json()
            assert detail["statements"][0] == {
                "unit": "",
                "party": "landlord",
                "cents": detail["statements"][0]["cents"],
                "confirmed_at": None,
                "disputed": False,
                "confirmed_name": "",
            }
            assert [d["unit"] for d in client.get("/api/v1/disputes", headers=auth).json()] == [
                "A101"
            ]
            with rig.sessions.begin() as s:
                assert revoke_unit_links(s, "A101", date(2020, 1, 1), party="ACME") == 1
            assert client.get(path).status_code == 410
    finally:
        rig.sessions.kw["bind"].dispose()


def test_the_tenant_chooses_the_language_of_their_notices(
    rig: WebRig, client: httpx.Client
) -> None:
    from cloud.leases.reference import add_tenant

    run = rig.seeded.posted[MONTHS[5]]
    path, api = rig.link(run), rig.link(run).replace("/t/", "/api/v1/tenant/", 1)
    with rig.sessions.begin() as s:
        if s.get(Tenant, "ACME") is None:
            add_tenant(s, "ACME", "ACME Ltd", address="acme@tenants.test")
        s.get(Tenant, "ACME").language = "zh-CN"
    page = client.get(path).text
    assert 'data-testid="notice-language"' in page and "通知语言" in page
    assert '<option value="zh-CN" selected>中文</option>' in page
    reply = client.post(f"{path}/language", data={"language": "en"}, follow_redirects=False)
    assert reply.status_code == 303 and "done=language" in reply.headers["location"]
    page = client.get(reply.headers["location"]).text
    assert '<option value="en" selected>English</option>' in page and "已保存" in page
    assert client.get(api).json()["notice_language"] == "en"
    with rig.sessions() as s:
        assert s.get(Tenant, "ACME").language == "en"
        audit = s.scalars(
            select(AuditEntry).where(
                AuditEntry.subject == "tenant:ACME", AuditEntry.action == "notice_language"
            )
        ).all()
    assert [(a.actor, a.detail) for a in audit] == [("tenant:ACME", "zh-CN → en")]
    # the API; a language the product does not speak is refused, saying what was expected
    assert client.post(f"{api}/language", json={"language": "zh-CN"}).json() == {
        "status": "language:zh-CN",
        "dispute_id": None,
    }
    refused = client.post(f"{api}/language", json={"language": "fr"})
    assert refused.status_code == 400 and "'zh-CN' or 'en'" in refused.text, refused.text
    bad = client.post(f"{path}/language", data={"language": "fr"}, follow_redirects=False)
    assert bad.status_code == 409 and "expected one of zh-CN, en" in bad.text
    # a party that is no registered tenant gets no notices: no choice on its page
    beta = rig.link(rig.seeded.posted[MONTHS[-1]], "A102", "BETA")
    with rig.sessions() as s:
        assert s.get(Tenant, "BETA") is None
    assert 'data-testid="notice-language"' not in client.get(beta).text
    refused = client.post(f"{beta}/language", data={"language": "en"}, follow_redirects=False)
    assert refused.status_code == 409 and "not sent" in refused.text
