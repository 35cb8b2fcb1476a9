"""Signing staff in and out: the sign-in page (browser session cookie) and the API's bearer
tokens, the home page, ``/api/v1/me``, and changing one's own password (page and API; every
other session and token of the account ends).

The sign-in form itself is protected by a double-submit token: the page sets a random
``mf_login_csrf`` cookie and puts the same value in the form; the post must carry both.
Failed sign-ins are throttled per account and per client address (decision 0017): an attempt
refused before its password is checked answers 429 with ``Retry-After`` (seconds), a locked
account 403; so does a sign-in that finds too many password checks already running.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from cloud.staff.accounts import (
    AccountLocked,
    AccountService,
    InvalidAccount,
    Principal,
    Role,
    SessionKind,
    SignInFailed,
    TryLater,
    WrongPassword,
)
from cloud.web.authz import SESSION_COOKIE, bearer_token
from cloud.web.deps import WebServices, principal, web_services
from cloud.web.overview import attention
from cloud.web.rendering import render

router = APIRouter(tags=["accounts"])
Web = Annotated[WebServices, Depends(web_services)]
Who = Annotated[Principal, Depends(principal)]
LOGIN_CSRF_COOKIE = "mf_login_csrf"
#: where each role lands after signing in
_LANDING = {
    Role.ADMIN: "/",
    Role.FINANCE: "/finance/runs",
    Role.ENGINEER: "/engineer/gateways",
    Role.MANAGER: "/leases",
    Role.SUPERVISOR: "/leases",
    Role.LEGAL: "/leases",
}


def _secure(request: Request, web: WebServices) -> bool:
    return web.cookie_secure if web.cookie_secure is not None else request.url.scheme == "https"


def _source(request: Request) -> str | None:
    """The client's address as the server sees it (behind a trusted proxy: the forwarded one)."""
    return request.client.host if request.client is not None else None


def _safe_next(target: str) -> str:
    """Only same-site paths are followed after signing in (no open redirect)."""
    return target if target.startswith("/") and not target.startswith("//") else ""


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, web: Web, next: str = "") -> HTMLResponse:
    """The sign-in form."""
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", {"csrf": token, "next": _safe_next(next)})
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=_secure(request, web),
        path="/login",
    )
    return response


