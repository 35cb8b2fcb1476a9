"""The gateway agent against simulated meters: bounds, health, failing meters, config."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from edge.agent import GatewayAgent, multiplier_for, tree_order
from edge.config import ConfigError, GroupConfig, LineConfig, MeterConfig, OutboxConfig, SiteConfig
from edge.health import format_status, read_status, serve_metrics, write_status
from edge.keys import GatewayIdentity
from edge.outbox import OutboxStore
from edge.publisher import MqttPublisher
from meter_drivers.sideline import SidelinePolicy
from meterflow.broker import free_port
from meterflow.cli import app
from simulators.dlt645_meter import Dlt645Line, Faults, SimulatedMeter, serve_in_thread
from simulators.load import LoadModel, SimClock

T0 = datetime(2026, 7, 1, tzinfo=UTC)


def make_agent(
    tmp_path: Path,
    line: Dlt645Line,
    meters: list[MeterConfig],
    *,
    groups: list[GroupConfig] | None = None,
    outbox: OutboxConfig | None = None,
    clock: SimClock | None = None,
    sideline: SidelinePolicy | None = None,
    broker_url: str | None = None,
):  # type: ignore[no-untyped-def]
    port, stop = serve_in_thread(line)
    config = SiteConfig(
        site="s1",
        gateway="gw1",
        metrics_port=0,
        groups=groups or [GroupConfig(name="g", interval_s=60, quantities=["energy_import"])],
        outbox=outbox or OutboxConfig(),
        lines=[
            LineConfig(
                name="l1",
                tcp=f"127.0.0.1:{port}",
                timeout_s=0.2,
                retries=0,
                pause_s=0,
                meters=meters,
            )
        ],
    )
    box = OutboxStore(tmp_path / "outbox.sqlite")
    # No broker listens here: the whole test is one long outage.
    publisher = MqttPublisher(
        broker_url or f"mqtt://127.0.0.1:{free_port()}",
        site="s1",
        gateway="gw1",
        on_acked=box.acknowledge,
    )
    agent = GatewayAgent(
        config,
        GatewayIdentity(Ed25519PrivateKey.generate()),
        box,
        publisher,
        now=(clock or SimClock(T0)).now,
        sideline=sideline,
    )
    return agent, stop


def test_outbox_stays_within_its_bound_through_a_long_outage_and_counts_what_it_evicts(
    tmp_path,
):
    clock = SimClock(T0)
    addresses = [f"{n:012d}" for n in range(1, 9)]
    line = Dlt645Line(
        [SimulatedMeter(a, LoadModel(3.0, seed=i), clock=clock) for i, a in enumerate(addresses)]
    )
    quantities = [
        "energy_import",
        "energy_import_t1",
        "energy_import_t2",
        "energy_import_t3",
        "energy_import_t4",
        "voltage_a",
        "current_a",
        "power_total",
    ]
    bound = 2**20
    agent, stop = make_agent(
        tmp_path,
        line,
        [MeterConfig(id=f"M{i}", address=a) for i, a in enumerate(addresses)],
        groups=[GroupConfig(name="g", interval_s=60, quantities=quantities)],
        outbox=OutboxConfig(max_bytes=bound, alarm_fraction=0.5),
        clock=clock,
    )

    async def outage() -> list[int]:
        sizes = []
        for _ in range(160):  # 160 rounds × 64 readings, about 3 MB of envelopes
            await agent.poll_round()
            agent.pump()
            sizes.append(agent.outbox.disk_bytes())
            clock.advance(60)
        await agent.close()
        return sizes

    try:
        sizes = asyncio.run(outage())
    finally:
        stop()
    depth = agent.outbox.depth()
    assert max(sizes) <= bound, f"outbox grew to {max(sizes)} bytes, bound {bound}"
    assert depth.evicted_readings > 0 and depth.evicted_envelopes > 0
    health = agent.health()
    assert health.outbox.alarm and health.outbox.evicted_readings == depth.evicted_readings
    kept = sum(e.readings for e in agent.outbox.unacked(limit=100_000))
    assert kept + depth.evicted_readings + depth.pending_readings == 160 * 64
    # What survived is the newest data: eviction is oldest first.
    assert agent.outbox.unacked(limit=100_000)[-1].seq == 159


def test_a_meter_that_stops_answering_is_reported_while_the_others_keep_their_schedule(
    tmp_path,
):
    clock = SimClock(T0)
    dead = Faults(no_answer=1.0)
    meters = [
        SimulatedMeter(
            f"{n:012d}", LoadModel(2.0, seed=n), clock=clock, faults=dead if n == 3 else Faults()
        )
        for n in range(1, 6)
    ]
    agent, stop = make_agent(
        tmp_path,
        Dlt645Line(meters),
        [MeterConfig(id=f"M{n}", address=f"{n:012d}") for n in range(1, 6)],
        clock=clock,
        sideline=SidelinePolicy(after_failed_rounds=2, for_s=3600),
    )

    async def rounds():  # type: ignore[no-untyped-def]
        reports = []
        for _ in range(5):
            reports.append(await agent.poll_round())
            clock.advance(60)
        await agent.close()
        return reports

    try:
        reports = asyncio.run(rounds())
    finally:
        stop()
    assert [r.good for r in reports] == [4] * 5  # the four live meters, every round
    assert [r.failed for r in reports] == [1, 1, 0, 0, 0]  # then M3 is sidelined
    assert [r.skipped_meters for r in reports] == [0, 0, 1, 1, 1]
    assert all(r.duration_s < 1.0 for r in reports)
    health = {m.meter: m for m in agent.health().meters}
    assert health["M3"].sidelined and health["M3"].failures == 2
    assert health["M3"].last_good is None
    assert all(not health[f"M{n}"].sidelined and health[f"M{n}"].reads == 5 for n in (1, 2, 4, 5))
    write_status(tmp_path / "status.json", agent.health())
    text = format_status(read_status(tmp_path / "status.json"))
    assert "M3" in text and "SIDELINED" in text


def test_metrics_are_served_on_loopback(tmp_path):
    clock = SimClock(T0)
    agent, stop = make_agent(
        tmp_path,
        Dlt645Line([SimulatedMeter("000000000001", LoadModel(1.0, seed=1), clock=clock)]),
        [MeterConfig(id="M1", address="000000000001")],
        clock=clock,
    )
    try:
        asyncio.run(agent.poll_round())
        port = free_port()
        serve_metrics(agent.health, port)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    finally:
        asyncio.run(agent.close())
        stop()
    text = body.decode()
    assert 'mf_meter_reads_total{meter="M1"} 1.0' in text
    assert "mf_outbox_pending_readings 1.0" in text


def test_snapshot_group_reads_frozen_registers_stamped_at_the_round_boundary(tmp_path):
    clock = SimClock(T0)
    meters = [SimulatedMeter(f"{n:012d}", LoadModel(4.0, seed=n), clock=clock) for n in (1, 2)]
    agent, stop = make_agent(
        tmp_path,
        Dlt645Line(meters),
        [
            MeterConfig(id="M1", address="000000000001", role="main"),
            MeterConfig(id="M2", address="000000000002", parent="M1"),
        ],
        groups=[
            GroupConfig(name="billing", interval_s=900, quantities=["energy_import"], snapshot=True)
        ],
        clock=clock,
    )
    tick = int(T0.timestamp())
    try:
        asyncio.run(agent.poll_round(tick))
        asyncio.run(agent.close())
    finally:
        stop()
    box = agent.outbox
    env = box.seal_next(agent._seal, agent.epoch, 100)
    from edge.wire import open_envelope

    readings = open_envelope(env.body, agent.identity.public_key).readings
    assert [r.read_at for r in readings] == [T0, T0]
    assert [r.value for r in readings] == [m.load.energy_import_kwh(T0) for m in meters]


def test_multipliers_follow_the_transformers():
    m = MeterConfig(id="M1", address="1", ct=Decimal(40), pt=Decimal(100))
    assert multiplier_for("energy_import_t2", m) == 4000
    assert multiplier_for("power_total", m) == 4000
    assert multiplier_for("current_a", m) == 40
    assert multiplier_for("voltage_b", m) == 100
    assert multiplier_for("power_factor_total", m) == 1
    assert multiplier_for("frequency", m) == 1


def test_tree_order_puts_parents_first():
    ms = [
        MeterConfig(id="U1", address="3", parent="B1"),
        MeterConfig(id="B1", address="2", parent="M"),
        MeterConfig(id="M", address="1"),
    ]
    assert [m.id for m in tree_order(ms)] == ["M", "B1", "U1"]


CONFIG = """site = "s1"
gateway = "gw1"

