"""Concrete path parameters and request bodies for every route of the app, for the
authorization matrix (tests/web/test_web_authorization.py): each request is valid, so what
the matrix sees is the access policy and the scope, never a malformed request."""

from __future__ import annotations

import uuid
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.statements.links import StatementKey
from edge.wire import key_id, public_key_b64
from tests.support.bank_samples import decided_credit_note, old_bank_line
from tests.support.browser import PASSWORD, WebRig
from tests.support.deposit_samples import DEPOSIT_BODIES, SHA, paid_refund
from tests.support.ledger_samples import LEDGER_BODIES
from tests.support.queue_samples import QUEUE_BODIES

SITE_TOML = 'site = "park-a"\ngateway = "{gw}"\n'


class Samples:
    """Concrete path parameters and bodies for every route."""

    def __init__(self, rig: WebRig) -> None:
        self.rig = rig
        run = rig.seeded.latest
        self.link = rig.web.links.link_for(StatementKey(run, "A101", "ACME"))
        dispute = rig.web.statements.dispute(
            rig.web.links.open(
                "A102", rig.web.links.link_for(StatementKey(run, "A102", "BETA")).token
            ),
            "the lift share looks high",
        )
        # the work queue's sample task and offer (tests/support/queue_samples.py) where the rig
        # seeded them; elsewhere ids of nothing, answered 404 past the policy
        queue = getattr(rig, "queue_samples", ("task:999999", 999_999))
        self.params = {
            "run_id": run,
            "unit": "A101",
            "party": "ACME",
            "token": self.link.token,
            "action": "review",
            "gateway_id": "gw-a",
            "dispute_id": str(dispute),
            "path": "meterflow.css",
            "replacement_id": "999999",  # none: a decision on it is a 409, past the policy
            "username": "fin-a2",  # disabled, enabled and unlocked by the admin routes
            "source": "192.0.2.1",
            "lease_id": "L-A1",  # park-a, building A
            "item_id": queue[0],
            "offer_id": str(queue[1]),
            "line_id": str(old_bank_line(rig.sessions)),
            "credit_note_id": str(decided_credit_note(rig.sessions)),
            "decision": "approve",
            "refund_id": str(paid_refund(rig.sessions)),
            "deduction_id": "1",
            "sha256": SHA,
            "month": "1990-01",  # a CPI month; the bodies' figure is out of bounds: 422
        }

    def path(self, template: str) -> str:
        return template.format(**self.params)

    def body(self, name: str) -> dict[str, Any]:
        """``json`` or ``data`` (form) keyword arguments of a valid request."""
        if name == "provision":
            provisioning = self.rig.app.state.services.provisioning
            gateway = f"gw-{uuid.uuid4().hex[:8]}"
            claim = provisioning.create_claim(
                "park-a", gateway, SITE_TOML.format(gw=gateway), self.rig.web.claim_broker
            )
            key = Ed25519PrivateKey.generate().public_key()
            return {
                "json": {
                    "claim_token": claim.token,
                    "public_key": public_key_b64(key),
                    "key_id": key_id(key),
                }
            }
        gateway = f"gw-{uuid.uuid4().hex[:8]}"
        return {
            "api_sign_in": {"json": {"username": "fin-a", "password": PASSWORD}},
            "login_form": {
                "data": {"username": "fin-a", "password": PASSWORD, "csrf": "double-submit"}
            },
            "source_unlock_form": {"data": {"source": "192.0.2.1"}},
            # a wrong current password: answered (400), nothing changes
            "password_form": {
                "data": {"current_password": "not it", "new_password": "a new long secret"}
            },
            "api_password_change": {
                "json": {"current_password": "not it", "new_password": "a new long secret"}
            },
            "api_tenant_dispute": {"json": {"comment": "reading looks wrong"}},
            "tenant_dispute_form": {"data": {"comment": "reading looks wrong"}},
            "api_run_action": {"json": {"reason": ""}},
            "api_dispute_resolve": {"json": {"resolution": "checked: the reading is right"}},
            "dispute_resolve_form": {"data": {"resolution": "checked"}},
            "api_gateway_command": {"json": {"command": "sync_time"}},
            "gateway_command_form": {"data": {"command": "sync_time"}},
            # other without a note: refused (422) past the policy and the scope, not revoked
            "api_gateway_revoke": {"json": {"reason": "other"}},
            "gateway_revoke_form": {"data": {"reason": "other", "confirm": "yes"}},
            "api_claim_token": {
                "json": {
                    "site": "park-a",
                    "gateway": gateway,
                    "site_config": SITE_TOML.format(gw=gateway),
                }
            },
            "claim_token_form": {
                "data": {
                    "site": "park-a",
                    "gateway": gateway,
                    "site_config": SITE_TOML.format(gw=gateway),
                }
            },
            "api_replacement_decide": {"json": {"decision": "reject"}},
            # a day in the future: refused (422) past the policy and the scope, nothing paid
            "api_lease_payment": {
                "json": {"amount_cny": "1.00", "received_on": "2099-01-01", "ref": "MATRIX"}
            },
            "report_recipients_form": {"data": {"site": "park-z", "add": "x@reports.test"}},
            "lease_payment_form": {
                "data": {"amount": "1.00", "received_on": "2099-01-01", "ref": "MATRIX"}
            },
            **QUEUE_BODIES,
            **LEDGER_BODIES,
            **DEPOSIT_BODIES,
            # an unknown preset / an empty ladder: refused (422, the form answers with the
            # error) past the policy and the scope, nothing stored
            "api_policy_create": {
                "json": {"site": "park-a", "effective_from": "2099-01-01", "preset": "none"}
            },
            "policy_form": {
                "data": {"site": "park-a", "effective_from": "2099-01-01", "preset": "none"}
            },
            "api_lease_policy_overrides": {"json": {"set": {"ladder": []}}},
            "api_bank_line_assign": {"json": {"lease_id": "L-A1"}},
            "bank_assign_form": {"data": {"lease_id": "L-A1"}},
            "api_bank_line_dismiss": {"json": {"reason": "matrix"}},
            "bank_dismiss_form": {"data": {"reason": "matrix"}},
            "api_credit_note_request": {"json": {"amount_cny": "1.00", "reason": "matrix"}},
            "credit_note_request_form": {
                "data": {"lease_id": "L-A1", "amount_cny": "1.00", "reason": "matrix"}
            },
            "api_credit_note_approve": {"json": {"note": "matrix"}},
            "api_credit_note_reject": {"json": {"note": "matrix"}},
            "api_cpi_set": {"json": {"basis": "yoy", "value": "999"}},
            "cpi_set_form": {"data": {"month": "1990-01", "basis": "yoy", "value": "999"}},
            "api_report_recipients_change": {
                "json": {"site": "park-a", "add": ["matrix@reports.test"]}
            },
            "api_tenant_confirm": {"json": {"name": "Li Na"}},
            "tenant_confirm_form": {"data": {"name": "Li Na"}},
            "replacement_form": {"data": {"decision": "reject"}},
            "api_account_create": {
                "json": {
                    "username": "matrix-user",
                    "password": PASSWORD,
                    "role": "finance",
                    "sites": ["park-a"],
                }
            },
            "account_form": {
                "data": {
                    "username": "matrix-user",
                    "password": PASSWORD,
                    "role": "finance",
                    "sites": "park-a",
                }
            },
        }.get(name, {})
