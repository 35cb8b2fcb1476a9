"""Lease policies of sites and property types, and a lease's effective policy: the page
``/policies`` (list and a form to create a set from a preset) and the JSON API (decision
0031). Thin: :class:`cloud.leases.policy_sets.PolicyService` does the work.

Reading is for the lease roles in their sites (a lease's policy: its buildings too);
creating a set and a lease's overrides for admins and supervisors (``POLICY_ROLES``). Out
of scope is 404; a field not accepted is 422 naming it; a set that exists already for the
site, type and first day is 409.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from cloud.leases.errors import LeaseError, UnknownRecord
from cloud.leases.policies import POLICY_FIELDS, PRESETS, Resolved
from cloud.leases.policy_sets import (
    SET_TYPES,
    NotAllowed,
    PolicyConflict,
    PolicyService,
    PolicySet,
    PolicySetIn,
)
from cloud.staff.accounts import POLICY_ROLES, Principal
from cloud.web.deps import WebServices, principal, web_services
from cloud.web.rendering import language, render

router = APIRouter(tags=["policies"])
Web = Annotated[WebServices, Depends(web_services)]
Who = Annotated[Principal, Depends(principal)]
SiteQ = Annotated[str | None, Query(max_length=64)]
LeaseId = Annotated[str, Path(min_length=1, max_length=64)]
_TYPE = "^(" + "|".join(SET_TYPES) + ")$"
_PRESET = "^(" + "|".join(PRESETS) + ")$"


def service(web: WebServices) -> PolicyService:
    """The policy service on the web's registry and clock."""
    return PolicyService(web.leases.sessions, clock=web.leases.clock)


def _refusal(exc: LeaseError) -> HTTPException:
    if isinstance(exc, UnknownRecord):
        return HTTPException(404, str(exc))
    if isinstance(exc, NotAllowed):
        return HTTPException(403, str(exc))
    if isinstance(exc, PolicyConflict):
        return HTTPException(409, str(exc))
    return HTTPException(422, str(exc))


class PolicySetOut(BaseModel):
    """A policy set: the site, the property type (or ``all``), its first day, the preset
    it was made from, the policy fields it sets (days, hours, cents, rates as in
    LeasePolicy)."""

    id: int
    site_id: str
    property_type: str
    effective_from: date
    preset: str | None
    fields: dict[str, Any]
    created_by: str


class PolicyListOut(BaseModel):
    policies: list[PolicySetOut]


class PolicySetBody(BaseModel):
    """A new policy set: for ``site`` and ``property_type`` (or ``all``) from
    ``effective_from`` on; every field of ``preset`` (if given) with ``fields`` over it."""

    site: str = Field(min_length=1, max_length=64)
    property_type: str = Field("all", pattern=_TYPE)
    effective_from: date
    preset: str | None = Field(None, max_length=32)
    fields: dict[str, Any] = Field(default_factory=dict, max_length=len(POLICY_FIELDS))


class FieldOut(BaseModel):
    """An effective field: its value and where it comes from (``lease``, ``named``,
    ``site/type``, ``site``, ``default``; ``since`` the set's first day)."""

    field: str
    value: Any
    source: str
    since: date | None
    policy: str | None
    label: str


class LeasePolicyOut(BaseModel):
    lease: str
    day: date
    fields: list[FieldOut]


class OverridesBody(BaseModel):
    """Fields to set for this lease alone (``set``) and fields to clear (``clear``: they
    follow the site's policy again)."""

    set: dict[str, Any] = Field(default_factory=dict, max_length=len(POLICY_FIELDS))
    clear: list[str] = Field(default_factory=list, max_length=len(POLICY_FIELDS))


def _set_out(p: PolicySet) -> PolicySetOut:
    return PolicySetOut(**p.as_dict())


def _lease_out(lease_id: str, day: date, resolved: Resolved) -> LeasePolicyOut:
    return LeasePolicyOut(
        lease=lease_id,
        day=day,
        fields=[
            FieldOut(
                field=s.field,
                value=s.value,
                source=s.source,
                since=s.since,
                policy=s.policy,
                label=s.label,
            )
            for s in resolved.sources
        ],
    )


@router.get("/api/v1/policies", response_model=PolicyListOut)
def api_policies(web: Web, who: Who, site: SiteQ = None) -> PolicyListOut:
    """The policy sets of the caller's sites (or of ``site``), by site, type and first day."""
    return PolicyListOut(policies=[_set_out(p) for p in service(web).sets(who, site or None)])


