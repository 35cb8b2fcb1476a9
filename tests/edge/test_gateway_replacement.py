"""Replacing a gateway's hardware against the real path: `meterflow edge run` processes over
real mosquitto, the ingest worker on a SQLite registry and series store, provisioning by claim
tokens. An engineer's replacement waits for an admin; approval revokes the old key; the new
hardware's readings are stored; the old hardware is refused afterwards.

The new hardware starts at seq 0 while the old one got further: its readings are stored because
the ingest's duplicate filter is kept per gateway key (decision 0014)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

from cloud.gateways.provisioning import BrokerGrant, CloudSigner, ProvisioningService
from cloud.gateways.replacement import ReplacementService
from cloud.ingest.models import DeadLetter
from cloud.ingest.service import IngestService
from cloud.ingest.worker import IngestWorker
from cloud.registry.db import open_registry
from cloud.series.sqlite import SqliteSeriesStore
from edge.keys import public_key_b64
from simulators.dlt645_meter import SimulatedMeter, serve_in_thread
from simulators.load import LoadModel, SystemClock
from tests.support.gateway_rig import METERS, CountingLine, Gateway, site_toml, wait_for


@dataclass
class Outcome:
    """What the scenario observed, for the tests below to judge."""

    old_kid: str
    new_kid: str
    letters: list[tuple[str, str]] = field(default_factory=list)  # (reason, detail)
    refused_before_approval: int = 0
    stored_by_old: int = 0
    stored_after_approval: int = 0
    revoked: tuple[str, ...] = ()
    duplicates_after_approval: int = 0


def hardware(work: Path, broker_url: str, sim_port: int) -> Gateway:
    work.mkdir()
    return Gateway(work, broker_url, sim_port)


@pytest.fixture(scope="module")
def replaced(tmp_path_factory: pytest.TempPathFactory, mosquitto_server) -> Iterator[Outcome]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("replacement")
    line = CountingLine(
        [
            SimulatedMeter(a, LoadModel(5.0, seed=i), clock=SystemClock())
            for i, a in enumerate(METERS)
        ]
    )
    sim_port, stop_sim = serve_in_thread(line)
    registry = open_registry(f"sqlite:///{tmp / 'registry.sqlite'}")
    provisioning = ProvisioningService(registry, CloudSigner.load_or_create(tmp / "cloud.key"))
    replacements = ReplacementService(registry, provisioning.command_keys)
    service = IngestService(registry, SqliteSeriesStore(tmp / "series.sqlite"), key_cache_s=1)
    worker = IngestWorker(service, mosquitto_server.url, client_id="replacement-ingest")
    worker.start()
    old = hardware(tmp / "old", mosquitto_server.url, sim_port)
    new = hardware(tmp / "new", mosquitto_server.url, sim_port)
    grant = BrokerGrant(mosquitto_server.url)
    try:
        first = provisioning.create_claim("s1", "gw1", site_toml(sim_port), grant)
        provisioning.redeem(first.token, public_key_b64(old.identity.public_key), old.identity.kid)
        outcome = Outcome(old.identity.kid, new.identity.kid)
        old.start()
        wait_for(lambda: service.stats.stored >= 5, 60, "old hardware stored 5 envelopes")
        old.stop()  # the engineer swaps the hardware
        outcome.stored_by_old = service.stats.stored

        claim = provisioning.create_claim(
            "s1", "gw1", site_toml(sim_port), grant, replace=True, issued_by="eng-a"
        )
        reply = provisioning.redeem(
            claim.token, public_key_b64(new.identity.public_key), new.identity.kid
        )
        assert reply.awaiting_approval
        rejected = service.stats.rejected
        new.start()  # installed and started before the admin approves
        wait_for(lambda: service.stats.rejected >= rejected + 2, 60, "new hardware refused")
        outcome.refused_before_approval = service.stats.rejected - rejected

        (pending,) = replacements.listing()
        view = replacements.approve(pending.id, "admin")
        outcome.revoked = view.revoked
        stored, duplicates = service.stats.stored, service.stats.duplicates
        wait_for(
            lambda: service.stats.stored + service.stats.duplicates >= stored + duplicates + 5,
            60,
            "new hardware's envelopes taken after approval",
        )
        outcome.stored_after_approval = service.stats.stored - stored
        outcome.duplicates_after_approval = service.stats.duplicates - duplicates
        new.stop()

        rejected = service.stats.rejected
        old.start()  # the old hardware comes back with its key
        wait_for(lambda: service.stats.rejected >= rejected + 2, 60, "old hardware refused")
        old.stop()
        with registry() as session:
            outcome.letters = [
                (r.reason, r.detail) for r in session.scalars(select(DeadLetter)).all()
            ]
        yield outcome
    finally:
        for gw in (old, new):
            if gw.proc is not None and gw.proc.poll() is None:
                gw.stop()
        worker.stop()
        stop_sim()
        registry.kw["bind"].dispose()
        shutil.rmtree(tmp, ignore_errors=True)


def test_replacement_waits_for_approval_and_the_old_key_is_refused_afterwards(
    replaced: Outcome,
) -> None:
    reasons = [(reason, detail) for reason, detail in replaced.letters]
    unknown_new = [d for r, d in reasons if r == "unknown_key" and replaced.new_kid in d]
    revoked_old = [d for r, d in reasons if r == "revoked_key" and replaced.old_kid in d]

    assert replaced.stored_by_old >= 5
    assert replaced.refused_before_approval >= 2 and unknown_new, (
        "before approval the new hardware's envelopes are dead-lettered as unknown_key"
    )
    assert replaced.revoked == (replaced.old_kid,)
    assert len(revoked_old) >= 2, "the old hardware's envelopes are refused after approval"
    assert {r for r, _ in reasons} <= {"unknown_key", "revoked_key"}, reasons


def test_replacement_hardwares_readings_are_stored(replaced: Outcome) -> None:
    assert replaced.duplicates_after_approval == 0
    assert replaced.stored_after_approval >= 5
