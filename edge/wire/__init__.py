"""The wire contract between gateways and the cloud: MQTT topics, the readings and health
payloads, the command and answer payloads, and their signed envelopes.

Owned by the gateway side (it produces readings and receives commands); the cloud imports this
package and nothing else of ``edge``, so both sides build and check the same models.
Beside it, :mod:`edge.wire.mqtt` sets up the MQTT client both sides use and
:mod:`edge.wire.files` keeps keys and secrets in private (0600) files.

The envelope is a JWS compact serialisation (RFC 7515) signed with EdDSA over Ed25519
(RFC 8037), built and checked here with ``cryptography`` (decision 0002; the RFC 8037 test
vectors pin it). The payload bytes travel verbatim inside the JWS: the verifier checks the
signature over exactly the bytes the signer produced and only then parses them, so nothing
is ever re-serialised between signing and verifying.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal, TypeVar
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetPydanticSchema,
    JsonValue,
    ValidationError,
    model_validator,
)
from pydantic_core import core_schema

SCHEMA_READINGS = "mf.readings/1"
SCHEMA_HEALTH = "mf.health/1"
SCHEMA_COMMAND = "mf.command/1"
SCHEMA_ACK = "mf.ack/1"
#: A command may not live longer than this (issued_at → expires_at); it bounds the replay log.
MAX_COMMAND_TTL = timedelta(days=1)
ACK_DETAIL_MAX = 2000
DEFAULT_TOPIC_PREFIX = "mf/v1"
#: Largest envelope the cloud accepts, in bytes; a gateway splits batches to stay below it.
MAX_ENVELOPE_BYTES = 256 * 1024
#: Largest envelope ``seq``: below 2^63, so that it fits a signed 64-bit column (SQLite
#: INTEGER, PostgreSQL BIGINT) on every store.
SEQ_MAX = 2**63 - 1
#: Largest boot ``epoch``: below 2^31, the registry's Integer column on PostgreSQL.
EPOCH_MAX = 2**31 - 1
#: Times on the wire (``read_at``, ``sent_at``, health times) lie in [WIRE_TIME_MIN,
#: WIRE_TIME_MAX): inside what nanosecond stores hold (1677..2262); ingest narrows this to a
#: window around the receipt time (cloud.ingest.bounds).
WIRE_TIME_MIN = datetime(1970, 1, 1, tzinfo=UTC)
WIRE_TIME_MAX = datetime(2200, 1, 1, tzinfo=UTC)
#: A reading's value and multiplier: at most this many significant digits ...
VALUE_MAX_DIGITS = 24
#: ... and an absolute value below this (in the reading's unit): exact as a float64 integer.
VALUE_MAX_ABS = Decimal(10) ** 15
_JWS_ALGORITHM = "EdDSA"
_B64URL = re.compile(rb"[A-Za-z0-9_-]*")


class WireError(Exception):
    """Base of every error raised while reading an envelope off the wire."""


class MalformedEnvelope(WireError):
    """The bytes are not a JWS compact envelope, or the payload breaks the schema."""


class BadSignature(WireError):
    """The envelope's signature does not verify against the key it names."""


class Quality(StrEnum):
    """How far a reading can be trusted."""

    GOOD = "good"
    TIMEOUT = "timeout"
    ERROR = "error"
    ESTIMATED = "estimated"
    SUSPECT = "suspect"


class ClockState(StrEnum):
    """Whether the gateway's clock was synchronised when it stamped the readings."""

    SYNCED = "synced"
    FREE_RUNNING = "free_running"


#: A finite decimal of at most VALUE_MAX_DIGITS digits (pydantic counts the places a number
#: spans: 1e400 has 401) with |value| < VALUE_MAX_ABS; checked inside pydantic-core, with no
#: Python call per value, since ingest reads tens of thousands a second.
BoundedDecimal = Annotated[
    Decimal,
    Field(allow_inf_nan=False, max_digits=VALUE_MAX_DIGITS, gt=-VALUE_MAX_ABS, lt=VALUE_MAX_ABS),
]


#: An instant with the UTC offset (``Z`` or ``+00:00``) in [WIRE_TIME_MIN, WIRE_TIME_MAX).
#: Checked inside pydantic-core (offset and range), with no Python call per value: ingest
#: parses tens of thousands a second. Its tzinfo is pydantic's fixed-offset UTC zone.
UtcDatetime = Annotated[
    datetime,
    GetPydanticSchema(
        lambda _type, _handler: core_schema.custom_error_schema(
            core_schema.datetime_schema(tz_constraint=0, ge=WIRE_TIME_MIN, lt=WIRE_TIME_MAX),
            custom_error_type="utc_time",
            custom_error_message=(
                "time must carry the UTC offset (e.g. 2026-11-22T08:00:00Z) and lie in "
                f"{WIRE_TIME_MIN.year}..{WIRE_TIME_MAX.year - 1}"
            ),
        )
    ),
]

