"""Fixtures of the edge tests."""

from __future__ import annotations

import pytest

from cloud.ingest.service import IngestService
from cloud.ingest.worker import IngestWorker
from cloud.registry.db import open_registry
from cloud.registry.service import register_gateway
from cloud.series.sqlite import SqliteSeriesStore
from simulators.dlt645_meter import SimulatedMeter, serve_in_thread
from simulators.load import LoadModel, SystemClock
from tests.support.gateway_rig import METERS, CountingLine, Gateway


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
