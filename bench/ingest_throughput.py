"""Bench: ingest throughput and billing reads, on real mosquitto and influxd, in one run.

1. Raw store write rate: pre-built line protocol POSTed straight to influxd's /write in
   batches of 5,000 points — the floor no ingest can beat.
2. Bare consumer: a paho client in its own process subscribes (QoS 1, acknowledged on
   receipt) and writes every envelope's readings to influxd — payload decoded, no signature
   check, no dedupe, no validation, batched like the worker (200 messages or 20 ms, one POST).
   The real alternative to our ingest, on the same broker and influxd.
3. End-to-end ingest: ``meterflow cloud ingest`` in its own process (verify, dedupe,
   validate, manual acknowledgement after the write) → influxd; timed from the first publish
   until the ledger has every envelope.
   Both consumers get the same pre-signed envelopes (500 readings each, as a gateway batches
   them) published at QoS 1; the three measures alternate in rounds (3 by default), each on
   its own database and topic prefix; rates are medians over the rounds, and the ratios the
   median of each round's ratio (the three measures of a round run back to back).
   Goals: e2e ≥ 0.85 × bare consumer, e2e ≥ 0.25 × raw writes.
4. ``register_matrix`` for 10,000 meters × 31 days (four readings a day) against the time of
   the same InfluxQL query fetched raw over HTTP (no parsing), and against a naive select of
   every point. Goal: ≤ 2 × the raw query.

    python bench/ingest_throughput.py [--quick] [--rounds N]

The servers are started with deploy/local/*.sh on free ports and stopped at the end, the
broker with the shipped config's in-flight and queue limits. The last line printed is one
JSON object with the figures, the load average before and after, and ``pass`` (every goal
met); the exit status is 0 when it holds, else 1.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import queue
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import urllib3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from cloud.ingest.models import IngestStream
from cloud.registry.db import open_registry
from cloud.registry.service import register_gateway
from cloud.series.base import SeriesPoint, to_ns
from cloud.series.influx import InfluxSeriesStore, line_protocol, line_protocol_lines
from edge.keys import GatewayIdentity
from edge.wire import ClockState, Quality, Reading, ReadingsPayload, Topics, seal
from edge.wire.mqtt import BrokerAddress, mqtt_client

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy" / "local"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TICKS = os.sysconf("SC_CLK_TCK")
GOALS = {"e2e_vs_bare": 0.85, "e2e_vs_raw": 0.25, "matrix_vs_raw_query": 2.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_avg() -> list[float]:
    """The 1-, 5- and 15-minute load averages (runnable processes), rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def production_broker_limits() -> str:
    """The shipped broker's in-flight and queue limits (deploy/mosquitto/meterflow.conf):
    ingest acknowledges after storing, so mosquitto's default of 20 messages in flight would
    cap its batches at 20 envelopes and starve the prepare/commit pipeline."""
    conf = (ROOT / "deploy" / "mosquitto" / "meterflow.conf").read_text().splitlines()
    limits = [x for x in conf if x.startswith(("max_inflight_messages", "max_queued_messages"))]
    assert len(limits) == 2, "meterflow.conf no longer sets both limits"
    return "\n".join(limits) + "\n"


class Server:
    def __init__(self, script: str, data_dir: Path, conf: str = "") -> None:
        self.script, self.dir, self.port = DEPLOY / script, data_dir, free_port()
        data_dir.mkdir(parents=True)
        if os.geteuid() == 0:
            data_dir.chmod(0o777)  # mosquitto drops to its own user
        if conf:  # mosquitto.sh includes DATADIR/conf.d/*.conf
            (data_dir / "conf.d").mkdir()
            (data_dir / "conf.d" / "bench.conf").write_text(conf)
            for path in (data_dir / "conf.d", data_dir / "conf.d" / "bench.conf"):
                path.chmod(0o755 if path.is_dir() else 0o644)
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
    """Points per second POSTing pre-built line protocol to ``/write``."""
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
    """Envelopes 15 minutes apart, the last one 15 minutes ago (recent, as a live gateway's
    would be: ingest may refuse read times far from receipt)."""
    first = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=15 * envelopes)
    out = []
    for seq in range(envelopes):
        at = first + timedelta(minutes=15 * seq)
        readings = [
            Reading(
                meter=f"M{k:04d}",
                quantity="energy_import",
                value=Decimal(1000 + seq) + Decimal(k) / 100,
                unit="kWh",
                read_at=at,
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
            sent_at=at,
            clock=ClockState.SYNCED,
            readings=readings,
        )
        out.append(seal(payload, identity.private_key))
    return out


def publish_all(broker_url: str, topic: str, bodies: list[bytes]) -> tuple[float, float]:
    """Publish at QoS 1 (100 in flight); returns (perf_counter at the first publish, seconds
    until the broker acknowledged the last)."""
    client = mqtt_client(BrokerAddress.parse(broker_url), "bench-pub", clean_session=True)
    client.max_inflight_messages_set(100)
    broker = BrokerAddress.parse(broker_url)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        started = time.perf_counter()
        infos = [client.publish(topic, body, qos=1) for body in bodies]
        for info in infos:
            info.wait_for_publish(120)
        return started, time.perf_counter() - started
    finally:
        client.disconnect()
        client.loop_stop()


# -- the bare consumer (its own process: ``--bare-consumer JSON``) -----------------------------


def _b64url(part: bytes) -> bytes:
    return base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4))


