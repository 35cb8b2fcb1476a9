"""Display names of tenants, for pages and exports that show a statement's party (the
tenant's id, ``ACME``) by the name people know it by."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, sessionmaker

from cloud.leases.models import Tenant


def tenant_names(sessions: sessionmaker[Session], parties: Iterable[str]) -> dict[str, str]:
    """``party`` → the tenant's display name, for the parties that have a tenant record
    with a name (the others are left out: show their id)."""
    wanted = sorted({p for p in parties if p})
    if not wanted:
        return {}
    with sessions() as session:
        rows = session.execute(select(Tenant.id, Tenant.name).where(Tenant.id.in_(wanted))).all()
    return {tid: name for tid, name in rows if name}


def tenants_named(text: str) -> Select[tuple[str]]:
    """A query of the ids of the tenants whose name contains ``text`` (case ignored, ``%``
    and ``_`` plain characters): for a search to use as a subquery."""
    return select(Tenant.id).where(Tenant.name.icontains(text, autoescape=True))
