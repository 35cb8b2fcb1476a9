"""The gateway agent: polling rounds over the site's lines, then store, seal and publish.

A round reads every line in parallel; within a line the meters are read one at a time in
tree order (main before branches before units), so that a main meter and its sub-meters are
read as close together as the line allows. Every reading is committed to the outbox before
anything is published.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from edge.config import LineConfig, MeterConfig, SiteConfig
from edge.keys import GatewayIdentity
from edge.outbox import OutboxStore
from edge.publisher import MqttPublisher
from edge.wire import ClockState, Quality, Reading, ReadingsPayload, seal
from meter_drivers.dlt645.control import Version
from meter_drivers.dlt645.master import Dlt645Master, di_for_quantity
from meter_drivers.errors import DriverError, MeterErrorReply
from meter_drivers.sideline import LineAvailability, SidelinePolicy
from meter_drivers.transport import TcpTransport

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def tree_order(meters: list[MeterConfig]) -> list[MeterConfig]:
    """Meters ordered parents first (by depth in the tree), keeping config order within a
    depth; parents on other lines count for depth too."""
    parent = {m.id: m.parent for m in meters}

    def depth(meter_id: str) -> int:
        d, seen = 0, {meter_id}
        while (p := parent.get(meter_id)) is not None and p not in seen:
            seen.add(p)
            meter_id, d = p, d + 1
        return d

    return sorted(meters, key=lambda m: depth(m.id))


@dataclass(frozen=True)
class RoundReport:
    round_id: str
    good: int
    failed: int


class GatewayAgent:
    """Polls the configured lines, fills the outbox, and publishes sealed envelopes."""

    def __init__(self, config: SiteConfig, identity: GatewayIdentity, outbox: OutboxStore,
                 publisher: MqttPublisher, *, now: Callable[[], datetime] = utc_now,
                 sideline: SidelinePolicy | None = None) -> None:
        self.config = config
        self.identity = identity
        self.outbox = outbox
        self.publisher = publisher
        self.now = now
        self.epoch = outbox.start_epoch()
        all_meters = [m for line in config.lines for m in line.meters]
        ordered = {m.id: i for i, m in enumerate(tree_order(all_meters))}
        self._lines = [
            (line, Dlt645Master(TcpTransport(*line.host_port), timeout_s=line.timeout_s,
                                retries=line.retries, pause_s=line.pause_s),
             sorted(line.meters, key=lambda m: ordered[m.id]))
            for line in config.lines
        ]
        self.availability = {line.name: LineAvailability(sideline) for line in config.lines}

    def _seal(self, seq: int, epoch: int, readings: list[Reading]) -> bytes:
        payload = ReadingsPayload(
            gateway=self.config.gateway,
            kid=self.identity.kid,
            seq=seq,
            epoch=epoch,
            sent_at=self.now(),
            clock=ClockState(self.config.clock),
            readings=readings,
        )
        return seal(payload, self.identity.private_key)

    async def _read_line(self, line: LineConfig, master: Dlt645Master,
                         meters: list[MeterConfig], round_id: str) -> list[Reading]:
        """Read the due meters of one line; a meter that does not answer its first quantity
        is not asked for the rest this round, and is sidelined after repeated failures."""
        availability = self.availability[line.name]
        readings = []
        for meter in meters:
            if not availability.due(meter.id):
                continue
            version = Version(meter.version)
            answered = False
            for n, quantity in enumerate(meter.quantities):
                quality, number, unit = Quality.TIMEOUT, None, ""
                if n == 0 or answered:
                    try:
                        value = await master.read_value(meter.address,
                                                        di_for_quantity(quantity, version),
                                                        version)
                    except MeterErrorReply as exc:
                        answered = True
                        log.warning("%s meter %s %s: %s", line.name, meter.id, quantity, exc)
                        quality = Quality.ERROR
                    except DriverError as exc:
                        log.warning("%s meter %s %s: %s", line.name, meter.id, quantity, exc)
                    else:
                        answered = True
                        quality, unit = Quality.GOOD, value.unit
                        number = value.value * meter.multiplier
                readings.append(Reading(
                    meter=meter.id, quantity=quantity, value=number, unit=unit,
                    read_at=self.now(), quality=quality, round=round_id,
                    multiplier=meter.multiplier,
                ))
            availability.record(meter.id, answered)
        return readings

    async def poll_round(self) -> RoundReport:
        """Read every meter once (lines in parallel) and commit the readings to the outbox."""
        round_id = self.now().strftime("r%Y%m%dT%H%M%SZ")
        per_line = await asyncio.gather(
            *(self._read_line(line, master, meters, round_id)
              for line, master, meters in self._lines)
        )
        readings = [r for line in per_line for r in line]
        self.outbox.add(readings)
        good = sum(r.quality is Quality.GOOD for r in readings)
        return RoundReport(round_id, good, len(readings) - good)

    def resend_unacked(self) -> int:
        """Hand envelopes left unacknowledged by an earlier run back to the publisher."""
        envelopes = self.outbox.unacked()
        for env in envelopes:
            self.publisher.publish(env)
        return len(envelopes)

    def pump(self) -> int:
        """Seal every pending reading into envelopes and publish them; return how many."""
        count = 0
        while (env := self.outbox.seal_next(self._seal, self.epoch,
                                            self.config.batch_max_readings)) is not None:
            self.publisher.publish(env)
            count += 1
        return count

    async def close(self) -> None:
        for _line, master, _meters in self._lines:
            await master.close()
