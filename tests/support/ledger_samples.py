"""Requests of the lease ledger and lease operations for the authorization matrix: each
operation acts on lease L-A1 (park-a, building A), which is active, so a valid request is
refused past the policy and the scope and nothing changes."""

from __future__ import annotations

from typing import Any

#: the lease operations, each on lease L-A1 (park-a, building A)
LEASE_OPERATIONS = {
    "api_lease_sign",
    "api_lease_handover",
    "api_lease_renew",
    "api_lease_terminate",
    "lease_sign_form",
    "lease_handover_form",
    "lease_renew_form",
    "lease_terminate_form",
}

#: valid request bodies (keyword arguments of the request)
LEDGER_BODIES: dict[str, dict[str, Any]] = {
    # L-A1 is active: signing, handing over and renewing it are refused (409) past
    # the policy and the scope; a termination without its confirmation box, or a
    # move-out day years away, is refused (422): nothing changes
    "api_lease_sign": {"json": {"how": "paper"}},
    "api_lease_handover": {"json": {}},
    "api_lease_renew": {"json": {"term_months": 12}},
    "api_lease_terminate": {"json": {"move_out_on": "2099-01-01", "reason": "matrix"}},
    "lease_terminate_form": {"data": {"reason": "matrix"}},
    # a ledger that is not one: checked (dry run, the default), refused (422)
    "api_ledger_import": {"files": {"file": ("matrix.csv", b"nothing", "text/csv")}},
}
