"""The commands of the web application: ``web-account`` makes a staff account that signs in
on ``meterflow cloud api``'s pages, served with the gateway feed waiting for its broker."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import typer
from typer.testing import CliRunner

from meterflow.cli.web import cloud_web_account
from tests.support import servers


def test_web_account_then_sign_in_on_the_served_pages(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MF_DATA_DIR": str(tmp_path / "cloud"),
        "MF_MQTT_URL": f"mqtt://127.0.0.1:{servers.free_port()}",
        "MF_WEB_PUBLIC_URL": "https://meter.example.com",
    }  # nobody listens there
    cli = typer.Typer()
    cli.command()(cloud_web_account)
    made = CliRunner().invoke(
        cli,
        ["carol", "--role", "finance", "--site", "park-a"],
        env={**env, "MF_WEB_ACCOUNT_PASSWORD": "a long password"},
    )
    assert made.exit_code == 0, made.output
    refused = CliRunner().invoke(
        cli,
        ["dave", "--role", "finance"],
        env={**env, "MF_WEB_ACCOUNT_PASSWORD": "a long password"},
    )
    assert refused.exit_code == 2 and "at least one site" in refused.output
    with servers.cloud_api(env, tmp_path / "api.log") as (_proc, url):
        with httpx.Client(base_url=url, timeout=10, follow_redirects=True) as client:
            assert client.get("/healthz").json() == {"status": "ok"}
            login = client.get("/login")
            csrf = login.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            reply = client.post(
                "/login", data={"username": "carol", "csrf": csrf, "password": "a long password"}
            )
            assert reply.status_code == 200 and str(reply.url).endswith("/finance/runs")
            assert (
                client.get("/api/v1/gateways", headers={"Authorization": "Bearer nope"}).status_code
                == 401
            )
        assert (tmp_path / "cloud" / "web.secret").stat().st_mode & 0o777 == 0o600
