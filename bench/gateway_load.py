"""Bench: the gateway agent's memory and CPU while polling 256 meters every 10 seconds.

256 simulated DL/T645-2007 meters on 8 TCP lines (32 per line, as on real RS-485 buses)
answer a `meterflow edge run` process that reads energy (total + 4 tariffs, one block read)
and phase-A voltage from each every 10 s for 2 minutes, and publishes to a real mosquitto.
Measured from /proc: the agent's resident memory (peak) and its CPU time ÷ wall time
(share of one core). Alongside, the floor: a bare interpreter that imports the same modules
and idles, so the agent's own cost is visible. Goals: RSS ≤ 80 MB, CPU ≤ 10 %.

A subscriber on the same broker receives every envelope the agent publishes; ``pass`` also
needs every meter read in every round (in the agent's status: reads = rounds, no failures,
no overrun; on the broker: every round's good reading of every quantity of every meter) and
every sealed envelope received by the broker (every seq from 0 to the outbox's last one,
none left unacknowledged). The exit status is 0 when ``pass`` holds, else 1.

    python bench/gateway_load.py [--quick]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from edge.keys import GatewayIdentity
from edge.wire import Topics
from edge.wire.mqtt import BrokerAddress, mqtt_client
from simulators.dlt645_meter import Dlt645Line, SimulatedMeter, serve_in_thread
from simulators.load import LoadModel, SystemClock

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy" / "local"
TICKS = os.sysconf("SC_CLK_TCK")
FLOOR_IMPORTS = (
    "import asyncio, paho.mqtt.client, pydantic, cryptography, prometheus_client;"
    "import edge.agent, edge.runner, meter_drivers.dlt645.master;"
    "import time; time.sleep({s})"
)


QUANTITIES = [
    "energy_import",
    "energy_import_t1",
    "energy_import_t2",
    "energy_import_t3",
    "energy_import_t4",
    "voltage_a",
]


def load_avg() -> list[float]:
    """The 1-, 5- and 15-minute load averages (runnable processes), rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_sample(pid: int) -> tuple[int, float]:
    """(RSS bytes, CPU seconds so far) of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    return rss_kb * 1024, cpu


def watch(proc: subprocess.Popen[bytes], seconds: float, warmup: float) -> dict[str, float]:
    """Sample RSS every second; CPU share measured after ``warmup`` seconds."""
    time.sleep(warmup)
    rss, cpu0 = proc_sample(proc.pid)
    t0 = time.monotonic()
    samples = [rss]
    while time.monotonic() - t0 < seconds:
        time.sleep(1.0)
        assert proc.poll() is None, "the measured process exited"
        rss, cpu = proc_sample(proc.pid)
        samples.append(rss)
    return {
        "rss_peak": max(samples),
        "rss_median": statistics.median(samples),
        "cpu_share": (cpu - cpu0) / (time.monotonic() - t0),
    }


class Received:
    """Every readings envelope the broker delivers to a subscriber of the gateway's topic:
    seqs, and the good (round, meter, quantity) it carried (payload decoded, not verified)."""

    def __init__(self, broker_url: str, site: str, gateway: str) -> None:
        self.seqs: set[tuple[int, int]] = set()  # (epoch, seq)
        self.good: set[tuple[str, str, str]] = set()
        self.messages = 0
        self._lock = threading.Lock()
        subscribed = threading.Event()
        broker = BrokerAddress.parse(broker_url)
        self.client = mqtt_client(broker, "bench-received", clean_session=True)
        topic = Topics().readings(site, gateway)
        self.client.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_message = lambda _c, _u, msg: self._take(msg.payload)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert subscribed.wait(30), f"no subscription to {topic}"

    def _take(self, body: bytes) -> None:
        part = body.split(b".")[1]
        payload = json.loads(base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4)))
        with self._lock:
            self.messages += 1
            self.seqs.add((payload["epoch"], payload["seq"]))
            for r in payload["readings"]:
                if r["quality"] == "good":
                    self.good.add((r["round"], r["meter"], r["quantity"]))

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def outbox_state(path: Path) -> tuple[int, int, int]:
    """(envelopes sealed, envelopes not acknowledged, readings not sealed) of an outbox."""
    with sqlite3.connect(path) as db:
        sealed = db.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()[0]
        unacked = db.execute("SELECT count(*) FROM envelopes").fetchone()[0]
        pending = db.execute("SELECT count(*) FROM pending").fetchone()[0]
    return sealed, unacked, pending


def site_toml(ports: list[int], per_line: int, interval_s: int) -> str:
    out = [
        f'site = "bench"\ngateway = "gw1"\nmetrics_port = {free_port()}\n'
        f"health_interval_s = 60\ntime_sync_interval_s = 0\n",
        f'[[groups]]\nname = "billing"\ninterval_s = {interval_s}\nquantities = '
        f"{json.dumps(QUANTITIES)}\n",
    ]
    n = 0
    for i, port in enumerate(ports):
        out.append(f'[[lines]]\nname = "l{i}"\ntcp = "127.0.0.1:{port}"\ntimeout_s = 1.0\n')
        for _ in range(per_line):
            n += 1
            out.append(f'[[lines.meters]]\nid = "M{n:04d}"\naddress = "{n:012d}"\n')
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 meters, 20 s")
    args = parser.parse_args()
    lines, per_line, seconds = (2, 16, 20) if args.quick else (8, 32, 120)
    interval_s = 10
    load_start = load_avg()

    work = Path(tempfile.mkdtemp(prefix="mf-bench-gw-"))
    os.chmod(work, 0o755)
    broker_dir = work / "mosquitto"
    broker_dir.mkdir()
    broker_dir.chmod(0o777)
    broker_port = free_port()
    subprocess.run(
        ["bash", str(DEPLOY / "mosquitto.sh"), "start", str(broker_dir), str(broker_port)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    broker_url = f"mqtt://127.0.0.1:{broker_port}"
    servers = []
    received = None
    try:
        received = Received(broker_url, "bench", "gw1")
        n = 0
        for _ in range(lines):
            meters = []
            for _ in range(per_line):
                n += 1
                meters.append(
                    SimulatedMeter(f"{n:012d}", LoadModel(3.0, seed=n), clock=SystemClock())
                )
            servers.append(serve_in_thread(Dlt645Line(meters)))
        config = work / "site.toml"
        config.write_text(site_toml([p for p, _ in servers], per_line, interval_s))
        GatewayIdentity.create(work / "data" / "gateway.key")
        env = {
            **os.environ,
            "MF_DATA_DIR": str(work / "data"),
            "MF_MQTT_URL": broker_url,
        }
        agent = subprocess.Popen(
            [sys.executable, "-m", "meterflow", "edge", "run", str(config)],
            env=env,
            stdout=(work / "agent.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        floor = subprocess.Popen(
            [sys.executable, "-c", FLOOR_IMPORTS.format(s=seconds + 30)], env=env
        )
        try:
            ours = watch(agent, seconds, warmup=interval_s + 2)
            base = watch(floor, 3, warmup=0)
        finally:
            agent.terminate()
            agent.wait(30)
            floor.kill()
        status = json.loads((work / "data" / "status.json").read_text())
        time.sleep(1.0)  # deliveries still on their way to the subscriber
        sealed, unacked, pending = outbox_state(work / "data" / "outbox.sqlite")
    finally:
        if received is not None:
            received.stop()
        for _, stop in servers:
            stop()
        subprocess.run(
            ["bash", str(DEPLOY / "mosquitto.sh"), "stop", str(broker_dir)],
            check=False,
            capture_output=True,
            timeout=60,
        )
    meters = lines * per_line
    reads = sum(m["reads"] for m in status["meters"])
    failures = sum(m["failures"] for m in status["meters"])
    rounds = status["rounds"]
    round_ids = sorted({r for r, _, _ in received.good})
    # Every meter read every round: the agent's own count, and the broker's view of it.
    short_meters = [m["meter"] for m in status["meters"] if m["reads"] != rounds or m["failures"]]
    missing = sum(
        (r, m["meter"], q) not in received.good
        for r in round_ids
        for m in status["meters"]
        for q in QUANTITIES
    )
    every_round = (
        rounds > 0
        and not short_meters
        and not status["overruns"]
        and len(round_ids) == rounds
        and missing == 0
        and len(status["meters"]) == lines * per_line
    )
    # Every envelope sealed reached the broker (seen by the subscriber), none unacknowledged.
    epoch = status["epoch"]
    lost = sorted(set(range(sealed)) - {s for e, s in received.seqs if e == epoch})
    every_envelope = sealed > 0 and not lost and unacked == 0
    mb = 2**20
    print(
        f"{meters} meters on {lines} lines, every {interval_s} s for {seconds} s: "
        f"{status['rounds']} rounds, {reads} meter reads, {failures} failed, "
        f"{status['overruns']} overruns"
    )
    print(
        f"agent RSS peak {ours['rss_peak'] / mb:.1f} MB (median "
        f"{ours['rss_median'] / mb:.1f}); floor (same imports, idle) "
        f"{base['rss_peak'] / mb:.1f} MB"
    )
    print(f"agent CPU {ours['cpu_share']:.1%} of one core (goal ≤ 10 %); RSS goal ≤ 80 MB")
    print(
        f"every meter read every round: {every_round} ({len(round_ids)} rounds on the broker, "
        f"{len(short_meters)} meters short, {missing} readings missing); every envelope at "
        f"the broker: {every_envelope} ({sealed} sealed, {len(lost)} not received, {unacked} "
        f"unacknowledged, {pending} readings not sealed)"
    )
    passed = (
        ours["rss_peak"] <= 80 * mb
        and ours["cpu_share"] <= 0.10
        and not failures
        and every_round
        and every_envelope
    )
    load_end = load_avg()
    print(f"load average (1, 5, 15 min): {load_start} before, {load_end} after; pass: {passed}")
    print(
        json.dumps(
            {
                "bench": "gateway_load",
                "meters": meters,
                "lines": lines,
                "interval_s": interval_s,
                "seconds": seconds,
                "rounds": status["rounds"],
                "reads": reads,
                "failures": failures,
                "overruns": status["overruns"],
                "rss_peak_mb": round(ours["rss_peak"] / mb, 1),
                "rss_floor_mb": round(base["rss_peak"] / mb, 1),
                "rss_over_floor": round(ours["rss_peak"] / base["rss_peak"], 2),
                "cpu_share": round(ours["cpu_share"], 4),
                "goals": {"rss_mb": 80, "cpu_share": 0.10},
                "every_meter_every_round": every_round,
                "rounds_on_broker": len(round_ids),
                "meters_short": len(short_meters),
                "readings_missing_on_broker": missing,
                "envelopes_sealed": sealed,
                "envelopes_received": len(received.seqs),
                "envelopes_not_received": len(lost),
                "envelopes_unacked": unacked,
                "readings_not_sealed": pending,
                "every_envelope_at_broker": every_envelope,
                "load_avg_start": load_start,
                "load_avg_end": load_end,
                "pass": passed,
            }
        )
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
