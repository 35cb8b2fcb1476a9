"""Cloud-signed commands reaching a running gateway (`meterflow edge run`) through real
mosquitto, and its signed answers: read a meter now, sync time, reload the configuration."""

from __future__ import annotations

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from cloud.gateways.commands import issue_command, verify_ack
from cloud.gateways.provisioning import CloudSigner
from edge.wire import HealthPayload, Topics, parse_compact
from meterflow.cli import app
from tests.support.gateway_rig import wait_for


def test_gateway_answers_signed_commands(rig, tmp_path, mosquitto_server):
    _line, gateway, service, _ = rig
    signer = CloudSigner.load_or_create(tmp_path / "cloud.key")
    (tmp_path / "data" / "cloud.pub").write_bytes(
        signer.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    acks: list[bytes] = []
    health: list[bytes] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="cloud-commander")
    client.on_message = lambda _c, _u, m: (health if m.topic.endswith("/health") else acks).append(
        m.payload
    )
    client.connect("127.0.0.1", mosquitto_server.port)
    client.subscribe(Topics().ack("s1", "gw1"), qos=1)
    client.subscribe(Topics().health("s1", "gw1"), qos=0)
    client.loop_start()
    gateway.start()
    try:
        wait_for(lambda: service.stats.stored >= 1, 30, "gateway running")

        def ask(command: str, args: dict) -> dict:  # type: ignore[type-arg]
            signed = issue_command(signer, "s1", "gw1", command, args, ttl_s=60)
            before = len(acks)
            client.publish(Topics().command("s1", "gw1"), signed.envelope, qos=1).wait_for_publish(
                5
            )
            wait_for(lambda: len(acks) > before, 15, f"ack of {command}")
            with service.registry() as session:
                ack = verify_ack(session, acks[-1])
            assert ack.cmd_id == signed.cmd_id
            return ack.model_dump(mode="json")

        read = ask("read_meter", {"meter": "M2"})
        assert read["status"] == "ok", read
        (value,) = read["result"]["readings"]
        assert value["quantity"] == "energy_import" and value["quality"] == "good"
        unknown = ask("read_meter", {"meter": "M99"})
        assert unknown["status"] == "error" and "M99" in unknown["detail"]
        synced = ask("sync_time", {})
        assert synced["status"] == "ok" and synced["result"] == {"lines": 1}
        gateway.config.write_text(
            gateway.config.read_text().replace(
                'quantities = ["energy_import"]', 'quantities = ["energy_import", "voltage_a"]'
            )
        )
        reloaded = ask("reload_config", {})
        assert reloaded["status"] == "ok" and reloaded["result"]["meters"] == 4, reloaded
        wait_for(lambda: "configuration reloaded" in gateway.log.read_text(), 15, "reload")
        # Polling goes on with the new configuration: voltages arrive.
        wait_for(
            lambda: len(service.store.read("M1", "voltage_a", *_window(), site="s1")) > 0,
            20,
            "voltage readings after the reload",
        )
        # The signed health report: verifies with the gateway's key, names every meter.
        wait_for(lambda: bool(health), 10, "a health report")
        compact = parse_compact(health[-1])
        gateway.identity.public_key.verify(compact.signature, compact.signing_input)
        report = HealthPayload.model_validate_json(compact.payload)
        assert {m.meter for m in report.meters} == {"M0", "M1", "M2", "M3"}
        assert report.outbox.max_bytes > 0 and report.rounds > 0
        status = CliRunner().invoke(
            app, ["edge", "status"], env={"MF_DATA_DIR": str(tmp_path / "data")}
        )
        assert status.exit_code == 0 and "gateway gw1" in status.output, status.output
    finally:
        gateway.stop()
        client.loop_stop()
        client.disconnect()


def _window():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    return now - timedelta(hours=1), now + timedelta(hours=1)
