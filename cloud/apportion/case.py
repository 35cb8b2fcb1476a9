"""The case file: one whole small apportionment problem in YAML, validated, as engine inputs.

A case holds the period, the registers, units, meters (installations), the meter tree with
its rules, occupancy, readings, history, daily drivers, tariff versions, the utility bill
and the policy (docs/apportionment.md documents every field with a worked example).

:func:`load_case` / :func:`parse_case` validate everything before anything is computed:
an unknown meter, a negative area, a tariff that leaves a gap in the period, readings of a
meter outside the tree ... raise :class:`CaseError` with a message naming the item.
:meth:`Case.to_engine_inputs` turns a valid case into :class:`EngineInputs` (canonical
order: everything sorted by id, so the input order of the file never matters), and
:meth:`Case.canonical_json` gives the bytes the run's input hash is computed over.

Dates are the site's local calendar (Asia/Shanghai by default); readings are the meters'
frozen values at local midnight, so a reading is dated by the day it opens.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from cloud.apportion.allocation import (
    LANDLORD,
    VACANT,
    Basis,
    CommonType,
    Formula,
    NodeKind,
    Rule,
    VacantPolicy,
)
from cloud.apportion.engine import (
    EngineInputs,
    MeterInputs,
    Period,
    Policy,
    TreeInputs,
)
from cloud.apportion.errors import CaseError
from cloud.apportion.money import DEMAND, Bill, TariffKind, TariffVersion, Tier, to_cents

_Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
_Positive = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
_NonNegative = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
_Finite = Annotated[Decimal, Field(allow_inf_nan=False)]
_Fraction = Annotated[Decimal, Field(ge=0, le=1, allow_inf_nan=False)]
_Day = datetime | date
GOOD_QUALITIES = frozenset({"good", "estimated"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PeriodSpec(_Model):
    """``start`` (first day) and ``end`` (first day after), local dates, half-open."""

    start: date
    end: date


class UnitSpec(_Model):
    """A unit (leasable space): floor area [m²], building and floor."""

    id: _Id
    area: _Positive
    building: str = ""
    floor: str = ""

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


class OccupancySpec(_Model):
    """A tenant in a unit from ``from`` (inclusive) to ``to`` (exclusive; open = on)."""

    tenant: _Id
    from_: date = Field(alias="from")
    to: date | None = None


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
    """Site-wide settings; see :class:`cloud.apportion.engine.Policy`."""

    rollover_plausibility: _Positive = Decimal(3)
    markup_cap: _NonNegative = Decimal(0)
    demand_basis: Literal["area", "usage"] = "area"
    tou_min_ratio: _NonNegative = Decimal(3)
    catalog_tolerance: _NonNegative = Decimal("0.01")


class Reading(_Model):
    """Register values at one local midnight, with the reading's quality."""

    values: dict[str, _NonNegative]
    quality: str = "good"


#: Key standing for "the one register" in a shorthand given with several registers.
SINGLE = "__single__"


def _reading(value: Any, single: str) -> Any:
    if isinstance(value, Mapping) and isinstance(value.get("values"), Mapping):
        return value
    if isinstance(value, Mapping):
        data = dict(value)
        quality = data.pop("quality", "good")
        return {"values": data, "quality": quality}
    return {"values": {single: value}}


