"""Revocation as the registry's commands and replacements see it (decision 0043): every key
revocation is recorded with its reason, and the ingest's mark moves with it; a revoked gateway
takes a new key only with ``register-gateway --replace``, and its revoked key never again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from typer.testing import CliRunner

from cloud.gateways.health import UnknownGateway
from cloud.gateways.provisioning import BrokerGrant, CloudSigner, ProvisioningService
from cloud.gateways.replacement import ReplacementService
from cloud.gateways.revocation import GatewayRevocations
from cloud.registry.db import open_registry
from cloud.registry.models import GatewayRevocation
from cloud.registry.service import find_key, revocation_mark
from cloud.staff.accounts import Principal, Role
from edge.wire import key_id, public_key_b64
from meterflow.cli import app

SITE = 'site = "s1"\ngateway = "{gw}"\n'
ADMIN = Principal("admin", Role.ADMIN, frozenset(), origin="test")


def test_register_gateway_brings_a_revoked_gateway_back_only_with_replace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MF_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MF_DB_URL", raising=False)
    first, second = (public_key_b64(Ed25519PrivateKey.generate().public_key()) for _ in "12")
    register = ["cloud", "register-gateway", "--site", "s1", "--gateway", "gw1", "--public-key"]
    runner = CliRunner()
    assert runner.invoke(app, [*register, first]).exit_code == 0
    revoked = runner.invoke(
        app, ["cloud", "gateway", "revoke", "gw1", "--reason", "decommissioned"]
    )  # no --as: the host's operator, an admin
    assert revoked.exit_code == 0, revoked.output
    assert "gateway gw1 revoked (decommissioned) by cli" in revoked.stdout
    assert "broker-users.sh remove gw1" in revoked.stderr

    silent = runner.invoke(app, [*register, second])
    old_key = runner.invoke(app, [*register, first, "--replace"])
    replaced = runner.invoke(app, [*register, second, "--replace"])

    assert silent.exit_code == 2 and "was revoked" in silent.stderr
    assert old_key.exit_code == 2 and "never accepted again" in old_key.stderr
    assert replaced.exit_code == 0, replaced.output
    assert json.loads(replaced.stdout)["revoked"] == []  # nothing was live
    sessions = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    with sessions() as session:
        kid = json.loads(replaced.stdout)["kid"]
        assert not find_key(session, kid).revoked  # type: ignore[union-attr]
    assert GatewayRevocations(sessions).revoked(["gw1"]) == {}  # live again
    sessions.kw["bind"].dispose()


def test_a_replacement_records_its_revocation_and_moves_the_ingest_mark(tmp_path: Path) -> None:
    sessions = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    provisioning = ProvisioningService(sessions, CloudSigner.load_or_create(tmp_path / "c.key"))
    grant = BrokerGrant("mqtt://127.0.0.1:1883")
    keys = [Ed25519PrivateKey.generate().public_key() for _ in range(2)]
    claim = provisioning.create_claim("s1", "gw1", SITE.format(gw="gw1"), grant)
    provisioning.redeem(claim.token, public_key_b64(keys[0]), key_id(keys[0]))
    with sessions() as session:
        before = revocation_mark(session)
    claim = provisioning.create_claim(
        "s1", "gw1", SITE.format(gw="gw1"), grant, replace=True, issued_by="eng-a"
    )
    provisioning.redeem(claim.token, public_key_b64(keys[1]), key_id(keys[1]))
    (pending,) = ReplacementService(sessions, provisioning.command_keys).listing()
    ReplacementService(sessions, provisioning.command_keys).approve(pending.id, "admin")

    with sessions() as session:
        row = session.scalars(select(GatewayRevocation)).one()
        assert revocation_mark(session) == (1, row.id) != before
    assert (row.reason, row.revoked_by, row.origin, row.kids) == (
        "replaced",
        "admin",
        "replacement",
        [key_id(keys[0])],
    )
    # a replaced gateway holds a live key: it is not a revoked gateway
    assert GatewayRevocations(sessions).revoked(["gw1"]) == {}
    with pytest.raises(UnknownGateway):
        GatewayRevocations(sessions).revoke(ADMIN, "gw-none", "lost")
    sessions.kw["bind"].dispose()
