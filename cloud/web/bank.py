"""Bank statements and credit notes for the people who take payments (decision 0033): the
statement upload with its result, the unmatched queue (assign to a lease, dismiss as not
ours), credit notes requested and approved by another person; pages and their JSON API.

Import and assign: admin, finance, supervisors, managers (a lease of their buildings); legal
does not take money. Credit notes: requested by the same roles, approved or rejected by
finance, supervisors and admins, never by their requester. A lease or line out of the
caller's scope is not found (404). Amounts in the API are cents; yuan on the pages.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from cloud.leases import banking, credit_notes
from cloud.leases.bankfile import MAX_BYTES
from cloud.leases.banking import BankService
from cloud.leases.credit_notes import CreditNoteService
from cloud.leases.errors import (
    AlreadyDecided,
    BankFileError,
    BankLineError,
    LeaseError,
    NotPermitted,
    PaymentConflict,
    PaymentError,
    UnknownRecord,
)
from cloud.staff.accounts import Principal
from cloud.web.deps import WebServices, principal, web_services
from cloud.web.rendering import language, render

router = APIRouter(tags=["payments"])
Web = Annotated[WebServices, Depends(web_services)]
Who = Annotated[Principal, Depends(principal)]
LineId = Annotated[int, Path(ge=1, le=2**31 - 1)]
NoteId = Annotated[int, Path(ge=1, le=2**31 - 1)]
LeaseId = Annotated[str, Path(min_length=1, max_length=64)]
LineStatusQ = Annotated[str | None, Query(pattern="^(unmatched|matched|ignored)?$")]
NoteStatusQ = Annotated[str | None, Query(pattern="^(requested|approved|rejected)?$")]
LimitQ = Annotated[int, Query(ge=1, le=banking.MAX_LIST)]
YUAN = r"^[0-9]{1,10}(\.[0-9]{1,2})?$"


def bank(web: WebServices) -> BankService:
    """The bank service on the web services' registry and clock."""
    return BankService(web.leases.sessions, clock=web.leases.clock)


def notes(web: WebServices) -> CreditNoteService:
    """The credit-note service on the web services' registry and clock."""
    return CreditNoteService(web.leases.sessions, clock=web.leases.clock)


def status_of(exc: LeaseError) -> int:
    """The HTTP status of a service's refusal."""
    if isinstance(exc, UnknownRecord):
        return 404
    if isinstance(exc, NotPermitted):
        return 403
    if isinstance(exc, AlreadyDecided | PaymentConflict):
        return 409
    return 422


def error_key(exc: LeaseError) -> str:
    """The i18n key of a refusal shown on a page."""
    return {404: "bank_err_not_found", 403: "bank_err_four_eyes", 409: "bank_err_conflict"}.get(
        status_of(exc), "bank_err_invalid"
    )


# ----------------------------------------------------------------------------- JSON API


class SettledOut(BaseModel):
    invoice: str
    cents: int


class LineOutcomeOut(BaseModel):
    """One credit line of the statement and what became of it (``matched``, ``unmatched``,
    ``duplicate``: imported before); amounts [cents]; ``candidates``: lease ids."""

    row: int
    line_id: int | None
    booked_on: date
    cents: int
    payer: str
    payer_account: str
    reference: str
    serial: str
    status: str
    lease_id: str | None
    matched_by: str
    candidates: list[str]
    settled: list[SettledOut]
    credit_cents: int
    note: str


class ImportOut(BaseModel):
    """Counts and amounts [cents] per outcome; debit lines (money out) are ``ignored``;
    ``problems`` lists the malformed rows (a dry run only: an import with any is refused)."""

    dry_run: bool
    statement_sha256: str
    matched: int
    matched_cents: int
    unmatched: int
    unmatched_cents: int
    duplicate: int
    duplicate_cents: int
    ignored: int
    ignored_cents: int
    problems: list[str]
    lines: list[LineOutcomeOut]


class BankLineOut(BaseModel):
    """A stored bank line [cents]; ``settled``: the invoices its payment paid."""

    id: int
    row: int
    statement: str
    booked_on: date
    cents: int
    payer: str
    payer_account: str
    reference: str
    serial: str
    status: str
    lease_id: str | None
    payment_id: int | None
    matched_by: str
    candidates: list[str]
    note: str
    imported_by: str
    imported_at: datetime
    settled: list[SettledOut]


