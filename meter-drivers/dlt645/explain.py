"""A pasted hex frame explained for a field engineer: which edition, who, what, which value.

Pure codec use (no I/O): the ``meterflow edge frame decode`` command prints what this
returns, as text or JSON.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from ..errors import FrameError, InvalidValueError, MeterErrorReply
from .control import DIALECTS, Dialect, Version
from .frame import Frame, decode_frame
from .replies import ReadAddressReply, ReadReply, decode_reply
from .requests import ReadAddressRequest, ReadFollowUpRequest, ReadRequest, decode_request

_HEX_SEPARATORS = re.compile(r"[\s:,-]+")


@dataclass(frozen=True)
class ValueReport:
    di: str
    quantity: str
    value: Decimal | str | None
    unit: str


@dataclass(frozen=True)
class FrameReport:
    """What one frame says. ``values`` holds one entry per decoded field (several for a
    block read); ``error`` names the bits of an error reply."""

    version: str
    direction: str
    address: str
    control: str
    di: str | None = None
    values: list[ValueReport] = field(default_factory=list)
    error: list[str] | None = None
    error_code: int | None = None
    data: str = ""

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "version": self.version,
            "direction": self.direction,
            "address": self.address,
            "control": self.control,
            "di": self.di,
        }
        if len(self.values) == 1:
            v = self.values[0]
            out.update(quantity=v.quantity, value=_json_value(v.value), unit=v.unit)
        elif self.values:
            out["values"] = [
                {"di": v.di, "quantity": v.quantity, "value": _json_value(v.value), "unit": v.unit}
                for v in self.values
            ]
        if self.error is not None:
            out.update(error=self.error, error_code=f"0x{self.error_code:02X}")
        out["data"] = self.data
        return out


def _json_value(value: object) -> object:
    # JSON numbers for register values; a 12-digit BCD value fits a double's 15 digits.
    if isinstance(value, Decimal):
        return int(value) if value.as_tuple().exponent >= 0 else float(value)
    return None if value is None else str(value)


def parse_hex(text: str) -> bytes:
    """Bytes of a pasted hex dump; spaces, colons, commas and dashes between bytes allowed."""
    compact = _HEX_SEPARATORS.sub("", text.strip())
    bad = re.search(r"[^0-9A-Fa-f]", compact)
    if bad:
        raise InvalidValueError(
            f"expected hex digits, got {bad.group()!r} at character {bad.start()} of the "
            "input without separators"
        )
    if len(compact) % 2:
        raise InvalidValueError(f"expected an even number of hex digits, got {len(compact)}")
    return bytes.fromhex(compact)


def guess_version(frame: Frame) -> Version:
    """The edition whose function codes include the frame's; 2007 when both or neither do."""

    def codes(d: Dialect) -> set[int | None]:
        return {
            d.read,
            d.read_follow_up,
            d.write,
            d.broadcast_time,
            d.read_address,
            d.freeze,
            d.change_baud,
        }

    if frame.function not in codes(DIALECTS[Version.V2007]) and frame.function in codes(
        DIALECTS[Version.V1997]
    ):
        return Version.V1997
    return Version.V2007


def explain(text: str, version: Version | None = None) -> FrameReport:
    """Decode one frame given as hex text (any FE preamble); raise the codec's errors."""
    frame = decode_frame(parse_hex(text))
    version = version or guess_version(frame)
    report = {
        "version": version.value,
        "address": frame.address,
        "control": f"0x{frame.control:02X}",
    }
    if not frame.is_reply:
        request = decode_request(frame, version)
        di = request.di if isinstance(request, ReadRequest | ReadFollowUpRequest) else None
        kind = type(request).__name__.removesuffix("Request")
        if isinstance(request, ReadAddressRequest):
            kind = "ReadAddress"
        return FrameReport(direction=f"request:{kind}", di=di, data=frame.data.hex(" "), **report)
    try:
        reply = decode_reply(frame, version)
    except MeterErrorReply as exc:
        return FrameReport(
            direction="reply:error",
            error=exc.bits,
            error_code=exc.code,
            data=frame.data.hex(" "),
            **report,
        )
    if isinstance(reply, ReadReply):
        values = [
            ValueReport(
                r.di, r.quantity, r.value if isinstance(r.value, Decimal) else str(r.value), r.unit
            )
            for r in reply.readings
        ]
        if not values:
            raise FrameError(
                f"DI {reply.di} is not in the DL/T645-{version.value} catalogue; "
                f"value bytes {reply.payload.hex(' ')}"
            )
        return FrameReport(
            direction="reply:read", di=reply.di, values=values, data=frame.data.hex(" "), **report
        )
    if isinstance(reply, ReadAddressReply):
        return FrameReport(
            direction="reply:read_address",
            values=[ValueReport("", "address", reply.address, "")],
            data=frame.data.hex(" "),
            **report,
        )
    return FrameReport(
        direction=f"reply:{type(reply).__name__}", data=frame.data.hex(" "), **report
    )
