"""Where a Modbus line is: Modbus TCP, RTU over a TCP serial server, or RTU on a serial port.

Each link makes the pymodbus 3.16 client that moves frames on it. The clients are built
with no retries of their own, no automatic reconnection and a long response ceiling:
timeouts, retries and reconnects are decided by ``ModbusMaster`` alone, so that one
setting means one thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.client.base import ModbusBaseClient
from pymodbus.framer import FramerType

# pymodbus applies its own timeout to connects and replies; the master bounds both with
# shorter deadlines, so this ceiling only matters if the master's deadline is removed.
_PYMODBUS_CEILING_S = 3600.0


class ModbusLink(Protocol):
    """How to reach one Modbus line."""

    @property
    def name(self) -> str: ...

    def client(self) -> ModbusBaseClient:
        """A new, unconnected pymodbus client for this line."""
        ...


@dataclass(frozen=True)
class TcpLink:
    """Modbus TCP (MBAP header, transaction ids): a meter or a Modbus TCP gateway."""

    host: str
    port: int = 502

    @property
    def name(self) -> str:
        return f"modbus-tcp://{self.host}:{self.port}"

    def client(self) -> ModbusBaseClient:
        return AsyncModbusTcpClient(
            self.host,
            port=self.port,
            framer=FramerType.SOCKET,
            name=self.name,
            timeout=_PYMODBUS_CEILING_S,
            retries=0,
            reconnect_delay=0,
        )


@dataclass(frozen=True)
class RtuOverTcpLink:
    """RTU frames (CRC, no transaction id) through a transparent TCP serial server."""

    host: str
    port: int

    @property
    def name(self) -> str:
        return f"rtu-over-tcp://{self.host}:{self.port}"

    def client(self) -> ModbusBaseClient:
        return AsyncModbusTcpClient(
            self.host,
            port=self.port,
            framer=FramerType.RTU,
            name=self.name,
            timeout=_PYMODBUS_CEILING_S,
            retries=0,
            reconnect_delay=0,
        )


@dataclass(frozen=True)
class SerialLink:
    """RTU on a local serial port (RS-485 adapter). Real lines default to 9600 8E1;
    parity is ``"N"``, ``"E"`` or ``"O"``."""

    port: str
    baudrate: int = 9600
    parity: str = "E"
    stopbits: int = 1
    bytesize: int = 8

    @property
    def name(self) -> str:
        return f"rtu://{self.port}@{self.baudrate}-{self.bytesize}{self.parity}{self.stopbits}"

    def client(self) -> ModbusBaseClient:
        return AsyncModbusSerialClient(
            self.port,
            framer=FramerType.RTU,
            baudrate=self.baudrate,
            bytesize=self.bytesize,
            parity=self.parity,
            stopbits=self.stopbits,
            name=self.name,
            timeout=_PYMODBUS_CEILING_S,
            retries=0,
            reconnect_delay=0,
        )
