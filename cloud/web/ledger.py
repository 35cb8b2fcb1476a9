"""The lease ledger (台账) and lease operations on the web: the import page
(``/leases/import``: upload, the dry run's bad cells, then import), the template and export
downloads, and sign / hand over / renew / terminate on a lease's page and in the API
(admin, managers in their buildings, supervisors; decision 0032).

Thin: the work is :class:`cloud.leases.ledger.LeaseLedger` and
:class:`cloud.leases.operations.LeaseOperations`. A lease out of the caller's scope is not
found (404); a move its state does not allow is 409; a value not accepted 422.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal
from typing import Annotated, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, File, Form, HTTPException, Path, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from cloud.leases.errors import (
    IllegalTransition,
    LeaseError,
    NotPermitted,
    RenewalBlocked,
    TermsError,
    UnknownRecord,
)
from cloud.leases.ledger import LeaseLedger, LedgerReport, template
from cloud.leases.ledger_cells import Issue
from cloud.leases.ledger_columns import MAX_LEDGER_BYTES
from cloud.leases.operations import MAX_REASON, SIGN_METHODS, Done, LeaseOperations
from cloud.leases.roster import LeaseRow
from cloud.staff.accounts import LEDGER_ROLES, Principal
from cloud.staff.visibility import withheld
from cloud.web.deps import WebServices, principal, web_services
from cloud.web.rendering import language, render, translations
from cloud.web.uploads import carry, form_file

router = APIRouter(tags=["ledger"])
Web = Annotated[WebServices, Depends(web_services)]
Who = Annotated[Principal, Depends(principal)]
LeaseId = Annotated[str, Path(min_length=1, max_length=64)]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: the largest checked file the page carries to its import button [bytes] (a form's text
#: field is bounded at 1 MiB; a bigger file is chosen again and imported directly)
MAX_CARRIED = 700 * 1024
YUAN = r"^[0-9]{1,10}(\.[0-9]{1,2})?$"


#: the operations a lease's page offers, by the lease's state
OPERATIONS = {
    "draft": ("sign",),
    "signed": ("handover", "terminate"),
    "active": ("terminate",),
    "expiring": ("renew", "terminate"),
    "open_ended": ("renew", "terminate"),
}


def lease_page_context(who: Principal, row: LeaseRow, done: str = "") -> dict[str, object]:
    """What ``lease.html`` shows of a lease for ``who``: the fields their role sees, and the
    operations they may do on it (none for a role that does not change leases)."""
    ops = OPERATIONS.get(row.status, ()) if who.role in LEDGER_ROLES else ()
    return {
        "r": row,
        "withheld": withheld(who.role),
        "operations": ops,
        "sign_methods": SIGN_METHODS,
        "done": done if done in ("sign", "handover", "renew", "terminate") else "",
    }


def _ledger(web: WebServices) -> LeaseLedger:
    return LeaseLedger(web.leases.sessions, clock=web.leases.clock)


def _ops(web: WebServices) -> LeaseOperations:
    return LeaseOperations(web.leases.sessions, clock=web.leases.clock)


async def _read(upload: UploadFile) -> bytes:
    return await upload.read(MAX_LEDGER_BYTES + 1)


class IssueOut(BaseModel):
    """A reason the file is refused: sheet, row and column (None: the whole sheet or row)
    and the message naming all three and what was expected."""

    sheet: str
    row: int | None
    column: str | None
    message: str


class LedgerReportOut(BaseModel):
    """What the import did (``stored``) or would do (dry run); ``issues`` refuse the file."""

    dry_run: bool
    stored: bool
    ok: bool
    created: list[str]
    updated: list[str]
    unchanged: int
    tenants: int
    units: int
    issues: list[IssueOut]


@router.get(
    "/api/v1/ledger/template",
    response_class=Response,
    responses={200: {"content": {XLSX: {}}, "description": "the empty ledger workbook"}},
)
def api_ledger_template() -> Response:
    """The empty ledger workbook (sheets 租户 Tenants, 单元 Units, 租约 Leases, 租金阶梯 Rent
    steps, 说明 Notes)."""
    return Response(
        template(),
        media_type=XLSX,
        headers={"Content-Disposition": 'attachment; filename="ledger-template.xlsx"'},
    )


@router.get(
    "/api/v1/ledger/export",
    response_class=Response,
    responses={
        200: {"content": {XLSX: {}, "text/csv": {}}, "description": "the site's ledger"},
        404: {"description": "not one of the caller's sites"},
    },
)
def api_ledger_export(
    web: Web,
    who: Who,
    site: Annotated[str, Query(min_length=1, max_length=64)],
    format: Annotated[Literal["xlsx", "csv"], Query()] = "xlsx",
) -> Response:
    """The site's ledger within the caller's buildings, in the template's form (importing it
    again changes nothing)."""
    try:
        data = _ledger(web).export(who, site, format)
    except UnknownRecord as exc:
        raise HTTPException(404, str(exc)) from None
    media = XLSX if format == "xlsx" else "text/csv; charset=utf-8"
    name = quote(f"ledger-{site}.{format}")
    return Response(
        data,
        media_type=media,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{name}"},
    )


@router.post(
    "/api/v1/ledger/import",
    response_model=LedgerReportOut,
    responses={
        413: {"description": "the file is larger than 4 MiB"},
        422: {"description": "the file has errors (every bad cell listed); nothing stored"},
    },
)
async def api_ledger_import(
    web: Web,
    who: Who,
    file: Annotated[UploadFile, File(description="the ledger: .xlsx (the template) or .csv")],
    dry_run: Annotated[bool, Query()] = True,
) -> Response:
    """Check (``dry_run=true``, the default) or import the ledger. Every bad cell is listed
    by sheet, row and column, with the cross-row errors; nothing is stored unless the whole
    file is good (422 otherwise). The same file again changes nothing."""
    data = await _read(file)
    if len(data) > MAX_LEDGER_BYTES:
        raise HTTPException(413, f"file: larger than {MAX_LEDGER_BYTES // 2**20} MiB")
    report = _ledger(web).import_file(who, data, file.filename or "", dry_run=dry_run)
    return JSONResponse(report.as_dict(), status_code=422 if report.issues else 200)


# ----------------------------------------------------------------------------- the page


def issue_text(issue: Issue, t: Mapping[str, str]) -> tuple[str, str]:
    """A bad cell's problem in the reader's language, worded from its code and values when
    the page has words for it (language tag ""), else its English message (tag "en")."""
    words = t.get(f"ledger_err_{issue.code}") if issue.code else None
    try:
        return (words.format(**issue.params), "") if words else (issue.message, "en")
    except (KeyError, IndexError):  # words that name a value the issue lacks
        return issue.message, "en"


def _page(request: Request, who: Principal, **extra: object) -> HTMLResponse:
    status = int(extra.pop("status_code", 200))  # type: ignore[call-overload]
    report = extra.get("report")
    if isinstance(report, LedgerReport):
        t = translations(language(request))
        extra["problems"] = [(i, *issue_text(i, t)) for i in report.issues]
    return render(
        request,
        "ledger_import.html",
        {"sites": sorted(who.sites), "max_mib": MAX_LEDGER_BYTES // 2**20, **extra},
        status_code=status,
    )


@router.get("/leases/import", response_class=HTMLResponse)
def ledger_import_page(request: Request, who: Who) -> HTMLResponse:
    """Upload a ledger (the template filled in, or a CSV): check it, then import it."""
    return _page(request, who)


@router.post("/leases/import", response_class=HTMLResponse)
async def ledger_import_form(
    request: Request,
    web: Web,
    who: Who,
    file: Annotated[UploadFile | None, File()] = None,
    action: Annotated[Literal["check", "import"], Form()] = "check",
    carried: Annotated[str, Form(max_length=MAX_CARRIED * 2)] = "",
    filename: Annotated[str, Form(max_length=200)] = "",
) -> HTMLResponse:
    """Check the uploaded ledger (dry run) and show every bad cell; a clean check offers
    the import of the same file; import stores it (all or nothing)."""
    data, name = await form_file(file, carried, filename, MAX_LEDGER_BYTES)
    if not data:
        return _page(request, who, problem="no_file", status_code=400)
    report: LedgerReport = _ledger(web).import_file(who, data, name, dry_run=action == "check")
    carried = carry(data, MAX_CARRIED) if not report.issues and action == "check" else ""
    return _page(
        request,
        who,
        report=report,
        filename=name,
        carried=carried,
        status_code=422 if report.issues else 200,
    )


# ----------------------------------------------------------------------------- operations


class SignIn(BaseModel):
    """Signing: the day (default today, local) and how (``paper`` or ``e-sign``)."""

    signed_on: date | None = None
    how: Literal["paper", "e-sign"] = "paper"


class HandoverIn(BaseModel):
    """Handing the unit over (activation): the day (default today, local)."""

    handed_over_on: date | None = None


class RenewIn(BaseModel):
    """A renewal: the new monthly rent in yuan (default: the rent in force), the new term
    in months (default: the lease's renewal term), the successor's start (default: the
    contract end, or today for an open-ended lease)."""

    monthly_rent_cny: str | None = Field(None, pattern=YUAN, examples=["5200.00"])
    term_months: int | None = Field(None, ge=1, le=120)
    start_on: date | None = None


class TerminateIn(BaseModel):
    """A termination (move-out): the move-out day (the first day not billed; default today)
    and why."""

    move_out_on: date | None = None
    reason: str = Field(min_length=1, max_length=MAX_REASON, pattern=r"^[^\x00-\x1f]+$")


class LeaseOpOut(BaseModel):
    """The lease's state after the operation; ``successor``: a renewal's new lease."""

    lease: str
    status: str
    successor: str | None


_OP_ERRORS = {
    404: {"description": "no such lease in the caller's sites and buildings"},
    409: {"description": "the lease's state does not allow it (or arrears block a renewal)"},
    422: {"description": "a value not accepted (a day more than a year away ...)"},
}


def _op(call: Callable[[], Done]) -> LeaseOpOut:
    try:
        done = call()
    except UnknownRecord as exc:
        raise HTTPException(404, str(exc)) from None
    except NotPermitted as exc:
        raise HTTPException(403, str(exc)) from None
    except (IllegalTransition, RenewalBlocked) as exc:
        raise HTTPException(409, str(exc)) from None
    except LeaseError as exc:
        raise HTTPException(422, str(exc)) from None
    return LeaseOpOut(lease=done.lease_id, status=done.status, successor=done.successor)


def _cents(yuan: str | None) -> int | None:
    return None if not yuan else int(Decimal(yuan) * 100)


@router.post("/api/v1/leases/{lease_id}/sign", response_model=LeaseOpOut, responses=_OP_ERRORS)
def api_lease_sign(web: Web, who: Who, lease_id: LeaseId, body: SignIn) -> LeaseOpOut:
    """draft → signed: the day and how it was signed (paper, e-sign); audited."""
    return _op(lambda: _ops(web).sign(who, lease_id, on=body.signed_on, how=body.how))


@router.post("/api/v1/leases/{lease_id}/handover", response_model=LeaseOpOut, responses=_OP_ERRORS)
def api_lease_handover(web: Web, who: Who, lease_id: LeaseId, body: HandoverIn) -> LeaseOpOut:
    """signed → active: the keys handed over (rent plan, meters bound, statement access)."""
    return _op(lambda: _ops(web).hand_over(who, lease_id, on=body.handed_over_on))


@router.post("/api/v1/leases/{lease_id}/renew", response_model=LeaseOpOut, responses=_OP_ERRORS)
def api_lease_renew(web: Web, who: Who, lease_id: LeaseId, body: RenewIn) -> LeaseOpOut:
    """expiring | open-ended → renewed, with a successor lease at the new rent and term."""
    return _op(
        lambda: _ops(web).renew(
            who,
            lease_id,
            monthly_cents=_cents(body.monthly_rent_cny),
            term_months=body.term_months,
            start_on=body.start_on,
        )
    )


@router.post("/api/v1/leases/{lease_id}/terminate", response_model=LeaseOpOut, responses=_OP_ERRORS)
def api_lease_terminate(web: Web, who: Who, lease_id: LeaseId, body: TerminateIn) -> LeaseOpOut:
    """→ terminated: billing stops on the move-out day, meters unbound, access revoked."""
    return _op(lambda: _ops(web).terminate(who, lease_id, on=body.move_out_on, reason=body.reason))


def _form(
    request: Request, web: Web, who: Principal, lease_id: str, op: str, call: Callable[[], Done]
) -> Response:
    """Run a lease page's operation; back to the page, or the page with the refusal."""
    lang = language(request)
    try:
        call()
    except UnknownRecord:
        return render(request, "error.html", {"message": "not_found"}, status_code=404)
    except NotPermitted as exc:
        return render(
            request, "error.html", {"message": "forbidden", "detail": str(exc)}, status_code=403
        )
    except LeaseError as exc:
        status = 409 if isinstance(exc, IllegalTransition | RenewalBlocked) else 422
        row = web.leases.lease(who, lease_id)
        return render(
            request,
            "lease.html",
            {**lease_page_context(who, row), "op_error": str(exc), "op": op},
            status_code=status,
        )
    query = urlencode({"lang": lang, "done": op})
    return RedirectResponse(f"/leases/{quote(lease_id)}?{query}", 303)


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        raise HTTPException(
            400, f"malformed request: expected YYYY-MM-DD, got {text[:20]!r}"
        ) from None


DayForm = Annotated[str, Form(max_length=10)]


@router.post("/leases/{lease_id}/sign", response_class=HTMLResponse)
def lease_sign_form(
    request: Request,
    web: Web,
    who: Who,
    lease_id: LeaseId,
    on: DayForm = "",
    how: Annotated[Literal["paper", "e-sign"], Form()] = "paper",
) -> Response:
    """Sign the draft lease (its page's button)."""
    day = _day(on)
    return _form(
        request, web, who, lease_id, "sign", lambda: _ops(web).sign(who, lease_id, on=day, how=how)
    )


@router.post("/leases/{lease_id}/handover", response_class=HTMLResponse)
def lease_handover_form(
    request: Request, web: Web, who: Who, lease_id: LeaseId, on: DayForm = ""
) -> Response:
    """Hand the unit over (its page's button)."""
    day = _day(on)
    return _form(
        request, web, who, lease_id, "handover", lambda: _ops(web).hand_over(who, lease_id, on=day)
    )


@router.post("/leases/{lease_id}/renew", response_class=HTMLResponse)
def lease_renew_form(
    request: Request,
    web: Web,
    who: Who,
    lease_id: LeaseId,
    rent: Annotated[str, Form(max_length=14, pattern=f"({YUAN[1:-1]})?")] = "",
    months: Annotated[int | None, Form(ge=1, le=120)] = None,
) -> Response:
    """Renew the lease at a new rent (yuan) and term (its page's form)."""
    cents = _cents(rent)
    return _form(
        request,
        web,
        who,
        lease_id,
        "renew",
        lambda: _ops(web).renew(who, lease_id, monthly_cents=cents, term_months=months),
    )


@router.post("/leases/{lease_id}/terminate", response_class=HTMLResponse)
def lease_terminate_form(
    request: Request,
    web: Web,
    who: Who,
    lease_id: LeaseId,
    on: DayForm = "",
    reason: Annotated[str, Form(max_length=MAX_REASON)] = "",
    confirm: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Terminate the lease (move-out): only with the form's confirmation box ticked."""
    day = _day(on)

    def call() -> Done:
        ops = _ops(web)
        ops.check(who, lease_id)
        if confirm != "yes":
            raise TermsError("tick the confirmation box to terminate the lease")
        return ops.terminate(who, lease_id, on=day, reason=reason)

    return _form(request, web, who, lease_id, "terminate", call)
