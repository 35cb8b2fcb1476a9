"""The DL/T645 data-identifier catalogue: what each DI means, its format and its unit.

This module is data. Each DI maps to a ``DataItem`` with one or more fields (a maximum demand
is a value and a time); block DIs (``FF`` in a 2007 DI byte, ``F`` in the last 1997 nibble)
expand to their member DIs in wire order. Adding a DI means adding a row, not a branch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import FrameError, InvalidValueError
from .control import DIALECTS, Version
from .formats import CalendarFormat, DigitsFormat, Format, NumberFormat, Value


@dataclass(frozen=True)
class Field:
    """One value inside a data item: the quantity it measures, its wire format, its unit."""

    quantity: str
    format: Format
    unit: str = ""


@dataclass(frozen=True)
class DataItem:
    """A data identifier (upper-case hex, as printed in the standard) and its fields."""

    di: str
    name: str
    fields: tuple[Field, ...]

    @property
    def length(self) -> int:
        """Bytes of the item's value in a reply."""
        return sum(f.format.length for f in self.fields)


@dataclass(frozen=True)
class DecodedValue:
    """One decoded value: the DI it came from, the quantity, the value and its unit."""

    di: str
    quantity: str
    value: Value
    unit: str


def _item(di: str, name: str, quantity: str, fmt: Format, unit: str = "") -> DataItem:
    return DataItem(di, name, (Field(quantity, fmt, unit),))


def _with_tariffs(
    di: str, name: str, quantity: str, fmt: Format, unit: str
) -> tuple[DataItem, ...]:
    """A total register and tariffs T1..T4 (尖峰平谷): 2007 DI byte 1 = 01..04, 1997 last
    nibble 1..4."""
    if len(di) == 8:
        dis = [f"{di[:4]}{k:02d}{di[6:]}" for k in range(1, 5)]
    else:
        dis = [f"{di[:3]}{k}" for k in range(1, 5)]
    tariffs = (
        _item(d, f"{name}, tariff {k}", f"{quantity}_t{k}", fmt, unit)
        for k, d in enumerate(dis, start=1)
    )
    return (_item(di, f"{name}, total", quantity, fmt, unit), *tariffs)


def _phases(di: str, name: str, quantity: str, fmt: Format, unit: str) -> tuple[DataItem, ...]:
    """Phase A/B/C items at DI byte 1 = 01..03 (2007) or last nibble 1..3 (1997)."""
    if len(di) == 8:
        dis = [f"{di[:4]}{k:02d}{di[6:]}" for k in (1, 2, 3)]
    else:
        dis = [f"{di[:3]}{k}" for k in (1, 2, 3)]
    return tuple(
        _item(d, f"{name}, phase {p.upper()}", f"{quantity}_{p}", fmt, unit)
        for d, p in zip(dis, "abc", strict=True)
    )


# Formats from the DL/T645-2007 appendix A data-identifier tables (docs/domain.md §1).
ENERGY = NumberFormat("XXXXXX.XX")
ENERGY_SIGNED = NumberFormat("XXXXXX.XX", signed=True)  # 组合 (combined) registers
DEMAND = NumberFormat("XX.XXXX")
VOLTAGE = NumberFormat("XXX.X")
CURRENT = NumberFormat("XXX.XXX", signed=True)
POWER = NumberFormat("XX.XXXX", signed=True)
POWER_FACTOR = NumberFormat("X.XXX", signed=True)
FREQUENCY = NumberFormat("XX.XX")
TEMPERATURE = NumberFormat("XXX.X", signed=True)
STAMP = CalendarFormat("YYMMDDhhmm")

# Formats from the DL/T645-1997 data-identifier tables.
VOLTAGE_1997 = NumberFormat("XXXX")  # whole volts, "XXX" in the table, 2 bytes
CURRENT_1997 = NumberFormat("XX.XX")
REACTIVE_POWER_1997 = NumberFormat("XX.XX")

