"""Which policy a lease is run by on a day: the one resolver every job and page uses.

A lease's policy is resolved field by field (the fields of
:class:`cloud.leases.terms.LeasePolicy`), first found wins:

1. the lease's own overrides (``leases.policy_overrides``, single fields);
2. the lease's named policy (``leases.policy_id``, a whole :class:`LeasePolicy` of
   ``lease_policies``; kept from before site policies, every field);
3. the policy set of the lease's site for its unit's property type in force on the day
   (the latest ``effective_from`` on or before it);
4. the policy set of its site for ``all`` property types in force on the day;
5. the built-in default (:data:`cloud.leases.terms.DEFAULT_POLICY`).

Each field's source is kept (:class:`FieldSource`): ``lease``, ``named``, ``site/type since
DATE``, ``site since DATE`` or ``default``. Jobs resolve in bulk: :func:`load_book` reads
the site policies, the named policies and every lease's site, property type and overrides
in one query each, and a :class:`PolicyBook` resolves each distinct combination once.

Presets (:data:`PRESETS`) are whole policies by name, for creating a policy set.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.apportion.models import Unit
from cloud.leases.errors import LeaseError, UnknownRecord
from cloud.leases.models import Lease, LeasePolicyRow, SitePolicyRow, UnitProfile
from cloud.leases.terms import DEFAULT_POLICY, LadderRung, LeasePolicy

#: The property type a site-wide policy set applies to.
ALL_TYPES = "all"
#: The fields a policy set or an override may set, in the order they are shown.
POLICY_FIELDS: tuple[str, ...] = tuple(LeasePolicy.model_fields)
_DEFAULT_DOC: dict[str, Any] = DEFAULT_POLICY.model_dump(mode="json")

#: Named presets, each a whole policy (every field): ``standard`` is the built-in default
#: (reminders 90/60/30 days, ladder 1 reminder / 3 task / 7 call / 15 legal hand-over),
#: ``short`` for short leases (reminders 45/30/15, legal hand-over on day 14).
PRESETS: dict[str, LeasePolicy] = {
    "standard": DEFAULT_POLICY,
    "short": DEFAULT_POLICY.model_copy(
        update={
            "reminder_offsets_days": (45, 30, 15),
            "risk_lead_days": 15,
            "auto_renew_window_days": 15,
            "ladder": (
                LadderRung(days=1, action="reminder"),
                LadderRung(days=3, action="internal_task"),
                LadderRung(days=7, action="call_task"),
                LadderRung(days=14, action="legal_handover"),
            ),
        }
    ),
}


class PolicyError(LeaseError, ValueError):
    """A policy set or override not accepted; the message names the field."""


def _errors(exc: ValidationError, where: str) -> str:
    parts = []
    for err in exc.errors()[:10]:
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}{'.' + loc if loc else ''}: {msg}")
    return "; ".join(parts)


def validate_fields(values: Mapping[str, Any], where: str = "fields") -> dict[str, Any]:
    """Check a partial policy (some fields of :class:`LeasePolicy`) and return it in JSON
    form, as stored; PolicyError naming ``where`` and the field otherwise."""
    if not isinstance(values, Mapping):
        raise PolicyError(f"{where}: expected a mapping of policy fields")
    unknown = sorted(str(k) for k in values if k not in POLICY_FIELDS)
    if unknown:
        raise PolicyError(
            f"{where}: unknown field {', '.join(unknown)}; expected some of "
            f"{', '.join(POLICY_FIELDS)}"
        )
    try:
        whole = LeasePolicy.model_validate({**_DEFAULT_DOC, **values})
    except ValidationError as exc:
        raise PolicyError(_errors(exc, where)) from None
    doc = whole.model_dump(mode="json")
    return {k: doc[k] for k in POLICY_FIELDS if k in values}


def preset_fields(preset: str | None, values: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a new policy set stores: every field of ``preset`` (if named) with
    ``values`` over it; validated."""
    base: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise PolicyError(f"preset {preset!r}: expected one of {', '.join(PRESETS)}")
        base = PRESETS[preset].model_dump(mode="json")
    fields = validate_fields({**base, **values})
    if not fields:
        raise PolicyError("fields: give a preset or at least one policy field")
    return fields


@dataclass(frozen=True)
class FieldSource:
    """Where a resolved field's value comes from: ``source`` is ``lease``, ``named``,
    ``site/type``, ``site`` or ``default``; ``since`` the policy set's first day,
    ``policy`` the set's id (site sets) or the named policy's name."""

    field: str
    value: Any
    source: str
    since: date | None = None
    policy: str | None = None

    @property
    def label(self) -> str:
        """``site/type since 2026-01-01``, ``named P1``, ``lease``, ``default``."""
        if self.since is not None:
            return f"{self.source} since {self.since.isoformat()}"
        if self.source == "named":
            return f"named {self.policy}"
        return self.source


@dataclass(frozen=True)
class Resolved:
    """A lease's policy on a day and the source of each field."""

    policy: LeasePolicy
    sources: tuple[FieldSource, ...]


@dataclass(frozen=True)
class _Set:
    id: int
    since: date
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class _LeaseKey:
    site: str
    property_type: str
    named: str | None
    overrides: str | None  # canonical JSON of the overrides, or None


