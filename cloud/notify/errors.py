"""The one exception family of ``cloud.notify``."""

from __future__ import annotations


class NotifyError(Exception):
    """Base of every error raised by ``cloud.notify``."""


class DeliveryError(NotifyError):
    """A channel could not hand a message over (connection refused, SMTP or HTTP error);
    the outbox retries it later."""


class SignatureError(NotifyError):
    """A webhook's signature header is missing, malformed, stale or does not verify."""
