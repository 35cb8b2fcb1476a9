"""Byte transports to a meter line: a local serial port or a TCP serial server, one interface.

A transport moves bytes and nothing else: it never parses a frame. Whoever owns the line
(one owner per line) sends a request, then pulls chunks until its codec says a reply is
complete or its deadline passes.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal, Protocol

import serial

from meter_drivers.errors import DriverError


class TransportError(DriverError):
    """The line could not be opened, or broke while in use."""


class Transport(Protocol):
    """One meter line, as bytes."""

    name: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, data: bytes) -> None: ...

    async def receive(self, timeout_s: float) -> bytes:
        """The next chunk of bytes from the line, or b"" when none came within timeout_s."""

    async def discard_input(self) -> None:
        """Drop whatever arrived unasked (a late reply, noise) before the next request."""


class _LineProtocol(asyncio.Protocol):
    """Collects what the socket delivers; the transport pulls it out."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.arrived = asyncio.Event()
        self.closed: Exception | None = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.arrived.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = exc or ConnectionResetError("the serial server closed the connection")
        self.arrived.set()


class TcpTransport:
    """A line behind a transparent TCP serial server (RS-485 to Ethernet converter)."""

    def __init__(self, host: str, port: int, *, connect_timeout_s: float = 5.0) -> None:
        self.host = host
        self.port = port
        self.name = f"tcp://{host}:{port}"
        self.connect_timeout_s = connect_timeout_s
        self._socket: asyncio.Transport | None = None
        self._protocol: _LineProtocol | None = None

    async def open(self) -> None:
        if self._socket is not None:
            return
        loop = asyncio.get_running_loop()
        try:
            self._socket, self._protocol = await asyncio.wait_for(
                loop.create_connection(_LineProtocol, self.host, self.port),
                self.connect_timeout_s,
            )
        except (OSError, TimeoutError) as exc:
            raise TransportError(f"{self.name}: cannot connect: {exc or 'timed out'}") from exc

    async def close(self) -> None:
        sock, self._socket, self._protocol = self._socket, None, None
        if sock is not None:
            sock.close()

    async def send(self, data: bytes) -> None:
        await self.open()
        assert self._socket is not None
        self._socket.write(data)

    async def receive(self, timeout_s: float) -> bytes:
        await self.open()
        protocol = self._protocol
        assert protocol is not None
        if not protocol.buffer and protocol.closed is None:
            protocol.arrived.clear()
            try:
                await asyncio.wait_for(protocol.arrived.wait(), timeout_s)
            except TimeoutError:
                return b""
        if protocol.buffer:
            chunk = bytes(protocol.buffer)
            protocol.buffer.clear()
            return chunk
        reason = protocol.closed
        await self.close()
        raise TransportError(f"{self.name}: connection lost: {reason}")

    async def discard_input(self) -> None:
        if self._protocol is not None:
            self._protocol.buffer.clear()


class SerialTransport:
    """A local RS-485 port through pyserial, opened exclusively (one owner per port).

    Defaults are DL/T645-2007's usual 2400 bps 8E1; parity is ``"N"``, ``"E"`` or ``"O"``.
    Reads are non-blocking on the port's file descriptor, so waiting for a reply does not
    hold a thread.
    """

    def __init__(
        self,
        device: str,
        *,
        baud: int = 2400,
        parity: Literal["N", "E", "O"] = "E",
        stopbits: Literal[1, 2] = 1,
        bytesize: Literal[7, 8] = 8,
    ) -> None:
        self.device = device
        self.name = f"serial://{device}@{baud}-{bytesize}{parity}{stopbits}"
        self.settings = {
            "baudrate": baud,
            "parity": parity,
            "stopbits": stopbits,
            "bytesize": bytesize,
        }
        self._port: serial.Serial | None = None

    async def open(self) -> None:
        if self._port is not None:
            return
        try:
            self._port = serial.Serial(
                self.device, timeout=0, write_timeout=10, exclusive=True, **self.settings
            )
        except (serial.SerialException, ValueError) as exc:
            raise TransportError(f"{self.name}: cannot open: {exc}") from exc

    async def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(OSError, serial.SerialException):
                port.close()

    async def send(self, data: bytes) -> None:
        await self.open()
        assert self._port is not None
        try:
            self._port.write(data)
            # Wait until the bytes are on the wire: the reply timeout starts after that.
            await asyncio.get_running_loop().run_in_executor(None, self._port.flush)
        except (OSError, serial.SerialException) as exc:
            await self.close()
            raise TransportError(f"{self.name}: send failed: {exc}") from exc

    async def receive(self, timeout_s: float) -> bytes:
        await self.open()
        port = self._port
        assert port is not None
        loop = asyncio.get_running_loop()
        readable = loop.create_future()
        fd = port.fileno()
        loop.add_reader(fd, lambda: readable.done() or readable.set_result(None))
        try:
            await asyncio.wait_for(readable, timeout_s)
        except TimeoutError:
            return b""
        finally:
            loop.remove_reader(fd)
        try:
            return port.read(4096)
        except (OSError, serial.SerialException) as exc:
            await self.close()
            raise TransportError(f"{self.name}: receive failed: {exc}") from exc

    async def discard_input(self) -> None:
        if self._port is not None:
            self._port.reset_input_buffer()