def bare_points(topic: str, body: bytes) -> list[SeriesPoint]:
    """An envelope's readings as points: the JWS payload decoded, nothing checked."""
    payload = json.loads(_b64url(body.split(b".")[1]))
    site = topic.split("/")[-4]
    return [
        SeriesPoint(
            site=site,
            meter=r["meter"],
            quantity=r["quantity"],
            time_ns=to_ns(datetime.fromisoformat(r["read_at"])),
            value=None if r["value"] is None else float(r["value"]),
            quality=r["quality"],
            unit=r["unit"],
            gateway=payload["gateway"],
            round=r["round"],
        )
        for r in payload["readings"]
    ]


def bare_consumer(config: dict[str, str | int]) -> None:
    """Subscribe, write each batch's points in one POST, print ``done`` after the expected
    number of envelopes (messages are acknowledged by paho on receipt)."""
    inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
    subscribed = threading.Event()
    broker = BrokerAddress.parse(str(config["broker_url"]))
    client = mqtt_client(broker, f"bench-bare-{config['prefix']}", clean_session=True)
    client.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe(
        Topics(str(config["prefix"])).readings_filter(), qos=1
    )
    client.on_subscribe = lambda *_a: subscribed.set()
    client.on_message = lambda _c, _u, msg: inbox.put((msg.topic, msg.payload))
    client.connect(broker.host, broker.port)
    client.loop_start()
    assert subscribed.wait(30), "bare consumer: no subscription"
    print("subscribed", flush=True)
    http = urllib3.PoolManager()
    url = f"{config['influx_url']}/write?{urlencode({'db': config['db'], 'precision': 'ns'})}"
    done = 0
    while done < int(config["envelopes"]):
        batch = [inbox.get()]
        deadline = time.monotonic() + 0.02
        while len(batch) < 200:
            try:
                batch.append(inbox.get(timeout=max(deadline - time.monotonic(), 0)))
            except queue.Empty:
                break
        lines = line_protocol_lines([p for topic, body in batch for p in bare_points(topic, body)])
        resp = http.request("POST", url, body="\n".join(lines).encode())
        assert resp.status == 204, resp.data
        done += len(batch)
    print("done", flush=True)
    sys.stdin.read()  # until the bench closes our stdin
    client.disconnect()
    client.loop_stop()


def _read_line(stream, timeout_s: float) -> str:  # type: ignore[no-untyped-def]
    got: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: got.put(stream.readline()), daemon=True).start()
    return got.get(timeout=timeout_s).strip()


def bare_rate(
    broker_url: str, influx_url: str, db: str, prefix: str, bodies: list[bytes], per: int
) -> dict[str, float]:
    """Points per second through the bare consumer, and its CPU seconds for them."""
    config = {
        "broker_url": broker_url,
        "influx_url": influx_url,
        "db": db,
        "prefix": prefix,
        "envelopes": len(bodies),
    }
    consumer = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--bare-consumer", json.dumps(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert consumer.stdout is not None and consumer.stdin is not None
    try:
        assert _read_line(consumer.stdout, 60) == "subscribed", "bare consumer did not start"
        cpu0 = cpu_seconds(consumer.pid)
        started, published = publish_all(broker_url, Topics(prefix).readings("s1", "gw1"), bodies)
        assert _read_line(consumer.stdout, 600) == "done", "bare consumer did not finish"
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(consumer.pid) - cpu0
        consumer.stdin.close()
        consumer.wait(30)
    finally:
        consumer.kill()
        consumer.wait(10)
    points = len(bodies) * per
    return {"rate": points / elapsed, "cpu_s": cpu, "publish_rate": points / published}


