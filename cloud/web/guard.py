"""What every request must be before a route sees it: a body within its size bound, and text
without NUL characters, lone surrogates or bytes that are not UTF-8.

One ASGI middleware checks the URL path, the query string and the body (JSON, URL-encoded and
multipart forms) of every request, for every route, so that no handler (and no database:
PostgreSQL refuses NUL in text and Python refuses to encode a lone surrogate) sees such text.
A refusal is one line naming where the text was: 413 for a body over its bound, 400 for bad
text; JSON ``{"detail": ...}`` under ``/api/``, plain text (Chinese, then English) elsewhere.

Bounds are in bytes of the body as sent (see docs/web.md): :data:`DEFAULT_BODY_LIMIT` for
every route, :data:`BODY_LIMITS` for the routes that take bigger bodies (uploads).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Bytes of a request body on any route without its own bound (the longest text fields,
#: 2,000-character comments, fit many times over).
DEFAULT_BODY_LIMIT = 64 * 1024
#: Routes (path prefix) that take bigger bodies, and their bound in bytes: a gateway's site
#: configuration (TOML, up to 256 Ki characters) when a claim token is made.
BODY_LIMITS: dict[str, int] = {
    "/engineer/claim-tokens": 2 * 1024 * 1024,
    "/api/v1/claim-tokens": 2 * 1024 * 1024,
    # the lease ledger (4 MiB at most, decision 0032), with the form's own fields
    "/leases/import": 5 * 1024 * 1024,
    "/api/v1/ledger/import": 5 * 1024 * 1024,
    # a bank statement (CSV up to 2 MiB, cloud/leases/bankfile.py) in a multipart form
    "/api/v1/bank-statements": 3 * 1024 * 1024,
    "/payments/bank": 3 * 1024 * 1024,
    # a site file or workbook (8 MiB at most, cloud/apportion/site_import.py) in a form
    "/sites/import": 9 * 1024 * 1024,
    "/api/v1/sites/import": 9 * 1024 * 1024,
    # a deposit deduction's evidence: up to 3 files of 10 MB each (cloud/leases/evidence.py)
    # with the form's fields
    "/api/v1/deposits": 32 * 1024 * 1024,
    "/deposits": 32 * 1024 * 1024,
}
#: Deepest nesting of arrays and objects in a JSON body (the API's bodies use 3 or fewer).
MAX_JSON_DEPTH = 32
_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")
_WHERE_ZH = (
    ("the URL path", "网址路径"),
    ("query parameter", "查询参数"),
    ("form field", "表单字段"),
    ("the JSON body", "JSON 内容"),
    ("field", "字段"),
    ("body", "内容"),
    (" name", "名"),
    (" key", "键"),
)
_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


class Refused(Exception):
    """The request is refused with ``status`` and a one-line ``message``."""

    def __init__(self, status: int, message: str, message_zh: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.message_zh = message_zh


def body_limit(path: str) -> int:
    """The bound in bytes of a request body sent to ``path``."""
    for prefix, limit in BODY_LIMITS.items():
        if path == prefix or path.startswith(prefix + "/"):
            return limit
    return DEFAULT_BODY_LIMIT


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n % (1024 * 1024) == 0 else f"{n // 1024} KiB"


def _bad_text(where: str, what: str) -> Refused:
    zh = {"NUL": "含有 NUL 字符", "surrogate": "含有孤立代理字符", "utf8": "不是有效的 UTF-8"}[what]
    en = {
        "NUL": "contains a NUL character (U+0000)",
        "surrogate": "contains a lone surrogate (U+D800–U+DFFF)",
        "utf8": "is not valid UTF-8",
    }[what]
    where_zh = where
    for english, chinese in _WHERE_ZH:
        where_zh = where_zh.replace(english, chinese)
    return Refused(400, f"invalid text: {where} {en}", f"文本无效：{where_zh} {zh}")


def check_text(value: str, where: str) -> None:
    """Refuse ``value`` (found at ``where``) if it holds a NUL or a lone surrogate."""
    found = _BAD_CHAR.search(value)
    if found:
        raise _bad_text(where, "NUL" if found.group() == "\x00" else "surrogate")


def check_bytes(raw: bytes, where: str) -> None:
    """Refuse ``raw`` (found at ``where``) unless it is UTF-8 text without NUL."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.start + 2]
        surrogate = len(bad) == 2 and bad[0] == 0xED and bad[1] >= 0xA0  # UTF-8 of D800–DFFF
        raise _bad_text(where, "surrogate" if surrogate else "utf8") from None
    check_text(text, where)


