"""Staff accounts of the web application: roles, site scope, passwords, sessions and tokens.

Roles (issue #8): ``admin`` acts on everything; ``finance`` on runs, statements, disputes and
exports of its sites; ``engineer`` on gateways, claim tokens and commands of its sites. Lease
operations (issue #18, decision 0028): ``manager`` (管家) works the leases of some buildings;
``supervisor`` and ``legal`` those of their sites (or of some of their buildings). Building
scope narrows what has a unit (leases, the risk list) within a site; what it may see of a
lease is :mod:`cloud.staff.visibility`'s policy.
Passwords follow the rule of :mod:`cloud.staff.passwords` and are hashed with Argon2id
(argon2-cffi), a bounded number at once. Failed sign-ins are throttled per account and per
source address (:mod:`cloud.staff.throttle`); an account can be locked, unlocked, disabled
and enabled again, and disabling it or resetting its password ends its sessions and API
tokens at once (decision 0017). A sign-in makes a random session token
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
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from cloud.registry.base import as_utc
from cloud.staff import audit
from cloud.staff.models import WebAccount, WebSession
from cloud.staff.passwords import BoundedHasher, HashingBusy, password_problem
from cloud.staff.throttle import Lock, Locked, SignInThrottle, Throttled, ThrottlePolicy
from edge.wire import Clock, utc_now

#: How long a browser session or an API token lives without signing in again.
SESSION_TTL = timedelta(hours=12)
_USERNAME = re.compile(r"^[a-z0-9_.-]{2,64}$")
_SOURCE = re.compile(r"^[0-9A-Za-z.:%_-]{1,100}$")
_SITE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
#: a building of a site: ``SITE/BUILDING`` (the site id has no ``/``; the building is a unit's
#: ``building`` as in the site file, e.g. ``A`` or ``1号楼``)
_BUILDING = re.compile(r"^([A-Za-z0-9_.:-]{1,64})/([^\s,/]{1,64})$")
# Verifying against this hash when the user does not exist keeps the timing of a failed
# sign-in independent of whether the name is known.
_DUMMY_HASH = PasswordHasher().hash("not a password of anybody")


def token_sha256(token: str) -> str:
    """The only form in which the registry keeps a session or API token."""
    return hashlib.sha256(token.encode()).hexdigest()


class Role(StrEnum):
    """What a staff member does."""

    ADMIN = "admin"
    FINANCE = "finance"
    ENGINEER = "engineer"
    MANAGER = "manager"  # 管家: the leases of their buildings
    SUPERVISOR = "supervisor"  # 主管: the leases of their sites, overdue items included
    LEGAL = "legal"  # 法务: the leases of their sites, hand-over cases


class SessionKind(StrEnum):
    COOKIE = "cookie"
    API = "api"


#: The roles that do finance's work: runs (review, approve, post, void), statements,
#: disputes, exports. The web's route policies and the run services both apply it.
FINANCE_ROLES: frozenset[Role] = frozenset({Role.ADMIN, Role.FINANCE})
#: The roles that do engineers' work: gateways, claim tokens, commands.
ENGINEER_ROLES: frozenset[Role] = frozenset({Role.ADMIN, Role.ENGINEER})
#: The roles that work with leases: the lease list and a lease's details (what they see of
#: one is :mod:`cloud.staff.visibility`'s business).
LEASE_ROLES: frozenset[Role] = frozenset(
    {Role.ADMIN, Role.FINANCE, Role.MANAGER, Role.SUPERVISOR, Role.LEGAL}
)
#: The roles that read the move-out risk list of running leases.
RISK_ROLES: frozenset[Role] = frozenset({Role.ADMIN, Role.FINANCE, Role.MANAGER, Role.SUPERVISOR})
#: who records a tenant's payment by hand (legal reads leases, it does not take money)
PAYMENT_ROLES: frozenset[Role] = RISK_ROLES
#: The roles that change leases: the ledger import and export, signing, handing over,
#: renewing and terminating (decision 0032).
LEDGER_ROLES: frozenset[Role] = frozenset({Role.ADMIN, Role.MANAGER, Role.SUPERVISOR})

#: who sets lease policies of sites and a lease's policy overrides (decision 0031); the
#: lease roles read them
POLICY_ROLES: frozenset[Role] = frozenset({Role.ADMIN, Role.SUPERVISOR})
#: The roles an account of which may be limited to some buildings of its sites (a manager
#: must be); the others act on whole sites.
BUILDING_ROLES: frozenset[Role] = frozenset({Role.MANAGER, Role.SUPERVISOR, Role.LEGAL})


class AccountError(Exception):
    """Base of the errors of accounts and sign-in."""


class InvalidAccount(AccountError):
    """An account's name, role, sites or password breaks the rules."""


