"""A deposit refund for the authorization matrix (decision 0041): on lease L-A1 (park-a,
building A), paid already, with one deduction and its PNG evidence. Every act on it is
refused (409) past the policy and the scope, so no caller's request moves money; reading it
and its evidence is allowed. Written as rows (L-A1 stays active for the other routes'
samples: no product surface makes a refund on a running lease)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from cloud.leases.models import DepositDeduction, DepositEvidence, DepositRefund, Lease

PNG = b"\x89PNG\r\n\x1a\n" + b"matrix evidence"
SHA = hashlib.sha256(PNG).hexdigest()
#: the deposit routes acting on the sample refund or on lease L-A1 (building A of park-a)
ON_REFUND = frozenset(
    {
        "deposit_page",
        "api_deposit",
        "api_deposit_evidence",
        "api_deposit_request",
        "deposit_request_form",
        "api_deposit_deduct",
        "deposit_deduct_form",
        "api_deposit_inspect",
        "deposit_inspect_form",
        "api_deposit_settle",
        "deposit_settle_form",
        "api_deposit_approve",
        "deposit_approve_form",
        "api_deposit_pay",
        "deposit_pay_form",
        "api_deposit_deduction_remove",
        "deposit_deduction_remove_form",
    }
)
_DEDUCT = {
    "data": {"amount_cny": "1.00", "reason": "matrix"},
    "files": {"evidence": ("m.png", PNG, "image/png")},
}
#: valid request bodies
DEPOSIT_BODIES: dict[str, dict[str, Any]] = {
    "api_deposit_deduct": _DEDUCT,
    "deposit_deduct_form": _DEDUCT,
    "api_deposit_pay": {"json": {"reference": "MATRIX"}},
    "deposit_pay_form": {"data": {"reference": "MATRIX", "confirm": "yes"}},
    "deposit_approve_form": {"data": {"confirm": "yes"}},
    # the paid sample refund takes nothing back: 409 (or 404 for deduction 1 of another)
    "api_deposit_deduction_remove": {"json": {"reason": "matrix"}},
    "deposit_deduction_remove_form": {"data": {"reason": "matrix"}},
}


def paid_refund(sessions: sessionmaker[Session], lease_id: str = "L-A1") -> int:
    """The paid sample refund on ``lease_id`` (its id); without the lease an id of nothing."""
    at = datetime.now(UTC) - timedelta(days=3)
    with sessions.begin() as s:
        lease = s.get(Lease, lease_id)
        if lease is None:
            return 999_999
        refund = DepositRefund(
            lease_id=lease_id,
            state="paid",
            deposit_cents=lease.deposit_cents,
            deductions_cents=100,
            refund_cents=lease.deposit_cents - 100,
            shortfall_cents=0,
            payment_ref="MATRIX-PAID",
            **{f"{step}_at": at for step in ("requested", "inspected", "settled", "approved")},
            **{f"{step}_by": "seed" for step in ("requested", "inspected", "settled", "approved")},
            paid_at=at,
            paid_by="seed",
        )
        s.add(refund)
        if s.get(DepositEvidence, SHA) is None:
            s.add(
                DepositEvidence(
                    sha256=SHA,
                    content_type="image/png",
                    size=len(PNG),
                    content=PNG,
                    uploaded_at=at,
                    uploaded_by="seed",
                )
            )
        s.flush()
        s.add(
            DepositDeduction(
                refund_id=refund.id,
                reason="matrix",
                cents=100,
                evidence_uri=f"evidence:sha256:{SHA}",
                evidence_sha256=SHA,
                added_at=at,
                added_by="seed",
            )
        )
        return refund.id
