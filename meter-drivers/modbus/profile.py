"""Device profiles: a meter's register map, read from a TOML file and validated.

A profile names the maker's manual it was copied from, how that manual numbers its
registers, the device's limits (``max_registers`` per request, ``max_gap`` registers the
planner may bridge) and one entry per quantity: function code (3 holding / 4 input), the
0-based register address as sent on the wire, data type, word/byte order, a decimal scale
and the unit of the scaled value. Shipped profiles live in ``profiles/*.toml`` next to this
module. Every error names the file and the field at fault.
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import InvalidValueError, ProfileError
from .codec import DataType, decode_value, encode_value, order_for

HOLDING = 3  # function code 3, read holding registers (written with 6 / 16)
INPUT = 4  # function code 4, read input registers (read-only)
MAX_REGISTERS_PER_READ = 125  # Modbus Application Protocol V1.1b3, 6.3 / 6.4

_TOP_KEYS = {
    "name", "maker", "model", "addressing", "unit_id", "max_registers", "max_gap",
    "byte_order", "manual", "fields",
}  # fmt: skip
_MANUAL_KEYS = {"title", "version", "register_table", "note"}
_FIELD_KEYS = {
    "quantity", "function", "address", "type", "order", "scale", "unit", "writable", "note",
}  # fmt: skip


@dataclass(frozen=True)
class Manual:
    """The maker's document the register map was copied from."""

    title: str
    version: str
    register_table: str  # where in the document the table is
    note: str = ""


@dataclass(frozen=True)
class Field:
    """One quantity in a device's register map.

    ``address`` is 0-based, as sent on the wire; ``order`` is spelled at the type's width
    (``CDAB`` for 32-bit, ``GHEFCDAB`` for 64-bit); the value is ``raw × scale`` in ``unit``.
    """

    quantity: str
    function: int
    address: int
    data_type: DataType
    order: str
    scale: Decimal
    unit: str
    writable: bool = False
    note: str = ""

    @property
    def count(self) -> int:
        """Registers the field occupies."""
        return self.data_type.registers

    @property
    def end(self) -> int:
        """First register after the field."""
        return self.address + self.count

    def decode(self, registers: list[int] | tuple[int, ...]) -> Decimal:
        """The scaled value (in ``unit``) held by the field's registers."""
        return decode_value(registers, self.data_type, self.order, self.scale)

    def encode(self, value: Decimal | int | str, *, rounding: str | None = None) -> list[int]:
        """The registers to write for ``value`` (in ``unit``); see ``codec.encode_value``."""
        return encode_value(value, self.data_type, self.order, self.scale, rounding=rounding)


@dataclass(frozen=True)
class DeviceProfile:
    """A device's register map and its request limits."""

    name: str
    maker: str
    model: str
    manual: Manual
    addressing: str  # how the manual numbers registers, e.g. "30001-based, address = n - 30001"
    unit_id: int  # factory default
    max_registers: int
    max_gap: int
    byte_order: str  # default order, 32-bit spelling
    fields: tuple[Field, ...]
    source: str = ""  # file it came from

    def field(self, quantity: str) -> Field:
        """The field measuring ``quantity``; ``InvalidValueError`` names the known ones."""
        for f in self.fields:
            if f.quantity == quantity:
                return f
        known = ", ".join(f.quantity for f in self.fields)
        raise InvalidValueError(f"profile {self.name}: no quantity {quantity!r}; has {known}")

    def select(self, quantities: Iterable[str] | None = None) -> tuple[Field, ...]:
        """The fields for ``quantities`` (all fields when None), in profile order."""
        if quantities is None:
            return self.fields
        wanted = list(dict.fromkeys(quantities))
        return tuple(self.field(q) for q in wanted)

    def with_byte_order(self, order: str) -> DeviceProfile:
        """The same map with every multi-byte field in ``order`` (any spelling or family)."""
        return replace(
            self,
            byte_order=order_for(order, DataType.UINT32),
            fields=tuple(replace(f, order=order_for(order, f.data_type)) for f in self.fields),
        )


# -- loading ----------------------------------------------------------------------------------


def load_profile(path: str | Path) -> DeviceProfile:
    """Read and validate one profile file; ``ProfileError`` names the file and field."""
    source = str(path)
    try:
        with open(path, "rb") as stream:
            data = tomllib.load(stream)
    except OSError as exc:
        raise ProfileError(f"cannot read: {exc.strerror or exc}", path=source) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"not valid TOML: {exc}", path=source) from exc
    except RecursionError:  # thousands of nested arrays or tables: the parser gives up
        raise ProfileError("not valid TOML: nested too deeply", path=source) from None
    return parse_profile(data, source)


