"""Re-provisioning a gateway (new hardware, new key) is a step an admin approves; claim tokens
keep no broker password in clear, are purged once used or expired, and never travel in argv.

Over the API served by uvicorn on a SQLite registry (tests/support/browser.py's rig), with the
engineer, admin and gateway as the HTTP callers they are."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from typer.testing import CliRunner

from cloud.gateways.models import ClaimToken, GatewayReplacement
from cloud.gateways.provisioning import (
    BrokerGrant,
    InvalidClaim,
    ProvisioningService,
    token_sha256,
)
from cloud.registry.service import EnvelopeRefused, find_key, open_gateway_envelope
from cloud.staff.accounts import SessionKind
from cloud.staff.models import AuditEntry
from edge.wire import key_id, public_key_b64, sign_compact
from meterflow.cli.edge import edge_provision
from tests.support.browser import PASSWORD, WebRig, make_rig, serve

SITE_TOML = 'site = "park-a"\ngateway = "{gw}"\n'
FULL_TOML = (
    SITE_TOML
    + """
[[lines]]
name = "bus1"
tcp = "127.0.0.1:4059"

[[lines.meters]]
id = "M1"
address = "000000000001"
"""
)
BROKER_PASSWORD = "broker-pw-7f3a9c"


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("replacement"), months=1)
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def url(rig: WebRig) -> Iterator[str]:
    with serve(rig.app) as base:
        yield base


def bearer(rig: WebRig, username: str) -> dict[str, str]:
    token = rig.web.accounts.sign_in(username, PASSWORD, SessionKind.API).token
    return {"Authorization": f"Bearer {token}"}


def redeem(url: str, token: str, key: Ed25519PrivateKey) -> httpx.Response:
    public = key.public_key()
    return httpx.post(
        f"{url}/api/v1/provision",
        json={"claim_token": token, "public_key": public_key_b64(public), "key_id": key_id(public)},
        timeout=10,
    )


def provisioned(rig: WebRig, url: str, gateway: str) -> Ed25519PrivateKey:
    """A gateway of park-a provisioned by a claim token; its (first) key."""
    key = Ed25519PrivateKey.generate()
    claim = rig.app.state.services.provisioning.create_claim(
        "park-a", gateway, SITE_TOML.format(gw=gateway), rig.web.claim_broker
    )
    assert redeem(url, claim.token, key).status_code == 200
    return key


class AnyPayload(BaseModel):
    model_config = ConfigDict(extra="allow")


def health_of(key: Ed25519PrivateKey, gateway: str) -> bytes:
    """An envelope signed with ``key``: ingest, health and answers all open it this way."""
    body = json.dumps({"gateway": gateway}).encode()
    return sign_compact({"alg": "EdDSA", "kid": key_id(key.public_key())}, body, key)


def refusal(rig: WebRig, envelope: bytes) -> str | None:
    """The reason ingest's first check refuses ``envelope`` with (None: accepted)."""
    with rig.sessions() as session:
        try:
            open_gateway_envelope(envelope, AnyPayload, lambda kid: find_key(session, kid))
        except EnvelopeRefused as exc:
            return exc.reason
    return None


