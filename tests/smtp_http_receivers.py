"""Real receivers for notification tests, on 127.0.0.1, started by fixtures and stopped at
the end of each test:

``smtp_receiver``   -> :class:`SmtpReceiver`, an aiosmtpd SMTP server (plain)
``tls_smtp_receiver`` -> the same with STARTTLS required and a login (user ``mf``, password
                       ``secret``), its self-signed certificate in ``.ca_file``
``http_receiver``   -> :class:`HttpReceiver`, an ``http.server`` that checks each webhook's
                       signature with ``WEBHOOK_SECRET``, records it, and can be told to
                       answer the next N requests with 503

Test modules import the ``*_fixture`` functions (``noqa: F401``); pytest registers them
under their short names.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cloud.notify.channels import DELIVERY_HEADER, SIGNATURE_HEADER, verify_webhook
from cloud.notify.errors import SignatureError
from tests.servers import HOST, free_port

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


def _self_signed(directory: Path) -> tuple[Path, Path]:
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


def _start_smtp(receiver: SmtpReceiver, **kwargs: Any) -> Controller:
    controller = Controller(_Handler(receiver), hostname=HOST, port=receiver.port, **kwargs)
    controller.start()
    return controller


@pytest.fixture(name="smtp_receiver")
def smtp_receiver_fixture() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver(HOST, free_port())
    controller = _start_smtp(receiver)
    yield receiver
    controller.stop()


@pytest.fixture(name="tls_smtp_receiver")
def tls_smtp_receiver_fixture(tmp_path: Path) -> Iterator[SmtpReceiver]:
    cert_file, key_file = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    receiver = SmtpReceiver(HOST, free_port(), ca_file=cert_file)

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == SMTP_USER.encode()
            and auth_data.password == SMTP_PASSWORD.encode()
        )
        if ok:
            receiver.logins.append(SMTP_USER)
        return AuthResult(success=ok)

    controller = _start_smtp(
        receiver,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
        server_hostname=HOST,
    )
    yield receiver
    controller.stop()


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


def _handler_for(receiver: HttpReceiver) -> type[BaseHTTPRequestHandler]:
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


@pytest.fixture(name="http_receiver")
def http_receiver_fixture() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver("")
    server = ThreadingHTTPServer((HOST, 0), _handler_for(receiver))
    receiver.url = f"http://{HOST}:{server.server_address[1]}/hook"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def delivery_keys(receiver: HttpReceiver) -> list[str]:
    """The delivery header of every accepted webhook, in order."""
    return [d.headers[DELIVERY_HEADER] for d in receiver.deliveries]
