"""Provisioning end to end: the cloud API served by uvicorn on 127.0.0.1 over a SQLite and a
PostgreSQL registry, and the gateway's ``provision()`` redeeming claim tokens against it."""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import typer
import uvicorn
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from cloud.gateways.models import ClaimToken
from cloud.gateways.provisioning import (
    BrokerGrant,
    CloudKeyError,
    CloudSigner,
    InvalidClaim,
    ProvisioningService,
    token_sha256,
)
from cloud.registry.base import Base
from cloud.registry.db import open_registry
from cloud.registry.models import Gateway
from cloud.registry.service import find_key
from cloud.web.app import create_app
from cloud.web.deps import ApiServices
from edge.keys import GatewayIdentity, key_id, load_public_key_b64, public_key_b64
from edge.provision import ProvisionError, load_cloud_key, provision
from meterflow.cli.edge import edge_provision
from meterflow.cli.web import cloud_claim_token
from tests.support import servers

SITE_TOML = """\
site = "s1"
gateway = "gw1"

[[lines]]
name = "bus1"
tcp = "127.0.0.1:4059"

[[lines.meters]]
id = "M1"
address = "000000000001"
"""


def site_toml(gateway: str) -> str:
    return SITE_TOML.replace('"gw1"', f'"{gateway}"')


BROKER = BrokerGrant("mqtt://broker.example:1883", "gw1", "s3cret-broker-pw", "mf/v1")


@dataclass
class Cloud:
    """A running API and the service behind it."""

    url: str
    sessions: sessionmaker[Session]
    service: ProvisioningService
    signer: CloudSigner

    def claim(self, gateway: str, ttl: timedelta = timedelta(hours=24)) -> str:
        return self.service.create_claim("s1", gateway, site_toml(gateway), BROKER, ttl).token

    def post(self, body: dict[str, str]) -> httpx.Response:
        return httpx.post(f"{self.url}/api/v1/provision", json=body, timeout=10)


@contextlib.contextmanager
def serve(app: object) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a free 127.0.0.1 port; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            thread.join(0.01)
        assert server.started, "uvicorn did not start within 5 s"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def cloud(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cloud]:
    """The API on a SQLite and on a PostgreSQL registry, one of each per module: tests use
    gateway ids of their own."""
    cloud_dir = tmp_path_factory.mktemp("cloud")
    with contextlib.ExitStack() as stack:
        if request.param == "postgres":
            server = request.getfixturevalue("postgres_server")
            url = stack.enter_context(servers.fresh_postgres_database(server, "provisioning"))
        else:
            url = f"sqlite:///{cloud_dir / 'registry.sqlite'}"
        sessions = open_registry(url)
        stack.callback(sessions.kw["bind"].dispose)
        signer = CloudSigner.load_or_create(cloud_dir / "cloud.key")
        service = ProvisioningService(sessions, signer)
        base_url = stack.enter_context(serve(create_app(ApiServices(provisioning=service))))
        yield Cloud(base_url, sessions, service, signer)


def all_stored_text(sessions: sessionmaker[Session]) -> str:
    """Every row of every registry table, as text."""
    with sessions() as session:
        return "\n".join(
            repr(row)
            for table in Base.metadata.sorted_tables
            for row in session.execute(select(table)).all()
        )


# ----------------------------------------------------------------------------- end to end


