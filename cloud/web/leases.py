"""Leases for the people who work them: a read-only list and a lease's page, with their JSON
API (admin, finance, managers, supervisors, legal; decision 0028).

Each caller sees the leases of their sites, and of their buildings when their account is
limited to some; a lease out of scope is not found (404). The sensitive fields (arrears,
credit notes, the tenant's ID number) are shown as :mod:`cloud.staff.visibility` decides for
the caller's role: withheld fields are ``null`` in the API and absent from the page, and
``withheld`` names them.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from cloud.leases.errors import PaymentConflict, PaymentError, UnknownRecord
from cloud.leases.models import LeaseStatus
from cloud.leases.offers import OFFER_READ_ROLES, OFFER_ROLES
from cloud.leases.roster import MAX_LIST, LeaseRow
from cloud.staff.accounts import PAYMENT_ROLES, Principal
from cloud.staff.visibility import withheld
from cloud.web import deposits, policies
from cloud.web.deps import WebServices, principal, web_services
from cloud.web.ledger import lease_page_context
from cloud.web.rendering import language, render

router = APIRouter(tags=["leases"])
Web = Annotated[WebServices, Depends(web_services)]
Who = Annotated[Principal, Depends(principal)]
SiteQ = Annotated[str | None, Query(max_length=64)]
BuildingQ = Annotated[str | None, Query(max_length=64)]
StatusQ = Annotated[
    str | None, Query(pattern="^(" + "|".join(s.value for s in LeaseStatus) + ")?$")
]
LimitQ = Annotated[int, Query(ge=1, le=MAX_LIST)]
LeaseId = Annotated[str, Path(min_length=1, max_length=64)]


class LeaseOut(BaseModel):
    """A lease as the caller's role may see it. Amounts in cents (None: withheld from the
    role); ``id_number`` masked (``110***********1234``) unless the role sees it in full."""

    id: str
    status: str
    kind: str
    site_id: str
    building: str
    unit_id: str
    unit_name: str
    tenant_id: str
    tenant_name: str
    id_number: str | None
    manager_id: str
    manager_name: str
    start_on: date
    end_on: date
    deposit_cents: int
    arrears_cents: int | None = Field(description="owed on invoices past due; None: withheld")
    credit_cents: int | None = Field(description="credit not yet applied; None: withheld")


class LeaseListOut(BaseModel):
    """The caller's leases and the sensitive fields their role does not see in full."""

    withheld: list[str]
    leases: list[LeaseOut]


class LeaseOneOut(BaseModel):
    withheld: list[str]
    lease: LeaseOut


def _blank(value: str | None) -> str | None:
    return value or None


def _list(
    web: WebServices,
    who: Principal,
    site: str | None,
    building: str | None,
    status: str | None,
    limit: int,
) -> list[LeaseRow]:
    return web.leases.leases(
        who, site=_blank(site), building=_blank(building), status=_blank(status), limit=limit
    )


@router.get("/leases", response_class=HTMLResponse)
def leases_page(
    request: Request,
    web: Web,
    who: Who,
    site: SiteQ = None,
    building: BuildingQ = None,
    status: StatusQ = None,
    limit: LimitQ = 500,
) -> HTMLResponse:
    """The leases of the caller's sites and buildings, by site, building and unit."""
    rows = _list(web, who, site, building, status, limit)
    return render(
        request,
        "leases.html",
        {
            "rows": rows,
            "withheld": withheld(who.role),
            "statuses": [s.value for s in LeaseStatus],
            "site": site or "",
            "building": building or "",
            "status": status or "",
        },
    )


@router.get("/leases/{lease_id}", response_class=HTMLResponse)
def lease_page(request: Request, web: Web, who: Who, lease_id: LeaseId) -> HTMLResponse:
    """One lease: its tenant, unit, manager, dates, (as the role allows) money, and its
    effective policy with where each value comes from."""
    try:
        row = web.leases.lease(who, lease_id)
    except UnknownRecord:
        return render(request, "error.html", {"message": "not_found"}, status_code=404)
    done = request.query_params.get("done", "")
    return render(
        request,
        "lease.html",
        {
            **lease_page_context(who, row, done),
            **_payment_context(request, web, who),
            "history": web.leases.history(who, lease_id, limit=200),
            "policy": policies.service(web).lease_policy(who, lease_id).sources,
            **_offer_context(request, web, who, row.id),
            **deposits.lease_deposit_context(web, who, row),
        },
    )


