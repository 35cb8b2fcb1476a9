"""A site file: one site's apportionment set-up as data (docs/monthly-close.md).

A site file has the case file's sections with the same names and forms — ``site``,
``timezone``, ``registers``, ``units``, ``meters``, ``tree``, ``occupancy``, ``tariffs``,
``policy`` — and three of its own: ``name`` (the site's display name), ``quantities``
(register → the wire contract's quantity a gateway reports it as) and the optional
``property`` (the property company's name, address and phone, and ``due_days``, printed on
the statements; not part of a case, so not of a run's input hash). A case file without
``period``, ``readings``, ``bill``, ``drivers`` and ``history`` is a valid site file.

:func:`parse_site` reads and checks a site file: the same bounds as a case file (size, depth,
aliases, duplicate keys, numbers), every field error listed with its item, then the case's
cross-field checks (tree, meters, occupancy, tariffs) run on the file as it would be closed.
:func:`case_data` joins a site's sections with one period's readings, bill, drivers and
history into case data — the one place a closing case is put together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Any

import yaml
from pydantic import Field, ValidationError

from cloud.apportion.case.document import Case
from cloud.apportion.case.loading import case_from_data, describe_errors, read_sections
from cloud.apportion.case.readings import ReadingTable
from cloud.apportion.case.schema import (
    MeterSpec,
    Model,
    NodeSpec,
    OccupancySpec,
    PolicySpec,
    SiteId,
    TariffSpec,
    UnitSpec,
)
from cloud.apportion.errors import CaseError

#: Sections only a case file has: what one period adds to a site.
CASE_ONLY = ("period", "readings", "bill", "drivers", "history")
#: Sections only a site file has that a case never sees (printing, not billing).
SITE_ONLY = ("property",)
#: Days from posting to the due date printed on a statement when the site file names none.
DEFAULT_DUE_DAYS = 15
#: The wire quantity each usual register is read from (edge.wire readings' ``quantity``).
DEFAULT_QUANTITIES = {
    "total": "energy_import",
    **{f"T{i}": f"energy_import_t{i}" for i in range(1, 5)},
}
#: Most errors listed for one file; the rest are counted.
MAX_ERRORS = 50

_Quantity = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
_Register = Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,16}$")]


class PropertySpec(Model):
    """The property company that bills the tenants, as printed on each statement: name,
    address, phone, and the days from a run's posting to the statements' due date."""

    company: Annotated[str, Field(max_length=200)] = ""
    address: Annotated[str, Field(max_length=300)] = ""
    phone: Annotated[str, Field(max_length=64)] = ""
    due_days: Annotated[int, Field(ge=0, le=366)] = DEFAULT_DUE_DAYS


class SiteSchema(Model):
    """The fields of a site file (see the module docstring)."""

    site: SiteId
    name: Annotated[str, Field(max_length=200)] = ""
    timezone: str = "Asia/Shanghai"
    registers: list[_Register] = Field(default_factory=lambda: ["total"], min_length=1)
    quantities: dict[_Register, _Quantity] = Field(default_factory=dict)
    units: list[UnitSpec] = Field(default_factory=list)
    meters: list[MeterSpec]
    tree: list[NodeSpec]
    occupancy: dict[SiteId, list[OccupancySpec]] = Field(default_factory=dict)
    tariffs: list[TariffSpec] = Field(min_length=1)
    policy: PolicySpec = Field(default_factory=PolicySpec)
    property: PropertySpec | None = None

    def quantity(self, register: str) -> str:
        """The wire quantity ``register`` is read from."""
        return self.quantities.get(register) or DEFAULT_QUANTITIES[register]


@dataclass(frozen=True)
class SiteFile:
    """A checked site file: its fields and its sections as plain data."""

    schema: SiteSchema
    sections: dict[str, Any]

    def case_sections(self) -> dict[str, Any]:
        """The sections for :func:`case_data`, with the checked records in place of their
        raw data: a case built from them takes the records as they are (pydantic does not
        validate a model instance again), so a site's 10,000 units are validated once."""
        s = self.schema
        return {
            **self.sections,
            "units": s.units,
            "meters": s.meters,
            "tree": s.tree,
            "occupancy": s.occupancy,
            "tariffs": s.tariffs,
            "policy": s.policy,
        }


