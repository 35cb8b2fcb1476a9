"""The admin's pages and JSON API: staff accounts, their roles and sites; replacements of
gateways' hardware awaiting approval."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from cloud.gateways.replacement import ReplacementError, ReplacementService, ReplacementView
from cloud.staff.accounts import InvalidAccount, Principal, Role
from cloud.web.deps import WebServices, principal, web_services
from cloud.web.rendering import language, render

router = APIRouter(tags=["admin"])
Web = Annotated[WebServices, Depends(web_services)]
Who = Annotated[Principal, Depends(principal)]
ReplacementId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class AccountOut(BaseModel):
    username: str
    role: str
    sites: list[str]
    active: bool


class AccountIn(BaseModel):
    username: str = Field(min_length=2, max_length=64)
    password: str = Field(min_length=10, max_length=200)
    role: Role
    sites: list[str] = Field(default_factory=list, max_length=500)


def _accounts(web: WebServices) -> list[AccountOut]:
    return [
        AccountOut(username=u, role=r.value, sites=s, active=a)
        for u, r, s, a in web.accounts.list_accounts()
    ]


@router.get("/admin/accounts", response_class=HTMLResponse)
def accounts_page(request: Request, web: Web) -> HTMLResponse:
    """Staff accounts, and the form for a new one."""
    return render(
        request,
        "admin_accounts.html",
        {
            "accounts": _accounts(web),
            "roles": [r.value for r in Role],
            "error": request.query_params.get("error", ""),
            "done": request.query_params.get("done", ""),
        },
    )


@router.post("/admin/accounts", response_class=HTMLResponse)
def account_form(
    request: Request,
    web: Web,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form(max_length=16)] = "",
    sites: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """Create an account (or reset its password, role and sites)."""
    query = {"lang": language(request)}
    try:
        web.accounts.create_account(
            username, password, role, [s for s in sites.replace(",", " ").split() if s]
        )
        query["done"] = username
    except InvalidAccount as exc:
        query["error"] = str(exc)
    return RedirectResponse(f"/admin/accounts?{urlencode(query)}", 303)


@router.get("/api/v1/accounts", response_model=list[AccountOut])
def api_accounts(web: Web) -> list[AccountOut]:
    """Every staff account."""
    return _accounts(web)


@router.post(
    "/api/v1/accounts",
    response_model=AccountOut,
    status_code=201,
    responses={400: {"description": "the account breaks a rule"}},
)
def api_account_create(body: AccountIn, web: Web) -> AccountOut:
    """Create an account (or reset its password, role and sites)."""
    try:
        web.accounts.create_account(body.username, body.password, body.role, body.sites)
    except InvalidAccount as exc:
        raise HTTPException(400, str(exc)) from None
    return next(a for a in _accounts(web) if a.username == body.username)


# ----------------------------------------------------------------------------- replacements


class ReplacementOut(BaseModel):
    """New hardware for a provisioned gateway and what became of it."""

    id: int
    site: str
    gateway: str
    kid: str
    requested_by: str | None
    requested_at: datetime
    status: str
    decided_by: str | None
    decided_at: datetime | None
    revoked: list[str] = Field(description="keys the approval revoked")


class DecisionIn(BaseModel):
    decision: Literal["approve", "reject"]


def _out(view: ReplacementView) -> ReplacementOut:
    return ReplacementOut(
        id=view.id,
        site=view.site,
        gateway=view.gateway,
        kid=view.kid,
        requested_by=view.requested_by,
        requested_at=view.requested_at,
        status=view.status,
        decided_by=view.decided_by,
        decided_at=view.decided_at,
        revoked=list(view.revoked),
    )


def _decide(
    service: ReplacementService, replacement_id: int, decision: str, who: Principal
) -> ReplacementView:
    if decision == "approve":
        return service.approve(replacement_id, who.username)
    return service.reject(replacement_id, who.username)


@router.get("/admin/replacements", response_class=HTMLResponse)
def replacements_page(request: Request, web: Web) -> HTMLResponse:
    """Replacements of gateways' hardware awaiting approval."""
    return render(
        request,
        "admin_replacements.html",
        {
            "replacements": web.replacements.listing(),
            "error": request.query_params.get("error", ""),
            "done": request.query_params.get("done", ""),
        },
    )


@router.post("/admin/replacements/{replacement_id}", response_class=HTMLResponse)
def replacement_form(
    request: Request,
    replacement_id: ReplacementId,
    web: Web,
    who: Who,
    decision: Annotated[Literal["approve", "reject"], Form()] = "approve",
) -> Response:
    """Approve (the old key is revoked) or reject a replacement; back to the list."""
    query = {"lang": language(request)}
    try:
        view = _decide(web.replacements, replacement_id, decision, who)
        query["done"] = f"{view.gateway} {view.status}"
    except ReplacementError as exc:
        query["error"] = str(exc)
    return RedirectResponse(f"/admin/replacements?{urlencode(query)}", 303)


@router.get("/api/v1/replacements", response_model=list[ReplacementOut])
def api_replacements(web: Web, pending: bool = True) -> list[ReplacementOut]:
    """Replacements of gateways' hardware, newest first (``pending=false``: all of them)."""
    return [_out(v) for v in web.replacements.listing(pending_only=pending)]


@router.post(
    "/api/v1/replacements/{replacement_id}",
    response_model=ReplacementOut,
    responses={409: {"description": "no such pending replacement"}},
)
def api_replacement_decide(
    replacement_id: ReplacementId, body: DecisionIn, web: Web, who: Who
) -> ReplacementOut:
    """Approve (registers the new key, revokes the gateway's others) or reject."""
    try:
        return _out(_decide(web.replacements, replacement_id, body.decision, who))
    except ReplacementError as exc:
        raise HTTPException(409, str(exc)) from None
