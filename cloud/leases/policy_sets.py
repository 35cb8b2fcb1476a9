"""Site policy sets and lease overrides, as staff change them (docs/leases.md, "Policies";
decision 0031).

Who: reading a site's policy sets and a lease's effective policy is for the lease roles
(``LEASE_ROLES``) within their sites (and buildings, for a lease); creating a policy set and
setting a lease's overrides is for ``POLICY_ROLES`` (admin; supervisors of the whole site —
a supervisor limited to some buildings sets overrides of their leases only). Out of scope is
"not found" (:class:`UnknownRecord`); a role that may not write gets :class:`NotAllowed`.

Every change is audited in its own transaction with :func:`cloud.staff.audit.record_change`
(``policy:ID`` for a set, ``lease:ID`` for overrides). A policy set is never changed: a
later-dated one supersedes it; (site, property type, first day) is unique
(:class:`PolicyConflict`). An import (:meth:`PolicyService.create_many`) checks every item
first and stores all or nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.apportion.case.loading import read_sections
from cloud.apportion.errors import CaseError
from cloud.leases.errors import LeaseError, UnknownRecord
from cloud.leases.models import PROPERTY_TYPES, Lease, SitePolicyRow
from cloud.leases.policies import (
    ALL_TYPES,
    POLICY_FIELDS,
    PolicyError,
    Resolved,
    preset_fields,
    resolve,
    site_resolved,
    validate_fields,
)
from cloud.leases.roster import ScopedDesk
from cloud.registry.models import Site
from cloud.staff.accounts import POLICY_ROLES, Principal
from cloud.staff.audit import record_change
from edge.wire import Clock, utc_now

#: Property types a policy set may be for: each of PROPERTY_TYPES, or all of them.
SET_TYPES: tuple[str, ...] = (ALL_TYPES, *PROPERTY_TYPES)
#: Most policy sets one import file may hold.
MAX_IMPORT_ITEMS = 200
#: Earliest and latest first day of a policy set.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)


class NotAllowed(LeaseError):
    """The caller's role may read policies but not change them."""


class PolicyConflict(LeaseError):
    """A policy set for the same site, property type and first day exists already."""


@dataclass(frozen=True)
class PolicySet:
    """A stored policy set: ``fields`` are the policy fields it sets (JSON form)."""

    id: int
    site_id: str
    property_type: str
    effective_from: date
    preset: str | None
    fields: dict[str, Any]
    created_by: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "site_id": self.site_id,
            "property_type": self.property_type,
            "effective_from": self.effective_from.isoformat(),
            "preset": self.preset,
            "fields": self.fields,
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class PolicySetIn:
    """A policy set to create: the site, ``property_type`` (one of :data:`SET_TYPES`), the
    first day it applies, an optional preset and field values over it."""

    site_id: str
    property_type: str
    effective_from: date
    preset: str | None = None
    fields: Mapping[str, Any] | None = None


_ITEM_KEYS = ("site", "property_type", "from", "preset", "fields")


def parse_policy_file(text: str, source: str = "policy file") -> list[PolicySetIn]:
    """The policy sets of a YAML (or JSON) policy file: a mapping with one section,
    ``policies``, a list of items ``{site, property_type (default all), from: YYYY-MM-DD,
    preset?, fields?}``. Read with the bounded loader of case and site files (size, depth,
    no aliases, no duplicate keys, numbers; exact decimals); PolicyError names the item.
    The fields are checked when the sets are created (:meth:`PolicyService.create_many`)."""
    try:
        raw = read_sections(text, source, kind="policy file")
    except CaseError as exc:
        raise PolicyError(str(exc)) from None
    extra = sorted(str(k) for k in raw if k != "policies")
    if extra or not isinstance(raw.get("policies"), list):
        raise PolicyError(
            f"{source}: expected one section, policies (a list of policy sets)"
            + (f"; unknown section {', '.join(extra)}" if extra else "")
        )
    items = []
    for n, item in enumerate(raw["policies"], 1):
        where = f"{source}: item {n}"
        if not isinstance(item, Mapping):
            raise PolicyError(f"{where}: expected a mapping with {', '.join(_ITEM_KEYS)}")
        unknown = sorted(str(k) for k in item if k not in _ITEM_KEYS)
        if unknown:
            raise PolicyError(
                f"{where}: unknown key {', '.join(unknown)}; expected {', '.join(_ITEM_KEYS)}"
            )
        site, ptype = item.get("site"), item.get("property_type", ALL_TYPES)
        first, preset, fields = item.get("from"), item.get("preset"), item.get("fields", {})
        if not isinstance(site, str) or not 1 <= len(site) <= 64:
            raise PolicyError(f"{where}.site: expected a site id of 1 to 64 characters")
        if not isinstance(ptype, str):
            raise PolicyError(f"{where}.property_type: expected one of {', '.join(SET_TYPES)}")
        if not isinstance(first, date) or isinstance(first, datetime):
            raise PolicyError(f"{where}.from: expected a date YYYY-MM-DD")
        if preset is not None and not isinstance(preset, str):
            raise PolicyError(f"{where}.preset: expected a preset name")
        if not isinstance(fields, Mapping):
            raise PolicyError(f"{where}.fields: expected a mapping of policy fields")
        items.append(PolicySetIn(site, ptype, first, preset, dict(fields)))
    return items


