"""The tenant page's cache switch (``MF_WEB_PAGE_CACHE``) and the pieces of
bench/tenant_page.py that decide what it measures: many distinct genuine links, requested at
random by wrk's script."""

from __future__ import annotations

import dataclasses
import importlib.util
import random
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from cloud.apportion.case.loading import case_from_data
from cloud.gateways.provisioning import ProvisioningService
from cloud.web import tenant
from cloud.web.app import create_app
from cloud.web.deps import ApiServices
from cloud.web.settings import WebSettings
from tests.support.browser import WebRig, make_rig, serve

BENCH = Path(__file__).resolve().parents[2] / "bench" / "tenant_page.py"


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("bench"), months=2)
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tenant_page_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_page_cache_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert WebSettings().page_cache is True
    monkeypatch.setenv("MF_WEB_PAGE_CACHE", "0")
    assert WebSettings().page_cache is False
    monkeypatch.setenv("MF_WEB_PAGE_CACHE", "maybe")
    with pytest.raises(ValueError, match="page_cache"):
        WebSettings()


def _token_cached(token: str) -> bool:
    return any(token in key for key in list(tenant._PAGES._pages))


def test_with_the_cache_off_each_request_renders_and_keeps_nothing(rig: WebRig) -> None:
    path = rig.link(rig.seeded.latest)
    token = path.rsplit("/", 1)[1]
    web = dataclasses.replace(rig.web, page_cache=False)
    app = create_app(ApiServices(ProvisioningService(rig.sessions, rig.signer), web))
    with serve(app) as url, httpx.Client(base_url=url) as client:
        for _ in range(2):
            page = client.get(path)
            assert page.status_code == 200 and 'data-testid="genuine"' in page.text
    assert not _token_cached(token)
    with serve(rig.app) as url, httpx.Client(base_url=url) as client:
        cached = client.get(path)
    assert cached.status_code == 200 and _token_cached(token)
    assert cached.text == page.text  # the same page either way


def test_bench_cases_validate_and_continue_month_to_month(bench: ModuleType) -> None:
    rng, readings = random.Random(1), {}
    first = bench.month_case(5, bench.date(2025, 5, 1), rng, readings)
    second = bench.month_case(5, bench.date(2025, 6, 1), rng, readings)
    case_from_data(first), case_from_data(second)
    assert len(first["units"]) == 5 and len(first["occupancy"]) == 5
    assert first["readings"]["MU001"]["2025-06-01"] == second["readings"]["MU001"]["2025-06-01"]
    main = first["readings"]["M0"]
    units = sum(
        r["2025-06-01"] - r["2025-05-01"] for m, r in first["readings"].items() if m != "M0"
    )
    assert main["2025-06-01"] - main["2025-05-01"] > units  # a loss to share


def test_bench_links_are_distinct_genuine_and_requested_at_random(
    bench: ModuleType, tmp_path: Path
) -> None:
    paths = bench.seed(tmp_path, 2)
    assert len(paths) == 2 * bench.MONTHS == len(set(paths))
    assert all(re.fullmatch(r"/t/U00[12]/[\w-]+\.[\w-]+", p) for p in paths)
    script = bench.random_paths_script(paths, tmp_path).read_text()
    assert all(f'"{p}"' in script for p in paths)
    assert "math.random(#paths)" in script and "math.randomseed" in script
