"""Deposit refunds (退押金): the JSON API and the pages (decision 0041).

Thin handlers over :class:`cloud.leases.deposit_desk.DepositDesk`, which applies the roles,
the caller's scope (a refund out of it is not found, 404) and four eyes. A step the refund's
state does not allow answers 409 with the reason; input out of bounds 422; an evidence file
over 10 MB (or too many files) 413; a role that may not act 403. Pages redirect back to the
refund with the outcome. Amounts in the API are integer cents; typed in, yuan (``300.00``).
Evidence files are served back as stored (their content type), as attachments, never sniffed.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, HTTPException, Path, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from cloud.leases import deposits as refunds_flow
from cloud.leases.deposit_desk import (
    MAX_REASON,
    READ_ROLES,
    STEPS,
    WORK_ROLES,
    DepositDesk,
    RefundRow,
)
from cloud.leases.errors import (
    DepositInputError,
    EvidenceMissing,
    EvidenceTooLarge,
    LeaseError,
    NotPermitted,
    UnknownRecord,
)
from cloud.leases.evidence import MAX_BYTES
from cloud.leases.models import LeaseStatus
from cloud.leases.roster import LeaseRow
from cloud.staff.accounts import Principal
from cloud.web.deps import WebServices, principal, web_services
from cloud.web.rendering import language, render

router = APIRouter(tags=["deposits"])
Web = Annotated[WebServices, Depends(web_services)]
Who = Annotated[Principal, Depends(principal)]
RefundId = Annotated[int, Path(ge=1, le=2**31 - 1)]
LeaseId = Annotated[str, Path(min_length=1, max_length=64)]
Sha = Annotated[str, Path(pattern="^[0-9a-f]{64}$")]
StateQ = Annotated[str | None, Query(pattern="^(" + "|".join(STEPS) + ")?$")]
YUAN = r"[0-9]{1,10}(\.[0-9]{1,2})?"
_EXT = {"image/jpeg": "jpg", "image/png": "png", "application/pdf": "pdf"}


def desk(web: WebServices) -> DepositDesk:
    """The deposit desk on the web services' registry and clock."""
    return DepositDesk(web.leases.sessions, clock=web.leases.clock)


def _refused(exc: Exception) -> HTTPException:
    if isinstance(exc, UnknownRecord):
        return HTTPException(404, str(exc))
    if isinstance(exc, NotPermitted | PermissionError):
        return HTTPException(403, str(exc))
    if isinstance(exc, EvidenceTooLarge):
        return HTTPException(413, str(exc))
    if isinstance(exc, DepositInputError | EvidenceMissing):
        return HTTPException(422, str(exc))
    return HTTPException(409, str(exc))


# -------------------------------------------------------------------------------------- API


class StepOut(BaseModel):
    """A step done: ``state`` requested, inspected, settled, approved or paid."""

    state: str
    at: datetime
    by: str


class EvidenceFileOut(BaseModel):
    sha256: str
    content_type: str


class DeductionOut(BaseModel):
    """A deduction [cents] and its evidence files."""

    id: int
    reason: str
    cents: int
    evidence_uri: str
    files: list[EvidenceFileOut]
    added_at: datetime
    added_by: str


class RefundOut(BaseModel):
    """A deposit refund: amounts [cents] (``refund_cents`` None before the settlement), the
    step waited for (``inspection``, ``settlement``, ``approval``, ``payment``; None when
    paid), when its SLA runs out (UTC) and its colour (red, amber, green)."""

    id: int
    lease_id: str
    state: str
    site_id: str
    building: str
    unit_name: str
    tenant_name: str
    deposit_cents: int
    deductions_cents: int
    refund_cents: int | None
    shortfall_cents: int
    arrears_cents: int = Field(
        0, description="of the deposit left after the deductions, what paid unpaid invoices"
    )
    waiting_for: str | None
    due_at: datetime | None
    sla: str | None
    payment_ref: str | None
    steps: list[StepOut]
    deductions: list[DeductionOut]


class RefundsOut(BaseModel):
    refunds: list[RefundOut]


