"""The managers' move-out risk list: a page and its JSON API (admin, finance, managers and
supervisors, within their sites and buildings). Reads the scores stored by ``meterflow cloud
risk score``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from cloud.staff.accounts import Principal
from cloud.web.deps import WebServices, principal, web_services
from cloud.web.rendering import render

router = APIRouter(tags=["risk"])
Web = Annotated[WebServices, Depends(web_services)]
Who = Annotated[Principal, Depends(principal)]
SiteQ = Annotated[str | None, Query(max_length=64)]
LimitQ = Annotated[int, Query(ge=1, le=10_000)]


class RiskItemOut(BaseModel):
    """A running lease's latest score: probability (None without a model), health 0–100."""

    lease_id: str
    tenant_id: str
    unit_id: str
    site_id: str
    building: str
    manager_id: str
    end_on: str
    scored_on: str
    model_version: int | None
    probability: float | None
    health: float
    band: str
    high_risk: bool
    reasons: list[str]


@router.get("/finance/risk", response_class=HTMLResponse)
def risk_page(
    request: Request, web: Web, who: Who, site: SiteQ = None, limit: LimitQ = 200
) -> HTMLResponse:
    """Running leases, highest move-out probability first, with reasons and health."""
    items = web.risk.items(who.site_filter(), site=site, limit=limit, keep=who.may_see_unit)
    return render(request, "finance_risk.html", {"items": items, "site": site or ""})


@router.get("/api/v1/risk/leases", response_model=list[RiskItemOut])
def api_risk_leases(
    web: Web, who: Who, site: SiteQ = None, limit: LimitQ = 200
) -> list[RiskItemOut]:
    """The risk list as JSON (same order as the page)."""
    return [
        RiskItemOut(**item)
        for item in web.risk.items(who.site_filter(), site=site, limit=limit, keep=who.may_see_unit)
    ]
