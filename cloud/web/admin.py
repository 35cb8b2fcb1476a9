"""The admin's pages and JSON API: staff accounts, their roles and sites."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from cloud.staff.accounts import InvalidAccount, Role
from cloud.web.deps import WebServices, web_services
from cloud.web.rendering import language, render

router = APIRouter(tags=["admin"])
Web = Annotated[WebServices, Depends(web_services)]


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