class PayIn(BaseModel):
    """The bank transfer's number of the refund paid."""

    reference: str = Field(min_length=1, max_length=refunds_flow.MAX_REFERENCE)


def _out(row: RefundRow) -> RefundOut:
    return RefundOut(**row.as_dict())


_ACT: dict[int | str, dict[str, str]] = {
    403: {"description": "a role that does not do this step, or (approve) who settled it"},
    404: {"description": "no such refund in the caller's scope"},
    409: {"description": "the refund's state does not allow the step"},
}


@router.get("/api/v1/deposits", response_model=RefundsOut)
def api_deposits(web: Web, who: Who, state: StateQ = None) -> RefundsOut:
    """Deposit refunds of the caller's leases, the most urgent first (at most 500)."""
    try:
        rows = desk(web).refunds(who, state=state or None)
    except LeaseError as exc:
        raise _refused(exc) from None
    return RefundsOut(refunds=[_out(r) for r in rows])


@router.get(
    "/api/v1/deposits/{refund_id}",
    response_model=RefundOut,
    responses={404: _ACT[404]},
)
def api_deposit(web: Web, who: Who, refund_id: RefundId) -> RefundOut:
    """One refund with its steps (who, when) and deductions (with evidence)."""
    try:
        return _out(desk(web).refund(who, refund_id))
    except LeaseError as exc:
        raise _refused(exc) from None


@router.post(
    "/api/v1/leases/{lease_id}/deposit-refund",
    response_model=RefundOut,
    status_code=201,
    responses={**_ACT, 409: {"description": "the lease is not terminated, or requested"}},
)
def api_deposit_request(web: Web, who: Who, lease_id: LeaseId) -> RefundOut:
    """Request the refund of a terminated lease's deposit."""
    try:
        return _out(desk(web).request(who, lease_id))
    except LeaseError as exc:
        raise _refused(exc) from None


async def _read(files: list[UploadFile]) -> list[tuple[str, bytes]]:
    """The uploaded files as (name, bytes), each read to one byte past its bound."""
    out = []
    for f in files:
        content = await f.read(MAX_BYTES + 1)
        if content or f.filename:
            out.append((f.filename or "", content))
    return out


def _cents(yuan: str) -> int:
    if not re.fullmatch(YUAN, yuan.strip()):
        raise DepositInputError(f"amount {yuan[:20]!r}: expected yuan like 300.00")
    return int(Decimal(yuan.strip()) * 100)


@router.post(
    "/api/v1/deposits/{refund_id}/deductions",
    response_model=RefundOut,
    status_code=201,
    responses={
        **_ACT,
        413: {"description": "a file over 10 MB, or more files than a refund keeps"},
        422: {"description": "no file, a file not JPEG/PNG/PDF, an amount or reason refused"},
    },
)
async def api_deposit_deduct(
    web: Web,
    who: Who,
    refund_id: RefundId,
    amount_cny: Annotated[str, Form(max_length=16, description="yuan, e.g. 300.00")],
    reason: Annotated[str, Form(max_length=MAX_REASON)],
    evidence: Annotated[
        list[UploadFile] | None, File(description="JPEG, PNG or PDF, ≤ 10 MB each, ≤ 3")
    ] = None,
) -> RefundOut:
    """Add a deduction with its evidence files (multipart) before the settlement."""
    files = await _read(evidence or [])
    try:
        row = await run_in_threadpool(
            lambda: desk(web).deduct(
                who, refund_id, cents=_cents(amount_cny), reason=reason, files=files
            )
        )
    except LeaseError as exc:
        raise _refused(exc) from None
    return _out(row)


class TakeBackIn(BaseModel):
    """Why a deduction added by mistake is taken back."""

    reason: str = Field(min_length=1, max_length=MAX_REASON, pattern=r"^[^\x00-\x1f]+$")


DeductionId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post(
    "/api/v1/deposits/{refund_id}/deductions/{deduction_id}/remove",
    response_model=RefundOut,
    responses=_ACT,
)
def api_deposit_deduction_remove(
    web: Web, who: Who, refund_id: RefundId, deduction_id: DeductionId, body: TakeBackIn
) -> RefundOut:
    """Take back a deduction added by mistake, before the settlement (audited with why)."""
    try:
        return _out(desk(web).remove_deduction(who, refund_id, deduction_id, reason=body.reason))
    except LeaseError as exc:
        raise _refused(exc) from None


