"""Provisioning of gateways: single-use claim tokens, their redemption, and the cloud's key.

A field engineer gets a claim token from an admin (``meterflow cloud claim-token``) and runs
``meterflow edge provision`` on the gateway. The gateway makes its key pair, sends only the
public key, and receives its site configuration, broker credentials and the cloud's public
key. The token is random, stored only as its SHA-256, bound to one (site, gateway), expires,
and can be redeemed once: marking it used and registering the key happen in one transaction.

This module imports only ``edge.wire`` of ``edge`` (layering rule): the key id (RFC 7638
thumbprint) is part of the wire contract.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from cloud.gateways.models import ClaimToken
from cloud.registry.base import as_utc
from cloud.registry.service import RegistryError, ensure_site, register_gateway
from edge import wire
from edge.wire import DEFAULT_TOPIC_PREFIX, Clock, public_key_b64, sign_compact, utc_now
from edge.wire.files import (
    PrivateFileError,
    load_or_create_private_file,
    load_private_key_pem,
    private_key_pem,
)
from edge.wire.mqtt import BrokerAddress

#: How long a claim token stays redeemable unless the admin says otherwise.
DEFAULT_CLAIM_TTL = timedelta(hours=24)
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_MAX_SITE_CONFIG_CHARS = 256 * 1024


class ProvisioningError(Exception):
    """Base of every error of provisioning; the message says what was expected and what came."""


class BadClaimRequest(ProvisioningError):
    """The request is malformed: ``field`` names the member that is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class UnknownClaimToken(ProvisioningError):
    """No claim token with this text was ever issued."""


class ClaimTokenUsed(ProvisioningError):
    """The claim token was redeemed already; tokens are single-use."""


class ClaimTokenExpired(ProvisioningError):
    """The claim token's redemption window has passed."""


class ProvisioningConflict(ProvisioningError):
    """Redeeming would contradict the registry (gateway at another site, key taken)."""


class InvalidClaim(ProvisioningError):
    """An admin's claim is inconsistent: bad ids, site config or broker URL."""


class CloudKeyError(ProvisioningError):
    """The cloud's key file is unreadable, too open, or not an Ed25519 private key."""


# ----------------------------------------------------------------------------- keys