class BankLinesOut(BaseModel):
    lines: list[BankLineOut]


class AssignIn(BaseModel):
    lease_id: str = Field(min_length=1, max_length=64)


class DismissIn(BaseModel):
    reason: str = Field(min_length=1, max_length=banking.MAX_REASON)


class CreditNoteIn(BaseModel):
    """A credit note: yuan (up to two decimals) and why."""

    amount_cny: str = Field(pattern=YUAN, examples=["300.00"])
    reason: str = Field(min_length=1, max_length=credit_notes.MAX_REASON)


class DecisionIn(BaseModel):
    note: str = Field(default="", max_length=credit_notes.MAX_REASON)


class CreditNoteOut(BaseModel):
    """A credit note on a billing account [cents]: requested, approved or rejected."""

    id: int
    lease_id: str
    cents: int
    reason: str
    status: str
    requested_at: datetime
    requested_by: str
    decided_at: datetime | None
    decided_by: str | None
    decision_note: str


class CreditNotesOut(BaseModel):
    credit_notes: list[CreditNoteOut]


def _refused(exc: LeaseError) -> HTTPException:
    return HTTPException(status_of(exc), str(exc))


def _import_out(report: banking.ImportReport) -> ImportOut:
    return ImportOut(**report.summary(), lines=[o.as_dict() for o in report.outcomes])


@router.post(
    "/api/v1/bank-statements",
    response_model=ImportOut,
    status_code=201,
    responses={
        200: {"description": "a dry run: what would happen, nothing stored"},
        422: {"description": "not a statement, or (not a dry run) malformed rows"},
    },
)
async def api_bank_statement_import(
    web: Web,
    who: Who,
    file: Annotated[bytes, File(description=f"the statement CSV, at most {MAX_BYTES} bytes")],
    dry_run: Annotated[bool, Form()] = False,
) -> Any:
    """Import a bank statement (CSV, UTF-8 or GB18030): each new credit line is matched to a
    lease and recorded as its payment, or left unmatched; lines imported before are
    duplicates; debit lines are counted as ignored. ``dry_run``: what would happen, nothing
    stored, malformed rows listed. Admin, finance, managers (their buildings), supervisors."""
    from starlette.concurrency import run_in_threadpool

    try:
        report = await run_in_threadpool(bank(web).import_statement, who, file, dry_run=dry_run)
    except BankFileError as exc:
        return JSONResponse(status_code=422, content={"detail": str(exc), "problems": exc.problems})
    out = _import_out(report)
    return JSONResponse(status_code=200 if dry_run else 201, content=out.model_dump(mode="json"))


@router.get("/api/v1/bank-lines", response_model=BankLinesOut)
def api_bank_lines(
    web: Web, who: Who, status: LineStatusQ = None, limit: LimitQ = 500
) -> BankLinesOut:
    """Stored bank lines, newest first: unmatched and ignored ones, and the matched lines of
    the caller's leases; an unmatched line's candidates are the caller's leases only."""
    rows = bank(web).lines(who, status=status or None, limit=limit)
    return BankLinesOut(lines=[BankLineOut(**r.as_dict()) for r in rows])


@router.post(
    "/api/v1/bank-lines/{line_id}/assign",
    response_model=BankLineOut,
    responses={
        404: {"description": "no such line or lease the caller sees"},
        409: {"description": "the line is matched or ignored already"},
        422: {"description": "the line's day is out of the payments' bounds"},
    },
)
def api_bank_line_assign(web: Web, who: Who, line_id: LineId, body: AssignIn) -> BankLineOut:
    """Assign an unmatched line to a lease: it becomes the lease's payment (oldest invoice
    first, the rest credit) and the payer's bank account is remembered for the tenant."""
    try:
        row = bank(web).assign(who, line_id, body.lease_id)
    except LeaseError as exc:
        raise _refused(exc) from None
    return BankLineOut(**row.as_dict())


