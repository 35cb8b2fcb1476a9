"""A posted run's summary: every statement's amount and own use in one signed document.

A tenant's page charts the last twelve months of the tenant's statements, and shows only
what verifies. Verifying each month's statement costs one Ed25519 verification and one JSON
parse per month per tenant; a run's summary, signed with the same key when the run is
posted, carries (unit, party, amount [cents], own use [kWh]) of all its statements, so a
server verifies one document per run instead of one per statement (decision 0030). The
schema (``mf.run-summary/1``) is not a statement's: neither is ever taken for the other.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cloud.apportion.case.canonical import canonical_json
from cloud.apportion.errors import SignatureError
from cloud.apportion.statement import SignedStatement, verify_signed

SCHEMA_RUN_SUMMARY = "mf.run-summary/1"
#: the components of a statement's own metered use (the rest is shared or loss)
OWN_COMPONENTS = frozenset({"own_use"})


def own_kwh(document: dict[str, Any]) -> Decimal:
    """A statement's own metered use [kWh]: Σ own-use lines (as printed, 3 decimals)."""
    return sum(
        (Decimal(x["kwh"]) for x in document["lines"] if x["component"] in OWN_COMPONENTS),
        Decimal(0),
    )


@dataclass(frozen=True)
class StatementFacts:
    """What a history point shows of a statement: amount [cents], own use [kWh]."""

    cents: int
    own_kwh: Decimal


def summary_payload(run_id: str, site: str, drafts: Iterable[tuple[str, str, str]]) -> str:
    """The canonical JSON of the summary of run ``run_id`` of ``site`` from its statements'
    canonical payloads ``(unit, party, payload)``."""
    statements = []
    for unit, party, payload in drafts:
        document = json.loads(payload)
        statements.append([unit, party, int(document["total"]["cents"]), str(own_kwh(document))])
    statements.sort()
    return canonical_json(
        {"schema": SCHEMA_RUN_SUMMARY, "run": run_id, "site": site, "statements": statements}
    ).decode()


def verify_summary(
    signed: SignedStatement, key: Ed25519PublicKey, run_id: str
) -> dict[tuple[str, str], StatementFacts]:
    """The facts of a signed summary of run ``run_id`` by (unit, party); SignatureError when
    it does not verify, is not a summary, or is another run's."""
    document = verify_signed(signed, key, frozenset({SCHEMA_RUN_SUMMARY}))
    if document.get("run") != run_id:
        raise SignatureError(f"the summary is run {document.get('run')!r}'s, not {run_id!r}'s")
    return {
        (unit, party): StatementFacts(int(cents), Decimal(kwh))
        for unit, party, cents, kwh in document["statements"]
    }
