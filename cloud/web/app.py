"""The cloud's FastAPI application: the factory the routers hang on.

``create_app`` takes its services explicitly, so tests, the command (``meterflow cloud api``,
in ``meterflow.cli.web``) and the benchmarks build the same app on whatever registry they have.
One app serves the JSON API (OpenAPI at ``/openapi.json``), the staff pages, the tenants'
statement pages and the vendored static files. Every route passes the access check of
:mod:`cloud.web.authz`. Malformed requests answer 400 with a ``detail`` naming the offending
fields (FastAPI's default would be 422 with a list). Around every route: security headers
(:mod:`cloud.web.headers`), body size bounds and refusal of invalid text
(:mod:`cloud.web.guard`); tenant link tokens are redacted from every log (:mod:`cloud.web.logs`).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud.web import (
    admin,
    bank,
    close,
    cpi,
    deposits,
    engineer,
    finance,
    gateway_revoke,
    leases,
    ledger,
    policies,
    printing,
    provision,
    queue,
    reports,
    risk,
    signin,
    sites,
    tenant,
)
from cloud.web.authz import Forbidden, NotSignedIn, authorize, is_api
from cloud.web.deps import ApiServices, WebServices
from cloud.web.guard import RequestGuard
from cloud.web.headers import SecurityHeaders
from cloud.web.logs import install_redaction
from cloud.web.rendering import render

STATIC = Path(__file__).with_name("static")


def _field_path(loc: tuple[object, ...]) -> str:
    return ".".join(str(part) for part in loc if part != "body") or "body"


async def _malformed_request(request: Request, exc: RequestValidationError) -> Response:
    if tenant.is_page_path(request.url.path):  # a tenant's page: a page, never JSON
        return tenant.malformed_link_page(request)
    detail = "; ".join(f"{_field_path(tuple(err['loc']))}: {err['msg']}" for err in exc.errors())
    return JSONResponse(status_code=400, content={"detail": f"malformed request: {detail}"})


async def _no_route(request: Request, exc: StarletteHTTPException) -> Response:
    """A truncated or damaged tenant link gets the refusal page; the rest as FastAPI does."""
    if exc.status_code in (404, 405) and tenant.is_page_path(request.url.path):
        return tenant.malformed_link_page(request)
    return await http_exception_handler(request, exc)


async def _not_signed_in(request: Request, exc: NotSignedIn) -> Response:
    if is_api(request):
        return JSONResponse(
            status_code=401, content={"detail": str(exc)}, headers={"WWW-Authenticate": "Bearer"}
        )
    target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    return RedirectResponse(f"/login?next={target}", 303)


async def _forbidden(request: Request, exc: Forbidden) -> Response:
    if is_api(request):
        return JSONResponse(status_code=403, content={"detail": str(exc)})
    return render(
        request, "error.html", {"message": "forbidden", "detail": str(exc)}, status_code=403
    )


class Health(BaseModel):
    status: str


def create_app(services: ApiServices) -> FastAPI:
    """The API and pages on ``services``; serves the OpenAPI document at ``/openapi.json``.

    FastAPI's own ``/docs`` and ``/redoc`` are left out: they load their scripts from a CDN,
    and the pages must work on a closed network.
    """
    app = FastAPI(
        title="meterflow cloud",
        version="1",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(authorize)],
    )
    app.state.services = services
    app.state.web = services.web or WebServices.build(services.provisioning)
    app.exception_handler(RequestValidationError)(_malformed_request)
    app.exception_handler(StarletteHTTPException)(_no_route)
    app.exception_handler(NotSignedIn)(_not_signed_in)
    app.exception_handler(Forbidden)(_forbidden)

    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> Health:
        """Liveness: the process answers (no registry round trip)."""
        return Health(status="ok")

    # close and printing before finance: their /finance/runs/{id}/manual-reading and
    # /finance/runs/{id}/print must win over {action}
    for module in (
        provision,
        signin,
        tenant,
        close,
        printing,
        finance,
        risk,
        ledger,  # before leases: /leases/import must win over /leases/{lease_id}
        leases,
        queue,
        deposits,
        policies,
        bank,
        cpi,
        reports,
        sites,
        engineer,
        gateway_revoke,
        admin,
    ):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(RequestGuard)  # inside the headers: its refusals get them too
    app.add_middleware(SecurityHeaders, always_tls=app.state.web.public_url.startswith("https://"))
    install_redaction()
    return app