def test_gateway_provisions_and_only_its_public_key_reaches_the_cloud(
    cloud: Cloud, tmp_path: Path
) -> None:
    token = cloud.claim("gw1")
    data_dir = tmp_path / "gw"

    result = provision(cloud.url, token, data_dir)

    identity = GatewayIdentity.load(data_dir / "gateway.key")
    assert (data_dir / "gateway.key").stat().st_mode & 0o777 == 0o600
    assert (data_dir / "broker.json").stat().st_mode & 0o777 == 0o600
    assert (result.site, result.gateway, result.kid) == ("s1", "gw1", identity.kid)
    assert result.config_problem is None and result.replaced_dir is None
    assert (data_dir / "site.toml").read_text() == SITE_TOML
    assert (data_dir / "broker.json").read_text().count("s3cret-broker-pw") == 1
    assert key_id(load_cloud_key(data_dir)) == cloud.signer.kid == result.cloud_kid
    assert sorted(p.name for p in data_dir.iterdir()) == [
        "broker.json",
        "cloud.pub",
        "gateway.key",
        "site.toml",
    ]

    with cloud.sessions() as session:
        known = find_key(session, identity.kid)
        assert known is not None and (known.gateway_id, known.site_id) == ("gw1", "s1")
        assert public_key_b64(known.public_key) == public_key_b64(identity.public_key)
        claim = session.get(ClaimToken, token_sha256(token))
        assert claim is not None and claim.used_at is not None
        assert claim.used_kid == identity.kid
        assert claim.mqtt_password is None, "the broker password is erased once handed out"
    stored = all_stored_text(cloud.sessions)
    private_raw = identity.private_key.private_bytes_raw()
    for secret in (
        private_raw.hex(),
        base64.urlsafe_b64encode(private_raw).decode().rstrip("="),
        base64.b64encode(private_raw).decode().rstrip("="),
        token,
    ):
        assert secret not in stored, "the registry holds only public keys and token hashes"


def test_second_use_of_a_claim_token_is_refused_with_409(cloud: Cloud, tmp_path: Path) -> None:
    token = cloud.claim("gw-twice")
    provision(cloud.url, token, tmp_path / "first")

    with pytest.raises(ProvisionError, match=r"HTTP 409: claim token .* was already used"):
        provision(cloud.url, token, tmp_path / "second")
    assert list((tmp_path / "second").iterdir()) == [], "a failed attempt leaves nothing behind"


def test_expired_claim_token_is_refused_with_410(cloud: Cloud, tmp_path: Path) -> None:
    past = datetime.now(UTC) - timedelta(hours=25)
    token = (
        ProvisioningService(cloud.sessions, cloud.signer, clock=lambda: past)
        .create_claim("s1", "gw-late", site_toml("gw-late"), BROKER)
        .token
    )

    with pytest.raises(ProvisionError, match=r"HTTP 410: claim token .* expired at"):
        provision(cloud.url, token, tmp_path / "gw")
    with cloud.sessions() as session:
        assert session.get(Gateway, "gw-late") is None


def test_unknown_claim_token_is_refused_with_403(cloud: Cloud, tmp_path: Path) -> None:
    cloud.claim("gw-unknown")
    with pytest.raises(ProvisionError, match=r"HTTP 403: claim token is not known"):
        provision(cloud.url, "not-a-token-anyone-issued", tmp_path / "gw")


def test_malformed_public_key_is_a_400_naming_the_field_and_keeps_the_token(
    cloud: Cloud, tmp_path: Path
) -> None:
    token = cloud.claim("gw-malformed")
    identity = GatewayIdentity.create(tmp_path / "k")

    short = cloud.post({"claim_token": token, "public_key": "AAAA", "key_id": identity.kid})
    missing = cloud.post({"claim_token": token, "key_id": identity.kid})

    assert short.status_code == 400 and short.json()["detail"].startswith("public_key: ")
    assert missing.status_code == 400 and "public_key: Field required" in missing.json()["detail"]
    provision(cloud.url, token, tmp_path / "gw")  # the token was not used up


def test_key_id_that_is_not_the_thumbprint_is_a_400(cloud: Cloud, tmp_path: Path) -> None:
    token = cloud.claim("gw-kid")
    identity = GatewayIdentity.create(tmp_path / "k")
    other = GatewayIdentity.create(tmp_path / "other")

    reply = cloud.post(
        {
            "claim_token": token,
            "public_key": public_key_b64(identity.public_key),
            "key_id": other.kid,
        }
    )

    assert reply.status_code == 400
    assert reply.json()["detail"].startswith(f"key_id: {other.kid!r} is not the RFC 7638")
    with cloud.sessions() as session:
        assert find_key(session, identity.kid) is None and find_key(session, other.kid) is None


