"""Settings of the web application (environment variables ``MF_WEB_*``), beside the
deployment's :class:`meterflow.settings.Settings`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebSettings(BaseSettings):
    """What the API's pages need besides the registry, broker and cloud key."""

    model_config = SettingsConfigDict(env_prefix="MF_WEB_", extra="forbid")

    public_url: str = Field(
        "", description="base URL printed in statement QR codes (default: the request's own)"
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
