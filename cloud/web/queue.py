"""The work queue (待办) and renewal offers: pages and JSON API (issue #18, decision 0034).

Thin handlers over :class:`cloud.leases.queue.WorkQueue` and
:class:`cloud.leases.offers.OfferDesk`, which apply the caller's scope: an item, a lease or
an offer out of it is not found (404). An action the item's or offer's state does not allow
answers 409 with the reason; pages redirect back with it. Amounts in the API are integer
cents; a rent typed in is yuan (``8000.00``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from cloud.leases.errors import LeaseError, UnknownRecord
from cloud.leases.notices import note_text as task_note_text
from cloud.leases.offers import APPROVER_ROLES, NEXT, OFFER_ROLES, STATES, Funnel, OfferRow
from cloud.leases.queue import OVERSEER_ROLES, QueueItem
from cloud.staff.accounts import Principal
from cloud.web.chart import funnel_svg
from cloud.web.deps import WebServices, principal, web_services
from cloud.web.rendering import language, render, translations, yuan

router = APIRouter(tags=["queue"])
Web = Annotated[WebServices, Depends(web_services)]
Who = Annotated[Principal, Depends(principal)]
ItemId = Annotated[str, Path(min_length=3, max_length=200)]
OfferId = Annotated[int, Path(ge=1, le=2**31 - 1)]
LeaseId = Annotated[str, Path(min_length=1, max_length=64)]
SiteQ = Annotated[str | None, Query(max_length=64)]
StatusQ = Annotated[str | None, Query(pattern="^(" + "|".join(STATES) + ")?$")]
DayQ = Annotated[date | None, Query()]
YUAN = r"^[0-9]{1,10}(\.[0-9]{1,2})?$"


def _fail(exc: Exception) -> HTTPException:
    if isinstance(exc, UnknownRecord):
        return HTTPException(404, str(exc))
    if isinstance(exc, PermissionError):
        return HTTPException(403, str(exc))
    return HTTPException(409, str(exc))


def _cents(yuan: str) -> int:
    return int(Decimal(yuan) * 100)


# ----------------------------------------------------------------------------------- queue


class QueueItemOut(BaseModel):
    """One item: ``sla`` red (overdue), amber (due today or tomorrow), green (later);
    ``action`` ack, done, approve or None."""

    id: str
    kind: str
    lease_id: str
    site_id: str
    building: str
    unit_name: str
    tenant_name: str
    due_on: date
    sla: str
    action: str | None
    assignee: str | None
    note: str
    refund_id: int | None = Field(
        default=None, description="the deposit refund the item is about (its page: the action)"
    )


class QueueOut(BaseModel):
    today: date
    items: list[QueueItemOut]


class AckOut(BaseModel):
    item: str
    acknowledged: int = Field(description="reminders of the lease acknowledged")


class DoneOut(BaseModel):
    item: str
    done: bool


def _queue_out(web: WebServices, items: list[QueueItem]) -> QueueOut:
    return QueueOut(today=web.queue.today(), items=[QueueItemOut(**i.as_dict()) for i in items])


@router.get("/api/v1/queue", response_model=QueueOut)
def api_queue(web: Web, who: Who) -> QueueOut:
    """The caller's work queue, most urgent first (at most 500 items)."""
    return _queue_out(web, web.queue.items(who))


@router.get("/api/v1/queue/overdue", response_model=QueueOut)
def api_queue_overdue(web: Web, who: Who) -> QueueOut:
    """Every overdue item in the caller's sites and buildings (supervisors, admins)."""
    return _queue_out(web, web.queue.overdue(who))


@router.post(
    "/api/v1/queue/{item_id}/ack",
    response_model=AckOut,
    responses={404: {"description": "not in the caller's queue"}, 409: {"description": "no ack"}},
)
def api_queue_ack(web: Web, who: Who, item_id: ItemId) -> AckOut:
    """Acknowledge a renewal reminder or escalation: it stops escalating."""
    try:
        n = web.queue.ack(who, item_id)
    except (LeaseError, PermissionError) as exc:
        raise _fail(exc) from None
    return AckOut(item=item_id, acknowledged=n)


@router.post(
    "/api/v1/queue/{item_id}/done",
    response_model=DoneOut,
    responses={404: {"description": "not in the caller's queue"}, 409: {"description": "no done"}},
)
def api_queue_done(web: Web, who: Who, item_id: ItemId) -> DoneOut:
    """Mark a task done."""
    try:
        web.queue.done(who, item_id)
    except (LeaseError, PermissionError) as exc:
        raise _fail(exc) from None
    return DoneOut(item=item_id, done=True)


