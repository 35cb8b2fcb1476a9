"""Fixtures of the web tests shared across modules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.browser import chromium, require_chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Debian Chromium under Playwright, one per test module."""
    require_chromium()
    with chromium() as browser:
        yield browser
