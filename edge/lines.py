"""Reading one configured line: DL/T645 or Modbus, behind one small interface for the agent.

A line reader turns (meter, quantities) into values with units, and knows the line-wide
broadcasts (freeze, time sync) its protocol has. Values come back as read from the meter,
before the installation's CT/PT multiplier, which the agent applies.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo

from edge.config import LineConfig, MeterConfig
from meter_drivers.dlt645.address import BROADCAST
from meter_drivers.dlt645.control import Version
from meter_drivers.dlt645.frame import encode_frame
from meter_drivers.dlt645.master import Dlt645Master, di_for_quantity
from meter_drivers.dlt645.requests import build_broadcast_time, build_freeze
from meter_drivers.errors import DriverError
from meter_drivers.transport import SerialTransport, TcpTransport, Transport

if TYPE_CHECKING:
    from meter_drivers.modbus.profile import DeviceProfile

#: tariff-block reads: when several of these quantities are due, one block read serves all
_ENERGY_BLOCKS_2007 = {"energy_import": "0001FF00", "energy_export": "0002FF00"}
#: instant-freeze DIs read after a broadcast freeze (DL/T645-2007 瞬时冻结)
_FROZEN_2007 = {"energy_import": "05030101", "energy_export": "05030201"}


@dataclass(frozen=True)
class MeterValue:
    quantity: str
    value: Decimal
    unit: str


class LineReader(Protocol):
    line: LineConfig

    def supports(self, meter: MeterConfig, quantity: str) -> bool: ...

    async def read(self, meter: MeterConfig, quantities: list[str]) -> list[MeterValue]:
        """Values of ``quantities``; raises DriverError when the meter does not answer."""

    async def freeze(self) -> bool:
        """Broadcast a freeze to every meter on the line; False where the protocol has none."""

    async def read_frozen(self, meter: MeterConfig, quantities: list[str]) -> list[MeterValue]:
        """Values captured by the last freeze (only the quantities ``supports_frozen``)."""

    def supports_frozen(self, meter: MeterConfig, quantity: str) -> bool: ...

    async def sync_time(self, now: datetime) -> bool:
        """Broadcast the time; False where the protocol has no such broadcast."""

    async def close(self) -> None: ...


def line_transport(line: LineConfig) -> Transport:
    if line.tcp is not None:
        return TcpTransport(*line.host_port)
    assert line.serial is not None
    return SerialTransport(line.serial, baud=line.baud, parity=line.parity)


class Dlt645LineReader:
    """DL/T645 meters (2007 or 1997) on one line."""

    def __init__(self, line: LineConfig, timezone: str = "Asia/Shanghai") -> None:
        self.line = line
        self.zone = ZoneInfo(timezone)
        self.master = Dlt645Master(
            line_transport(line),
            timeout_s=line.timeout_s,
            retries=line.retries,
            pause_s=line.pause_s,
        )

    def supports(self, meter: MeterConfig, quantity: str) -> bool:
        try:
            di_for_quantity(quantity, Version(meter.version))
        except DriverError:
            return False
        return True

    def supports_frozen(self, meter: MeterConfig, quantity: str) -> bool:
        base = quantity.removesuffix("_t1").removesuffix("_t2").removesuffix("_t3")
        base = base.removesuffix("_t4")
        return meter.version == "2007" and base in _FROZEN_2007

    async def read(self, meter: MeterConfig, quantities: list[str]) -> list[MeterValue]:
        version = Version(meter.version)
        values: dict[str, MeterValue] = {}
        pending = list(quantities)
        if version is Version.V2007:
            for base, block in _ENERGY_BLOCKS_2007.items():
                wanted = [q for q in pending if q == base or q.startswith(f"{base}_t")]
                if len(wanted) > 1:
                    reply = await self.master.read(
                        meter.address, block, version, timeout_s=meter.timeout_s
                    )
                    values |= {
                        r.quantity: MeterValue(r.quantity, Decimal(r.value), r.unit)
                        for r in reply.readings
                        if r.quantity in wanted
                    }
                    pending = [q for q in pending if q not in wanted]
        for quantity in pending:
            r = await self.master.read_value(
                meter.address,
                di_for_quantity(quantity, version),
                version,
                timeout_s=meter.timeout_s,
            )
            values[quantity] = MeterValue(quantity, Decimal(r.value), r.unit)
        return [values[q] for q in quantities if q in values]

    async def freeze(self) -> bool:
        await self.master.broadcast(encode_frame(build_freeze(BROADCAST), self.master.preamble))
        return True

    async def read_frozen(self, meter: MeterConfig, quantities: list[str]) -> list[MeterValue]:
        values: dict[str, MeterValue] = {}
        for base, di in _FROZEN_2007.items():
            wanted = [q for q in quantities if q == base or q.startswith(f"{base}_t")]
            if not wanted:
                continue
            reply = await self.master.read(
                meter.address, di, Version.V2007, timeout_s=meter.timeout_s
            )
            for r in reply.readings:
                name = r.quantity.replace("frozen_instant_", "")
                if name in wanted:
                    values[name] = MeterValue(name, Decimal(r.value), r.unit)
        return [values[q] for q in quantities if q in values]

    async def sync_time(self, now: datetime) -> bool:
        local = now.astimezone(self.zone).replace(tzinfo=None)
        await self.master.broadcast(encode_frame(build_broadcast_time(local), self.master.preamble))
        return True

    async def close(self) -> None:
        await self.master.close()


class ModbusLineReader:
    """Modbus devices on one line (Modbus TCP, RTU over a TCP serial server, or RTU)."""

    def __init__(self, line: LineConfig) -> None:
        from meter_drivers.modbus.links import RtuOverTcpLink, SerialLink, TcpLink
        from meter_drivers.modbus.master import ModbusMaster

        self.line = line
        if line.tcp is not None:
            host, port = line.host_port
            link = (
                TcpLink(host, port) if line.modbus_framing == "tcp" else RtuOverTcpLink(host, port)
            )
        else:
            assert line.serial is not None
            link = SerialLink(line.serial, baudrate=line.baud, parity=line.parity)
        self.master = ModbusMaster(
            link, timeout_s=line.timeout_s, retries=line.retries, pause_s=line.pause_s
        )
        self._profiles: dict[str, DeviceProfile] = {}
        for meter in line.meters:
            if meter.timeout_s is not None:
                self.master.configure_device(int(meter.address), timeout_s=meter.timeout_s)

    def profile(self, meter: MeterConfig) -> DeviceProfile:
        from meter_drivers.modbus.profile import load_builtin

        assert meter.profile is not None
        if meter.profile not in self._profiles:
            self._profiles[meter.profile] = load_builtin(meter.profile)
        return self._profiles[meter.profile]

    def supports(self, meter: MeterConfig, quantity: str) -> bool:
        return any(f.quantity == quantity for f in self.profile(meter).fields)

    def supports_frozen(self, meter: MeterConfig, quantity: str) -> bool:
        return False

    async def read(self, meter: MeterConfig, quantities: list[str]) -> list[MeterValue]:
        values = await self.master.read_fields(int(meter.address), self.profile(meter), quantities)
        return [MeterValue(v.quantity, v.value, v.unit) for v in values.values()]

    async def freeze(self) -> bool:
        return False

    async def read_frozen(self, meter: MeterConfig, quantities: list[str]) -> list[MeterValue]:
        return []

    async def sync_time(self, now: datetime) -> bool:
        return False

    async def close(self) -> None:
        await self.master.close()


def open_line(line: LineConfig, timezone: str = "Asia/Shanghai") -> LineReader:
    return Dlt645LineReader(line, timezone) if line.protocol == "dlt645" else ModbusLineReader(line)


async def close_all(readers: list[LineReader]) -> None:
    await asyncio.gather(*(r.close() for r in readers), return_exceptions=True)