# -- the end-to-end run through ``meterflow cloud ingest`` ------------------------------------


def e2e_rate(
    work: Path,
    broker_url: str,
    influx_url: str,
    db: str,
    prefix: str,
    identity: GatewayIdentity,
    bodies: list[bytes],
    per: int,
) -> dict[str, float]:
    """Points per second through our ingest (fresh registry, database and topic prefix),
    and the worker's CPU seconds for them."""
    registry_url = f"sqlite:///{work / f'registry-{db}.sqlite'}"
    registry = open_registry(registry_url)
    with registry.begin() as session:
        register_gateway(session, "s1", "gw1", identity.public_key)
    env = {
        **os.environ,
        "MF_MQTT_URL": broker_url,
        "MF_DB_URL": registry_url,
        "MF_SERIES_BACKEND": "influxdb",
        "MF_INFLUX_URL": influx_url,
        "MF_INFLUX_BUCKET": db,
        "MF_DATA_DIR": str(work),
        "MF_INGEST_MAX_AGE_DAYS": "36500",  # readings stamped from T0 (2026-01-01) on
        "MF_INGEST_MAX_AHEAD_HOURS": "876000",
        "MF_TOPIC_PREFIX": prefix,
    }
    log_path = work / f"ingest-{db}.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "meterflow", "cloud", "ingest", "--client-id", f"bench-{db}"],
        env=env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )

    def seen() -> int:
        with registry() as s:
            return s.scalar(select(func.coalesce(func.sum(IngestStream.floor), 0)))

    try:
        deadline = time.monotonic() + 60
        while "subscribed to" not in log_path.read_text():
            assert time.monotonic() < deadline and worker.poll() is None, "worker did not start"
            time.sleep(0.05)
        cpu0 = cpu_seconds(worker.pid)
        started, published = publish_all(broker_url, Topics(prefix).readings("s1", "gw1"), bodies)
        deadline = time.monotonic() + 600
        while seen() < len(bodies):
            assert time.monotonic() < deadline, f"ingest did not finish in 600 s ({log_path})"
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(worker.pid) - cpu0
    finally:
        worker.terminate()
        worker.wait(10)
    points = len(bodies) * per
    return {"rate": points / elapsed, "cpu_s": cpu, "publish_rate": points / published}


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of raw, bare and e2e")
    parser.add_argument("--bare-consumer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_consumer:
        bare_consumer(json.loads(args.bare_consumer))
        return 0
    raw_points, envelopes, per = (50_000, 20, 500) if args.quick else (200_000, 200, 500)
    meters, days = (1_000, 31) if args.quick else (10_000, 31)

    load_start = load_avg()
    work = Path(tempfile.mkdtemp(prefix="mf-bench-ingest-"))
    os.chmod(work, 0o755)
    mosquitto = Server("mosquitto.sh", work / "mosquitto", production_broker_limits())
    influx = Server("influxdb.sh", work / "influxdb")
    broker_url = f"mqtt://127.0.0.1:{mosquitto.port}"
    influx_url = f"http://127.0.0.1:{influx.port}"
    identity = GatewayIdentity(Ed25519PrivateKey.generate())
    bodies = signed_envelopes(identity, envelopes, per)
    raws: list[float] = []
    bares: list[dict[str, float]] = []
    e2es: list[dict[str, float]] = []
    try:
        # Rounds alternate the three measures (bare and e2e swap places every round), each on
        # fresh databases and its own topic prefix: medians bracket a shared machine's noise.
        for r in range(args.rounds):
            for db in (f"raw{r}", f"bare{r}", f"e2e{r}"):
                InfluxSeriesStore(influx_url, db).create_database()
            raws.append(raw_write_rate(influx_url, f"raw{r}", raw_points))
            runs = [
                lambda r=r: bares.append(
                    bare_rate(broker_url, influx_url, f"bare{r}", f"bare{r}", bodies, per)
                ),
                lambda r=r: e2es.append(
                    e2e_rate(
                        work, broker_url, influx_url, f"e2e{r}", f"e2e{r}", identity, bodies, per
                    )
                ),
            ]
            for run in runs if r % 2 == 0 else runs[::-1]:
                run()
            print(
                f"round {r + 1}: raw {raws[-1]:,.0f}, bare {bares[-1]['rate']:,.0f}, "
                f"e2e {e2es[-1]['rate']:,.0f} points/s; load {load_avg()}",
                flush=True,
            )
        InfluxSeriesStore(influx_url, "matrix").create_database()
        matrix = matrix_figures(influx_url, "matrix", meters, days)
    finally:
        mosquitto.stop()
        influx.stop()
    load_end = load_avg()
    raw = statistics.median(raws)
    bare = statistics.median(b["rate"] for b in bares)
    e2e = statistics.median(e["rate"] for e in e2es)
    points = envelopes * per
    bare_cpu = statistics.median(b["cpu_s"] for b in bares)
    e2e_cpu = statistics.median(e["cpu_s"] for e in e2es)
    figures = {
        # ratios within a round (the three measured back to back, on the machine as it was
        # then), their median over the rounds: a shared machine's load drifts between rounds
        "e2e_vs_bare": statistics.median(
            e["rate"] / b["rate"] for e, b in zip(e2es, bares, strict=True)
        ),
        "e2e_vs_raw": statistics.median(e["rate"] / r for e, r in zip(e2es, raws, strict=True)),
        "matrix_vs_raw_query": matrix["matrix_s"] / matrix["raw_query_s"],
    }
    met = {
        "e2e_vs_bare": figures["e2e_vs_bare"] >= GOALS["e2e_vs_bare"],
        "e2e_vs_raw": figures["e2e_vs_raw"] >= GOALS["e2e_vs_raw"],
        "matrix_vs_raw_query": figures["matrix_vs_raw_query"] <= GOALS["matrix_vs_raw_query"],
    }
    passed = all(met.values())

    def rates(xs: list[float]) -> str:
        return ", ".join(f"{x:,.0f}" for x in xs)

    print(f"raw write to influxd: {raw:,.0f} points/s (median of {rates(raws)})")
    print(
        f"bare consumer:        {bare:,.0f} points/s (median of "
        f"{rates([b['rate'] for b in bares])}); {bare_cpu / points * 1e6:.1f} µs CPU a point"
    )
    print(
        f"end-to-end ingest:    {e2e:,.0f} points/s (median of "
        f"{rates([e['rate'] for e in e2es])}); {e2e_cpu / points * 1e6:.1f} µs CPU a point; "
        f"{envelopes} envelopes × {per}"
    )
    print(
        f"e2e ÷ bare = {figures['e2e_vs_bare']:.3f} (goal ≥ {GOALS['e2e_vs_bare']}); "
        f"e2e ÷ raw = {figures['e2e_vs_raw']:.3f} (goal ≥ {GOALS['e2e_vs_raw']})"
    )
    print(
        f"register_matrix {meters} meters × {days} days: {matrix['matrix_s']:.3f} s; "
        f"the same InfluxQL fetched raw {matrix['raw_query_s']:.3f} s "
        f"(× {figures['matrix_vs_raw_query']:.2f}, goal ≤ {GOALS['matrix_vs_raw_query']}); "
        f"naive select of all points {matrix['naive_select_s']:.3f} s"
    )
    print(f"load average (1, 5, 15 min): {load_start} before, {load_end} after; pass: {passed}")
    print(
        json.dumps(
            {
                "bench": "ingest_throughput",
                "rounds": args.rounds,
                "envelopes": envelopes,
                "readings_per_envelope": per,
                "raw_points_per_s": round(raw),
                "bare_points_per_s": round(bare),
                "e2e_points_per_s": round(e2e),
                "raw_runs": [round(x) for x in raws],
                "bare_runs": [round(b["rate"]) for b in bares],
                "e2e_runs": [round(e["rate"]) for e in e2es],
                "bare_cpu_us_per_point": round(bare_cpu / points * 1e6, 2),
                "e2e_cpu_us_per_point": round(e2e_cpu / points * 1e6, 2),
                "publish_points_per_s": round(statistics.median(e["publish_rate"] for e in e2es)),
                "ratio": round(figures["e2e_vs_raw"], 3),
                "e2e_vs_bare": round(figures["e2e_vs_bare"], 3),
                "matrix_meters": meters,
                "matrix_days": days,
                "matrix_s": round(matrix["matrix_s"], 3),
                "matrix_raw_query_s": round(matrix["raw_query_s"], 3),
                "matrix_vs_raw_query": round(figures["matrix_vs_raw_query"], 2),
                "naive_select_s": round(matrix["naive_select_s"], 3),
                "goals": GOALS,
                "goals_met": met,
                "load_avg_start": load_start,
                "load_avg_end": load_end,
                "pass": passed,
            }
        )
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