def test_engineers_reclaim_waits_for_an_admin_is_flagged_and_approval_revokes_the_old_key(
    rig: WebRig, url: str
) -> None:
    old = provisioned(rig, url, "gw-r1")
    engineer, admin = bearer(rig, "eng-a"), bearer(rig, "admin")
    body = {"site": "park-a", "gateway": "gw-r1", "site_config": SITE_TOML.format(gw="gw-r1")}

    silent = httpx.post(f"{url}/api/v1/claim-tokens", json=body, headers=engineer, timeout=10)
    claim = httpx.post(
        f"{url}/api/v1/claim-tokens", json={**body, "replace": True}, headers=engineer, timeout=10
    )
    new = Ed25519PrivateKey.generate()
    reply = redeem(url, claim.json()["token"], new)

    assert silent.status_code == 400
    assert (
        "provisioned already" in silent.json()["detail"] and "--replace" in silent.json()["detail"]
    )
    assert claim.status_code == 201 and reply.status_code == 200
    assert reply.json()["awaiting_approval"] is True
    assert refusal(rig, health_of(new, "gw-r1")) == "unknown_key", "not accepted before approval"
    assert refusal(rig, health_of(old, "gw-r1")) is None, "the old hardware keeps working"
    listed = httpx.get(f"{url}/api/v1/gateways", headers=engineer, timeout=10).json()
    assert [g["replacement_pending"] for g in listed if g["id"] == "gw-r1"] == [True]
    page = httpx.get(
        f"{url}/engineer/gateways", headers=engineer, timeout=10, follow_redirects=False
    )
    assert 'data-testid="replacement-gw-r1"' in page.text
    assert httpx.get(f"{url}/api/v1/replacements", headers=engineer, timeout=10).status_code == 403
    pending = httpx.get(f"{url}/api/v1/replacements", headers=admin, timeout=10).json()
    (mine,) = [r for r in pending if r["gateway"] == "gw-r1"]
    assert (mine["kid"], mine["requested_by"], mine["status"]) == (
        key_id(new.public_key()),
        "eng-a",
        "pending",
    )
    refused = httpx.post(
        f"{url}/api/v1/replacements/{mine['id']}",
        json={"decision": "approve"},
        headers=engineer,
        timeout=10,
    )

    approved = httpx.post(
        f"{url}/api/v1/replacements/{mine['id']}",
        json={"decision": "approve"},
        headers=admin,
        timeout=10,
    )
    again = httpx.post(
        f"{url}/api/v1/replacements/{mine['id']}",
        json={"decision": "reject"},
        headers=admin,
        timeout=10,
    )

    assert refused.status_code == 403
    assert approved.status_code == 200, approved.text
    assert approved.json()["revoked"] == [key_id(old.public_key())]
    assert (approved.json()["status"], approved.json()["decided_by"]) == ("approved", "admin")
    assert again.status_code == 409 and "approved, not a pending" in again.json()["detail"]
    assert refusal(rig, health_of(old, "gw-r1")) == "revoked_key"
    assert refusal(rig, health_of(new, "gw-r1")) is None
    listed = httpx.get(f"{url}/api/v1/gateways", headers=engineer, timeout=10).json()
    assert [g["replacement_pending"] for g in listed if g["id"] == "gw-r1"] == [False]
    with rig.sessions() as session:
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.subject == "gateway:gw-r1")
        ).all()
        assert "approve_replacement" in actions


def test_rejected_replacement_never_registers_its_key_and_the_old_one_stays(
    rig: WebRig, url: str
) -> None:
    old = provisioned(rig, url, "gw-r2")
    service: ProvisioningService = rig.app.state.services.provisioning
    token = service.create_claim(
        "park-a", "gw-r2", SITE_TOML.format(gw="gw-r2"), rig.web.claim_broker, replace=True
    ).token
    new = Ed25519PrivateKey.generate()
    assert redeem(url, token, new).json()["awaiting_approval"] is True
    with rig.sessions() as session:
        (row,) = session.scalars(
            select(GatewayReplacement).where(GatewayReplacement.gateway_id == "gw-r2")
        ).all()

    view = rig.web.replacements.reject(row.id, "admin")

    assert view.status == "rejected" and view.revoked == ()
    assert refusal(rig, health_of(new, "gw-r2")) == "unknown_key"
    assert refusal(rig, health_of(old, "gw-r2")) is None
    assert "gw-r2" not in rig.web.replacements.pending_gateways()


def test_admins_replacement_claim_is_approved_in_advance(rig: WebRig, url: str) -> None:
    old = provisioned(rig, url, "gw-r3")
    claim = httpx.post(
        f"{url}/api/v1/claim-tokens",
        json={
            "site": "park-a",
            "gateway": "gw-r3",
            "site_config": SITE_TOML.format(gw="gw-r3"),
            "replace": True,
        },
        headers=bearer(rig, "admin"),
        timeout=10,
    )
    new = Ed25519PrivateKey.generate()

    reply = redeem(url, claim.json()["token"], new)

    assert reply.status_code == 200 and reply.json()["awaiting_approval"] is False
    assert refusal(rig, health_of(old, "gw-r3")) == "revoked_key"
    assert refusal(rig, health_of(new, "gw-r3")) is None


def test_replacement_claim_for_nothing_or_another_sites_gateway_is_refused(rig: WebRig) -> None:
    service: ProvisioningService = rig.app.state.services.provisioning
    with pytest.raises(InvalidClaim, match="nothing to replace"):
        service.create_claim(
            "park-a", "gw-none", SITE_TOML.format(gw="gw-none"), rig.web.claim_broker, replace=True
        )
    with pytest.raises(InvalidClaim, match="belongs to site 'park-b'"):
        service.create_claim(
            "park-a", "gw-b", SITE_TOML.format(gw="gw-b"), rig.web.claim_broker, replace=True
        )