class Case(_Model):
    """A whole apportionment problem (see module docstring)."""

    site: _Id = "site"
    timezone: str = "Asia/Shanghai"
    period: PeriodSpec
    registers: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+$")]] = Field(
        default_factory=lambda: ["total"], min_length=1
    )
    units: list[UnitSpec] = Field(default_factory=list)
    meters: list[MeterSpec]
    tree: list[NodeSpec]
    occupancy: dict[_Id, list[OccupancySpec]] = Field(default_factory=dict)
    readings: dict[_Id, dict[_Day, Reading]]
    history: dict[_Id, dict[str, _NonNegative]] = Field(default_factory=dict)
    drivers: dict[_Id, dict[date, _Finite]] = Field(default_factory=dict)
    tariffs: list[TariffSpec] = Field(min_length=1)
    bill: BillSpec
    policy: PolicySpec = Field(default_factory=PolicySpec)

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        """A bare number stands for the one register's value (readings, history)."""
        if not isinstance(data, Mapping):
            return data
        registers = data.get("registers") or ["total"]
        single = registers[0] if isinstance(registers, list) and len(registers) == 1 else SINGLE
        out = dict(data)
        readings = data.get("readings")
        if isinstance(readings, Mapping):
            out["readings"] = {
                meter: (
                    {at: _reading(v, single) for at, v in series.items()}
                    if isinstance(series, Mapping)
                    else series
                )
                for meter, series in readings.items()
            }
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

    def chain(self, first: str) -> list[MeterSpec]:
        """The installation ``first`` and the meters that replaced it, in order."""
        by_id = {m.id: m for m in self.meters}
        out = [by_id[first]]
        while out[-1].replaced_by is not None:
            out.append(by_id[out[-1].replaced_by])
        return out

    # ------------------------------------------------------------------ validation

    def validate_case(self) -> None:
        """Cross-field checks; raises CaseError naming the first item at fault."""
        _check_case(self)

    # ------------------------------------------------------------------ canonical form

    def canonical(self) -> dict[str, Any]:
        """The case as plain JSON values in a canonical order (lists sorted by id, dates
        ISO, decimals normalised) — the same for any order of the file's items."""
        data = self.model_dump(mode="python", by_alias=True)
        data["units"] = sorted(data["units"], key=lambda u: u["id"])
        data["meters"] = sorted(data["meters"], key=lambda m: m["id"])
        data["tree"] = sorted(data["tree"], key=lambda n: n["id"])
        data["tariffs"] = sorted(data["tariffs"], key=lambda t: (t["from"], t["id"]))
        data["occupancy"] = {
            u: sorted(s, key=lambda o: o["from"]) for u, s in data["occupancy"].items()
        }
        data["readings"] = {
            m: {self.reading_day(m, at).isoformat(): r for at, r in series.items()}
            for m, series in data["readings"].items()
        }
        for node in data["tree"]:
            if node["rule"] is not None:
                node["rule"]["shared_by"] = sorted(node["rule"]["shared_by"])
        return _plain(data)

    def canonical_json(self) -> bytes:
        """Canonical JSON bytes: sorted keys, no whitespace, UTF-8, decimals as strings."""
        return canonical_json(self.canonical())

    def input_hash(self) -> str:
        """SHA-256 (hex) of :meth:`canonical_json`: the run's input hash."""
        return hashlib.sha256(self.canonical_json()).hexdigest()

    # ------------------------------------------------------------------ engine inputs

    def to_engine_inputs(self) -> EngineInputs:
        """Arrays for :func:`cloud.apportion.engine.apportion` (validates first)."""
        self.validate_case()
        return _engine_inputs(self)


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys and no whitespace, UTF-8 — the bytes hashed and signed."""
    return json.dumps(
        _plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return "0" if text in ("-0", "") else text
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, Mapping):
        return {str(_plain(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# ---------------------------------------------------------------------- loading


class _CaseLoader(yaml.SafeLoader):
    """YAML loader keeping decimal numbers exact (Decimal instead of float)."""


def _decimal_scalar(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        return Decimal(text)
    except InvalidOperation:
        raise CaseError(
            f"line {node.start_mark.line + 1}: {text!r} is not a finite number"
        ) from None


_CaseLoader.add_constructor("tag:yaml.org,2002:float", _decimal_scalar)


def parse_case(text: str, source: str = "case") -> Case:
    """Parse and validate a case from YAML (or JSON) text; CaseError names the item."""
    try:
        raw = yaml.load(text, Loader=_CaseLoader)
    except yaml.YAMLError as exc:
        raise CaseError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(raw, Mapping):
        raise CaseError(f"{source}: a case file is a mapping of sections (period, meters ...)")
    return case_from_data(raw, source)


def case_from_data(raw: Mapping[str, Any], source: str = "case") -> Case:
    """Validate already-parsed case data (e.g. a run's stored canonical inputs)."""
    try:
        case = Case.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = _describe(error["loc"], raw)
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        got = error.get("input")
        shown = f", got {got!r}" if not isinstance(got, Mapping | list) else ""
        raise CaseError(f"{source}: {where}: {error['msg']}{shown}{more}") from None
    case.validate_case()
    return case


def load_case(path: Path) -> Case:
    """Read, parse and validate the case file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CaseError(f"{path}: cannot read the case file: {exc.strerror}") from None
    return parse_case(text, str(path))


def _describe(loc: tuple[Any, ...], raw: Any) -> str:
    """``units[2] (A103).area`` from a pydantic error location and the raw data."""
    parts: list[str] = []
    node = raw
    for key in loc:
        if key in ("values", SINGLE):
            continue
        if isinstance(key, int) and isinstance(node, list):
            node = node[key] if key < len(node) else None
            label = f"[{key}]"
            if isinstance(node, Mapping) and "id" in node:
                label += f" ({node['id']})"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(key))
            node = node.get(key) if isinstance(node, Mapping) else None
    return "".join(parts) or "case"


# ---------------------------------------------------------------------- cross checks


def _check_case(case: Case) -> None:
    start, end = case.period.start, case.period.end
    if end <= start:
        raise CaseError(f"period: end {end} must be after start {start}")
    try:
        ZoneInfo(case.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise CaseError(f"timezone: {case.timezone!r} is not a known time zone") from None
    if len(set(case.registers)) != len(case.registers) or DEMAND in case.registers:
        raise CaseError(f"registers: {case.registers} must be distinct and not {DEMAND!r}")
    _unique("units", [u.id for u in case.units])
    _unique("meters", [m.id for m in case.meters])
    _unique("tree", [n.id for n in case.tree])
    units = {u.id: u for u in case.units}
    meters = {m.id: m for m in case.meters}
    nodes = {n.id: n for n in case.tree}

    for m in case.meters:
        if m.replaced_by is not None:
            if m.replaced_by not in meters:
                raise CaseError(
                    f"meters: meter {m.id!r} is replaced by unknown meter {m.replaced_by!r}"
                )
            new = meters[m.replaced_by]
            if m.removed is None or new.installed != m.removed:
                raise CaseError(
                    f"meters: meter {m.id!r} replaced by {new.id!r}: give "
                    f"'removed' on {m.id!r} and the same date as 'installed' on "
                    f"{new.id!r}"
                )
        if m.installed and m.removed and m.removed <= m.installed:
            raise CaseError(
                f"meters: meter {m.id!r} removed {m.removed} before it was installed {m.installed}"
            )
        if isinstance(m.multiplier, list):
            if not m.multiplier:
                raise CaseError(f"meters: meter {m.id!r} has an empty multiplier list")
            if m.multiplier[0].from_ > max(start, m.installed or start):
                raise CaseError(
                    f"meters: meter {m.id!r} has no multiplier before {m.multiplier[0].from_}"
                )
            froms = [s.from_ for s in m.multiplier]
            if froms != sorted(set(froms)):
                raise CaseError(
                    f"meters: meter {m.id!r} multiplier steps must be in date order, one per date"
                )

    main = [n for n in case.tree if n.kind == "main"]
    if len(main) != 1:
        raise CaseError(f"tree: exactly one node of kind 'main' is needed, found {len(main)}")
    used_meters: dict[str, str] = {}
    used_units: dict[str, str] = {}
    for n in case.tree:
        if n.kind == "main":
            if n.parent is not None:
                raise CaseError(f"tree: main node {n.id!r} cannot have a parent")
            if n.meter is None:
                raise CaseError(f"tree: main node {n.id!r} needs a meter")
        else:
            if n.parent is None or n.parent not in nodes:
                raise CaseError(f"tree: node {n.id!r} has unknown parent {n.parent!r}")
            if nodes[n.parent].kind not in ("main", "branch"):
                raise CaseError(
                    f"tree: node {n.id!r} hangs under {n.parent!r}, a "
                    f"{nodes[n.parent].kind} node; only main and branch nodes "
                    "have children"
                )
        if n.meter is not None:
            if n.meter not in meters:
                raise CaseError(f"tree: node {n.id!r} meter {n.meter!r} is not in meters")
            for installation in case.chain(n.meter):
                if installation.id in used_meters:
                    raise CaseError(
                        f"tree: meter {installation.id!r} is on nodes "
                        f"{used_meters[installation.id]!r} and {n.id!r}"
                    )
                used_meters[installation.id] = n.id
        if n.kind == "unit":
            unit = n.unit or n.id
            if unit not in units:
                raise CaseError(f"tree: unit node {n.id!r} names unknown unit {unit!r}")
            if unit in used_units:
                raise CaseError(
                    f"tree: unit {unit!r} is on nodes {used_units[unit]!r} and {n.id!r}"
                )
            used_units[unit] = n.id
        elif n.unit is not None:
            raise CaseError(f"tree: node {n.id!r} is {n.kind}; only unit nodes name a unit")
        if n.kind in ("unit", "landlord") and n.rule is not None:
            raise CaseError(f"tree: node {n.id!r} is a {n.kind} node; it has no rule")
        if n.area is not None and n.kind != "landlord":
            raise CaseError(
                f"tree: node {n.id!r}: 'area' is for landlord nodes; a unit's area is in units"
            )
        _check_rule(case, n, nodes)
    for n in case.tree:
        seen = {n.id}
        cursor = n.parent
        while cursor is not None:
            if cursor in seen:
                raise CaseError(f"tree: node {n.id!r} is its own ancestor")
            seen.add(cursor)
            cursor = nodes[cursor].parent
    for m in case.meters:
        if m.id not in used_meters:
            raise CaseError(f"meters: meter {m.id!r} is not in the tree")

    for meter, series in case.readings.items():
        if meter not in used_meters:
            raise CaseError(f"readings: meter {meter!r} is not in the tree")
        spec = meters[meter]
        lo = max(start, spec.installed or start)
        hi = min(end, spec.removed or end)
        for at, reading in series.items():
            day = case.reading_day(meter, at)
            if not lo <= day <= hi:
                raise CaseError(
                    f"readings: meter {meter!r} reading on {day} is outside its "
                    f"installed part of the period ({lo} … {hi})"
                )
            names = set(reading.values)
            if names == {SINGLE}:
                raise CaseError(
                    f"readings: meter {meter!r} on {day}: give a value per "
                    f"register {case.registers}"
                )
            if names != set(case.registers):
                raise CaseError(
                    f"readings: meter {meter!r} on {day}: registers "
                    f"{sorted(names)}, expected {case.registers}"
                )
    for meter, values in case.history.items():
        if meter not in used_meters:
            raise CaseError(f"history: meter {meter!r} is not in the tree")
        names = set(values)
        if not names <= set(case.registers):
            raise CaseError(
                f"history: meter {meter!r}: unknown registers {sorted(names - set(case.registers))}"
            )

    for unit_node, stays in case.occupancy.items():
        if unit_node not in nodes or nodes[unit_node].kind != "unit":
            raise CaseError(f"occupancy: {unit_node!r} is not a unit node of the tree")
        ordered = sorted(stays, key=lambda s: s.from_)
        for stay in ordered:
            if stay.to is not None and stay.to <= stay.from_:
                raise CaseError(
                    f"occupancy: {unit_node!r} tenant {stay.tenant!r} leaves "
                    f"{stay.to} before arriving {stay.from_}"
                )
        for a, b in itertools.pairwise(ordered):
            if a.to is None or a.to > b.from_:
                raise CaseError(
                    f"occupancy: {unit_node!r} tenants {a.tenant!r} and "
                    f"{b.tenant!r} overlap from {b.from_}"
                )

    for name, series in case.drivers.items():
        missing = [
            start + timedelta(days=d)
            for d in range(case.days)
            if start + timedelta(days=d) not in series
        ]
        if missing:
            raise CaseError(
                f"drivers: {name!r} has no value for {missing[0]}"
                + (f" and {len(missing) - 1} more days" if len(missing) > 1 else "")
            )
    _check_tariffs(case)
    _check_bill(case)


def _unique(section: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise CaseError(f"{section}: id {i!r} appears twice")
        seen.add(i)


def _check_rule(case: Case, node: NodeSpec, nodes: Mapping[str, NodeSpec]) -> None:
    rule = node.rule
    if rule is None:
        return
    where = f"tree: node {node.id!r} rule"
    if node.kind == "common":
        kind = rule.common_type or CommonType.MANDATORY
        serves = nodes.get(rule.exclusive_to or "")
        if kind is CommonType.EXCLUSIVE and (serves is None or serves.kind != "unit"):
            raise CaseError(
                f"{where}: an exclusive common area names the unit node it "
                f"serves in 'exclusive_to', got {rule.exclusive_to!r}"
            )
        if kind is CommonType.MANDATORY and rule.basis is Basis.FORMULA:
            raise CaseError(
                f"{where}: a mandatory common area is passed on in full; a "
                "formula key is for negotiated ones"
            )
    elif rule.common_type is not None or rule.exclusive_to is not None or rule.shared_by:
        raise CaseError(f"{where}: common_type, exclusive_to and shared_by are for common nodes")
    if node.kind == "common" and rule.loss_cap is not None:
        raise CaseError(f"{where}: loss_cap applies to the residual of main and branch nodes")
    for member in rule.shared_by:
        if member not in nodes or nodes[member].kind not in ("unit", "landlord"):
            raise CaseError(f"{where}: shared_by names {member!r}, not a unit or landlord node")
    if rule.basis is Basis.FORMULA:
        if rule.formula is None:
            raise CaseError(f"{where}: basis 'formula' needs a formula (driver, base, span)")
        if rule.formula.driver not in case.drivers:
            raise CaseError(f"{where}: formula driver {rule.formula.driver!r} is not in drivers")
    if rule.basis is Basis.COEFFICIENT:
        for member in rule.coefficients:
            if member not in nodes or nodes[member].kind not in ("unit", "landlord"):
                raise CaseError(f"{where}: coefficient for {member!r}, not a unit or landlord node")
        scope = rule.shared_by or [
            n.id
            for n in case.tree
            if n.kind in ("unit", "landlord") and _below(n.id, _scope_root(node), nodes)
        ]
        lacking = sorted(set(scope) - set(rule.coefficients))
        if lacking:
            raise CaseError(f"{where}: basis 'coefficient' has no coefficient for {lacking[0]!r}")


def _scope_root(node: NodeSpec) -> str:
    return node.parent if node.kind == "common" and node.parent else node.id


def _below(node: str, ancestor: str, nodes: Mapping[str, NodeSpec]) -> bool:
    cursor = nodes[node].parent
    while cursor is not None:
        if cursor == ancestor:
            return True
        cursor = nodes[cursor].parent
    return False


def _check_tariffs(case: Case) -> None:
    versions = sorted(case.tariffs, key=lambda t: t.from_)
    _unique("tariffs", [t.id for t in versions])
    start, end = case.period.start, case.period.end
    cursor = start
    for i, t in enumerate(versions):
        upto = t.to or (versions[i + 1].from_ if i + 1 < len(versions) else None)
        if upto is not None and upto <= t.from_:
            raise CaseError(f"tariffs: version {t.id!r} ends {upto} before it starts {t.from_}")
        if i + 1 < len(versions) and t.to is not None and t.to > versions[i + 1].from_:
            raise CaseError(
                f"tariffs: versions {t.id!r} and {versions[i + 1].id!r} overlap "
                f"from {versions[i + 1].from_}"
            )
        if t.from_ > cursor and cursor < end:
            raise CaseError(
                f"tariffs: no tariff version covers {cursor} … "
                f"{min(t.from_, end) - timedelta(days=1)}"
            )
        cursor = max(cursor, upto or date.max)
        _check_tariff_fields(case, t)
    if cursor < end:
        raise CaseError(f"tariffs: no tariff version covers {cursor} … {end - timedelta(days=1)}")


def _check_tariff_fields(case: Case, t: TariffSpec) -> None:
    where = f"tariffs: version {t.id!r}"
    if t.kind is TariffKind.TIERED:
        if case.registers != ["total"]:
            raise CaseError(f"{where}: tiered prices apply to the single 'total' register")
        if not t.tiers or t.tiers[-1].upto is not None:
            raise CaseError(f"{where}: tiers must end with an open tier (no 'upto')")
        bounds = [x.upto for x in t.tiers[:-1]]
        if any(b is None for b in bounds) or bounds != sorted(set(bounds)):
            raise CaseError(f"{where}: tier bounds must rise")
        return
    if t.price is None and not t.prices:
        raise CaseError(f"{where}: give 'price' or 'prices' per register")
    if t.prices and set(t.prices) != set(case.registers):
        raise CaseError(f"{where}: prices for {sorted(t.prices)}, registers are {case.registers}")
    if t.kind is TariffKind.TWO_PART and t.demand_price is None:
        raise CaseError(f"{where}: a two-part tariff needs 'demand_price' (CNY per kW·month)")
    if t.kind is not TariffKind.TWO_PART and t.demand_price is not None:
        raise CaseError(f"{where}: 'demand_price' belongs to two-part tariffs")


def _check_bill(case: Case) -> None:
    bill = case.bill
    if set(bill.amounts) != set(case.registers):
        raise CaseError(f"bill: amounts for {sorted(bill.amounts)}, registers are {case.registers}")
    for name, amount in bill.amounts.items():
        try:
            to_cents(amount)
        except ValueError as exc:
            raise CaseError(f"bill: amount {name}: {exc}") from None
    two_part = any(t.kind is TariffKind.TWO_PART for t in case.tariffs)
    if bill.demand is not None:
        if not two_part:
            raise CaseError("bill: a demand charge needs a two-part tariff")
        try:
            to_cents(bill.demand)
        except ValueError as exc:
            raise CaseError(f"bill: demand: {exc}") from None


# ---------------------------------------------------------------------- engine inputs


def _engine_inputs(case: Case) -> EngineInputs:
    start, days = case.period.start, case.days
    registers = tuple(case.registers)
    nreg = len(registers)

    def clip(day: date | None, default: int) -> int:
        return default if day is None else min(max(case.day_index(day), 0), days)

    nodes = sorted(case.tree, key=lambda n: n.id)
    node_index = {n.id: i for i, n in enumerate(nodes)}
    meter_node: dict[str, int] = {}
    for n in nodes:
        if n.meter is not None:
            for installation in case.chain(n.meter):
                meter_node[installation.id] = node_index[n.id]
    meters = sorted(case.meters, key=lambda m: m.id)

    cuts = {0, days}
    for t in case.tariffs:
        cuts |= {clip(t.from_, 0), clip(t.to, days)}
    for stays in case.occupancy.values():
        for s in stays:
            cuts |= {clip(s.from_, 0), clip(s.to, days)}
    for m in meters:
        cuts |= {clip(m.installed, 0), clip(m.removed, days)}
        if isinstance(m.multiplier, list):
            cuts |= {clip(s.from_, 0) for s in m.multiplier}
    breakpoints = np.array(sorted(cuts), dtype=np.int64)
    slice_start = [start + timedelta(days=int(d)) for d in breakpoints[:-1]]

    count = len(meters)
    values = np.full((count, days + 1, nreg), np.nan)
    multiplier = np.ones((count, breakpoints.size - 1))
    history = np.full((count, nreg), np.nan)
    for i, m in enumerate(meters):
        for at, reading in case.readings.get(m.id, {}).items():
            if reading.quality not in GOOD_QUALITIES:
                continue
            k = case.day_index(case.reading_day(m.id, at))
            values[i, k] = [float(reading.values[r]) for r in registers]
        if isinstance(m.multiplier, list):
            for j, day in enumerate(slice_start):
                steps = [s.value for s in m.multiplier if s.from_ <= day]
                multiplier[i, j] = float(steps[-1] if steps else m.multiplier[0].value)
        else:
            multiplier[i] = float(m.multiplier)
        for name, rate in case.history.get(m.id, {}).items():
            history[i, registers.index(name)] = float(rate)

    units = {u.id: u for u in case.units}
    buildings = sorted({u.building for u in case.units})
    kind_code = {
        "main": NodeKind.MAIN,
        "branch": NodeKind.BRANCH,
        "unit": NodeKind.UNIT,
        "common": NodeKind.COMMON,
        "landlord": NodeKind.LANDLORD,
    }
    area = np.zeros(len(nodes))
    building = np.full(len(nodes), -1, dtype=np.int64)
    for i, n in enumerate(nodes):
        if n.kind == "unit":
            unit = units[n.unit or n.id]
            area[i] = float(unit.area)
            building[i] = buildings.index(unit.building)
        elif n.kind == "landlord" and n.area is not None:
            area[i] = float(n.area)
    tenants = tuple(sorted({s.tenant for stays in case.occupancy.values() for s in stays}))
    occupant = np.full((len(nodes), breakpoints.size - 1), VACANT, dtype=np.int64)
    for unit_node, stays in case.occupancy.items():
        for s in stays:
            lo, hi = clip(s.from_, 0), clip(s.to, days)
            covered = (breakpoints[:-1] >= lo) & (breakpoints[:-1] < hi)
            occupant[node_index[unit_node], covered] = tenants.index(s.tenant)
    for i, n in enumerate(nodes):
        if n.kind == "landlord":
            occupant[i] = LANDLORD

    tree = TreeInputs(
        ids=tuple(n.id for n in nodes),
        kind=np.array([kind_code[n.kind] for n in nodes], dtype=np.int8),
        parent=np.array([node_index[n.parent] if n.parent else -1 for n in nodes], dtype=np.int64),
        rules=tuple(_rule(n, node_index) for n in nodes),
        area=area,
        building=building,
    )
    meter_inputs = MeterInputs(
        ids=tuple(m.id for m in meters),
        node=np.array([meter_node[m.id] for m in meters], dtype=np.int64),
        registers=values,
        multiplier=multiplier,
        capacity=np.array([np.nan if m.capacity is None else float(m.capacity) for m in meters]),
        bidirectional=np.array([m.bidirectional for m in meters], dtype=bool),
        active_from=np.array([clip(m.installed, 0) for m in meters], dtype=np.int64),
        active_to=np.array([clip(m.removed, days) for m in meters], dtype=np.int64),
        history_kwh_per_day=history,
    )
    versions = []
    ordered = sorted(case.tariffs, key=lambda t: t.from_)
    for i, t in enumerate(ordered):
        upto = t.to or (ordered[i + 1].from_ if i + 1 < len(ordered) else None)
        lo, hi = clip(t.from_, 0), clip(upto, days)
        if hi <= lo:
            continue
        prices = dict(t.prices) if t.prices else {r: t.price for r in registers}
        versions.append(
            TariffVersion(
                id=t.id,
                kind=t.kind,
                from_day=lo,
                to_day=hi,
                prices={r: p for r, p in prices.items() if p is not None},
                tiers=tuple(Tier(x.upto, x.price) for x in t.tiers),
                demand_price=t.demand_price,
                markup=t.markup,
            )
        )
    bill = Bill(
        invoice=case.bill.invoice,
        energy_cents={r: to_cents(a) for r, a in case.bill.amounts.items()},
        demand_cents=to_cents(case.bill.demand) if case.bill.demand is not None else 0,
        demand_kw=case.bill.demand_kw,
    )
    drivers = {
        name: np.array([float(series[start + timedelta(days=d)]) for d in range(days)])
        for name, series in case.drivers.items()
    }
    policy = Policy(
        rollover_plausibility=float(case.policy.rollover_plausibility),
        markup_cap=case.policy.markup_cap,
        demand_basis=case.policy.demand_basis,
        tou_min_ratio=float(case.policy.tou_min_ratio),
        catalog_tolerance=float(case.policy.catalog_tolerance),
    )
    return EngineInputs(
        period=Period(start, days, breakpoints),
        registers=registers,
        meters=meter_inputs,
        tree=tree,
        tenants=tenants,
        occupant=occupant,
        tariffs=tuple(versions),
        bill=bill,
        drivers=drivers,
        policy=policy,
    )


def _rule(node: NodeSpec, index: Mapping[str, int]) -> Rule | None:
    if node.kind in ("unit", "landlord"):
        return None
    spec = node.rule or RuleSpec()
    formula = None
    if spec.formula is not None:
        formula = Formula(spec.formula.driver, float(spec.formula.base), float(spec.formula.span))
    common_type = (spec.common_type or CommonType.MANDATORY) if node.kind == "common" else None
    return Rule(
        basis=spec.basis,
        blend_p=float(spec.p),
        coefficients={index[k]: float(v) for k, v in spec.coefficients.items()},
        formula=formula,
        loss_cap=None if spec.loss_cap is None else float(spec.loss_cap),
        vacant=spec.vacant,
        estimate_limit=float(spec.estimate_limit),
        on_estimate_excess=spec.on_estimate_excess,
        common_type=common_type,
        exclusive_to=index[spec.exclusive_to] if spec.exclusive_to else -1,
        shared_by=tuple(sorted(index[s] for s in spec.shared_by)),
    )