_ITEMS_2007: tuple[DataItem, ...] = (
    # 2007 电能量 (energy) table: DI3 = 00, DI2 = kind, DI1 = tariff, DI0 = 00 (current).
    # 00010000, 00020000, 00030000, 00040000 confirmed by the hwhale/legend captures.
    *_with_tariffs("00000000", "combined active energy", "energy_combined", ENERGY_SIGNED, "kWh"),
    *_with_tariffs("00010000", "forward active energy", "energy_import", ENERGY, "kWh"),
    *_with_tariffs("00020000", "reverse active energy", "energy_export", ENERGY, "kWh"),
    _item(
        "00030000",
        "combined reactive 1 energy, total",
        "reactive_combined_1",
        ENERGY_SIGNED,
        "kvarh",
    ),
    _item(
        "00040000",
        "combined reactive 2 energy, total",
        "reactive_combined_2",
        ENERGY_SIGNED,
        "kvarh",
    ),
    # 2007 最大需量及发生时间 (maximum demand) table: XX.XXXX kW then YYMMDDhhmm, 8 bytes.
    DataItem(
        "01010000",
        "forward active maximum demand, total",
        (Field("max_demand_import", DEMAND, "kW"), Field("max_demand_import_time", STAMP)),
    ),
    DataItem(
        "01020000",
        "reverse active maximum demand, total",
        (Field("max_demand_export", DEMAND, "kW"), Field("max_demand_export_time", STAMP)),
    ),
    # 2007 变量 (instantaneous values) table; 02010100 confirmed by the legend capture.
    *_phases("02010100", "voltage", "voltage", VOLTAGE, "V"),
    *_phases("02020100", "current", "current", CURRENT, "A"),
    _item("02030000", "active power, total", "power_total", POWER, "kW"),
    *_phases("02030100", "active power", "power", POWER, "kW"),
    _item("02040000", "reactive power, total", "reactive_power_total", POWER, "kvar"),
    _item("02050000", "apparent power, total", "apparent_power_total", POWER, "kVA"),
    _item("02060000", "power factor, total", "power_factor_total", POWER_FACTOR),
    *_phases("02060100", "power factor", "power_factor", POWER_FACTOR, ""),
    _item("02800001", "neutral current", "current_n", CURRENT, "A"),
    _item("02800002", "grid frequency", "frequency", FREQUENCY, "Hz"),
    _item("02800007", "meter temperature", "meter_temperature", TEMPERATURE, "°C"),
    # 2007 参变量 (parameters) table; 04000402 confirmed by the go645 capture.
    _item("04000101", "date and day of week", "meter_date", CalendarFormat("YYMMDDWW")),
    _item("04000102", "time", "meter_time", CalendarFormat("hhmmss")),
    _item("04000401", "communication address", "meter_address", DigitsFormat("N" * 12)),
    _item("04000402", "meter number", "meter_number", DigitsFormat("N" * 12)),
    # 2007 冻结 (frozen data) table, last (上1次) instant freeze (瞬时冻结, 0503xxxx), taken
    # by a freeze command whose time fields are all 99: time, then total + T1..T4.
    _item("05030001", "instant freeze time, last", "frozen_instant_time", STAMP),
    DataItem(
        "05030101",
        "instant frozen forward active energy, last",
        tuple(
            Field(f"frozen_instant_energy_import{s}", ENERGY, "kWh")
            for s in ("", "_t1", "_t2", "_t3", "_t4")
        ),
    ),
    DataItem(
        "05030201",
        "instant frozen reverse active energy, last",
        tuple(
            Field(f"frozen_instant_energy_export{s}", ENERGY, "kWh")
            for s in ("", "_t1", "_t2", "_t3", "_t4")
        ),
    ),
    # Last (上1次) daily freeze (日冻结, 0506xxxx): time, then total + T1..T4
    # in one item (a meter with fewer tariffs sends fewer; this catalogue assumes four).
    _item("05060001", "daily freeze time, last", "frozen_daily_time", STAMP),
    DataItem(
        "05060101",
        "daily frozen forward active energy, last",
        tuple(
            Field(f"frozen_daily_energy_import{s}", ENERGY, "kWh")
            for s in ("", "_t1", "_t2", "_t3", "_t4")
        ),
    ),
    DataItem(
        "05060201",
        "daily frozen reverse active energy, last",
        tuple(
            Field(f"frozen_daily_energy_export{s}", ENERGY, "kWh")
            for s in ("", "_t1", "_t2", "_t3", "_t4")
        ),
    ),
)

_ITEMS_1997: tuple[DataItem, ...] = (
    # 1997 电能量 (energy) table: 9xyz, z = 0 total, 1..4 tariffs, F block. 9010 and 9110
    # confirmed by the KTS-Intek DTSD22 capture.
    *_with_tariffs("9010", "forward active energy", "energy_import", ENERGY, "kWh"),
    *_with_tariffs("9020", "reverse active energy", "energy_export", ENERGY, "kWh"),
    _item("9110", "forward reactive energy, total", "reactive_import", ENERGY, "kvarh"),
    _item("9120", "reverse reactive energy, total", "reactive_export", ENERGY, "kvarh"),
    # 1997 变量 (instantaneous values) table: B61x voltage, B62x current, B63x power.
    *_phases("B610", "voltage", "voltage", VOLTAGE_1997, "V"),
    *_phases("B620", "current", "current", CURRENT_1997, "A"),
    _item("B630", "active power, total", "power_total", DEMAND, "kW"),
    *_phases("B630", "active power", "power", DEMAND, "kW"),
    _item("B640", "reactive power, total", "reactive_power_total", REACTIVE_POWER_1997, "kvar"),
    _item("B650", "power factor, total", "power_factor_total", NumberFormat("X.XXX")),
    # 1997 参变量 (parameters) table.
    _item("C010", "date and day of week", "meter_date", CalendarFormat("YYMMDDWW")),
    _item("C011", "time", "meter_time", CalendarFormat("hhmmss")),
    _item("C032", "meter number", "meter_number", DigitsFormat("N" * 12)),
)

