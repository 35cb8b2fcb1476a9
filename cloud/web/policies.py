"""Lease policies of sites and property types, and a lease's effective policy: the page
``/policies`` (the sets with their values, and a form with every field to create one,
:mod:`cloud.web.policy_form`) and the JSON API (decision
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

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from cloud.leases.errors import LeaseError, UnknownRecord
from cloud.leases.policies import ALL_TYPES, POLICY_FIELDS, PRESETS, Resolved
from cloud.leases.policy_sets import (
    SET_TYPES,
    NotAllowed,
    PolicyConflict,
    PolicyService,
    PolicySet,
    PolicySetIn,
)
from cloud.leases.terms import DEPOSIT_STEPS, LADDER_ACTIONS, MAX_RUNGS
from cloud.staff.accounts import POLICY_ROLES, Principal, Role
from cloud.web import policy_form as pform
from cloud.web.deps import WebServices, principal, web_services
from cloud.web.rendering import language, render, translations

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


PresetQ = Annotated[str | None, Query(max_length=32)]
TypeQ = Annotated[str | None, Query(max_length=16)]
#: ``?preset=current``: prefill the form with what the site's sets give today.
CURRENT = "current"


def _page(
    request: Request,
    svc: PolicyService,
    who: Principal,
    *,
    site: str | None,
    form: dict[str, str] | None = None,
    invalid: set[str] | frozenset[str] = frozenset(),
    errors: list[str] | None = None,
    note: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    # a site's sets are written by those with the whole site (not some of its buildings)
    writable = sorted(s for s in who.sites if who.buildings_of(s) is None)
    return render(
        request,
        "policies.html",
        {
            "sets": [pform.set_view(p) for p in svc.sets(who, site or None)],
            "site": site or "",
            "types": SET_TYPES,
            "presets": list(PRESETS),
            "current": CURRENT,
            "may_write": who.role in POLICY_ROLES and (who.role is Role.ADMIN or bool(writable)),
            "sites": writable,
            "form": form or {},
            "invalid": invalid,
            "steps": DEPOSIT_STEPS,
            "actions": LADDER_ACTIONS,
            "max_rungs": MAX_RUNGS,
            "errors": errors or [],
            "note": note,
            "done": request.query_params.get("done", "")[:20],
        },
        status_code=status_code,
    )


def _words(request: Request) -> dict[str, str]:
    return translations(language(request))


def _refusal_text(t: dict[str, str], exc: LeaseError, site: str, ptype: str, day: Any) -> str:
    kind = "other"
    if isinstance(exc, UnknownRecord):
        kind = "site"
    elif isinstance(exc, NotAllowed):
        kind = "role"
    elif isinstance(exc, PolicyConflict):
        kind = "conflict"
    return t[f"policy_err_{kind}"].format(
        site=site, type=t.get(f"property_type_{ptype}", ptype), day=day, detail=str(exc)[:300]
    )


@router.get("/policies", response_class=HTMLResponse)
def policies_page(
    request: Request,
    web: Web,
    who: Who,
    site: SiteQ = None,
    preset: PresetQ = None,
    for_site: SiteQ = None,
    for_type: TypeQ = None,
) -> HTMLResponse:
    """The policy sets of the caller's sites by site and type with their values, and
    (admins, supervisors) a form with every policy field to create one, prefilled from
    ``preset`` (a preset's name, or ``current``: what the sets of ``for_site`` give
    ``for_type`` today)."""
    svc = service(web)
    if who.role not in POLICY_ROLES:
        return _page(request, svc, who, site=site)
    t = _words(request)
    target = for_site or (sorted(who.sites)[0] if who.sites else "")
    ptype = for_type if for_type in SET_TYPES else ALL_TYPES
    base, policy, note, errors = "standard", PRESETS["standard"], "", []
    if preset == CURRENT and target:
        try:
            resolved, made_from = svc.in_force(who, target, ptype)
        except LeaseError as exc:
            errors.append(_refusal_text(t, exc, target, ptype, svc.today()))
        else:
            base, policy = made_from if made_from in PRESETS else "standard", resolved.policy
            note = t["policy_prefilled_current"].format(
                site=target,
                type=t[f"property_type_{ptype}"],
                day=svc.today().isoformat(),
                preset=t[f"policy_preset_{base}"],
            )
    elif preset in PRESETS:
        base, policy = preset, PRESETS[preset]
    form = {
        "site": target,
        "property_type": ptype,
        "effective_from": svc.today().isoformat(),
        "preset": base,
        **pform.prefill(policy),
    }
    status = 404 if errors else 200
    return _page(
        request, svc, who, site=site, form=form, errors=errors, note=note, status_code=status
    )


async def _form_items(request: Request) -> list[tuple[str, Any]]:
    return list((await request.form()).multi_items())


FormItems = Annotated[list[tuple[str, Any]], Depends(_form_items)]


@router.post("/policies", response_class=HTMLResponse)
def policy_form(request: Request, web: Web, who: Who, items: FormItems) -> Response:
    """Create a policy set from the form: its preset with the fields that differ from it
    (blank inputs take the preset's value). A bad field re-renders the form (422) naming it
    and what it expects; a post the page cannot have made is refused (400) unread."""
    svc = service(web)
    t = _words(request)
    try:
        values = pform.read(items)
    except pform.Refused as exc:
        text = t[f"policy_err_form_{exc.code}"].format(**exc.params)
        return _page(
            request, svc, who, site=None, form=_fresh(svc, who), errors=[text], status_code=400
        )
    posted = pform.parse(values)
    if posted.problems:
        errors = [pform.problem_text(t, p) for p in posted.problems]
        return _page(
            request,
            svc,
            who,
            site=None,
            form=values,
            invalid=posted.invalid,
            errors=errors,
            status_code=422,
        )
    assert posted.effective_from is not None
    try:
        made = svc.create(
            who,
            PolicySetIn(
                posted.site,
                posted.property_type,
                posted.effective_from,
                posted.preset,
                posted.changes,
            ),
        )
    except LeaseError as exc:
        text = _refusal_text(t, exc, posted.site, posted.property_type, posted.effective_from)
        status = _refusal(exc).status_code
        invalid = {"site"} if isinstance(exc, UnknownRecord) else {"effective_from"}
        return _page(
            request,
            svc,
            who,
            site=None,
            form=values,
            invalid=invalid,
            errors=[text],
            status_code=status,
        )
    return _back(request, done=str(made.id))


def _fresh(svc: PolicyService, who: Principal) -> dict[str, str]:
    return {
        "site": sorted(who.sites)[0] if who.sites else "",
        "property_type": ALL_TYPES,
        "effective_from": svc.today().isoformat(),
        "preset": "standard",
        **pform.prefill(PRESETS["standard"]),
    }


def _back(request: Request, **query: str) -> RedirectResponse:
    return RedirectResponse(f"/policies?{urlencode({'lang': language(request), **query})}", 303)
