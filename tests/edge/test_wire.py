import base64
import json
from datetime import datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.keys import GatewayIdentity
from edge.wire import (
    BadSignature,
    MalformedEnvelope,
    Reading,
    Topics,
    envelope_kid,
    open_envelope,
    seal,
    sign_compact,
)
from edge.wire.mqtt import BrokerAddress
from tests.support.factories import envelope, payload, reading


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_envelope_is_jws_compact_with_eddsa_and_the_gateway_kid(identity):
    header, body, signature = envelope(identity, 7).decode().split(".")
    assert json.loads(_b64(header)) == {"alg": "EdDSA", "kid": identity.kid}
    assert json.loads(_b64(body))["seq"] == 7
    assert len(_b64(signature)) == 64


def test_signed_payload_bytes_are_carried_verbatim(identity):
    p = payload(identity, 3)
    body = envelope(identity, 3).decode().split(".")[1]
    assert _b64(body) == p.to_bytes()
    assert open_envelope(envelope(identity, 3), identity.public_key) == p


def test_register_value_stays_an_exact_decimal(identity):
    env = envelope(identity, 1, [reading(value="123456.78")])
    assert str(open_envelope(env, identity.public_key).readings[0].value) == "123456.78"


@pytest.mark.parametrize("position", [5, 60, -10])
def test_any_flipped_byte_is_refused(identity, position):
    env = bytearray(envelope(identity, 1))
    env[position] ^= 0x01
    with pytest.raises((BadSignature, MalformedEnvelope)):
        open_envelope(bytes(env), identity.public_key)


def test_flipped_payload_byte_is_a_bad_signature(identity):
    header, body, sig = envelope(identity, 1).decode().split(".")
    raw = bytearray(_b64(body))
    raw[raw.index(b'"seq":1') + 6] = ord("2")
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(BadSignature):
        open_envelope(f"{header}.{forged}.{sig}".encode(), identity.public_key)


def test_envelope_signed_by_another_key_is_refused(identity):
    other = GatewayIdentity(Ed25519PrivateKey.generate())
    forged = seal(payload(identity, 1), other.private_key)  # claims identity's kid
    with pytest.raises(BadSignature):
        open_envelope(forged, identity.public_key)


@pytest.mark.parametrize("junk", [b"", b"not a jws", b"a.b.c", b"\xff\xfe.\x00.zz"])
def test_garbage_is_malformed(identity, junk):
    with pytest.raises(MalformedEnvelope):
        open_envelope(junk, identity.public_key)


def test_signed_payload_that_breaks_schema_is_malformed(identity):
    token = sign_compact(
        {"alg": "EdDSA", "kid": identity.kid},
        b'{"schema":"mf.readings/1","seq":-1}',
        identity.private_key,
    )
    with pytest.raises(MalformedEnvelope, match="seq"):
        open_envelope(token, identity.public_key)


def test_payload_kid_must_match_header_kid(identity):
    token = sign_compact(
        {"alg": "EdDSA", "kid": "someone-else"},
        payload(identity, 1).to_bytes(),
        identity.private_key,
    )
    with pytest.raises(MalformedEnvelope, match="kid"):
        open_envelope(token, identity.public_key)


def test_unknown_critical_header_parameters_are_refused(identity):
    token = sign_compact(
        {"alg": "EdDSA", "kid": identity.kid, "crit": "exp"},
        payload(identity, 1).to_bytes(),
        identity.private_key,
    )
    with pytest.raises(MalformedEnvelope, match="understand"):
        open_envelope(token, identity.public_key)


def test_other_algorithms_are_refused(identity):
    token = sign_compact(
        {"alg": "none", "kid": identity.kid}, payload(identity, 1).to_bytes(), identity.private_key
    )
    with pytest.raises(MalformedEnvelope, match="EdDSA"):
        open_envelope(token, identity.public_key)


# RFC 8037 appendix A.1/A.4: the Ed25519 example key and the JWS it must produce.
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_JWS = (
    b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    b"hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_"
    b"MuM0KAg"
)


def test_compact_serialisation_matches_rfc8037_example():
    key = Ed25519PrivateKey.from_private_bytes(_b64(RFC8037_D))
    assert sign_compact({"alg": "EdDSA"}, b"Example of Ed25519 signing", key) == RFC8037_JWS


def test_envelopes_interoperate_with_an_independent_jws_library(identity):
    from jwt.api_jws import PyJWS

    jws = PyJWS()
    ours = envelope(identity, 5)
    assert (
        jws.decode(ours, identity.public_key, algorithms=["EdDSA"])
        == payload(identity, 5).to_bytes()
    )
    theirs = jws.encode(
        payload(identity, 6).to_bytes(),
        identity.private_key,
        algorithm="EdDSA",
        headers={"kid": identity.kid},
    ).encode()
    assert open_envelope(theirs, identity.public_key).seq == 6


def test_oversized_envelope_is_refused_before_parsing():
    with pytest.raises(MalformedEnvelope, match="bytes"):
        envelope_kid(b"x" * (256 * 1024 + 1))


def test_read_time_must_be_utc():
    with pytest.raises(ValueError, match="UTC"):
        Reading(
            meter="M1",
            quantity="energy_import",
            value=1,
            unit="kWh",
            read_at=datetime(2026, 1, 1),
            quality="good",
            round="r",
        )


def test_good_reading_needs_a_value():
    with pytest.raises(ValueError, match="needs a value"):
        Reading(
            meter="M1",
            quantity="energy_import",
            value=None,
            unit="kWh",
            read_at="2026-01-01T00:00:00Z",
            quality="good",
            round="r",
        )


def test_timeout_reading_may_have_no_value():
    r = Reading(
        meter="M1",
        quantity="energy_import",
        value=None,
        unit="kWh",
        read_at="2026-01-01T00:00:00Z",
        quality="timeout",
        round="r",
    )
    assert r.value is None


def test_readings_topic_names_site_and_gateway():
    topics = Topics("mf/v1")
    assert topics.readings("s1", "gw1") == "mf/v1/s1/gw1/up/readings"
    assert topics.parse_readings("mf/v1/s1/gw1/up/readings") == ("s1", "gw1")
    for bad in ["mf/v1/s1/up/readings", "other/s1/gw1/up/readings", "mf/v1//gw1/up/readings"]:
        with pytest.raises(MalformedEnvelope, match="expected"):
            topics.parse_readings(bad)


def test_broker_url_parses_credentials_and_tls():
    assert BrokerAddress.parse("mqtt://127.0.0.1") == BrokerAddress("127.0.0.1", 1883)
    assert BrokerAddress.parse("mqtts://u:p%40ss@h:9000") == BrokerAddress(
        "h", 9000, True, "u", "p@ss"
    )
    with pytest.raises(ValueError, match="expected"):
        BrokerAddress.parse("http://h")
