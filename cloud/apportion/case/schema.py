"""The case file's schema: a pydantic record per section, and the whole file's fields.

:class:`CaseSchema` holds a whole case's fields (period, registers, units, meters, tree,
occupancy, readings, history, drivers, tariffs, bill, policy), reads the shorthands (a
bare number for the one register) and gives the derived views (days, a reading's local
day, a meter's replacement chain). :class:`cloud.apportion.case.document.Case` adds the
cross-field checks, the canonical form and the engine inputs.

Dates are the site's local calendar (Asia/Shanghai by default); readings are the meters'
frozen values at local midnight, so a reading is dated by the day it opens.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    field_validator,
    model_validator,
)

from cloud.apportion.case.readings import (
    MAX_MAGNITUDE,
    SINGLE,
    MeterReading,
    Readings,
    ReadingTable,
    parse_readings,
)
from cloud.apportion.errors import CaseError
from cloud.apportion.keys import Basis, CommonType, VacantPolicy
from cloud.apportion.money import TariffKind

_Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
_Positive = Annotated[Decimal, Field(gt=0, lt=MAX_MAGNITUDE, allow_inf_nan=False)]
_NonNegative = Annotated[Decimal, Field(ge=0, lt=MAX_MAGNITUDE, allow_inf_nan=False)]
_Finite = Annotated[Decimal, Field(gt=-MAX_MAGNITUDE, lt=MAX_MAGNITUDE, allow_inf_nan=False)]
_Fraction = Annotated[Decimal, Field(ge=0, le=1, allow_inf_nan=False)]
_Day = datetime | date


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


#: For other documents made of the same sections (the site file): the base record and the id.
Model = _Model
SiteId = _Id


class PeriodSpec(_Model):
    """``start`` (first day) and ``end`` (first day after), local dates, half-open."""

    start: date
    end: date


#: A display name (unit, node, site): what people read instead of the id.
_Name = Annotated[str, Field(max_length=100)]


class UnitSpec(_Model):
    """A unit (leasable space): floor area [m²], building, floor and display name."""

    id: _Id
    area: _Positive
    building: Annotated[str, Field(max_length=64)] = ""
    floor: Annotated[str, Field(max_length=32)] = ""
    name: _Name = ""

    @field_validator("floor", mode="before")
    @classmethod
    def _floor_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | Decimal) else value


class MultiplierStep(_Model):
    """A multiplier (CT × PT ratio) in force from a date."""

    from_: date = Field(alias="from")
    value: _Positive


class MeterSpec(_Model):
    """A meter installation: multiplier (one value or dated steps), rollover capacity
    [register unit], bidirectional (net) metering, installed / removed dates, and the
    meter that replaced it."""

    id: _Id
    multiplier: _Positive | list[MultiplierStep] = Decimal(1)
    capacity: _Positive | None = None
    bidirectional: bool = False
    installed: date | None = None
    removed: date | None = None
    replaced_by: _Id | None = None
    #: display name (e.g. 3号楼电表) shown on statements instead of the id; optional
    name: _Name = ""


class FormulaSpec(_Model):
    """The formula key: daily factor clip((driver − base) ÷ span, 0, 1)."""

    driver: _Id
    base: _Finite = Decimal(26)
    span: _Positive = Decimal(10)


class RuleSpec(_Model):
    """How a main, branch or common node allocates (see docs/apportionment.md)."""

    basis: Basis = Basis.AREA
    p: _Fraction = Decimal("0.5")
    coefficients: dict[_Id, _NonNegative] = Field(default_factory=dict)
    formula: FormulaSpec | None = None
    loss_cap: _Fraction | None = None
    vacant: VacantPolicy = VacantPolicy.LANDLORD
    estimate_limit: _Fraction = Decimal("0.1")
    on_estimate_excess: Literal["hold", "area"] = "hold"
    common_type: CommonType | None = None
    exclusive_to: _Id | None = None
    shared_by: list[_Id] = Field(default_factory=list)


class NodeSpec(_Model):
    """A meter tree node. Units name their ``unit`` (default: the node id); a landlord
    node may give the ``area`` of the landlord's own premises [m²]."""

    id: _Id
    kind: Literal["main", "branch", "unit", "common", "landlord"]
    parent: _Id | None = None
    meter: _Id | None = None
    unit: _Id | None = None
    area: _NonNegative | None = None
    rule: RuleSpec | None = None
    name: _Name = ""


class OccupancySpec(_Model):
    """A tenant in a unit from ``from`` (inclusive) to ``to`` (exclusive; open = on)."""

    tenant: _Id
    from_: date = Field(alias="from")
    to: date | None = None
    #: the tenant's display name (e.g. 星辰科技有限公司) shown on statements; optional
    name: _Name = ""


class TierSpec(_Model):
    """A tier: up to ``upto`` kWh per month (none = the rest) at ``price`` CNY/kWh."""

    upto: _Positive | None = None
    price: _NonNegative