#: What code that stamps or compares times takes, so tests and simulations can move time.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current instant in UTC (the default :data:`Clock`)."""
    return datetime.now(UTC)


_Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class Reading(BaseModel):
    """One value read from one meter register at one moment.

    ``value`` is in ``unit`` (kWh, m³, V, A, kW ...) after the ``multiplier`` (CT × PT ratio)
    was applied; it is a decimal string on the wire so that register values stay exact.
    A reading whose quality is not ``good`` or ``estimated`` may carry no value.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    meter: _Identifier
    quantity: _Identifier
    value: BoundedDecimal | None = Field(allow_inf_nan=False)
    unit: str = Field(max_length=16)
    read_at: UtcDatetime
    quality: Quality
    round: str = Field(min_length=1, max_length=64)
    multiplier: BoundedDecimal = Field(default=Decimal(1), gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _value_matches_quality(self) -> Reading:
        has_value_quality = self.quality in (Quality.GOOD, Quality.ESTIMATED, Quality.SUSPECT)
        if has_value_quality and self.value is None:
            raise ValueError(f"a reading of quality {self.quality.value!r} needs a value")
        return self


class ReadingsPayload(BaseModel):
    """The signed body of one ``up/readings`` message.

    ``seq`` rises by one per envelope, is persisted before publishing and is never reset
    (0 <= seq < 2^63); ``epoch`` counts the gateway's boots so that a restart is visible
    (0 <= epoch < 2^31). Times lie in 1970..2199 (ingest narrows that to a window).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_: Literal["mf.readings/1"] = Field(default=SCHEMA_READINGS, alias="schema")
    gateway: _Identifier
    kid: _Identifier
    seq: int = Field(ge=0, le=SEQ_MAX)
    epoch: int = Field(ge=0, le=EPOCH_MAX)
    sent_at: UtcDatetime
    clock: ClockState
    readings: list[Reading] = Field(min_length=1, max_length=10_000)

    def to_bytes(self) -> bytes:
        """Serialise compactly; these bytes are what gets signed."""
        return self.model_dump_json(by_alias=True).encode()


class MeterHealth(BaseModel):
    """One meter as the gateway sees it; ``last_good`` is the last answered read (UTC)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    meter: _Identifier
    line: _Identifier
    reads: int = Field(ge=0)
    failures: int = Field(ge=0)
    consecutive_failures: int = Field(ge=0)
    sidelined: bool
    last_good: UtcDatetime | None = None


class LineHealth(BaseModel):
    """``utilisation``: share of the last round's interval the line was busy (0..1+)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    line: _Identifier
    utilisation: float = Field(ge=0)
    last_round_s: float = Field(ge=0)


