"""Accessibility checks in the browser tests: axe-core (Deque's rules engine, npm package
``axe-core``, installed into ``var/axe`` by ``deploy/local/install-axe.sh``) is evaluated in
the page through the DevTools protocol, which the pages' CSP does not govern, and run on the
whole document. A serious or critical finding fails the test; every finding is written to
``test-artifacts/web/axe-<name>.json`` beside the screenshots.

Without axe-core the check is skipped with the reason, or fails when ``CI=true``.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import ARTEFACTS

AXE = Path(__file__).parents[2] / "var" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
#: the impacts that fail a page (axe's scale: minor, moderate, serious, critical)
FAILING = ("serious", "critical")


@cache
def _axe_source() -> str:
    return AXE.read_text(encoding="utf-8")


def require_axe() -> None:
    """Skip (or fail under CI) when axe-core is not installed."""
    if AXE.is_file():
        return
    reason = f"axe-core not installed at {AXE} (run deploy/local/install-axe.sh)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def axe_findings(page: Any) -> list[dict[str, Any]]:
    """Run axe-core on the page as it is now; return its violations (every impact)."""
    require_axe()
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(_axe_source())
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return list(result["violations"])


def assert_accessible(page: Any, name: str) -> list[dict[str, Any]]:
    """Fail if axe-core finds a serious or critical problem on the page; keep the report.

    Returns every violation (minor and moderate ones included) for the caller to look at.
    """
    findings = axe_findings(page)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    (ARTEFACTS / f"axe-{name}.json").write_text(
        json.dumps(findings, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    bad = [f for f in findings if f.get("impact") in FAILING]
    summary = [
        f"{f['impact']}: {f['id']} ({f['help']}) at "
        + ", ".join(str(n["target"]) for n in f["nodes"][:5])
        for f in bad
    ]
    assert not bad, f"axe-core on {name} ({page.url}):\n" + "\n".join(summary)
    return findings
