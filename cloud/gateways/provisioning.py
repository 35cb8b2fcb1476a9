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
import os
import re
import secrets
import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from cloud.gateways.models import ClaimToken, GatewayReplacement
from cloud.gateways.revocation import REPLACED, live_kids, revoke_keys
from cloud.registry.base import as_utc
from cloud.registry.models import Gateway, GatewayKey
from cloud.registry.service import RegistryError, ensure_site, register_gateway
from edge import wire
from edge.wire import DEFAULT_TOPIC_PREFIX, Clock, public_key_b64, sign_compact, utc_now
from edge.wire.files import (
    PrivateFileError,
    load_or_create_private_file,
    load_private_key_pem,
    private_key_pem,
    read_private_file,
)
from edge.wire.mqtt import BrokerAddress

#: How long a claim token stays redeemable unless the admin says otherwise.
DEFAULT_CLAIM_TTL = timedelta(hours=24)
#: How long used and expired claim tokens are kept (so a second use is told "already used").
CLAIM_RETENTION = timedelta(days=7)
#: Longest broker password a claim hands out, in UTF-8 bytes (it is stored encrypted).
MAX_BROKER_PASSWORD_BYTES = 100
_SEALED = "enc1:"
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


class CommandKeys(Protocol):
    """Which command key new gateways get, and recording that a gateway trusts one
    (:class:`cloud.gateways.command_keys.CommandKeyRing`); ``base`` is the cloud's own key."""

    base: CloudSigner

    def current(self, session: Session) -> CloudSigner: ...

    def confirm(
        self, session: Session, gateway_id: str, kid: str, *, only: bool = False
    ) -> None: ...


class _BaseKeyOnly:
    """Command keys of a cloud that never rotated: its own key, nothing recorded."""

    def __init__(self, signer: CloudSigner) -> None:
        self.base = signer

    def current(self, session: Session) -> CloudSigner:
        return self.base

    def confirm(self, session: Session, gateway_id: str, kid: str, *, only: bool = False) -> None:
        return None


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

    @classmethod
    def load(cls, path: Path) -> CloudSigner:
        """Load the key at ``path`` (mode 0600); CloudKeyError if it is missing or too open."""
        try:
            return cls(load_private_key_pem(read_private_file(path, "cloud key"), path))
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


def _token_cipher(token: str) -> AESGCM:
    key = HKDF(hashes.SHA256(), 32, salt=None, info=b"meterflow claim broker password").derive(
        token.encode()
    )
    return AESGCM(key)


def seal_password(token: str, password: str) -> str:
    """``password`` encrypted (AES-256-GCM) with a key derived from the claim token's text."""
    nonce = os.urandom(12)
    sealed = _token_cipher(token).encrypt(nonce, password.encode(), token_sha256(token).encode())
    return _SEALED + base64.urlsafe_b64encode(nonce + sealed).decode()


def open_password(token: str, stored: str | None) -> str | None:
    """The broker password sealed by :func:`seal_password` (a row from before revision 0012
    holds it in clear and is handed out as it is)."""
    if stored is None or not stored.startswith(_SEALED):
        return stored
    raw = base64.urlsafe_b64decode(stored.removeprefix(_SEALED))
    try:
        plain = _token_cipher(token).decrypt(raw[:12], raw[12:], token_sha256(token).encode())
    except InvalidTag:
        raise ProvisioningConflict("the claim's broker password does not open") from None
    return plain.decode()


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
    except RecursionError:  # thousands of nested arrays or tables: the parser gives up
        raise InvalidClaim("site config is not valid TOML: nested too deeply") from None
    for key, expected in (("site", site), ("gateway", gateway)):
        if data.get(key) != expected:
            raise InvalidClaim(
                f"site config says {key} = {data.get(key)!r}; the claim is for {key} {expected!r}"
            )


@dataclass(frozen=True)
class _LiveState:
    """What the registry holds of a gateway when a claim for it is issued or redeemed."""

    site: str | None
    live_kids: list[str]

    @property
    def revoked(self) -> bool:
        """Registered, but holding no live key (revoked, decision 0043): new hardware for it
        is a replacement."""
        return self.site is not None and not self.live_kids


def _gateway_state(session: Session, gateway: str) -> _LiveState:
    row = session.get(Gateway, gateway)
    if row is None:
        return _LiveState(None, [])
    return _LiveState(row.site_id, live_kids(session, gateway))


