"""The one exception family of ``cloud.apportion``.

Messages name the item at fault (a meter, a unit, a node, a tariff version, a run) and say
what was expected and what came, so that finance and support can act on them.
"""

from __future__ import annotations


class ApportionError(Exception):
    """Base of every error raised by ``cloud.apportion``."""


class CaseError(ApportionError):
    """A case file (or the inputs of a run) is malformed; nothing was computed from it."""


class ConsumptionError(ApportionError):
    """Readings that cannot be turned into consumption (e.g. a decreasing register)."""


class EstimationError(ApportionError):
    """A meter has days without readings and no estimation method applies."""


class ConservationError(ApportionError):
    """Money or energy was created or lost: Σ lines differs from a node's amount or a pot."""


class RunStateError(ApportionError):
    """A run was asked to do what its state forbids (edit a posted run, skip a state ...)."""


class WrongStateError(RunStateError):
    """A run was asked to move from a state it is not in: ``status`` (it is), ``expected``
    (the state the move starts from), ``to`` (the state asked for)."""

    def __init__(self, message: str, *, status: str, expected: str, to: str) -> None:
        super().__init__(message)
        self.status, self.expected, self.to = status, expected, to


class MissingReasonError(RunStateError):
    """A step that must say why (voiding a run) was asked without a reason."""


class RunHeldError(RunStateError):
    """A run carries flags that hold it (negative residual, too many estimates ...):
    ``holding`` names them (code and subject)."""

    def __init__(self, message: str, *, holding: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.holding = holding or []


class FourEyesError(RunStateError):
    """The account approving a run created or reviewed it; somebody else must approve.
    ``account`` is who asked, ``did`` what they did (``created`` or ``reviewed``)."""

    def __init__(self, message: str, *, account: str = "", did: str = "") -> None:
        super().__init__(message)
        self.account, self.did = account, did


class RerunMismatchError(ApportionError):
    """Recomputing a stored run from its inputs did not reproduce it."""


class SignatureError(ApportionError):
    """A statement's signature does not verify, or the signed document is malformed."""
