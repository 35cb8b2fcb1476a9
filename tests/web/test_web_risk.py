"""The move-out risk list on the web: finance sees its own sites' leases, highest risk first,
with reasons and the health score, as JSON and as a page (Chinese by default)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime

import httpx
import pytest

from cloud.apportion.models import Unit
from cloud.leases.models import Lease, Staff, Tenant
from cloud.risk.models import RiskScore
from cloud.staff.accounts import AccountService, Role
from tests.support.browser import PASSWORD, WebRig, make_rig, serve

#: reasons as stored: structured by the model, or words stored before they were structured
REASONS = {
    "L-park-a-0": [
        {"feature": "use_ratio", "value": -0.5108},
        {"feature": "open_tickets", "value": 3.0},
    ],
    "L-park-a-1": ["use -6 % vs its own 60-day baseline"],
    "L-park-b-0": [{"feature": "late_share", "value": 0.5}],
}


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("risk-web"), months=1)
    with rig.sessions.begin() as s:
        s.add(Staff(id="m1", name="Manager"))
        scores = {"park-a": [0.81, 0.12], "park-b": [0.55]}
        for site, probabilities in scores.items():
            units = [f"RU-{site}-{k}" for k in range(len(probabilities))]
            s.add_all([Unit(id=u, site_id=site, area_m2=50, building="B") for u in units])
            for k, p in enumerate(probabilities):
                lease = f"L-{site}-{k}"
                s.add(Tenant(id=f"T-{lease}", name=f"Tenant {lease}"))
                s.flush()
                s.add(
                    Lease(
                        id=lease,
                        tenant_id=f"T-{lease}",
                        unit_id=units[k],
                        manager_id="m1",
                        status="active",
                        signed_on=date(2026, 1, 1),
                        start_on=date(2026, 1, 1),
                        end_on=date(2027, 1, 1),
                        schedule={},
                        created_at=datetime(2026, 1, 1, tzinfo=UTC),
                    )
                )
                s.flush()
                s.add(
                    RiskScore(
                        lease_id=lease,
                        scored_on=date(2026, 11, 20),
                        model_version=None,
                        probability=p,
                        health=60.0 + 30 * (1 - p),
                        band="red" if p > 0.5 else "green",
                        reasons=REASONS[lease],
                    )
                )
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def url(rig: WebRig) -> Iterator[str]:
    with serve(rig.app) as base:
        yield base


@contextmanager
def client_as(rig: WebRig, url: str, name: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=30) as client:
        client.headers["Authorization"] = f"Bearer {rig.token(client, name)}"
        yield client


def test_finance_sees_its_own_sites_highest_risk_first(rig: WebRig, url: str) -> None:
    with (
        client_as(rig, url, "admin") as admin,
        client_as(rig, url, "fin-a") as fin_a,
        client_as(rig, url, "fin-b") as fin_b,
    ):
        everything = admin.get("/api/v1/risk/leases").json()
        assert [i["probability"] for i in everything] == [0.81, 0.55, 0.12]
        assert everything[0]["high_risk"] and not everything[-1]["high_risk"]
        # the API's reasons stay English words; beside them, each one's feature and value
        assert [(i["reasons"], i["reason_features"]) for i in everything] == [
            (
                ["use -40 % vs its own 60-day baseline", "3 repair ticket(s) open"],
                REASONS["L-park-a-0"],
            ),
            (["50 % of the last year's invoices paid late"], REASONS["L-park-b-0"]),
            (["use -6 % vs its own 60-day baseline"], [None]),
        ]
        assert [i["site_id"] for i in fin_a.get("/api/v1/risk/leases").json()] == [
            "park-a",
            "park-a",
        ]
        assert [i["lease_id"] for i in fin_b.get("/api/v1/risk/leases").json()] == ["L-park-b-0"]
        assert fin_b.get("/api/v1/risk/leases?site=park-a").json() == []
        assert len(admin.get("/api/v1/risk/leases?limit=1").json()) == 1
        bad = admin.get("/api/v1/risk/leases?limit=0")
        assert bad.status_code == 400 and "limit" in bad.text


def test_risk_page_shows_reasons_in_chinese_by_default(rig: WebRig, url: str) -> None:
    with client_as(rig, url, "fin-a") as fin_a:
        page = fin_a.get("/finance/risk")
        assert page.status_code == 200
        assert "退租风险" in page.text and "高风险" in page.text
        assert "用量较自身 60 天基线 -40 %；3 个报修未关闭" in page.text
        assert "use -40 %" not in page.text and "repair ticket" not in page.text
        assert "use -6 % vs its own 60-day baseline" in page.text  # stored as words: as it is
        assert "L-park-b-0" not in page.text
        english = fin_a.get("/finance/risk?lang=en").text
        assert "Move-out risk" in english and "81 %" in english
        assert "use -40 % vs its own 60-day baseline; 3 repair ticket(s) open" in english
        assert "用量" not in english and "报修" not in english
        assert "use -6 % vs its own 60-day baseline" in english


def test_managers_see_the_risk_of_their_buildings_only(rig: WebRig, url: str) -> None:
    accounts = AccountService(rig.sessions)
    accounts.create_account("risk-mgr-b", PASSWORD, Role.MANAGER, buildings=["park-a/B"])
    accounts.create_account("risk-mgr-a", PASSWORD, Role.MANAGER, buildings=["park-a/A"])
    accounts.create_account("risk-sup", PASSWORD, Role.SUPERVISOR, ["park-b"])
    accounts.create_account("risk-legal", PASSWORD, Role.LEGAL, ["park-a"])
    with (
        client_as(rig, url, "risk-mgr-b") as mgr_b,
        client_as(rig, url, "risk-mgr-a") as mgr_a,
        client_as(rig, url, "risk-sup") as sup,
        client_as(rig, url, "risk-legal") as legal,
    ):
        assert [i["lease_id"] for i in mgr_b.get("/api/v1/risk/leases").json()] == [
            "L-park-a-0",
            "L-park-a-1",
        ]
        assert mgr_a.get("/api/v1/risk/leases").json() == []
        assert "L-park-a-0" not in mgr_a.get("/finance/risk").text
        assert [i["lease_id"] for i in sup.get("/api/v1/risk/leases").json()] == ["L-park-b-0"]
        assert legal.get("/api/v1/risk/leases").status_code == 403