class OutboxHealth(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    pending_readings: int = Field(ge=0)
    unacked_envelopes: int = Field(ge=0)
    oldest_age_s: float = Field(ge=0)
    disk_bytes: int = Field(ge=0)
    max_bytes: int = Field(ge=0)
    evicted_readings: int = Field(ge=0)
    alarm: bool


class HealthPayload(BaseModel):
    """The signed body of an ``up/health`` message (QoS 0)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_: Literal["mf.health/1"] = Field(default=SCHEMA_HEALTH, alias="schema")
    gateway: _Identifier
    kid: _Identifier
    sent_at: UtcDatetime
    epoch: int = Field(ge=0, le=EPOCH_MAX)
    clock: ClockState
    uptime_s: float = Field(ge=0)
    rounds: int = Field(ge=0)
    overruns: int = Field(ge=0)
    outbox: OutboxHealth
    lines: list[LineHealth]
    meters: list[MeterHealth]

    def to_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


def seal_health(payload: HealthPayload, key: Ed25519PrivateKey) -> bytes:
    """Sign a health report like a readings batch (same header, same key)."""
    return sign_compact({"alg": _JWS_ALGORITHM, "kid": payload.kid}, payload.to_bytes(), key)


class CommandName(StrEnum):
    """The commands a gateway understands."""

    RELOAD_CONFIG = "reload_config"
    READ_METER = "read_meter"
    SYNC_TIME = "sync_time"
    #: Trust another cloud key (rotation); sent only by ``meterflow cloud rotate-command-key``.
    TRUST_CLOUD_KEY = "trust_cloud_key"


class AckStatus(StrEnum):
    """How a command ended: ran fine, ran and failed, or was not run at all."""

    OK = "ok"
    ERROR = "error"
    REFUSED = "refused"


class Command(BaseModel):
    """The body of one ``down/cmd`` message, signed with the cloud's key."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_: Literal["mf.command/1"] = Field(default=SCHEMA_COMMAND, alias="schema")
    cmd_id: UUID
    site: _Identifier
    gateway: _Identifier
    command: CommandName
    args: dict[str, JsonValue] = Field(default_factory=dict)
    issued_at: UtcDatetime
    expires_at: UtcDatetime

    def to_bytes(self) -> bytes:
        """Serialise compactly; these bytes are what gets signed."""
        return self.model_dump_json(by_alias=True).encode()


class Ack(BaseModel):
    """The body of one ``up/ack`` message, signed with the gateway's key: its answer to one
    command."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_: Literal["mf.ack/1"] = Field(default=SCHEMA_ACK, alias="schema")
    cmd_id: str = Field(min_length=1, max_length=64)
    site: _Identifier
    gateway: _Identifier
    status: AckStatus
    detail: str = Field(default="", max_length=ACK_DETAIL_MAX)
    result: dict[str, JsonValue] | None = None
    finished_at: UtcDatetime

    def to_bytes(self) -> bytes:
        """Serialise compactly; these bytes are what gets signed."""
        return self.model_dump_json(by_alias=True).encode()


class ProvisionReply(BaseModel):
    """The cloud's answer when a gateway redeems its claim token (``POST /provision``): its
    configuration, broker access and the cloud's command key. Unknown members are ignored, so
    a newer cloud can add some."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    site: str
    gateway: str
    kid: str
    site_config: str = Field(description="TOML text, verbatim as the admin gave it")
    mqtt_url: str
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    topic_prefix: str
    cloud_public_key: str = Field(description="base64url Ed25519 key that signs commands")
    cloud_kid: str
    awaiting_approval: bool = Field(
        default=False,
        description="new hardware for a provisioned gateway: its key is accepted once an "
        "admin approves the replacement",
    )


@dataclass(frozen=True)
class Topics:
    """The MQTT topic layout under one prefix (``mf/v1`` by default)."""

    prefix: str = DEFAULT_TOPIC_PREFIX

    def readings(self, site: str, gateway: str) -> str:
        return f"{self.prefix}/{site}/{gateway}/up/readings"

    def health(self, site: str, gateway: str) -> str:
        return f"{self.prefix}/{site}/{gateway}/up/health"

    def state(self, site: str, gateway: str) -> str:
        return f"{self.prefix}/{site}/{gateway}/state"

    def command(self, site: str, gateway: str) -> str:
        """Commands to one gateway (QoS 1)."""
        return f"{self.prefix}/{site}/{gateway}/down/cmd"

    def ack(self, site: str, gateway: str) -> str:
        """One gateway's answers to commands (QoS 1)."""
        return f"{self.prefix}/{site}/{gateway}/up/ack"

    def readings_filter(self) -> str:
        """Subscription filter matching every gateway's readings topic."""
        return f"{self.prefix}/+/+/up/readings"

    def parse_readings(self, topic: str) -> tuple[str, str]:
        """Return ``(site, gateway)`` of a readings topic; raise MalformedEnvelope otherwise."""
        head = f"{self.prefix}/"
        parts = topic[len(head) :].split("/") if topic.startswith(head) else []
        if len(parts) != 4 or parts[2:] != ["up", "readings"] or not all(parts[:2]):
            raise MalformedEnvelope(
                f"topic {topic!r}: expected {self.prefix}/{{site}}/{{gateway}}/up/readings"
            )
        return parts[0], parts[1]


def public_key_raw(key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of an Ed25519 public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_b64(key: Ed25519PublicKey) -> str:
    """The public key as unpadded base64url (the JWK ``x`` member)."""
    return _b64url_encode(public_key_raw(key)).decode("ascii")


def load_public_key_b64(text: str) -> Ed25519PublicKey:
    """Parse a public key given as base64url of its 32 raw bytes; ValueError otherwise."""
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def key_id(key: Ed25519PublicKey) -> str:
    """The ``kid`` of a key: RFC 7638 thumbprint (SHA-256) of its OKP JWK, base64url."""
    jwk = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": public_key_b64(key)},
        separators=(",", ":"),
        sort_keys=True,
    )
    return _b64url_encode(hashlib.sha256(jwk.encode()).digest()).decode("ascii")


def _b64url_encode(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _b64url_decode(segment: bytes, what: str) -> bytes:
    if not _B64URL.fullmatch(segment):
        raise MalformedEnvelope(f"JWS {what}: expected unpadded base64url characters")
    try:
        return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    except binascii.Error as exc:
        raise MalformedEnvelope(f"JWS {what}: {exc}") from None


def seal(payload: ReadingsPayload, key: Ed25519PrivateKey) -> bytes:
    """Sign ``payload`` and return the JWS compact envelope as ASCII bytes.

    Protected header ``{"alg":"EdDSA","kid":…}``; the signature covers
    ``BASE64URL(header) || "." || BASE64URL(payload bytes)`` (RFC 7515 §5.1, RFC 8037 §3.1).
    """
    return sign_compact({"alg": _JWS_ALGORITHM, "kid": payload.kid}, payload.to_bytes(), key)


def sign_compact(header: dict[str, str], payload: bytes, key: Ed25519PrivateKey) -> bytes:
    """JWS compact serialisation of ``payload`` under ``header`` (RFC 7515 §7.1)."""
    encoded_header = _b64url_encode(json.dumps(header, separators=(",", ":")).encode())
    signing_input = encoded_header + b"." + _b64url_encode(payload)
    return signing_input + b"." + _b64url_encode(key.sign(signing_input))


@dataclass(frozen=True)
class Compact:
    header: dict[str, object]
    signing_input: bytes
    payload: bytes
    signature: bytes


def parse_compact(envelope: bytes) -> Compact:
    if len(envelope) > MAX_ENVELOPE_BYTES:
        raise MalformedEnvelope(
            f"envelope is {len(envelope)} bytes; at most {MAX_ENVELOPE_BYTES} are accepted"
        )
    parts = envelope.split(b".")
    if len(parts) != 3:
        raise MalformedEnvelope(
            f"not a JWS compact envelope: expected 3 dot-separated parts, got {len(parts)}"
        )
    try:
        header = json.loads(_b64url_decode(parts[0], "header"))
    except ValueError as exc:
        raise MalformedEnvelope(f"JWS header is not JSON: {exc}") from None
    except RecursionError:  # thousands of nested arrays: the parser gives up
        raise MalformedEnvelope("JWS header is not a JSON object: nested too deeply") from None
    kid = header.get("kid") if isinstance(header, dict) else None
    if (
        not isinstance(header, dict)
        or header.get("alg") != _JWS_ALGORITHM
        or not (isinstance(kid, str) and kid)
    ):
        raise MalformedEnvelope(
            f"JWS header must carry alg {_JWS_ALGORITHM!r} and a kid, got {header!r}"
        )
    if header.keys() - {"alg", "kid", "typ"}:
        raise MalformedEnvelope(
            f"JWS header has parameters this receiver does not "
            f"understand: {sorted(header.keys() - {'alg', 'kid', 'typ'})}"
        )
    signature = _b64url_decode(parts[2], "signature")
    if len(signature) != 64:
        raise MalformedEnvelope(f"an Ed25519 signature has 64 bytes, got {len(signature)}")
    return Compact(
        header, parts[0] + b"." + parts[1], _b64url_decode(parts[1], "payload"), signature
    )


def envelope_kid(envelope: bytes) -> str:
    """Return the key id named in an envelope's protected header, without verifying it."""
    return str(parse_compact(envelope).header["kid"])


_Payload = TypeVar("_Payload", bound=BaseModel)


def verify_signature(compact: Compact, key: Ed25519PublicKey) -> None:
    """Raise BadSignature unless ``compact``'s signature verifies with ``key``."""
    try:
        key.verify(compact.signature, compact.signing_input)
    except InvalidSignature:
        raise BadSignature(
            f"signature does not verify with key {compact.header['kid']!r}"
        ) from None


def open_compact(compact: Compact, key: Ed25519PublicKey, model: type[_Payload]) -> _Payload:
    """Verify ``compact`` with ``key``, then parse its payload as ``model``.

    The one way a signed envelope of any schema (readings, health, command, answer) is opened:
    BadSignature when the signature does not verify, MalformedEnvelope when the verified payload
    breaks the schema; the payload is parsed only after verifying.
    """
    verify_signature(compact, key)
    try:
        return model.model_validate_json(compact.payload)
    except ValidationError as exc:
        schema = getattr(model.model_fields.get("schema_"), "default", model.__name__)
        raise MalformedEnvelope(f"payload breaks schema {schema}: {exc}") from None


def open_envelope(envelope: bytes, key: Ed25519PublicKey) -> ReadingsPayload:
    """Verify a readings ``envelope`` against ``key`` and return its payload.

    Raises BadSignature when the signature does not verify and MalformedEnvelope when the
    bytes or the payload break the contract, or the payload names another key than the header.
    """
    compact = parse_compact(envelope)
    payload = open_compact(compact, key, ReadingsPayload)
    kid = compact.header["kid"]
    if payload.kid != kid:
        raise MalformedEnvelope(f"payload kid {payload.kid!r} differs from header kid {kid!r}")
    return payload
