"""All deployment settings in one place: environment variables ``MF_*`` and an optional file.

Precedence, highest first: explicit arguments, environment variables, the TOML file named by
``MF_CONFIG_FILE``, the defaults below (embedded: SQLite files under ``./var``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from edge.wire.files import private_dir


class Settings(BaseSettings):
    """Settings of the gateway agent and the cloud services."""

    model_config = SettingsConfigDict(env_prefix="MF_", extra="forbid")

    data_dir: Path = Field(Path("var"), description="where local state files live")
    mqtt_url: str = Field("mqtt://127.0.0.1:1883", description="mqtt://host:port or mqtts://")
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    topic_prefix: str = "mf/v1"
    db_url: str | None = Field(None, description="registry SQLAlchemy URL; default SQLite file")
    series_backend: Literal["sqlite", "influxdb"] = "sqlite"
    influx_url: str = "http://127.0.0.1:8086"
    influx_token: SecretStr | None = None
    influx_org: str = "-"
    influx_bucket: str = Field("meterflow", description="database on 1.x, bucket on 2.x/3.x")
    influx_username: str | None = None
    influx_password: SecretStr | None = None
    # Ingest bounds (docs/ingest.md): readings' times accepted around receipt, dead letters.
    ingest_max_age_days: float = Field(32, gt=0, description="oldest read_at/sent_at accepted")
    ingest_max_ahead_hours: float = Field(6, gt=0, description="furthest ahead of receipt")
    dead_letters_max_rows: int = Field(100_000, ge=1)
    dead_letters_max_mib: float = Field(256, gt=0)
    dead_letters_gateway_rows: int = Field(10_000, ge=1)
    dead_letters_gateway_mib: float = Field(32, gt=0)
    dead_letters_max_age_days: float = Field(30, gt=0, description="purged when older")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = [init_settings, env_settings]
        config_file = os.environ.get("MF_CONFIG_FILE")
        if config_file:
            path = Path(config_file)
            if not path.is_file():
                raise FileNotFoundError(f"MF_CONFIG_FILE={config_file}: no such file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    def ensure_data_dir(self) -> Path:
        """Create the data directory (mode 0700) if it is missing; return it.

        It holds the registry (password hashes, broker passwords of claims), the cloud's key
        and the web secret. An existing directory is left as it is.
        """
        return private_dir(self.data_dir)

    @property
    def registry_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'registry.sqlite'}"

    @property
    def broker_url(self) -> str:
        """The MQTT URL with the separately configured credentials folded in."""
        if not self.mqtt_username:
            return self.mqtt_url
        parts = urlsplit(self.mqtt_url)
        secret = self.mqtt_password.get_secret_value() if self.mqtt_password else ""
        auth = quote(self.mqtt_username, safe="") + (":" + quote(secret, safe="") if secret else "")
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        return urlunsplit(parts._replace(netloc=f"{auth}@{parts.hostname}:{port}"))
