"""Every ``meterflow edge`` command follows MF_DATA_DIR, and ``edge run`` takes what
``edge provision`` stored there (site file, broker URL, user, password, topic prefix, CA),
each overridden by its MF_* setting when that is set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge.provision import ProvisionError, load_broker
from edge.wire.mqtt import BrokerAddress
from meterflow.cli import app
from meterflow.cli.edge import _broker
from meterflow.settings import Settings

SITE = """site = "s1"
gateway = "gw1"
metrics_port = 0

[[lines]]
name = "bus1"
tcp = "127.0.0.1:4059"

[[lines.meters]]
id = "M1"
address = "000000000001"
"""
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MF_DATA_DIR set, no other MF_* setting, the working directory elsewhere."""
    for name in ("MF_MQTT_URL", "MF_MQTT_USERNAME", "MF_MQTT_PASSWORD", "MF_TOPIC_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MF_DATA_DIR", str(tmp_path / "gw"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "gw"


def test_keygen_and_check_follow_mf_data_dir(data_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    keygen = runner.invoke(app, ["edge", "keygen"])
    missing = runner.invoke(app, ["edge", "check"])
    (data_dir / "site.toml").write_text(SITE)
    checked = runner.invoke(app, ["edge", "check"])

    assert keygen.exit_code == 0, keygen.output
    assert (data_dir / "gateway.key").stat().st_mode & 0o777 == 0o600
    assert set(json.loads(keygen.stdout)) == {"kid", "public_key"}
    assert not (tmp_path / "var").exists(), "nothing under ./var when MF_DATA_DIR is set"
    assert missing.exit_code == 2
    assert f"{data_dir / 'site.toml'} does not exist" in missing.stderr
    assert checked.exit_code == 0, checked.output
    assert "site s1, gateway gw1" in checked.stdout


def write_broker(data_dir: Path, **extra: str) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    stored = {
        "mqtt_url": "mqtts://broker.example:8884",
        "mqtt_username": "gw1",
        "mqtt_password": "stored-pw",
        "topic_prefix": "acme/v2",
        **extra,
    }
    (data_dir / "broker.json").write_text(json.dumps(stored))


def test_edge_run_takes_the_stored_broker_user_prefix_and_ca(data_dir: Path) -> None:
    write_broker(data_dir, ca_file="broker-ca.pem")
    (data_dir / "broker-ca.pem").write_text(PEM)

    url, topics, tls = _broker(Settings())

    assert BrokerAddress.parse(url) == BrokerAddress(
        "broker.example", 8884, True, "gw1", "stored-pw"
    )
    assert topics.prefix == "acme/v2"
    assert tls is not None and tls.ca_file == str(data_dir / "broker-ca.pem")


def test_explicit_settings_override_what_provisioning_stored(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_broker(data_dir)
    monkeypatch.setenv("MF_TOPIC_PREFIX", "other/v1")
    monkeypatch.setenv("MF_MQTT_USERNAME", "gw1-spare")
    monkeypatch.setenv("MF_MQTT_PASSWORD", "spare-pw")
    url, topics, tls = _broker(Settings())
    assert BrokerAddress.parse(url) == BrokerAddress(
        "broker.example", 8884, True, "gw1-spare", "spare-pw"
    )
    assert (topics.prefix, tls) == ("other/v1", None)

    monkeypatch.setenv("MF_MQTT_URL", "mqtt://10.0.0.9:1883")  # the broker itself, as before
    url, _topics, _tls = _broker(Settings())
    assert BrokerAddress.parse(url) == BrokerAddress(
        "10.0.0.9", 1883, False, "gw1-spare", "spare-pw"
    )


def test_a_stored_ca_that_is_missing_is_named(data_dir: Path) -> None:
    write_broker(data_dir, ca_file="broker-ca.pem")
    with pytest.raises(ProvisionError, match=r"names the broker's CA 'broker-ca.pem'"):
        load_broker(data_dir)
    runner = CliRunner()
    (data_dir / "site.toml").write_text(SITE)
    assert runner.invoke(app, ["edge", "keygen"]).exit_code == 0
    ran = runner.invoke(app, ["edge", "run"])
    assert ran.exit_code == 2 and "broker-ca.pem" in ran.stderr