def parse_public_key(text: str, field: str = "public_key") -> Ed25519PublicKey:
    """Parse unpadded base64url of 32 raw bytes; BadClaimRequest naming ``field`` otherwise."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{43}", text):
        raise BadClaimRequest(
            field,
            f"expected 43 base64url characters (32 bytes of an "
            f"Ed25519 public key), got {len(text)} characters",
        )
    try:
        raw = base64.urlsafe_b64decode(text + "=")
    except binascii.Error as exc:
        raise BadClaimRequest(field, f"not base64url: {exc}") from None
    return Ed25519PublicKey.from_public_bytes(raw)


class CloudSigner:
    """The cloud's own Ed25519 key: signs commands (and, later, statements).

    Its key id is the RFC 7638 thumbprint, like a gateway's; gateways receive the public key
    at provisioning and verify every command against it.
    """

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.public_key = private_key.public_key()
        self.kid = wire.key_id(self.public_key)

    @property
    def public_key_b64(self) -> str:
        return public_key_b64(self.public_key)

    def sign(self, payload: bytes) -> bytes:
        """JWS compact envelope of ``payload``, header ``{"alg":"EdDSA","kid":<cloud kid>}``."""
        return sign_compact({"alg": "EdDSA", "kid": self.kid}, payload, self._private_key)

    @classmethod
    def load_or_create(cls, path: Path) -> CloudSigner:
        """Load the key at ``path``, or make one there (PEM PKCS#8, mode 0600) if none exists.

        A key file that others may read is refused rather than used.
        """
        try:
            pem = load_or_create_private_file(
                path, "cloud key", lambda: private_key_pem(Ed25519PrivateKey.generate())
            )
            return cls(load_private_key_pem(pem, path))
        except PrivateFileError as exc:
            raise CloudKeyError(str(exc)) from None


# ----------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class BrokerGrant:
    """What a gateway gets to reach the broker. ``mqtt_url`` is ``mqtt://`` or ``mqtts://``."""

    mqtt_url: str
    username: str | None = None
    password: str | None = None
    topic_prefix: str = DEFAULT_TOPIC_PREFIX


@dataclass(frozen=True)
class IssuedClaim:
    """A new claim token. ``token`` is shown once; the registry keeps only its hash."""

    token: str
    site: str
    gateway: str
    expires_at: datetime


def token_sha256(token: str) -> str:
    """The hex SHA-256 of a claim token's text: the only form the registry stores."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_site_config(site_config: str, site: str, gateway: str) -> None:
    """Check that ``site_config`` is TOML naming ``site`` and ``gateway``; InvalidClaim if not.

    The cloud does not know the gateway's full configuration schema (that is ``edge``'s,
    which the cloud does not import); the gateway validates the rest when it loads the file.
    """
    if len(site_config) > _MAX_SITE_CONFIG_CHARS:
        raise InvalidClaim(
            f"site config has {len(site_config)} characters; "
            f"at most {_MAX_SITE_CONFIG_CHARS} are accepted"
        )
    try:
        data = tomllib.loads(site_config)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidClaim(f"site config is not valid TOML: {exc}") from None
    for key, expected in (("site", site), ("gateway", gateway)):
        if data.get(key) != expected:
            raise InvalidClaim(
                f"site config says {key} = {data.get(key)!r}; the claim is for {key} {expected!r}"
            )


class ProvisioningService:
    """Issues claim tokens and redeems them; each call is one registry transaction."""

    def __init__(
        self, sessions: sessionmaker[Session], signer: CloudSigner, clock: Clock = utc_now
    ) -> None:
        self.sessions = sessions
        self.signer = signer
        self.clock = clock

    def create_claim(
        self,
        site: str,
        gateway: str,
        site_config: str,
        broker: BrokerGrant,
        ttl: timedelta = DEFAULT_CLAIM_TTL,
    ) -> IssuedClaim:
        """Issue a claim token for ``gateway`` at ``site`` handing out ``site_config`` (TOML
        text, kept verbatim) and ``broker``; it expires after ``ttl``."""
        for what, value in (("site", site), ("gateway", gateway)):
            if not _IDENTIFIER.fullmatch(value):
                raise InvalidClaim(f"{what} id {value!r}: expected 1-64 of A-Z a-z 0-9 _ . : -")
        if ttl <= timedelta(0):
            raise InvalidClaim(f"a claim token must live a while; got ttl {ttl}")
        check_site_config(site_config, site, gateway)
        try:
            BrokerAddress.parse(broker.mqtt_url)
        except ValueError as exc:
            raise InvalidClaim(str(exc)) from None
        token = secrets.token_urlsafe(32)
        now = self.clock()
        with self.sessions.begin() as session:
            ensure_site(session, site)
            session.add(
                ClaimToken(
                    token_sha256=token_sha256(token),
                    site_id=site,
                    gateway_id=gateway,
                    site_config=site_config,
                    mqtt_url=broker.mqtt_url,
                    mqtt_username=broker.username,
                    mqtt_password=broker.password,
                    topic_prefix=broker.topic_prefix,
                    created_at=now,
                    expires_at=now + ttl,
                )
            )
        return IssuedClaim(token, site, gateway, now + ttl)

    def redeem(self, claim_token: str, public_key: str, key_id: str) -> wire.ProvisionReply:
        """Register ``public_key`` (base64url) for the token's gateway and hand out its claim.

        ``key_id`` must be the key's RFC 7638 thumbprint. Raises BadClaimRequest,
        UnknownClaimToken, ClaimTokenUsed, ClaimTokenExpired or ProvisioningConflict; on any
        error nothing changes (the token stays redeemable unless it was used or expired).
        """
        key = parse_public_key(public_key)
        kid = wire.key_id(key)
        if key_id != kid:
            raise BadClaimRequest(
                "key_id",
                f"{key_id!r} is not the RFC 7638 thumbprint of public_key, which is {kid!r}",
            )
        digest = token_sha256(claim_token)
        now = self.clock()
        with self.sessions.begin() as session:
            claim = session.get(ClaimToken, digest)
            if claim is None:
                raise UnknownClaimToken("claim token is not known: check it was copied whole")
            if claim.used_at is not None:
                raise ClaimTokenUsed(
                    f"claim token for gateway {claim.gateway_id!r} was already used at "
                    f"{as_utc(claim.used_at).isoformat()}; ask for a new one"
                )
            if as_utc(claim.expires_at) <= now:
                raise ClaimTokenExpired(
                    f"claim token for gateway {claim.gateway_id!r} expired at "
                    f"{as_utc(claim.expires_at).isoformat()}; ask for a new one"
                )
            provisioned = wire.ProvisionReply(
                site=claim.site_id,
                gateway=claim.gateway_id,
                kid=kid,
                site_config=claim.site_config,
                mqtt_url=claim.mqtt_url,
                mqtt_username=claim.mqtt_username,
                mqtt_password=claim.mqtt_password,
                topic_prefix=claim.topic_prefix,
                cloud_public_key=self.signer.public_key_b64,
                cloud_kid=self.signer.kid,
            )
            # The guarded UPDATE makes single use hold under concurrent redemptions: only one
            # transaction finds used_at still empty. The password is not kept once handed out.
            marked = session.execute(
                update(ClaimToken)
                .where(ClaimToken.token_sha256 == digest, ClaimToken.used_at.is_(None))
                .values(used_at=now, used_kid=kid, mqtt_password=None)
                .execution_options(synchronize_session=False)
            )
            if marked.rowcount != 1:
                raise ClaimTokenUsed(
                    f"claim token for gateway {claim.gateway_id!r} was "
                    f"just used by another request; ask for a new one"
                )
            try:
                register_gateway(session, claim.site_id, claim.gateway_id, key)
            except RegistryError as exc:
                raise ProvisioningConflict(str(exc)) from None
        return provisioned