class ProvisioningService:
    """Issues claim tokens and redeems them; each call is one registry transaction.

    ``signer`` is the cloud's own key; ``command_keys`` says which key signs commands (the
    cloud's own key when not given, :mod:`cloud.gateways.command_keys`).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        signer: CloudSigner,
        clock: Clock = utc_now,
        *,
        command_keys: CommandKeys | None = None,
        claim_retention: timedelta = CLAIM_RETENTION,
    ) -> None:
        self.sessions = sessions
        self.signer = signer
        self.clock = clock
        self.command_keys: CommandKeys = command_keys or _BaseKeyOnly(signer)
        self.claim_retention = claim_retention

    def purge_claims(
        self, session: Session | None = None, older_than: timedelta | None = None
    ) -> int:
        """Delete claim tokens used or expired more than ``older_than`` (default
        ``claim_retention``) ago; return how many."""
        cutoff = self.clock() - (self.claim_retention if older_than is None else older_than)
        stale = (
            delete(ClaimToken)
            .where(or_(ClaimToken.used_at < cutoff, ClaimToken.expires_at < cutoff))
            .execution_options(synchronize_session=False)
        )
        if session is not None:
            return session.execute(stale).rowcount or 0
        with self.sessions.begin() as own:
            return own.execute(stale).rowcount or 0

    def create_claim(
        self,
        site: str,
        gateway: str,
        site_config: str,
        broker: BrokerGrant,
        ttl: timedelta = DEFAULT_CLAIM_TTL,
        *,
        replace: bool = False,
        issued_by: str | None = None,
        approved_by: str | None = None,
    ) -> IssuedClaim:
        """Issue a claim token for ``gateway`` at ``site`` handing out ``site_config`` (TOML
        text, kept verbatim) and ``broker``; it expires after ``ttl``.

        A gateway that holds a live key needs ``replace``; ``approved_by`` (an admin's name)
        approves the replacement in advance, else it waits for an admin once redeemed.
        """
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
        if broker.password is not None and (
            len(broker.password.encode()) > MAX_BROKER_PASSWORD_BYTES
        ):
            raise InvalidClaim(
                f"broker password: at most {MAX_BROKER_PASSWORD_BYTES} bytes are accepted"
            )
        token = secrets.token_urlsafe(32)
        now = self.clock()
        with self.sessions.begin() as session:
            state = _gateway_state(session, gateway)
            if state.site is not None and state.site != site:
                raise InvalidClaim(
                    f"gateway {gateway!r} belongs to site {state.site!r}, not {site!r}"
                )
            if state.live_kids and not replace:
                raise InvalidClaim(
                    f"gateway {gateway!r} is provisioned already (key {state.live_kids[0]}); "
                    f"new hardware for it is a replacement: ask for one explicitly "
                    f"(--replace), an admin approves it"
                )
            if state.revoked and not replace:
                raise InvalidClaim(
                    f"gateway {gateway!r} was revoked; bringing it back with new hardware is "
                    f"a replacement: ask for one explicitly (--replace), an admin approves it"
                )
            if replace and state.site is None:
                raise InvalidClaim(
                    f"gateway {gateway!r} is not registered: there is nothing to replace; "
                    f"issue a claim without --replace"
                )
            self.purge_claims(session)
            ensure_site(session, site)
            session.add(
                ClaimToken(
                    token_sha256=token_sha256(token),
                    site_id=site,
                    gateway_id=gateway,
                    site_config=site_config,
                    mqtt_url=broker.mqtt_url,
                    mqtt_username=broker.username,
                    mqtt_password=(
                        None if broker.password is None else seal_password(token, broker.password)
                    ),
                    topic_prefix=broker.topic_prefix,
                    created_at=now,
                    expires_at=now + ttl,
                    replace=replace,
                    issued_by=issued_by,
                    approved_by=approved_by if replace else None,
                )
            )
        return IssuedClaim(token, site, gateway, now + ttl)

    def redeem(self, claim_token: str, public_key: str, key_id: str) -> wire.ProvisionReply:
        """Register ``public_key`` (base64url) for the token's gateway and hand out its claim.

        ``key_id`` must be the key's RFC 7638 thumbprint. Raises BadClaimRequest,
        UnknownClaimToken, ClaimTokenUsed, ClaimTokenExpired or ProvisioningConflict; on any
        error nothing changes (the token stays redeemable unless it was used or expired). A
        replacement not approved in advance registers nothing yet: the reply says
        ``awaiting_approval``.
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
            command_key = self.command_keys.current(session)
            state = _gateway_state(session, claim.gateway_id)
            if state.site is not None and state.site != claim.site_id:
                raise ProvisioningConflict(
                    f"gateway {claim.gateway_id!r} belongs to site {state.site!r}, "
                    f"not {claim.site_id!r}"
                )
            replacing = state.revoked or (bool(state.live_kids) and kid not in state.live_kids)
            if replacing and not claim.replace:
                raise ProvisioningConflict(
                    f"gateway {claim.gateway_id!r} was provisioned or revoked after this token "
                    f"was issued; new hardware for it needs a replacement claim"
                )
            waits = replacing and claim.approved_by is None
            provisioned = wire.ProvisionReply(
                site=claim.site_id,
                gateway=claim.gateway_id,
                kid=kid,
                site_config=claim.site_config,
                mqtt_url=claim.mqtt_url,
                mqtt_username=claim.mqtt_username,
                mqtt_password=open_password(claim_token, claim.mqtt_password),
                topic_prefix=claim.topic_prefix,
                cloud_public_key=command_key.public_key_b64,
                cloud_kid=command_key.kid,
                awaiting_approval=waits,
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
            if replacing:
                self._replacement(session, claim, key, command_key.kid, now)
            if not waits:
                try:
                    register_gateway(session, claim.site_id, claim.gateway_id, key)
                except RegistryError as exc:
                    raise ProvisioningConflict(str(exc)) from None
                if replacing:
                    revoke_keys(
                        session,
                        claim.gateway_id,
                        now,
                        reason=REPLACED,
                        actor=claim.approved_by or claim.issued_by or "claim",
                        origin="provision",
                        keep=kid,
                    )
                self.command_keys.confirm(session, claim.gateway_id, command_key.kid, only=True)
            self.purge_claims(session)
        return provisioned

    def _replacement(
        self,
        session: Session,
        claim: ClaimToken,
        key: Ed25519PublicKey,
        command_kid: str,
        now: datetime,
    ) -> None:
        kid = wire.key_id(key)
        if session.get(GatewayKey, kid) is not None or session.scalar(
            select(GatewayReplacement.id).where(GatewayReplacement.kid == kid)
        ):
            raise ProvisioningConflict(f"key {kid} is registered already")
        session.add(
            GatewayReplacement(
                gateway_id=claim.gateway_id,
                site_id=claim.site_id,
                kid=kid,
                public_key=public_key_b64(key),
                command_kid=command_kid,
                requested_by=claim.issued_by,
                requested_at=now,
                status="pending" if claim.approved_by is None else "approved",
                decided_by=claim.approved_by,
                decided_at=None if claim.approved_by is None else now,
            )
        )