def _pairs(encoded: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Raw (name, value) pairs of a query string or URL-encoded form, percent-decoded."""
    for part in encoded.split(b"&"):
        if part:
            name, _, value = part.partition(b"=")
            yield (
                unquote_to_bytes(name.replace(b"+", b" ")),
                unquote_to_bytes(value.replace(b"+", b" ")),
            )


def check_encoded(encoded: bytes, kind: str) -> None:
    """Refuse a query string or URL-encoded form whose names or values are bad text."""
    for name, value in _pairs(encoded):
        check_bytes(name, f"{kind} name")
        label = name.decode("utf-8", "replace")[:64]
        check_bytes(value, f"{kind} '{label}'")


def check_json(value: Any, where: str = "body", depth: int = 0) -> None:
    """Refuse a parsed JSON document with bad text in any key or string value, or nested
    deeper than :data:`MAX_JSON_DEPTH`."""
    if isinstance(value, str):
        check_text(value, where)
        return
    if not isinstance(value, list | dict):
        return
    if depth >= MAX_JSON_DEPTH:
        raise _too_deep()
    if isinstance(value, list):
        for i, item in enumerate(value):
            check_json(item, f"{where}[{i}]", depth + 1)
    else:
        for key, item in value.items():
            check_text(key, f"{where} key")
            inner = f"{where}.{key[:64]}" if where != "body" else f"field '{key[:64]}'"
            check_json(item, inner, depth + 1)


def _too_deep() -> Refused:
    return Refused(
        400,
        f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels",
        f"JSON 内容嵌套超过 {MAX_JSON_DEPTH} 层",
    )


def check_multipart(body: bytes, content_type: str) -> None:
    """Refuse a multipart form whose field names or text fields (parts without a file name)
    are bad text; files are left to their route."""
    try:
        from python_multipart.multipart import MultipartParser, parse_options_header
    except ImportError:  # python-multipart before 0.0.13
        from multipart.multipart import MultipartParser, parse_options_header  # type: ignore

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        return  # the route's own parsing refuses it
    parts: list[tuple[bytes, bytearray]] = []
    field, value = bytearray(), bytearray()
    disposition = [b""]

    def on_part_begin() -> None:
        disposition[0] = b""
        parts.append((b"", bytearray()))

    def on_header_field(data: bytes, start: int, end: int) -> None:
        field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        value.extend(data[start:end])

    def on_header_end() -> None:
        if bytes(field).lower() == b"content-disposition":
            disposition[0] = bytes(value)
        field.clear()
        value.clear()

    def on_headers_finished() -> None:
        parts[-1] = (disposition[0], parts[-1][1])

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1][1].extend(data[start:end])

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except ValueError:  # a malformed form is the route's to refuse
        return
    for disp, data in parts:
        _, options = parse_options_header(disp)
        name = options.get(b"name", b"")
        check_bytes(name, "form field name")
        if b"filename" not in options:
            check_bytes(bytes(data), f"form field '{name.decode('utf-8', 'replace')[:64]}'")


def check_body(body: bytes, content_type: str) -> None:
    """Refuse a body with bad text, by its media type (JSON when none is given, as FastAPI
    reads it); other media types (files) are left to their route."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        check_encoded(body, "form field")
    elif media == "multipart/form-data":
        check_multipart(body, content_type)
    elif media in ("", "application/json") or media.endswith("+json"):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad_text("the JSON body", "utf8") from None
        try:
            document = json.loads(text)
        except RecursionError:  # thousands of levels: the parser itself gives up
            raise _too_deep() from None
        except ValueError:
            return  # malformed JSON: the route answers 400 with its own message
        check_json(document)


def check_target(scope: Scope) -> None:
    """Refuse a URL path or query string with bad text."""
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogatepass")
    check_bytes(unquote_to_bytes(raw_path), "the URL path")
    check_encoded(scope.get("query_string", b""), "query parameter")


class RequestGuard:
    """ASGI middleware: refuse oversized bodies (413) and bad text (400) on every route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            check_target(scope)
            headers = dict(scope["headers"])
            limit = body_limit(scope["path"])
            declared = headers.get(b"content-length")
            if declared is not None and declared.strip().isdigit() and int(declared) > limit:
                raise _too_large(int(declared), limit)
            if (
                scope["method"] in _NO_BODY
                and declared in (None, b"0")
                and b"transfer-encoding" not in headers
            ):
                await self.app(scope, receive, send)
                return
            body, disconnected = await _read_body(receive, limit)
            if disconnected:
                return
            if body:
                check_body(body, headers.get(b"content-type", b"").decode("latin-1"))
        except Refused as refused:
            await _refuse(scope, send, refused)
            return
        await self.app(scope, _replay(body, receive), send)


def _too_large(size: int | None, limit: int) -> Refused:
    got = f"{size} bytes" if size is not None else "more bytes"
    return Refused(
        413,
        f"request body too large: {got}, this route takes at most {_size(limit)}",
        f"请求内容过大：本地址最多接受 {_size(limit)}",
    )


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The whole body (at most ``limit`` bytes) and whether the client went away."""
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", True
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise _too_large(None, limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(scope: Scope, send: Send, refused: Refused) -> None:
    if scope["path"].startswith("/api/"):
        body = json.dumps({"detail": refused.message}, ensure_ascii=False).encode()
        media = b"application/json"
    else:
        body = f"{refused.message_zh}\n{refused.message}\n".encode()
        media = b"text/plain; charset=utf-8"
    headers = [(b"content-type", media), (b"content-length", str(len(body)).encode())]
    if refused.status == 413:
        headers.append((b"connection", b"close"))  # the rest of the body is not read
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
