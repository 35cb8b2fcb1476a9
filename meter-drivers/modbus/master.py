"""The Modbus line master: owns one line and runs one request/reply transaction at a time.

pymodbus moves and frames the bytes; here live the per-device timeout and retries, the
quiet pause kept between transactions, the lock that keeps two transactions off the line
at once, reconnects, and the mapping of replies to typed values through device profiles.
An absent unit id on a real line is silence: each attempt ends at the device's timeout, so
an absent meter costs ``attempts × (timeout + pause)`` and never hangs the line.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from decimal import Decimal

from pymodbus.client.base import ModbusBaseClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.pdu import ModbusPDU

from ..errors import InvalidValueError, ModbusError, ModbusExceptionReply, ReadTimeout
from ..transport import TransportError
from .links import ModbusLink
from .planner import plan_reads
from .profile import HOLDING, INPUT, DeviceProfile

# Exception codes by which a Modbus TCP gateway says "no such device behind me".
GATEWAY_NO_DEVICE = (0x0A, 0x0B)


@dataclass(frozen=True)
class DeviceSettings:
    """How one unit id is polled: ``timeout_s`` per attempt (s), ``retries`` after the
    first attempt, ``merge=False`` for the one-read-per-field escape hatch."""

    timeout_s: float = 1.0
    retries: int = 1
    merge: bool = True

    @property
    def attempts(self) -> int:
        return self.retries + 1


@dataclass(frozen=True)
class FieldValue:
    """A value read from a device, in ``unit`` (kWh, V, A, W, Hz, m³ …) after the profile's
    scale (before any CT/PT multiplier, which belongs to the installation)."""

    quantity: str
    value: Decimal
    unit: str


Request = Callable[[ModbusBaseClient], Awaitable[ModbusPDU]]


class ModbusMaster:
    """Polls the devices on one Modbus line.

    ``timeout_s`` and ``retries`` are the defaults for every unit id (override per device
    with ``configure_device``); ``pause_s`` is the quiet time kept between the end of one
    transaction and the next request (s); ``connect_timeout_s`` bounds opening the line.
    """

    def __init__(
        self,
        link: ModbusLink,
        *,
        timeout_s: float = 1.0,
        retries: int = 1,
        pause_s: float = 0.02,
        connect_timeout_s: float = 5.0,
    ) -> None:
        if timeout_s <= 0 or retries < 0 or pause_s < 0:
            raise InvalidValueError(
                f"timeout_s > 0, retries >= 0, pause_s >= 0 expected; got {timeout_s}, "
                f"{retries}, {pause_s}"
            )
        self.link = link
        self.defaults = DeviceSettings(timeout_s=timeout_s, retries=retries)
        self.pause_s = pause_s
        self.connect_timeout_s = connect_timeout_s
        self.requests_sent = 0  # every attempt put on the line, for diagnostics
        self._devices: dict[int, DeviceSettings] = {}
        self._lock = asyncio.Lock()
        self._client: ModbusBaseClient | None = None
        self._last_done = 0.0

    # -- settings ---------------------------------------------------------------------------

    def configure_device(
        self,
        unit_id: int,
        *,
        timeout_s: float | None = None,
        retries: int | None = None,
        merge: bool | None = None,
    ) -> DeviceSettings:
        """Override the defaults for one unit id; returns the settings now in force."""
        current = self.settings_for(unit_id)
        changes = {
            k: v
            for k, v in (("timeout_s", timeout_s), ("retries", retries), ("merge", merge))
            if v is not None
        }
        self._devices[unit_id] = replace(current, **changes)
        return self._devices[unit_id]

    def settings_for(self, unit_id: int) -> DeviceSettings:
        return self._devices.get(unit_id, self.defaults)

    # -- reads and writes -------------------------------------------------------------------

    async def read_fields(
        self, unit_id: int, profile: DeviceProfile, quantities: Iterable[str] | None = None
    ) -> dict[str, FieldValue]:
        """Read ``quantities`` (all of the profile's fields when None) from ``unit_id`` in
        the fewest requests the profile's limits allow.

        Raises ``ReadTimeout`` when a request gets no valid reply after every attempt,
        ``ModbusExceptionReply`` when the device answers with an exception, and
        ``TransportError`` when the line itself cannot be used.
        """
        fields = profile.select(quantities)
        reads = plan_reads(
            fields,
            max_registers=profile.max_registers,
            max_gap=profile.max_gap,
            merge=self.settings_for(unit_id).merge,
        )
        values: dict[str, FieldValue] = {}
        for read in reads:
            registers = await self.read_registers(unit_id, read.function, read.address, read.count)
            for f in read.fields:
                values[f.quantity] = FieldValue(
                    f.quantity, f.decode(read.slice_for(f, registers)), f.unit
                )
        return {f.quantity: values[f.quantity] for f in fields}

    async def read_registers(
        self, unit_id: int, function: int, address: int, count: int
    ) -> list[int]:
        """``count`` raw registers from ``address`` with function 3 (holding) or 4 (input)."""

        def valid(r: ModbusPDU) -> bool:
            # On RTU a stale reply of another request to the same unit can arrive; the
            # function code and register count catch most of them.
            return r.function_code == function and len(r.registers) == count

        request = _read_request(unit_id, function, address, count)
        what = f"function {function} {address:#06x}+{count}"
        response = await self._transact(unit_id, request, valid, what)
        return list(response.registers)

    async def write_field(
        self, unit_id: int, profile: DeviceProfile, quantity: str, value: Decimal | int | str
    ) -> None:
        """Write ``value`` (in the field's unit) to a writable holding-register field:
        function 6 for one register, 16 for more. Values that do not fit the register
        (range, or not a whole multiple of an integer field's scale) raise
        ``InvalidValueError`` before anything is sent."""
        field = profile.field(quantity)
        if not field.writable:
            raise ModbusError(f"profile {profile.name}: {quantity} is not marked writable")
        words = field.encode(value)
        single = len(words) == 1

        def request(c: ModbusBaseClient) -> Awaitable[ModbusPDU]:
            if single:
                return c.write_register(field.address, words[0], device_id=unit_id)
            return c.write_registers(field.address, words, device_id=unit_id)

        def valid(r: ModbusPDU) -> bool:
            if single:
                return r.function_code == 6 and r.address == field.address
            return r.function_code == 16 and r.address == field.address and r.count == len(words)

        await self._transact(unit_id, request, valid, f"write {quantity} at {field.address:#06x}")

    async def probe(self, unit_id: int, *, function: int = HOLDING, address: int = 0) -> bool:
        """Whether anything answers at ``unit_id`` (one attempt, the device's timeout).

        Any reply counts, an exception reply too (the device is there, it just has no such
        register), except a gateway's "no such device" (0x0A, 0x0B).
        """
        request = _read_request(unit_id, function, address, 1)
        try:
            await self._transact(unit_id, request, lambda r: True, "probe", attempts=1)
        except ReadTimeout:
            return False
        except ModbusExceptionReply as exc:
            return exc.code not in GATEWAY_NO_DEVICE
        return True

    async def close(self) -> None:
        """Close the line (waits for a transaction in progress to end)."""
        async with self._lock:
            self._drop_client()

    # -- one transaction --------------------------------------------------------------------

    async def _transact(
        self,
        unit_id: int,
        request: Request,
        valid: Callable[[ModbusPDU], bool],
        what: str,
        *,
        attempts: int | None = None,
    ) -> ModbusPDU:
        settings = self.settings_for(unit_id)
        tries = settings.attempts if attempts is None else attempts
        async with self._lock:
            for _attempt in range(tries):
                response = await self._attempt(request, settings.timeout_s)
                if response is None:
                    continue
                if response.isError():
                    raise ModbusExceptionReply(
                        unit_id=unit_id,
                        function=response.function_code & 0x7F,
                        code=getattr(response, "exception_code", 0),
                        where=self.link.name,
                    )
                if valid(response):
                    return response
        raise ReadTimeout(
            f"unit {unit_id} on {self.link.name}: no valid reply to {what} within "
            f"{settings.timeout_s} s, {tries} attempt(s)"
        )

    async def _attempt(self, request: Request, timeout_s: float) -> ModbusPDU | None:
        """One request on the line; None when no usable reply came within ``timeout_s``."""
        quiet = self.pause_s - (time.monotonic() - self._last_done)
        if quiet > 0:
            await asyncio.sleep(quiet)
        client = await self._connected()
        self.requests_sent += 1
        try:
            return await asyncio.wait_for(request(client), timeout_s)
        except TimeoutError:
            return None  # silence: absent, dead, or its reply was garbled (bad CRC)
        except ConnectionException as exc:
            self._drop_client()
            raise TransportError(f"{self.link.name}: {exc}") from exc
        except ModbusException:
            return None  # a reply pymodbus could not use (wrong unit id, undecodable)
        finally:
            self._last_done = time.monotonic()

    async def _connected(self) -> ModbusBaseClient:
        if self._client is not None and self._client.connected:
            return self._client
        self._drop_client()
        client = self.link.client()
        try:
            ok = await asyncio.wait_for(client.connect(), self.connect_timeout_s)
        except TimeoutError:
            ok = False
        if not ok:
            client.close()
            raise TransportError(
                f"{self.link.name}: cannot open the line within {self.connect_timeout_s} s"
            )
        self._client = client
        return client

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


def _read_request(unit_id: int, function: int, address: int, count: int) -> Request:
    if function not in (HOLDING, INPUT):
        raise InvalidValueError(f"function {function}: expected 3 (holding) or 4 (input)")

    def request(c: ModbusBaseClient) -> Awaitable[ModbusPDU]:
        read = c.read_holding_registers if function == HOLDING else c.read_input_registers
        return read(address, count=count, device_id=unit_id)

    return request
