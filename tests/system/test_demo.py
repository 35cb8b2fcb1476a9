"""``meterflow demo`` on embedded defaults does the whole job — a month of a small park's
meters, the site file, the utility bill, the close, review and approval by two accounts,
posting — and ``meterflow demo --serve`` serves the pages: Chromium opens a tenant link the
demo printed and finance's run page with an account it printed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.browser import chromium
from tests.support.servers import free_port


def test_demo_closes_the_month_and_serves_a_tenant_page(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    out = subprocess.run(
        [sys.executable, "-m", "meterflow", "demo", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["rejected"] == 0 and summary["meters"] == 8
    assert summary["readings_stored"] == 8 * (30 * 4 + 1)
    assert summary["statements"] == 5  # four tenants and the landlord
    assert summary["lines_cents"] == summary["bill_cents"] > 0
    assert "review by fin-a: reviewed" in out.stdout
    assert "approve by fin-b: approved" in out.stdout
    links = re.findall(r"tenant +A101 XINGCHEN: (http://127\.0\.0\.1:\d+(/t/\S+))", out.stdout)
    assert links, out.stdout

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "meterflow", "demo", "--serve", "--data-dir", str(data),
         "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            assert time.monotonic() < deadline, "demo --serve did not answer within 60 s"
            time.sleep(0.3)
        passwords = json.loads((data / "demo-accounts.json").read_text())
        with chromium() as browser:
            page = browser.new_page(locale="zh-CN")
            page.goto(base + links[0][1])
            total = page.get_by_test_id("total")
            assert int(total.get_attribute("data-cents") or 0) > 0
            assert "星辰" in page.content() or "XINGCHEN" in page.content()
            page.goto(f"{base}/finance/runs")
            page.fill("input[name=username]", "fin-b")
            page.fill("input[name=password]", passwords["fin-b"])
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/finance/runs*")
            rows = page.locator("[data-testid=runs] tbody tr")
            assert rows.count() == 1 and "demo-park" in rows.first.inner_text()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
