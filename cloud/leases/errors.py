"""The one exception family of ``cloud.leases``.

Messages name the lease, invoice or refund at fault and say what was expected and what came,
so that a property manager or finance can act on them without reading code.
"""

from __future__ import annotations

from datetime import date


class LeaseError(Exception):
    """Base of every error raised by ``cloud.leases``."""


class IllegalTransition(LeaseError):
    """A lease was asked to move to a state its current state does not lead to."""


class TermsError(LeaseError):
    """Lease terms (rent schedule, free rent, deposit, dates) that contradict each other."""


class ScheduleIncomplete(LeaseError):
    """A rent schedule cannot be computed yet (e.g. the CPI of an adjustment month is not
    published); the lease is held out of billing until it can. ``since``: the first day its
    rent is unknown; ``cpi_months``: the months (first days) whose CPI would let it on."""

    def __init__(
        self, message: str, *, since: date | None = None, cpi_months: tuple[date, ...] = ()
    ) -> None:
        super().__init__(message)
        self.since, self.cpi_months = since, cpi_months


class CpiError(LeaseError):
    """A CPI figure or file refused: ``problems`` names each bad row and column (a file),
    nothing is stored."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class PaymentError(LeaseError):
    """A payment that cannot be recorded (unknown account, non-positive amount ...)."""


class PaymentConflict(PaymentError):
    """A payment's reference is recorded already, with another amount or day."""


class RenewalBlocked(LeaseError):
    """A renewal refused by a rule: arrears above the threshold, a lease in the wrong state."""


class OfferAwaitsApproval(RenewalBlocked):
    """A renewal offer outside its price band cannot be invited or signed before a supervisor
    approves it (or after one rejected it)."""


class OfferError(LeaseError):
    """A renewal offer asked to move where its state does not lead, or approved by its maker."""


class QueueError(LeaseError):
    """A work-queue item asked for an action it does not have (a task is done, a reminder
    acknowledged)."""


class DepositError(LeaseError):
    """A deposit refund step out of order, or a settlement that does not add up."""


class EvidenceMissing(DepositError):
    """A deposit deduction without its evidence attachment."""


class DepositInputError(DepositError):
    """A deposit refund act with input out of bounds: an amount, a reason, a payment
    reference, an evidence file that is not JPEG, PNG or PDF (decision 0041)."""


class EvidenceTooLarge(DepositInputError):
    """An evidence file above its size bound, or more files than a refund keeps."""


class UnknownRecord(LeaseError):
    """A lease, tenant, unit, invoice or refund that does not exist."""


class NotPermitted(LeaseError):
    """The staff member's role may not make this change (legal signs no lease and takes no
    money; managers approve no credit)."""


class BankFileError(LeaseError):
    """A bank statement that is not one, or (imported for real) has malformed rows; the
    problems name each row and column."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


class BankLineError(LeaseError):
    """A bank line change that is not accepted (a reason too long or missing)."""


class CreditNoteError(LeaseError):
    """A credit note that is not accepted (an amount or reason out of bounds)."""


class AlreadyDecided(LeaseError):
    """A bank line or credit note that is not open any more (assigned, dismissed, approved,
    rejected), or lines another import stored at the same time."""


class FourEyes(NotPermitted, CreditNoteError):
    """A credit note decided by its own requester, or by a role that does not approve."""
