"""Settings of the web application (environment variables ``MF_WEB_*``), beside the
deployment's :class:`meterflow.settings.Settings`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebSettings(BaseSettings):
    """What the API's pages need besides the registry, broker and cloud key."""

    model_config = SettingsConfigDict(env_prefix="MF_WEB_", extra="forbid")

    public_url: str = Field(
        "",
        description="base URL of tenant links and their QR codes, e.g. https://meter.example.com"
        " (required unless dev is on)",
    )
    dev: bool = Field(
        False,
        description="development or demo: without public_url, links are built from the"
        " request's Host header",
    )
    secret_file: Path | None = Field(
        None, description="HMAC key of tenant links (default: DATA_DIR/web.secret)"
    )
    link_days: int = Field(120, ge=1, le=730, description="how long a statement link opens")
    session_hours: int = Field(12, ge=1, le=24 * 30, description="staff session lifetime")
    cookie_secure: bool | None = Field(
        None, description="force the cookies' Secure flag (default: when served over HTTPS)"
    )
    hash_slots: int = Field(
        0,
        ge=0,
        le=64,
        description="password hashes computed at once per process, 64 MiB each "
        "(0: the CPU count, at most 4)",
    )
    gateway_mqtt_url: str = Field(
        "", description="broker URL handed out with claim tokens (default: MF_MQTT_URL)"
    )
    gateway_state: Literal["auto", "broker", "ignore"] = Field(
        "auto",
        description="trust gateways' unsigned online/offline state: broker (its ACL vouches), "
        "ignore, or auto (only when the broker refuses anonymous clients); docs/broker.md",
    )

    page_cache: bool = Field(
        True,
        description="keep rendered tenant statement pages in the process (off: render every"
        " request; for measuring the page's cost, bench/tenant_page.py)",
    )

    @field_validator("public_url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ValueError(
                f"MF_WEB_PUBLIC_URL: expected an absolute http(s) URL such as"
                f" https://meter.example.com, got {value!r}"
            )
        return value.rstrip("/")

    def public_url_problem(self) -> str | None:
        """Why tenant links cannot be built with these settings (None when they can)."""
        if self.public_url or self.dev:
            return None
        return (
            "MF_WEB_PUBLIC_URL is not set: tenant links and their QR codes need the public"
            " base URL tenants open (e.g. https://meter.example.com); set MF_WEB_DEV=1 to"
            " build them from the request's Host header in development"
        )