def _payment_context(
    request: Request,
    web: WebServices,
    who: Principal,
    error: str = "",
    form: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The lease page's 收款登记 form (roles that take money) and what the last payment
    recorded there did (from the redirect's query: integers only, nothing trusted)."""
    if who.role not in PAYMENT_ROLES:
        return {}
    q = request.query_params
    paid: dict[str, int] | None = None
    if q.get("done") == "payment":
        try:
            paid = {k: int(q.get(k, "")) for k in ("paid", "settled", "invoices", "credit", "dup")}
        except ValueError:
            paid = None
    return {
        "may_take_payment": True,
        "payment_done": paid,
        "payment_error": error,
        "payment_form": form or {},
        "today": web.leases.today().isoformat(),
    }


def _offer_context(request: Request, web: WebServices, who: Principal, lease_id: str) -> dict:
    """The lease page's renewal offers: the suggestion with its band and comparables, the
    lease's offers, the offer form (roles that make offers; decision 0034)."""
    if who.role not in OFFER_READ_ROLES:
        return {}
    try:
        suggestion = web.offers.suggestion(who, lease_id)
    except UnknownRecord:
        suggestion = None
    return {
        "suggestion": suggestion,
        "lease_offers": web.offers.offers(who, lease_id=lease_id, limit=20),
        "may_offer": who.role in OFFER_ROLES and suggestion is not None,
        "offer_error": request.query_params.get("error", "")[:300],
        "offer_made": request.query_params.get("offer", "")[:20],
    }


@router.get("/api/v1/leases", response_model=LeaseListOut)
def api_leases(
    web: Web,
    who: Who,
    site: SiteQ = None,
    building: BuildingQ = None,
    status: StatusQ = None,
    limit: LimitQ = 500,
) -> LeaseListOut:
    """The caller's leases (same order and scope as the page)."""
    rows = _list(web, who, site, building, status, limit)
    return LeaseListOut(withheld=withheld(who.role), leases=[LeaseOut(**r.as_dict()) for r in rows])


@router.get(
    "/api/v1/leases/{lease_id}",
    response_model=LeaseOneOut,
    responses={404: {"description": "no such lease in the caller's sites and buildings"}},
)
def api_lease(web: Web, who: Who, lease_id: LeaseId) -> LeaseOneOut:
    """One lease as the caller's role may see it."""
    try:
        row = web.leases.lease(who, lease_id)
    except UnknownRecord as exc:
        raise HTTPException(404, str(exc)) from None
    return LeaseOneOut(withheld=withheld(who.role), lease=LeaseOut(**row.as_dict()))


class ChangeOut(BaseModel):
    """A field changed: its value before and after (None: not there)."""

    field: str
    before: Any
    after: Any


class HistoryEntryOut(BaseModel):
    """One change to the lease: when, who, from where (``web …``, ``api …``, ``cli``), what."""

    at: datetime
    actor: str
    origin: str
    action: str
    changes: list[ChangeOut]
    note: str


@router.get(
    "/api/v1/leases/{lease_id}/history",
    response_model=list[HistoryEntryOut],
    responses={404: {"description": "no such lease in the caller's sites and buildings"}},
)
def api_lease_history(web: Web, who: Who, lease_id: LeaseId) -> list[HistoryEntryOut]:
    """Every recorded change to the lease, newest first: state changes, payments, offers,
    policy overrides and edits, with who made them, from where, and the values before and
    after."""
    try:
        entries = web.leases.history(who, lease_id)
    except UnknownRecord as exc:
        raise HTTPException(404, str(exc)) from None
    return [
        HistoryEntryOut(
            at=e.at,
            actor=e.actor,
            origin=e.origin,
            action=e.action,
            changes=[ChangeOut(field=f, before=b, after=a) for f, b, a in e.changes],
            note=e.note,
        )
        for e in entries
    ]


class PaymentIn(BaseModel):
    """A payment received: the amount in yuan (up to two decimals), the day, the bank's
    reference (one reference is one payment: sent again, it is not counted twice)."""

    amount_cny: str = Field(pattern=r"^[0-9]{1,10}(\.[0-9]{1,2})?$", examples=["8000.00"])
    received_on: date
    ref: str = Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f]+$")


class AllocationOut(BaseModel):
    invoice: str
    cents: int


class PaymentOut(BaseModel):
    """Where the payment went: the billing account (a child lease pays into its parent's),
    each invoice settled [cents], the credit left [cents]; ``duplicate``: recorded before."""

    payment_id: int
    account: str
    allocations: list[AllocationOut]
    credit_cents: int
    duplicate: bool


@router.post("/leases/{lease_id}/payments", response_class=HTMLResponse)
def lease_payment_form(
    request: Request,
    web: Web,
    who: Who,
    lease_id: LeaseId,
    amount: Annotated[str, Form(max_length=14)] = "",
    received_on: Annotated[str, Form(max_length=10)] = "",
    ref: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Record a payment received by hand (cash, a transfer, a card slip) from the lease's
    page: the same as ``POST /api/v1/leases/{id}/payments``; back to the page with what it
    settled, or the page with the refusal and the form as typed."""
    form = {"amount": amount, "received_on": received_on, "ref": ref}
    try:  # out of the caller's scope: not found, whatever the form says
        row = web.leases.lease(who, lease_id)
    except UnknownRecord:
        return render(request, "error.html", {"message": "not_found"}, status_code=404)
    try:
        cents = _payment_cents(amount)
        day = _payment_day(received_on)
        if not ref.strip() or any(ord(ch) < 32 for ch in ref):
            raise PaymentError(
                "ref: expected the receipt's or the bank's reference (1–64 characters)"
            )
        receipt = web.leases.record_payment(
            who, lease_id, cents=cents, received_on=day, ref=ref.strip()
        )
    except UnknownRecord:
        return render(request, "error.html", {"message": "not_found"}, status_code=404)
    except PaymentError as exc:
        return render(
            request,
            "lease.html",
            {
                **lease_page_context(who, row),
                **_payment_context(request, web, who, str(exc), form),
            },
            status_code=409 if isinstance(exc, PaymentConflict) else 422,
        )
    settled = sum(c for _, c in receipt.allocations)
    query = urlencode(
        {
            "lang": language(request),
            "done": "payment",
            "paid": cents,
            "settled": settled,
            "invoices": len(receipt.allocations),
            "credit": receipt.credit_cents,
            "dup": int(receipt.duplicate),
        }
    )
    return RedirectResponse(f"/leases/{quote(lease_id)}?{query}", 303)


def _payment_cents(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,10}(\.[0-9]{1,2})?", text.strip()):
        raise PaymentError(f"amount: expected yuan such as 8000.00, got {text[:20]!r}")
    cents = int(Decimal(text.strip()) * 100)
    if cents <= 0:
        raise PaymentError("amount: expected more than 0.00")
    return cents


def _payment_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise PaymentError(f"received on: expected YYYY-MM-DD, got {text[:20]!r}") from None


@router.post(
    "/api/v1/leases/{lease_id}/payments",
    response_model=PaymentOut,
    status_code=201,
    responses={
        404: {"description": "no such lease in the caller's sites and buildings"},
        409: {"description": "the reference is recorded with another amount or day"},
        422: {"description": "amount or day not accepted"},
    },
)
def api_lease_payment(web: Web, who: Who, lease_id: LeaseId, body: PaymentIn) -> PaymentOut:
    """Record a payment by hand and allocate it to the lease's open invoices, oldest first;
    what is left is credit. Admin, finance, managers (their buildings) and supervisors."""
    cents = int(Decimal(body.amount_cny) * 100)
    if cents <= 0:
        raise HTTPException(422, "amount_cny: expected more than 0.00")
    try:
        receipt = web.leases.record_payment(
            who, lease_id, cents=cents, received_on=body.received_on, ref=body.ref
        )
    except UnknownRecord as exc:
        raise HTTPException(404, str(exc)) from None
    except PaymentConflict as exc:
        raise HTTPException(409, str(exc)) from None
    except PaymentError as exc:
        raise HTTPException(422, str(exc)) from None
    return PaymentOut(
        payment_id=receipt.payment_id,
        account=receipt.account_id,
        allocations=[AllocationOut(invoice=i, cents=c) for i, c in receipt.allocations],
        credit_cents=receipt.credit_cents,
        duplicate=receipt.duplicate,
    )
