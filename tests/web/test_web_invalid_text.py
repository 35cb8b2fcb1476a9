"""Invalid text — a NUL character, a lone surrogate — in any text field of any route is refused
with 400 on PostgreSQL (which cannot store NUL in text, and gave HTTP 500 for it), before a
handler runs. The fields come from the app's OpenAPI document (path and query parameters, JSON
and form bodies), plus what every route reads without declaring it (``lang``, forms read by
hand), for every route of ``app.routes``; each request is otherwise a valid, signed-in one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.support.authz_samples import Samples
from tests.support.browser import WebRig, make_rig, serve
from tests.web.test_web_authorization import all_routes
from tests.web.test_web_headers import Admin, real_sign_in

BAD = {"NUL": "a\x00b", "lone surrogate": "a\ud800b"}


def _enc(value: str) -> str:
    """Percent-encoded UTF-8 (a lone surrogate as the three bytes it would be)."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _is_text(spec: dict[str, Any], schema: dict[str, Any]) -> bool:
    schema = _resolve(spec, schema)
    return schema.get("type") == "string" or any(_is_text(spec, s) for s in schema.get("anyOf", []))


def _object(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    schema = _resolve(spec, schema)
    for option in schema.get("anyOf", []):
        if "$ref" in option or option.get("type") == "object":
            return _resolve(spec, option)
    return schema


def text_fields(spec: dict[str, Any], path: str, method: str) -> Iterator[tuple[str, str, Any]]:
    """(where, name, how) of each text field an operation declares: ``where`` is ``path``,
    ``query``, ``json`` or ``form``; ``how`` turns a bad string into the field's value."""
    op = spec["paths"].get(path, {}).get(method.lower(), {})
    for param in op.get("parameters", []):
        if _is_text(spec, param["schema"]):
            yield param["in"], param["name"], str
    for media, content in op.get("requestBody", {}).get("content", {}).items():
        where = "json" if media == "application/json" else "form"
        for name, prop in _object(spec, content["schema"]).get("properties", {}).items():
            prop = _resolve(spec, prop)
            if _is_text(spec, prop):
                yield where, name, str
            elif prop.get("type") == "array" and _is_text(spec, prop.get("items", {})):
                yield where, name, lambda bad: [bad]
            elif prop.get("type") == "object":
                yield where, name, lambda bad: {bad: "x"}  # a text key


def bad_request(
    client: httpx.Client,
    admin: Admin,
    samples: Samples,
    route: tuple[str, str, str],
    field: tuple[str, str, Any],
    bad: str,
) -> httpx.Response:
    """The route's valid sample request as the admin, with ``bad`` in ``field``."""
    name, template, method = route
    where, field_name, how = field
    params = dict(samples.params)
    if where == "path":
        params[field_name] = _enc(bad)
    path = template.format(**params)
    query = f"?{_enc(field_name)}={_enc(bad)}" if where == "query" else ""
    body = samples.body(name)
    headers: dict[str, str] = {}
    if path.startswith("/api/"):
        headers["Authorization"] = f"Bearer {admin.token}"
    else:
        headers["Cookie"] = f"mf_session={admin.cookie}"
        headers["X-CSRF-Token"] = admin.csrf
    content: bytes | None = None
    if where == "json":
        content = json.dumps({**body.get("json", {}), field_name: how(bad)}).encode()
        headers["Content-Type"] = "application/json"
    elif where == "form" or "data" in body:
        form = {**body.get("data", {})}
        if where == "form":
            form[field_name] = bad
        content = "&".join(f"{_enc(k)}={_enc(str(v))}" for k, v in form.items()).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif "json" in body:
        content = json.dumps(body["json"]).encode()
        headers["Content-Type"] = "application/json"
    client.cookies.clear()
    return client.request(method, path + query, content=content, headers=headers)


@pytest.fixture()
def rig(tmp_path: Path, fresh_postgres_url: str) -> Iterator[WebRig]:
    rig = make_rig(tmp_path, fresh_postgres_url, months=1)
    yield rig
    rig.sessions.kw["bind"].dispose()


def test_invalid_text_in_every_field_of_every_route_is_refused_on_postgres(rig: WebRig) -> None:
    spec = rig.app.openapi()
    samples = Samples(rig)
    tried: set[tuple[str, str, str]] = set()
    wrong: list[str] = []
    with serve(rig.app) as url, httpx.Client(base_url=url, timeout=30) as client:
        admin = real_sign_in(client, "admin")
        for name, template, methods in sorted(all_routes(rig.app)):
            for method in sorted(methods - {"HEAD"}):
                fields = list(text_fields(spec, template, method))
                fields.append(("query", "lang", str))  # every page reads it
                fields += [("path", p, str) for p in ("path",) if "{path}" in template]
                if method == "POST" and not any(w in ("json", "form") for w, _, _ in fields):
                    fields.append(("form", "site", str))  # forms read by hand
                for field in fields:
                    for what, bad in BAD.items():
                        tried.add((name, field[0], field[1]))
                        route = (name, template, method)
                        try:
                            reply = bad_request(client, admin, samples, route, field, bad)
                        except httpx.TransportError as exc:  # the server dropped it
                            status, text = 0, f"connection lost: {exc!r}"
                        else:
                            status, text = reply.status_code, reply.text
                        if status != 400 or "invalid text" not in text:
                            wrong.append(
                                f"{method} {template} {field[0]} {field[1]} with {what}: "
                                f"{status} {text[:200]}"
                            )
        # the sign-in still works: nothing above reached the database with bad text
        assert real_sign_in(client, "fin-a").token
    assert not wrong, "\n".join(wrong)
    # the places the issue found answering 500 are among those tried
    for known in (
        ("login_form", "form", "username"),
        ("api_sign_in", "json", "username"),
        ("api_tenant_dispute", "json", "comment"),
        ("tenant_dispute_form", "form", "comment"),
        ("runs_page", "query", "site"),
        ("api_runs", "query", "site"),
        ("run_page", "path", "run_id"),
        ("api_run", "path", "run_id"),
        ("gateway_page", "path", "gateway_id"),
        ("api_run_action", "json", "reason"),
        ("run_action_form", "form", "reason"),
        ("api_account_create", "json", "sites"),
        ("api_close", "json", "accept_estimates"),
    ):
        assert known in tried, known
    assert len(tried) > 100


def test_valid_text_beside_the_refusals_still_passes(rig: WebRig) -> None:
    """Non-ASCII text (Chinese, a character outside the BMP sent as a surrogate pair) is not
    mistaken for invalid text."""
    run = rig.seeded.latest
    with serve(rig.app) as url, httpx.Client(base_url=url, timeout=30) as client:
        admin = real_sign_in(client, "admin")
        auth = {"Authorization": f"Bearer {admin.token}"}
        assert client.get("/api/v1/runs?site=园区-a", headers=auth).json() == []
        reply = client.post(
            f"/api/v1/tenant/A101/{samples_token(rig, run)}/dispute",
            content=b'{"comment": "\\u8bfb\\u6570\\u504f\\u9ad8 \\ud83d\\ude00"}',
            headers={"Content-Type": "application/json"},
        )
        assert reply.status_code == 200, reply.text
        disputes = client.get("/api/v1/disputes?status=all", headers=auth).json()
        assert any(d["comment"] == "读数偏高 \U0001f600" for d in disputes), disputes


def samples_token(rig: WebRig, run: str) -> str:
    return rig.link(run).rsplit("/", 1)[1]
