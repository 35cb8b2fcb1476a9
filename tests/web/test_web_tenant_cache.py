"""The tenant page's caches never outlive the registry: a link revoked, a grant ended or a
run voided by another process is refused on the very next request, an expired link is
refused, answers show at once, and a cached page never opens for another unit.

The page is rendered once and served from the cache afterwards (each test asks twice before
it changes anything); the changes come from other connections, other processes or the
clock, never from something the serving app could have been told about.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from cloud.apportion.models import TreeNode, Unit
from cloud.apportion.runs import void_run
from cloud.gateways.provisioning import ProvisioningService
from cloud.leases.models import Lease, Staff, StatementAccess, Tenant
from cloud.registry.db import open_registry
from cloud.registry.models import Site
from cloud.staff.accounts import Principal, Role
from cloud.statements.links import StatementKey, revoke_unit_links
from cloud.web.app import create_app
from cloud.web.deps import ApiServices, WebServices
from tests.support.browser import MONTHS, WebRig, make_rig, serve

ROOT = Path(__file__).resolve().parents[2]


class MovableClock:
    """The services' clock: real time until a test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class CacheRig:
    """A seeded registry, the app on it with a movable clock, and a client of it."""

    base: WebRig
    url: str
    clock: MovableClock
    web: WebServices
    client: httpx.Client

    def link(self, run: str, unit: str = "A101", party: str = "ACME") -> str:
        return self.web.links.link_for(StatementKey(run, unit, party)).path()

    def page(self, path: str) -> httpx.Response:
        """The page, asked twice: the second answer comes from the cache."""
        first = self.client.get(path)
        second = self.client.get(path)
        assert first.status_code == second.status_code and first.text == second.text
        return second


@contextlib.contextmanager
def _rig(work: Path, url: str | None = None, months: int = 3) -> Iterator[CacheRig]:
    base = make_rig(work, url=url, months=months)
    clock = MovableClock(datetime.now(UTC).replace(microsecond=0))
    provisioning = ProvisioningService(base.sessions, base.signer, clock=clock)
    web = WebServices.build(provisioning, signing_key=base.key, secret=base.secret)
    app = create_app(ApiServices(provisioning=provisioning, web=web))
    registry_url = url or f"sqlite:///{work / 'registry.sqlite'}"
    try:
        with serve(app) as served, httpx.Client(base_url=served, timeout=30) as client:
            yield CacheRig(base, registry_url, clock, web, client)
    finally:
        base.sessions.kw["bind"].dispose()


@pytest.fixture()
def rig(tmp_path: Path) -> Iterator[CacheRig]:
    with _rig(tmp_path) as rig:
        yield rig


