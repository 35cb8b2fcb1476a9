"""Sidelining failing meters, so that one dead meter does not stall the rest of its line.

After ``after_failed_rounds`` consecutive failed rounds a meter is skipped for ``for_s``
seconds; then it gets one try, and a success brings it back at once. The policy is protocol
agnostic and keeps no I/O: the line owner asks ``due`` before reading and reports ``record``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class SidelinePolicy:
    after_failed_rounds: int = 3
    for_s: float = 600.0


@dataclass
class MeterHealth:
    """One meter's record: reads and failures counted, consecutive failures, when it may be
    read again (monotonic seconds, 0 when not sidelined), and when it last answered."""

    reads: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    sidelined_until: float = 0.0
    last_good: float | None = None


class LineAvailability:
    """Which meters of a line are due this round."""

    def __init__(
        self, policy: SidelinePolicy | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy or SidelinePolicy()
        self.clock = clock
        self.meters: dict[str, MeterHealth] = {}

    def health(self, meter_id: str) -> MeterHealth:
        return self.meters.setdefault(meter_id, MeterHealth())

    def due(self, meter_id: str) -> bool:
        return self.clock() >= self.health(meter_id).sidelined_until

    def sidelined(self) -> list[str]:
        now = self.clock()
        return sorted(m for m, h in self.meters.items() if h.sidelined_until > now)

    def record(self, meter_id: str, ok: bool) -> None:
        h = self.health(meter_id)
        h.reads += 1
        if ok:
            h.consecutive_failures = 0
            h.sidelined_until = 0.0
            h.last_good = self.clock()
            return
        h.failures += 1
        h.consecutive_failures += 1
        if h.consecutive_failures >= self.policy.after_failed_rounds:
            h.sidelined_until = self.clock() + self.policy.for_s
