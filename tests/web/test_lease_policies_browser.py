"""The policy pages in a real browser (Debian Chromium, headless, Playwright), phone and
desktop, Chinese and English: a supervisor prefills the form on ``/policies`` from the
``short`` preset (no script: a GET form), changes the reminders and moves the hand-over to
legal to day 12, and creates a residential set; the list shows its values; a lease's
page shows each policy value and where it comes from. No CSP violation; axe-core finds
nothing serious or critical on either page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.axe import assert_accessible
from tests.support.browser import (
    PASSWORD,
    WebRig,
    desktop,
    make_rig,
    phone,
    screenshot,
    serve,
    sign_in,
)
from tests.support.lease_scope import seed_leases

pytestmark = pytest.mark.timeout(300)
LAYOUTS = [("desktop", "zh-CN"), ("phone", "en")]


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("policy-pages"), months=1)
    seed_leases(rig.sessions, PASSWORD)
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def base_url(rig: WebRig) -> Iterator[str]:
    with serve(rig.app) as url:
        yield url


@pytest.mark.parametrize(("kind", "lang"), LAYOUTS)
def test_a_supervisor_creates_a_set_and_the_lease_page_says_where_values_come_from(
    browser: Any, base_url: str, kind: str, lang: str
) -> None:
    ctx = phone(browser) if kind == "phone" else desktop(browser)
    violations: list[str] = []
    ctx.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => "
        "console.error('csp ' + e.violatedDirective));"
    )
    page = ctx.new_page()
    page.on("console", lambda m: violations.append(m.text) if m.text.startswith("csp ") else None)
    sign_in(page, base_url, "sup-a", lang)
    page.goto(f"{base_url}/policies?lang={lang}")
    day = "2026-01-01" if lang == "zh-CN" else "2026-01-02"
    # no script: the prefill form reloads the page with the short preset's values
    prefill = page.locator("[data-testid=policy-prefill]")
    prefill.locator("select[name=preset]").select_option("short")
    prefill.locator("button[type=submit]").click()
    page.wait_for_url(lambda url: "preset=short" in url)
    form = page.locator("[data-testid=policy-form]")
    assert form.locator("input[name=reminder_offsets_days]").input_value() == "45, 30, 15"
    assert form.locator("input[name=ladder_3_days]").input_value() == "14"
    form.locator("input[name=site]").fill("park-a")
    form.locator("select[name=property_type]").select_option("residential")
    form.locator("input[name=effective_from]").fill(day)
    form.locator("input[name=reminder_offsets_days]").fill("50, 25")
    form.locator("input[name=ladder_3_days]").fill("12")
    form.locator("button[type=submit]").click()
    page.wait_for_url(lambda url: "done=" in url)
    row = page.locator("[data-testid=policies] tbody tr", has_text=day)
    assert ("住宅" if lang == "zh-CN" else "Residential") in row.inner_text()
    row.locator("summary").click()
    values = row.locator("[data-testid=policy-values]").inner_text()
    assert ("50/25 天" if lang == "zh-CN" else "50/25 days") in values
    assert ("T+12 移交法务" if lang == "zh-CN" else "T+12 hand-over to legal") in values
    assert ("取自预设" if lang == "zh-CN" else "from the preset") in values
    assert_accessible(page, f"policies-{kind}-{lang}")
    screenshot(page, f"policies-{kind}-{lang}")

    page.goto(f"{base_url}/leases/L-A1?lang={lang}")
    ladder = page.locator("[data-testid=lease-policy] tr[data-field=ladder]").inner_text()
    assert ("T+12 移交法务" if lang == "zh-CN" else "T+12 hand-over to legal") in ladder
    assert ("园区及物业类型" if lang == "zh-CN" else "site and property type") in ladder
    assert_accessible(page, f"lease-policy-{kind}-{lang}")
    screenshot(page, f"lease-policy-{kind}-{lang}")
    assert violations == []
    ctx.close()
