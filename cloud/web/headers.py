"""Security headers on every response of the app (decision 0019).

- ``Content-Security-Policy``: scripts and styles only from the app's own ``/static`` (no
  inline script, no inline style, no ``style`` attribute), images from the app and ``data:``,
  forms posted only to the app, no plugins, no framing (``frame-ancestors 'none'``, with
  ``X-Frame-Options: DENY`` for older browsers).
- ``X-Content-Type-Options: nosniff``.
- ``Referrer-Policy``: ``no-referrer`` on the tenant pages and their API (the URL carries the
  tenant's token), ``same-origin`` elsewhere.
- ``Cache-Control: no-store`` on everything but ``/static`` (staff and tenant pages, the API).
- ``Strict-Transport-Security`` (one year) when the request came over TLS (the scheme uvicorn
  saw, or an ``X-Forwarded-Proto`` from a proxy in ``--forwarded-allow-ips``) or when the
  configured public URL is ``https://``.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HSTS = "max-age=31536000"
#: Path prefixes of the tenant pages and their JSON twin: the link's token is in the path.
TENANT_PREFIXES = ("/t/", "/api/v1/tenant/")

_COMMON = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


def security_headers(path: str, *, tls: bool) -> list[tuple[bytes, bytes]]:
    """The headers added to a response to ``path`` (``tls``: send HSTS)."""
    tenant = path.startswith(TENANT_PREFIXES)
    out = [*_COMMON, (b"referrer-policy", b"no-referrer" if tenant else b"same-origin")]
    if not path.startswith("/static/"):
        out.append((b"cache-control", b"no-store"))
    if tls:
        out.append((b"strict-transport-security", HSTS.encode()))
    return out


class SecurityHeaders:
    """ASGI middleware: add :func:`security_headers`, replacing a handler's own values; a
    handler that fails before answering gets a 500 from here, with the headers too."""

    def __init__(self, app: ASGIApp, *, always_tls: bool = False) -> None:
        self.app = app
        self.always_tls = always_tls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tls = self.always_tls or scope.get("scheme") == "https"
        added = security_headers(scope["path"], tls=tls)
        names = {name for name, _ in added}

        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": kept + added}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # a handler failed before answering: answer 500 here, with the headers, so that
            # the error page is no less protected than the others; then let the server log
            # the error as before (it sees the answer started and sends nothing more)
            if not started:
                body = b'{"detail":"internal server error"}'
                await send_with_headers(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
            raise
