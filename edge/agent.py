"""The gateway agent: polling rounds over the site's lines, then store, seal and publish.

Rounds start on multiples of the polling groups' intervals. A round reads every line in
parallel; within a line the meters are read one at a time in tree order (main before
branches before units), so that a main meter and its sub-meters are read as close together
as the line allows — or, for a snapshot group, at one instant: a broadcast freeze at the
round boundary, then the frozen registers. Every reading is committed to the outbox before
anything is published. Live envelopes go out at once; a backlog left by an outage drains
oldest first at a bounded rate beside them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from pydantic import ValidationError

from edge.config import GroupConfig, MeterConfig, SiteConfig
from edge.keys import GatewayIdentity
from edge.lines import LineReader, MeterValue, close_all, open_line
from edge.outbox import Eviction, OutboxStore
from edge.publisher import MqttPublisher
from edge.wire import (
    VALUE_MAX_ABS,
    VALUE_MAX_DIGITS,
    ClockState,
    HealthPayload,
    LineHealth,
    MeterHealth,
    OutboxHealth,
    Quality,
    Reading,
    ReadingsPayload,
    seal,
    utc_now,
)
from meter_drivers.errors import DriverError, MeterErrorReply, ModbusExceptionReply
from meter_drivers.sideline import LineAvailability, SidelinePolicy

log = logging.getLogger(__name__)


def wire_reading(
    meter: MeterConfig,
    quantity: str,
    value: MeterValue | None,
    quality: Quality,
    round_id: str,
    read_at: datetime,
) -> Reading:
    """The reading of ``quantity`` as sent (value × the meter's CT/PT multiplier, in the
    value's unit). A value the wire cannot carry — NaN or an infinity from a faulty float
    register, more than VALUE_MAX_DIGITS digits, |value| ≥ VALUE_MAX_ABS — is sent as a
    failed read (quality ``error``, no value) and logged: one bad register never stops a
    round, and ingest never sees a value it would refuse."""
    factor = multiplier_for(quantity, meter)
    fields = {
        "meter": meter.id,
        "quantity": quantity,
        "read_at": read_at,
        "round": round_id,
        "multiplier": factor,
    }
    if value is None:
        return Reading(value=None, unit="", quality=quality, **fields)
    try:
        return Reading(value=value.value * factor, unit=value.unit, quality=quality, **fields)
    except ValidationError as exc:
        if not any(e["loc"] == ("value",) for e in exc.errors()):
            raise
        log.warning(
            "meter %s %s: value %s × %s cannot be sent (expected a finite decimal of at most"
            " %d digits below %s); recorded as a failed read",
            meter.id,
            quantity,
            str(value.value)[:40],
            factor,
            VALUE_MAX_DIGITS,
            VALUE_MAX_ABS,
        )
        return Reading(value=None, unit="", quality=Quality.ERROR, **fields)


#: how many envelopes may wait for PUBACK at once (live and backlog together)
MAX_IN_FLIGHT = 50


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


def multiplier_for(quantity: str, meter: MeterConfig) -> Decimal:
    """The installation factor for a quantity: CT × PT for energy, power and demand, CT for
    current, PT for voltage, 1 for the rest (frequency, power factor, water)."""
    if quantity.startswith(
        ("energy_", "power_", "reactive_", "apparent_", "max_demand")
    ) and not quantity.startswith("power_factor"):
        return meter.multiplier
    if quantity.startswith("current_"):
        return meter.ct
    if quantity.startswith("voltage_"):
        return meter.pt
    return Decimal(1)


@dataclass(frozen=True)
class RoundReport:
    round_id: str
    good: int
    failed: int
    skipped_meters: int
    duration_s: float


@dataclass
class _LineState:
    reader: LineReader
    meters: list[MeterConfig]
    availability: LineAvailability
    last_round_s: float = 0.0
    utilisation: float = 0.0


@dataclass
class AgentCounters:
    rounds: int = 0
    overruns: int = 0
    started: float = field(default_factory=time.monotonic)


class GatewayAgent:
    """Polls the configured lines, fills the outbox, and publishes sealed envelopes."""

    def __init__(
        self,
        config: SiteConfig,
        identity: GatewayIdentity,
        outbox: OutboxStore,
        publisher: MqttPublisher,
        *,
        now: Callable[[], datetime] = utc_now,
        sideline: SidelinePolicy | None = None,
    ) -> None:
        self.config = config
        self.identity = identity
        self.outbox = outbox
        self.publisher = publisher
        self.now = now
        self.epoch = outbox.start_epoch()
        self.counters = AgentCounters()
        self.outbox_alarm = False
        all_meters = [m for line in config.lines for m in line.meters]
        rank = {m.id: i for i, m in enumerate(tree_order(all_meters))}
        self.lines = [
            _LineState(
                open_line(line, config.timezone),
                sorted(line.meters, key=lambda m: rank[m.id]),
                LineAvailability(sideline),
            )
            for line in config.lines
        ]
        self._line_of = {m.id: state.reader.line.name for state in self.lines for m in state.meters}
        self._live: set[int] = set()
        self._backlog_credit = 0.0
        self._backlog_at = time.monotonic()
        self.check_plan()

    # -- planning -----------------------------------------------------------------------

    def check_plan(self) -> list[str]:
        """Warn, before running, about groups a line cannot serve within their interval at
        its baud rate (each request and reply on the wire, turnaround and pause)."""
        warnings = []
        for state in self.lines:
            line = state.reader.line
            bits = {"N": 10, "E": 11, "O": 11}[line.parity]
            for group in self.config.groups:
                transactions = sum(
                    len([q for q in group.quantities if state.reader.supports(m, q)])
                    for m in state.meters
                    if self._in_group(m, group)
                )
                if line.protocol == "modbus":
                    transactions = max(1, transactions // 4)  # merged register reads
                # ~16-byte request + ~24-byte reply (DL/T645 read with preamble), 50 ms
                # turnaround, plus the pause between requests.
                need_s = transactions * (40 * bits / line.baud + 0.05 + line.pause_s)
                if need_s > 0.8 * group.interval_s:
                    warnings.append(
                        f"line {line.name}: group {group.name} needs about {need_s:.1f} s of "
                        f"wire time at {line.baud} bit/s for {transactions} reads, more than "
                        f"80 % of its {group.interval_s} s interval"
                    )
        for w in warnings:
            log.warning("plan: %s", w)
        self.plan_warnings = warnings
        return warnings

    def _in_group(self, meter: MeterConfig, group: GroupConfig) -> bool:
        return meter.groups is None or group.name in meter.groups

    def due_groups(self, tick: int) -> list[GroupConfig]:
        """Groups whose interval divides ``tick`` (UTC seconds since the epoch)."""
        return [g for g in self.config.groups if tick % g.interval_s == 0]

    def tick_step(self) -> int:
        return math.gcd(*(g.interval_s for g in self.config.groups))

    # -- one round ----------------------------------------------------------------------

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

    async def _read_line(
        self, state: _LineState, groups: list[GroupConfig], round_id: str, boundary: datetime
    ) -> tuple[list[Reading], int]:
        """Read the due meters of one line; a meter that does not answer is not asked for
        the rest this round, and is sidelined after repeated failed rounds."""
        reader, availability = state.reader, state.availability
        snapshot = [g for g in groups if g.snapshot]
        frozen_ok = False
        if snapshot and any(
            reader.supports_frozen(m, q)
            for m in state.meters
            for g in snapshot
            for q in g.quantities
        ):
            try:
                frozen_ok = await reader.freeze()
            except DriverError as exc:
                log.warning("%s: broadcast freeze failed: %s", reader.line.name, exc)
        readings: list[Reading] = []
        skipped = 0
        for meter in state.meters:
            wanted = [
                q
                for g in groups
                if self._in_group(meter, g)
                for q in g.quantities
                if reader.supports(meter, q)
            ]
            wanted = list(dict.fromkeys(wanted))
            if not wanted:
                continue
            if not availability.due(meter.id):
                skipped += 1
                continue
            frozen = [
                q
                for g in snapshot
                if self._in_group(meter, g)
                for q in g.quantities
                if frozen_ok and reader.supports_frozen(meter, q)
            ]
            live = [q for q in wanted if q not in frozen]
            answered, failed = True, False
            for quantities, read, stamp in (
                (frozen, reader.read_frozen, boundary),
                (live, reader.read, None),
            ):
                if not quantities:
                    continue
                if failed:
                    readings += [
                        wire_reading(meter, q, None, Quality.TIMEOUT, round_id, self.now())
                        for q in quantities
                    ]
                    continue
                try:
                    values = {v.quantity: v for v in await read(meter, quantities)}
                    quality = Quality.GOOD
                except (MeterErrorReply, ModbusExceptionReply) as exc:
                    log.warning("%s meter %s: %s", reader.line.name, meter.id, exc)
                    values, quality = {}, Quality.ERROR
                except DriverError as exc:
                    log.warning("%s meter %s: %s", reader.line.name, meter.id, exc)
                    values, quality, answered, failed = {}, Quality.TIMEOUT, False, True
                read_at = stamp or self.now()
                readings += [
                    wire_reading(
                        meter,
                        q,
                        values.get(q),
                        quality if q not in values else Quality.GOOD,
                        round_id,
                        read_at,
                    )
                    for q in quantities
                ]
            availability.record(meter.id, answered)
        return readings, skipped

    async def poll_round(self, tick: int | None = None) -> RoundReport:
        """Read every due meter once (lines in parallel) and commit the readings.

        ``tick``: the round boundary (UTC seconds); by default now, with every group due.
        """
        started = time.monotonic()
        boundary = self.now() if tick is None else datetime.fromtimestamp(tick, UTC)
        groups = self.config.groups if tick is None else self.due_groups(tick)
        round_id = boundary.strftime("r%Y%m%dT%H%M%SZ")
        results = await asyncio.gather(
            *(self._timed_line(state, groups, round_id, boundary) for state in self.lines)
        )
        readings = [r for line_readings, _ in results for r in line_readings]
        if readings:
            self.outbox.add(readings)
        self.counters.rounds += 1
        good = sum(r.quality is Quality.GOOD for r in readings)
        return RoundReport(
            round_id,
            good,
            len(readings) - good,
            sum(s for _, s in results),
            time.monotonic() - started,
        )

    async def _timed_line(
        self, state: _LineState, groups: list[GroupConfig], round_id: str, boundary: datetime
    ) -> tuple[list[Reading], int]:
        started = time.monotonic()
        try:
            return await self._read_line(state, groups, round_id, boundary)
        finally:
            state.last_round_s = time.monotonic() - started
            interval = min((g.interval_s for g in groups), default=0)
            state.utilisation = state.last_round_s / interval if interval else 0.0

    async def read_meter_now(self, meter_id: str) -> list[Reading]:
        """Read one meter's quantities of every group now (a command from the cloud); the
        readings go through the outbox like any others."""
        for state in self.lines:
            meter = next((m for m in state.meters if m.id == meter_id), None)
            if meter is None:
                continue
            now = self.now()
            readings, _ = await self._read_line(
                _LineState(state.reader, [meter], LineAvailability()),
                self.config.groups,
                now.strftime("cmd%Y%m%dT%H%M%SZ"),
                now,
            )
            if readings:
                self.outbox.add(readings)
            return readings
        raise KeyError(f"no meter {meter_id!r} on this gateway")

    async def sync_time(self) -> int:
        """Broadcast the time on every line whose protocol has it; returns how many."""
        now = self.now()
        done = 0
        for state in self.lines:
            try:
                done += await state.reader.sync_time(now)
            except DriverError as exc:
                log.warning("%s: time sync failed: %s", state.reader.line.name, exc)
        return done

    # -- store and forward --------------------------------------------------------------

    def seal_pending(self) -> list[int]:
        """Seal every pending reading into envelopes; returns their seqs."""
        seqs = []
        while (
            env := self.outbox.seal_next(self._seal, self.epoch, self.config.batch_max_readings)
        ) is not None:
            seqs.append(env.seq)
        return seqs

    def enforce_bounds(self) -> Eviction:
        bounds = self.config.outbox
        eviction = self.outbox.enforce(bounds.max_bytes, bounds.max_age_days * 86_400)
        if eviction.readings:
            log.error(
                "outbox full: evicted %d readings in %d envelopes (oldest first)",
                eviction.readings,
                eviction.envelopes,
            )
        used = self.outbox.disk_bytes()
        alarm = used > bounds.alarm_fraction * bounds.max_bytes or bool(eviction.readings)
        if alarm and not self.outbox_alarm:
            log.warning("outbox alarm: %d of %d bytes used", used, bounds.max_bytes)
        self.outbox_alarm = alarm
        return eviction

    def pump(self) -> int:
        """Seal what is pending, publish the new envelopes, and feed the backlog (older
        unacknowledged envelopes) at the configured rate; returns envelopes handed over."""
        self._live.update(self.seal_pending())
        self.enforce_bounds()
        if not self.publisher.connected.is_set():
            return 0
        in_flight = self.publisher.inflight_seqs()
        self._live -= in_flight
        unacked = [e for e in self.outbox.unacked(limit=10_000) if e.seq not in in_flight]
        live = [e for e in unacked if e.seq in self._live]
        now = time.monotonic()
        rate = self.config.outbox.backlog_envelopes_per_s
        self._backlog_credit = min(
            self._backlog_credit + (now - self._backlog_at) * rate, max(rate, 1.0)
        )
        self._backlog_at = now
        room = max(MAX_IN_FLIGHT - len(in_flight), 0)
        sent = 0
        for env in live[:room]:
            self.publisher.publish(env)
            self._live.discard(env.seq)
            sent += 1
        live_seqs = {e.seq for e in live}
        backlog = [e for e in unacked if e.seq not in self._live and e.seq not in live_seqs]
        for env in backlog[: min(int(self._backlog_credit), room - sent)]:
            self.publisher.publish(env)
            self._backlog_credit -= 1
            sent += 1
        return sent

    # -- health -------------------------------------------------------------------------

    def health(self) -> HealthPayload:
        depth = self.outbox.depth()
        meters = []
        for state in self.lines:
            sidelined = set(state.availability.sidelined())
            for m in state.meters:
                h = state.availability.health(m.id)
                last_good = (
                    None
                    if h.last_good is None
                    else datetime.fromtimestamp(time.time() - (time.monotonic() - h.last_good), UTC)
                )
                meters.append(
                    MeterHealth(
                        meter=m.id,
                        line=state.reader.line.name,
                        reads=h.reads,
                        failures=h.failures,
                        consecutive_failures=h.consecutive_failures,
                        sidelined=m.id in sidelined,
                        last_good=last_good,
                    )
                )
        return HealthPayload(
            gateway=self.config.gateway,
            kid=self.identity.kid,
            sent_at=self.now(),
            epoch=self.epoch,
            clock=ClockState(self.config.clock),
            uptime_s=time.monotonic() - self.counters.started,
            rounds=self.counters.rounds,
            overruns=self.counters.overruns,
            outbox=OutboxHealth(
                pending_readings=depth.pending_readings,
                unacked_envelopes=depth.unacked_envelopes,
                oldest_age_s=depth.oldest_age_s,
                disk_bytes=depth.disk_bytes,
                max_bytes=self.config.outbox.max_bytes,
                evicted_readings=depth.evicted_readings,
                alarm=self.outbox_alarm,
            ),
            lines=[
                LineHealth(
                    line=s.reader.line.name, utilisation=s.utilisation, last_round_s=s.last_round_s
                )
                for s in self.lines
            ],
            meters=meters,
        )

    # -- the schedule -------------------------------------------------------------------

    async def run(
        self,
        stop: asyncio.Event,
        *,
        rounds: int | None = None,
        on_round: Callable[[RoundReport], None] | None = None,
    ) -> None:
        """Poll on schedule until ``stop`` is set (or ``rounds`` rounds ran); between rounds
        keep pumping the outbox, so acknowledged envelopes make room for the backlog."""
        step = self.tick_step()
        next_tick = math.ceil(time.time() / step) * step
        next_sync = time.monotonic() if self.config.time_sync_interval_s else math.inf
        done = 0
        while not stop.is_set() and (rounds is None or done < rounds):
            while (wait := next_tick - time.time()) > 0 and not stop.is_set():
                self.pump()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), min(wait, 0.5))
            if stop.is_set():
                break
            if time.monotonic() >= next_sync:
                await self.sync_time()
                next_sync = time.monotonic() + self.config.time_sync_interval_s
            report = await self.poll_round(next_tick)
            self.pump()
            done += 1
            if on_round is not None:
                on_round(report)
            following = next_tick + step
            if time.time() >= following:
                missed = int((time.time() - next_tick) // step)
                self.counters.overruns += missed
                log.warning("round %s overran by %d interval(s)", report.round_id, missed)
                following = math.ceil(time.time() / step) * step
            next_tick = following

    async def close(self) -> None:
        await close_all([s.reader for s in self.lines])
