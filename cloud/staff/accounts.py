"""Staff accounts of the web application: roles, site scope, passwords, sessions and tokens.

Roles (issue #8): ``admin`` acts on everything; ``finance`` on runs, statements, disputes and
exports of its sites; ``engineer`` on gateways, claim tokens and commands of its sites.
Passwords are hashed with Argon2id (argon2-cffi). A sign-in makes a random session token
(256 bits) of one of two kinds: ``cookie`` (a browser session, with a double-submit CSRF
token for its forms) or ``api`` (a bearer token for the JSON API). The registry keeps only
the SHA-256 of a token, so a copy of the database signs nobody in. Sessions expire and end
at sign-out. Tenants have no account (see :mod:`cloud.statements.links`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from cloud.registry.base import as_utc
from cloud.staff.models import WebAccount, WebSession
from edge.wire import Clock, utc_now

#: How long a browser session or an API token lives without signing in again.
SESSION_TTL = timedelta(hours=12)
MIN_PASSWORD_CHARS = 10
_USERNAME = re.compile(r"^[a-z0-9_.-]{2,64}$")
_SITE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
# Verifying against this hash when the user does not exist keeps the timing of a failed
# sign-in independent of whether the name is known.
_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("not a password of anybody")


def token_sha256(token: str) -> str:
    """The only form in which the registry keeps a session or API token."""
    return hashlib.sha256(token.encode()).hexdigest()


class Role(StrEnum):
    """What a staff member does."""

    ADMIN = "admin"
    FINANCE = "finance"
    ENGINEER = "engineer"


class SessionKind(StrEnum):
    COOKIE = "cookie"
    API = "api"


#: The roles that do finance's work: runs (review, approve, post, void), statements,
#: disputes, exports. The web's route policies and the run services both apply it.
FINANCE_ROLES: frozenset[Role] = frozenset({Role.ADMIN, Role.FINANCE})
#: The roles that do engineers' work: gateways, claim tokens, commands.
ENGINEER_ROLES: frozenset[Role] = frozenset({Role.ADMIN, Role.ENGINEER})


class AccountError(Exception):
    """Base of the errors of accounts and sign-in."""


class InvalidAccount(AccountError):
    """An account's name, role, sites or password breaks the rules."""


class SignInFailed(AccountError):
    """Wrong user name or password, or a disabled account (one message for all three)."""


@dataclass(frozen=True)
class Principal:
    """A signed-in staff member as the web layer sees them."""

    username: str
    role: Role
    sites: frozenset[str]
    csrf: str = ""
    via: SessionKind = SessionKind.COOKIE

    def may_act_on(self, site: str) -> bool:
        """Whether the site is in this account's scope (an admin's scope is every site)."""
        return self.role is Role.ADMIN or site in self.sites

    def site_filter(self) -> frozenset[str] | None:
        """The sites a listing is restricted to; None means every site (admin)."""
        return None if self.role is Role.ADMIN else self.sites


@dataclass(frozen=True)
class IssuedSession:
    """A new session: ``token`` is handed to the client once; ``csrf`` for its forms."""

    token: str
    csrf: str
    principal: Principal
    expires_at: datetime


def _check_sites(sites: Iterable[str]) -> list[str]:
    out = sorted(set(sites))
    for site in out:
        if not _SITE.fullmatch(site):
            raise InvalidAccount(f"site id {site!r}: expected 1-64 of A-Z a-z 0-9 _ . : -")
    return out


