"""Gateways' health as the engineer pages show it: ingest of the health and state topics into
``gateway_status``, and the read side (gateways with online/offline, last seen, outbox depth
and the age of its oldest item, per-meter health).

Health (``{prefix}/{site}/{gateway}/up/health``) is a JWS envelope signed with the gateway's
key, like its readings: it is verified with the registered key (known, not revoked, the
payload naming the key's gateway, the topic naming the key's site and gateway) before
anything of it is stored. State (``.../state``) is the retained ``online`` birth message or
the ``offline`` last will the broker publishes when the gateway's connection is lost; a will
cannot be signed (the broker sends it), so the broker's ACL (only the gateway's own broker
user writes ``{prefix}/{site}/{gateway}/state``, deploy/mosquitto/meterflow.acl) is what makes
it trustworthy; it is accepted only for registered gateways of the site in the topic, and
only when the broker can vouch for it: :class:`cloud.gateways.feed.GatewayFeed` does not
subscribe to state on a broker that admits anonymous clients (decision 0016).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.gateways.models import GatewayCommandRecord, GatewayStatus
from cloud.registry.base import as_utc
from cloud.registry.models import Gateway
from cloud.registry.service import (
    EnvelopeRefused,
    find_key,
    open_gateway_envelope,
    site_meters,
)
from cloud.staff.accounts import Principal
from edge.wire import (
    DEFAULT_TOPIC_PREFIX,
    Clock,
    HealthPayload,
    utc_now,
)

log = logging.getLogger(__name__)
#: A gateway whose last health report is older than this is shown as stale (five missed
#: reports at the gateway's default ``health_interval_s`` of 60 s); an offline gateway's
#: health is stale at once (decision 0025).
STALE_AFTER = timedelta(minutes=5)


class HealthRejected(Exception):
    """A health or state message that is not authentic or breaks the contract."""


class UnknownGateway(Exception):
    """No such gateway in the principal's scope."""


@dataclass(frozen=True)
class MeterState:
    """One meter as its gateway last reported it."""

    meter: str
    line: str
    reads: int
    failures: int
    consecutive_failures: int
    sidelined: bool
    last_good: datetime | None
    #: ``sidelined``, ``failing`` (consecutive failures) or ``ok``; derived from the above.
    state: str = field(init=False)
    #: A sidelined meter: the send time of the first health report that showed it sidelined
    #: (the gateway sidelines a meter after 3 failed rounds, for 10 minutes, then retries).
    sidelined_since: datetime | None = None

    def __post_init__(self) -> None:
        ok = "failing" if self.consecutive_failures else "ok"
        object.__setattr__(self, "state", "sidelined" if self.sidelined else ok)


@dataclass(frozen=True)
class GatewayView:
    """A gateway for the engineer pages and API; ``state`` is online, offline, stale or
    unknown; ``lines`` are the gateway's reported line health."""

    id: str
    site: str
    state: str
    last_seen: datetime | None
    state_at: datetime | None
    health_sent_at: datetime | None
    outbox_depth: int | None
    pending_readings: int | None
    unacked_envelopes: int | None
    oldest_age_s: float | None
    outbox_alarm: bool
    evicted_readings: int | None
    uptime_s: float | None
    clock: str | None
    meters: list[MeterState] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    #: New hardware for this gateway awaits an admin's approval (its key is not accepted).
    replacement_pending: bool = False
    #: Seconds since the last health report arrived (None: never); ``health_stale``: the
    #: report is not current (the gateway is offline, or it is older than STALE_AFTER).
    health_age_s: float | None = None
    health_stale: bool = False
    #: Revoked (decision 0043): when, by whom, why (``lost``, ``stolen``, ``decommissioned``,
    #: ``other``) and the note; all None while the gateway holds a live key.
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    revoked_reason: str | None = None
    revoked_note: str | None = None


#: What a command's recorded status shows as: the gateway's answers ``ok`` → acknowledged,
#: ``error``/``refused`` → failed.
_COMMAND_STATES = {"ok": "acknowledged", "error": "failed", "refused": "failed"}


def command_state(status: str, expires_at: datetime | None, now: datetime) -> str:
    """``sent``, ``acknowledged``, ``failed``, ``timed_out`` or ``unsent``: a command still
    ``sent`` after its expiry (its TTL, 300 s unless the API asked otherwise) has timed out,
    because the gateway refuses an expired command; an answer that comes later still counts."""
    if status == "sent":
        return "timed_out" if expires_at is not None and now > expires_at else "sent"
    return _COMMAND_STATES.get(status, status)


