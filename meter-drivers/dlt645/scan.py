"""Finding the DL/T645-2007 meters on a line without knowing their addresses.

A read of the communication address sent to the full wildcard answers only when one meter is
on the line. With several, their replies collide, so the search narrows abbreviated
addresses (high bytes ``AA``) one BCD byte at a time from the low end: a pattern that stays
silent matches no meter, one clean reply names a meter, a collision means several meters
share the known low bytes and the search goes one byte deeper under that pattern.
"""

from __future__ import annotations

from collections.abc import Callable

from .address import WILDCARD
from .master import Dlt645Master, ProbeOutcome

#: called after every probe with (probes sent, probes planned so far, meters found)
Progress = Callable[[int, int, int], None]


async def scan_line(
    master: Dlt645Master, *, timeout_s: float = 0.3, progress: Progress | None = None
) -> list[str]:
    """Addresses of every meter that answers on ``master``'s line, sorted.

    Costs one probe when the line holds one meter, about 100 per collided byte otherwise;
    each silent probe waits ``timeout_s`` seconds.
    """
    found: list[str] = []
    counts = {"sent": 0, "planned": 1}

    async def probe(pattern: str) -> ProbeOutcome:
        result = await master.probe(pattern, timeout_s=timeout_s)
        counts["sent"] += 1
        if result.outcome is ProbeOutcome.FOUND and result.address not in found:
            found.append(result.address)
        if progress is not None:
            progress(counts["sent"], counts["planned"], len(found))
        return result.outcome

    async def narrow(known_low: str) -> None:
        level = len(known_low) // 2
        counts["planned"] += 100
        for byte in range(100):
            suffix = f"{byte:02d}{known_low}"
            outcome = await probe("AA" * (5 - level) + suffix)
            if outcome is ProbeOutcome.COLLISION and level < 5:
                await narrow(suffix)

    if await probe(WILDCARD) is ProbeOutcome.COLLISION:
        await narrow("")
    return sorted(found)