@router.post(
    "/api/v1/policies",
    response_model=PolicySetOut,
    status_code=201,
    responses={
        404: {"description": "no such site in the caller's sites"},
        409: {"description": "a set for this site, type and first day exists"},
        422: {"description": "a field, the preset or the type not accepted"},
    },
)
def api_policy_create(web: Web, who: Who, body: PolicySetBody) -> PolicySetOut:
    """Create a policy set of a site (admins; supervisors of the whole site); audited."""
    try:
        made = service(web).create(
            who,
            PolicySetIn(
                body.site, body.property_type, body.effective_from, body.preset, body.fields
            ),
        )
    except LeaseError as exc:
        raise _refusal(exc) from None
    return _set_out(made)


@router.get(
    "/api/v1/leases/{lease_id}/policy",
    response_model=LeasePolicyOut,
    responses={404: {"description": "no such lease in the caller's sites and buildings"}},
)
def api_lease_policy(
    web: Web, who: Who, lease_id: LeaseId, day: Annotated[date | None, Query()] = None
) -> LeasePolicyOut:
    """A lease's effective policy on ``day`` (default today) with each field's source."""
    svc = service(web)
    on = day or svc.today()
    try:
        resolved = svc.lease_policy(who, lease_id, on)
    except LeaseError as exc:
        raise _refusal(exc) from None
    return _lease_out(lease_id, on, resolved)


@router.put(
    "/api/v1/leases/{lease_id}/policy-overrides",
    response_model=LeasePolicyOut,
    responses={
        404: {"description": "no such lease in the caller's sites and buildings"},
        422: {"description": "a field not accepted"},
    },
)
def api_lease_policy_overrides(
    web: Web, who: Who, lease_id: LeaseId, body: OverridesBody
) -> LeasePolicyOut:
    """Set or clear single policy fields of one lease (admins, supervisors); audited.
    Answers the lease's effective policy today."""
    svc = service(web)
    try:
        resolved = svc.set_overrides(who, lease_id, values=body.set, clear=body.clear)
    except LeaseError as exc:
        raise _refusal(exc) from None
    return _lease_out(lease_id, svc.today(), resolved)


@router.get("/policies", response_class=HTMLResponse)
def policies_page(request: Request, web: Web, who: Who, site: SiteQ = None) -> HTMLResponse:
    """The policy sets of the caller's sites by site and type, and (admins, supervisors)
    a form to create one from a preset."""
    svc = service(web)
    return render(
        request,
        "policies.html",
        {
            "sets": svc.sets(who, site or None),
            "site": site or "",
            "types": SET_TYPES,
            "presets": list(PRESETS),
            "field_count": len(POLICY_FIELDS),
            "may_write": who.role in POLICY_ROLES,
            "sites": sorted(who.sites),
            "today": svc.today().isoformat(),
            "error": request.query_params.get("error", "")[:300],
            "done": request.query_params.get("done", "")[:20],
        },
    )


def _back(request: Request, **query: str) -> RedirectResponse:
    return RedirectResponse(f"/policies?{urlencode({'lang': language(request), **query})}", 303)


@router.post("/policies", response_class=HTMLResponse)
def policy_form(
    request: Request,
    web: Web,
    who: Who,
    site: Annotated[str, Form(max_length=64)] = "",
    property_type: Annotated[str, Form(max_length=16)] = "all",
    effective_from: Annotated[str, Form(max_length=10)] = "",
    preset: Annotated[str, Form(max_length=32)] = "standard",
    grace_days: Annotated[str, Form(max_length=3)] = "",
    legal_day: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    """Create a policy set from a preset, optionally with another grace period [days] or
    another day of the legal hand-over [days after the due date]."""
    try:
        first = date.fromisoformat(effective_from)
    except ValueError:
        return _back(request, error=f"effective_from {effective_from!r}: expected YYYY-MM-DD")
    fields: dict[str, Any] = {}
    chosen = PRESETS.get(preset)
    if chosen is None:
        return _back(request, error=f"preset {preset!r}: expected one of {', '.join(PRESETS)}")
    if grace_days.strip():
        if not grace_days.strip().isdigit():
            return _back(request, error="grace_days: expected a whole number of days")
        late = chosen.late_fee.model_dump(mode="json")
        fields["late_fee"] = {**late, "grace_days": int(grace_days)}
    if legal_day.strip():
        if not legal_day.strip().isdigit():
            return _back(request, error="legal_day: expected a whole number of days")
        rungs = [r.model_dump() for r in chosen.ladder if r.action != "legal_handover"]
        fields["ladder"] = [*rungs, {"days": int(legal_day), "action": "legal_handover"}]
    try:
        made = service(web).create(who, PolicySetIn(site, property_type, first, preset, fields))
    except LeaseError as exc:
        return _back(request, error=str(exc))
    return _back(request, done=str(made.id))
