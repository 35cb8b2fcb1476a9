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


class RunHeldError(RunStateError):
    """A run carries flags that hold it (negative residual, too many estimates ...)."""


class FourEyesError(RunStateError):
    """The account approving a run created or reviewed it; somebody else must approve."""


class RerunMismatchError(ApportionError):
    """Recomputing a stored run from its inputs did not reproduce it."""


class SignatureError(ApportionError):
    """A statement's signature does not verify, or the signed document is malformed."""
