"""Finance's API and pages: runs by site and period with held runs on top, the tree with
each node's balance, review → approve → post with the audit trail, exports."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from cloud.apportion.case.loading import case_from_data
from cloud.apportion.models import ApportionLine, ApportionRun, ApportionStatement
from cloud.apportion.runs import create_run
from cloud.staff.models import AuditEntry
from tests.support.browser import PASSWORD, WebRig, make_rig, month_case, serve


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("finance"), months=2)
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def client(rig: WebRig) -> Iterator[httpx.Client]:
    with serve(rig.app) as url, httpx.Client(base_url=url, timeout=30) as client:
        client.headers["Authorization"] = f"Bearer {rig.token(client, 'admin')}"
        yield client


def run_cents(rig: WebRig, run: str) -> int:
    with rig.sessions() as s:
        return int(
            s.scalar(select(func.sum(ApportionLine.cents)).where(ApportionLine.run_id == run)) or 0
        )


def test_held_runs_come_first_then_newest_period(rig: WebRig, client: httpx.Client) -> None:
    runs = client.get("/api/v1/runs").json()
    assert runs[0]["id"] == rig.seeded.held and runs[0]["held"]
    starts = [r["period_start"] for r in runs[1:]]
    assert starts == sorted(starts, reverse=True)
    assert [r["site"] for r in client.get("/api/v1/runs?site=park-b").json()] == ["park-b"] * 2
    april = client.get("/api/v1/runs?period=2026-04&site=park-a").json()
    assert [r["id"] for r in april] == [rig.seeded.latest]
    assert april[0]["total_cents"] == run_cents(rig, rig.seeded.latest) == 89280


def test_tree_shows_each_nodes_balance(rig: WebRig, client: httpx.Client) -> None:
    detail = client.get(f"/api/v1/runs/{rig.seeded.latest}").json()
    nodes = {n["id"]: n for n in detail["nodes"]}
    main = nodes["MAIN"]
    children = sum(n["kwh"] for n in detail["nodes"] if n["parent"] == "MAIN")
    assert main["children_kwh"] == pytest.approx(children)
    assert main["residual_kwh"] == pytest.approx(main["kwh"] - children)
    assert main["loss_rate"] == pytest.approx(main["residual_kwh"] / main["kwh"])
    assert [f["code"] for f in main["flags"]] == ["loss_over_cap"]
    held = client.get(f"/api/v1/runs/{rig.seeded.held}").json()
    root = held["nodes"][0]
    assert root["residual_kwh"] < 0 and any(f["holds"] for f in root["flags"])
    assert [(s["unit"], s["party"]) for s in detail["statements"]] == [
        ("", "landlord"),
        ("A101", "ACME"),
        ("A102", "BETA"),
    ]
    assert sum(s["cents"] for s in detail["statements"]) == run_cents(rig, rig.seeded.latest)


def test_a_held_run_of_a_site_without_a_site_file_says_what_to_do(
    rig: WebRig, client: httpx.Client
) -> None:
    # park-b's runs come from case files: no site file to close again with, so the page
    # says how to go on instead of offering remedies that cannot work
    page = client.get(f"/finance/runs/{rig.seeded.held}?lang=en")
    assert page.status_code == 200, page.text[:300]
    assert 'data-testid="remedies-case-file"' in page.text
    assert "meterflow cloud site import" in page.text
    assert 'data-testid="close-again"' not in page.text


def test_review_approve_post_with_the_audit_trail(rig: WebRig, client: httpx.Client) -> None:
    run = rig.seeded.draft
    assert client.post(f"/api/v1/runs/{run}/approve").status_code == 409  # not reviewed
    assert client.post(f"/api/v1/runs/{run}/review").json() == {"id": run, "status": "reviewed"}
    reply = client.post(f"/api/v1/runs/{run}/approve")  # four eyes: admin reviewed it
    assert reply.status_code == 409 and "four eyes" in reply.json()["detail"]
    fin_a = {"Authorization": f"Bearer {rig.token(client, 'fin-a')}"}
    reply = client.post(f"/api/v1/runs/{run}/approve", headers=fin_a)
    assert reply.json() == {"id": run, "status": "approved"}
    assert client.post(f"/api/v1/runs/{run}/post").json() == {"id": run, "status": "posted"}
    detail = client.get(f"/api/v1/runs/{run}").json()
    trail = [(e["actor"], e["action"]) for e in detail["trail"]]
    # once per event: the run's steps and their audit-log entries are one record each
    assert trail == [
        ("seed", "create"),
        ("admin", "reviewed"),
        ("fin-a", "approved"),
        ("admin", "posted"),
    ]
    with rig.sessions() as s:
        assert (
            s.scalar(
                select(func.count())
                .select_from(ApportionStatement)
                .where(ApportionStatement.run_id == run)
            )
            == 3
        )
    reply = client.post(f"/api/v1/runs/{rig.seeded.held}/review")
    assert reply.status_code == 200
    reply = client.post(f"/api/v1/runs/{rig.seeded.held}/approve")
    assert reply.status_code == 409 and "negative_residual" in reply.json()["detail"]
    assert client.post(f"/api/v1/runs/{rig.seeded.held}/void").status_code == 409  # no reason
    reply = client.post(f"/api/v1/runs/{rig.seeded.held}/void", json={"reason": "meter UB misread"})
    assert reply.json()["status"] == "void"


def test_csv_and_excel_exports_carry_every_line(rig: WebRig, client: httpx.Client) -> None:
    # the formats themselves: tests/web/test_exports.py
    run = rig.seeded.latest
    text = client.get(f"/api/v1/runs/{run}/lines.csv?lang=en").content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sum(int(r["Amount (fen)"]) for r in rows) == run_cents(rig, run)
    assert all(Decimal(r["Amount (CNY)"]) * 100 == int(r["Amount (fen)"]) for r in rows)
    reply = client.get(f"/api/v1/runs/{run}/lines.xlsx?lang=en")
    assert reply.headers["content-type"].startswith("application/vnd.openxmlformats")
    book = load_workbook(io.BytesIO(reply.content))
    assert book.sheetnames == ["Lines", "Statements", "Meter tree", "Run"]
    lines = list(book["Lines"].iter_rows(min_row=2, values_only=True))[:-1]  # - totals row
    assert len(lines) == len(rows) and sum(r[18] for r in lines) == run_cents(rig, run)
    assert next(book["Meter tree"].iter_rows(min_row=2, values_only=True))[0] == "MAIN"


def test_finance_pages_render(rig: WebRig, client: httpx.Client) -> None:
    session = rig.web.accounts.sign_in("fin-a", "correct horse battery")
    cookie = {"Cookie": f"mf_session={session.token}", "Authorization": ""}
    page = client.get("/finance/runs?lang=en", headers=cookie)
    assert page.status_code == 200 and rig.seeded.latest in page.text
    page = client.get(f"/finance/runs/{rig.seeded.latest}", headers=cookie)
    assert page.status_code == 200 and 'data-node="MAIN"' in page.text
    assert "lines.xlsx" in page.text and "lines.csv" in page.text
    assert client.get("/finance/disputes", headers=cookie).status_code == 200


def test_pages_refuse_four_eyes_and_ask_before_post_and_void(
    rig: WebRig, client: httpx.Client
) -> None:
    with rig.sessions.begin() as s:
        run = create_run(s, case_from_data(month_case(date(2026, 6, 1), 1.0)), by="seed").id

    def as_(username: str) -> tuple[dict[str, str], str]:
        session = rig.web.accounts.sign_in(username, PASSWORD)
        return {"Cookie": f"mf_session={session.token}", "Authorization": ""}, session.csrf

    def status() -> str:
        with rig.sessions() as s:
            found = s.get(ApportionRun, run)
            assert found is not None
            return found.status

    fin_a, csrf_a = as_("fin-a")
    fin_a2, csrf_a2 = as_("fin-a2")
    page = f"/finance/runs/{run}"
    reply = client.post(f"{page}/review", data={"csrf": csrf_a}, headers=fin_a)
    assert reply.status_code == 303 and "done=reviewed" in reply.headers["location"]
    reply = client.post(f"{page}/approve", data={"csrf": csrf_a}, headers=fin_a)
    assert "error=" in reply.headers["location"] and status() == "reviewed"
    shown = client.get(reply.headers["location"], headers=fin_a).text
    assert "四眼原则" in shown and "fin-a 复核了本批次，不能再批准" in shown  # the page's language
    reply = client.post(f"{page}/approve", data={"csrf": csrf_a2}, headers=fin_a2)
    assert "done=approved" in reply.headers["location"] and status() == "approved"
    # the run's page links to the confirmation; posting without it changes nothing
    assert (
        f'href="{page}/post?lang=zh-CN" data-testid="action-post"'
        in client.get(page, headers=fin_a).text
    )
    reply = client.post(f"{page}/post", data={"csrf": csrf_a}, headers=fin_a)
    assert reply.status_code == 303 and reply.headers["location"] == f"{page}/post?lang=zh-CN"
    assert status() == "approved"
    confirm = client.get(f"{page}/post", headers=fin_a)
    assert confirm.status_code == 200 and "确认过账并签名" in confirm.text
    for shown in ("park-a", f"¥{run_cents(rig, run) / 100:.2f}", "<dd>seed</dd>"):
        assert shown in confirm.text, shown
    assert 'data-testid="confirm-statements">3<' in confirm.text
    assert 'data-testid="confirm-reviewed-by">fin-a<' in confirm.text
    assert 'data-testid="confirm-approved-by">fin-a2<' in confirm.text
    assert (
        f'name="csrf" value="{csrf_a}"' in confirm.text
        and f'href="{page}?lang=zh-CN"' in confirm.text
    )
    english = client.get(f"{page}/post?lang=en", headers=fin_a).text
    assert "Yes, post and sign" in english and "Reviewed by" in english
    assert client.get(f"{page}/review", headers=fin_a).headers["location"] == f"{page}?lang=zh-CN"
    assert client.get(f"{page}/post", headers=as_("fin-b")[0]).status_code == 404
    reply = client.post(f"{page}/post", data={"csrf": csrf_a, "confirm": "yes"}, headers=fin_a)
    assert "done=posted" in reply.headers["location"] and status() == "posted"
    # void: the reason is asked on the confirmation page, and kept when the form skipped it
    reply = client.post(
        f"{page}/void", data={"csrf": csrf_a, "reason": "wrong bill"}, headers=fin_a
    )
    assert reply.headers["location"] == f"{page}/void?lang=zh-CN&reason=wrong+bill"
    assert status() == "posted"
    confirm = client.get(reply.headers["location"], headers=fin_a).text
    assert "确认作废" in confirm and ">wrong bill</textarea>" in confirm
    reply = client.post(
        f"{page}/void",
        data={"csrf": csrf_a, "confirm": "yes", "reason": "wrong bill"},
        headers=fin_a,
    )
    assert "done=void" in reply.headers["location"] and status() == "void"
    with rig.sessions() as s:
        entries = s.scalars(select(AuditEntry).where(AuditEntry.subject == f"run:{run}"))
        assert [(e.actor, e.action) for e in entries] == [
            ("fin-a", "review"),
            ("fin-a2", "approve"),
            ("fin-a", "post"),
            ("fin-a", "void"),
        ]
