"""A gateway rig for the edge tests that run `meterflow edge run` as its own process against
simulated DL/T645 meters: the counting line, the gateway process and its site file.
The ``rig`` fixture that puts them together lives in tests/edge/conftest.py."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from edge.keys import GatewayIdentity
from meter_drivers.dlt645.frame import Frame
from simulators.dlt645_meter import Dlt645Line

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


def wait_for(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        time.sleep(0.1)
