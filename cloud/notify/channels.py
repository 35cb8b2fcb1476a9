"""Channels: how a notification leaves the cloud. One protocol, two real implementations.

:class:`SmtpChannel` sends e-mail over SMTP (``smtplib``), with STARTTLS and login when
configured. The Message-ID is derived from the notification's key, so a receiver (or a
person) can recognise a repeat.

:class:`WebhookChannel` POSTs the notification as JSON to a gateway (SMS, WeCom, DingTalk
bridges) and signs it. Headers::

    Content-Type: application/json
    X-Meterflow-Delivery: <the notification's key; the same on every retry>
    X-Meterflow-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

A receiver recomputes the HMAC over the exact body bytes it received, compares in constant
time, refuses timestamps more than 5 minutes off (replays) and drops keys it has already
handled (a retry after a lost answer). :func:`verify_webhook` does the first three.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Protocol

import urllib3

from cloud.notify.errors import DeliveryError, SignatureError

SIGNATURE_HEADER = "X-Meterflow-Signature"
DELIVERY_HEADER = "X-Meterflow-Delivery"
SIGNATURE_TOLERANCE_S = 300


@dataclass(frozen=True)
class Notification:
    """A message to one recipient. ``key`` is its natural key (e.g.
    ``renewal:L-001:reminder:60``): the outbox records it once and channels pass it on as
    the idempotency key. ``data`` carries structured fields for gateways (JSON values); an
    e-mail attaches the files of ``data["attachments"]`` (each ``{"filename",
    "content_type", "base64"}``)."""

    key: str
    recipient: str
    subject: str
    body: str
    data: Mapping[str, Any] = field(default_factory=dict)


class Channel(Protocol):
    """Hands a notification over; raises :class:`DeliveryError` when it could not."""

    def send(self, message: Notification) -> None: ...


def message_id(key: str, domain: str = "meterflow.invalid") -> str:
    """A stable RFC 5322 Message-ID for a notification key."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


class SmtpChannel:
    """E-mail over SMTP. ``starttls`` upgrades the connection before login (with
    ``ssl_context``, default: the system's trust store); ``username`` enables login."""

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password = username, password
        self.starttls, self.ssl_context, self.timeout_s = starttls, ssl_context, timeout_s

    def email(self, message: Notification) -> EmailMessage:
        """The e-mail a notification becomes."""
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.recipient
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(localtime=False, usegmt=True)
        mail["Message-ID"] = message_id(message.key)
        mail["X-Meterflow-Key"] = message.key
        mail.set_content(message.body)
        for item in message.data.get("attachments", ()):
            maintype, _, subtype = str(item["content_type"]).partition("/")
            mail.add_attachment(
                base64.b64decode(item["base64"]),
                maintype=maintype,
                subtype=subtype,
                filename=str(item["filename"]),
            )
        return mail

    def send(self, message: Notification) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls(context=self.ssl_context or ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(self.email(message))
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(
                f"SMTP {self.host}:{self.port} could not take the message "
                f"{message.key!r} for {message.recipient}: {exc}"
            ) from exc


def canonical_body(message: Notification) -> bytes:
    """The JSON a webhook carries (sorted keys, no whitespace, UTF-8)."""
    doc = {
        "key": message.key,
        "recipient": message.recipient,
        "subject": message.subject,
        "body": message.body,
        "data": dict(message.data),
    }
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def sign_webhook(secret: bytes, body: bytes, timestamp: int) -> str:
    """The signature header's value: ``t=<timestamp>,v1=<hex HMAC-SHA256>``."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_webhook(
    secret: bytes,
    body: bytes,
    header: str | None,
    *,
    now: float,
    tolerance_s: int = SIGNATURE_TOLERANCE_S,
) -> int:
    """Check a signature header against the exact body bytes; return its timestamp.

    Raises SignatureError when it is missing, malformed, more than ``tolerance_s`` seconds
    off ``now`` [unix seconds] or does not match.
    """
    if not header:
        raise SignatureError(f"no {SIGNATURE_HEADER} header")
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    if "t" not in parts or "v1" not in parts or not parts["t"].isdigit():
        raise SignatureError(
            f"{SIGNATURE_HEADER}: expected t=<unix seconds>,v1=<hex>, got {header!r}"
        )
    timestamp = int(parts["t"])
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError(
            f"{SIGNATURE_HEADER}: timestamp {timestamp} is "
            f"{abs(now - timestamp):.0f} s off, at most {tolerance_s} s allowed"
        )
    expected = sign_webhook(secret, body, timestamp).split("v1=", 1)[1]
    if not hmac.compare_digest(expected, parts["v1"]):
        raise SignatureError(f"{SIGNATURE_HEADER}: signature does not match the body")
    return timestamp


class WebhookChannel:
    """HTTP POST of the notification as signed JSON to ``url``; any 2xx is delivered."""

    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("a webhook channel needs a non-empty secret")
        self.url, self.secret, self.clock = url, secret, clock
        self.http = urllib3.PoolManager(timeout=urllib3.Timeout(total=timeout_s), retries=False)

    def send(self, message: Notification) -> None:
        body = canonical_body(message)
        headers = {
            "Content-Type": "application/json",
            DELIVERY_HEADER: message.key,
            SIGNATURE_HEADER: sign_webhook(self.secret, body, int(self.clock())),
        }
        try:
            response = self.http.request("POST", self.url, body=body, headers=headers)
        except urllib3.exceptions.HTTPError as exc:
            raise DeliveryError(
                f"webhook {self.url} unreachable for {message.key!r}: {exc}"
            ) from exc
        if not 200 <= response.status < 300:
            raise DeliveryError(
                f"webhook {self.url} answered HTTP {response.status} for "
                f"{message.key!r}: {response.data[:200]!r}"
            )
