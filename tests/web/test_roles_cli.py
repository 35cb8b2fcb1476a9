"""``meterflow cloud web-account`` (the real command, in a subprocess) makes the lease roles'
accounts with their buildings; the served app then knows them: the manager lands on the lease
list, /api/v1/me and the admin's account list show the buildings; bad input is refused with
what was expected."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support import servers

PASSWORD = "a long password"


def web_account(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meterflow", "cloud", "web-account", *args],
        env={**env, "MF_WEB_ACCOUNT_PASSWORD": PASSWORD},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_web_account_makes_a_manager_of_one_building(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MF_DATA_DIR": str(tmp_path / "cloud"),
        "MF_MQTT_URL": f"mqtt://127.0.0.1:{servers.free_port()}",  # nobody listens there
        "MF_WEB_PUBLIC_URL": "https://meter.example.com",
    }
    made = web_account(env, "mgr-a", "--role", "manager", "--building", "park-a/A")
    assert made.returncode == 0, made.stderr
    assert "'mgr-a' (manager) limited to park-a/A created" in made.stderr
    assert web_account(env, "root", "--role", "admin").returncode == 0
    for args, expected in (
        (["mgr-x", "--role", "manager", "--site", "park-a"], "needs at least one building"),
        (["mgr-x", "--role", "manager", "--building", "park-a"], "expected SITE/BUILDING"),
        (
            ["fin-x", "--role", "finance", "--site", "park-a", "--building", "park-a/A"],
            "the finance role acts on whole sites",
        ),
    ):
        refused = web_account(env, *args)
        assert refused.returncode == 2 and expected in refused.stderr, refused.stderr
    assert web_account(env, "sup-a", "--role", "supervisor", "--site", "park-a").returncode == 0
    with servers.cloud_api(env, tmp_path / "api.log") as (_proc, url):
        with httpx.Client(base_url=url, timeout=10, follow_redirects=True) as client:
            login = client.get("/login")
            csrf = login.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            landed = client.post(
                "/login", data={"username": "mgr-a", "csrf": csrf, "password": PASSWORD}
            )
            assert landed.status_code == 200 and str(landed.url).endswith("/leases")
            assert "租约" in landed.text and "管家" in landed.text
        with httpx.Client(base_url=url, timeout=10) as client:
            token = client.post(
                "/api/v1/session", json={"username": "mgr-a", "password": PASSWORD}
            ).json()["token"]
            me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
            assert (me["role"], me["buildings"]) == ("manager", ["park-a/A"])
            assert me["sites"] == ["park-a"]
            assert (
                client.get("/api/v1/runs", headers={"Authorization": f"Bearer {token}"}).status_code
                == 403
            )
            root = client.post(
                "/api/v1/session", json={"username": "root", "password": PASSWORD}
            ).json()["token"]
            listed = {
                a["username"]: (a["role"], a["sites"], a["buildings"])
                for a in client.get(
                    "/api/v1/accounts", headers={"Authorization": f"Bearer {root}"}
                ).json()
            }
            assert listed["mgr-a"] == ("manager", ["park-a"], ["park-a/A"])
            assert listed["sup-a"] == ("supervisor", ["park-a"], [])
            # the admin's API makes a legal account limited to a building, and refuses a
            # manager without one with what was expected
            auth = {"Authorization": f"Bearer {root}"}
            made = client.post(
                "/api/v1/accounts",
                headers=auth,
                json={
                    "username": "legal-b",
                    "password": PASSWORD,
                    "role": "legal",
                    "buildings": ["park-b/2号楼"],
                },
            )
            assert made.status_code == 201, made.text
            assert made.json()["sites"] == ["park-b"]
            assert made.json()["buildings"] == ["park-b/2号楼"]
            refused = client.post(
                "/api/v1/accounts",
                headers=auth,
                json={
                    "username": "mgr-y",
                    "password": PASSWORD,
                    "role": "manager",
                    "sites": ["park-b"],
                },
            )
            assert refused.status_code == 400 and "needs at least one building" in refused.text
