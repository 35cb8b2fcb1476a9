"""Notifications: one channel interface, real channels behind it, a durable outbox.

- ``channels``: :class:`Channel` (the protocol), :class:`SmtpChannel` (e-mail over SMTP,
  STARTTLS optional) and :class:`WebhookChannel` (HTTP POST of JSON signed with
  HMAC-SHA256, for SMS / WeCom / DingTalk gateways);
- ``outbox``: the ``notification_outbox`` table; :func:`outbox.enqueue` records a message
  once per natural key, :func:`outbox.deliver` sends what is due, retries failures with
  back-off and never sends a delivered message again.
"""
