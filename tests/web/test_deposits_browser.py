"""Deposit refunds in a real browser (Debian Chromium, headless, under Playwright; decision
0041): on a terminated lease's page the manager clicks 申请退押金 and lands on the refund's
page; adds a deduction with a PNG photo through the form (the evidence link serves it back);
records the inspection with one click; the work queue's deposit item links to the refund.
axe-core finds nothing serious or critical on the refund page, the list and the queue."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cloud.leases import lifecycle
from cloud.leases.models import DepositDeduction, DepositRefund
from cloud.staff.accounts import AccountService, Role
from tests.support.axe import assert_accessible
from tests.support.browser import PASSWORD, WebRig, desktop, make_rig, screenshot, serve, sign_in
from tests.support.lease_scope import seed_leases

pytestmark = pytest.mark.timeout(300)


def tiny_png() -> bytes:
    """A 1 × 1 white PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\xff\xff")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("deposit-pages"), months=1)
    seed_leases(rig.sessions, PASSWORD)
    AccountService(rig.sessions).create_account(
        "mgr-a", PASSWORD, Role.MANAGER, buildings=["park-a/A"], staff_id="m-a"
    )
    with rig.sessions.begin() as s:
        lifecycle.terminate(
            s, "L-A2", on=date.today(), today=date.today(), by="seed", reason="moved out"
        )
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def base_url(rig: WebRig) -> Iterator[str]:
    with serve(rig.app) as url:
        yield url


def test_the_manager_requests_deducts_and_inspects_from_the_pages(
    rig: WebRig, base_url: str, browser: Any, tmp_path: Path
) -> None:
    ctx = desktop(browser)
    page = ctx.new_page()
    sign_in(page, base_url, "mgr-a", "zh-CN")
    page.goto(f"{base_url}/leases/L-A2")
    page.get_by_test_id("lease-deposit-request").get_by_role("button", name="申请退押金").click()
    page.wait_for_url("**/deposits/*")
    with rig.sessions() as s:
        refund = s.scalars(select(DepositRefund).where(DepositRefund.lease_id == "L-A2")).one()
    assert page.url.split("?")[0].endswith(f"/deposits/{refund.id}")
    assert page.get_by_test_id("deposit-state").get_attribute("data-state") == "requested"
    assert page.get_by_test_id("deposit-done").inner_text() == "已申请退押金。"

    photo = tmp_path / "wall.png"
    photo.write_bytes(tiny_png())
    form = page.get_by_test_id("deposit-deduct")
    form.get_by_label("金额（元）").fill("300.00")
    form.get_by_label("原因").fill("墙面污损")
    form.locator("input[type=file]").set_input_files(str(photo))
    form.get_by_role("button", name="添加扣款").click()
    page.wait_for_selector("[data-testid=deposit-deductions]")
    with rig.sessions() as s:
        [deduction] = s.scalars(select(DepositDeduction)).all()
    assert (deduction.cents, deduction.reason) == (30_000, "墙面污损")
    link = page.get_by_test_id("evidence-link")
    with page.expect_download() as download:
        link.click()
    assert Path(download.value.path()).read_bytes() == tiny_png()
    assert_accessible(page, "deposit-refund-requested")

    page.get_by_test_id("deposit-inspect").get_by_role("button", name="验房完成").click()
    page.wait_for_selector("[data-testid=deposit-state][data-state=inspected]")
    steps = page.get_by_test_id("deposit-steps").inner_text()
    assert "已申请" in steps and "已验房" in steps and "mgr-a" in steps
    assert page.get_by_test_id("deposit-settle").count() == 1  # the next step, for the manager
    assert page.get_by_test_id("deposit-inspect").count() == 0
    screenshot(page, "deposit-refund-inspected")

    # the list, and the work queue's item (settlement waited for) linking to the refund
    page.goto(f"{base_url}/deposits?lang=en")
    row = page.locator(f"tr[data-refund='{refund.id}']")
    assert "inspected" in row.inner_text() and row.get_attribute("data-sla") in ("green", "amber")
    assert_accessible(page, "deposits-list-en")
    page.goto(f"{base_url}/queue")
    item = page.locator(f"tr[data-item='deposit:{refund.id}']")
    assert "结算" in item.inner_text()
    assert_accessible(page, "queue-with-deposit")
    item.get_by_test_id("queue-deposit-link").click()
    page.wait_for_url(f"**/deposits/{refund.id}?*")
    assert page.get_by_test_id("deposit-settle").count() == 1
    ctx.close()
