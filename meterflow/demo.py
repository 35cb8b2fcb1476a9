"""The demo: the product's main job on embedded defaults, in one process, in about a minute.

A small park (:mod:`meterflow.scenarios.demo_park`: main → a branch → units, a common meter,
a vacant unit, a CT meter) of simulated DL/T645-2007 meters on a TCP line → gateway agent
(reads, outbox, signs) → in-process MQTT broker → cloud ingest (verifies, dedupes) → SQLite
series store, over a month of meter time on a simulated clock. Then the monthly close as
finance does it: import the park's site file, enter the utility bill, close, review by one
account, approve and post by another, and print the tenant links. ``meterflow demo --serve``
serves the pages on 127.0.0.1 with those accounts.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cloud.apportion.case.canonical import plain
from cloud.apportion.close import CloseService
from cloud.apportion.configuration import import_site
from cloud.apportion.models import ApportionLine, ApportionStatement
from cloud.apportion.review import RunAction, RunReviewService
from cloud.apportion.site import dump_site, parse_site
from cloud.gateways.provisioning import CloudSigner
from cloud.ingest.service import IngestService
from cloud.ingest.worker import IngestWorker
from cloud.registry.db import open_registry
from cloud.registry.service import register_gateway, register_meter
from cloud.series.base import SeriesStore, to_ns
from cloud.series.sqlite import SqliteSeriesStore
from cloud.staff.accounts import AccountService, Principal, Role, SessionKind
from cloud.statements.links import StatementKey, TenantLinkService, WebSecret
from edge.agent import GatewayAgent
from edge.config import GroupConfig, LineConfig, MeterConfig, SiteConfig
from edge.keys import GatewayIdentity
from edge.outbox import OutboxStore
from edge.publisher import MqttPublisher
from meterflow.broker import EmbeddedBroker
from meterflow.scenarios import demo_park as park
from simulators.dlt645_meter import Dlt645Line, SimulatedMeter, serve_in_thread
from simulators.load import SimClock

ZONE = ZoneInfo("Asia/Shanghai")
#: The demo's month: November 2026 in the park's calendar.
FIRST_DAY = date(2026, 11, 1)
#: Finance's two accounts: one reviews, the other approves and posts (four eyes).
REVIEWER, APPROVER = "fin-a", "fin-b"
DEFAULT_PORT = 8765
SUMMARY = "demo.json"
ACCOUNTS = "demo-accounts.json"


def _wait(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=ZONE)


def _private(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)


def run_demo(
    *,
    days: int,
    interval_h: int,
    data_dir: Path,
    echo: Callable[[str], None],
    port: int = DEFAULT_PORT,
) -> dict[str, int]:
    """Run the demo (see the module docstring); return the summary's counts.

    ``days`` of meter time from 2026-11-01 local midnight, a polling round every
    ``interval_h`` hours (a divisor of 24, so that a round falls on every local midnight).
    """
    if 24 % interval_h:
        raise ValueError(f"interval_h must divide 24 (rounds at every midnight), got {interval_h}")
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    start = _midnight(FIRST_DAY)
    clock = SimClock(start.astimezone(UTC))
    broker = EmbeddedBroker()
    broker.start()
    echo(f"broker   embedded MQTT broker on {broker.url}")
    registry = open_registry(f"sqlite:///{data_dir / 'registry.sqlite'}")
    store = SqliteSeriesStore(data_dir / "series.sqlite")
    try:
        stored, rejected = meter_month(
            broker.url, registry, store, clock, days, interval_h, data_dir, echo
        )
    finally:
        broker.stop()
        store.close()
        registry.kw["bind"].dispose()
    summary = _close_month(data_dir, FIRST_DAY, FIRST_DAY + timedelta(days=days), echo, port)
    out = {
        "meters": len(park.METERS),
        "readings_stored": stored,
        "rejected": rejected,
        **summary,
    }
    (data_dir / SUMMARY).write_text(json.dumps(out), encoding="utf-8")
    return out


def meter_month(
    broker_url: str,
    registry: sessionmaker[Session],
    store: SeriesStore,
    clock: SimClock,
    days: int,
    interval_h: int,
    work_dir: Path,
    echo: Callable[[str], None],
) -> tuple[int, int]:
    """The park's meters → gateway (keys and outbox in ``work_dir``) → the broker at
    ``broker_url`` → ingest into ``registry`` and ``store``, for ``days`` of meter time from
    the clock's now, a round every ``interval_h`` hours; (readings stored, rejected)."""
    loads = park.loads(clock.now() - timedelta(days=365))
    line = Dlt645Line([SimulatedMeter(m.address, loads[m.id], clock=clock) for m in park.METERS])
    sim_port, stop_sim = serve_in_thread(line)
    echo(
        f"meters   {len(park.METERS)} simulated DL/T645-2007 meters on tcp://127.0.0.1:{sim_port}"
        f" (main → branch → units, a lift, a vacant unit, a 20:1 CT meter)"
    )
    identity = GatewayIdentity.create(work_dir / "gateway.key")
    with registry.begin() as session:
        kid = register_gateway(session, park.SITE, park.GATEWAY, identity.public_key)
        for m in park.METERS:
            register_meter(
                session, park.SITE, m.id, protocol="dlt645", address=m.address,
                gateway_id=park.GATEWAY,
            )  # fmt: skip
    echo(f"registry gateway {park.GATEWAY} registered with key {kid}")
    service = IngestService(registry, store, now=clock.now)
    worker = IngestWorker(service, broker_url, client_id="demo-ingest")
    worker.start()
    by_node = {m.id: m for m in park.METERS}
    config = SiteConfig(
        site=park.SITE,
        gateway=park.GATEWAY,
        metrics_port=0,
        groups=[
            GroupConfig(name="billing", interval_s=interval_h * 3600, quantities=["energy_import"])
        ],
        lines=[
            LineConfig(
                name="rs485-1",
                tcp=f"127.0.0.1:{sim_port}",
                timeout_s=1.0,
                meters=[
                    MeterConfig(
                        id=m.id,
                        address=m.address,
                        ct=Decimal(m.ct),
                        parent=by_node[m.id].parent and _meter_of(by_node[m.id].parent),
                        role=m.kind,
                    )
                    for m in park.METERS
                ],
            )
        ],
    )
    outbox = OutboxStore(work_dir / "outbox.sqlite")
    publisher = MqttPublisher(
        broker_url, site=park.SITE, gateway=park.GATEWAY, on_acked=outbox.acknowledge
    )
    publisher.start()
    if not publisher.connected.wait(10):
        raise RuntimeError(f"the gateway could not connect to {broker_url}")
    agent = GatewayAgent(config, identity, outbox, publisher, now=clock.now)
    rounds = days * 24 // interval_h + 1

    async def poll() -> int:
        produced = 0
        for n in range(1, rounds + 1):
            report = await agent.poll_round()
            sent = agent.pump()
            produced += report.good + report.failed
            if n == 1 or n == rounds or (clock.now().astimezone(ZONE).hour == 0 and n % 28 == 1):
                echo(
                    f"round    {n}/{rounds} {clock.now().astimezone(ZONE):%Y-%m-%d %H:%M}: "
                    f"{report.good} read, {report.failed} failed, {sent} envelope(s) published"
                )
            clock.advance(interval_h * 3600)
        await agent.close()
        return produced

    try:
        produced = asyncio.run(poll())

        def all_stored() -> bool:
            agent.pump()
            return (
                outbox.depth().unacked_envelopes == 0 and service.stats.readings_stored >= produced
            )

        delivered = _wait(all_stored, timeout_s=60)
        stats = service.stats
        echo(
            f"ingest   {stats.stored} envelopes stored ({stats.readings_stored} readings), "
            f"{stats.duplicates} duplicates, {stats.rejected} rejected"
            + ("" if delivered else " — timed out waiting for the rest")
        )
    finally:
        publisher.stop()
        worker.stop()
        stop_sim()
        outbox.close()
    return stats.readings_stored, stats.rejected