class SiteFileError(CaseError):
    """A site file (or the site data it would store) is refused; ``errors`` names each item."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.errors = errors[:MAX_ERRORS]
        more = len(errors) - len(self.errors)
        lines = [f"{source}: {len(errors)} error(s); nothing was stored"]
        lines += [f"  {e}" for e in self.errors]
        if more:
            lines.append(f"  … and {more} more")
        super().__init__("\n".join(lines))


def parse_site(text: str, source: str = "site file") -> SiteFile:
    """Read and check a site file; SiteFileError lists every error with its item."""
    raw = read_sections(text, source, "site file")
    return site_from_data(raw, source)


def site_from_data(
    raw: Mapping[str, Any], source: str = "site file", *, cross_checks: bool = True
) -> SiteFile:
    """Check already-parsed site sections (see :func:`parse_site`). ``cross_checks=False``
    leaves out the case's cross-field checks, for a caller that runs them on the whole case
    it builds from the site next (the close), rather than twice."""
    errors = [
        f"{name}: belongs to a case file (one period's data), not to a site file"
        for name in CASE_ONLY
        if name in raw
    ]
    rest = {k: v for k, v in raw.items() if k not in CASE_ONLY}
    try:
        schema = SiteSchema.model_validate(rest)
    except ValidationError as exc:
        raise SiteFileError(source, errors + describe_errors(exc, rest)) from None
    errors += [
        f"quantities: register {r!r} has no quantity; name the wire quantity it is read from"
        for r in schema.registers
        if r not in schema.quantities and r not in DEFAULT_QUANTITIES
    ]
    errors += [
        f"quantities: {r!r} is not one of the registers {schema.registers}"
        for r in schema.quantities
        if r not in schema.registers
    ]
    if errors:
        raise SiteFileError(source, errors)
    sections = dict(rest)
    if not cross_checks:
        return SiteFile(schema, sections)
    start, end = _tariff_span(schema)
    try:
        case_from_data(case_data(SiteFile(schema, sections).case_sections(), start, end), source)
    except CaseError as exc:
        raise SiteFileError(source, [str(exc).removeprefix(f"{source}: ")]) from None
    return SiteFile(schema, sections)


def _tariff_span(schema: SiteSchema) -> tuple[date, date]:
    """The days the tariff versions cover, to check them for gaps and overlaps."""
    start = min(t.from_ for t in schema.tariffs)
    end = max((t.to or t.from_ + timedelta(days=1)) for t in schema.tariffs)
    return start, max(end, start + timedelta(days=1))


def case_data(
    site: Mapping[str, Any],
    start: date,
    end: date,
    *,
    readings: Mapping[str, Any] | None = None,
    bill: Mapping[str, Any] | None = None,
    drivers: Mapping[str, Any] | None = None,
    history: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Case data for [start, end): ``site``'s sections and the period's own data.

    Without a ``bill`` a zero bill stands in, and without ``drivers`` every formula
    driver reads 0 every day (both for checking a site file on its own).
    """
    data = {k: v for k, v in site.items() if k not in SITE_ONLY}
    registers = list(site.get("registers") or ["total"])
    if drivers is None:
        days = [start + timedelta(days=d) for d in range((end - start).days)]
        drivers = {driver: dict.fromkeys(days, 0) for driver in _formula_drivers(site)}
    data.update(
        period={"start": start, "end": end},
        readings=readings if isinstance(readings, ReadingTable) else dict(readings or {}),
        history=dict(history or {}),
        drivers=dict(drivers),
        bill=dict(bill)
        if bill is not None
        else {
            "invoice": "site-check",
            "amounts": {r: 0 for r in registers},
        },
    )
    return data


def _formula_drivers(site: Mapping[str, Any]) -> list[str]:
    """The formula drivers the tree's rules name (raw sections or checked records)."""
    out = []
    for node in site.get("tree", []):
        if isinstance(node, NodeSpec):
            if node.rule is not None and node.rule.formula is not None:
                out.append(node.rule.formula.driver)
        elif (
            isinstance(node, Mapping)
            and isinstance(node.get("rule"), Mapping)
            and isinstance(node["rule"].get("formula"), Mapping)
            and "driver" in node["rule"]["formula"]
        ):
            out.append(node["rule"]["formula"]["driver"])
    return out


class _SiteDumper(yaml.SafeDumper):
    """Writes Decimals as plain YAML numbers (read back exactly by the case loader) and
    never an alias (the loader refuses them)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _decimal(dumper: yaml.SafeDumper, value: Decimal) -> yaml.Node:
    text = format(value.normalize(), "f")
    tag = (
        "tag:yaml.org,2002:int" if value == value.to_integral_value() else "tag:yaml.org,2002:float"
    )
    return dumper.represent_scalar(tag, text if tag.endswith("float") else str(int(value)))


_SiteDumper.add_representer(Decimal, _decimal)


def dump_site(sections: Mapping[str, Any]) -> str:
    """A site file's YAML text for ``sections`` (section order as in the docs)."""
    order = ["site", "name", "timezone", "registers", "quantities", "units", "meters", "tree"]
    order += ["occupancy", "tariffs", "policy", "property"]
    ordered = {k: sections[k] for k in order if k in sections}
    ordered.update({k: v for k, v in sections.items() if k not in ordered})
    return yaml.dump(ordered, Dumper=_SiteDumper, allow_unicode=True, sort_keys=False, width=100)


def load_case_for(site: SiteFile, start: date, end: date, **period_data: Any) -> Case:
    """The validated case of ``site`` over [start, end) with the period's data."""
    return case_from_data(case_data(site.sections, start, end, **period_data), site.schema.site)