@dataclass(frozen=True)
class CommandView:
    """A command sent to a gateway and its answer so far. ``status`` is as recorded (sent,
    unsent, or the gateway's answer: ok, error, refused); ``state`` is what it means now
    (:func:`command_state`)."""

    cmd_id: str
    command: str
    issued_by: str
    issued_at: datetime
    status: str
    detail: str
    state: str = ""
    expires_at: datetime | None = None
    answered_at: datetime | None = None


@dataclass
class HealthStats:
    """Counters since start: accepted health and state messages, rejections by reason."""

    health: int = 0
    states: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


def _topic_parts(prefix: str, topic: str, suffix: tuple[str, ...]) -> tuple[str, str]:
    head = f"{prefix}/"
    parts = topic[len(head) :].split("/") if topic.startswith(head) else []
    if len(parts) != 2 + len(suffix) or tuple(parts[2:]) != suffix or not all(parts[:2]):
        raise HealthRejected(
            f"topic {topic!r}: expected {prefix}/{{site}}/{{gateway}}/" + "/".join(suffix)
        )
    return parts[0], parts[1]


def _status_row(session: Session, site: str, gateway: str) -> GatewayStatus:
    row = session.get(GatewayStatus, gateway)
    if row is None:
        row = GatewayStatus(gateway_id=gateway, site_id=site, meters=[], lines=[])
        session.add(row)
    return row


def _with_sidelined_since(
    before: list[dict[str, Any]], health: HealthPayload
) -> list[dict[str, Any]]:
    """The report's meters as stored, each sidelined one with ``sidelined_since``: carried over
    from the previous report when it was sidelined there too, else this report's send time."""
    earlier = {
        m.get("meter"): m.get("sidelined_since") for m in before if m.get("sidelined") is True
    }
    out = []
    for m in health.meters:
        stored = m.model_dump(mode="json")
        if m.sidelined:
            stored["sidelined_since"] = earlier.get(m.meter) or health.sent_at.isoformat()
        out.append(stored)
    return out


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


