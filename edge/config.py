"""Site configuration of a gateway: identity, lines, meters (a tree), polling groups, outbox.

Loaded from TOML and validated with pydantic. An error names the file, the line in it and
the field path, e.g. ``site.toml:23: lines[0].meters[2].adress: unknown field``.
"""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

_Id = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
_Strict = ConfigDict(extra="forbid", frozen=True)

BITS_PER_CHARACTER = {"N": 10, "E": 11, "O": 11}  # start + 8 data (+ parity) + stop


class ConfigError(Exception):
    """The site configuration is malformed; the message names file, line and field."""


class GroupConfig(BaseModel):
    """Quantities read together every ``interval_s`` seconds (rounds start on multiples of
    the interval). ``snapshot``: freeze DL/T645 meters by broadcast at the round boundary and
    read the frozen energy, so the whole tree is read at one instant."""

    model_config = _Strict

    name: str = _Id
    interval_s: int = Field(ge=1, le=86_400)
    quantities: list[str] = Field(min_length=1)
    snapshot: bool = False


class MeterConfig(BaseModel):
    """One meter on a line. The register multiplier is ``ct`` × ``pt`` (current and voltage
    transformer ratios)."""

    model_config = _Strict

    id: str = _Id
    address: str = Field(
        min_length=1, max_length=12, description="DL/T645 address or Modbus unit id"
    )
    version: Literal["2007", "1997"] = "2007"
    profile: str | None = Field(None, description="Modbus device profile name")
    ct: Decimal = Field(Decimal(1), gt=0)
    pt: Decimal = Field(Decimal(1), gt=0)
    parent: str | None = None
    role: Literal["main", "branch", "unit", "common", "landlord"] = "unit"
    groups: list[str] | None = Field(None, description="polling groups; default all")
    timeout_s: float | None = Field(None, gt=0, le=30, description="overrides the line's")

    @property
    def multiplier(self) -> Decimal:
        return self.ct * self.pt