def note_text(item: QueueItem, t: Mapping[str, str], language: str) -> str:
    """A queue item's note in the reader's language (its English note when the page has no
    words for its code); a task's own note is worded by :mod:`cloud.leases.notices`."""
    words = t.get(f"queue_note_{item.note_code}") if item.note_code else None
    if words is None:
        return item.note
    params = dict(item.note_params)
    if "note_code" in params:  # a task: its note as the job stored it
        code, values = params.pop("note_code"), params.pop("note_values", "{}")
        params["text"] = task_note_text(code, values, language, fallback=params.get("text", ""))
    if "step" in params:
        params["step"] = t.get(f"deposit_step_{params['step']}", params["step"])
    if "task" in params:
        params["task"] = t.get(f"task_kind_{params['task']}", params["task"])
    if "owed_cents" in params:
        params["owed"] = yuan(int(params.pop("owed_cents")))
    try:
        return words.format(**params)
    except (KeyError, IndexError):  # words that name a value the item lacks
        return item.note


def _queue_page(
    request: Request, who: Principal, items: list[QueueItem], overdue: bool
) -> Response:
    t = translations(language(request))
    return render(
        request,
        "queue.html",
        {
            "items": [(i, note_text(i, t, language(request))) for i in items],
            "overdue": overdue,
            "may_oversee": who.role in OVERSEER_ROLES,
            "error": request.query_params.get("error", "")[:300],
            "done": request.query_params.get("done", "")[:200],
        },
    )


@router.get("/queue", response_class=HTMLResponse)
def queue_page(request: Request, web: Web, who: Who) -> Response:
    """My work queue with SLA colours and one-click actions."""
    return _queue_page(request, who, web.queue.items(who), False)


@router.get("/queue/overdue", response_class=HTMLResponse)
def queue_overdue_page(request: Request, web: Web, who: Who) -> Response:
    """Everybody's overdue items in my sites and buildings."""
    return _queue_page(request, who, web.queue.overdue(who), True)


