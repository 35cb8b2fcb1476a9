"""schemathesis against the live app's OpenAPI document: requests generated for every
operation — signed out, and signed in as admin with generated parameters and with the path
parameters of real records (so the handlers behind the access check run on data) — never
get a server error.

schemathesis' own pytest plugin does not run on pytest 9 yet, so the operations' Hypothesis
strategies are driven here directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from cloud.statements.links import StatementKey
from tests.support.browser import WebRig, make_rig, serve

#: examples per operation and variant (bounded: the whole run takes seconds)
EXAMPLES = 5
_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebRig, str]]:
    rig = make_rig(tmp_path_factory.mktemp("schemathesis"), months=2)
    with serve(rig.app) as url:
        yield rig, url
    rig.sessions.kw["bind"].dispose()


def known_parameters(rig: WebRig) -> dict[str, str]:
    """Path parameters that name real records."""
    run = rig.seeded.latest
    link = rig.web.links.link_for(StatementKey(run, "A101", "ACME"))
    opened = rig.web.links.open(
        "A102", rig.web.links.link_for(StatementKey(run, "A102", "BETA")).token
    )
    dispute = rig.web.statements.dispute(opened, "please check")
    return {
        "run_id": run,
        "unit": "A101",
        "party": "ACME",
        "token": link.token,
        "gateway_id": "gw-a",
        "dispute_id": str(dispute),
        "action": "review",
    }


def exercise(strategy: Any, url: str, headers: dict[str, str]) -> None:
    """Call the live API with the strategy's cases; raise on a server error."""

    @_SETTINGS
    @given(case=strategy)
    def check(case: Any) -> None:
        case.call_and_validate(
            base_url=url, headers=headers, checks=[not_a_server_error], timeout=30
        )

    check()


def test_no_operation_gives_a_server_error(live: tuple[WebRig, str]) -> None:
    rig, url = live
    with httpx.Client(base_url=url) as client:
        token = rig.token(client, "admin")
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    known = known_parameters(rig)
    admin = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        if (operation.method.upper(), operation.path) == ("DELETE", "/api/v1/session"):
            variants = [("signed out", None, {})]  # signing out would end the admin's token
        else:
            names = {p.name for p in operation.path_parameters}
            pinned = {k: v for k, v in known.items() if k in names}
            variants = [("signed out", None, {}), ("admin", None, admin)]
            if pinned:
                variants.append(("admin, real records", pinned, admin))
        for label, path_parameters, headers in variants:
            try:
                exercise(operation.as_strategy(path_parameters=path_parameters), url, headers)
            except Exception as exc:  # every failure is reported together, below
                failures.append(
                    f"{operation.method.upper()} {operation.path} ({label}): {str(exc)[-1500:]}"
                )
    assert operations >= 25
    assert not failures, "\n\n".join(failures)
