"""Notifications: e-mail to a real local SMTP server (plain, and STARTTLS with login),
signed webhooks to a real local HTTP receiver, and the outbox that retries and never sends
a delivered message again — also through the daily run, on SQLite and PostgreSQL."""

from __future__ import annotations

import ssl
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.leases import reference
from cloud.leases.jobs import run_daily, run_monthly_billing
from cloud.leases.models import CollectionEvent, Tenant
from cloud.leases.periods import BillingPeriod
from cloud.notify.channels import (
    SIGNATURE_HEADER,
    Notification,
    SmtpChannel,
    WebhookChannel,
    canonical_body,
    message_id,
    sign_webhook,
    verify_webhook,
)
from cloud.notify.errors import DeliveryError, SignatureError
from cloud.notify.outbox import NotificationRow, deliver, enqueue
from tests.support.leases_portfolio import (
    UnitSpec,
    running_lease,
    seed_site,
    terms,
)
from tests.support.servers import HOST, free_port
from tests.support.smtp_http_receivers import (
    SMTP_PASSWORD,
    SMTP_USER,
    WEBHOOK_SECRET,
    HttpReceiver,
    SmtpReceiver,
    delivery_keys,
)

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
NOTE = Notification(
    "renewal:L1:reminder:90",
    "m1@staff.test",
    "租约 L1 将于 2026-06-01 到期 · Lease L1 ends on 2026-06-01",
    "Please prepare the renewal. 续租提醒",
    {"lease": "L1", "offset_days": 90},
)


def test_smtp_channel_delivers_to_a_real_smtp_server(smtp_receiver: SmtpReceiver) -> None:
    SmtpChannel(smtp_receiver.host, smtp_receiver.port, sender="billing@park.test").send(NOTE)
    [mail] = smtp_receiver.messages
    assert smtp_receiver.envelopes == [("billing@park.test", ["m1@staff.test"])]
    assert (mail["Subject"], mail["To"], mail["Message-ID"]) == (
        NOTE.subject,
        "m1@staff.test",
        message_id(NOTE.key),
    )
    assert mail.get_content().strip() == NOTE.body


def test_smtp_channel_upgrades_with_starttls_and_logs_in(tls_smtp_receiver: SmtpReceiver) -> None:
    trust = ssl.create_default_context(cafile=str(tls_smtp_receiver.ca_file))
    channel = SmtpChannel(
        tls_smtp_receiver.host,
        tls_smtp_receiver.port,
        sender="b@park.test",
        username=SMTP_USER,
        password=SMTP_PASSWORD,
        starttls=True,
        ssl_context=trust,
    )
    channel.send(NOTE)
    assert tls_smtp_receiver.logins == [SMTP_USER] and len(tls_smtp_receiver.messages) == 1
    plain = SmtpChannel(tls_smtp_receiver.host, tls_smtp_receiver.port, sender="b@park.test")
    with pytest.raises(DeliveryError, match="could not take the message"):
        plain.send(NOTE)  # the server requires STARTTLS


def test_smtp_channel_reports_a_server_that_is_not_there() -> None:
    with pytest.raises(DeliveryError, match=f"SMTP {HOST}:"):
        SmtpChannel(HOST, free_port(), sender="b@park.test", timeout_s=2).send(NOTE)


def test_webhook_is_signed_json_that_the_receiver_verifies(http_receiver: HttpReceiver) -> None:
    WebhookChannel(http_receiver.url, WEBHOOK_SECRET).send(NOTE)
    [got] = http_receiver.deliveries
    assert got.body == canonical_body(NOTE)
    assert got.doc == {
        "key": NOTE.key,
        "recipient": NOTE.recipient,
        "subject": NOTE.subject,
        "body": NOTE.body,
        "data": {"lease": "L1", "offset_days": 90},
    }
    assert delivery_keys(http_receiver) == [NOTE.key]


def test_webhook_with_the_wrong_secret_is_refused_by_the_receiver(
    http_receiver: HttpReceiver,
) -> None:
    with pytest.raises(DeliveryError, match="answered HTTP 401"):
        WebhookChannel(http_receiver.url, b"another secret").send(NOTE)
    assert http_receiver.refused == [f"{SIGNATURE_HEADER}: signature does not match the body"]