@router.post("/login", response_class=HTMLResponse)
def login_form(
    request: Request,
    web: Web,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    """Check the password, open a browser session, go on."""
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not csrf or not cookie or not hmac.compare_digest(csrf, cookie):
        return render(
            request, "login.html", {"error": "stale", "csrf": "", "next": next}, status_code=403
        )
    again = {"csrf": cookie, "next": _safe_next(next)}
    try:
        issued = web.accounts.sign_in(username, password, SessionKind.COOKIE, _source(request))
    except SignInFailed:
        return render(request, "login.html", {"error": "failed", **again}, status_code=401)
    except AccountLocked:
        return render(request, "login.html", {"error": "locked", **again}, status_code=403)
    except TryLater as exc:
        response = render(
            request,
            "login.html",
            {"error": "wait", "retry_after": exc.retry_after_s, **again},
            status_code=429,
        )
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    target = _safe_next(next) or _LANDING[issued.principal.role]
    response = RedirectResponse(target, 303)
    response.set_cookie(
        SESSION_COOKIE,
        issued.token,
        httponly=True,
        samesite="lax",
        secure=_secure(request, web),
        max_age=int(web.accounts.session_ttl.total_seconds()),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout_form(request: Request, web: Web, _who: Who) -> RedirectResponse:
    """End the browser session."""
    web.accounts.sign_out(request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", 303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request, web: Web, who: Who) -> HTMLResponse:
    """The staff start page: what needs the person's attention, and links to what the role
    may use."""
    return render(request, "home.html", {"who": who, "attention": attention(web, who)})


class SignInIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


class TokenOut(BaseModel):
    """A bearer token for ``Authorization: Bearer …``; shown once."""

    token: str
    expires_at: datetime
    username: str
    role: str
    sites: list[str]


class MeOut(BaseModel):
    username: str
    role: str
    sites: list[str]
    via: str
    buildings: list[str] = Field(
        default_factory=list, description="SITE/BUILDING the account is limited to (if any)"
    )


@router.post(
    "/api/v1/session",
    response_model=TokenOut,
    responses={
        401: {"description": "wrong user name or password"},
        403: {"description": "the account is locked after too many failed sign-ins"},
        429: {"description": "too many failed sign-ins or sign-ins at once; see Retry-After"},
    },
)
def api_sign_in(body: SignInIn, request: Request, web: Web) -> TokenOut:
    """Sign in for the JSON API: a bearer token (no cookie, so no CSRF token needed)."""
    try:
        issued = web.accounts.sign_in(
            body.username, body.password, SessionKind.API, _source(request)
        )
    except SignInFailed as exc:
        raise HTTPException(401, str(exc)) from None
    except AccountLocked as exc:
        raise HTTPException(403, str(exc)) from None
    except TryLater as exc:
        raise HTTPException(
            429, str(exc), headers={"Retry-After": str(exc.retry_after_s)}
        ) from None
    p = issued.principal
    return TokenOut(
        token=issued.token,
        expires_at=issued.expires_at,
        username=p.username,
        role=p.role.value,
        sites=sorted(p.sites),
    )


@router.delete("/api/v1/session", status_code=204)
def api_sign_out(request: Request, web: Web, _who: Who) -> Response:
    """End the session or token the request came with."""
    web.accounts.sign_out(bearer_token(request) or request.cookies.get(SESSION_COOKIE, ""))
    return Response(status_code=204)


@router.get("/api/v1/me", response_model=MeOut)
def api_me(who: Who) -> MeOut:
    """Who the caller is signed in as."""
    return MeOut(
        username=who.username,
        role=who.role.value,
        sites=sorted(who.sites),
        via=who.via.value,
        buildings=sorted(who.buildings),
    )


def _change(
    accounts: AccountService, who: Principal, current: str, new: str, token: str | None
) -> int:
    """Change the signed-in member's password; HTTPException with the status of a refusal."""
    try:
        return accounts.change_password(who.username, current, new, keep_token=token)
    except (WrongPassword, InvalidAccount, AccountLocked, TryLater) as exc:
        if isinstance(exc, TryLater):
            raise HTTPException(
                429, str(exc), headers={"Retry-After": str(exc.retry_after_s)}
            ) from None
        raise HTTPException(403 if isinstance(exc, AccountLocked) else 400, str(exc)) from None


@router.get("/account/password", response_class=HTMLResponse)
def password_page(request: Request, who: Who) -> HTMLResponse:
    """The form to change one's own password."""
    return render(request, "account_password.html", {"who": who})


@router.post("/account/password", response_class=HTMLResponse)
def password_form(
    request: Request,
    web: Web,
    who: Who,
    current_password: Annotated[str, Form(max_length=200)] = "",
    new_password: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Change one's own password; the other sessions and tokens of the account end."""
    try:
        ended = _change(
            web.accounts,
            who,
            current_password,
            new_password,
            request.cookies.get(SESSION_COOKIE),
        )
    except HTTPException as exc:
        response = render(
            request,
            "account_password.html",
            {"who": who, "error": exc.detail},
            status_code=exc.status_code,
        )
        response.headers.update(exc.headers or {})
        return response
    return render(request, "account_password.html", {"who": who, "ended": ended, "done": True})


class PasswordChangeIn(BaseModel):
    current_password: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=1, max_length=200)


class PasswordChangedOut(BaseModel):
    ended: int = Field(description="other sessions and API tokens of the account that ended")


@router.post(
    "/api/v1/me/password",
    response_model=PasswordChangedOut,
    responses={
        400: {"description": "the current password is wrong, or the new one breaks the rule"},
        403: {"description": "the account is locked after too many failed sign-ins"},
        429: {"description": "too many failed attempts or sign-ins at once; see Retry-After"},
    },
)
def api_password_change(
    body: PasswordChangeIn, request: Request, web: Web, who: Who
) -> PasswordChangedOut:
    """Change the caller's own password; every other session and token of the account ends."""
    token = bearer_token(request) or request.cookies.get(SESSION_COOKIE)
    ended = _change(web.accounts, who, body.current_password, body.new_password, token)
    return PasswordChangedOut(ended=ended)