def _meter_of(node: str) -> str:
    return next(m.id for m in park.METERS if m.node == node)


def utility_bill(store: SeriesStore, start: date, end: date) -> dict[str, Any]:
    """The utility company's bill: the main meter's use over [start, end) × the catalogue
    price, from the stored readings at the two local midnights."""
    values = []
    for day in (start, end):
        at = to_ns(_midnight(day))
        frame = store.read(
            "M01",
            "energy_import",
            _midnight(day),
            _midnight(day) + timedelta(seconds=1),
            site=park.SITE,
        )
        if not len(frame) or int(frame.times_ns[0]) != at:
            raise RuntimeError(f"the main meter has no reading at {day} 00:00")
        values.append(Decimal(str(frame.values[0])))
    amount = ((values[1] - values[0]) * Decimal(park.PRICE)).quantize(
        Decimal("0.01"), ROUND_HALF_UP
    )
    return {"invoice": f"SGCC-{start:%Y%m}-0001", "amounts": {"total": str(amount)}}


def _close_month(
    data_dir: Path, start: date, end: date, echo: Callable[[str], None], port: int
) -> dict[str, int]:
    """Site file → bill → close → review (fin-a) → approve and post (fin-b) → links."""
    sessions = open_registry(f"sqlite:///{data_dir / 'registry.sqlite'}")
    try:
        site_text = dump_site(park.site_file(date(2026, 1, 1)))
        (data_dir / "site.yaml").write_text(site_text, encoding="utf-8")
        with sessions.begin() as session:
            report = import_site(session, parse_site(site_text, "site.yaml"), by="demo")
        echo(f"site     {park.SITE}: site file imported ({sum(report.created.values())} items)")
        store = SqliteSeriesStore(data_dir / "series.sqlite")
        try:
            bill = utility_bill(store, start, end)
        finally:
            store.close()
        (data_dir / "bill.yaml").write_text(yaml.safe_dump({"bill": bill}), encoding="utf-8")
        total = bill["amounts"]["total"]
        echo(f"bill     {bill['invoice']}: {total} CNY (the main meter's month × {park.PRICE})")
        accounts = AccountService(sessions)
        passwords = {name: secrets.token_urlsafe(12) for name in (REVIEWER, APPROVER)}
        for name, password in passwords.items():
            accounts.create_account(name, password, Role.FINANCE, [park.SITE])
        _private(data_dir / ACCOUNTS, json.dumps(passwords))
        who = {
            name: accounts.sign_in(name, password, SessionKind.API).principal
            for name, password in passwords.items()
        }
        signer = CloudSigner.load_or_create(data_dir / "cloud.key")
        closing = CloseService(sessions, lambda: SqliteSeriesStore(data_dir / "series.sqlite"))
        closed = closing.close(who[REVIEWER], site_id=park.SITE, start=start, end=end, bill=bill)
        run = closed.run.id
        echo(
            f"close    run {run}: {'HELD' if closed.run.held else 'draft'}, "
            f"{closed.interpolated} interpolated readings, {len(closed.missing)} missing"
        )
        runs = RunReviewService(sessions, _private_key(data_dir), signer.public_key)
        steps: list[tuple[Principal, RunAction]] = [
            (who[REVIEWER], RunAction.REVIEW),
            (who[APPROVER], RunAction.APPROVE),
            (who[APPROVER], RunAction.POST),
        ]
        for principal, action in steps:
            status = runs.act(principal, run, action)
            echo(f"run      {action.value} by {principal.username}: {status}")
        links = TenantLinkService(sessions, WebSecret.load_or_create(data_dir / "web.secret"))
        with sessions() as session:
            statements = list(
                session.scalars(select(ApportionStatement).where(ApportionStatement.run_id == run))
            )
            lines_cents = int(
                session.scalar(
                    select(func.sum(ApportionLine.cents)).where(ApportionLine.run_id == run)
                )
                or 0
            )
        for s in statements:
            if s.unit:
                path = links.link_for(StatementKey(run, s.unit, s.party)).path()
                echo(f"tenant   {s.unit} {s.party}: http://127.0.0.1:{port}{path}")
    finally:
        sessions.kw["bind"].dispose()
    bill_cents = int(Decimal(bill["amounts"]["total"]) * 100)
    return {"statements": len(statements), "bill_cents": bill_cents, "lines_cents": lines_cents}


