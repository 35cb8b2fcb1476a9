"""Site configuration of a gateway: its identity, meter lines, meters and the polling plan.

Loaded from TOML and validated with pydantic; an error names the file and the field path.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

_Id = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")


class ConfigError(Exception):
    """The site configuration is malformed; the message names file and field."""


class MeterConfig(BaseModel):
    """One meter on a line. ``multiplier`` is the CT × PT ratio applied to register values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = _Id
    address: str = Field(min_length=1, max_length=12)
    protocol: Literal["dlt645"] = "dlt645"
    version: Literal["2007", "1997"] = "2007"
    quantities: list[str] = Field(default_factory=lambda: ["energy_import"], min_length=1)
    multiplier: Decimal = Field(Decimal(1), gt=0)
    parent: str | None = None
    role: Literal["main", "branch", "unit", "common", "landlord"] = "unit"


class LineConfig(BaseModel):
    """One bus: a TCP serial server (``tcp = "host:port"``) with its meters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = _Id
    tcp: str = Field(pattern=r"^[^:\s]+:\d{1,5}$")
    timeout_s: float = Field(1.0, gt=0, le=30, description="per request, seconds")
    retries: int = Field(1, ge=0, le=5)
    pause_s: float = Field(0.02, ge=0, le=5, description="quiet time between requests")
    meters: list[MeterConfig] = Field(min_length=1)

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.tcp.rsplit(":", 1)
        return host, int(port)


class SiteConfig(BaseModel):
    """Everything a gateway needs to poll its site."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    site: str = _Id
    gateway: str = _Id
    poll_interval_s: float = Field(60.0, gt=0)
    clock: Literal["synced", "free_running"] = "synced"
    batch_max_readings: int = Field(500, ge=1, le=2000)
    lines: list[LineConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _meters_form_a_tree(self) -> SiteConfig:
        ids = [m.id for line in self.lines for m in line.meters]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"meter ids must be unique; repeated: {', '.join(dupes)}")
        known = set(ids)
        for line in self.lines:
            for m in line.meters:
                if m.parent is not None and m.parent not in known:
                    raise ValueError(f"meter {m.id!r}: parent {m.parent!r} is not a meter here")
        return self

    @classmethod
    def load(cls, path: Path) -> SiteConfig:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
                for err in exc.errors()
            )
            raise ConfigError(f"{path}: {problems}") from None