def _act(web: WebServices, who: Principal, refund_id: int, step: str, ref: str = "") -> RefundOut:
    try:
        return _out(desk(web).act(who, refund_id, step, ref))
    except LeaseError as exc:
        raise _refused(exc) from None


@router.post("/api/v1/deposits/{refund_id}/inspect", response_model=RefundOut, responses=_ACT)
def api_deposit_inspect(web: Web, who: Who, refund_id: RefundId) -> RefundOut:
    """requested → inspected (the unit is inspected; deductions may still be added)."""
    return _act(web, who, refund_id, "inspect")


@router.post("/api/v1/deposits/{refund_id}/settle", response_model=RefundOut, responses=_ACT)
def api_deposit_settle(web: Web, who: Who, refund_id: RefundId) -> RefundOut:
    """inspected → settled: refund = deposit − deductions; the tenant is told."""
    return _act(web, who, refund_id, "settle")


@router.post("/api/v1/deposits/{refund_id}/approve", response_model=RefundOut, responses=_ACT)
def api_deposit_approve(web: Web, who: Who, refund_id: RefundId) -> RefundOut:
    """settled → approved (a supervisor, finance or admin who did not settle it)."""
    return _act(web, who, refund_id, "approve")


@router.post("/api/v1/deposits/{refund_id}/pay", response_model=RefundOut, responses=_ACT)
def api_deposit_pay(web: Web, who: Who, refund_id: RefundId, body: PayIn) -> RefundOut:
    """approved → paid, with the bank transfer's number; the tenant is told."""
    return _act(web, who, refund_id, "pay", body.reference)


