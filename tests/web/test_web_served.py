"""``meterflow cloud api`` as deployed: it refuses to start without a public URL (unless
``MF_WEB_DEV`` is on) and builds tenant links on it whatever Host a request names; the files
it makes are private (data directory 0700; registry, cloud key and web secret 0600); the
tenant link's token never appears in its log output. Also the log redaction and the registry
file modes on their own."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from cloud.registry.db import open_registry
from cloud.staff.accounts import AccountService, Role
from cloud.statements.links import StatementKey, TenantLinkService, WebSecret
from cloud.web.logs import REDACTED, install_redaction, redact
from edge.wire.files import write_private_file
from meterflow.settings import Settings
from tests.support import servers
from tests.support.browser import PASSWORD, seed

PUBLIC = "https://bills.example.com"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def cloud_api(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "meterflow",
                "cloud",
                "api",
                "--port",
                str(port),
                "--no-gateway-feed",
            ],
            env={**{k: v for k, v in os.environ.items() if not k.startswith("MF_")}, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_listening(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while not servers.port_open(port):
        assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
        assert time.monotonic() < deadline, "meterflow cloud api did not listen in 30 s"
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def test_refuses_to_start_without_a_public_url(tmp_path: Path) -> None:
    base = {"MF_DATA_DIR": str(tmp_path / "data"), "MF_WEB_PUBLIC_URL": "", "MF_WEB_DEV": ""}
    for env, expected in (
        (base, "MF_WEB_PUBLIC_URL is not set"),
        ({**base, "MF_WEB_PUBLIC_URL": "bills.example.com"}, "expected an absolute http(s) URL"),
        ({**base, "MF_WEB_PUBLIC_URL": "ftp://bills.example.com"}, "expected an absolute"),
    ):
        env = {k: v for k, v in env.items() if v}
        done = subprocess.run(
            [sys.executable, "-m", "meterflow", "cloud", "api", "--no-gateway-feed"],
            env={**{k: v for k, v in os.environ.items() if not k.startswith("MF_WEB_")}, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        assert expected in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists(), "nothing is made before the settings are right"


def test_starts_in_development_without_a_public_url(tmp_path: Path) -> None:
    port, log = servers.free_port(), tmp_path / "dev.log"
    proc = cloud_api({"MF_DATA_DIR": str(tmp_path / "data"), "MF_WEB_DEV": "1"}, port, log)
    try:
        wait_listening(proc, port, log)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    finally:
        stop(proc)


@dataclass
class Served:
    base: str
    data: Path
    log: Path
    run: str
    token: str
    proc: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The server on a data directory it makes itself, then seeded beside it: a posted
    month of park-a signed with the server's key, a finance account, a tenant link made with
    the server's web secret."""
    work = tmp_path_factory.mktemp("served")
    data = work / "deploy" / "data"  # neither exists yet
    port, log = servers.free_port(), work / "server.log"
    proc = cloud_api(
        {
            "MF_DATA_DIR": str(data),
            "MF_WEB_PUBLIC_URL": PUBLIC + "/",
            "MF_SERIES_BACKEND": "sqlite",
        },
        port,
        log,
    )
    try:
        wait_listening(proc, port, log)
        sessions = open_registry(f"sqlite:///{data / 'registry.sqlite'}")
        key = serialization.load_pem_private_key((data / "cloud.key").read_bytes(), None)
        seeded = seed(sessions, key, months=1)  # type: ignore[arg-type]
        AccountService(sessions).create_account("fin-a", PASSWORD, Role.FINANCE, ["park-a"])
        links = TenantLinkService(sessions, WebSecret.load_or_create(data / "web.secret"))
        token = links.link_for(StatementKey(seeded.latest, "A101", "ACME")).token
        sessions.kw["bind"].dispose()
        yield Served(f"http://127.0.0.1:{port}", data, log, seeded.latest, token, proc)
    finally:
        stop(proc)


