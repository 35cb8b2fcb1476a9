"""Bench: ingest throughput and billing reads, on real mosquitto and influxd, in one run.

1. Raw store write rate: pre-built line protocol POSTed straight to influxd's /write in
   batches of 5,000 points — the floor no ingest can beat.
2. End-to-end ingest rate: pre-signed envelopes (500 readings each, as a gateway batches
   them) published at QoS 1 → real mosquitto → ``meterflow cloud ingest`` in its own process
   (verify, dedupe, validate) → influxd; timed from the first publish until the ledger has
   every envelope. Figure: e2e ÷ raw; goal ≥ 0.25.
3. ``register_matrix`` for 10,000 meters × 31 days (four readings a day) against the time of
   the same InfluxQL query fetched raw over HTTP (no parsing), and against a naive select of
   every point.

    python bench/ingest_throughput.py [--quick]

The servers are started with deploy/local/*.sh on free ports and stopped at the end. The last
line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import urllib3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from cloud.ingest.models import SeenEnvelope
from cloud.registry.db import open_registry
from cloud.registry.service import register_gateway
from cloud.series.base import SeriesPoint, to_ns
from cloud.series.influx import InfluxSeriesStore, line_protocol
from edge.keys import GatewayIdentity
from edge.wire import ClockState, Quality, Reading, ReadingsPayload, Topics, seal

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy" / "local"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, script: str, data_dir: Path) -> None:
        self.script, self.dir, self.port = DEPLOY / script, data_dir, free_port()
        data_dir.mkdir(parents=True)
        if os.geteuid() == 0:
            data_dir.chmod(0o777)  # mosquitto drops to its own user
        subprocess.run(
            ["bash", str(self.script), "start", str(data_dir), str(self.port)],
            check=True,
            capture_output=True,
            timeout=90,
        )

    def stop(self) -> None:
        subprocess.run(
            ["bash", str(self.script), "stop", str(self.dir)],
            check=False,
            capture_output=True,
            timeout=60,
        )


def raw_write_rate(influx_url: str, db: str, points: int, batch: int = 5000) -> float:
    lines = [
        line_protocol(
            SeriesPoint(
                "s", f"R{i % 1000}", "energy_import", to_ns(T0) + i * 10**9, float(i), "good"
            )
        )
        for i in range(points)
    ]
    bodies = ["\n".join(lines[i : i + batch]).encode() for i in range(0, points, batch)]
    http = urllib3.PoolManager()
    url = f"{influx_url}/write?{urlencode({'db': db, 'precision': 'ns'})}"
    started = time.perf_counter()
    for body in bodies:
        resp = http.request("POST", url, body=body)
        assert resp.status == 204, resp.data
    return points / (time.perf_counter() - started)


def signed_envelopes(identity: GatewayIdentity, envelopes: int, per: int) -> list[bytes]:
    out = []
    for seq in range(envelopes):
        readings = [
            Reading(
                meter=f"M{k:04d}",
                quantity="energy_import",
                value=Decimal(1000 + seq) + Decimal(k) / 100,
                unit="kWh",
                read_at=T0 + timedelta(minutes=15 * seq),
                quality=Quality.GOOD,
                round=f"r{seq}",
            )
            for k in range(per)
        ]
        payload = ReadingsPayload(
            gateway="gw1",
            kid=identity.kid,
            seq=seq,
            epoch=1,
            sent_at=T0 + timedelta(minutes=15 * seq),
            clock=ClockState.SYNCED,
            readings=readings,
        )
        out.append(seal(payload, identity.private_key))
    return out


def e2e_rate(
    work: Path, broker_port: int, influx_url: str, db: str, envelopes: int, per: int
) -> tuple[float, float]:
    import paho.mqtt.client as mqtt

    identity = GatewayIdentity(Ed25519PrivateKey.generate())
    registry_url = f"sqlite:///{work / 'registry.sqlite'}"
    registry = open_registry(registry_url)
    with registry.begin() as session:
        register_gateway(session, "s1", "gw1", identity.public_key)
    bodies = signed_envelopes(identity, envelopes, per)
    env = {
        **os.environ,
        "MF_MQTT_URL": f"mqtt://127.0.0.1:{broker_port}",
        "MF_DB_URL": registry_url,
        "MF_SERIES_BACKEND": "influxdb",
        "MF_INFLUX_URL": influx_url,
        "MF_INFLUX_BUCKET": db,
        "MF_DATA_DIR": str(work),
    }
    log = (work / "ingest.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "meterflow", "cloud", "ingest"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while "subscribed to" not in (work / "ingest.log").read_text():
            assert time.monotonic() < deadline and worker.poll() is None, "worker did not start"
            time.sleep(0.05)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pub")
        client.max_inflight_messages_set(100)
        client.connect("127.0.0.1", broker_port)
        client.loop_start()
        topic = Topics().readings("s1", "gw1")
        started = time.perf_counter()
        infos = [client.publish(topic, body, qos=1) for body in bodies]
        for info in infos:
            info.wait_for_publish(120)
        published = time.perf_counter() - started

        def seen() -> int:
            with registry() as s:
                return s.scalar(select(func.count()).select_from(SeenEnvelope))

        deadline = time.monotonic() + 600
        while seen() < envelopes:
            assert time.monotonic() < deadline, "ingest did not finish in 600 s"
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        client.disconnect()
        client.loop_stop()
    finally:
        worker.terminate()
        worker.wait(10)
    return envelopes * per / elapsed, envelopes * per / published


def matrix_figures(influx_url: str, db: str, meters: int, days: int) -> dict[str, float]:
    store = InfluxSeriesStore(influx_url, db)
    per_day = 4
    batch: list[SeriesPoint] = []
    for m in range(meters):
        for k in range(days * per_day):
            batch.append(
                SeriesPoint(
                    "s",
                    f"U{m:05d}",
                    "energy_import",
                    to_ns(T0) + k * 6 * 3600 * 10**9 + m * 10**6,
                    float(m + k),
                    "good",
                )
            )
            if len(batch) == 50_000:
                store.write(batch)
                batch = []
    store.write(batch)
    ids = [f"U{m:05d}" for m in range(meters)]
    start, end = T0 - timedelta(hours=8), T0 - timedelta(hours=8) + timedelta(days=days)
    ours, raw, naive = [], [], []
    http = urllib3.PoolManager()
    edges_q = (
        f'SELECT last(value) AS value, last(quality) AS quality FROM "reading"'
        f" WHERE site = 's' AND quantity = 'energy_import' AND time >= {to_ns(start)}"
        f" AND time < {to_ns(end)} GROUP BY time(86400000000000ns,"
        f" {to_ns(start) % 86400000000000}ns), meter fill(none)"
    )
    naive_q = (
        f"SELECT value, quality FROM \"reading\" WHERE site = 's' AND quantity = 'energy_import'"
        f" AND time >= {to_ns(start)} AND time < {to_ns(end)} GROUP BY meter"
    )
    for _ in range(3):
        t = time.perf_counter()
        matrix = store.register_matrix(ids, "energy_import", start, end, "1d", site="s")
        ours.append(time.perf_counter() - t)
        for q, sink in ((edges_q, raw), (naive_q, naive)):
            t = time.perf_counter()
            resp = http.request(
                "POST",
                f"{influx_url}/query",
                body=urlencode({"db": db, "q": q, "epoch": "ns"}),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert resp.status == 200 and len(resp.data) > 0
            sink.append(time.perf_counter() - t)
    assert matrix.values.shape == (meters, days) and bool(matrix.mask.all())
    return {
        "matrix_s": statistics.median(ours),
        "raw_query_s": statistics.median(raw),
        "naive_select_s": statistics.median(naive),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    raw_points, envelopes, per = (50_000, 20, 500) if args.quick else (200_000, 200, 500)
    meters, days = (1_000, 31) if args.quick else (10_000, 31)

    work = Path(tempfile.mkdtemp(prefix="mf-bench-ingest-"))
    os.chmod(work, 0o755)
    mosquitto = Server("mosquitto.sh", work / "mosquitto")
    influx = Server("influxdb.sh", work / "influxdb")
    influx_url = f"http://127.0.0.1:{influx.port}"
    try:
        for db in ("raw", "e2e", "matrix"):
            InfluxSeriesStore(influx_url, db).create_database()
        # Raw rate before and after the end-to-end run: the median of the three brackets
        # the noise of a shared machine.
        raws = [raw_write_rate(influx_url, "raw", raw_points)]
        e2e, publish = e2e_rate(work, mosquitto.port, influx_url, "e2e", envelopes, per)
        raws += [raw_write_rate(influx_url, "raw", raw_points) for _ in range(2)]
        raw = statistics.median(raws)
        matrix = matrix_figures(influx_url, "matrix", meters, days)
    finally:
        mosquitto.stop()
        influx.stop()
    ratio = e2e / raw
    print(
        f"raw write to influxd: {raw:,.0f} points/s (median of "
        + ", ".join(f"{r:,.0f}" for r in raws)
        + ")"
    )
    print(
        f"end-to-end ingest:    {e2e:,.0f} points/s ({envelopes} envelopes × {per}); "
        f"publishing alone {publish:,.0f} points/s"
    )
    print(f"e2e ÷ raw = {ratio:.3f} (goal ≥ 0.25)")
    print(
        f"register_matrix {meters} meters × {days} days: {matrix['matrix_s']:.3f} s; "
        f"the same InfluxQL fetched raw {matrix['raw_query_s']:.3f} s; "
        f"naive select of all points {matrix['naive_select_s']:.3f} s"
    )
    print(
        json.dumps(
            {
                "bench": "ingest_throughput",
                "raw_points_per_s": round(raw),
                "e2e_points_per_s": round(e2e),
                "ratio": round(ratio, 3),
                "goal_ratio": 0.25,
                "envelopes": envelopes,
                "readings_per_envelope": per,
                "matrix_meters": meters,
                "matrix_days": days,
                "matrix_s": round(matrix["matrix_s"], 3),
                "matrix_raw_query_s": round(matrix["raw_query_s"], 3),
                "matrix_vs_raw_query": round(matrix["matrix_s"] / matrix["raw_query_s"], 2),
                "naive_select_s": round(matrix["naive_select_s"], 3),
                "pass": ratio >= 0.25,
            }
        )
    )


if __name__ == "__main__":
    main()
