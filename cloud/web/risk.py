"""The managers' move-out risk list: a page and its JSON API (admin, finance, managers and
supervisors, within their sites and buildings). Reads the scores stored by ``meterflow cloud
risk score``; their reasons are worded here (cloud.risk.wording): on the page in the page's
language, in the API in English."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from cloud.risk.wording import reasons_text
from cloud.staff.accounts import Principal
from cloud.web.deps import WebServices, principal, web_services
from cloud.web.rendering import language, render

router = APIRouter(tags=["risk"])
Web = Annotated[WebServices, Depends(web_services)]
Who = Annotated[Principal, Depends(principal)]
SiteQ = Annotated[str | None, Query(max_length=64)]
LimitQ = Annotated[int, Query(ge=1, le=10_000)]


class RiskReasonOut(BaseModel):
    """A reason as the model gave it: a feature (docs/vacancy.md) and the lease's value."""

    feature: str
    value: float


class RiskItemOut(BaseModel):
    """A running lease's latest score: probability (None without a model), health 0–100,
    ``reasons`` in English words and, in the same order, ``reason_features`` — each reason's
    feature and value, None for a reason stored as words (scores from before)."""

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
    reason_features: list[RiskReasonOut | None]


@router.get("/finance/risk", response_class=HTMLResponse)
def risk_page(
    request: Request, web: Web, who: Who, site: SiteQ = None, limit: LimitQ = 200
) -> HTMLResponse:
    """Running leases, highest move-out probability first, with reasons and health."""
    lang = language(request)
    items = [
        {**item, "reasons": reasons_text(item["reasons"], lang)}
        for item in web.risk.items(who.site_filter(), site=site, limit=limit, keep=who.may_see_unit)
    ]
    return render(request, "finance_risk.html", {"items": items, "site": site or ""})


@router.get("/api/v1/risk/leases", response_model=list[RiskItemOut])
def api_risk_leases(
    web: Web, who: Who, site: SiteQ = None, limit: LimitQ = 200
) -> list[RiskItemOut]:
    """The risk list as JSON (same order as the page)."""
    return [
        RiskItemOut(
            **{
                **item,
                "reasons": reasons_text(item["reasons"], "en"),
                "reason_features": [
                    RiskReasonOut(**r) if isinstance(r, Mapping) else None for r in item["reasons"]
                ],
            }
        )
        for item in web.risk.items(who.site_filter(), site=site, limit=limit, keep=who.may_see_unit)
    ]