@router.post(
    "/api/v1/bank-lines/{line_id}/dismiss",
    response_model=BankLineOut,
    responses={404: {"description": "no such line"}, 409: {"description": "not unmatched"}},
)
def api_bank_line_dismiss(web: Web, who: Who, line_id: LineId, body: DismissIn) -> BankLineOut:
    """Mark an unmatched line as not ours (``ignored``), with the reason."""
    try:
        row = bank(web).dismiss(who, line_id, body.reason)
    except LeaseError as exc:
        raise _refused(exc) from None
    return BankLineOut(**row.as_dict())


def _cents(amount: str) -> int:
    return int(Decimal(amount) * 100)


@router.post(
    "/api/v1/leases/{lease_id}/credit-notes",
    response_model=CreditNoteOut,
    status_code=201,
    responses={404: {"description": "no such lease"}, 422: {"description": "bad amount"}},
)
def api_credit_note_request(
    web: Web, who: Who, lease_id: LeaseId, body: CreditNoteIn
) -> CreditNoteOut:
    """Request a credit note on the lease's billing account; another person approves it."""
    try:
        row = notes(web).request(who, lease_id, _cents(body.amount_cny), body.reason)
    except LeaseError as exc:
        raise _refused(exc) from None
    return CreditNoteOut(**row.as_dict())


@router.get("/api/v1/credit-notes", response_model=CreditNotesOut)
def api_credit_notes(web: Web, who: Who, status: NoteStatusQ = None) -> CreditNotesOut:
    """Credit notes of the caller's leases, newest first."""
    rows = notes(web).notes(who, status=status or None)
    return CreditNotesOut(credit_notes=[CreditNoteOut(**r.as_dict()) for r in rows])


def _decide(web: WebServices, who: Principal, note_id: int, approve: bool, note: str) -> Any:
    try:
        row = notes(web).decide(who, note_id, approve=approve, note=note)
    except LeaseError as exc:
        raise _refused(exc) from None
    return CreditNoteOut(**row.as_dict())


_DECIDE = {
    403: {"description": "the requester, or a role that does not approve"},
    404: {"description": "no such credit note on the caller's leases"},
    409: {"description": "decided already"},
}


@router.post(
    "/api/v1/credit-notes/{credit_note_id}/approve",
    response_model=CreditNoteOut,
    responses=_DECIDE,
)
def api_credit_note_approve(
    web: Web, who: Who, credit_note_id: NoteId, body: DecisionIn
) -> CreditNoteOut:
    """Approve a credit note (not one's own): its credit is applied by the next bill."""
    return _decide(web, who, credit_note_id, True, body.note)


@router.post(
    "/api/v1/credit-notes/{credit_note_id}/reject",
    response_model=CreditNoteOut,
    responses=_DECIDE,
)
def api_credit_note_reject(
    web: Web, who: Who, credit_note_id: NoteId, body: DecisionIn
) -> CreditNoteOut:
    """Reject a credit note (not one's own): nothing is credited."""
    return _decide(web, who, credit_note_id, False, body.note)


# ----------------------------------------------------------------------------- pages


def _bank_context(web: WebServices, who: Principal, **extra: Any) -> dict[str, Any]:
    service = bank(web)
    return {
        "unmatched": service.lines(who, status=banking.UNMATCHED, limit=200),
        "matched": service.lines(who, status=banking.MATCHED, limit=50),
        "max_mib": MAX_BYTES // (1024 * 1024),
        "report": None,
        "problems": [],
        **extra,
    }


@router.get("/payments/bank", response_class=HTMLResponse)
def bank_page(request: Request, web: Web, who: Who) -> HTMLResponse:
    """The statement upload, the unmatched queue and the lines matched lately."""
    query = request.query_params
    context = _bank_context(web, who, error=query.get("error", ""), done=query.get("done", ""))
    return render(request, "payments_bank.html", context)


@router.post("/payments/bank", response_class=HTMLResponse)
async def bank_upload_form(
    request: Request,
    web: Web,
    who: Who,
    file: Annotated[bytes, File()] = b"",
    dry_run: Annotated[str, Form(max_length=8)] = "",
) -> HTMLResponse:
    """Upload a statement: the page again with each line's outcome (or the malformed rows)."""
    from starlette.concurrency import run_in_threadpool

    if not file:
        context = await run_in_threadpool(_bank_context, web, who, error="bank_err_no_file")
        return render(request, "payments_bank.html", context, status_code=400)
    try:
        report = await run_in_threadpool(
            bank(web).import_statement, who, file, dry_run=bool(dry_run)
        )
    except BankFileError as exc:
        context = await run_in_threadpool(
            _bank_context, web, who, error="bank_err_file", problems=exc.problems
        )
        return render(request, "payments_bank.html", context, status_code=422)
    context = await run_in_threadpool(_bank_context, web, who, report=report)
    return render(request, "payments_bank.html", context)