class TariffSpec(_Model):
    """An effective-dated tariff version [CNY/kWh, CNY/kW·month]."""

    id: _Id
    kind: TariffKind
    from_: date = Field(alias="from")
    to: date | None = None
    price: _NonNegative | None = None
    prices: dict[str, _NonNegative] = Field(default_factory=dict)
    tiers: list[TierSpec] = Field(default_factory=list)
    demand_price: _NonNegative | None = None
    markup: _NonNegative = Decimal(0)


class BillSpec(_Model):
    """The utility invoice of the main meter: amount per register [CNY], demand charge."""

    invoice: str = Field(min_length=1, max_length=64)
    amounts: dict[str, _NonNegative]
    demand: _NonNegative | None = None
    demand_kw: _NonNegative | None = None


class PolicySpec(_Model):
    """Site-wide settings; see :class:`cloud.apportion.engine_inputs.Policy`."""

    rollover_plausibility: _Positive = Decimal(3)
    markup_cap: _NonNegative = Decimal(0)
    demand_basis: Literal["area", "usage"] = "area"
    tou_min_ratio: _NonNegative = Decimal(3)
    catalog_tolerance: _NonNegative = Decimal("0.01")


def _checked(value: Any) -> Any:
    """The readings field: :meth:`CaseSchema._shorthands` checked them already."""
    if type(value) is not Readings and type(value) is not ReadingTable:
        raise ValueError("readings: expected the checked readings")  # pragma: no cover
    return value


class CaseSchema(_Model):
    """A whole case file's fields and their derived views (see module docstring)."""

    site: _Id = "site"
    #: The site's display name, and the wire quantity each register is read from (the
    #: site file's own sections; a case file may carry them too).
    name: Annotated[str, Field(max_length=200)] = ""
    quantities: dict[
        Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,16}$")],
        Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")],
    ] = Field(default_factory=dict)
    timezone: str = "Asia/Shanghai"
    period: PeriodSpec
    registers: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+$")]] = Field(
        default_factory=lambda: ["total"], min_length=1
    )
    units: list[UnitSpec] = Field(default_factory=list)
    meters: list[MeterSpec]
    tree: list[NodeSpec]
    occupancy: dict[_Id, list[OccupancySpec]] = Field(default_factory=dict)
    #: meter → day → reading, checked in one pass (:mod:`cloud.apportion.case.readings`)
    readings: Annotated[dict[str, dict[_Day, MeterReading]], PlainValidator(_checked)]
    history: dict[_Id, dict[str, _NonNegative]] = Field(default_factory=dict)
    drivers: dict[_Id, dict[date, _Finite]] = Field(default_factory=dict)
    tariffs: list[TariffSpec] = Field(min_length=1)
    bill: BillSpec
    policy: PolicySpec = Field(default_factory=PolicySpec)

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        """A bare number stands for the one register's value (readings, history); the
        readings are checked here (:func:`~cloud.apportion.case.readings.parse_readings`)."""
        if not isinstance(data, Mapping):
            return data
        registers = data.get("registers") or ["total"]
        single = registers[0] if isinstance(registers, list) and len(registers) == 1 else SINGLE
        out = dict(data)
        if "readings" in data:  # CaseError naming the reading at fault
            out["readings"] = parse_readings(data["readings"], single)
        history = data.get("history")
        if isinstance(history, Mapping):
            out["history"] = {
                m: v if isinstance(v, Mapping) else {single: v} for m, v in history.items()
            }
        return out

    # ------------------------------------------------------------------ derived views

    @property
    def days(self) -> int:
        return (self.period.end - self.period.start).days

    def day_index(self, day: date) -> int:
        return (day - self.period.start).days

    def reading_day(self, meter: str, at: date | datetime) -> date:
        """The local date a reading opens; CaseError unless it is at local midnight."""
        if not isinstance(at, datetime):
            return at
        local = at.astimezone(ZoneInfo(self.timezone)) if at.tzinfo else at
        if local.time() != datetime.min.time():
            raise CaseError(
                f"readings: meter {meter!r} reading at {at.isoformat()} is not at local "
                f"midnight ({self.timezone}); readings are the meters' daily frozen values"
            )
        return local.date()

    def meter_index(self) -> dict[str, MeterSpec]:
        """The meters by id (build it once and pass it to :meth:`chain` in a loop)."""
        return {m.id: m for m in self.meters}

    def chain(self, first: str, by_id: Mapping[str, MeterSpec] | None = None) -> list[MeterSpec]:
        """The installation ``first`` and the meters that replaced it, in order; ``by_id``
        is :meth:`meter_index`, given by callers that follow many chains."""
        if by_id is None:
            by_id = self.meter_index()
        out = [by_id[first]]
        while out[-1].replaced_by is not None:
            out.append(by_id[out[-1].replaced_by])
        return out
