"""The admin's pages and JSON API: staff accounts, their roles, sites and buildings, disabling and
enabling them, and unlocking sign-ins locked by the throttle (decision 0017); replacements
of gateways' hardware awaiting approval (decision 0018)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from cloud.gateways.replacement import ReplacementError, ReplacementService, ReplacementView
from cloud.staff.accounts import AccountService, InvalidAccount, NoSuchAccount, Principal, Role
from cloud.web.authz import SESSION_COOKIE, bearer_token
from cloud.web.deps import WebServices, principal, web_services
from cloud.web.rendering import language, render

router = APIRouter(tags=["admin"])
Web = Annotated[WebServices, Depends(web_services)]
Who = Annotated[Principal, Depends(principal)]
ReplacementId = Annotated[int, Path(ge=1, le=2**31 - 1)]
#: what an account action did, as the page's notice names it
_DONE = {"disable": "disabled", "enable": "enabled", "unlock": "unlocked"}


class AccountOut(BaseModel):
    username: str
    role: str
    sites: list[str]
    active: bool
    locked: bool = Field(description="locked after too many failed sign-ins")
    buildings: list[str] = Field(
        default_factory=list,
        description="SITE/BUILDING the account is limited to within its sites (empty: whole)",
    )
    staff_id: str | None = Field(
        default=None, description="the linked staff record (whose work queue it is)"
    )


class AccountIn(BaseModel):
    username: str = Field(min_length=2, max_length=64)
    password: str = Field(min_length=10, max_length=200)
    role: Role
    sites: list[str] = Field(default_factory=list, max_length=500)
    buildings: list[str] = Field(
        default_factory=list,
        max_length=500,
        description="SITE/BUILDING, e.g. park-a/A: a manager needs one; their sites are added",
    )
    staff_id: str | None = Field(
        default=None,
        max_length=64,
        description="link to this staff record (its reminders and tasks are the account's work "
        "queue); None keeps the stored link, an empty string clears it",
    )


class LockOut(BaseModel):
    """A locked account (until an admin unlocks it) or a blocked source address."""

    kind: str = Field(description="account or source")
    subject: str
    failures: int
    locked_at: datetime
    until: datetime | None = Field(description="None: until an admin unlocks it")


def _accounts(web: WebServices) -> list[AccountOut]:
    locked = {lock.subject for lock in web.accounts.locks() if lock.kind == "account"}
    buildings = web.accounts.buildings()
    links = web.accounts.staff_links()
    return [
        AccountOut(
            username=u,
            role=r.value,
            sites=s,
            active=a,
            locked=u in locked,
            buildings=buildings.get(u, []),
            staff_id=links.get(u),
        )
        for u, r, s, a in web.accounts.list_accounts()
    ]


def _one(web: WebServices, username: str) -> AccountOut:
    found = [a for a in _accounts(web) if a.username == username]
    if not found:
        raise HTTPException(404, f"no staff account {username!r}")
    return found[0]


def _act(accounts: AccountService, action: str, username: str, by: str) -> None:
    if action == "disable":
        accounts.disable_account(username, by=by)
    elif action == "enable":
        accounts.enable_account(username, by=by)
    else:
        accounts.unlock(account=username, by=by)


def _back(request: Request, **query: str) -> RedirectResponse:
    return RedirectResponse(
        f"/admin/accounts?{urlencode({'lang': language(request), **query})}", 303
    )


@router.get("/admin/accounts", response_class=HTMLResponse)
def accounts_page(request: Request, web: Web) -> HTMLResponse:
    """Staff accounts with their state and actions, locked sign-ins, and the form for a new
    account (or a password reset)."""
    did = request.query_params.get("did", "")
    return render(
        request,
        "admin_accounts.html",
        {
            "accounts": _accounts(web),
            "locks": web.accounts.locks(),
            "roles": [r.value for r in Role],
            "error": request.query_params.get("error", ""),
            "done": request.query_params.get("done", ""),
            "did": did if did in _DONE.values() else "",
        },
    )


@router.post("/admin/accounts", response_class=HTMLResponse)
def account_form(
    request: Request,
    web: Web,
    who: Who,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form(max_length=16)] = "",
    sites: Annotated[str, Form(max_length=4000)] = "",
    buildings: Annotated[str, Form(max_length=4000)] = "",
    staff_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Create an account (or reset its password, role, sites and buildings, ending its
    sessions)."""
    try:
        web.accounts.create_account(
            username,
            password,
            role,
            [s for s in sites.replace(",", " ").split() if s],
            by=who.username,
            keep_token=request.cookies.get(SESSION_COOKIE),
            buildings=[b for b in buildings.replace(",", " ").split() if b],
            staff_id=staff_id.strip() or None,
        )
    except InvalidAccount as exc:
        return _back(request, error=str(exc))
    return _back(request, done=username)


