"""Closing a month from the product's surface: the API route (in OpenAPI) and the finance
page, on a registry with an imported site file and readings in the series store."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cloud.apportion.case.loading import load_case
from cloud.apportion.configuration import import_site
from cloud.apportion.engine import apportion
from cloud.apportion.models import ApportionRun
from cloud.apportion.site import CASE_ONLY, parse_site
from cloud.gateways.provisioning import CloudSigner, ProvisioningService
from cloud.registry.db import open_registry
from cloud.series.sqlite import SqliteSeriesStore
from cloud.staff.accounts import AccountService, Role
from cloud.web.app import create_app
from cloud.web.deps import ApiServices, WebServices
from tests.apportion.test_close import midnight, ns, setup
from tests.support.browser import serve

CASES = Path(__file__).resolve().parents[1] / "cases"
PASSWORD = "correct horse battery staple 9"


@dataclass
class CloseRig:
    sessions: sessionmaker[Session]
    url: str
    raw: dict[str, Any]


@contextlib.contextmanager
def close_rig(work: Path, drop: tuple[str, str] | None = None) -> Iterator[CloseRig]:
    """park-a (basic.yaml) imported with its readings, but ``drop`` = (meter, day); park-z
    imported too (no readings); fin-a and eng-a on park-a; the app served."""
    sessions = open_registry(f"sqlite:///{work / 'registry.sqlite'}")
    store = SqliteSeriesStore(work / "series.sqlite")
    _site, raw = setup(sessions, store, "basic")  # park-a
    if drop is not None:
        with store._lock:  # the reading that never arrived
            store._db.execute(
                "DELETE FROM points WHERE meter = ? AND time_ns = ?",
                (drop[0], ns(midnight(date.fromisoformat(drop[1])))),
            )
            store._db.commit()
    other = yaml.safe_load((CASES / "basic.yaml").read_text())
    other = {k: v for k, v in other.items() if k not in CASE_ONLY}
    other["site"] = "park-z"
    for section in ("units", "meters", "tree"):
        for item in other[section]:
            item["id"] = "Z-" + item["id"]
    for node in other["tree"]:
        for field in ("parent", "meter"):
            if node.get(field):
                node[field] = "Z-" + node[field]
        if node["kind"] == "unit":
            node["unit"] = node["id"]
    other["occupancy"] = {}
    other["tariffs"][0]["id"] = "Z-flat"
    with sessions.begin() as s:
        import_site(s, parse_site(yaml.safe_dump(other)), by="ops")
    key = Ed25519PrivateKey.generate()
    provisioning = ProvisioningService(sessions, CloudSigner(key))
    web = WebServices.build(
        provisioning, signing_key=key, series=lambda: SqliteSeriesStore(work / "series.sqlite")
    )
    accounts = AccountService(sessions)
    accounts.create_account("fin-a", PASSWORD, Role.FINANCE, ["park-a"])
    accounts.create_account("eng-a", PASSWORD, Role.ENGINEER, ["park-a"])
    try:
        with serve(create_app(ApiServices(provisioning=provisioning, web=web))) as url:
            yield CloseRig(sessions, url, raw)
    finally:
        store.close()
        sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloseRig]:
    with close_rig(tmp_path_factory.mktemp("close")) as made:
        yield made


@contextlib.contextmanager
def client_for(rig: CloseRig, username: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=rig.url, timeout=30) as client:
        reply = client.post("/api/v1/session", json={"username": username, "password": PASSWORD})
        assert reply.status_code == 200, reply.text
        client.headers["Authorization"] = f"Bearer {reply.json()['token']}"
        yield client


def body(rig: CloseRig, **changes: Any) -> dict[str, Any]:
    bill = rig.raw["bill"]
    out = {
        "site": "park-a",
        "start": rig.raw["period"]["start"].isoformat(),
        "end": rig.raw["period"]["end"].isoformat(),
        "bill": {"invoice": bill["invoice"], "amounts": {"total": str(bill["amounts"]["total"])}},
    }
    out.update(changes)
    return out


def run_count(rig: CloseRig) -> int:
    with rig.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(ApportionRun)) or 0)


def test_the_api_closes_a_month_into_a_draft_with_the_case_files_cents(rig: CloseRig) -> None:
    expected = apportion(load_case(CASES / "basic.yaml").to_engine_inputs())
    with client_for(rig, "fin-a") as client:
        assert "/api/v1/close" in client.get("/openapi.json").json()["paths"]
        reply = client.post("/api/v1/close", json=body(rig))
        assert reply.status_code == 201, reply.text
        out = reply.json()
        assert out["status"] == "draft" and not out["held"] and out["version"] >= 1
        assert out["bill_cents"] == out["lines_cents"] == sum(p.cents for p in expected.pots)
        assert out["pots"][0]["register"] == "total"
        detail = client.get(f"/api/v1/runs/{out['run']}").json()
        assert sum(s["cents"] for s in detail["statements"]) == out["lines_cents"]


def test_the_api_refuses_bad_input_and_other_sites_storing_nothing(rig: CloseRig) -> None:
    before = run_count(rig)
    with client_for(rig, "fin-a") as client:
        for changes, status, expected in (
            ({"site": "park-z"}, 403, "not one of your sites"),
            ({"end": "2026-04-01"}, 422, "must be after"),
            ({"bill": {"invoice": "X", "amounts": {"T1": "5"}}}, 422, "bill: amounts for"),
            ({"bill": {"invoice": "X", "amounts": {"total": "1e400"}}}, 400, "amounts.total"),
            ({"start": "2026-02-30"}, 400, "start"),
        ):
            reply = client.post("/api/v1/close", json=body(rig, **changes))
            assert reply.status_code == status, (changes, reply.text)
            assert expected in reply.text
    with client_for(rig, "eng-a") as client:
        assert client.post("/api/v1/close", json=body(rig)).status_code == 403
    assert run_count(rig) == before


def test_the_finance_page_closes_from_the_form(rig: CloseRig) -> None:
    with client_for(rig, "fin-a") as client:
        page = client.get("/finance/close")
        assert page.status_code == 200 and 'name="amount_total"' in page.text
        assert "park-z" not in page.text  # not one of fin-a's sites
        form = body(rig)
        reply = client.post(
            "/finance/close",
            data={
                "site": "park-a",
                "start": form["start"],
                "end": form["end"],
                "invoice": "SGCC-PAGE",
                "amount_total": "720.00",
            },
        )
        assert reply.status_code == 303
        run_page = client.get(reply.headers["location"])
        assert run_page.status_code == 200 and "720.00" in run_page.text
        bad = client.post(
            "/finance/close",
            data={"site": "park-a", "start": "2026-04-01", "end": "2026-03-01", "invoice": "X"},
        )
        # the refusal in the reader's language (Chinese by default), the dates given named
        assert bad.status_code == 422 and "截止日 2026-03-01 应晚于起始日 2026-04-01" in bad.text
        assert "must be after" not in bad.text
        assert 'value="X"' in bad.text  # what was typed is kept
        bad_en = client.post(
            "/finance/close?lang=en",
            data={"site": "park-a", "start": "2026-04-01", "end": "2026-03-01", "invoice": "X"},
        )
        assert "The end 2026-03-01 must be after the start 2026-04-01" in bad_en.text
        no_date = client.post(
            "/finance/close", data={"site": "park-a", "start": "1 April", "end": "2026-05-01"}
        )
        assert no_date.status_code == 422 and "日期格式应为 YYYY-MM-DD" in no_date.text
        # refused input: worded in Chinese, the item at fault named as the check gives it
        bad_bill = client.post(
            "/finance/close",
            data={
                "site": "park-a",
                "start": form["start"],
                "end": form["end"],
                "invoice": "SGCC-BAD",
                "amount_total": "12,5",
            },
        )
        assert bad_bill.status_code == 422
        assert "账单、读数或站点数据有误，未保存任何内容" in bad_bill.text
        assert "bill.amounts.total" in bad_bill.text


def test_a_held_run_is_fixed_on_its_page_by_a_manual_reading_and_closed_again(
    tmp_path: Path,
) -> None:
    with close_rig(tmp_path, drop=("U2", "2026-05-01")) as rig, client_for(rig, "fin-a") as client:
        held = client.post("/api/v1/close", json=body(rig)).json()
        assert held["held"] and {"meter": "U2", "day": "2026-05-01"} in held["missing_readings"]
        page = client.get(f"/finance/runs/{held['run']}").text
        assert 'data-testid="remedies"' in page and 'data-testid="manual-U2"' in page
        wrong = client.post(
            f"/finance/runs/{held['run']}/manual-reading",
            data={"meter": "U1", "day": "2026-05-01", "value": "1"},
        )
        assert wrong.status_code == 303, wrong.text
        assert "并不缺少表计 U1 在 2026-05-01 的读数" in client.get(wrong.headers["location"]).text
        saved = client.post(
            f"/finance/runs/{held['run']}/manual-reading",
            data={"meter": "U2", "day": "2026-05-01", "value": "450.00", "note": "人工抄表"},
        )
        assert "error" not in saved.headers["location"]
        again = client.post(f"/finance/runs/{held['run']}/close-again", data={})
        assert again.status_code == 303
        new_id = again.headers["location"].split("/finance/runs/")[1].split("?")[0]
        new = client.get(f"/api/v1/runs/{new_id}").json()
        assert not new["run"]["held"] and new["run"]["status"] == "draft"
        old = client.get(f"/api/v1/runs/{held['run']}").json()
        assert old["run"]["status"] == "void"
        trail = {(e["actor"], e["action"]) for e in new["trail"] + old["trail"]}
        assert {("fin-a", "reading.manual"), ("fin-a", "create")} <= trail
        assert [e["action"] for e in new["trail"]] == ["create"]  # the close, once


def test_accepting_estimates_with_a_reason_closes_again_unheld(tmp_path: Path) -> None:
    with close_rig(tmp_path, drop=("U2", "2026-05-01")) as rig, client_for(rig, "fin-a") as client:
        held = client.post("/api/v1/close", json=body(rig)).json()
        held_nodes = [f["subject"] for f in held["flags"] if f["code"] == "estimates_over_limit"]
        assert held_nodes == ["node LIFT", "node MAIN"]
        no_reason = client.post(f"/finance/runs/{held['run']}/close-again", data={"accept": "MAIN"})
        assert "接受估算读数需要填写原因" in client.get(no_reason.headers["location"]).text
        unknown = client.post(
            f"/finance/runs/{held['run']}/close-again?lang=en",
            data={"accept": "U9", "reason": "typo"},
        )
        assert (
            "No estimates over the limit at: U9 (the run has them at: LIFT, MAIN)"
            in client.get(unknown.headers["location"]).text
        )
        reply = client.post(
            f"/api/v1/runs/{held['run']}/close-again",
            json={
                "accept_estimates": {
                    node: "U2 display broken; estimate agreed with the tenant"
                    for node in ("LIFT", "MAIN")
                }
            },
        )
        assert reply.status_code == 201, reply.text
        out = reply.json()
        assert not out["held"] and out["version"] == 2 and out["supersedes"] == held["run"]
        accepted = [f for f in out["flags"] if f["code"] == "estimates_over_limit"]
        assert (
            accepted[0]["accepted_by"] == "fin-a"
            and "display broken" in accepted[0]["accepted_reason"]
        )
