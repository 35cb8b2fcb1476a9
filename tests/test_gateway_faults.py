"""Fault tests of the whole edge → cloud path on real mosquitto and simulated meters: the
gateway runs as its own process (`meterflow edge run`), ingest verifies and stores. Each
test counts what the meters answered, what the gateway sealed and what the cloud stored."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from cloud.ingest.models import SeenEnvelope
from cloud.ingest.service import IngestService
from cloud.ingest.worker import IngestWorker
from cloud.registry.db import open_registry
from cloud.registry.service import register_gateway
from cloud.series.sqlite import SqliteSeriesStore
from edge.keys import GatewayIdentity
from meter_drivers.dlt645.frame import Frame
from simulators.dlt645_meter import Dlt645Line, SimulatedMeter, serve_in_thread
from simulators.load import LoadModel, SystemClock
from tests.tcp_proxy import TcpProxy

METERS = [f"{n:012d}" for n in (1, 2, 3, 4)]


class CountingLine(Dlt645Line):
    """A simulated line that counts the read replies it sends, per meter address."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.answered: Counter[str] = Counter()

    def answer(self, request: Frame):  # type: ignore[no-untyped-def]
        reply = super().answer(request)
        if reply is not None and request.control == 0x11:
            self.answered[request.address] += 1
        return reply


def site_toml(port: int) -> str:
    meters = "\n".join(
        f'''
[[lines.meters]]
id = "M{i}"
address = "{a}"
{'role = "main"' if i == 0 else 'parent = "M0"'}'''
        for i, a in enumerate(METERS)
    )
    return f"""site = "s1"
gateway = "gw1"
metrics_port = 0
health_interval_s = 1

[[groups]]
name = "billing"
interval_s = 1
quantities = ["energy_import"]

[outbox]
backlog_envelopes_per_s = 20

[[lines]]
name = "l1"
tcp = "127.0.0.1:{port}"
timeout_s = 0.5
{meters}
"""


class Gateway:
    """`meterflow edge run` in its own process."""

    def __init__(self, work: Path, broker_url: str, sim_port: int) -> None:
        self.work = work
        self.config = work / "site.toml"
        self.config.write_text(site_toml(sim_port))
        self.identity = GatewayIdentity.create(work / "data" / "gateway.key")
        self.env = {**os.environ, "MF_DATA_DIR": str(work / "data"), "MF_MQTT_URL": broker_url}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = work / "gateway.log"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "meterflow", "edge", "run", str(self.config)],
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        assert self.proc is None or self.proc.returncode in (0, -signal.SIGKILL), (
            self.log.read_text()[-3000:]
        )

    def outbox(self) -> dict[str, int]:
        db = sqlite3.connect(self.work / "data" / "outbox.sqlite")
        try:
            meta = dict(db.execute("SELECT key, value FROM meta"))
            meta["pending"] = db.execute("SELECT count(*) FROM pending").fetchone()[0]
            meta["unacked"] = db.execute("SELECT count(*) FROM envelopes").fetchone()[0]
        finally:
            db.close()
        return meta


@pytest.fixture()
def rig(tmp_path, mosquitto_server):
    """Simulated line, cloud ingest (SQLite registry and series) and a gateway."""
    line = CountingLine(
        [
            SimulatedMeter(a, LoadModel(5.0, seed=i), clock=SystemClock())
            for i, a in enumerate(METERS)
        ]
    )
    sim_port, stop_sim = serve_in_thread(line)
    gateway = Gateway(tmp_path, mosquitto_server.url, sim_port)
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    with registry.begin() as session:
        register_gateway(session, "s1", "gw1", gateway.identity.public_key)
    store = SqliteSeriesStore(tmp_path / "series.sqlite")
    service = IngestService(registry, store)
    worker = IngestWorker(service, mosquitto_server.url, client_id="fault-ingest")
    worker.start()
    yield line, gateway, service, worker
    gateway.stop() if gateway.proc and gateway.proc.poll() is None else None
    worker.stop()
    stop_sim()