class NoSuchAccount(InvalidAccount):
    """No account of that name."""


class SignInFailed(AccountError):
    """Wrong user name or password, or a disabled account (one message for all three)."""


class WrongPassword(AccountError):
    """The current password given to change it is wrong (counts as a failed sign-in)."""


class TryLater(AccountError):
    """A sign-in refused before its password was checked: too soon after failures, the source
    blocked, or too many sign-ins at once; the client may try again after ``retry_after_s``."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class AccountLocked(AccountError):
    """The account is locked after too many failed sign-ins; an admin unlocks it."""


@dataclass(frozen=True)
class Principal:
    """A signed-in staff member as the web layer sees them."""

    username: str
    role: Role
    sites: frozenset[str]
    csrf: str = ""
    via: SessionKind = SessionKind.COOKIE
    #: ``SITE/BUILDING`` keys: within a site named here, only these buildings (empty: whole sites)
    buildings: frozenset[str] = frozenset()
    #: where the request came from, for the audit log: ``web 127.0.0.1``, ``api 10.0.0.5``,
    #: ``cli`` (set by the web layer per request; empty when unknown)
    origin: str = ""

    def may_act_on(self, site: str) -> bool:
        """Whether the site is in this account's scope (an admin's scope is every site)."""
        return self.role is Role.ADMIN or site in self.sites

    def buildings_of(self, site: str) -> frozenset[str] | None:
        """The buildings of ``site`` this account is limited to; None: the whole site."""
        prefix = f"{site}/"
        found = frozenset(b[len(prefix) :] for b in self.buildings if b.startswith(prefix))
        return found or None

    def may_see_unit(self, site: str, building: str) -> bool:
        """Whether a unit of ``building`` at ``site`` (a lease of it, its risk score) is in
        this account's scope: its site, and its building when the site is limited to some."""
        if self.role is Role.ADMIN:
            return True
        if site not in self.sites:
            return False
        limited = self.buildings_of(site)
        return limited is None or building in limited

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


_SHARED_HASHER = BoundedHasher()


def _end_sessions(
    session: Session, username: str, now: datetime, keep_token: str | None = None
) -> int:
    """End every live session and API token of ``username`` but ``keep_token``'s; how many."""
    query = update(WebSession).where(WebSession.username == username, WebSession.ended_at.is_(None))
    if keep_token:
        query = query.where(WebSession.token_sha256 != token_sha256(keep_token))
    return int(session.execute(query.values(ended_at=now)).rowcount)  # type: ignore[attr-defined]


def _check_sites(sites: Iterable[str]) -> list[str]:
    out = sorted(set(sites))
    for site in out:
        if not _SITE.fullmatch(site):
            raise InvalidAccount(f"site id {site!r}: expected 1-64 of A-Z a-z 0-9 _ . : -")
    return out


def _check_buildings(role: Role, buildings: Iterable[str]) -> list[str]:
    out = sorted(set(buildings))
    for building in out:
        if not _BUILDING.fullmatch(building):
            raise InvalidAccount(
                f"building {building[:140]!r}: expected SITE/BUILDING, e.g. park-a/A "
                "(the site id, a slash, the building as in the site file; no spaces or commas)"
            )
    if out and role not in BUILDING_ROLES:
        raise InvalidAccount(
            f"the {role.value} role acts on whole sites; buildings are for "
            + ", ".join(sorted(r.value for r in BUILDING_ROLES))
        )
    if role is Role.MANAGER and not out:
        raise InvalidAccount("a manager account needs at least one building (SITE/BUILDING)")
    return out