class LineConfig(BaseModel):
    """One bus: a TCP serial server (``tcp = "host:port"``) or a local ``serial`` port."""

    model_config = _Strict

    name: str = _Id
    protocol: Literal["dlt645", "modbus"] = "dlt645"
    tcp: str | None = Field(None, pattern=r"^[^:\s]+:\d{1,5}$")
    serial: str | None = None
    modbus_framing: Literal["tcp", "rtu"] = Field(
        "tcp", description="over tcp: Modbus TCP, or RTU through a transparent serial server"
    )
    baud: int = Field(2400, description="bit/s on the RS-485 side (also behind a TCP server)")
    parity: Literal["N", "E", "O"] = "E"
    timeout_s: float = Field(1.0, gt=0, le=30, description="per request, seconds")
    retries: int = Field(1, ge=0, le=5)
    pause_s: float = Field(0.02, ge=0, le=5, description="quiet time between requests")
    meters: list[MeterConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_endpoint(self) -> LineConfig:
        if (self.tcp is None) == (self.serial is None):
            raise ValueError('give exactly one of tcp = "host:port" or serial = "/dev/..."')
        for m in self.meters:
            if self.protocol == "modbus" and m.profile is None:
                raise ValueError(f"meter {m.id!r}: a Modbus meter needs a profile")
            if self.protocol == "modbus" and not m.address.isdigit():
                raise ValueError(f"meter {m.id!r}: a Modbus address is a unit id 1..247")
        return self

    @property
    def host_port(self) -> tuple[str, int]:
        assert self.tcp is not None
        host, port = self.tcp.rsplit(":", 1)
        return host, int(port)


class OutboxConfig(BaseModel):
    """Bounds of the durable outbox. When it holds more than ``max_bytes`` or items older
    than ``max_age_days``, the oldest readings are evicted (counted and reported);
    ``alarm_fraction`` of the size raises the alarm first. The backlog left by an outage
    drains at ``backlog_envelopes_per_s`` beside live data."""

    model_config = _Strict

    max_bytes: int = Field(64 * 2**20, ge=2**20)
    max_age_days: float = Field(31, gt=0)
    alarm_fraction: float = Field(0.8, gt=0, lt=1)
    backlog_envelopes_per_s: float = Field(5, gt=0)


class SiteConfig(BaseModel):
    """Everything a gateway needs to poll its site."""

    model_config = _Strict

    site: str = _Id
    gateway: str = _Id
    clock: Literal["synced", "free_running"] = "synced"
    timezone: str = Field("Asia/Shanghai", description="meters' local time (time sync)")
    batch_max_readings: int = Field(500, ge=1, le=2000)
    time_sync_interval_s: int = Field(
        86_400, ge=0, description="broadcast time to DL/T645 meters; 0 = never"
    )
    metrics_port: int = Field(9108, ge=0, le=65_535, description="Prometheus on 127.0.0.1; 0 = off")
    health_interval_s: int = Field(60, ge=1)
    groups: list[GroupConfig] = Field(
        default_factory=lambda: [
            GroupConfig(name="default", interval_s=60, quantities=["energy_import"])
        ]
    )
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    lines: list[LineConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> SiteConfig:
        ids = [m.id for line in self.lines for m in line.meters]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"meter ids must be unique; repeated: {', '.join(dupes)}")
        names = [line.name for line in self.lines]
        if len(set(names)) != len(names):
            raise ValueError("line names must be unique")
        groups = {g.name for g in self.groups}
        if len(groups) != len(self.groups):
            raise ValueError("group names must be unique")
        known = set(ids)
        for line in self.lines:
            for m in line.meters:
                if m.parent is not None and m.parent not in known:
                    raise ValueError(f"meter {m.id!r}: parent {m.parent!r} is not a meter here")
                unknown = set(m.groups or ()) - groups
                if unknown:
                    raise ValueError(f"meter {m.id!r}: unknown group(s) {sorted(unknown)}")
        self._check_tree_has_no_cycle()
        return self

    def _check_tree_has_no_cycle(self) -> None:
        parent = {m.id: m.parent for line in self.lines for m in line.meters}
        for start in parent:
            seen, node = {start}, parent[start]
            while node is not None:
                if node in seen:
                    raise ValueError(f"meter {start!r}: the parent chain loops back to {node!r}")
                seen.add(node)
                node = parent[node]

    def meter_groups(self, meter: MeterConfig) -> list[GroupConfig]:
        return [g for g in self.groups if meter.groups is None or g.name in meter.groups]

    @classmethod
    def load(cls, path: Path) -> SiteConfig:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
        return cls.parse_toml(text, str(path))

    @classmethod
    def parse_toml(cls, text: str, source: str = "<config>") -> SiteConfig:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            locate = TomlLocator(text)
            problems = []
            for err in exc.errors():
                loc = tuple(err["loc"])
                line = locate(loc)
                where = f"{source}:{line}" if line else source
                problems.append(f"{where}: {format_path(loc) or '(top)'}: {err['msg']}")
            raise ConfigError("\n".join(problems)) from None


def format_path(loc: tuple[object, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")


class TomlLocator:
    """Finds the line of a field path in TOML text written with ordinary tables and arrays
    of tables (``[outbox]``, ``[[lines]]``, ``[[lines.meters]]``, ``key = value``); returns
    the closest enclosing table's line when the key itself is absent."""

    def __init__(self, text: str) -> None:
        self.keys: dict[tuple[object, ...], int] = {}
        counters: dict[tuple[object, ...], int] = {}
        table: tuple[object, ...] = ()
        for number, raw in enumerate(text.splitlines(), start=1):
            header = _HEADER.match(raw)
            if header:
                names = [n.strip().strip("\"'") for n in header.group(2).split(".")]
                path: tuple[object, ...] = ()
                for i, name in enumerate(names):
                    path = (*path, name)
                    if header.group(1) == "[[" and i == len(names) - 1:
                        # A new element of an array of tables: its own sub-arrays restart.
                        counters[path] = counters.get(path, -1) + 1
                        for deeper in [
                            k for k in counters if len(k) > len(path) and k[: len(path)] == path
                        ]:
                            del counters[deeper]
                    if path in counters:
                        path = (*path, counters[path])
                table = path
                self.keys.setdefault(table, number)
                continue
            key = _KEY.match(raw)
            if key:
                self.keys.setdefault((*table, key.group(1)), number)

    def __call__(self, loc: tuple[object, ...]) -> int | None:
        for end in range(len(loc), -1, -1):
            if (line := self.keys.get(tuple(loc[:end]))) is not None:
                return line
        return None