def wait_for(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        time.sleep(0.1)


def account(
    line: CountingLine, gateway: Gateway, service: IngestService, max_unsealed: int = 0
) -> dict[str, int]:
    """Compare meters' answers, the gateway's sealed envelopes and the cloud's store."""
    outbox = gateway.outbox()
    assert outbox["pending"] == 0 and outbox["unacked"] == 0, outbox
    assert outbox["evicted_readings"] == 0
    wait_for(lambda: service.stats.stored >= outbox["next_seq"], 30, "ingest caught up")
    with service.registry() as s:
        ledger = s.execute(select(SeenEnvelope.seq, SeenEnvelope.reading_count)).all()
    # Every envelope the gateway sealed arrived, exactly once (the ledger's primary key).
    assert sorted(seq for seq, _ in ledger) == list(range(outbox["next_seq"]))
    stored = {}
    for i, address in enumerate(METERS):
        frame = service.store.read(f"M{i}", "energy_import", _T0, _T0 + timedelta(days=36500))
        assert len(set(frame.times_ns.tolist())) == len(frame)
        assert set(frame.quality.tolist()) == {"good"}
        stored[address] = len(frame)
    # No reading lost: every reading in an envelope is a stored point, and every read the
    # meters answered is stored (but those the gateway had not committed when killed).
    assert sum(n for _, n in ledger) == sum(stored.values())
    for address in METERS:
        assert line.answered[address] - max_unsealed <= stored[address] <= line.answered[address], (
            address,
            line.answered,
            stored,
        )
    return {"envelopes": outbox["next_seq"], "readings": sum(stored.values())}


from datetime import UTC, datetime  # noqa: E402

_T0 = datetime(2000, 1, 1, tzinfo=UTC)


def test_broker_stopped_for_a_while_then_restarted(rig, mosquitto_server):
    line, gateway, service, _ = rig
    gateway.start()
    wait_for(lambda: service.stats.stored >= 3, 30, "first envelopes stored")
    with mosquitto_server.stopped():
        time.sleep(4)  # the gateway keeps polling into its outbox
        assert gateway.outbox()["unacked"] + gateway.outbox()["pending"] > 0
    wait_for(lambda: gateway.outbox()["unacked"] == 0, 60, "backlog drained")
    time.sleep(1.5)
    gateway.stop()
    totals = account(line, gateway, service)
    assert totals["envelopes"] >= 8


def test_gateway_killed_mid_publish_and_restarted(rig):
    line, gateway, service, _ = rig
    gateway.start()
    wait_for(lambda: service.stats.stored >= 3, 30, "first envelopes stored")
    gateway.kill()
    kills_outbox = gateway.outbox()
    gateway.start()
    wait_for(
        lambda: gateway.outbox()["next_seq"] >= kills_outbox["next_seq"] + 3,
        30,
        "the restarted gateway sealing",
    )
    gateway.stop()
    assert gateway.outbox()["epoch"] == 2
    account(line, gateway, service, max_unsealed=1)


def test_network_to_the_broker_dropped_mid_batch(rig, mosquitto_server):
    line, gateway, service, _ = rig
    proxy = TcpProxy("127.0.0.1", mosquitto_server.port)
    proxy.start()
    gateway.env["MF_MQTT_URL"] = f"mqtt://127.0.0.1:{proxy.port}"
    try:
        gateway.start()
        wait_for(lambda: service.stats.stored >= 3, 30, "first envelopes stored")
        for _ in range(3):
            proxy.cut(2.0)  # drops whatever is in flight, refuses reconnects for 2 s
            time.sleep(3.0)
        wait_for(lambda: gateway.outbox()["unacked"] == 0, 60, "backlog drained")
        time.sleep(1.5)
        gateway.stop()
    finally:
        proxy.stop()
    account(line, gateway, service)