[[lines]]
name = "rs485-1"
tcp = "127.0.0.1:8899"

[[lines.meters]]
id = "M1"
address = "000000000001"

[[lines.meters]]
id = "M2"
adress = "000000000002"
"""


def test_config_typo_is_named_with_file_line_and_field(tmp_path):
    path = tmp_path / "site.toml"
    path.write_text(CONFIG)
    with pytest.raises(ConfigError) as err:
        SiteConfig.load(path)
    message = str(err.value)
    assert f"{path}:14: lines[0].meters[1].adress: Extra inputs are not permitted" in message
    assert f"{path}:12: lines[0].meters[1].address: Field required" in message
    out = CliRunner().invoke(app, ["edge", "check", str(path)])
    assert out.exit_code == 2 and "adress" in out.output


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ('tcp = "127.0.0.1:8899"', "exactly one of tcp"),
        ('parent = "M9"\n', "parent 'M9' is not a meter here"),
    ],
)
def test_config_semantic_errors_name_the_item(tmp_path, change, expected):
    text = CONFIG.replace('adress = "000000000002"', 'address = "000000000002"')
    if change.startswith("tcp"):
        text = text.replace(change, change + '\nserial = "/dev/ttyS1"')
    else:
        text = text.replace('address = "000000000002"', 'address = "000000000002"\n' + change)
    with pytest.raises(ConfigError, match=expected):
        SiteConfig.parse_toml(text, "site.toml")


def test_plan_check_warns_when_a_line_cannot_keep_up(tmp_path):
    clock = SimClock(T0)
    addresses = [f"{n:012d}" for n in range(1, 31)]
    agent, stop = make_agent(
        tmp_path,
        Dlt645Line([SimulatedMeter(a, LoadModel(1.0, seed=1), clock=clock) for a in addresses]),
        [MeterConfig(id=f"M{i}", address=a) for i, a in enumerate(addresses)],
        groups=[GroupConfig(name="fast", interval_s=5, quantities=["energy_import", "voltage_a"])],
        clock=clock,
    )
    try:
        assert any("group fast needs" in w for w in agent.plan_warnings)
    finally:
        asyncio.run(agent.close())
        stop()
    assert json.dumps(agent.plan_warnings)
