"""The DL/T645 master: owns one line and runs one request/reply transaction at a time.

This module joins the sans-I/O codec to a Transport; the codec parses, the transport moves
bytes, and here live the timeouts, retries, the pause between requests and the lock that
keeps two transactions off the line at once.
"""

from __future__ import annotations

import asyncio
import time

from ..errors import DriverError, FrameError
from ..transport import Transport
from .catalogue import CATALOGUE, Reading
from .control import DIALECTS, Version
from .frame import encode_frame
from .parser import FrameParser
from .replies import ReadReply, decode_reply
from .requests import build_read


class ReadTimeout(DriverError):
    """No valid reply came from the meter within the timeout, after every retry."""


def di_for_quantity(quantity: str, version: Version = Version.V2007) -> str:
    """The data identifier whose single field is ``quantity`` (e.g. ``energy_import``)."""
    for di, item in CATALOGUE[version].items():
        if len(item.fields) == 1 and item.fields[0].quantity == quantity:
            return di
    known = sorted({i.fields[0].quantity for i in CATALOGUE[version].values()
                    if len(i.fields) == 1})
    raise DriverError(
        f"quantity {quantity!r}: no DL/T645-{version.value} data identifier; "
        f"expected one of {', '.join(known)}"
    )


class Dlt645Master:
    """Reads meters on one line. ``timeout_s`` is per attempt; ``pause_s`` is the quiet time
    kept between the end of one transaction and the next request."""

    def __init__(self, transport: Transport, *, timeout_s: float = 1.0, retries: int = 1,
                 pause_s: float = 0.02, preamble: int = 4) -> None:
        self.transport = transport
        self.timeout_s = timeout_s
        self.retries = retries
        self.pause_s = pause_s
        self.preamble = preamble
        self._lock = asyncio.Lock()
        self._last_done = 0.0

    async def read(self, address: str, di: str, version: Version = Version.V2007) -> ReadReply:
        """Read ``di`` from the meter at ``address``; raise ReadTimeout or MeterErrorReply."""
        request = encode_frame(build_read(address, di, version), self.preamble)
        reply_control = DIALECTS[version].read | 0x80
        async with self._lock:
            for _attempt in range(self.retries + 1):
                reply = await self._transact(request, address, reply_control, version)
                if reply is not None:
                    return reply
        raise ReadTimeout(
            f"meter {address} on {self.transport.name}: no valid reply to DI {di} within "
            f"{self.timeout_s} s, {self.retries + 1} attempts"
        )

    async def read_value(self, address: str, di: str,
                         version: Version = Version.V2007) -> Reading:
        """Read a DI that holds exactly one value and return it with its unit."""
        reply = await self.read(address, di, version)
        if len(reply.readings) != 1:
            raise DriverError(
                f"meter {address}: DI {di} returned {len(reply.readings)} values, expected 1"
            )
        return reply.readings[0]

    async def _transact(self, request: bytes, address: str, reply_control: int,
                        version: Version) -> ReadReply | None:
        quiet = self.pause_s - (time.monotonic() - self._last_done)
        if quiet > 0:
            await asyncio.sleep(quiet)
        await self.transport.discard_input()
        await self.transport.send(request)
        parser = FrameParser()
        deadline = time.monotonic() + self.timeout_s
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                parser.feed(await self.transport.receive(remaining))
                for frame in parser:
                    # Skip our own echo (half-duplex converters) and other meters' chatter.
                    if frame.address != address or frame.function != reply_control & 0x1F:
                        continue
                    if not frame.is_reply:
                        continue
                    try:
                        reply = decode_reply(frame, version)  # MeterErrorReply propagates
                    except FrameError:
                        continue  # well-framed but malformed: as good as no reply; retry
                    if isinstance(reply, ReadReply):
                        return reply
            return None
        finally:
            self._last_done = time.monotonic()

    async def close(self) -> None:
        await self.transport.close()