def _row(row: SitePolicyRow) -> PolicySet:
    return PolicySet(
        row.id,
        row.site_id,
        row.property_type,
        row.effective_from,
        row.preset,
        dict(row.fields),
        row.created_by,
    )


class PolicyService(ScopedDesk):
    """Policy sets of sites and overrides of leases, for staff (see the module doc)."""

    def __init__(self, sessions: sessionmaker[Session], *, clock: Clock = utc_now) -> None:
        super().__init__(sessions, clock)

    def sets(self, who: Principal, site: str | None = None) -> list[PolicySet]:
        """The policy sets of ``who``'s sites (or of ``site`` among them), by site, type
        and first day."""
        query = select(SitePolicyRow).order_by(
            SitePolicyRow.site_id, SitePolicyRow.property_type, SitePolicyRow.effective_from
        )
        scope = who.site_filter()
        if scope is not None:
            query = query.where(SitePolicyRow.site_id.in_(sorted(scope)))
        if site:
            query = query.where(SitePolicyRow.site_id == site)
        with self.sessions() as session:
            return [_row(r) for r in session.scalars(query)]

    def _check(self, session: Session, who: Principal, item: PolicySetIn, where: str) -> dict:
        if who.role not in POLICY_ROLES:
            raise NotAllowed(f"a {who.role} reads policies; admins and supervisors set them")
        if not who.may_act_on(item.site_id) or who.buildings_of(item.site_id) is not None:
            raise UnknownRecord(f"{where}: no site {item.site_id!r} in your sites")
        if session.get(Site, item.site_id) is None:
            raise UnknownRecord(f"{where}: site {item.site_id!r} is not registered")
        if item.property_type not in SET_TYPES:
            raise PolicyError(
                f"{where}.property_type: {item.property_type!r}, expected one of "
                f"{', '.join(SET_TYPES)}"
            )
        if not FIRST_DAY <= item.effective_from <= LAST_DAY:
            raise PolicyError(
                f"{where}.effective_from: {item.effective_from}, expected {FIRST_DAY} to {LAST_DAY}"
            )
        try:
            fields = preset_fields(item.preset, item.fields or {})
        except PolicyError as exc:
            raise PolicyError(f"{where}: {exc}") from None
        taken = session.scalar(
            select(SitePolicyRow.id).where(
                SitePolicyRow.site_id == item.site_id,
                SitePolicyRow.property_type == item.property_type,
                SitePolicyRow.effective_from == item.effective_from,
            )
        )
        if taken is not None:
            raise PolicyConflict(
                f"{where}: policy {taken} applies to {item.site_id}/{item.property_type} from "
                f"{item.effective_from} already; date a new one later"
            )
        return fields

    def create_many(
        self, who: Principal, items: Sequence[PolicySetIn], *, dry_run: bool = False
    ) -> list[PolicySet]:
        """Create every set of ``items`` in one transaction (nothing when one is refused;
        the error names ``item N``); ``dry_run``: check only, store nothing."""
        if len(items) > MAX_IMPORT_ITEMS:
            raise PolicyError(f"{len(items)} policy sets; at most {MAX_IMPORT_ITEMS} at once")
        seen: dict[tuple[str, str, date], int] = {}
        for n, item in enumerate(items, 1):
            key = (item.site_id, item.property_type, item.effective_from)
            if key in seen:
                raise PolicyConflict(
                    f"item {n}: {key[0]}/{key[1]} from {key[2]} is item {seen[key]} already"
                )
            seen[key] = n
        out = []
        with self.sessions.begin() as session:
            checked = [
                (item, self._check(session, who, item, f"item {n}"))
                for n, item in enumerate(items, 1)
            ]
            if dry_run:
                return [
                    PolicySet(
                        0,
                        i.site_id,
                        i.property_type,
                        i.effective_from,
                        i.preset,
                        f,
                        who.username,
                    )
                    for i, f in checked
                ]
            at = self.clock()
            for item, fields in checked:
                row = SitePolicyRow(
                    site_id=item.site_id,
                    property_type=item.property_type,
                    effective_from=item.effective_from,
                    preset=item.preset,
                    fields=fields,
                    created_at=at,
                    created_by=who.username,
                )
                session.add(row)
                session.flush()
                made = _row(row)
                record_change(
                    session,
                    at=at,
                    actor=who.username,
                    origin=who.origin,
                    action="policy_create",
                    subject=f"policy:{row.id}",
                    before=None,
                    after=made.as_dict(),
                    note=f"{item.site_id}/{item.property_type} from {item.effective_from}",
                )
                out.append(made)
        return out

    def create(self, who: Principal, item: PolicySetIn) -> PolicySet:
        """Create one policy set (see :meth:`create_many`; the error names ``policy``)."""
        try:
            return self.create_many(who, [item])[0]
        except (PolicyError, PolicyConflict, UnknownRecord) as exc:
            raise type(exc)(str(exc).replace("item 1", "policy", 1)) from None

    def in_force(
        self, who: Principal, site: str, property_type: str, day: date | None = None
    ) -> tuple[Resolved, str | None]:
        """What ``site``'s sets give a unit of ``property_type`` (or ``all``) on ``day``
        (default today), for a writer of the site's sets, and the preset of the most
        specific set in force (None: none, or made without one)."""
        if who.role not in POLICY_ROLES:
            raise NotAllowed(f"a {who.role} reads policies; admins and supervisors set them")
        if not who.may_act_on(site) or who.buildings_of(site) is not None:
            raise UnknownRecord(f"no site {site!r} in your sites")
        if property_type not in SET_TYPES:
            raise PolicyError(
                f"property_type: {property_type!r}, expected one of {', '.join(SET_TYPES)}"
            )
        with self.sessions() as session:
            if session.get(Site, site) is None:
                raise UnknownRecord(f"site {site!r} is not registered")
            resolved = site_resolved(session, site, property_type, day or self.today())
            by_layer = {s.source: s.policy for s in resolved.sources if s.policy is not None}
            chosen = by_layer.get("site/type") or by_layer.get("site")
            row = session.get(SitePolicyRow, int(chosen)) if chosen else None
            return resolved, row.preset if row is not None else None

    def lease_policy(self, who: Principal, lease_id: str, day: date | None = None) -> Resolved:
        """The policy of a lease in ``who``'s scope on ``day`` (default today), with the
        source of each field."""
        self.roster.lease(who, lease_id)
        with self.sessions() as session:
            return resolve(session, lease_id, day or self.today())

    def overrides(self, who: Principal, lease_id: str) -> dict[str, Any]:
        """The fields set for this lease alone."""
        self.roster.lease(who, lease_id)
        with self.sessions() as session:
            lease = session.get(Lease, lease_id)
            return dict(lease.policy_overrides or {}) if lease else {}

    def set_overrides(
        self,
        who: Principal,
        lease_id: str,
        *,
        values: Mapping[str, Any] | None = None,
        clear: Sequence[str] = (),
    ) -> Resolved:
        """Set the fields of ``values`` for this lease alone and clear those of ``clear``
        (they follow the site's policy again); audited. Returns the effective policy."""
        self.roster.lease(who, lease_id)
        if who.role not in POLICY_ROLES:
            raise NotAllowed(f"a {who.role} reads policies; admins and supervisors set them")
        values = dict(values or {})
        unknown = sorted(str(f) for f in clear if f not in POLICY_FIELDS)
        if unknown:
            raise PolicyError(f"clear: unknown field {', '.join(unknown)}")
        both = sorted(set(values) & set(clear))
        if both:
            raise PolicyError(f"clear: {', '.join(both)} is also set; do one or the other")
        checked = validate_fields(values, "set")
        with self.sessions.begin() as session:
            lease = session.get(Lease, lease_id)
            if lease is None:
                raise UnknownRecord(f"no lease {lease_id!r} in your sites and buildings")
            before = dict(lease.policy_overrides or {})
            after = {k: v for k, v in {**before, **checked}.items() if k not in clear}
            if after != before:
                lease.policy_overrides = after or None
                record_change(
                    session,
                    at=self.clock(),
                    actor=who.username,
                    origin=who.origin,
                    action="policy_overrides",
                    subject=f"lease:{lease_id}",
                    before={"policy_overrides": before},
                    after={"policy_overrides": after},
                )
            session.flush()
            return resolve(session, lease_id, self.today())
