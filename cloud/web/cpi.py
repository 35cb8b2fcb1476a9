"""The CPI series for admin and finance (decision 0042): the page ``/cpi`` (the series, the
CPI-linked leases waiting for a month, a form for one month and a CSV upload) and its JSON
API. The service is :class:`cloud.leases.cpi.CpiDesk`; a refusal names each month, row and
column at fault and stores nothing (422).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from cloud.leases.cpi import MAX_NOTE, CpiDesk
from cloud.leases.cpi_file import MAX_BYTES
from cloud.leases.errors import CpiError, LeaseError, NotPermitted
from cloud.staff.accounts import Principal
from cloud.web.deps import WebServices, principal, web_services
from cloud.web.rendering import language, render

router = APIRouter(tags=["cpi"])
Web = Annotated[WebServices, Depends(web_services)]
Who = Annotated[Principal, Depends(principal)]
Month = Annotated[str, Path(pattern=r"^[0-9]{4}-[0-9]{2}$", examples=["2025-12"])]
_REFUSED = {422: {"description": "a bad figure or file, or a correction refused; nothing stored"}}


def desk(web: WebServices) -> CpiDesk:
    """The CPI service on the web services' registry and clock."""
    return CpiDesk(web.leases.sessions, clock=web.leases.clock)


class CpiRowOut(BaseModel):
    """A stored month: ``basis`` ``yoy`` (上年同月=100) or ``level`` (定基)."""

    month: str = Field(examples=["2025-12"])
    basis: str
    value: str = Field(examples=["100.8"])


class CpiWaitOut(BaseModel):
    """A CPI-linked lease whose rent is unknown from ``since`` until the CPI of ``months``
    is published."""

    lease_id: str
    tenant_id: str
    tenant_name: str
    unit_id: str
    unit_name: str
    since: str
    months: list[str]


class CpiOut(BaseModel):
    series: list[CpiRowOut]
    waiting: list[CpiWaitOut]


class CpiSetIn(BaseModel):
    """One month's figure: ``yoy`` as the NBS publishes it (100.4 = +0.4 % on a year
    before) or a ``level``; ``correct`` and a ``note`` to change a month stored already."""

    basis: str = Field(pattern="^(yoy|level)$")
    value: str = Field(min_length=1, max_length=16, examples=["100.4"])
    correct: bool = False
    note: str = Field(default="", max_length=MAX_NOTE)


class CpiMonthOut(CpiRowOut):
    row: int
    status: str = Field(description="new, unchanged or corrected")
    before: CpiRowOut | None


class CpiReportOut(BaseModel):
    """What a set or import did; ``replanned``: the CPI leases whose plan was compiled
    again (their next bill uses the figures)."""

    dry_run: bool
    new: int
    unchanged: int
    corrected: int
    replanned: int
    months: list[CpiMonthOut]


def _refusal(exc: LeaseError) -> JSONResponse:
    if isinstance(exc, NotPermitted):
        raise HTTPException(403, str(exc))
    problems = exc.problems if isinstance(exc, CpiError) else [str(exc)]
    return JSONResponse(status_code=422, content={"detail": str(exc), "problems": problems})


@router.get("/api/v1/cpi", response_model=CpiOut)
def api_cpi(web: Web, who: Who) -> CpiOut:
    """The CPI series (newest first) and the caller's CPI-linked leases waiting for a
    month. Admin and finance."""
    service = desk(web)
    return CpiOut(
        series=[CpiRowOut(**r.as_dict()) for r in service.series(who)],
        waiting=[CpiWaitOut(**w.as_dict()) for w in service.waiting(who)],
    )


@router.put("/api/v1/cpi/{month}", response_model=CpiReportOut, responses=_REFUSED)
def api_cpi_set(web: Web, who: Who, month: Month, body: CpiSetIn) -> Any:
    """Store a month's CPI figure; a month stored with another figure only with
    ``correct`` and a note, never one an issued invoice's rent used. Audited."""
    try:
        report = desk(web).set_month(
            who, month, body.basis, body.value, correct=body.correct, note=body.note
        )
    except LeaseError as exc:
        return _refusal(exc)
    return report.summary()


