"""Revoking a lost, stolen or decommissioned gateway from the engineer pages and the API
(decision 0043): the confirmation page, its form, and ``POST /api/v1/gateways/{id}/revoke``.
The work is :class:`cloud.gateways.revocation.GatewayRevocations`'."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from cloud.gateways.health import UnknownGateway
from cloud.gateways.revocation import (
    MAX_NOTE_CHARS,
    REASONS,
    RevocationRefused,
    RevokeOutcome,
)
from cloud.staff.accounts import Principal
from cloud.web.deps import WebServices, principal, web_services
from cloud.web.rendering import language, render, translations

router = APIRouter(tags=["engineer"])
Web = Annotated[WebServices, Depends(web_services)]
Who = Annotated[Principal, Depends(principal)]
GatewayId = Annotated[str, Path(min_length=1, max_length=64)]
Reason = Literal["lost", "stolen", "decommissioned", "other"]
#: The confirmation box's value.
CONFIRM = "yes"


class RevokeIn(BaseModel):
    reason: Reason = Field(description="why: lost, stolen, decommissioned, or other (say why)")
    note: str = Field(default="", max_length=MAX_NOTE_CHARS, description="needed for other")


class RevocationOut(BaseModel):
    """A gateway's revocation: who, when, why, and the keys it revoked."""

    reason: str
    note: str
    revoked_by: str
    revoked_at: datetime
    kids: list[str]


class RevokeOut(BaseModel):
    """What revoking did. ``changed`` false: the gateway was revoked already (nothing done;
    ``revocation`` is the earlier one). ``broker_user``: what the broker's admin still does."""

    gateway: str
    changed: bool
    revocation: RevocationOut | None
    claims_closed: int
    commands_cancelled: int
    broker_user: str


def broker_step(gateway: str) -> str:
    """The command that removes the gateway's broker user, on the broker's host."""
    return f"deploy/mosquitto/broker-users.sh remove {gateway}"


def refusal_text(exc: RevocationRefused, t: dict[str, Any]) -> str:
    """The refusal in the page's language (the English message for an unknown code)."""
    words = t.get(f"revoke_err_{exc.code}")
    return words.format(n=MAX_NOTE_CHARS) if words else str(exc)


def _out(done: RevokeOutcome) -> RevokeOut:
    r = done.revocation
    return RevokeOut(
        gateway=done.gateway,
        changed=done.changed,
        revocation=None
        if r is None
        else RevocationOut(
            reason=r.reason,
            note=r.note,
            revoked_by=r.revoked_by,
            revoked_at=r.revoked_at,
            kids=r.kids,
        ),
        claims_closed=done.claims_closed,
        commands_cancelled=done.commands_cancelled,
        broker_user=f"not removed by the cloud: on the broker host, {broker_step(done.gateway)}",
    )


def _confirm_page(
    request: Request, web: WebServices, who: Principal, gateway_id: str, **form: Any
) -> HTMLResponse:
    try:
        gateway, _ = web.gateways.gateway(who, gateway_id)
    except UnknownGateway:
        return render(request, "error.html", {"message": "not_found"}, status_code=404)
    status = form.pop("status_code", 200)
    return render(
        request,
        "engineer_gateway_revoke.html",
        {
            "g": gateway,
            "reasons": REASONS,
            "max_note": MAX_NOTE_CHARS,
            "broker_step": broker_step(gateway_id),
            "confirm_value": CONFIRM,
            "reason": form.get("reason", ""),
            "note": form.get("note", ""),
            "error": form.get("error", ""),
        },
        status_code=status,
    )


@router.get("/engineer/gateways/{gateway_id}/revoke", response_class=HTMLResponse)
def gateway_revoke_page(request: Request, gateway_id: GatewayId, web: Web, who: Who) -> Response:
    """Revoke a gateway, asked first: what it does, the reason, a note, a confirmation box."""
    return _confirm_page(request, web, who, gateway_id)


@router.post("/engineer/gateways/{gateway_id}/revoke", response_class=HTMLResponse)
def gateway_revoke_form(
    request: Request,
    gateway_id: GatewayId,
    web: Web,
    who: Who,
    reason: Annotated[str, Form(max_length=20)] = "",
    note: Annotated[str, Form(max_length=MAX_NOTE_CHARS)] = "",
    confirm: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Revoke the gateway once the box is ticked; back to the gateway's page, which shows
    the revocation. Without the box, or with a refused reason or note, the page again."""
    t = translations(language(request))
    error = ""
    if confirm != CONFIRM:
        error = t["revoke_err_unconfirmed"]
    else:
        try:
            done = web.revocations.revoke(who, gateway_id, reason, note)
        except UnknownGateway:
            return render(request, "error.html", {"message": "not_found"}, status_code=404)
        except RevocationRefused as exc:
            error = refusal_text(exc, t)
        else:
            query = {"lang": language(request), "revoked": "1" if done.changed else "0"}
            return RedirectResponse(
                f"/engineer/gateways/{quote(gateway_id)}?{urlencode(query)}", 303
            )
    return _confirm_page(
        request, web, who, gateway_id, reason=reason, note=note, error=error, status_code=422
    )


@router.post(
    "/api/v1/gateways/{gateway_id}/revoke",
    response_model=RevokeOut,
    responses={
        404: {"description": "not found in your sites"},
        422: {"description": "the reason other without a note"},
    },
)
def api_gateway_revoke(gateway_id: GatewayId, body: RevokeIn, web: Web, who: Who) -> RevokeOut:
    """Revoke every live key of a lost, stolen or decommissioned gateway: its readings,
    health and answers are refused from now on, its unused claim tokens expire, commands
    awaiting its answer are cancelled. A revoked gateway is answered 200 with ``changed``
    false and its earlier revocation. Its broker user is the broker admin's to remove."""
    try:
        return _out(web.revocations.revoke(who, gateway_id, body.reason, body.note))
    except UnknownGateway as exc:
        raise HTTPException(404, str(exc)) from None
    except RevocationRefused as exc:
        raise HTTPException(422, str(exc)) from None
