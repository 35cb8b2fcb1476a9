"""Display names of the parties of statements: a statement's party is the tenant's id
(``ACME``); people read the tenant's name from the leases' tenant records."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.leases.models import Tenant

#: A tenant's answer in the audit log is written by ``tenant:<party>``.
TENANT_ACTOR = "tenant:"


def tenant_names(sessions: sessionmaker[Session], parties: Iterable[str]) -> dict[str, str]:
    """``party`` → the tenant's display name, for the parties that have a tenant record
    with a name (the others are left out: show their id)."""
    wanted = sorted({p for p in parties if p})
    if not wanted:
        return {}
    with sessions() as session:
        rows = session.execute(select(Tenant.id, Tenant.name).where(Tenant.id.in_(wanted))).all()
    return {tid: name for tid, name in rows if name}
