"""Modbus meters in the gateway agent and in the field-engineer commands, on simulators."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from edge.agent import GatewayAgent
from edge.config import GroupConfig, LineConfig, MeterConfig, SiteConfig
from edge.keys import GatewayIdentity
from edge.outbox import OutboxStore
from edge.publisher import MqttPublisher
from edge.wire import open_envelope
from meter_drivers.modbus.profile import load_builtin
from meterflow.broker import free_port
from meterflow.cli import app
from simulators.load import LoadModel, SimClock
from simulators.modbus_meter import ModbusLine, SimulatedModbusMeter, serve_in_thread

T0 = datetime(2026, 8, 1, 6, tzinfo=UTC)


def sim_line(clock: SimClock) -> ModbusLine:
    return ModbusLine(
        [
            SimulatedModbusMeter(1, load_builtin("sdm630"), LoadModel(6.0, seed=1), clock=clock),
            SimulatedModbusMeter(2, load_builtin("dtsu666"), LoadModel(3.0, seed=2), clock=clock),
            SimulatedModbusMeter(3, load_builtin("tuf2000"), LoadModel(0.5, seed=3), clock=clock),
        ]
    )


def one_round(tmp_path, line: ModbusLine, clock: SimClock, quantities, meters):  # type: ignore[no-untyped-def]
    """One polling round of an agent over ``line`` (served on loopback, no broker): the
    round's report and its readings by (meter, quantity), read back from the sealed
    envelope."""
    port, stop = serve_in_thread(line)
    config = SiteConfig(
        site="s1",
        gateway="gw1",
        metrics_port=0,
        groups=[GroupConfig(name="g", interval_s=60, quantities=quantities)],
        lines=[
            LineConfig(
                name="mb", protocol="modbus", tcp=f"127.0.0.1:{port}", timeout_s=0.5, meters=meters
            )
        ],
    )
    box = OutboxStore(tmp_path / "outbox.sqlite")
    publisher = MqttPublisher(
        f"mqtt://127.0.0.1:{free_port()}", site="s1", gateway="gw1", on_acked=box.acknowledge
    )
    agent = GatewayAgent(
        config, GatewayIdentity(Ed25519PrivateKey.generate()), box, publisher, now=clock.now
    )

    async def poll():  # type: ignore[no-untyped-def]
        try:
            return await agent.poll_round()
        finally:
            await agent.close()

    try:
        report = asyncio.run(poll())
    finally:
        stop()
    env = box.seal_next(agent._seal, agent.epoch, 100)
    got = {
        (r.meter, r.quantity): r
        for r in open_envelope(env.body, agent.identity.public_key).readings
    }
    return report, got


def test_agent_reads_modbus_meters_through_their_profiles(tmp_path):
    clock = SimClock(T0)
    line = sim_line(clock)
    report, got = one_round(
        tmp_path,
        line,
        clock,
        ["energy_import", "voltage_a", "water_volume"],
        [
            MeterConfig(id="E1", address="1", profile="sdm630", ct=Decimal(20)),
            MeterConfig(id="E2", address="2", profile="dtsu666"),
            MeterConfig(id="W1", address="3", profile="tuf2000"),
            MeterConfig(id="E9", address="9", profile="sdm630"),  # absent
        ],
    )
    sdm, dtsu, tuf = (line.meters[u] for u in (1, 2, 3))
    assert got[("E1", "energy_import")].value == sdm.expected("energy_import") * 20
    assert got[("E1", "energy_import")].multiplier == 20
    assert got[("E1", "voltage_a")].value == sdm.expected("voltage_a")
    assert got[("E2", "energy_import")].value == dtsu.expected("energy_import")
    assert got[("W1", "water_volume")].value == tuf.expected("water_volume")
    assert got[("E9", "energy_import")].quality.value == "timeout"
    assert (report.good, report.failed) == (5, 2)


def test_read_and_scan_commands_speak_modbus():
    clock = SimClock(T0)
    line = sim_line(clock)
    port, stop = serve_in_thread(line)
    runner = CliRunner()
    try:
        out = runner.invoke(
            app,
            [
                "edge",
                "read",
                "--protocol",
                "modbus",
                "--tcp",
                f"127.0.0.1:{port}",
                "--address",
                "1",
                "--profile",
                "sdm630",
                "--json",
            ],
        )
        assert out.exit_code == 0, out.output
        values = {v["quantity"]: v for v in json.loads(out.output)["values"]}
        assert Decimal(values["voltage_a"]["value"]) == line.meters[1].expected("voltage_a")
        assert values["voltage_a"]["unit"] == "V"
        scan = runner.invoke(
            app,
            [
                "edge",
                "scan",
                "--protocol",
                "modbus",
                "--tcp",
                f"127.0.0.1:{port}",
                "--timeout",
                "0.02",
                "--json",
            ],
        )
        assert scan.exit_code == 0, scan.output
        assert json.loads(scan.output.strip().splitlines()[-1])["found"] == [1, 2, 3]
        bad = runner.invoke(
            app,
            [
                "edge",
                "read",
                "--protocol",
                "modbus",
                "--tcp",
                f"127.0.0.1:{port}",
                "--address",
                "300",
                "--profile",
                "sdm630",
            ],
        )
        assert bad.exit_code == 2 and "1..247" in bad.output
    finally:
        stop()


def test_a_float_register_reading_nan_or_infinity_is_a_failed_read_not_a_stopped_round(
    tmp_path,
):
    # A faulty meter's float32 registers: NaN for the voltage, +infinity for the energy. The
    # wire cannot carry either; the round goes on and both are sent as failed reads.
    clock = SimClock(T0)
    line = sim_line(clock)
    sdm = line.meters[1]
    sdm._written["voltage_a"] = [0x7FC0, 0x0000]  # float32 NaN, ABCD
    sdm._written["energy_import"] = [0x7F80, 0x0000]  # float32 +inf
    report, got = one_round(
        tmp_path,
        line,
        clock,
        ["energy_import", "voltage_a"],
        [
            MeterConfig(id="E1", address="1", profile="sdm630", ct=Decimal(20)),
            MeterConfig(id="E2", address="2", profile="dtsu666"),
        ],
    )
    for quantity in ("voltage_a", "energy_import"):
        bad = got[("E1", quantity)]
        assert (bad.value, bad.quality.value, bad.unit) == (None, "error", "")
    dtsu = line.meters[2]
    assert got[("E2", "energy_import")].value == dtsu.expected("energy_import")
    assert (report.good, report.failed) == (2, 2)
