"""Engineers' pages and JSON API: gateways with online/offline, last seen, outbox depth and
oldest item, per-meter health; claim tokens for provisioning; commands (push a configuration
= ``reload_config``, ``sync_time``, ``read_meter``)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, JsonValue

from cloud.gateways.dispatch import (
    CommandNotAllowed,
    DispatchError,
    GatewayRevoked,
    NoTrustedKey,
    UnknownGatewayTarget,
)
from cloud.gateways.health import CommandView, GatewayView, UnknownGateway
from cloud.gateways.provisioning import IssuedClaim, ProvisioningError, ProvisioningService
from cloud.staff.accounts import Principal, Role
from cloud.web.deps import ApiServices, WebServices, api_services, principal, web_services
from cloud.web.provisioning_steps import ago, claim_broker, provisioning_steps
from cloud.web.rendering import language, render, translations
from edge.wire import CommandName

router = APIRouter(tags=["engineer"])
Web = Annotated[WebServices, Depends(web_services)]
Api = Annotated[ApiServices, Depends(api_services)]
Who = Annotated[Principal, Depends(principal)]
GatewayId = Annotated[str, Path(min_length=1, max_length=64)]
SiteQ = Annotated[str | None, Query(max_length=64)]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "not found in your sites"}}


class GatewayDetailOut(BaseModel):
    gateway: GatewayView
    commands: list[CommandView]


class CommandIn(BaseModel):
    command: CommandName
    args: dict[str, JsonValue] = Field(default_factory=dict)
    ttl_s: float = Field(default=300, gt=0, le=24 * 3600)


class SentOut(BaseModel):
    cmd_id: str
    gateway: str
    command: str
    status: str


class ClaimIn(BaseModel):
    site: str = Field(min_length=1, max_length=64)
    gateway: str = Field(min_length=1, max_length=64)
    site_config: str = Field(
        min_length=1, max_length=256 * 1024, description="the gateway's site configuration (TOML)"
    )
    ttl_hours: int = Field(default=24, ge=1, le=24 * 30)
    replace: bool = Field(
        default=False,
        description="new hardware for a provisioned gateway (an engineer's waits for an admin)",
    )
    mqtt_username: str | None = Field(
        default=None,
        max_length=200,
        description="the gateway's broker user (default: the gateway id when a password is given)",
    )
    mqtt_password: str | None = Field(
        default=None,
        max_length=200,
        description="the gateway's broker password (deploy/mosquitto/broker-users.sh made it)",
    )


class ClaimOut(BaseModel):
    """A single-use claim token; shown only in this answer. ``steps`` are the commands to run
    on the gateway, in order (the token is pasted at ``edge provision``'s prompt)."""

    token: str
    site: str
    gateway: str
    expires_at: datetime
    steps: list[str] = Field(default_factory=list)


class OutOfScope(Exception):
    """The site is not one of the engineer's."""


def _claim(
    provisioning: ProvisioningService,
    web: WebServices,
    who: Principal,
    site: str,
    gateway: str,
    site_config: str,
    hours: int,
    replace: bool = False,
    broker_user: str = "",
    broker_password: str = "",
) -> IssuedClaim:
    if not who.may_act_on(site):
        raise OutOfScope(f"site {site!r} is not one of yours")
    return provisioning.create_claim(
        site,
        gateway,
        site_config,
        claim_broker(web.claim_broker, broker_user, broker_password, gateway),
        ttl=timedelta(hours=hours),
        replace=replace,
        issued_by=who.username,
        approved_by=who.username if who.role is Role.ADMIN else None,
    )


def _cloud_url(request: Request, web: WebServices) -> str:
    """The base URL gateways provision against: the public URL, else this request's."""
    return web.public_url or str(request.base_url).rstrip("/")


def _ago(request: Request) -> Any:
    t = translations(language(request))
    return lambda seconds: ago(seconds, t)


def _flagged(web: WebServices, who: Principal, views: list[GatewayView]) -> list[GatewayView]:
    """``views`` with the gateways whose replacement awaits an admin flagged, and the revoked
    ones with their revocation."""
    pending = web.replacements.pending_gateways(who.site_filter())
    revoked = web.revocations.revoked(v.id for v in views)
    out = []
    for v in views:
        r = revoked.get(v.id)
        out.append(
            dataclasses.replace(
                v,
                replacement_pending=v.id in pending,
                revoked_at=r and r.revoked_at,
                revoked_by=r and r.revoked_by,
                revoked_reason=r and r.reason,
                revoked_note=r and r.note,
            )
        )
    return out


# ----------------------------------------------------------------------------- pages


@router.get("/engineer/gateways", response_class=HTMLResponse)
def gateways_page(request: Request, web: Web, who: Who, site: SiteQ = None) -> HTMLResponse:
    """Gateways of your sites with their state (the page refreshes itself every 5 s)."""
    return render(
        request,
        "engineer_gateways.html",
        {
            "gateways": _flagged(web, who, web.gateways.gateways(who, site)),
            "site": site or "",
            "ago": _ago(request),
        },
    )


@router.get("/engineer/gateways/{gateway_id}", response_class=HTMLResponse)
def gateway_page(request: Request, gateway_id: GatewayId, web: Web, who: Who) -> HTMLResponse:
    """A gateway: outbox, lines, per-meter health, commands (refreshes itself every 5 s)."""
    try:
        gateway, commands = web.gateways.gateway(who, gateway_id)
    except UnknownGateway:
        return render(request, "error.html", {"message": "not_found"}, status_code=404)
    (gateway,) = _flagged(web, who, [gateway])
    return render(
        request,
        "engineer_gateway.html",
        {
            "g": gateway,
            "registered": web.gateways.registered_meters(gateway.site),
            "commands": commands,
            "error": request.query_params.get("error", ""),
            "done": request.query_params.get("done", ""),
            "revoked": request.query_params.get("revoked", ""),
            "ago": _ago(request),
        },
    )


@router.post("/engineer/gateways/{gateway_id}/commands", response_class=HTMLResponse)
def gateway_command_form(
    request: Request,
    gateway_id: GatewayId,
    web: Web,
    who: Who,
    command: Annotated[CommandName, Form()] = "reload_config",
    meter: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Send a command (``reload_config`` pushes the configuration); back to the gateway."""
    query = {"lang": language(request)}
    try:
        sent = web.commands.send(
            who, gateway_id, command, {"meter": meter} if command == "read_meter" else None
        )
        query["done"] = f"{sent.command} {sent.cmd_id}"
    except UnknownGatewayTarget:
        return render(request, "error.html", {"message": "not_found"}, status_code=404)
    except DispatchError as exc:
        query["error"] = str(exc)
    return RedirectResponse(f"/engineer/gateways/{quote(gateway_id)}?{urlencode(query)}", 303)


@router.get("/engineer/claim-tokens", response_class=HTMLResponse)
def claim_token_page(request: Request, who: Who) -> HTMLResponse:
    """The form for a gateway's claim token."""
    return render(request, "engineer_claim.html", {"sites": sorted(who.sites)})


@router.post("/engineer/claim-tokens", response_class=HTMLResponse)
def claim_token_form(
    request: Request,
    api: Api,
    web: Web,
    who: Who,
    site: Annotated[str, Form(max_length=64)] = "",
    gateway: Annotated[str, Form(max_length=64)] = "",
    site_config: Annotated[str, Form(max_length=256 * 1024)] = "",
    expires_h: Annotated[int, Form(ge=1, le=24 * 30)] = 24,
    replace: Annotated[bool, Form()] = False,
    broker_username: Annotated[str, Form(max_length=200)] = "",
    broker_password: Annotated[str, Form(max_length=200)] = "",
) -> HTMLResponse:
    """Issue a claim token; it is shown once, on the page this answers with, beside the
    commands that provision the gateway with it."""
    try:
        claim = _claim(
            api.provisioning,
            web,
            who,
            site,
            gateway,
            site_config,
            expires_h,
            replace,
            broker_username,
            broker_password,
        )
    except (ProvisioningError, OutOfScope) as exc:
        return render(
            request,
            "engineer_claim.html",
            {
                "sites": sorted(who.sites),
                "error": str(exc),
                "site": site,
                "gateway": gateway,
                "site_config": site_config,
                "broker_username": broker_username,
            },
            status_code=403 if isinstance(exc, OutOfScope) else 400,
        )
    return render(
        request,
        "engineer_claim.html",
        {
            "sites": sorted(who.sites),
            "claim": claim,
            "replace": replace,
            "steps": provisioning_steps(_cloud_url(request, web)),
        },
    )


# ----------------------------------------------------------------------------- JSON API


@router.get("/api/v1/gateways", response_model=list[GatewayView])
def api_gateways(web: Web, who: Who, site: SiteQ = None) -> list[GatewayView]:
    """Gateways of your sites with their state, outbox and meters."""
    return _flagged(web, who, web.gateways.gateways(who, site))


@router.get("/api/v1/gateways/{gateway_id}", response_model=GatewayDetailOut, responses=_NOT_FOUND)
def api_gateway(gateway_id: GatewayId, web: Web, who: Who) -> GatewayDetailOut:
    """A gateway with its latest commands."""
    try:
        gateway, commands = web.gateways.gateway(who, gateway_id)
    except UnknownGateway as exc:
        raise HTTPException(404, str(exc)) from None
    (gateway,) = _flagged(web, who, [gateway])
    return GatewayDetailOut(gateway=gateway, commands=commands)


@router.post(
    "/api/v1/gateways/{gateway_id}/commands",
    response_model=SentOut,
    responses={
        **_NOT_FOUND,
        400: {"description": "a command the engineer pages may not send"},
        409: {
            "description": "the gateway trusts no live command key (re-provision it), or it "
            "is revoked"
        },
        502: {"description": "the broker is not reachable"},
    },
)
def api_gateway_command(gateway_id: GatewayId, body: CommandIn, web: Web, who: Who) -> SentOut:
    """Sign and send a command to the gateway (``reload_config`` pushes its configuration)."""
    try:
        sent = web.commands.send(who, gateway_id, body.command, body.args, body.ttl_s)
    except UnknownGatewayTarget as exc:
        raise HTTPException(404, str(exc)) from None
    except CommandNotAllowed as exc:
        raise HTTPException(400, str(exc)) from None
    except (NoTrustedKey, GatewayRevoked) as exc:
        raise HTTPException(409, str(exc)) from None
    except DispatchError as exc:
        raise HTTPException(502, str(exc)) from None
    return SentOut(
        cmd_id=sent.cmd_id, gateway=sent.gateway, command=sent.command, status=sent.status
    )


@router.post(
    "/api/v1/claim-tokens",
    response_model=ClaimOut,
    status_code=201,
    responses={
        400: {"description": "the claim is inconsistent"},
        403: {"description": "the site is not one of yours"},
    },
)
def api_claim_token(request: Request, body: ClaimIn, api: Api, web: Web, who: Who) -> ClaimOut:
    """Issue a single-use claim token for a gateway of one of your sites, with the commands
    that provision the gateway with it."""
    try:
        claim = _claim(
            api.provisioning,
            web,
            who,
            body.site,
            body.gateway,
            body.site_config,
            body.ttl_hours,
            body.replace,
            body.mqtt_username or "",
            body.mqtt_password or "",
        )
    except OutOfScope as exc:
        raise HTTPException(403, str(exc)) from None
    except ProvisioningError as exc:
        raise HTTPException(400, str(exc)) from None
    return ClaimOut(
        token=claim.token,
        site=claim.site,
        gateway=claim.gateway,
        expires_at=claim.expires_at,
        steps=[s.command for s in provisioning_steps(_cloud_url(request, web)) if s.command],
    )