# ----------------------------------------------------------------------------- claim tokens


def test_unused_claim_keeps_no_broker_password_in_clear_and_hands_it_out_once(
    rig: WebRig, url: str
) -> None:
    service: ProvisioningService = rig.app.state.services.provisioning
    grant = BrokerGrant("mqtt://127.0.0.1:1883", "gw-pw", BROKER_PASSWORD)
    token = service.create_claim("park-a", "gw-pw", SITE_TOML.format(gw="gw-pw"), grant).token
    registry_file = Path(str(rig.sessions.kw["bind"].url.database))

    with rig.sessions() as session:
        stored = session.get(ClaimToken, token_sha256(token))
        assert stored is not None and stored.mqtt_password is not None
        assert BROKER_PASSWORD not in stored.mqtt_password
    rig.sessions.kw["bind"].dispose()  # checkpoint nothing: read the files as they are
    on_disk = b"".join(p.read_bytes() for p in registry_file.parent.glob(registry_file.name + "*"))
    assert BROKER_PASSWORD.encode() not in on_disk
    reply = redeem(url, token, Ed25519PrivateKey.generate())
    assert reply.json()["mqtt_password"] == BROKER_PASSWORD
    with rig.sessions() as session:
        assert session.get(ClaimToken, token_sha256(token)).mqtt_password is None  # type: ignore[union-attr]


def test_used_and_expired_tokens_are_purged_after_the_retention(tmp_path: Path) -> None:
    from cloud.gateways.provisioning import CloudSigner
    from cloud.registry.db import open_registry

    sessions = open_registry(f"sqlite:///{tmp_path / 'r.sqlite'}")
    signer = CloudSigner.load_or_create(tmp_path / "cloud.key")
    long_ago = datetime.now(UTC) - timedelta(days=30)
    past = ProvisioningService(sessions, signer, clock=lambda: long_ago)
    grant = BrokerGrant("mqtt://127.0.0.1:1883")
    past.create_claim("s1", "gw-old", 'site = "s1"\ngateway = "gw-old"\n', grant)
    used = past.create_claim("s1", "gw-used", 'site = "s1"\ngateway = "gw-used"\n', grant)
    key = Ed25519PrivateKey.generate().public_key()
    past.redeem(used.token, public_key_b64(key), key_id(key))
    service = ProvisioningService(sessions, signer)
    live = service.create_claim("s1", "gw-new", 'site = "s1"\ngateway = "gw-new"\n', grant)

    with sessions() as session:
        left = set(session.scalars(select(ClaimToken.gateway_id)))

    assert left == {"gw-new"}, "issuing a claim purged the token used and the one expired"
    key = Ed25519PrivateKey.generate().public_key()
    service.redeem(live.token, public_key_b64(key), key_id(key))
    assert service.purge_claims() == 0, "used just now: kept for the retention"
    assert service.purge_claims(older_than=timedelta(0)) == 1


def test_claim_token_given_as_an_argument_is_refused_and_stdin_works(
    rig: WebRig, url: str, tmp_path: Path
) -> None:
    service: ProvisioningService = rig.app.state.services.provisioning
    token = service.create_claim(
        "park-a", "gw-argv", FULL_TOML.format(gw="gw-argv"), rig.web.claim_broker
    ).token
    cli = typer.Typer()
    cli.command("provision")(edge_provision)
    cli.command("noop")(lambda: None)

    refused = CliRunner().invoke(cli, ["provision", url, token, "--data-dir", str(tmp_path / "a")])

    assert refused.exit_code == 2
    assert (
        "must not be given as an argument" in refused.stderr and "MF_CLAIM_TOKEN" in refused.stderr
    )
    assert not (tmp_path / "a" / "gateway.key").exists()
    env = {k: v for k, v in os.environ.items() if k != "MF_CLAIM_TOKEN"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "meterflow",
            "edge",
            "provision",
            url,
            "--data-dir",
            str(tmp_path / "b"),
        ],
        input=token + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert '"gateway": "gw-argv"' in done.stdout, "the token refused above was still unused"