@router.post(
    "/api/v1/cpi/import",
    response_model=CpiReportOut,
    responses={**_REFUSED, 413: {"description": f"a file above {MAX_BYTES} bytes"}},
)
async def api_cpi_import(
    web: Web,
    who: Who,
    file: Annotated[bytes, File(description=f"CSV month,basis,value, at most {MAX_BYTES} bytes")],
    dry_run: Annotated[bool, Form()] = False,
    correct: Annotated[bool, Form()] = False,
    note: Annotated[str, Form(max_length=MAX_NOTE)] = "",
) -> Any:
    """Import a CSV of CPI figures (UTF-8): all or none, every bad row named by row and
    column. ``dry_run``: what would happen, nothing stored."""
    if len(file) > MAX_BYTES:
        raise HTTPException(413, f"the file has {len(file)} bytes, expected at most {MAX_BYTES}")
    try:
        report = await run_in_threadpool(
            desk(web).import_csv, who, file, dry_run=dry_run, correct=correct, note=note
        )
    except LeaseError as exc:
        return _refusal(exc)
    return report.summary()


# ----------------------------------------------------------------------------- pages


def _context(web: WebServices, who: Principal, **extra: Any) -> dict[str, Any]:
    service = desk(web)
    return {
        "series": service.series(who),
        "waiting": service.waiting(who),
        "max_kib": MAX_BYTES // 1024,
        "max_note": MAX_NOTE,
        "report": None,
        "problems": [],
        "error": "",
        **extra,
    }


@router.get("/cpi", response_class=HTMLResponse)
def cpi_page(request: Request, web: Web, who: Who) -> HTMLResponse:
    """The series, the leases waiting for a month, the form for one month and the upload."""
    done = request.query_params.get("done", "")
    context = _context(web, who, done=done if done in ("set",) else "")
    return render(request, "cpi.html", context)


@router.post("/cpi", response_class=HTMLResponse)
def cpi_set_form(
    request: Request,
    web: Web,
    who: Who,
    month: Annotated[str, Form(max_length=16)] = "",
    basis: Annotated[str, Form(max_length=8)] = "",
    value: Annotated[str, Form(max_length=16)] = "",
    correct: Annotated[str, Form(max_length=8)] = "",
    note: Annotated[str, Form(max_length=MAX_NOTE)] = "",
) -> Response:
    """Enter one month from the page: back to it, or the page with the refusal."""
    try:
        desk(web).set_month(who, month, basis, value, correct=bool(correct), note=note)
    except LeaseError as exc:
        problems = exc.problems if isinstance(exc, CpiError) else [str(exc)]
        context = _context(web, who, error="cpi_err_refused", problems=problems)
        return render(request, "cpi.html", context, status_code=422)
    query = urlencode({"lang": language(request), "done": "set"})
    return RedirectResponse(f"/cpi?{query}", 303)


@router.post("/cpi/import", response_class=HTMLResponse)
async def cpi_upload_form(
    request: Request,
    web: Web,
    who: Who,
    file: Annotated[bytes, File()] = b"",
    dry_run: Annotated[str, Form(max_length=8)] = "",
    correct: Annotated[str, Form(max_length=8)] = "",
    note: Annotated[str, Form(max_length=MAX_NOTE)] = "",
) -> HTMLResponse:
    """Upload a CSV from the page: the page again with each month's outcome."""
    if not file:
        context = await run_in_threadpool(_context, web, who, error="cpi_err_no_file")
        return render(request, "cpi.html", context, status_code=400)
    try:
        report = await run_in_threadpool(
            desk(web).import_csv,
            who,
            file,
            dry_run=bool(dry_run),
            correct=bool(correct),
            note=note,
        )
    except LeaseError as exc:
        problems = exc.problems if isinstance(exc, CpiError) else [str(exc)]
        context = await run_in_threadpool(
            _context, web, who, error="cpi_err_refused", problems=problems
        )
        return render(request, "cpi.html", context, status_code=422)
    context = await run_in_threadpool(_context, web, who, report=report)
    return render(request, "cpi.html", context)