def _back(request: Request, page: str, **query: str) -> RedirectResponse:
    return RedirectResponse(f"{page}?{urlencode({'lang': language(request), **query})}", 303)


@router.post("/payments/bank/lines/{line_id}/assign", response_class=HTMLResponse)
def bank_assign_form(
    request: Request,
    web: Web,
    who: Who,
    line_id: LineId,
    lease_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Assign an unmatched line to a lease from the queue."""
    try:
        bank(web).assign(who, line_id, lease_id.strip())
    except UnknownRecord:
        return render(request, "error.html", {"message": "not_found"}, status_code=404)
    except (PaymentError, AlreadyDecided) as exc:
        return _back(request, "/payments/bank", error=error_key(exc))
    return _back(request, "/payments/bank", done="assigned")


@router.post("/payments/bank/lines/{line_id}/dismiss", response_class=HTMLResponse)
def bank_dismiss_form(
    request: Request,
    web: Web,
    who: Who,
    line_id: LineId,
    reason: Annotated[str, Form(max_length=banking.MAX_REASON)] = "",
) -> Response:
    """Dismiss an unmatched line as not ours, with the reason."""
    try:
        bank(web).dismiss(who, line_id, reason)
    except UnknownRecord:
        return render(request, "error.html", {"message": "not_found"}, status_code=404)
    except (BankLineError, AlreadyDecided) as exc:
        return _back(request, "/payments/bank", error=error_key(exc))
    return _back(request, "/payments/bank", done="dismissed")


@router.get("/payments/credit-notes", response_class=HTMLResponse)
def credit_notes_page(request: Request, web: Web, who: Who) -> HTMLResponse:
    """Credit notes of the caller's leases: the request form, approve and reject."""
    query = request.query_params
    return render(
        request,
        "payments_credit_notes.html",
        {
            "items": notes(web).notes(who),
            "approver": who.role in credit_notes.APPROVER_ROLES,
            "error": query.get("error", ""),
            "done": query.get("done", ""),
        },
    )


@router.post("/payments/credit-notes", response_class=HTMLResponse)
def credit_note_request_form(
    request: Request,
    web: Web,
    who: Who,
    lease_id: Annotated[str, Form(max_length=64)] = "",
    amount_cny: Annotated[str, Form(max_length=16)] = "",
    reason: Annotated[str, Form(max_length=credit_notes.MAX_REASON)] = "",
) -> Response:
    """Request a credit note from the page."""
    import re

    if not re.fullmatch(YUAN[1:-1], amount_cny.strip()):
        return _back(request, "/payments/credit-notes", error="bank_err_amount")
    try:
        notes(web).request(who, lease_id.strip(), _cents(amount_cny.strip()), reason)
    except UnknownRecord:
        return render(request, "error.html", {"message": "not_found"}, status_code=404)
    except LeaseError as exc:
        return _back(request, "/payments/credit-notes", error=error_key(exc))
    return _back(request, "/payments/credit-notes", done="requested")


@router.post("/payments/credit-notes/{credit_note_id}/{decision}", response_class=HTMLResponse)
def credit_note_decide_form(
    request: Request,
    web: Web,
    who: Who,
    credit_note_id: NoteId,
    decision: Annotated[str, Path(pattern="^(approve|reject)$")],
    note: Annotated[str, Form(max_length=credit_notes.MAX_REASON)] = "",
) -> Response:
    """Approve or reject a credit note from the page."""
    try:
        notes(web).decide(who, credit_note_id, approve=decision == "approve", note=note)
    except UnknownRecord:
        return render(request, "error.html", {"message": "not_found"}, status_code=404)
    except LeaseError as exc:
        return _back(request, "/payments/credit-notes", error=error_key(exc))
    return _back(request, "/payments/credit-notes", done=f"{decision}d")