@dataclass
class PolicyBook:
    """Every policy needed on ``day``, loaded once; resolves leases by id.

    A lease not loaded (created after the book, or outside the ids it was loaded for) is
    read on first use."""

    session: Session
    day: date
    sets: Mapping[tuple[str, str], list[_Set]]
    named: Mapping[str, Mapping[str, Any]]
    leases: dict[str, _LeaseKey]
    _cache: dict[_LeaseKey, Resolved] = field(default_factory=dict)

    def policy(self, lease_id: str) -> LeasePolicy:
        """The policy of ``lease_id`` on the book's day."""
        return self.resolved(lease_id).policy

    def resolved(self, lease_id: str) -> Resolved:
        """The policy of ``lease_id`` on the book's day, with each field's source."""
        key = self.leases.get(lease_id)
        if key is None:
            self.leases.update(_lease_keys(self.session, [lease_id]))
            key = self.leases.get(lease_id)
            if key is None:
                raise UnknownRecord(f"lease {lease_id!r} is not registered")
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._resolve(key)
        return found

    def all(self) -> list[LeasePolicy]:
        """The distinct policies of the loaded leases, and the default."""
        seen = {id(DEFAULT_POLICY): DEFAULT_POLICY}
        for key in set(self.leases.values()):
            if key not in self._cache:
                self._cache[key] = self._resolve(key)
            seen.setdefault(id(self._cache[key].policy), self._cache[key].policy)
        return list(seen.values())

    def for_site(self, site: str, property_type: str) -> Resolved:
        """What the site's sets give a unit of ``property_type`` (or ``all``) on the book's
        day, with no lease's overrides or named policy: site and type > site > default."""
        return self._resolve(_LeaseKey(site, property_type, None, None))

    def _in_force(self, site: str, ptype: str) -> _Set | None:
        chosen = None
        for item in self.sets.get((site, ptype), ()):
            if item.since <= self.day:
                chosen = item
        return chosen

    def _resolve(self, key: _LeaseKey) -> Resolved:
        layers: list[tuple[Mapping[str, Any], str, date | None, str | None]] = []
        for ptype, label in ((ALL_TYPES, "site"), (key.property_type, "site/type")):
            if label == "site/type" and ptype == ALL_TYPES:  # for_site(site, "all")
                continue
            found = self._in_force(key.site, ptype)
            if found is not None:
                layers.append((found.fields, label, found.since, str(found.id)))
        if key.named is not None:
            if key.named not in self.named:
                raise UnknownRecord(f"policy {key.named!r} is not registered")
            layers.append((self.named[key.named], "named", None, key.named))
        if key.overrides is not None:
            layers.append((json.loads(key.overrides), "lease", None, None))
        doc = dict(_DEFAULT_DOC)
        origin: dict[str, tuple[str, date | None, str | None]] = dict.fromkeys(
            POLICY_FIELDS, ("default", None, None)
        )
        for fields, label, since, ident in layers:
            for name, value in fields.items():
                if name in doc:
                    doc[name] = value
                    origin[name] = (label, since, ident)
        policy = LeasePolicy.model_validate(doc)
        dumped = policy.model_dump(mode="json")
        return Resolved(
            policy,
            tuple(FieldSource(n, dumped[n], *origin[n]) for n in POLICY_FIELDS),
        )


def _canonical(overrides: Mapping[str, Any] | None) -> str | None:
    return json.dumps(overrides, sort_keys=True) if overrides else None


def _lease_keys(session: Session, lease_ids: Iterable[str] | None) -> dict[str, _LeaseKey]:
    query = (
        select(
            Lease.id,
            Unit.site_id,
            UnitProfile.property_type,
            Lease.policy_id,
            Lease.policy_overrides,
        )
        .join(Unit, Unit.id == Lease.unit_id)
        .outerjoin(UnitProfile, UnitProfile.unit_id == Lease.unit_id)
    )
    out: dict[str, _LeaseKey] = {}
    if lease_ids is None:
        chunks: list[list[str] | None] = [None]
    else:
        ids = sorted(set(lease_ids))
        chunks = [ids[i : i + 500] for i in range(0, len(ids), 500)]
    for chunk in chunks:
        q = query if chunk is None else query.where(Lease.id.in_(chunk))
        for lease_id, site, ptype, named, overrides in session.execute(q):
            out[lease_id] = _LeaseKey(site, ptype or "residential", named, _canonical(overrides))
    return out


def load_book(session: Session, day: date, lease_ids: Iterable[str] | None = None) -> PolicyBook:
    """The policies in force on ``day`` for every lease (or those of ``lease_ids``): one
    query for the site policy sets, one for the named policies, one for the leases."""
    sets: dict[tuple[str, str], list[_Set]] = defaultdict(list)
    for row in session.scalars(
        select(SitePolicyRow).order_by(SitePolicyRow.effective_from, SitePolicyRow.id)
    ):
        sets[(row.site_id, row.property_type)].append(_Set(row.id, row.effective_from, row.fields))
    named = {row.id: row.doc for row in session.scalars(select(LeasePolicyRow))}
    return PolicyBook(session, day, sets, named, _lease_keys(session, lease_ids))


def resolve(session: Session, lease_id: str, day: date) -> Resolved:
    """One lease's policy on ``day`` with each field's source (see the module doc)."""
    return load_book(session, day, [lease_id]).resolved(lease_id)


def site_resolved(session: Session, site: str, property_type: str, day: date) -> Resolved:
    """What ``site``'s policy sets give a unit of ``property_type`` on ``day`` (see
    :meth:`PolicyBook.for_site`)."""
    return load_book(session, day, []).for_site(site, property_type)


def policy_of(session: Session, lease_id: str, day: date) -> LeasePolicy:
    """One lease's policy on ``day``."""
    return resolve(session, lease_id, day).policy