def builtin_profile_paths() -> list[Path]:
    """The profile files shipped with ``meter_drivers.modbus`` (sorted by name)."""
    folder = resources.files(__package__) / "profiles"
    return sorted(Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".toml"))


def builtin_profiles() -> dict[str, DeviceProfile]:
    """Every shipped profile by name."""
    profiles: dict[str, DeviceProfile] = {}
    for path in builtin_profile_paths():
        profile = load_profile(path)
        if profile.name in profiles:
            raise ProfileError(
                f"name {profile.name!r} already used by {profiles[profile.name].source}",
                path=str(path),
                field="name",
            )
        profiles[profile.name] = profile
    return profiles


def load_builtin(name: str) -> DeviceProfile:
    """One shipped profile by name (e.g. ``"sdm630"``)."""
    profiles = builtin_profiles()
    try:
        return profiles[name]
    except KeyError:
        raise InvalidValueError(
            f"no shipped profile {name!r}; have {', '.join(sorted(profiles))}"
        ) from None


def parse_profile(data: Mapping[str, Any], source: str = "<profile>") -> DeviceProfile:
    """Validate a profile already parsed from TOML (a mapping of plain values)."""
    check = _Checker(source)
    check.keys(data, _TOP_KEYS, None, required={"name", "maker", "model", "manual", "fields"})
    manual_data = check.table(data, "manual")
    check.keys(manual_data, _MANUAL_KEYS, "manual", required={"title", "version", "register_table"})
    manual = Manual(
        title=check.text(manual_data, "title", "manual.title"),
        version=check.text(manual_data, "version", "manual.version"),
        register_table=check.text(manual_data, "register_table", "manual.register_table"),
        note=check.text(manual_data, "note", "manual.note", default=""),
    )
    max_registers = check.integer(
        data,
        "max_registers",
        "max_registers",
        low=1,
        high=MAX_REGISTERS_PER_READ,
        default=MAX_REGISTERS_PER_READ,
    )
    byte_order_text = check.text(data, "byte_order", "byte_order", default="ABCD")
    byte_order = check.order(byte_order_text, DataType.UINT32, "byte_order")
    raw_fields = data.get("fields")
    if not isinstance(raw_fields, list) or not raw_fields:
        raise ProfileError("expected at least one [[fields]] entry", path=source, field="fields")
    fields = tuple(
        _parse_field(check, entry, i, byte_order, max_registers)
        for i, entry in enumerate(raw_fields)
    )
    _check_unique_and_disjoint(check, fields)
    return DeviceProfile(
        name=check.text(data, "name", "name"),
        maker=check.text(data, "maker", "maker"),
        model=check.text(data, "model", "model"),
        manual=manual,
        addressing=check.text(data, "addressing", "addressing", default=""),
        unit_id=check.integer(data, "unit_id", "unit_id", low=1, high=247, default=1),
        max_registers=max_registers,
        max_gap=check.integer(
            data, "max_gap", "max_gap", low=0, high=MAX_REGISTERS_PER_READ, default=0
        ),
        byte_order=byte_order,
        fields=fields,
        source=source,
    )