# Block reads, members in the order the meter sends them.
_BLOCKS_2007: dict[str, tuple[str, ...]] = {
    "0000FF00": ("00000000", "00000100", "00000200", "00000300", "00000400"),
    "0001FF00": ("00010000", "00010100", "00010200", "00010300", "00010400"),
    "0002FF00": ("00020000", "00020100", "00020200", "00020300", "00020400"),
    "0201FF00": ("02010100", "02010200", "02010300"),
    "0202FF00": ("02020100", "02020200", "02020300"),
    "0203FF00": ("02030000", "02030100", "02030200", "02030300"),
    "0206FF00": ("02060000", "02060100", "02060200", "02060300"),
}
_BLOCKS_1997: dict[str, tuple[str, ...]] = {
    "901F": ("9010", "9011", "9012", "9013", "9014"),
    "902F": ("9020", "9021", "9022", "9023", "9024"),
    "B61F": ("B611", "B612", "B613"),
    "B62F": ("B621", "B622", "B623"),
    "B63F": ("B630", "B631", "B632", "B633"),
}

CATALOGUE: dict[Version, dict[str, DataItem]] = {
    Version.V2007: {item.di: item for item in _ITEMS_2007},
    Version.V1997: {item.di: item for item in _ITEMS_1997},
}
BLOCKS: dict[Version, dict[str, tuple[str, ...]]] = {
    Version.V2007: _BLOCKS_2007,
    Version.V1997: _BLOCKS_1997,
}


def parse_di(di: str, version: Version = Version.V2007) -> str:
    """Normalise a data identifier to upper-case hex of the edition's length (8 or 4)."""
    width = 2 * DIALECTS[version].di_length
    text = di.strip().upper() if isinstance(di, str) else ""
    if len(text) != width or any(c not in "0123456789ABCDEF" for c in text):
        raise InvalidValueError(
            f"data identifier {di!r}: expected {width} hex digits for DL/T645-{version.value}"
        )
    return text


def di_to_wire(di: str, version: Version = Version.V2007) -> bytes:
    """DI bytes as transmitted (DI0 first; before the 0x33 offset)."""
    return bytes.fromhex(parse_di(di, version))[::-1]


def di_from_wire(raw: bytes) -> str:
    """DI string of wire bytes (DI0 first)."""
    return raw[::-1].hex().upper()


def items_for(di: str, version: Version = Version.V2007) -> tuple[DataItem, ...] | None:
    """The items a read of ``di`` returns: one, a block's members, or None if unknown."""
    di = parse_di(di, version)
    members = BLOCKS[version].get(di)
    catalogue = CATALOGUE[version]
    if members is not None:
        return tuple(catalogue[m] for m in members)
    item = catalogue.get(di)
    return None if item is None else (item,)


def decode_values(
    items: Sequence[DataItem], raw: bytes, offset: int = 0
) -> tuple[DecodedValue, ...]:
    """Readings of the value bytes of a reply; ``offset`` is where ``raw`` starts in the frame."""
    expected = sum(item.length for item in items)
    if len(raw) != expected:
        names = ", ".join(item.di for item in items)
        raise FrameError(
            f"expected {expected} value bytes for {names} at offset {offset}, got {len(raw)}",
            offset,
        )
    readings = []
    position = 0
    for item in items:
        for f in item.fields:
            size = f.format.length
            value = f.format.decode(raw[position : position + size], offset + position)
            readings.append(DecodedValue(item.di, f.quantity, value, f.unit))
            position += size
    return tuple(readings)


def encode_values(
    items: Sequence[DataItem],
    values: Value | Sequence[Value] | Mapping[str, Value],
) -> bytes:
    """Value bytes for ``items``: one value, a sequence in field order, or quantity → value."""
    fields = [f for item in items for f in item.fields]
    ordered: Iterable[Value]
    if isinstance(values, Mapping):
        missing = [f.quantity for f in fields if f.quantity not in values]
        if missing:
            raise InvalidValueError(f"no value for {', '.join(missing)}")
        ordered = [values[f.quantity] for f in fields]
    elif isinstance(values, Sequence) and not isinstance(values, str):
        ordered = values
    else:
        ordered = [values]
    ordered = list(ordered)
    if len(ordered) != len(fields):
        raise InvalidValueError(
            f"expected {len(fields)} values for {', '.join(i.di for i in items)}, "
            f"got {len(ordered)}"
        )
    return b"".join(f.format.encode(v) for f, v in zip(fields, ordered, strict=True))