@router.get(
    "/api/v1/deposits/{refund_id}/evidence/{sha256}",
    response_class=Response,
    responses={200: {"content": {t: {} for t in _EXT}}, 404: _ACT[404]},
)
def api_deposit_evidence(web: Web, who: Who, refund_id: RefundId, sha256: Sha) -> Response:
    """An evidence file of one of the refund's deductions, as an attachment."""
    try:
        kind, content = desk(web).evidence(who, refund_id, sha256)
    except LeaseError as exc:
        raise _refused(exc) from None
    name = f"evidence-{refund_id}-{sha256[:12]}.{_EXT.get(kind, 'bin')}"
    return Response(
        content,
        media_type=kind,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


# ------------------------------------------------------------------------------------ pages


def lease_deposit_context(web: WebServices, who: Principal, row: LeaseRow) -> dict[str, Any]:
    """The lease page's deposit part: a terminated lease's refund (a link), or the request
    form for the roles that request one."""
    if row.status != LeaseStatus.TERMINATED or who.role not in READ_ROLES:
        return {}
    found = desk(web).refunds(who, lease_id=row.id, limit=1)
    return {
        "deposit_refund": found[0] if found else None,
        "may_request_refund": not found and who.role in WORK_ROLES,
    }


def _back(request: Request, path: str, **query: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?{urlencode({'lang': language(request), **query})}", 303)


@router.get("/deposits", response_class=HTMLResponse)
def deposits_page(request: Request, web: Web, who: Who, state: StateQ = None) -> Response:
    """Deposit refunds with their SLA colours; a state filter."""
    return render(
        request,
        "deposits.html",
        {"rows": desk(web).refunds(who, state=state or None), "states": STEPS, "state": state},
    )


@router.get("/deposits/{refund_id}", response_class=HTMLResponse)
def deposit_page(request: Request, web: Web, who: Who, refund_id: RefundId) -> Response:
    """One refund: its steps, its deductions with evidence, the form of the next step."""
    service = desk(web)
    try:
        row = service.refund(who, refund_id)
    except UnknownRecord:
        return render(request, "error.html", {"message": "not_found"}, status_code=404)
    return render(
        request,
        "deposit.html",
        {
            "r": row,
            "acts": service.acts_for(who, row),
            "error": request.query_params.get("error", "")[:400],
            "done": request.query_params.get("done", "")[:20],
        },
    )


def _page_act(request: Request, refund_id: int, run: Any, done: str) -> Response:
    back = f"/deposits/{refund_id}"
    try:
        run()
    except UnknownRecord:
        return render(request, "error.html", {"message": "not_found"}, status_code=404)
    except LeaseError as exc:
        return _back(request, back, error=str(exc))
    return _back(request, back, done=done)


@router.post("/leases/{lease_id}/deposit-refund", response_class=HTMLResponse)
def deposit_request_form(request: Request, web: Web, who: Who, lease_id: LeaseId) -> Response:
    """申请退押金 from the lease page: the refund's page next."""
    try:
        row = desk(web).request(who, lease_id)
    except UnknownRecord:
        return render(request, "error.html", {"message": "not_found"}, status_code=404)
    except LeaseError as exc:
        return _back(request, f"/leases/{lease_id}", error=str(exc))
    return _back(request, f"/deposits/{row.id}", done="request")


@router.post("/deposits/{refund_id}/deductions", response_class=HTMLResponse)
async def deposit_deduct_form(
    request: Request,
    web: Web,
    who: Who,
    refund_id: RefundId,
    amount_cny: Annotated[str, Form(max_length=16)] = "",
    reason: Annotated[str, Form(max_length=MAX_REASON)] = "",
    evidence: Annotated[list[UploadFile] | None, File()] = None,
) -> Response:
    """Add a deduction with its evidence files from the refund's page."""
    files = await _read(evidence or [])

    def run() -> None:
        desk(web).deduct(who, refund_id, cents=_cents(amount_cny), reason=reason, files=files)

    return await run_in_threadpool(_page_act, request, refund_id, run, "deduct")


@router.post("/deposits/{refund_id}/deductions/{deduction_id}/remove", response_class=HTMLResponse)
def deposit_deduction_remove_form(
    request: Request,
    web: Web,
    who: Who,
    refund_id: RefundId,
    deduction_id: DeductionId,
    reason: Annotated[str, Form(max_length=MAX_REASON)] = "",
) -> Response:
    """Take back a deduction from the refund's page, saying why."""
    return _page_act(
        request,
        refund_id,
        lambda: desk(web).remove_deduction(who, refund_id, deduction_id, reason=reason),
        "remove",
    )


def _step_form(
    request: Request, web: WebServices, who: Principal, refund_id: int, step: str, ref: str = ""
) -> Response:
    return _page_act(request, refund_id, lambda: desk(web).act(who, refund_id, step, ref), step)


@router.post("/deposits/{refund_id}/inspect", response_class=HTMLResponse)
def deposit_inspect_form(request: Request, web: Web, who: Who, refund_id: RefundId) -> Response:
    """The inspection is done."""
    return _step_form(request, web, who, refund_id, "inspect")


@router.post("/deposits/{refund_id}/settle", response_class=HTMLResponse)
def deposit_settle_form(request: Request, web: Web, who: Who, refund_id: RefundId) -> Response:
    """Settle: refund = deposit − deductions."""
    return _step_form(request, web, who, refund_id, "settle")


@router.post("/deposits/{refund_id}/approve", response_class=HTMLResponse)
def deposit_approve_form(
    request: Request,
    web: Web,
    who: Who,
    refund_id: RefundId,
    confirm: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Approve the settlement (confirmed on the form)."""
    if confirm != "yes":
        return _back(request, f"/deposits/{refund_id}", error="confirm: tick the box to approve")
    return _step_form(request, web, who, refund_id, "approve")


@router.post("/deposits/{refund_id}/pay", response_class=HTMLResponse)
def deposit_pay_form(
    request: Request,
    web: Web,
    who: Who,
    refund_id: RefundId,
    reference: Annotated[str, Form(max_length=refunds_flow.MAX_REFERENCE)] = "",
    confirm: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Record the payment with the bank transfer's number (confirmed on the form)."""
    if confirm != "yes":
        return _back(request, f"/deposits/{refund_id}", error="confirm: tick the box to pay")
    return _step_form(request, web, who, refund_id, "pay", reference)
