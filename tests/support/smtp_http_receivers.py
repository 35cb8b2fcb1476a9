"""Real receivers for notification tests, on 127.0.0.1, started by fixtures (in
tests/leases/conftest.py) and stopped at the end of each test:

``smtp_receiver``   -> :class:`SmtpReceiver`, an aiosmtpd SMTP server (plain)
``tls_smtp_receiver`` -> the same with STARTTLS required and a login (user ``mf``, password
                       ``secret``), its self-signed certificate in ``.ca_file``
``http_receiver``   -> :class:`HttpReceiver`, an ``http.server`` that checks each webhook's
                       signature with ``WEBHOOK_SECRET``, records it, and can be told to
                       answer the next N requests with 503
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cloud.notify.channels import DELIVERY_HEADER, SIGNATURE_HEADER, verify_webhook
from cloud.notify.errors import SignatureError
from tests.support.servers import HOST

WEBHOOK_SECRET = b"test-webhook-secret"
SMTP_USER, SMTP_PASSWORD = "mf", "secret"


@dataclass
class SmtpReceiver:
    """A running SMTP server and the messages it accepted."""

    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    ca_file: Path | None = None


class _Handler:
    def __init__(self, receiver: SmtpReceiver) -> None:
        self.receiver = receiver

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.receiver.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.receiver.messages.append(
            message_from_bytes(envelope.original_content, policy=policy.default)
        )  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "meterflow test smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "smtp.crt", directory / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def start_smtp(receiver: SmtpReceiver, **kwargs: Any) -> Controller:
    controller = Controller(_Handler(receiver), hostname=HOST, port=receiver.port, **kwargs)
    controller.start()
    return controller


@dataclass
class Delivery:
    """A webhook the receiver accepted: headers, exact body, parsed JSON."""

    headers: dict[str, str]
    body: bytes
    doc: dict[str, Any]


@dataclass
class HttpReceiver:
    """A running webhook receiver: ``url``, what it accepted, what it refused."""

    url: str
    deliveries: list[Delivery] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    fail_next: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def handler_for(receiver: HttpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                if receiver.fail_next > 0:
                    receiver.fail_next -= 1
                    self._answer(503, b"try later")
                    return
            try:
                verify_webhook(
                    WEBHOOK_SECRET, body, self.headers.get(SIGNATURE_HEADER), now=time.time()
                )
            except SignatureError as exc:
                receiver.refused.append(str(exc))
                self._answer(401, str(exc).encode())
                return
            with receiver.lock:
                receiver.deliveries.append(
                    Delivery(dict(self.headers.items()), body, json.loads(body))
                )
            self._answer(200, b"ok")

        def _answer(self, status: int, text: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def delivery_keys(receiver: HttpReceiver) -> list[str]:
    """The delivery header of every accepted webhook, in order."""
    return [d.headers[DELIVERY_HEADER] for d in receiver.deliveries]