def _check_staff(session: Session, staff_id: str) -> None:
    """InvalidAccount unless ``staff_id`` names a staff record (read by SQL: the staff table
    belongs to the lease tables, which this module does not import)."""
    found = (
        session.execute(text("SELECT id FROM staff WHERE id = :id"), {"id": staff_id[:64]}).first()
        if len(staff_id) <= 64
        else None
    )
    if found is None:
        raise InvalidAccount(f"staff id {staff_id[:64]!r}: no such staff record")


class AccountService:
    """Creates accounts, signs people in and finds the principal behind a token."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock = utc_now,
        session_ttl: timedelta = SESSION_TTL,
        hasher: BoundedHasher | None = None,
        throttle: ThrottlePolicy | None = None,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.session_ttl = session_ttl
        self.hasher = hasher or _SHARED_HASHER
        self.throttle = SignInThrottle(sessions, throttle)

    def create_account(
        self,
        username: str,
        password: str,
        role: Role | str,
        sites: Iterable[str] = (),
        *,
        by: str = "cli",
        keep_token: str | None = None,
        display_name: str | None = None,
        buildings: Iterable[str] = (),
        staff_id: str | None = None,
    ) -> bool:
        """Create a staff account, or reset the password, role, sites and buildings of an
        existing one; True when it was created.

        ``buildings`` (``SITE/BUILDING``) limit a manager, supervisor or legal account to some
        buildings of a site (a manager needs one); their sites join ``sites``.

        A reset ends every session and API token of the account except ``keep_token`` (the
        caller's own, when an admin resets their own password) and forgets its failed
        sign-ins; a disabled account stays disabled. ``by`` is written to the audit log.
        ``display_name`` (at most 100 characters) is the name printed for the person; None
        keeps the stored one, "" clears it. ``staff_id`` links the account to the person's
        staff record (``staff.id``; their reminders and tasks make their work queue): None
        keeps the stored link, "" clears it; an unknown staff id is refused.
        """
        if display_name is not None and len(display_name.strip()) > 100:
            raise InvalidAccount("display name: at most 100 characters")
        if not _USERNAME.fullmatch(username):
            raise InvalidAccount(f"user name {username!r}: expected 2-64 of a-z 0-9 _ . -")
        problem = password_problem(password, username)
        if problem is not None:
            raise InvalidAccount(problem)
        try:
            role = Role(role)
        except ValueError:
            raise InvalidAccount(
                f"role {role!r}: expected one of {', '.join(r.value for r in Role)}"
            ) from None
        building_list = _check_buildings(role, buildings)
        site_list = _check_sites([*sites, *(b.split("/", 1)[0] for b in building_list)])
        if role is not Role.ADMIN and not site_list:
            raise InvalidAccount(f"a {role.value} account needs at least one site")
        digest = self.hasher.hash(password)
        now = self.clock()
        subject = f"account:{username}"
        with self.sessions.begin() as session:
            if staff_id:
                _check_staff(session, staff_id)
            account = session.get(WebAccount, username)
            if account is None:
                session.add(
                    WebAccount(
                        username=username,
                        password_hash=digest,
                        role=role.value,
                        sites=site_list,
                        buildings=building_list,
                        created_at=now,
                        display_name=(display_name or "").strip() or None,
                        staff_id=staff_id or None,
                    )
                )
                audit.record(session, at=now, actor=by, action="account_created", subject=subject)
                return True
            account.password_hash, account.role, account.sites = digest, role.value, site_list
            account.buildings = building_list
            if display_name is not None:
                account.display_name = display_name.strip() or None
            if staff_id is not None:
                account.staff_id = staff_id or None
            ended = _end_sessions(session, username, now, keep_token)
            self.throttle.unlock(session, account=username)
            audit.record(
                session,
                at=now,
                actor=by,
                action="password_reset",
                subject=subject,
                detail=f"role {role.value}; sites {', '.join(site_list) or 'all'}"
                + (f"; buildings {', '.join(building_list)}" if building_list else "")
                + f"; {ended} sessions and tokens ended",
            )
            return False

    def change_password(
        self, username: str, current: str, new: str, keep_token: str | None = None
    ) -> int:
        """A signed-in staff member changes their own password, giving the current one; every
        other session and API token of the account ends (``keep_token`` is the one the
        change is made with); how many ended. WrongPassword (counted as a failed sign-in of
        the account), InvalidAccount for a new password that breaks the rule, TryLater or
        AccountLocked as for a sign-in."""
        now = self.clock()
        try:
            self.throttle.check(username, None, now)
        except Throttled as exc:
            raise TryLater(str(exc), exc.retry_after_s) from None
        except Locked as exc:
            raise AccountLocked(str(exc)) from None
        with self.sessions() as session:
            stored = self._account(session, username).password_hash
        try:
            matches = self.hasher.verify(stored, current)
        except HashingBusy as exc:
            raise TryLater(str(exc), exc.retry_after_s) from None
        if not matches:
            self.throttle.failed(username, None, now)
            raise WrongPassword("the current password is wrong")
        problem = password_problem(new, username)
        if problem is None and new == current:
            problem = "the new password is the current one"
        if problem is not None:
            raise InvalidAccount(problem)
        digest = self.hasher.hash(new)
        with self.sessions.begin() as session:
            account = self._account(session, username)
            if account.password_hash != stored:
                raise WrongPassword("the password was changed meanwhile; sign in again")
            account.password_hash = digest
            ended = _end_sessions(session, username, now, keep_token)
            audit.record(
                session,
                at=now,
                actor=username,
                action="password_changed",
                subject=f"account:{username}",
                detail=f"{ended} other sessions and tokens ended",
            )
        self.throttle.succeeded(username)
        return ended

    def _account(self, session: Session, username: str) -> WebAccount:
        account = session.get(WebAccount, username) if _USERNAME.fullmatch(username) else None
        if account is None:
            raise NoSuchAccount(f"no staff account {username!r}")
        return account

    def disable_account(self, username: str, *, by: str = "cli") -> int:
        """Disable an account and end its sessions and API tokens at once; how many ended.
        An account cannot disable itself (``by`` is the acting user name)."""
        if by == username:
            raise InvalidAccount("an account cannot disable itself; ask another admin")
        now = self.clock()
        with self.sessions.begin() as session:
            account = self._account(session, username)
            account.disabled_at = account.disabled_at or now
            ended = _end_sessions(session, username, now)
            audit.record(
                session,
                at=now,
                actor=by,
                action="account_disabled",
                subject=f"account:{username}",
                detail=f"{ended} sessions and tokens ended",
            )
        return ended

    def enable_account(self, username: str, *, by: str = "cli") -> None:
        """Enable a disabled account again (it signs in anew; old sessions stay ended)."""
        now = self.clock()
        with self.sessions.begin() as session:
            account = self._account(session, username)
            account.disabled_at = None
            audit.record(
                session, at=now, actor=by, action="account_enabled", subject=f"account:{username}"
            )

    def unlock(
        self, *, account: str | None = None, source: str | None = None, by: str = "cli"
    ) -> bool:
        """Forget the failed sign-ins of an account (it must exist) or of a source address,
        lifting a lock; whether there were any."""
        if (account is None) == (source is None):
            raise InvalidAccount("unlock: expected an account or a source address")
        if source is not None and not _SOURCE.fullmatch(source):
            raise InvalidAccount(f"source address {source[:100]!r}: expected an IP address")
        now = self.clock()
        with self.sessions.begin() as session:
            if account is not None:
                self._account(session, account)
            subject = f"account:{account}" if account is not None else f"source:{source}"
            had = self.throttle.unlock(session, account=account, source=source)
            audit.record(session, at=now, actor=by, action="sign_in_unlocked", subject=subject)
        return had

    def locks(self) -> list[Lock]:
        """Locked accounts and blocked source addresses in force now."""
        return self.throttle.locks(self.clock())

    def staff_links(self) -> dict[str, str]:
        """User name → the staff id its account is linked to (only linked accounts)."""
        with self.sessions() as session:
            rows = session.execute(
                select(WebAccount.username, WebAccount.staff_id).where(
                    WebAccount.staff_id.is_not(None)
                )
            ).all()
        return {name: staff for name, staff in rows}

    def list_accounts(self) -> list[tuple[str, Role, list[str], bool]]:
        """(user name, role, sites, active) of every account, by name."""
        with self.sessions() as session:
            rows = session.scalars(select(WebAccount).order_by(WebAccount.username)).all()
            return [(a.username, Role(a.role), list(a.sites), a.disabled_at is None) for a in rows]

    def buildings(self) -> dict[str, list[str]]:
        """User name → the ``SITE/BUILDING`` keys its account is limited to (when limited)."""
        with self.sessions() as session:
            rows = session.execute(select(WebAccount.username, WebAccount.buildings)).all()
        return {name: sorted(found) for name, found in rows if found}

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
        return _principal(account, "", SessionKind.API)

    def sign_in(
        self,
        username: str,
        password: str,
        kind: SessionKind = SessionKind.COOKIE,
        source: str | None = None,
    ) -> IssuedSession:
        """Check the password and open a session. SignInFailed for a wrong name or password
        or a disabled account; TryLater or AccountLocked when the throttle refuses the
        attempt before its password is checked (``source``: the client's address)."""
        now = self.clock()
        valid_name = _USERNAME.fullmatch(username) is not None
        try:
            self.throttle.check(username if valid_name else None, source, now)
        except Throttled as exc:
            raise TryLater(str(exc), exc.retry_after_s) from None
        except Locked as exc:
            raise AccountLocked(str(exc)) from None
        account = None
        if valid_name:
            with self.sessions() as session:
                account = session.get(WebAccount, username)
        stored = account.password_hash if account is not None else _DUMMY_HASH
        try:
            matches = valid_name and self.hasher.verify(stored, password)
        except HashingBusy as exc:
            raise TryLater(str(exc), exc.retry_after_s) from None
        if not matches or account is None or account.disabled_at is not None:
            self.throttle.failed(username if valid_name else None, source, now)
            raise SignInFailed("wrong user name or password")
        self.throttle.succeeded(username)
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        expires = now + self.session_ttl
        rehashed = self.hasher.hash(password) if self.hasher.needs_rehash(stored) else None
        with self.sessions.begin() as session:
            # a reset or a disable that landed while the password was checked wins
            fresh = session.get(WebAccount, username)
            if fresh is None or fresh.password_hash != stored or fresh.disabled_at is not None:
                raise SignInFailed("wrong user name or password")
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
            if rehashed is not None:
                fresh.password_hash = rehashed
        principal = _principal(account, csrf, kind)
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
        return _principal(account, web_session.csrf, kind)

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


def _principal(account: WebAccount, csrf: str, kind: SessionKind) -> Principal:
    return Principal(
        account.username,
        Role(account.role),
        frozenset(account.sites),
        csrf,
        kind,
        frozenset(account.buildings or ()),
    )


def display_names(session: Session, usernames: Iterable[str]) -> dict[str, str]:
    """Each user name → the name printed for the person: the account's display name, else
    the user name itself (also for a name with no account, e.g. ``cli`` or ``seed``)."""
    wanted = {u for u in usernames if u}
    found = dict(
        session.execute(
            select(WebAccount.username, WebAccount.display_name).where(
                WebAccount.username.in_(sorted(wanted))
            )
        ).all()
    )
    return {u: found.get(u) or u for u in wanted}
