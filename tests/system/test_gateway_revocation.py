"""A stolen gateway revoked with ``meterflow cloud gateway revoke`` while ingest runs on real
mosquitto: what it sent before stays stored, its next envelope is dead-lettered as
``revoked_key`` (payload kept) although ingest cached its key a moment before, another
gateway's readings keep being stored, and nothing is restarted. Decision 0043."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from cloud.ingest.models import DeadLetter
from cloud.ingest.service import IngestService
from cloud.ingest.worker import IngestWorker
from cloud.registry.db import open_registry
from cloud.registry.service import find_key, register_gateway
from cloud.series.sqlite import SqliteSeriesStore
from cloud.staff.accounts import AccountService
from cloud.staff.audit import entries_for
from edge.keys import GatewayIdentity
from meterflow.cli import app
from tests.support.factories import T0, envelope, reading, received
from tests.support.mqtt_clients import publish_raw

PASSWORD = "a long enough password"


def wait_for(predicate: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        time.sleep(0.05)


@dataclass
class Site:
    registry: sessionmaker[Session]
    service: IngestService
    stolen: GatewayIdentity
    other: GatewayIdentity
    env: dict[str, str]

    def cli(self, *args: str):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(app, ["cloud", "gateway", "revoke", *args], env=self.env)

    def handled(self) -> int:
        s = self.service.stats
        return s.stored + s.duplicates + s.rejected

    def values(self, meter: str) -> list[float]:
        frame = self.service.store.read(
            meter, "energy_import", T0, T0 + timedelta(days=1), site="s1"
        )
        return frame.values.tolist()


@pytest.fixture
def site(tmp_path: Path, mosquitto_server, request: pytest.FixtureRequest) -> Iterator[Site]:  # type: ignore[no-untyped-def]
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    stolen, other = (GatewayIdentity(Ed25519PrivateKey.generate()) for _ in "12")
    with registry.begin() as session:
        register_gateway(session, "s1", "gw1", stolen.public_key)
        register_gateway(session, "s1", "gw2", other.public_key)
    accounts = AccountService(registry)
    accounts.create_account("eng-a", PASSWORD, "engineer", ["s1"])
    accounts.create_account("eng-b", PASSWORD, "engineer", ["s2"])
    accounts.create_account("fin-a", PASSWORD, "finance", ["s1"])
    # the default key cache (30 s): the revocation must hold without waiting it out
    service = IngestService(registry, SqliteSeriesStore(tmp_path / "series.sqlite"), now=received)
    worker = IngestWorker(service, mosquitto_server.url, client_id=f"revoke-{request.node.name}")
    worker.start()
    env = {"MF_DATA_DIR": str(tmp_path), "MF_DB_URL": f"sqlite:///{tmp_path / 'registry.sqlite'}"}
    try:
        yield Site(registry, service, stolen, other, env)
    finally:
        worker.stop()
        service.store.close()
        registry.kw["bind"].dispose()


def test_a_revoked_gateways_next_envelope_is_refused_while_others_are_stored(
    site: Site, mosquitto_server
) -> None:  # type: ignore[no-untyped-def]
    url = mosquitto_server.url
    gw1, gw2 = "mf/v1/s1/gw1/up/readings", "mf/v1/s1/gw2/up/readings"
    before = [envelope(site.stolen, seq, [reading("M1", minute=seq)]) for seq in range(3)]
    publish_raw(url, gw1, before)
    publish_raw(url, gw2, [envelope(site.other, 0, [reading("M2", minute=0)], gateway="gw2")])
    wait_for(lambda: site.service.stats.stored == 4, "readings before the theft stored")

    refused = [
        site.cli("gw1", "--reason", "stolen", "--as", "eng-b"),  # another site's engineer
        site.cli("gw1", "--reason", "stolen", "--as", "fin-a"),  # not an engineer
        site.cli("gw1", "--reason", "other", "--as", "eng-a"),  # other, but no note
    ]
    revoked = site.cli("gw1", "--reason", "stolen", "--note", "van broken into", "--as", "eng-a",
                       "--json")  # fmt: skip

    assert [r.exit_code for r in refused] == [2, 2, 2]
    assert "no gateway 'gw1'" in refused[0].stderr
    assert "finance role may not" in refused[1].stderr
    assert "needs a note" in refused[2].stderr
    assert revoked.exit_code == 0, revoked.output
    out = json.loads(revoked.stdout)
    assert (out["changed"], out["reason"], out["note"], out["revoked_by"]) == (
        True,
        "stolen",
        "van broken into",
        "eng-a",
    )
    assert out["kids"] == [site.stolen.kid]
    assert "broker-users.sh remove gw1" in out["broker_user"]

    # the thief's box goes on publishing; the other gateway too; ingest was never restarted
    handled = site.handled()
    after = envelope(site.stolen, 3, [reading("M1", minute=3, value="999")])
    publish_raw(url, gw1, [after])
    publish_raw(url, gw2, [envelope(site.other, 1, [reading("M2", minute=1)], gateway="gw2")])
    wait_for(lambda: site.handled() == handled + 2, "both envelopes after the revocation")

    assert site.service.stats.stored == 5 and dict(site.service.stats.reasons) == {"revoked_key": 1}
    assert site.values("M1") == [100.25, 100.25, 100.25]  # nothing sent before is lost
    assert len(site.values("M2")) == 2  # the other gateway is stored as before
    with site.registry() as session:
        letters = session.execute(select(DeadLetter.reason, DeadLetter.payload)).all()
        assert find_key(session, site.stolen.kid).revoked  # type: ignore[union-attr]
        assert not find_key(session, site.other.kid).revoked  # type: ignore[union-attr]
        (entry,) = entries_for(session, ["gateway:gw1"])
    assert letters == [("revoked_key", after)]  # dead-lettered with its payload
    assert (entry.actor, entry.action) == ("eng-a", "revoke_gateway")
    assert json.loads(entry.detail)["from"] == "cli"

    again = site.cli("gw1", "--reason", "lost", "--as", "eng-a")
    assert again.exit_code == 0, again.output
    assert "revoked already (stolen, by eng-a" in again.stdout and "nothing changed" in again.stdout
    with site.registry() as session:
        assert len(entries_for(session, ["gateway:gw1"])) == 1