class GatewayHealthService:
    """Stores verified health and state messages; lists gateways with their status."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock = utc_now,
        prefix: str = DEFAULT_TOPIC_PREFIX,
        stale_after: timedelta = STALE_AFTER,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.prefix = prefix
        self.stale_after = stale_after
        self.stats = HealthStats()

    # ------------------------------------------------------------------ ingest

    def take_health(self, topic: str, envelope: bytes) -> HealthPayload:
        """Verify and store a health report; HealthRejected (counted) otherwise."""
        try:
            return self._take_health(topic, envelope)
        except HealthRejected as exc:
            self.stats.rejected[str(exc).split(":", 1)[0]] += 1
            raise

    def _take_health(self, topic: str, envelope: bytes) -> HealthPayload:
        site, gateway = _topic_parts(self.prefix, topic, ("up", "health"))
        now = self.clock()
        with self.sessions.begin() as session:
            try:
                known, health = open_gateway_envelope(
                    envelope, HealthPayload, lambda kid: find_key(session, kid)
                )
            except EnvelopeRefused as exc:
                raise HealthRejected(f"{exc.reason}: health on {topic!r}: {exc}") from None
            kid = known.kid
            if (health.gateway, health.kid) != (known.gateway_id, kid) or (site, gateway) != (
                known.site_id,
                known.gateway_id,
            ):
                raise HealthRejected(
                    f"wrong_gateway: health of {health.gateway!r} on {topic!r} signed by key "
                    f"{kid!r} of gateway {known.gateway_id!r} at site {known.site_id!r}"
                )
            row = _status_row(session, site, gateway)
            o = health.outbox
            row.last_seen, row.health_sent_at, row.kid = now, health.sent_at, kid
            row.epoch, row.clock, row.uptime_s = health.epoch, health.clock.value, health.uptime_s
            row.pending_readings, row.unacked_envelopes = o.pending_readings, o.unacked_envelopes
            row.oldest_age_s, row.outbox_alarm = o.oldest_age_s, o.alarm
            row.evicted_readings = o.evicted_readings
            row.meters = _with_sidelined_since(row.meters or [], health)
            row.lines = [x.model_dump(mode="json") for x in health.lines]
            if row.online is None:
                row.online = True
        self.stats.health += 1
        return health

    def take_state(self, topic: str, payload: bytes) -> bool:
        """Store a gateway's ``online``/``offline`` state; return whether it is online."""
        try:
            site, gateway = _topic_parts(self.prefix, topic, ("state",))
            if payload not in (b"online", b"offline"):
                raise HealthRejected(
                    f"malformed: state {payload[:20]!r}: expected online or offline"
                )
            online = payload == b"online"
            now = self.clock()
            with self.sessions.begin() as session:
                registered = session.get(Gateway, gateway)
                if registered is None or registered.site_id != site:
                    raise HealthRejected(f"unknown_gateway: {site}/{gateway} is not registered")
                row = _status_row(session, site, gateway)
                row.online, row.state_at = online, now
                if online:
                    row.last_seen = now
        except HealthRejected as exc:
            self.stats.rejected[str(exc).split(":", 1)[0]] += 1
            raise
        self.stats.states += 1
        return online

    # ------------------------------------------------------------------ read side

    def _view(self, gateway: Gateway, row: GatewayStatus | None, now: datetime) -> GatewayView:
        if row is None:
            return GatewayView(
                gateway.id,
                gateway.site_id,
                "unknown",
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                False,
                None,
                None,
                None,
            )
        seen = as_utc(row.last_seen)
        if row.online is False:
            state = "offline"
        elif row.online is None:
            state = "unknown"
        elif seen is None or now - seen > self.stale_after:
            state = "stale"
        else:
            state = "online"
        depth = (
            None
            if row.pending_readings is None
            else row.pending_readings + (row.unacked_envelopes or 0)
        )
        meters = [
            MeterState(
                m["meter"],
                m["line"],
                m["reads"],
                m["failures"],
                m["consecutive_failures"],
                m["sidelined"],
                _instant(m.get("last_good")),
                _instant(m.get("sidelined_since")) if m["sidelined"] else None,
            )
            for m in row.meters or []
        ]
        health_age = None if seen is None else max((now - seen).total_seconds(), 0.0)
        return GatewayView(
            gateway.id,
            gateway.site_id,
            state,
            seen,
            as_utc(row.state_at),
            as_utc(row.health_sent_at),
            depth,
            row.pending_readings,
            row.unacked_envelopes,
            row.oldest_age_s,
            bool(row.outbox_alarm),
            row.evicted_readings,
            row.uptime_s,
            row.clock,
            meters,
            list(row.lines or []),
            health_age_s=health_age,
            health_stale=state != "online" or health_age is None,
        )

    def gateways(self, who: Principal, site: str | None = None) -> list[GatewayView]:
        """Registered gateways in scope with their status, by site and id."""
        sites = who.site_filter()
        query = (
            select(Gateway, GatewayStatus)
            .outerjoin(GatewayStatus, GatewayStatus.gateway_id == Gateway.id)
            .order_by(Gateway.site_id, Gateway.id)
        )
        if sites is not None:
            query = query.where(Gateway.site_id.in_(sorted(sites)))
        if site:
            query = query.where(Gateway.site_id == site)
        now = self.clock()
        with self.sessions() as session:
            return [self._view(g, s, now) for g, s in session.execute(query).all()]

    def registered_meters(self, site: str) -> frozenset[str]:
        """The meters registered for ``site`` (its site file's); a gateway's readings of any
        other meter are dead-lettered ``meter_not_owned`` — none when the set is empty."""
        with self.sessions() as session:
            return site_meters(session, site)

    def gateway(self, who: Principal, gateway_id: str) -> tuple[GatewayView, list[CommandView]]:
        """One gateway in scope with its latest commands; UnknownGateway otherwise."""
        with self.sessions() as session:
            gateway = session.get(Gateway, gateway_id)
            if gateway is None or not who.may_act_on(gateway.site_id):
                raise UnknownGateway(f"no gateway {gateway_id!r}")
            now = self.clock()
            view = self._view(gateway, session.get(GatewayStatus, gateway_id), now)
            commands = session.scalars(
                select(GatewayCommandRecord)
                .where(GatewayCommandRecord.gateway_id == gateway_id)
                .order_by(GatewayCommandRecord.issued_at.desc())
                .limit(20)
            ).all()
            return view, [
                CommandView(
                    c.cmd_id,
                    c.command,
                    c.issued_by,
                    as_utc(c.issued_at) or c.issued_at,
                    c.status,
                    c.detail,
                    command_state(c.status, as_utc(c.expires_at), now),
                    as_utc(c.expires_at),
                    as_utc(c.answered_at),
                )
                for c in commands
            ]


def meters_reported(session: Session, site_id: str) -> dict[str, str]:
    """Meter id (as in the gateways' site.toml) → the gateway whose latest signed health
    report lists it, for every gateway of ``site_id``."""
    out: dict[str, str] = {}
    for gateway_id, meters in session.execute(
        select(GatewayStatus.gateway_id, GatewayStatus.meters)
        .where(GatewayStatus.site_id == site_id)
        .order_by(GatewayStatus.gateway_id)
    ):
        for m in meters or []:
            out.setdefault(str(m.get("meter")), gateway_id)
    return out
