"""Staff tables: web accounts, their sessions and API tokens, and the audit log of what people
did on the pages.

Changed only through Alembic migrations (revisions 0005, 0013, 0016, 0019 and 0025). Secrets are
never stored: a session or API token is kept as the SHA-256 of its text, a password as its
Argon2id hash. Instants are UTC.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from cloud.registry.base import Base


class WebAccount(Base):
    """A staff account: ``role`` is ``admin``, ``finance``, ``engineer``, ``manager``,
    ``supervisor`` or ``legal``; ``sites`` the site ids it may act on (an admin acts on every
    site); ``buildings`` (``SITE/BUILDING``, revision 0019) the buildings it is limited to
    within those sites (empty: whole sites)."""

    __tablename__ = "web_accounts"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    sites: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: the name printed for the person (e.g. on statements they reviewed); None: the user name
    display_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    buildings: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: the person's staff record (``staff.id``, revision 0025): whose reminders and tasks are
    #: theirs in the work queue; None: the staff record of the same id as the user name, if any
    staff_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class WebSession(Base):
    """A signed-in session (browser cookie) or API token, stored as the SHA-256 of its
    text; ``csrf`` is the double-submit token of browser forms."""

    __tablename__ = "web_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("web_accounts.username"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """Who did what to which subject, when (staff actions and tenants' answers)."""

    __tablename__ = "web_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(200), index=True)
    detail: Mapped[str] = mapped_column(Text, default="")


class SignInCounter(Base):
    """Failed sign-ins of one account (``key`` ``account:<name>``) or one source address
    (``source:<address>``) since ``first_failure_at``; ``locked_at`` set when the account
    was locked (until an admin unlocks it) or the source blocked (for a while). Revision 0013.
    """

    __tablename__ = "web_signin_throttle"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_failure_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_failure_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    locked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