def in_another_process(url: str, code: str) -> None:
    """Run ``code`` in a new Python process with ``sessions`` open on the registry."""
    script = (
        "from cloud.registry.db import open_registry\n"
        "import os\nsessions = open_registry(os.environ['MF_TEST_REGISTRY'])\n"
        + textwrap.dedent(code)
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MF_TEST_REGISTRY": url, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr


def _api(path: str) -> str:
    return path.replace("/t/", "/api/v1/tenant/", 1)


def _add_lease(rig: CacheRig, unit: str, tenant: str, lease: str) -> None:
    """A running lease of ``unit`` (a unit id) by ``tenant`` with its statement access
    since 2025."""
    with rig.base.sessions.begin() as s:
        if s.get(Unit, unit) is None:
            s.add(Unit(id=unit, site_id="park-a", area_m2=Decimal(60)))
        if s.get(Staff, "m1") is None:
            s.add(Staff(id="m1", name="Manager"))
        s.add(Tenant(id=tenant, name=tenant))
        s.flush()
        s.add(
            Lease(
                id=lease,
                tenant_id=tenant,
                unit_id=unit,
                manager_id="m1",
                status="active",
                start_on=date(2025, 1, 1),
                end_on=date(2030, 1, 1),
                schedule={},
                created_at=datetime.now(UTC),
            )
        )
        s.flush()
        s.add(
            StatementAccess(
                tenant_id=tenant, unit_id=unit, lease_id=lease, granted_on=date(2025, 1, 1)
            )
        )


def test_a_link_revoked_by_another_process_is_refused_on_the_next_request(rig: CacheRig) -> None:
    path = rig.link(rig.base.seeded.latest)
    other = rig.link(rig.base.seeded.latest, "A102", "BETA")
    assert rig.page(path).status_code == 200 and rig.page(other).status_code == 200
    assert rig.client.get(_api(path)).status_code == 200
    in_another_process(
        rig.url,
        """
        from datetime import date
        from cloud.statements.links import revoke_unit_links
        with sessions.begin() as s:
            assert revoke_unit_links(s, "A101", date(2020, 1, 1)) >= 1
    """,
    )
    page = rig.client.get(path)
    assert page.status_code == 410 and 'data-reason="revoked"' in page.text
    assert "ACME" not in page.text
    assert rig.client.get(_api(path)).status_code == 410
    assert rig.client.get(other).status_code == 200  # another unit's link is not affected


def test_a_lease_ended_by_the_lease_job_in_another_process_closes_the_link(rig: CacheRig) -> None:
    _add_lease(rig, "A101", "ACME", "L1")
    path = rig.link(rig.base.seeded.latest)
    assert rig.page(path).status_code == 200
    # yesterday in UTC: the site's own day (Asia/Shanghai) is past it
    ended = rig.clock().astimezone(UTC).date() - timedelta(days=1)
    in_another_process(
        rig.url,
        f"""
        from datetime import date
        from cloud.leases.lifecycle import terminate
        day = date.fromisoformat("{ended.isoformat()}")
        with sessions.begin() as s:
            terminate(s, "L1", on=day, today=day, by="daily", reason="the lease ended")
    """,
    )
    page = rig.client.get(path + "?lang=en")
    assert page.status_code == 410 and "lease has ended" in page.text


def test_the_grants_of_the_links_own_unit_decide(rig: CacheRig) -> None:
    # a configured site's tree names the unit of each unit node; the grants are those of
    # the link's own node's unit, whatever other links the registry holds
    with rig.base.sessions.begin() as s:
        for node in ("A101", "A102"):
            s.add(Unit(id=f"unit-{node}", site_id="park-a", area_m2=Decimal(60)))
            s.flush()
            s.add(TreeNode(id=node, site_id="park-a", kind="unit", unit_id=f"unit-{node}"))
    first = rig.link(rig.base.seeded.latest)
    _add_lease(rig, "unit-A101", "OTHER", "L1")  # the unit's new tenant, not ACME
    _add_lease(rig, "unit-A102", "BETA", "L2")
    second = rig.link(rig.base.seeded.latest, "A102", "BETA")
    assert rig.page(second).status_code == 200
    assert rig.client.get(first).status_code == 200  # ACME has no grants: links decide
    with rig.base.sessions.begin() as s:
        s.execute(
            update(StatementAccess)
            .where(StatementAccess.tenant_id == "BETA")
            .values(revoked_on=date(2025, 6, 1))
        )
    assert rig.client.get(second).status_code == 410
    assert rig.client.get(first).status_code == 200


def test_a_grant_ends_on_the_sites_local_day(rig: CacheRig) -> None:
    _add_lease(rig, "A101", "ACME", "L1")
    rig.clock.now = datetime(2026, 11, 10, 20, 0, tzinfo=UTC)  # Shanghai: the 11th, 04:00
    path = rig.link(rig.base.seeded.latest)
    with rig.base.sessions.begin() as s:
        s.execute(update(StatementAccess).values(revoked_on=date(2026, 11, 11)))
    assert rig.client.get(path).status_code == 410  # the 11th has begun at the site
    with rig.base.sessions.begin() as s:
        s.execute(update(Site).where(Site.id == "park-a").values(timezone="America/Los_Angeles"))
    assert rig.page(path).status_code == 200  # Los Angeles: still the 10th, 12:00
    rig.clock.now = datetime(2026, 11, 11, 7, 30, tzinfo=UTC)  # the UTC day after, LA's 10th
    assert rig.page(path).status_code == 200
    rig.clock.now = datetime(2026, 11, 11, 8, 0, tzinfo=UTC)  # LA: the 11th, 00:00
    assert rig.client.get(path).status_code == 410
    with rig.base.sessions.begin() as s:
        s.execute(update(Site).where(Site.id == "park-a").values(timezone="Pacific/Kiritimati"))
        s.execute(update(StatementAccess).values(revoked_on=date(2026, 11, 12)))
    assert rig.page(path).status_code == 200  # Kiritimati (UTC+14): the 11th, 22:00
    rig.clock.now = datetime(2026, 11, 11, 10, 0, tzinfo=UTC)  # Kiritimati: the 12th
    assert rig.client.get(path).status_code == 410


def test_an_expired_link_is_refused_although_its_page_is_cached(rig: CacheRig) -> None:
    link = rig.web.links.link_for(StatementKey(rig.base.seeded.latest, "A101", "ACME"))
    assert rig.page(link.path()).status_code == 200
    rig.clock.now = link.expires_at - timedelta(seconds=1)
    assert rig.client.get(link.path()).status_code == 200
    rig.clock.now = link.expires_at
    page = rig.client.get(link.path())
    assert page.status_code == 410 and 'data-reason="expired"' in page.text
    assert rig.client.get(_api(link.path())).status_code == 410


def test_a_revocation_from_a_later_day_takes_effect_on_that_day(rig: CacheRig) -> None:
    path = rig.link(rig.base.seeded.latest)
    latest_site_day = rig.clock().astimezone(UTC).date() + timedelta(days=1)
    with rig.base.sessions.begin() as s:
        revoke_unit_links(s, "A101", latest_site_day + timedelta(days=1))
    assert rig.page(path).status_code == 200
    rig.clock.now += timedelta(days=3)
    assert rig.client.get(path).status_code == 410


def test_confirm_shows_at_once_and_so_do_answers_given_through_another_worker(
    rig: CacheRig,
) -> None:
    path = rig.link(rig.base.seeded.latest)
    assert 'data-testid="confirm"' in rig.page(path).text
    reply = rig.client.post(f"{path}/confirm", data={"name": "王五"}, follow_redirects=False)
    assert reply.status_code == 303
    page = rig.client.get(path)
    assert 'data-testid="confirmed"' in page.text and 'data-testid="confirm"' not in page.text
    assert rig.client.get(_api(path)).json()["answer"]["confirmed_at"] is not None

    # another worker: its own services and connection pool on the same registry
    sessions = open_registry(rig.url)
    try:
        worker = WebServices.build(
            ProvisioningService(sessions, rig.base.signer),
            signing_key=rig.base.key,
            secret=rig.base.secret,
        )
        beta = rig.link(rig.base.seeded.latest, "A102", "BETA")
        assert 'data-testid="confirm"' in rig.page(beta).text
        worker.statements.dispute(
            worker.links.open("A102", beta.split("/")[-1]), "the lift share looks high"
        )
        page = rig.client.get(beta + "?lang=en")
        assert "the lift share looks high" in page.text
        assert 'data-testid="confirm"' not in page.text
        item = next(
            d
            for d in worker.runs.disputes(Principal("admin", Role.ADMIN, frozenset()))
            if d.unit == "A102"
        )
        worker.runs.resolve_dispute(
            Principal("admin", Role.ADMIN, frozenset()),
            item.id,
            "the lift meter was checked: right",
        )
        page = rig.client.get(beta)
        assert "the lift meter was checked" in page.text and 'data-testid="confirm"' in page.text
    finally:
        sessions.kw["bind"].dispose()


def test_a_void_by_another_process_withdraws_the_page_and_changes_the_history(
    rig: CacheRig,
) -> None:
    latest = rig.link(rig.base.seeded.latest)
    assert rig.page(latest).text.count('<g class="bar') == 3
    in_another_process(
        rig.url,
        f"""
        from cloud.apportion.runs import void_run
        with sessions.begin() as s:
            void_run(s, "{rig.base.seeded.posted[MONTHS[-2]]}", by="controller",
                     reason="wrong bill")
    """,
    )
    history = rig.client.get(_api(latest)).json()["history"]
    assert [h["period_start"] for h in history] == [MONTHS[-3].isoformat(), MONTHS[-1].isoformat()]
    assert rig.client.get(latest).text.count('<g class="bar') == 2
    with rig.base.sessions.begin() as s:
        void_run(s, rig.base.seeded.latest, by="controller", reason="wrong bill")
    page = rig.client.get(latest)
    assert page.status_code == 410 and 'data-reason="withdrawn"' in page.text


def test_a_cached_page_never_opens_for_another_unit(rig: CacheRig) -> None:
    acme = rig.link(rig.base.seeded.latest)
    beta = rig.link(rig.base.seeded.latest, "A102", "BETA")
    assert rig.page(acme).status_code == 200
    token = acme.split("/")[-1]
    for path in (f"/t/A102/{token}", f"/t/A103/{token}"):
        page = rig.client.get(path)
        assert page.status_code == 403 and 'data-reason="wrong_unit"' in page.text
        assert "ACME" not in page.text
        assert rig.client.get(_api(path)).status_code == 403
    data = rig.client.get(_api(beta)).json()
    assert data["statement"]["party"] == "BETA" and data["statement"]["unit"]["id"] == "A102"
    page = rig.page(beta)
    assert page.status_code == 200 and "ACME" not in page.text


def test_revocation_and_answers_show_at_once_on_postgres(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    with _rig(tmp_path, url=fresh_postgres_url, months=2) as rig:
        path = rig.link(rig.base.seeded.latest)
        assert rig.page(path).text.count('<g class="bar') == 2
        assert rig.client.post(f"{_api(path)}/confirm", json={"name": "王五"}).status_code == 200
        assert 'data-testid="confirmed"' in rig.client.get(path).text
        _add_lease(rig, "A101", "ACME", "L1")
        assert rig.page(path).status_code == 200
        in_another_process(
            rig.url,
            """
            from sqlalchemy import update
            from cloud.leases.models import StatementAccess
            from datetime import date
            with sessions.begin() as s:
                s.execute(update(StatementAccess).values(revoked_on=date(2025, 6, 1)))
        """,
        )
        assert rig.client.get(path).status_code == 410
