"""A site's set-up on the web (站点设置): upload the site file (YAML) or the site workbook
(.xlsx, units and meters), see every error with its item or the dry run's counts, then
import; download the stored set-up as the workbook or the site file to edit it.

Thin handlers over :mod:`cloud.apportion.site_import` (the command line's ``site import``
uses the same code). Admins import any site, a new one included; finance and engineers the
sites they act on. A site out of the caller's scope is not found (404) for the downloads and
refused (403) for an upload that names it.
"""

from __future__ import annotations

import io
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response

from cloud.apportion.configuration import ImportReport
from cloud.apportion.errors import CaseError
from cloud.apportion.site import SiteFileError, dump_site
from cloud.apportion.site_export import site_sections
from cloud.apportion.site_import import MAX_SITE_BYTES, SiteImportRefused, SiteImportService
from cloud.apportion.site_workbook import write_workbook
from cloud.staff.accounts import Principal
from cloud.web.deps import WebServices, principal, web_services
from cloud.web.rendering import render
from cloud.web.uploads import carry, form_file

router = APIRouter(tags=["sites"])
Web = Annotated[WebServices, Depends(web_services)]
Who = Annotated[Principal, Depends(principal)]
#: the largest checked file the page carries to its import button [bytes] (a form field is
#: bounded at 1 MiB; a bigger file is chosen again and imported directly)
MAX_CARRIED = 700 * 1024
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _service(web: WebServices) -> SiteImportService:
    return SiteImportService(web.runs.sessions, clock=web.leases.clock)


async def _read(upload: UploadFile) -> bytes:
    data = await upload.read(MAX_SITE_BYTES + 1)
    if len(data) > MAX_SITE_BYTES:
        raise HTTPException(413, f"file: larger than {MAX_SITE_BYTES // 2**20} MiB")
    return data


def _errors(exc: CaseError) -> list[str]:
    """Every error of a refused file, each naming its item (at most the loader's bound)."""
    return list(exc.errors) if isinstance(exc, SiteFileError) else [str(exc)]


@router.post(
    "/api/v1/sites/import",
    responses={
        403: {"description": "the role does not import sites, or not this one"},
        413: {"description": "the file is larger than 8 MiB"},
        422: {"description": "the file has errors (each item named); nothing stored"},
    },
)
async def api_site_import(
    web: Web,
    who: Who,
    file: Annotated[UploadFile, File(description="the site file (.yaml) or workbook (.xlsx)")],
    dry_run: Annotated[bool, Query()] = True,
) -> Response:
    """Check (``dry_run=true``, the default) or import a site's set-up: what would be or was
    created and updated per kind of item; 422 with ``errors`` (each naming its item) when
    the file is refused, nothing stored. The same file again changes nothing."""
    data = await _read(file)
    try:
        report = _service(web).import_file(who, data, file.filename or "", dry_run=dry_run)
    except SiteImportRefused as exc:
        raise HTTPException(403, str(exc)) from None
    except CaseError as exc:
        return JSONResponse({"errors": _errors(exc)}, status_code=422)
    return JSONResponse(report.as_json())


@router.get("/api/v1/sites/export", response_class=Response)
def api_site_export(
    web: Web,
    who: Who,
    site_id: Annotated[str, Query(alias="site", min_length=1, max_length=64)],
    format_: Annotated[Literal["xlsx", "yaml"], Query(alias="format")] = "xlsx",
) -> Response:
    """The site's stored set-up: the units-and-meters workbook (``xlsx``, the default) or the
    whole site file (``yaml``), to edit and import again."""
    if not who.may_act_on(site_id):
        raise HTTPException(404, f"site {site_id!r} is not one of yours")
    with web.runs.sessions() as session:
        try:
            sections = site_sections(session, site_id)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from None
    if format_ == "yaml":
        body, media = dump_site(sections).encode(), "application/yaml"
    else:
        out = io.BytesIO()
        write_workbook(sections, out)  # type: ignore[arg-type]  (openpyxl saves to a stream)
        body, media = out.getvalue(), XLSX
    return Response(
        body,
        media_type=media,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''site-{quote(site_id)}.{format_}"
        },
    )


def _page(
    request: Request, web: WebServices, who: Principal, status_code: int = 200, **extra: object
) -> HTMLResponse:
    return render(
        request,
        "sites_import.html",
        {"sites": _service(web).sites(who), "max_mib": MAX_SITE_BYTES // 2**20, **extra},
        status_code=status_code,
    )


@router.get("/sites/import", response_class=HTMLResponse)
def site_import_page(request: Request, web: Web, who: Who) -> HTMLResponse:
    """Upload a site file or workbook: check it, then import it; download a stored one."""
    return _page(request, web, who)


@router.post("/sites/import", response_class=HTMLResponse)
async def site_import_form(
    request: Request,
    web: Web,
    who: Who,
    file: Annotated[UploadFile | None, File()] = None,
    action: Annotated[Literal["check", "import"], Form()] = "check",
    carried: Annotated[str, Form(max_length=MAX_CARRIED * 2)] = "",
    filename: Annotated[str, Form(max_length=200)] = "",
) -> HTMLResponse:
    """Check the uploaded site file (dry run) and show every error with its item; a clean
    check offers the import of the same file; import stores it (all or nothing)."""
    data, name = await form_file(file, carried, filename, MAX_SITE_BYTES)
    if not data:
        return _page(request, web, who, problem="no_file", status_code=400)
    report: ImportReport | None = None
    try:
        report = _service(web).import_file(who, data, name, dry_run=action == "check")
    except SiteImportRefused as exc:
        return _page(request, web, who, filename=name, refused=str(exc), status_code=403)
    except CaseError as exc:
        return _page(request, web, who, filename=name, errors=_errors(exc), status_code=422)
    carried = carry(data, MAX_CARRIED) if report.dry_run and report.changed else ""
    return _page(request, web, who, report=report, filename=name, carried=carried)