class AccountService:
    """Creates accounts, signs people in and finds the principal behind a token."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock = utc_now,
        session_ttl: timedelta = SESSION_TTL,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.session_ttl = session_ttl

    def create_account(
        self, username: str, password: str, role: Role | str, sites: Iterable[str] = ()
    ) -> None:
        """Create (or replace the password, role and sites of) a staff account."""
        if not _USERNAME.fullmatch(username):
            raise InvalidAccount(f"user name {username!r}: expected 2-64 of a-z 0-9 _ . -")
        if len(password) < MIN_PASSWORD_CHARS:
            raise InvalidAccount(
                f"a password needs at least {MIN_PASSWORD_CHARS} characters, got {len(password)}"
            )
        try:
            role = Role(role)
        except ValueError:
            raise InvalidAccount(
                f"role {role!r}: expected one of {', '.join(r.value for r in Role)}"
            ) from None
        site_list = _check_sites(sites)
        if role is not Role.ADMIN and not site_list:
            raise InvalidAccount(f"a {role.value} account needs at least one site")
        digest = _HASHER.hash(password)
        with self.sessions.begin() as session:
            account = session.get(WebAccount, username)
            if account is None:
                session.add(
                    WebAccount(
                        username=username,
                        password_hash=digest,
                        role=role.value,
                        sites=site_list,
                        created_at=self.clock(),
                    )
                )
            else:
                account.password_hash, account.role, account.sites = digest, role.value, site_list
                account.disabled_at = None

    def disable_account(self, username: str) -> None:
        """Disable an account and end its sessions."""
        now = self.clock()
        with self.sessions.begin() as session:
            account = session.get(WebAccount, username)
            if account is None:
                raise InvalidAccount(f"no account {username!r}")
            account.disabled_at = account.disabled_at or now
            session.execute(
                update(WebSession)
                .where(WebSession.username == username, WebSession.ended_at.is_(None))
                .values(ended_at=now)
            )

    def list_accounts(self) -> list[tuple[str, Role, list[str], bool]]:
        """(user name, role, sites, active) of every account, by name."""
        with self.sessions() as session:
            rows = session.scalars(select(WebAccount).order_by(WebAccount.username)).all()
            return [(a.username, Role(a.role), list(a.sites), a.disabled_at is None) for a in rows]

    def acting(self, username: str) -> Principal:
        """The principal of an existing, enabled account that acts without signing in (the
        command line's ``--as``, run on the cloud's own host); InvalidAccount otherwise.

        What it may do is then decided as for a web session: its role and its sites.
        """
        with self.sessions() as session:
            account = session.get(WebAccount, username)
        if account is None:
            raise InvalidAccount(f"no staff account {username!r}; expected an existing account")
        if account.disabled_at is not None:
            raise InvalidAccount(f"staff account {username!r} is disabled")
        return Principal(
            account.username, Role(account.role), frozenset(account.sites), "", SessionKind.API
        )

    def sign_in(
        self, username: str, password: str, kind: SessionKind = SessionKind.COOKIE
    ) -> IssuedSession:
        """Check the password and open a session; SignInFailed otherwise."""
        with self.sessions() as session:
            account = session.get(WebAccount, username)
            stored = account.password_hash if account is not None else _DUMMY_HASH
        try:
            _HASHER.verify(stored, password)
        except (VerificationError, InvalidHashError):
            raise SignInFailed("wrong user name or password") from None
        if account is None or account.disabled_at is not None:
            raise SignInFailed("wrong user name or password")
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        now = self.clock()
        expires = now + self.session_ttl
        with self.sessions.begin() as session:
            session.add(
                WebSession(
                    token_sha256=token_sha256(token),
                    username=username,
                    kind=kind.value,
                    csrf=csrf,
                    created_at=now,
                    expires_at=expires,
                )
            )
            if _HASHER.check_needs_rehash(stored):
                fresh = session.get(WebAccount, username)
                if fresh is not None:
                    fresh.password_hash = _HASHER.hash(password)
        principal = Principal(username, Role(account.role), frozenset(account.sites), csrf, kind)
        return IssuedSession(token, csrf, principal, expires)

    def principal(self, token: str, kind: SessionKind) -> Principal | None:
        """The principal of a live session token of ``kind``; None when unknown, expired,
        ended, of the other kind, or its account is disabled."""
        if not token or len(token) > 200:
            return None
        with self.sessions() as session:
            row = session.execute(
                select(WebSession, WebAccount)
                .join(WebAccount, WebAccount.username == WebSession.username)
                .where(WebSession.token_sha256 == token_sha256(token))
            ).first()
        if row is None:
            return None
        web_session, account = row
        if (
            web_session.kind != kind.value
            or web_session.ended_at is not None
            or account.disabled_at is not None
            or as_utc(web_session.expires_at) <= self.clock()
        ):
            return None
        return Principal(
            account.username, Role(account.role), frozenset(account.sites), web_session.csrf, kind
        )

    def sign_out(self, token: str) -> None:
        """End the session of ``token`` (nothing happens for an unknown one)."""
        with self.sessions.begin() as session:
            session.execute(
                update(WebSession)
                .where(
                    WebSession.token_sha256 == token_sha256(token), WebSession.ended_at.is_(None)
                )
                .values(ended_at=self.clock())
            )
