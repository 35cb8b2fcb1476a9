"""Tenants' statement links: unguessable, expiring, signed, scoped to one statement, revocable.

A tenant has no account. The QR code on a printed statement carries
``{base}/t/{unit}/{token}``; the token is ``B64(nonce ‖ expiry) "." B64(tag)`` where the nonce
is 96 random bits, the expiry a Unix time (32 bits) and the tag the first 128 bits of
HMAC-SHA256 under the web secret over the nonce, the expiry and the statement it opens (run,
unit node, party). The registry keeps one row per link (its nonce, statement, expiry and
revocation day), so a link opens exactly the statement it was issued for:

- a token that does not parse, or a nonce never issued → ``malformed`` / ``unknown``;
- a tag that does not verify over the row's statement and the token's expiry → ``forged``;
- a unit in the path other than the link's → ``wrong_unit`` (never another unit's data);
- past its expiry → ``expired``; revoked (the lease ended) → ``revoked``; the run voided
  after posting → ``withdrawn``.

Revocation: :func:`revoke_unit_links` (the leases package calls it when a lease ends), and
the leases package's own statement-access grants (``statement_access``): when a tenant has
grants for the unit, one of them must be in force on the day (local calendar of the site).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Row, bindparam, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from cloud.apportion.models import ApportionRun, ApportionStatement, TreeNode
from cloud.leases.models import StatementAccess
from cloud.registry.base import as_utc
from cloud.registry.models import Site
from cloud.statements.models import TenantLink
from edge.wire import Clock, utc_now
from edge.wire.files import PrivateFileError, load_or_create_private_file

#: How long a statement link opens its statement unless said otherwise.
DEFAULT_LINK_TTL = timedelta(days=120)
_SECRET_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16
_DOMAIN = b"mf.tenant-link/1\x00"
_ONE_DAY = timedelta(days=1)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkError(Exception):
    """Base of the errors of tenant links."""


class SecretError(LinkError):
    """The web secret file is unreadable, too open or of the wrong size."""


class NoStatement(LinkError):
    """A link was asked for a statement that is not posted."""


class RefusalReason(StrEnum):
    """Why a link does not open a statement (each has its own page text)."""

    MALFORMED = "malformed"
    UNKNOWN = "unknown"
    FORGED = "forged"
    WRONG_UNIT = "wrong_unit"
    EXPIRED = "expired"
    REVOKED = "revoked"
    WITHDRAWN = "withdrawn"


class LinkRefused(LinkError):
    """The link does not open the statement; ``reason`` says why."""

    def __init__(self, reason: RefusalReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class WebSecret:
    """The HMAC key of tenant links (32 random bytes)."""

    key: bytes

    @classmethod
    def generate(cls) -> WebSecret:
        return cls(secrets.token_bytes(_SECRET_BYTES))

    @classmethod
    def load_or_create(cls, path: Path) -> WebSecret:
        """Load the secret at ``path`` or make one there (mode 0600); a file others may read
        is refused."""
        try:
            key = load_or_create_private_file(
                path, "web secret", lambda: secrets.token_bytes(_SECRET_BYTES)
            )
        except PrivateFileError as exc:
            raise SecretError(str(exc)) from None
        if len(key) != _SECRET_BYTES:
            raise SecretError(f"{path}: expected {_SECRET_BYTES} bytes, got {len(key)}")
        return cls(key)


@dataclass(frozen=True)
class StatementKey:
    """Which statement: a posted run, the unit node, the party (tenant)."""

    run_id: str
    unit: str
    party: str


@dataclass(frozen=True)
class IssuedLink:
    """A link: the token for ``/t/{unit}/{token}``, its expiry and its nonce."""

    statement: StatementKey
    token: str
    nonce: str
    expires_at: datetime

    def path(self) -> str:
        return f"/t/{self.statement.unit}/{self.token}"


@dataclass(frozen=True)
class OpenedLink:
    """A link that opens its statement today."""

    statement: StatementKey
    nonce: str
    site: str
    expires_at: datetime


def _tag(secret: WebSecret, body: bytes, key: StatementKey) -> bytes:
    message = b"\x00".join(
        [_DOMAIN + body, key.run_id.encode(), key.unit.encode(), key.party.encode()]
    )
    return hmac.new(secret.key, message, hashlib.sha256).digest()[:_TAG_BYTES]


def make_token(secret: WebSecret, nonce: bytes, expires_at: datetime, key: StatementKey) -> str:
    """The token of a link (deterministic: the registry's row gives it again)."""
    body = nonce + struct.pack(">I", int(expires_at.timestamp()))
    return f"{_b64(body)}.{_b64(_tag(secret, body, key))}"


@dataclass(frozen=True)
class LinkToken:
    """A token taken apart: its body (nonce ‖ expiry), the expiry [Unix s] and the tag."""

    body: bytes
    expiry: int
    tag: bytes

    @property
    def nonce(self) -> str:
        """The nonce as the registry keeps it (hex)."""
        return self.body[:_NONCE_BYTES].hex()

    def params(self, now: datetime) -> dict[str, Any]:
        """The bind parameters of :data:`LINK_QUERY` for this token at ``now``: the nonce,
        and the UTC day with the days either side (the site's local day is one of them)."""
        day = now.astimezone(UTC).date()
        return {
            "nonce": self.nonce,
            "day_before": day - _ONE_DAY,
            "utc_day": day,
            "day_after": day + _ONE_DAY,
        }


def parse_token(token: str) -> LinkToken:
    """The parts of ``token``; LinkRefused (``malformed``) when it does not parse."""
    head, _, tail = token.partition(".")
    try:
        body, tag = _unb64(head), _unb64(tail)
    except (binascii.Error, ValueError):
        raise LinkRefused(RefusalReason.MALFORMED, "the link is damaged") from None
    if len(body) != _NONCE_BYTES + 4 or len(tag) != _TAG_BYTES:
        raise LinkRefused(RefusalReason.MALFORMED, "the link is damaged")
    (expiry,) = struct.unpack(">I", body[_NONCE_BYTES:])
    return LinkToken(body, expiry, tag)


def revoke_unit_links(
    session: Session, unit: str, from_date: date, party: str | None = None
) -> int:
    """Revoke the links of ``unit`` (a unit id or unit node; of ``party`` only when given)
    from the local day ``from_date`` on; return how many links changed.

    Links issued later (a new tenant's) are not affected. Called by the leases package
    when a lease ends; idempotent, and an earlier revocation day is kept.
    """
    nodes = {unit, *session.scalars(select(TreeNode.id).where(TreeNode.unit_id == unit))}
    query = update(TenantLink).where(
        TenantLink.unit.in_(nodes),
        or_(TenantLink.revoked_on.is_(None), TenantLink.revoked_on > from_date),
    )
    if party is not None:
        query = query.where(TenantLink.party == party)
    result = session.execute(
        query.values(revoked_on=from_date).execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


class TenantLinkService:
    """Issues links for posted statements and opens them."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        secret: WebSecret,
        clock: Clock = utc_now,
        ttl: timedelta = DEFAULT_LINK_TTL,
    ) -> None:
        self.sessions = sessions
        self.secret = secret
        self.clock = clock
        self.ttl = ttl

    def link_for(
        self, key: StatementKey, *, renew_within: timedelta = timedelta(days=7)
    ) -> IssuedLink:
        """The statement's live link, or a new one when none lives beyond ``renew_within``.

        NoStatement unless the run is posted and has a statement for (unit, party).
        """
        now = self.clock()
        with self.sessions.begin() as session:
            posted = session.execute(
                select(ApportionStatement.run_id)
                .join(ApportionRun, ApportionRun.id == ApportionStatement.run_id)
                .where(
                    ApportionStatement.run_id == key.run_id,
                    ApportionStatement.unit == key.unit,
                    ApportionStatement.party == key.party,
                    ApportionRun.status == "posted",
                )
            ).first()
            if posted is None or not key.unit:
                raise NoStatement(
                    f"run {key.run_id!r} has no posted statement for unit "
                    f"{key.unit!r} and party {key.party!r}"
                )
            rows = session.scalars(
                select(TenantLink).where(
                    TenantLink.run_id == key.run_id,
                    TenantLink.unit == key.unit,
                    TenantLink.party == key.party,
                    TenantLink.revoked_on.is_(None),
                )
            ).all()
            live = [r for r in rows if as_utc(r.expires_at) > now + renew_within]
            if live:
                row = max(live, key=lambda r: as_utc(r.expires_at))
                nonce, expires = bytes.fromhex(row.nonce), as_utc(row.expires_at)
            else:
                nonce = secrets.token_bytes(_NONCE_BYTES)
                expires = (now + self.ttl).replace(microsecond=0)
                session.add(
                    TenantLink(
                        nonce=nonce.hex(),
                        run_id=key.run_id,
                        unit=key.unit,
                        party=key.party,
                        issued_at=now,
                        expires_at=expires,
                    )
                )
        return IssuedLink(key, make_token(self.secret, nonce, expires, key), nonce.hex(), expires)

    def open(self, unit: str, token: str) -> OpenedLink:
        """Check the link ``/t/{unit}/{token}``; LinkRefused with the reason otherwise."""
        parsed = parse_token(token)
        now = self.clock()
        with self.sessions.kw["bind"].connect() as conn:
            row = conn.execute(LINK_QUERY, parsed.params(now)).first()
        return self.check(row, unit, parsed, now)

    def check(self, row: Row[Any] | None, unit: str, token: LinkToken, now: datetime) -> OpenedLink:
        """Decide whether ``token`` opens its statement for ``unit`` at ``now``, from
        ``row``: the link's facts (the columns of :data:`LINK_QUERY`, or of a query that
        adds to it) read from the registry with ``token.params(now)`` for this request.
        Nothing is remembered between requests: a revocation, a void or an ended grant
        written by any process refuses the next request. LinkRefused with the reason."""
        if row is None:
            raise LinkRefused(RefusalReason.UNKNOWN, "this link was never issued")
        key = StatementKey(row.run_id, row.unit, row.party)
        expires = as_utc(row.expires_at)
        if int(expires.timestamp()) != token.expiry or not hmac.compare_digest(
            token.tag, _tag(self.secret, token.body, key)
        ):
            raise LinkRefused(RefusalReason.FORGED, "the link's signature does not verify")
        if unit != row.unit:
            raise LinkRefused(
                RefusalReason.WRONG_UNIT,
                "this link belongs to another unit than the one in the address",
            )
        if expires <= now:
            raise LinkRefused(
                RefusalReason.EXPIRED,
                f"the link expired at {expires.isoformat(timespec='minutes')}",
            )
        today = now.astimezone(ZoneInfo(row.timezone)).date()
        if row.revoked_on is not None and row.revoked_on <= today:
            raise LinkRefused(
                RefusalReason.REVOKED, f"the link was revoked on {row.revoked_on.isoformat()}"
            )
        if row.has_grants:
            offset = (today - now.astimezone(UTC).date()).days  # -1, 0 or 1
            in_force = (row.granted_day_before, row.granted_utc_day, row.granted_day_after)
            if not in_force[offset + 1]:
                raise LinkRefused(
                    RefusalReason.REVOKED, "the tenant's access to this unit has ended"
                )
        if row.status != "posted":
            raise LinkRefused(RefusalReason.WITHDRAWN, "the statement was withdrawn")
        return OpenedLink(key, row.nonce, row.site_id, expires)


# The query of a link's facts, built once: the page is opened often. The leases package's
# statement-access grants of the link's tenant and unit (the unit id of the link's unit node,
# or the node's own id when the tree does not name one) decide when there are any: one of
# them must be in force on the site's local day. That day is the UTC day or one either side,
# and the site (its time zone) is known only from this very row, so the grants are read for
# all three days and :meth:`TenantLinkService.check` picks one: a single round trip.
_NODE = aliased(TreeNode)


def _grants(*conditions: Any) -> Any:
    return exists().where(
        StatementAccess.tenant_id == TenantLink.party,
        StatementAccess.unit_id == func.coalesce(_NODE.unit_id, TenantLink.unit),
        *conditions,
    )


def _granted_on(day: str) -> Any:
    return _grants(
        StatementAccess.granted_on <= bindparam(day),
        or_(StatementAccess.revoked_on.is_(None), StatementAccess.revoked_on > bindparam(day)),
    ).label(f"granted_{day}")


#: The facts of the link whose nonce is bound as ``nonce`` (with :meth:`LinkToken.params`):
#: the link row, its run's status and site, the site's time zone and the tenant's grants.
LINK_QUERY = (
    select(
        TenantLink.nonce,
        TenantLink.run_id,
        TenantLink.unit,
        TenantLink.party,
        TenantLink.expires_at,
        TenantLink.revoked_on,
        ApportionRun.status,
        ApportionRun.site_id,
        Site.timezone,
        _grants().label("has_grants"),
        _granted_on("day_before"),
        _granted_on("utc_day"),
        _granted_on("day_after"),
    )
    .join(ApportionRun, ApportionRun.id == TenantLink.run_id)
    .join(Site, Site.id == ApportionRun.site_id)
    .outerjoin(_NODE, _NODE.id == TenantLink.unit)
    .where(TenantLink.nonce == bindparam("nonce"))
)