def test_concurrent_redemptions_of_one_token_register_exactly_one_key(
    cloud: Cloud, tmp_path: Path
) -> None:
    token = cloud.claim("gw-race")
    identities = [GatewayIdentity.create(tmp_path / f"k{i}") for i in range(4)]

    def redeem(identity: GatewayIdentity) -> int:
        return cloud.post(
            {
                "claim_token": token,
                "key_id": identity.kid,
                "public_key": public_key_b64(identity.public_key),
            }
        ).status_code

    with ThreadPoolExecutor(len(identities)) as pool:
        statuses = sorted(pool.map(redeem, identities))

    assert statuses == [200, 409, 409, 409]
    with cloud.sessions() as session:
        assert sum(find_key(session, i.kid) is not None for i in identities) == 1


def test_existing_gateway_is_kept_unless_forced_then_moved_aside(
    cloud: Cloud, tmp_path: Path
) -> None:
    data_dir = tmp_path / "gw"
    first = provision(cloud.url, cloud.claim("gw-force"), data_dir)
    old_key = (data_dir / "gateway.key").read_bytes()
    token = cloud.service.create_claim(
        "s1", "gw-force", site_toml("gw-force"), BROKER, replace=True, approved_by="root"
    ).token

    with pytest.raises(ProvisionError, match=r"holds a provisioned gateway already .*--force"):
        provision(cloud.url, token, data_dir)
    assert (data_dir / "gateway.key").read_bytes() == old_key

    second = provision(cloud.url, token, data_dir, force=True)

    assert second.kid != first.kid and second.replaced_dir is not None
    assert (second.replaced_dir / "gateway.key").read_bytes() == old_key
    assert GatewayIdentity.load(data_dir / "gateway.key").kid == second.kid
    with cloud.sessions() as session:
        old, new = find_key(session, first.kid), find_key(session, second.kid)
        assert old is not None and old.revoked, "an approved replacement revokes the old key"
        assert new is not None and not new.revoked


def test_failed_forced_provisioning_keeps_the_old_identity(cloud: Cloud, tmp_path: Path) -> None:
    data_dir = tmp_path / "gw"
    provision(cloud.url, cloud.claim("gw-keep"), data_dir)
    before = {p.name: p.read_bytes() for p in data_dir.iterdir()}

    with pytest.raises(ProvisionError, match="HTTP 403"):
        provision(cloud.url, "wrong-token", data_dir, force=True)

    assert {p.name: p.read_bytes() for p in data_dir.iterdir()} == before


def test_cloud_api_serves_its_openapi_document(cloud: Cloud) -> None:
    reply = httpx.get(f"{cloud.url}/openapi.json", timeout=10)

    assert reply.status_code == 200
    operation = reply.json()["paths"]["/api/v1/provision"]["post"]
    assert {"200", "400", "403", "409", "410"} <= operation["responses"].keys()


# ----------------------------------------------------------------------------- commands (CLI)