def test_webhook_signature_rejects_tampering_and_replays() -> None:
    body = canonical_body(NOTE)
    now = int(time.time())
    header = sign_webhook(WEBHOOK_SECRET, body, now)
    assert verify_webhook(WEBHOOK_SECRET, body, header, now=now + 10) == now
    with pytest.raises(SignatureError, match="does not match"):
        verify_webhook(WEBHOOK_SECRET, body.replace(b"L1", b"L2"), header, now=now)
    with pytest.raises(SignatureError, match="at most 300 s allowed"):
        verify_webhook(WEBHOOK_SECRET, body, header, now=now + 301)
    with pytest.raises(SignatureError, match="expected t=<unix seconds>,v1=<hex>"):
        verify_webhook(WEBHOOK_SECRET, body, "sha256=abc", now=now)


def test_outbox_records_once_retries_and_never_sends_twice(
    lease_db: sessionmaker[Session], http_receiver: HttpReceiver
) -> None:
    channels = {"sms": WebhookChannel(http_receiver.url, WEBHOOK_SECRET)}
    with lease_db.begin() as s:
        assert enqueue(s, [("sms", NOTE)], now=NOW) == 1
        assert enqueue(s, [("sms", NOTE)], now=NOW) == 0
    http_receiver.fail_next = 2
    first = deliver(lease_db, channels, now=NOW)
    assert (first.delivered, first.retrying) == (0, 1)
    assert deliver(lease_db, channels, now=NOW + timedelta(minutes=4)).retrying == 0  # not due
    assert deliver(lease_db, channels, now=NOW + timedelta(minutes=5)).retrying == 1
    assert deliver(lease_db, channels, now=NOW + timedelta(minutes=14)).retrying == 0
    assert deliver(lease_db, channels, now=NOW + timedelta(minutes=15)).delivered == 1
    assert deliver(lease_db, channels, now=NOW + timedelta(days=1)).delivered == 0
    assert delivery_keys(http_receiver) == [NOTE.key]
    with lease_db() as s:
        row = s.scalars(select(NotificationRow)).one()
        assert (row.status, row.attempts, row.last_error) == ("delivered", 3, None)


def test_outbox_gives_up_after_its_attempts_and_waits_for_unknown_channels(
    lease_db: sessionmaker[Session],
) -> None:
    unreachable = {"email": SmtpChannel(HOST, free_port(), sender="b@park.test", timeout_s=2)}
    other = Notification("x:1", "13800000000", "s", "b")
    with lease_db.begin() as s:
        enqueue(s, [("email", NOTE), ("wecom", other)], now=NOW)
    at = NOW
    for _ in range(3):
        deliver(lease_db, unreachable, now=at, max_attempts=3)
        at += timedelta(days=1)
    with lease_db() as s:
        rows = {r.key: (r.status, r.attempts) for r in s.scalars(select(NotificationRow))}
    assert rows == {NOTE.key: ("failed", 3), "x:1": ("pending", 0)}


def test_daily_run_delivers_by_email_and_webhook_once(
    lease_db: sessionmaker[Session], smtp_receiver: SmtpReceiver, http_receiver: HttpReceiver
) -> None:
    with lease_db.begin() as s:
        seed_site(s, [UnitSpec("A101")], tenants=0)
        reference.add_tenant(s, "T1", "Tenant One", channel="sms", address="+8613800000000")
        s.flush()
        running_lease(s, terms("L1", "A101", "T1", date(2025, 7, 1), date(2026, 4, 1)))
    run_monthly_billing(lease_db, BillingPeriod.parse("2026-01"))
    channels = {
        "email": SmtpChannel(smtp_receiver.host, smtp_receiver.port, sender="billing@park.test"),
        "sms": WebhookChannel(http_receiver.url, WEBHOOK_SECRET),
    }
    for _ in range(2):  # the second run of the day sends nothing
        run_daily(lease_db, date(2026, 1, 12), channels=channels)
    assert delivery_keys(http_receiver) == ["collections:L1/2026-01:1"]
    assert http_receiver.deliveries[0].doc["recipient"] == "+8613800000000"
    assert [m["X-Meterflow-Key"] for m in smtp_receiver.messages] == ["renewal:L1:reminder:90"]
    with lease_db() as s:
        event = s.get(CollectionEvent, ("L1/2026-01", 1))
        assert (event.channel, event.outcome) == ("sms", "delivered")
        assert s.get(Tenant, "T1").channel == "sms"