def _account_action_form(
    request: Request, web: WebServices, who: Principal, action: str, username: str
) -> Response:
    try:
        _act(web.accounts, action, username, who.username)
    except InvalidAccount as exc:
        return _back(request, error=str(exc))
    return _back(request, done=username, did=_DONE[action])


@router.post("/admin/accounts/{username}/disable", response_class=HTMLResponse)
def account_disable_form(request: Request, web: Web, who: Who, username: str) -> Response:
    """Disable the account: its sessions and API tokens end at once."""
    return _account_action_form(request, web, who, "disable", username)


@router.post("/admin/accounts/{username}/enable", response_class=HTMLResponse)
def account_enable_form(request: Request, web: Web, who: Who, username: str) -> Response:
    """Enable the account again."""
    return _account_action_form(request, web, who, "enable", username)


@router.post("/admin/accounts/{username}/unlock", response_class=HTMLResponse)
def account_unlock_form(request: Request, web: Web, who: Who, username: str) -> Response:
    """Lift the account's sign-in lock and forget its failed sign-ins."""
    return _account_action_form(request, web, who, "unlock", username)


@router.post("/admin/sign-in-locks/source", response_class=HTMLResponse)
def source_unlock_form(
    request: Request, web: Web, who: Who, source: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    """Lift the block of a source address."""
    try:
        web.accounts.unlock(source=source, by=who.username)
    except InvalidAccount as exc:
        return _back(request, error=str(exc))
    return _back(request, done=source, did="unlocked")


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
def api_account_create(body: AccountIn, request: Request, web: Web, who: Who) -> AccountOut:
    """Create an account (or reset its password, role and sites, ending its sessions and
    tokens but the caller's own)."""
    try:
        web.accounts.create_account(
            body.username,
            body.password,
            body.role,
            body.sites,
            by=who.username,
            keep_token=bearer_token(request),
            buildings=body.buildings,
            staff_id=body.staff_id,
        )
    except InvalidAccount as exc:
        raise HTTPException(400, str(exc)) from None
    return _one(web, body.username)


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
    return ReplacementOut.model_validate(view, from_attributes=True)


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


def _api_account_action(web: WebServices, who: Principal, action: str, username: str) -> AccountOut:
    try:
        _act(web.accounts, action, username, who.username)
    except NoSuchAccount as exc:
        raise HTTPException(404, str(exc)) from None
    except InvalidAccount as exc:
        raise HTTPException(400, str(exc)) from None
    return _one(web, username)


_ACTION_ERRORS = {
    400: {"description": "not allowed (an account cannot disable itself)"},
    404: {"description": "no such account"},
}


@router.post(
    "/api/v1/accounts/{username}/disable", response_model=AccountOut, responses=_ACTION_ERRORS
)
def api_account_disable(username: str, web: Web, who: Who) -> AccountOut:
    """Disable an account: its sessions and API tokens end at once."""
    return _api_account_action(web, who, "disable", username)


@router.post(
    "/api/v1/accounts/{username}/enable", response_model=AccountOut, responses=_ACTION_ERRORS
)
def api_account_enable(username: str, web: Web, who: Who) -> AccountOut:
    """Enable a disabled account again."""
    return _api_account_action(web, who, "enable", username)


@router.post(
    "/api/v1/accounts/{username}/unlock", response_model=AccountOut, responses=_ACTION_ERRORS
)
def api_account_unlock(username: str, web: Web, who: Who) -> AccountOut:
    """Lift an account's sign-in lock and forget its failed sign-ins."""
    return _api_account_action(web, who, "unlock", username)


@router.get("/api/v1/sign-in-locks", response_model=list[LockOut])
def api_sign_in_locks(web: Web) -> list[LockOut]:
    """Locked accounts and blocked source addresses in force now."""
    return [LockOut(**vars(lock)) for lock in web.accounts.locks()]


@router.delete("/api/v1/sign-in-locks/source/{source}", status_code=204)
def api_source_unlock(source: str, web: Web, who: Who) -> Response:
    """Lift the block of a source address (nothing happens when it has none)."""
    try:
        web.accounts.unlock(source=source, by=who.username)
    except InvalidAccount as exc:
        raise HTTPException(400, str(exc)) from None
    return Response(status_code=204)
