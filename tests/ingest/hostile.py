"""Builders of hostile envelopes for ingest tests: signed payloads that break one bound each,
and broken bytes. Each returns (name, body, expected dead-letter reason)."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from typing import Any

from edge.keys import GatewayIdentity
from edge.wire import sign_compact
from tests.support.factories import payload, reading


def signed_raw(identity: GatewayIdentity, body: dict[str, Any]) -> bytes:
    """Sign any JSON payload with the gateway's key, bypassing the schema on the way out."""
    data = json.dumps(body, separators=(",", ":")).encode()
    return sign_compact({"alg": "EdDSA", "kid": identity.kid}, data, identity.private_key)


def raw_payload(identity: GatewayIdentity, seq: int, gateway: str = "gw1") -> dict[str, Any]:
    """A valid payload as a JSON dict (one reading at T0 + seq minutes), for tampering."""
    body = json.loads(
        payload(identity, 0, [reading(minute=seq % 1000)], gateway=gateway).to_bytes()
    )
    body["seq"] = seq
    return body


def hostile_envelopes(
    identity: GatewayIdentity,
    stranger: GatewayIdentity,
    good: bytes,
    seq: int,
    read_at: datetime,
    gateway: str = "gw1",
) -> list[tuple[str, bytes, str]]:
    """One of each bad envelope ingest must dead-letter, using seqs from ``seq`` on;
    ``good`` is a genuine envelope (for the broken-bytes cases), ``read_at`` a time inside
    the window."""

    def z(t: datetime) -> str:
        return t.isoformat().replace("+00:00", "Z")

    def env(s: int, **changes: Any) -> dict[str, Any]:
        body = raw_payload(identity, s, gateway)
        body["readings"][0]["read_at"] = z(read_at)
        body["sent_at"] = body["readings"][0]["read_at"]
        value = changes.pop("value", None)
        at = changes.pop("read_at", None)
        quantity = changes.pop("quantity", None)
        body.update(changes)
        if value is not None:
            body["readings"][0]["value"] = value
        if at is not None:
            body["readings"][0]["read_at"] = at
        if quantity is not None:
            body["readings"][0]["quantity"] = quantity
        return body

    def signed(s: int, **changes: Any) -> bytes:
        return signed_raw(identity, env(s, **changes))

    header, middle, sig = good.split(b".")
    decoded = bytearray(base64.urlsafe_b64decode(middle + b"=" * (-len(middle) % 4)))
    decoded[decoded.index(b'"value":"') + 9] ^= 0x01  # one bit of the first value's digit
    flipped = base64.urlsafe_b64encode(bytes(decoded)).rstrip(b"=")
    stranger_body = env(seq + 9)
    stranger_body["kid"] = stranger.kid
    unknown = sign_compact(
        {"alg": "EdDSA", "kid": stranger.kid},
        json.dumps(stranger_body).encode(),
        stranger.private_key,
    )
    year_ago, day_ahead = z(read_at - timedelta(days=365)), z(read_at + timedelta(days=1))
    return [
        ("seq 2^63", signed(2**63), "malformed"),
        ("epoch 2^31", signed(seq, epoch=2**31), "malformed"),
        ("year 1500", signed(seq + 1, read_at="1500-01-01T00:00:00Z"), "malformed"),
        ("year 2300", signed(seq + 2, read_at="2300-01-01T00:00:00Z"), "malformed"),
        ("1e400", signed(seq + 3, value="1e400"), "malformed"),
        ("50,000 digits", signed(seq + 4, value="9" * 50_000), "malformed"),
        ("NaN", signed(seq + 5, value="NaN"), "malformed"),
        ("negative energy", signed(seq + 6, value="-12.5"), "negative_register"),
        ("a year old", signed(seq + 7, read_at=year_ago), "too_old"),
        ("a day ahead", signed(seq + 8, read_at=day_ahead), "too_new"),
        ("flipped bit", b".".join([header, flipped, sig]), "bad_signature"),
        ("unknown key", unknown, "unknown_key"),
        ("oversized", b"x" * (300 * 1024), "oversized"),
        ("truncated", good[: len(good) // 2], "malformed"),
        # a JWS header of 60,000 nested arrays: Python's JSON parser gives up (RecursionError)
        (
            "nested header",
            base64.urlsafe_b64encode(b"[" * 60_000).rstrip(b"=") + b"." + middle + b"." + sig,
            "malformed",
        ),
    ]
