"""Meter addresses: nameplate strings to and from the six BCD bytes on the wire.

An address is kept as the 12-character string printed on the nameplate, most significant
digit first ("000000000161"); on the wire it is six BCD bytes, low byte first
(``61 01 00 00 00 00``). DL/T645-2007 (地址域) also allows abbreviated addressing: the high
bytes replaced by ``AA`` act as wildcards ("AAAAAAAA0161"); all-``AA`` is the wildcard used
to read the address of the only meter on a line.
"""

from __future__ import annotations

import re

from ..errors import FrameError, InvalidValueError

WILDCARD = "AAAAAAAAAAAA"
BROADCAST = "999999999999"

# Wildcard byte pairs may only stand above the digit pairs (the high end of the address).
_ADDRESS = re.compile(r"(?:AA)*(?:[0-9]{2})*")


def parse_address(text: str) -> str:
    """Normalise a nameplate address to 12 characters.

    Shorter decimal strings are left-padded with zeros ("161" → "000000000161"). Besides
    digits only the wildcard and abbreviated addresses (high bytes ``AA``) are accepted.
    """
    if not isinstance(text, str):
        raise InvalidValueError(f"address must be a str of up to 12 digits, got {text!r}")
    candidate = text.strip().upper()
    if candidate.isdigit() and candidate.isascii() and len(candidate) <= 12:
        return candidate.zfill(12)
    if len(candidate) == 12 and _ADDRESS.fullmatch(candidate):
        return candidate
    for position, char in enumerate(text.strip()):
        if not (char.isascii() and (char.isdigit() or char in "Aa")):
            raise InvalidValueError(
                f"address {text!r}: expected decimal digits (or the wildcard {WILDCARD}), "
                f"got {char!r} at position {position}"
            )
    raise InvalidValueError(
        f"address {text!r}: expected up to 12 decimal digits, {WILDCARD}, or 12 characters "
        f"with AA only in the high bytes"
    )


def address_to_wire(address: str) -> bytes:
    """Six address bytes as transmitted, low byte first (before any 0x33 offset)."""
    return bytes.fromhex(parse_address(address))[::-1]


def address_from_wire(raw: bytes, offset: int = 0) -> str:
    """Nameplate string of six wire bytes; ``offset`` locates ``raw`` in an error message."""
    text = bytes(raw[::-1]).hex().upper()
    if len(text) != 12 or not _ADDRESS.fullmatch(text):
        raise FrameError(
            f"expected a 6-byte BCD address at offset {offset}, got {bytes(raw).hex(' ')}",
            offset,
        )
    return text


def address_matches(pattern: str, own: str) -> bool:
    """Whether a meter with address ``own`` is addressed by ``pattern`` (wildcards allowed).

    The broadcast address is not a match here: which commands a meter accepts by broadcast
    is the meter's business, not the address's.
    """
    pattern = parse_address(pattern)
    own = parse_address(own)
    return all(p == o or p == "A" for p, o in zip(pattern, own, strict=True))
