"""The cloud's FastAPI application: the factory the routers hang on.

``create_app`` takes its services explicitly, so tests, the command (``meterflow cloud api``,
in ``cloud.api.cli``) and later web pages build the same app on whatever registry they have.
Malformed requests answer 400 with a ``detail`` naming the offending fields (FastAPI's default
would be 422 with a list).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from cloud.api import provision
from cloud.api.deps import ApiServices


def _field_path(loc: tuple[object, ...]) -> str:
    return ".".join(str(part) for part in loc if part != "body") or "body"


async def _malformed_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
    detail = "; ".join(f"{_field_path(tuple(err['loc']))}: {err['msg']}" for err in exc.errors())
    return JSONResponse(status_code=400, content={"detail": f"malformed request: {detail}"})


def create_app(services: ApiServices) -> FastAPI:
    """The API on ``services``; serves ``/openapi.json`` and ``/docs``."""
    app = FastAPI(title="meterflow cloud", version="1", openapi_url="/openapi.json")
    app.state.services = services
    app.exception_handler(RequestValidationError)(_malformed_request)
    app.include_router(provision.router)
    return app