def _parse_field(
    check: _Checker, entry: Any, index: int, default_order: str, max_registers: int
) -> Field:
    if not isinstance(entry, dict):
        raise ProfileError("expected a table", path=check.source, field=f"fields[{index}]")
    quantity = entry.get("quantity")
    where = f"fields[{index}] ({quantity})" if isinstance(quantity, str) else f"fields[{index}]"
    check.keys(
        entry, _FIELD_KEYS, where, required={"quantity", "function", "address", "type", "unit"}
    )
    quantity = check.text(entry, "quantity", where)
    function = check.integer(entry, "function", f"{where}.function", low=HOLDING, high=INPUT)
    type_name = check.text(entry, "type", f"{where}.type")
    try:
        data_type = DataType(type_name)
    except ValueError:
        raise ProfileError(
            f"unknown type {type_name!r}; expected one of {', '.join(t.value for t in DataType)}",
            path=check.source,
            field=f"{where}.type",
        ) from None
    address = check.integer(entry, "address", f"{where}.address", low=0, high=0xFFFF)
    if address + data_type.registers > 0x10000:
        raise ProfileError(
            f"address {address:#06x} + {data_type.registers} registers runs past 0xFFFF",
            path=check.source,
            field=f"{where}.address",
        )
    if data_type.registers > max_registers:
        raise ProfileError(
            f"{data_type} needs {data_type.registers} registers, more than max_registers "
            f"{max_registers}: it could never be read",
            path=check.source,
            field=f"{where}.type",
        )
    order_text = check.text(entry, "order", f"{where}.order", default=default_order)
    writable = entry.get("writable", False)
    if not isinstance(writable, bool):
        raise ProfileError(
            f"expected true or false, got {writable!r}",
            path=check.source,
            field=f"{where}.writable",
        )
    if writable and function != HOLDING:
        raise ProfileError(
            "only holding registers (function 3) can be written",
            path=check.source,
            field=f"{where}.writable",
        )
    return Field(
        quantity=quantity,
        function=function,
        address=address,
        data_type=data_type,
        order=check.order(order_text, data_type, f"{where}.order"),
        scale=check.scale(entry.get("scale", "1"), f"{where}.scale"),
        unit=check.text(entry, "unit", f"{where}.unit", empty_ok=True),  # "" = dimensionless
        writable=writable,
        note=check.text(entry, "note", f"{where}.note", default=""),
    )


def _check_unique_and_disjoint(check: _Checker, fields: tuple[Field, ...]) -> None:
    seen: dict[str, int] = {}
    for i, f in enumerate(fields):
        if f.quantity in seen:
            raise ProfileError(
                f"quantity {f.quantity!r} already defined by fields[{seen[f.quantity]}]",
                path=check.source,
                field=f"fields[{i}] ({f.quantity})",
            )
        seen[f.quantity] = i
    indexed = sorted(enumerate(fields), key=lambda p: (p[1].function, p[1].address))
    for (i, a), (j, b) in itertools.pairwise(indexed):
        if a.function == b.function and b.address < a.end:
            raise ProfileError(
                f"registers {b.address:#06x}..{b.end - 1:#06x} (function {b.function}) overlap "
                f"fields[{i}] ({a.quantity}) at {a.address:#06x}..{a.end - 1:#06x}",
                path=check.source,
                field=f"fields[{j}] ({b.quantity})",
            )


class _Checker:
    """Typed getters whose errors carry the file and the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, message: str, field: str | None) -> ProfileError:
        return ProfileError(message, path=self.source, field=field)

    def keys(
        self, data: Mapping[str, Any], allowed: set[str], where: str | None, required: set[str]
    ) -> None:
        unknown = sorted(set(data) - allowed)
        if unknown:
            # A typo ("adress") would otherwise silently fall back to a default.
            raise self.fail(
                f"unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(allowed))}", where
            )
        missing = sorted(required - set(data))
        if missing:
            raise self.fail(f"missing key(s) {', '.join(missing)}", where)

    def table(self, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = data.get(key)
        if not isinstance(value, dict):
            raise self.fail(f"expected a [{key}] table", key)
        return value

    def text(
        self,
        data: Mapping[str, Any],
        key: str,
        where: str,
        default: str | None = None,
        *,
        empty_ok: bool = False,
    ) -> str:
        value = data.get(key, default)
        if not isinstance(value, str) or (default is None and not empty_ok and not value.strip()):
            raise self.fail(f"expected a non-empty string, got {value!r}", where)
        return value

    def integer(
        self,
        data: Mapping[str, Any],
        key: str,
        where: str,
        *,
        low: int,
        high: int,
        default: int | None = None,
    ) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"expected an integer, got {value!r}", where)
        if not low <= value <= high:
            raise self.fail(f"{value} out of range {low}..{high}", where)
        return value

    def order(self, text: str, data_type: DataType, where: str) -> str:
        try:
            return order_for(text, data_type)
        except InvalidValueError as exc:
            raise self.fail(str(exc), where) from None

    def scale(self, value: Any, where: str) -> Decimal:
        # Floats are refused: 0.1 as a TOML float is already not 0.1.
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.fail(f'expected a decimal string such as "0.01", got {value!r}', where)
        try:
            scale = Decimal(value)
        except InvalidOperation:
            raise self.fail(f"{value!r} is not a decimal number", where) from None
        if not scale.is_finite() or scale == 0:
            raise self.fail(f"scale must be a finite non-zero number, got {value!r}", where)
        return scale
