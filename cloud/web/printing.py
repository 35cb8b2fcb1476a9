"""The printable 分摊明细确认单: one statement (``/finance/runs/{run}/statements/{unit}/{party}``)
or every tenant statement of a run (``/finance/runs/{run}/print``), each on its own A4 page
with the QR code of the tenant's link. The print stylesheet (``/static/print.css``) is what
the browser prints with; the screen shows the same sheets for checking first."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse

from cloud.apportion.review import ActionRefused, NotFound
from cloud.staff.accounts import Principal
from cloud.statements.links import NoStatement, StatementKey
from cloud.statements.printing import PRINT_BATCH, Slip, StatementPrintService
from cloud.statements.wording import statement_view
from cloud.web.deps import WebServices, principal, web_services
from cloud.web.qr import qr_svg
from cloud.web.rendering import language, render

router = APIRouter(tags=["finance"])
Web = Annotated[WebServices, Depends(web_services)]
Who = Annotated[Principal, Depends(principal)]
RunId = Annotated[str, Path(min_length=1, max_length=36)]
Name = Annotated[str, Path(min_length=1, max_length=64)]


def _sheet(request: Request, web: WebServices, run_id: str, slip: Slip) -> dict[str, Any]:
    """What the slip template shows: the slip, the tenant's link and its QR code."""
    link = None
    if slip.signed:
        try:
            link = web.links.link_for(StatementKey(run_id, slip.unit, slip.party))
        except NoStatement:
            link = None
    base = web.public_url or str(request.base_url).rstrip("/")
    url = base + link.path() if link else ""
    view = statement_view(slip.document, language(request))  # None for a v1 statement
    return {"slip": slip, "link": link, "url": url, "qr": qr_svg(url) if url else "", "view": view}


def _refused(request: Request, exc: ActionRefused) -> HTMLResponse:
    return render(
        request, "error.html", {"message": "print_refused", "detail": str(exc)}, status_code=409
    )


@router.get("/finance/runs/{run_id}/statements/{unit}/{party}", response_class=HTMLResponse)
def statement_print_page(
    request: Request, run_id: RunId, unit: Name, party: Name, web: Web, who: Who
) -> HTMLResponse:
    """One printable statement (A4, print stylesheet) with the QR code of the tenant's link."""
    try:
        slip = StatementPrintService(web.runs).slip(who, run_id, unit, party)
    except NotFound:
        return render(request, "error.html", {"message": "not_found"}, status_code=404)
    except ActionRefused as exc:  # the stored statement does not verify: print nothing
        return _refused(request, exc)
    return render(
        request,
        "statement_print.html",
        {"sheets": [_sheet(request, web, run_id, slip)], "run_id": run_id},
    )


@router.get("/finance/runs/{run_id}/print", response_class=HTMLResponse)
def run_print_page(
    request: Request,
    run_id: RunId,
    web: Web,
    who: Who,
    start: Annotated[int, Query(ge=0, le=10**6)] = 0,
    count: Annotated[int, Query(ge=1, le=PRINT_BATCH)] = PRINT_BATCH,
) -> HTMLResponse:
    """The run's tenant statements in one document, one A4 page each (batch print), at most
    :data:`PRINT_BATCH` at a time: ``start`` (from 0, by unit and tenant) and ``count``; the
    page links to the batches before and after."""
    try:
        slips, total = StatementPrintService(web.runs).run_slips(who, run_id, start, count)
    except NotFound:
        return render(request, "error.html", {"message": "not_found"}, status_code=404)
    except ActionRefused as exc:
        return _refused(request, exc)
    return render(
        request,
        "statement_print.html",
        {
            "sheets": [_sheet(request, web, run_id, s) for s in slips],
            "run_id": run_id,
            "batch": True,
            "first": start + 1,
            "last": start + len(slips),
            "total": total,
            "previous": max(start - count, 0) if start > 0 else None,
            "next": start + count if start + count < total else None,
            "count": count,
        },
    )
