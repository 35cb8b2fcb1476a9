"""The DL/T645 master: owns one line and runs one request/reply transaction at a time.

This module joins the sans-I/O codec to a Transport; the codec parses, the transport moves
bytes, and here live the timeouts, retries, the pause between requests and the lock that
keeps two transactions off the line at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from ..errors import DriverError, FrameError, ReadTimeout
from ..transport import Transport
from .address import address_matches, parse_address
from .catalogue import CATALOGUE, DecodedValue
from .control import DIALECTS, Version
from .frame import Frame, encode_frame
from .parser import FrameParser
from .replies import ReadReply, decode_reply
from .requests import build_read

#: Communication address (通信地址): read with an abbreviated address, the reply names the meter.
ADDRESS_DI = "04000401"


def di_for_quantity(quantity: str, version: Version = Version.V2007) -> str:
    """The data identifier whose single field is ``quantity`` (e.g. ``energy_import``)."""
    for di, item in CATALOGUE[version].items():
        if len(item.fields) == 1 and item.fields[0].quantity == quantity:
            return di
    known = sorted(
        {i.fields[0].quantity for i in CATALOGUE[version].values() if len(i.fields) == 1}
    )
    raise DriverError(
        f"quantity {quantity!r}: no DL/T645-{version.value} data identifier; "
        f"expected one of {', '.join(known)}"
    )


class ProbeOutcome(Enum):
    """What a probe of an address pattern heard."""

    SILENT = "silent"  # no byte at all: no meter matches
    FOUND = "found"  # one clean reply: exactly one meter matches
    COLLISION = "collision"  # bytes but no clean reply: several meters answered at once


@dataclass(frozen=True)
class Probe:
    outcome: ProbeOutcome
    address: str | None = None


class Dlt645Master:
    """Reads meters on one line. ``timeout_s`` is per attempt; ``pause_s`` is the quiet time
    kept between the end of one transaction and the next request."""

    def __init__(
        self,
        transport: Transport,
        *,
        timeout_s: float = 1.0,
        retries: int = 1,
        pause_s: float = 0.02,
        preamble: int = 4,
    ) -> None:
        self.transport = transport
        self.timeout_s = timeout_s
        self.retries = retries
        self.pause_s = pause_s
        self.preamble = preamble
        self._lock = asyncio.Lock()
        self._last_done = 0.0

    async def read(
        self,
        address: str,
        di: str,
        version: Version = Version.V2007,
        *,
        timeout_s: float | None = None,
        retries: int | None = None,
    ) -> ReadReply:
        """Read ``di`` from the meter at ``address``; raise ReadTimeout or MeterErrorReply.

        ``timeout_s`` and ``retries`` override the line's defaults for this meter.
        """
        address = parse_address(address)
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        attempts = 1 + (self.retries if retries is None else retries)
        request = encode_frame(build_read(address, di, version), self.preamble)
        function = DIALECTS[version].read
        problem = "no reply"
        async with self._lock:
            for _attempt in range(attempts):
                heard = await self._exchange(
                    request,
                    timeout_s,
                    lambda f: f.is_reply and f.function == function and f.address == address,
                )
                if heard.frame is None:
                    continue
                try:
                    reply = decode_reply(heard.frame, version)  # MeterErrorReply propagates
                except FrameError as exc:
                    problem = f"a malformed reply ({exc})"
                    continue
                if isinstance(reply, ReadReply):
                    return reply
        raise ReadTimeout(
            f"meter {address} on {self.transport.name}: DI {di}: {problem} within "
            f"{timeout_s} s, {attempts} attempt(s)"
        )

    async def read_value(
        self,
        address: str,
        di: str,
        version: Version = Version.V2007,
        *,
        timeout_s: float | None = None,
    ) -> DecodedValue:
        """Read a DI that holds exactly one value and return it with its unit."""
        reply = await self.read(address, di, version, timeout_s=timeout_s)
        if len(reply.readings) != 1:
            raise DriverError(
                f"meter {address}: DI {di} returned {len(reply.readings)} values, expected 1"
            )
        return reply.readings[0]

    async def probe(self, pattern: str, *, timeout_s: float | None = None) -> Probe:
        """Ask every meter matching ``pattern`` (abbreviated address, high bytes ``AA``) for
        its address (DI 04000401); tell silence, one meter, and a collision apart."""
        pattern = parse_address(pattern)
        request = encode_frame(build_read(pattern, ADDRESS_DI), self.preamble)
        function = DIALECTS[Version.V2007].read
        async with self._lock:
            heard = await self._exchange(
                request,
                self.timeout_s if timeout_s is None else timeout_s,
                lambda f: (
                    f.is_reply and f.function == function and address_matches(pattern, f.address)
                ),
            )
        if heard.frame is not None and not heard.noise:
            return Probe(ProbeOutcome.FOUND, heard.frame.address)
        if heard.frame is not None or heard.noise:
            return Probe(ProbeOutcome.COLLISION)
        return Probe(ProbeOutcome.SILENT)

    async def broadcast(self, request: bytes, settle_s: float = 0.2) -> None:
        """Send a frame no meter answers (broadcast time, freeze), then keep the line quiet
        for ``settle_s`` seconds more than the usual pause while the meters act on it."""
        async with self._lock:
            quiet = self.pause_s - (time.monotonic() - self._last_done)
            if quiet > 0:
                await asyncio.sleep(quiet)
            await self.transport.discard_input()
            await self.transport.send(request)
            self._last_done = time.monotonic() + settle_s

    async def _exchange(
        self, request: bytes, timeout_s: float, wanted: Callable[[Frame], bool]
    ) -> _Heard:
        """Send ``request`` and listen until a wanted frame arrives or ``timeout_s`` passes.

        Our own echo (half-duplex converters) and other meters' frames are skipped; a
        well-framed but malformed reply counts as noise, like garbage bytes.
        """
        quiet = self.pause_s - (time.monotonic() - self._last_done)
        if quiet > 0:
            await asyncio.sleep(quiet)
        await self.transport.discard_input()
        await self.transport.send(request)
        parser = FrameParser()
        deadline = time.monotonic() + timeout_s
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                parser.feed(await self.transport.receive(remaining))
                for frame in parser:
                    if wanted(frame):
                        return _Heard(frame, parser.garbage_bytes + parser.checksum_errors > 0)
            return _Heard(None, parser.garbage_bytes + parser.checksum_errors + parser.buffered > 0)
        finally:
            self._last_done = time.monotonic()

    async def close(self) -> None:
        await self.transport.close()


@dataclass(frozen=True)
class _Heard:
    frame: Frame | None
    noise: bool