def _back(request: Request, path: str, **query: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?{urlencode({'lang': language(request), **query})}", 303)


def _queue_action(
    request: Request, web: WebServices, who: Principal, item_id: str, act: str
) -> Response:
    back = "/queue/overdue" if request.query_params.get("from") == "overdue" else "/queue"
    try:
        if act == "ack":
            web.queue.ack(who, item_id)
        else:
            web.queue.done(who, item_id)
    except (LeaseError, PermissionError) as exc:
        if isinstance(exc, UnknownRecord):
            return render(request, "error.html", {"message": "not_found"}, status_code=404)
        return _back(request, back, error=str(exc))
    return _back(request, back, done=item_id)


@router.post("/queue/{item_id}/ack", response_class=HTMLResponse)
def queue_ack_form(request: Request, web: Web, who: Who, item_id: ItemId) -> Response:
    """One click: acknowledge the reminder."""
    return _queue_action(request, web, who, item_id, "ack")


@router.post("/queue/{item_id}/done", response_class=HTMLResponse)
def queue_done_form(request: Request, web: Web, who: Who, item_id: ItemId) -> Response:
    """One click: the task is done."""
    return _queue_action(request, web, who, item_id, "done")


# ---------------------------------------------------------------------------------- offers


class ComparableOut(BaseModel):
    lease_id: str
    unit_id: str
    unit_name: str
    area_m2: Decimal
    current_cents: int
    per_m2_cents: Decimal = Field(description="rent per m² per month [cents]")


class SuggestionOut(BaseModel):
    """The suggested renewal rent and its band [cents per month], the group's target
    [cents per m² per month] and the comparable leases it came from."""

    lease_id: str
    site_id: str
    building: str
    unit_type: str
    current_cents: int
    suggested_cents: int
    band_low_cents: int
    band_high_cents: int
    target_per_m2_cents: Decimal
    comparables: list[ComparableOut]


class OfferIn(BaseModel):
    """The rent offered in yuan per month (up to two decimals)."""

    rent_cny: str = Field(pattern=YUAN, examples=["8000.00"])


class OfferOut(BaseModel):
    """An offer: amounts in cents per month; ``status`` to_renew, invited, negotiating,
    signed, lost; ``approval`` none, pending, approved, rejected."""

    id: int
    lease_id: str
    site_id: str
    building: str
    unit_name: str
    tenant_name: str
    made_on: date
    by: str
    current_cents: int
    suggested_cents: int
    band_low_cents: int
    band_high_cents: int
    offered_cents: int
    flagged: bool
    flag_reason: str
    status: str
    approval: str
    decided_by: str | None
    successor_id: str | None


class FunnelOut(BaseModel):
    """Offers made from ``since`` to ``until`` (inclusive) by their state now."""

    site: str | None
    since: date
    until: date
    counts: dict[str, int]
    pending_approval: int
    total: int


def _offer(row: OfferRow) -> OfferOut:
    return OfferOut(**row.as_dict())


@router.get(
    "/api/v1/leases/{lease_id}/offer-suggestion",
    response_model=SuggestionOut,
    responses={404: {"description": "no such lease in scope, or no suggestion for it"}},
)
def api_offer_suggestion(web: Web, who: Who, lease_id: LeaseId) -> SuggestionOut:
    """The suggested renewal rent of a lease, its band and the comparables behind it."""
    try:
        s = web.offers.suggestion(who, lease_id)
    except (LeaseError, PermissionError) as exc:
        raise _fail(exc) from None
    site, building, unit_type = s.group
    return SuggestionOut(
        lease_id=s.lease_id,
        site_id=site,
        building=building,
        unit_type=unit_type,
        current_cents=s.current_cents,
        suggested_cents=s.suggested_cents,
        band_low_cents=s.band_low_cents,
        band_high_cents=s.band_high_cents,
        target_per_m2_cents=s.target_per_m2.quantize(Decimal("0.01")),
        comparables=[ComparableOut(**c.__dict__) for c in s.comparables],
    )


@router.post(
    "/api/v1/leases/{lease_id}/offers",
    response_model=OfferOut,
    status_code=201,
    responses={
        404: {"description": "no such lease in scope"},
        409: {"description": "the lease cannot be renewed now (state, arrears)"},
        422: {"description": "rent not accepted"},
    },
)
def api_offer_make(web: Web, who: Who, lease_id: LeaseId, body: OfferIn) -> OfferOut:
    """Make a renewal offer; outside the band it waits for a supervisor's approval."""
    cents = _cents(body.rent_cny)
    if cents <= 0:
        raise HTTPException(422, "rent_cny: expected more than 0.00")
    try:
        return _offer(web.offers.make(who, lease_id, cents))
    except (LeaseError, PermissionError) as exc:
        raise _fail(exc) from None


@router.get("/api/v1/offers", response_model=list[OfferOut])
def api_offers(web: Web, who: Who, site: SiteQ = None, status: StatusQ = None) -> list[OfferOut]:
    """Offers in the caller's scope, newest first (at most 500)."""
    rows = web.offers.offers(who, site=site or None, status=status or None)
    return [_offer(r) for r in rows]


def _period(web: WebServices, since: date | None, until: date | None) -> tuple[date, date]:
    until = until or web.offers.today()
    since = since or until - timedelta(days=365)
    if since > until or (until - since).days > 3660:
        raise HTTPException(400, "from/to: expected from ≤ to, at most ten years apart")
    return since, until


def _funnel_out(f: Funnel) -> FunnelOut:
    return FunnelOut(
        site=f.site,
        since=f.since,
        until=f.until,
        counts=f.counts,
        pending_approval=f.pending_approval,
        total=f.total,
    )


@router.get("/api/v1/offers/funnel", response_model=FunnelOut)
def api_offers_funnel(
    web: Web,
    who: Who,
    site: SiteQ = None,
    since: Annotated[date | None, Query(alias="from")] = None,
    until: Annotated[date | None, Query(alias="to")] = None,
) -> FunnelOut:
    """Offers made in the period (default: the last 365 days) by state, in scope."""
    since, until = _period(web, since, until)
    return _funnel_out(web.offers.funnel(who, site=site or None, since=since, until=until))


def _act(web: WebServices, who: Principal, offer_id: int, action: str) -> OfferOut:
    try:
        return _offer(web.offers.act(who, offer_id, action))
    except (LeaseError, PermissionError) as exc:
        raise _fail(exc) from None


_ACT_RESPONSES: dict[int | str, dict[str, str]] = {
    404: {"description": "no such offer in scope"},
    409: {"description": "the offer's state or approval does not allow it"},
}


@router.post("/api/v1/offers/{offer_id}/approve", response_model=OfferOut, responses=_ACT_RESPONSES)
def api_offer_approve(web: Web, who: Who, offer_id: OfferId) -> OfferOut:
    """Approve an offer outside its band (a supervisor or admin, not its maker)."""
    return _act(web, who, offer_id, "approve")


@router.post("/api/v1/offers/{offer_id}/reject", response_model=OfferOut, responses=_ACT_RESPONSES)
def api_offer_reject(web: Web, who: Who, offer_id: OfferId) -> OfferOut:
    """Reject an offer outside its band (a supervisor or admin, not its maker)."""
    return _act(web, who, offer_id, "reject")


@router.post("/api/v1/offers/{offer_id}/invite", response_model=OfferOut, responses=_ACT_RESPONSES)
def api_offer_invite(web: Web, who: Who, offer_id: OfferId) -> OfferOut:
    """待续签 → 已邀约: the tenant is invited to renew."""
    return _act(web, who, offer_id, "invite")


@router.post(
    "/api/v1/offers/{offer_id}/negotiate", response_model=OfferOut, responses=_ACT_RESPONSES
)
def api_offer_negotiate(web: Web, who: Who, offer_id: OfferId) -> OfferOut:
    """已邀约 → 协商中."""
    return _act(web, who, offer_id, "negotiate")


@router.post("/api/v1/offers/{offer_id}/sign", response_model=OfferOut, responses=_ACT_RESPONSES)
def api_offer_sign(web: Web, who: Who, offer_id: OfferId) -> OfferOut:
    """已签约: the lease is renewed at the offered rent (an approved offer, if outside)."""
    return _act(web, who, offer_id, "sign")


@router.post("/api/v1/offers/{offer_id}/lose", response_model=OfferOut, responses=_ACT_RESPONSES)
def api_offer_lose(web: Web, who: Who, offer_id: OfferId) -> OfferOut:
    """已流失: the tenant does not renew."""
    return _act(web, who, offer_id, "lose")


@router.get("/offers", response_class=HTMLResponse)
def offers_page(
    request: Request,
    web: Web,
    who: Who,
    site: SiteQ = None,
    status: StatusQ = None,
    since: Annotated[date | None, Query(alias="from")] = None,
    until: Annotated[date | None, Query(alias="to")] = None,
) -> Response:
    """Offers (approval, state, one-click moves) and the funnel chart."""
    since, until = _period(web, since, until)
    funnel = web.offers.funnel(who, site=site or None, since=since, until=until)
    t = translations(language(request))
    chart = funnel_svg(
        [(t[f"offer_status_{s}"], funnel.counts.get(s, 0)) for s in STATES],
        t["offers_funnel"],
        t["offers_unit"],
    )
    return render(
        request,
        "offers.html",
        {
            "rows": web.offers.offers(who, site=site or None, status=status or None),
            "funnel": funnel,
            "chart": chart,
            "states": STATES,
            "next": NEXT,
            "site": site or "",
            "status": status or "",
            "since": since.isoformat(),
            "until": until.isoformat(),
            "may_move": who.role in OFFER_ROLES,
            "may_decide": who.role in APPROVER_ROLES,
            "error": request.query_params.get("error", "")[:300],
            "done": request.query_params.get("done", "")[:40],
        },
    )


@router.post("/leases/{lease_id}/offers", response_class=HTMLResponse)
def offer_form(
    request: Request,
    web: Web,
    who: Who,
    lease_id: LeaseId,
    rent_cny: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Make an offer from the lease page."""
    back = f"/leases/{lease_id}"
    if not re.fullmatch(YUAN, rent_cny) or _cents(rent_cny) <= 0:
        return _back(request, back, error=f"rent {rent_cny[:20]!r}: expected yuan like 8000.00")
    try:
        row = web.offers.make(who, lease_id, _cents(rent_cny))
    except UnknownRecord:
        return render(request, "error.html", {"message": "not_found"}, status_code=404)
    except (LeaseError, PermissionError) as exc:
        return _back(request, back, error=str(exc))
    return _back(request, back, offer=str(row.id))


def _offer_form(
    request: Request,
    web: WebServices,
    who: Principal,
    offer_id: int,
    action: str,
    allowed: set[str],
) -> Response:
    back = "/offers"
    if action not in allowed:
        return _back(request, back, error=f"action {action[:20]!r}: expected {', '.join(allowed)}")
    try:
        web.offers.act(who, offer_id, action)
    except UnknownRecord:
        return render(request, "error.html", {"message": "not_found"}, status_code=404)
    except (LeaseError, PermissionError) as exc:
        return _back(request, back, error=str(exc))
    return _back(request, back, done=str(offer_id))


@router.post("/offers/{offer_id}/move", response_class=HTMLResponse)
def offer_move_form(
    request: Request,
    web: Web,
    who: Who,
    offer_id: OfferId,
    action: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """One click: invite, negotiate, sign or lose."""
    return _offer_form(request, web, who, offer_id, action, {"invite", "negotiate", "sign", "lose"})


@router.post("/offers/{offer_id}/decide", response_class=HTMLResponse)
def offer_decide_form(
    request: Request,
    web: Web,
    who: Who,
    offer_id: OfferId,
    action: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """One click: approve or reject an offer outside its band."""
    return _offer_form(request, web, who, offer_id, action, {"approve", "reject"})
