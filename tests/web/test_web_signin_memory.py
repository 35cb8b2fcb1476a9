"""40 parallel sign-ins against a real ``meterflow cloud api`` process keep its memory bounded
(decision 0017).

Argon2id takes 64 MiB per hash; unbounded, 40 parallel sign-ins grew the server from 127 MiB
to 1,985 MiB (issue #16). The server bounds the hashes at once (``MF_WEB_HASH_SLOTS``, here
2) and the sign-ins waiting for one (4 per slot); the rest are refused at once with 429 and
Retry-After. The bound checked: the process's peak resident size (``VmHWM``) stays under
:data:`BOUND_MIB`, and it grows during the burst by at most the slots' Argon2 memory and
:data:`HEADROOM_MIB` of allocator slack.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from meterflow.cli.web import cloud_web_account
from tests.support import servers

PASSWORD = "a long and quiet password"
PARALLEL = 40
SLOTS = 2
#: Argon2id's memory per hash (argon2-cffi's default memory_cost, 65,536 KiB)
ARGON2_MIB = 64
#: what the allocator and 40 more requests in flight may add beside the hashes' memory
HEADROOM_MIB = 96
#: the stated bound of the server's peak resident size, sign-in burst included
BOUND_MIB = 400


def status_kib(pid: int, field: str) -> int:
    """A ``/proc/PID/status`` size field (``VmRSS``, ``VmHWM``) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    env = {
        **os.environ,
        "MF_DATA_DIR": str(tmp_path / "cloud"),
        "MF_MQTT_URL": f"mqtt://127.0.0.1:{servers.free_port()}",  # nobody listens there
        "MF_WEB_HASH_SLOTS": str(SLOTS),
        "MF_WEB_PUBLIC_URL": "https://meter.example.com",
    }
    cli = typer.Typer()
    cli.command()(cloud_web_account)
    made = CliRunner().invoke(
        cli, ["carol", "--role", "admin"], env={**env, "MF_WEB_ACCOUNT_PASSWORD": PASSWORD}
    )
    assert made.exit_code == 0, made.output
    with servers.cloud_api(env, tmp_path / "api.log", "--no-gateway-feed") as served:
        yield served


def sign_in(base_url: str) -> httpx.Response:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        return client.post("/api/v1/session", json={"username": "carol", "password": PASSWORD})


def test_forty_parallel_sign_ins_keep_the_server_under_its_memory_bound(
    server: tuple[subprocess.Popen[bytes], str],
) -> None:
    proc, base_url = server
    assert sign_in(base_url).status_code == 200  # warm: one hash done, the app loaded
    before_kib = status_kib(proc.pid, "VmHWM")
    barrier = threading.Barrier(PARALLEL)
    replies: list[httpx.Response] = []

    def attempt() -> None:
        barrier.wait()
        replies.append(sign_in(base_url))

    threads = [threading.Thread(target=attempt) for _ in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    peak_kib = status_kib(proc.pid, "VmHWM")
    codes = sorted(r.status_code for r in replies)
    assert len(replies) == PARALLEL and set(codes) <= {200, 429}, codes
    assert codes.count(200) >= SLOTS, codes
    for refused in (r for r in replies if r.status_code == 429):
        assert int(refused.headers["Retry-After"]) >= 1
        assert "try again" in refused.json()["detail"]
    growth_mib = (peak_kib - before_kib) / 1024
    print(
        f"VmHWM before {before_kib / 1024:.0f} MiB, after {peak_kib / 1024:.0f} MiB; "
        f"{codes.count(200)} signed in, {codes.count(429)} told to retry"
    )
    assert growth_mib <= SLOTS * ARGON2_MIB + HEADROOM_MIB, growth_mib
    assert peak_kib / 1024 <= BOUND_MIB
    assert sign_in(base_url).status_code == 200, "the server signs people in after the burst"
