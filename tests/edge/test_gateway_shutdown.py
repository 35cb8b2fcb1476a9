"""The gateway's shutdown: no thread of the runner calls into the event loop once it is
closed (it used to: the stop watcher woke on the runner's own ``stop.set()`` and called
``loop.call_soon_threadsafe`` after ``asyncio.run`` had closed the loop, a traceback on
stderr at the end of ``edge run``).

The window is a thread switch, so the in-process test widens it with
``sys.setswitchinterval``: the thread that sets the event keeps the interpreter for up to
that long before the woken thread runs, and the old runner then left its watcher alive past
``asyncio.run`` on every stop (the watcher's call then failed on the closed loop). The CLI
test runs ``edge run`` as the field does and stops it in the ways it is stopped. Bounded
repeats; real simulated meters and a real mosquitto; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time

import pytest

from edge.config import SiteConfig
from edge.keys import GatewayIdentity
from edge.runner import run_gateway
from simulators.dlt645_meter import SimulatedMeter, serve_in_thread
from simulators.load import LoadModel, SystemClock
from tests.support.gateway_rig import METERS, CountingLine, Gateway, wait_for

#: how long a thread may keep the interpreter before a waiting thread gets it (s)
WIDE_SWITCH_S = 0.2


@pytest.fixture()
def sim_port():
    line = CountingLine(
        [
            SimulatedMeter(a, LoadModel(5.0, seed=i), clock=SystemClock())
            for i, a in enumerate(METERS)
        ]
    )
    port, stop = serve_in_thread(line)
    yield port
    stop()


@pytest.fixture()
def wide_switch():
    before = sys.getswitchinterval()
    sys.setswitchinterval(WIDE_SWITCH_S)
    yield
    sys.setswitchinterval(before)


def test_run_gateway_leaves_no_thread_calling_into_its_closed_loop(
    tmp_path, sim_port, mosquitto_server, monkeypatch, wide_switch
):
    failures: list[str] = []
    monkeypatch.setattr(
        threading, "excepthook", lambda args: failures.append(f"{args.thread}: {args.exc_value!r}")
    )
    gateway = Gateway(tmp_path, mosquitto_server.url, sim_port)  # writes site.toml and a key
    site = SiteConfig.load(gateway.config)
    identity = GatewayIdentity.load(tmp_path / "data" / "gateway.key")
    for attempt in range(4):
        before = set(threading.enumerate())
        asyncio.run(
            run_gateway(
                site, identity, tmp_path / "data", mosquitto_server.url, rounds=1, metrics=False
            )
        )
        # Every thread the runner started is gone when it returns (none can wake later).
        left = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
        assert left == [], f"attempt {attempt}: threads still running: {left}"
        time.sleep(2 * WIDE_SWITCH_S)  # a late thread would fail within this
        assert failures == [], f"attempt {attempt}: {failures}"
    assert gateway.outbox()["next_seq"] >= 4  # it did poll and seal every time


@pytest.mark.parametrize("how", ["rounds", "sigterm"])
def test_edge_run_ends_without_a_traceback(tmp_path, sim_port, mosquitto_server, how):
    """`edge run` as its own process, ended after its rounds or by SIGTERM at different
    moments (waiting for a round, after one, after several): exit 0 and no traceback."""
    gateway = Gateway(tmp_path, mosquitto_server.url, sim_port)
    delays = [0.0, 0.7, 1.5, 3.0] if how == "sigterm" else [None] * 3
    for attempt, delay in enumerate(delays):
        log = tmp_path / f"run-{attempt}.log"
        args = ["--rounds", "1"] if how == "rounds" else []
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "meterflow", "edge", "run", str(gateway.config), *args],
                env=gateway.env,
                stdout=subprocess.DEVNULL,
                stderr=out,
            )
            if delay is not None:
                # SIGTERM once the handlers are in place (the runner has logged), then later.
                wait_for(lambda f=log: "cloud commands are off" in f.read_text(), 30, "started")
                time.sleep(delay)
                proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        text = log.read_text(errors="replace")
        assert proc.returncode == 0, f"attempt {attempt}: exit {proc.returncode}\n{text[-3000:]}"
        assert "Traceback" not in text and "Exception in thread" not in text, (
            f"attempt {attempt} (SIGTERM {delay} s after start):\n{text[-3000:]}"
        )
        if delay is None or delay >= 3:  # by then it has polled (rounds every second)
            assert "round r" in text, text[-3000:]