def _private_key(data_dir: Path):  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key((data_dir / "cloud.key").read_bytes(), password=None)


def serve_demo(data_dir: Path, port: int, echo: Callable[[str], None]) -> None:
    """Serve the demo's pages on 127.0.0.1:``port`` (after :func:`run_demo`) until stopped."""
    from meterflow.cli.web import cloud_api

    summary = json.loads((data_dir / SUMMARY).read_text(encoding="utf-8"))
    passwords = json.loads((data_dir / ACCOUNTS).read_text(encoding="utf-8"))
    os.environ.update(
        MF_DATA_DIR=str(data_dir),
        MF_DB_URL=f"sqlite:///{data_dir / 'registry.sqlite'}",
        MF_SERIES_BACKEND="sqlite",
        MF_WEB_PUBLIC_URL=f"http://127.0.0.1:{port}",
    )
    base = f"http://127.0.0.1:{port}"
    echo(f"serving  the demo's pages on {base} (Ctrl-C stops)")
    echo(f"finance  {base}/finance/runs — sign in as {REVIEWER} / {passwords[REVIEWER]}")
    echo(f"         or as {APPROVER} / {passwords[APPROVER]}")
    echo(f"summary  {json.dumps(plain(summary))}")
    cloud_api(host="127.0.0.1", port=port, gateway_feed=False)