def test_files_it_makes_are_private(served: Served) -> None:
    assert mode(served.data) == 0o700
    assert mode(served.data.parent) == 0o700, "missing parents are made 0700 too"
    for name in ("registry.sqlite", "cloud.key", "web.secret"):
        assert mode(served.data / name) == 0o600, name
    for extra in served.data.glob("registry.sqlite-*"):  # SQLite's -wal and -shm
        assert mode(extra) == 0o600, extra.name


def test_links_are_built_on_the_public_url_whatever_the_host(served: Served) -> None:
    with httpx.Client(base_url=served.base, timeout=30) as client:
        signed = client.post("/api/v1/session", json={"username": "fin-a", "password": PASSWORD})
        auth = {"Authorization": f"Bearer {signed.json()['token']}", "Host": "evil.example"}
        statement = client.get(
            f"/api/v1/runs/{served.run}/statements/A101/ACME", headers=auth
        ).json()
        assert statement["link"]["url"].startswith(PUBLIC + "/t/A101/"), statement["link"]
        assert client.get("/healthz").headers["strict-transport-security"]  # https public URL


def test_the_tenant_token_never_reaches_the_log(served: Served) -> None:
    unit_path = f"/t/A101/{served.token}"
    with httpx.Client(base_url=served.base, timeout=30) as client:
        assert client.get(unit_path).status_code == 200
        assert client.get(f"{unit_path}?lang=en").status_code == 200
        assert client.get(f"/api/v1/tenant/A101/{served.token}").status_code == 200
        disputed = client.post(f"{unit_path}/dispute", data={"comment": "too high"})
        assert disputed.status_code == 303
        assert client.get(f"/t/A102/{served.token}").status_code == 403  # another unit
        assert client.get(f"/t/A101/{served.token}%00").status_code == 400  # refused early
    time.sleep(0.5)  # the access log is written after the answer
    text = served.log.read_text(encoding="utf-8", errors="replace")
    assert served.token not in text
    assert served.token.split(".")[0] not in text and served.token.split(".")[1] not in text
    assert text.count(f"/t/A101/{REDACTED}") >= 4, text[-3000:]
    assert f"/api/v1/tenant/A101/{REDACTED}" in text


def test_our_own_log_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    install_redaction()
    token = "AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBB"
    log = logging.getLogger("cloud.web.test")
    with caplog.at_level(logging.INFO):
        log.info("opened %s", f"/t/A101/{token}?lang=en")
        log.info("link %(url)s", {"url": f"{PUBLIC}/t/A101/{token}"})
        log.warning(f"token {token} in a message")
        try:
            raise ValueError(f"cannot open /api/v1/tenant/A101/{token}")
        except ValueError:
            log.exception("failed")
    text = caplog.text
    assert token not in text and text.count(REDACTED) >= 5, text
    assert redact("/t/A101/x.y/confirm") == f"/t/A101/{REDACTED}/confirm"
    assert redact("/finance/runs/abc") == "/finance/runs/abc"


def test_registry_file_modes(tmp_path: Path) -> None:
    fresh = tmp_path / "a" / "b" / "registry.sqlite"
    open_registry(f"sqlite:///{fresh}").kw["bind"].dispose()
    assert (
        mode(fresh) == 0o600 and mode(fresh.parent) == 0o700 and mode(fresh.parent.parent) == 0o700
    )
    # an old registry others could read is narrowed; its directory, chosen by the operator, not
    old_dir = tmp_path / "old"
    old_dir.mkdir(mode=0o755)
    old_dir.chmod(0o755)
    old = old_dir / "registry.sqlite"
    open_registry(f"sqlite:///{old}").kw["bind"].dispose()
    old.chmod(0o644)
    open_registry(f"sqlite:///{old}").kw["bind"].dispose()
    assert mode(old) == 0o600 and mode(old_dir) == 0o755
    # the data directory and a key's directory are made 0700
    assert mode(Settings(data_dir=tmp_path / "d" / "e").ensure_data_dir()) == 0o700
    assert write_private_file(tmp_path / "keys" / "gw.key", b"k")
    assert mode(tmp_path / "keys") == 0o700 and mode(tmp_path / "keys" / "gw.key") == 0o600
