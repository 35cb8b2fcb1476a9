"""Site configuration of a gateway: identity, lines, meters (a tree), polling groups, outbox.

Loaded from TOML (UTF-8) and validated in one pass by :func:`SiteConfig.parse_toml`: the
models check each field (types, ranges, baud rate, port, time zone), :mod:`edge.config_check`
what ``edge run`` needs beyond that (addresses, profiles, quantities, the tree). Every problem
is listed, each with the file, the line in it and the field path, e.g.
``site.toml:23: lines[0].meters[2].adress: Extra inputs are not permitted``. ``edge check``,
``edge run`` and the ``reload_config`` command all load through it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from edge.config_check import (
    DEFAULT_GROUP,
    STANDARD_BAUDS,
    Problem,
    format_path,
    site_problems,
)

_Id = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
_Strict = ConfigDict(extra="forbid", frozen=True)

BITS_PER_CHARACTER = {"N": 10, "E": 11, "O": 11}  # start + 8 data (+ parity) + stop


#: validation context of a file load: the rules of edge.config_check run on the raw data
#: (with line numbers) instead of in SiteConfig's model validator
_FROM_FILE = "site_file"


class ConfigError(Exception):
    """The site configuration is malformed; the message has one line per problem, each
    naming file, line and field."""


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
        min_length=1,
        max_length=12,
        description="DL/T645: the 12-digit nameplate address; Modbus: the unit id 1..247",
    )
    version: Literal["2007", "1997"] = "2007"
    profile: str | None = Field(None, description="Modbus device profile name")
    ct: Decimal = Field(Decimal(1), gt=0)
    pt: Decimal = Field(Decimal(1), gt=0)
    parent: str | None = None
    role: Literal["main", "branch", "unit", "common", "landlord"] = "unit"
    groups: list[str] | None = Field(None, description="polling groups; default all")
    timeout_s: float | None = Field(None, gt=0, le=30, description="overrides the line's")

    @field_validator("address", mode="before")
    @classmethod
    def _unit_id_as_text(cls, value: Any) -> Any:
        # ``address = 5`` for a Modbus unit; a DL/T645 address given as a number loses its
        # leading zeros and is then refused for not having 12 digits.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @property
    def multiplier(self) -> Decimal:
        return self.ct * self.pt


class LineConfig(BaseModel):
    """One bus: a TCP serial server (``tcp = "host:port"``) or a local ``serial`` port."""

    model_config = _Strict

    name: str = _Id
    protocol: Literal["dlt645", "modbus"] = "dlt645"
    tcp: str | None = Field(None, description="host:port of a TCP serial server or Modbus TCP")
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

    @field_validator("tcp")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, colon, port = value.rpartition(":")
        if not colon or not host or any(c.isspace() for c in value) or not port.isdigit():
            raise ValueError(f"{value!r}: expected host:port, e.g. 192.168.1.50:8899")
        if not 1 <= int(port) <= 65_535:
            raise ValueError(f"{value!r}: port {int(port)} is outside 1..65535")
        return value

    @field_validator("baud")
    @classmethod
    def _standard_baud(cls, value: int) -> int:
        if value not in STANDARD_BAUDS:
            raise ValueError(
                f"{value} bit/s is not a standard rate; expected one of "
                f"{', '.join(map(str, STANDARD_BAUDS))}"
            )
        return value

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
        default_factory=lambda: [GroupConfig.model_validate(DEFAULT_GROUP)]
    )
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    lines: list[LineConfig] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(
                f"{value!r} is not a known time zone; expected an IANA name such as Asia/Shanghai"
            ) from None
        return value

    @model_validator(mode="after")
    def _runnable(self, info: ValidationInfo) -> SiteConfig:
        if not (info.context or {}).get(_FROM_FILE):
            problems = site_problems(self.model_dump())
            if problems:
                raise ValueError("; ".join(f"{format_path(p.loc)}: {p.message}" for p in problems))
        return self

    def meter_groups(self, meter: MeterConfig) -> list[GroupConfig]:
        return [g for g in self.groups if meter.groups is None or g.name in meter.groups]

    @classmethod
    def load(cls, path: Path) -> SiteConfig:
        """Read and validate a site file (UTF-8, a byte-order mark allowed); ConfigError
        lists every problem."""
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
            raise ConfigError(
                f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column "
                f"{column}); save the file as UTF-8"
            ) from None
        return cls.parse_toml(text, str(path))

    @classmethod
    def parse_toml(cls, text: str, source: str = "<config>") -> SiteConfig:
        """Validate TOML text; ``source`` names it in the messages."""
        try:
            data = tomllib.loads(text)
        except RecursionError:  # thousands of nested arrays or tables: the parser gives up
            raise ConfigError(f"{source}: not valid TOML: nested too deeply") from None
        except tomllib.TOMLDecodeError as exc:
            message = str(exc)
            at = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
            if at is None:
                raise ConfigError(f"{source}: not valid TOML: {message}") from None
            raise ConfigError(
                f"{source}:{at.group(1)}: not valid TOML: {message[: at.start()]} "
                f"(column {at.group(2)})"
            ) from None
        return cls.validate_data(data, source, TomlLocator(text))

    @classmethod
    def validate_data(
        cls, data: Mapping[str, Any], source: str, locate: TomlLocator | None = None
    ) -> SiteConfig:
        """The one validation of a site configuration (``edge check`` and ``edge run``):
        field checks of the models and the rules of :mod:`edge.config_check`, every problem
        in one ConfigError, in the order of the file."""
        problems: list[Problem] = []
        config = None
        try:
            config = cls.model_validate(data, context={_FROM_FILE: True})
        except ValidationError as exc:
            problems += [Problem(tuple(e["loc"]), _message(e)) for e in exc.errors()]
        problems += site_problems(data)
        if not problems:
            assert config is not None
            return config
        lines = [(locate(p.loc) if locate else None, p) for p in problems]
        lines.sort(key=lambda item: item[0] or 0)
        raise ConfigError(
            "\n".join(
                f"{source}:{line}: {format_path(p.loc) or '(top)'}: {p.message}"
                if line
                else f"{source}: {format_path(p.loc) or '(top)'}: {p.message}"
                for line, p in lines
            )
        )


def _message(error: Any) -> str:
    """pydantic's message, without the "Value error, " of our own validators."""
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])
    return str(error["msg"])


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")
_PART = r"(?:[A-Za-z0-9_\-]+|\"[^\"]*\"|'[^']*')"
_KEY = re.compile(rf"^\s*({_PART}(?:\s*\.\s*{_PART})*)\s*=")


class TomlLocator:
    """Finds the line of a field path in TOML text written with ordinary tables and arrays
    of tables (``[outbox]``, ``[[lines]]``, ``[[lines.meters]]``, ``key = value``, dotted
    keys); returns the closest enclosing table's or key's line when the path goes deeper
    (a key absent, an element of an array or inline table)."""

    def __init__(self, text: str) -> None:
        self.keys: dict[tuple[object, ...], int] = {}
        counters: dict[tuple[object, ...], int] = {}
        table: tuple[object, ...] = ()
        in_string = False
        # TOML's newline is LF (or CRLF); str.splitlines() would also split on \f, \x1c...
        for number, raw in enumerate(text.split("\n"), start=1):
            was_in_string = in_string
            if (raw.count('"""') + raw.count("'''")) % 2:
                in_string = not in_string  # a multi-line string opens or closes here
            if was_in_string:
                continue
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
                parts = re.findall(_PART, key.group(1))
                self.keys.setdefault((*table, *(k.strip("\"'") for k in parts)), number)

    def __call__(self, loc: tuple[object, ...]) -> int | None:
        for end in range(len(loc), -1, -1):
            if (line := self.keys.get(tuple(loc[:end]))) is not None:
                return line
        return None