def test_claim_token_command_and_provision_command_work_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MF_DATA_DIR", str(tmp_path / "cloud"))
    monkeypatch.setenv("MF_MQTT_URL", "mqtt://10.0.0.5:1883")
    monkeypatch.setenv("MF_CLAIM_MQTT_PASSWORD", "pw-from-env")
    config = tmp_path / "s1-gw1.toml"
    config.write_text(SITE_TOML)
    cli = typer.Typer()
    cli.command("claim-token")(cloud_claim_token)
    cli.command("provision")(edge_provision)
    runner = CliRunner()

    issued = runner.invoke(
        cli,
        [
            "claim-token",
            "--site",
            "s1",
            "--gateway",
            "gw1",
            "--config",
            str(config),
            "--mqtt-username",
            "gw1",
        ],
    )
    assert issued.exit_code == 0, issued.output
    token = issued.stdout.strip()
    sessions = open_registry(f"sqlite:///{tmp_path / 'cloud' / 'registry.sqlite'}")
    signer = CloudSigner.load_or_create(tmp_path / "cloud" / "cloud.key")
    app = create_app(ApiServices(provisioning=ProvisioningService(sessions, signer)))
    with serve(app) as url:
        done = runner.invoke(
            cli, ["provision", url, "--data-dir", str(tmp_path / "gw")], input=token + "\n"
        )
        again = runner.invoke(
            cli,
            ["provision", url, "--data-dir", str(tmp_path / "gw2")],
            env={"MF_CLAIM_TOKEN": token},
        )

    assert done.exit_code == 0, done.output
    assert '"gateway": "gw1"' in done.stdout
    assert (tmp_path / "gw" / "broker.json").read_text().count("pw-from-env") == 1
    assert again.exit_code == 2 and "HTTP 409" in again.stderr


def test_api_command_serves_the_api_until_stopped(tmp_path: Path) -> None:
    env = dict(os.environ, MF_DATA_DIR=str(tmp_path / "cloud"), MF_WEB_DEV="1")
    with servers.cloud_api(env, tmp_path / "api.log") as (_proc, url):
        reply = httpx.get(f"{url}/openapi.json", timeout=10)

    assert reply.status_code == 200 and "/api/v1/provision" in reply.json()["paths"]
    assert (tmp_path / "cloud" / "cloud.key").stat().st_mode & 0o777 == 0o600


# ----------------------------------------------------------------------------- without a server


def test_claim_whose_config_names_another_gateway_is_refused(tmp_path: Path) -> None:
    service = ProvisioningService(
        open_registry(f"sqlite:///{tmp_path / 'r.sqlite'}"),
        CloudSigner.load_or_create(tmp_path / "cloud.key"),
    )
    with pytest.raises(InvalidClaim, match=r"site config says gateway = 'gw1'; .* 'gw9'"):
        service.create_claim("s1", "gw9", SITE_TOML, BROKER)
    with pytest.raises(InvalidClaim, match="not valid TOML"):
        service.create_claim("s1", "gw1", "site = ", BROKER)
    with pytest.raises(InvalidClaim, match="not valid TOML: nested too deeply"):
        service.create_claim("s1", "gw1", "x = " + "[" * 5000 + "]" * 5000, BROKER)
    with pytest.raises(InvalidClaim, match="broker URL"):
        service.create_claim("s1", "gw1", SITE_TOML, BrokerGrant("http://broker:1883"))


def test_plain_http_to_a_remote_cloud_is_refused_before_any_key_is_made(tmp_path: Path) -> None:
    with pytest.raises(ProvisionError, match="plain http"):
        provision("http://cloud.example:8000", "token", tmp_path / "gw")
    assert not (tmp_path / "gw").exists()


def test_unreachable_cloud_is_reported_as_a_network_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connection refused
        with pytest.raises(ProvisionError, match=r"cannot reach the cloud at .*refused"):
            provision(f"http://127.0.0.1:{port}", "token", tmp_path / "gw", timeout_s=5)
    assert list((tmp_path / "gw").iterdir()) == []


def test_cloud_key_is_private_and_its_kid_is_the_edge_thumbprint(tmp_path: Path) -> None:
    path = tmp_path / "cloud.key"
    signer = CloudSigner.load_or_create(path)

    assert path.stat().st_mode & 0o777 == 0o600
    assert CloudSigner.load_or_create(path).kid == signer.kid == key_id(signer.public_key)
    # RFC 8037 appendix A.3, the vector edge.keys is pinned to
    rfc_key = load_public_key_b64("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
    assert key_id(rfc_key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    path.chmod(0o644)
    with pytest.raises(CloudKeyError, match="expected 600"):
        CloudSigner.load_or_create(path)
