"""The gateway's own health where people look: Prometheus on 127.0.0.1, a status file for
``meterflow edge status``, and (through the publisher) the signed health topic.

The metrics are read from the agent at scrape time (a custom collector), so there is one
source of truth and no second set of counters to keep in step.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from edge.wire import HealthPayload


class AgentCollector(Collector):
    """Prometheus view of ``health()`` (a callable returning the current HealthPayload)."""

    def __init__(self, health: Callable[[], HealthPayload]) -> None:
        self.health = health

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        h: HealthPayload = self.health()
        reads = CounterMetricFamily("mf_meter_reads", "Meter reads attempted", labels=["meter"])
        fails = CounterMetricFamily(
            "mf_meter_read_failures", "Meter reads that got no answer", labels=["meter"]
        )
        last = GaugeMetricFamily(
            "mf_meter_last_good_timestamp_seconds",
            "Unix time of the meter's last answered read",
            labels=["meter"],
        )
        side = GaugeMetricFamily(
            "mf_meter_sidelined", "1 while the meter is sidelined", labels=["meter"]
        )
        for m in h.meters:
            reads.add_metric([m.meter], m.reads)
            fails.add_metric([m.meter], m.failures)
            side.add_metric([m.meter], int(m.sidelined))
            if m.last_good is not None:
                last.add_metric([m.meter], m.last_good.timestamp())
        util = GaugeMetricFamily(
            "mf_line_utilisation_ratio", "Busy share of the last round's interval", labels=["line"]
        )
        for line in h.lines:
            util.add_metric([line.line], line.utilisation)
        yield from (reads, fails, last, side, util)
        o = h.outbox
        for name, doc, value in (
            ("mf_outbox_pending_readings", "Readings not yet sealed", o.pending_readings),
            ("mf_outbox_unacked_envelopes", "Envelopes waiting for PUBACK", o.unacked_envelopes),
            ("mf_outbox_oldest_age_seconds", "Age of the oldest outbox item", o.oldest_age_s),
            ("mf_outbox_disk_bytes", "Outbox size on disk", o.disk_bytes),
            ("mf_outbox_max_bytes", "Configured outbox bound", o.max_bytes),
            ("mf_outbox_alarm", "1 when the outbox is near or over its bound", int(o.alarm)),
        ):
            yield GaugeMetricFamily(name, doc, value=value)
        yield CounterMetricFamily(
            "mf_outbox_evicted_readings", "Readings evicted (lost)", value=o.evicted_readings
        )
        yield CounterMetricFamily("mf_rounds", "Polling rounds run", value=h.rounds)
        yield CounterMetricFamily(
            "mf_round_overruns", "Intervals missed by slow rounds", value=h.overruns
        )


def serve_metrics(health: Callable[[], HealthPayload], port: int) -> CollectorRegistry:
    """Expose the agent's metrics on http://127.0.0.1:PORT/metrics."""
    registry = CollectorRegistry()
    registry.register(AgentCollector(health))
    start_http_server(port, addr="127.0.0.1", registry=registry)
    return registry


def write_status(path: Path, health: HealthPayload) -> None:
    """Write the status file atomically (``meterflow edge status`` reads it)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(health.model_dump_json(by_alias=True, indent=1))
    os.replace(tmp, path)


def read_status(path: Path) -> HealthPayload:
    return HealthPayload.model_validate(json.loads(path.read_text()))


def format_status(h: HealthPayload) -> str:
    """A readable summary for a field engineer."""
    o = h.outbox
    lines = [
        f"gateway {h.gateway}  key {h.kid[:12]}…  epoch {h.epoch}  clock {h.clock.value}",
        f"as of {h.sent_at:%Y-%m-%d %H:%M:%S}Z  up {h.uptime_s / 3600:.1f} h  "
        f"rounds {h.rounds}  overruns {h.overruns}",
        f"outbox  {o.pending_readings} pending readings, {o.unacked_envelopes} unacked "
        f"envelopes, oldest {o.oldest_age_s:.0f} s, {o.disk_bytes / 2**20:.1f} of "
        f"{o.max_bytes / 2**20:.0f} MiB"
        + ("  ALARM" if o.alarm else "")
        + (f", {o.evicted_readings} readings evicted" if o.evicted_readings else ""),
    ]
    for line in h.lines:
        lines.append(
            f"line {line.line:12} utilisation {line.utilisation:5.0%}  "
            f"last round {line.last_round_s:.1f} s"
        )
    for m in h.meters:
        state = "SIDELINED" if m.sidelined else ("FAILING" if m.consecutive_failures else "ok")
        last = "never" if m.last_good is None else f"{m.last_good:%H:%M:%S}Z"
        lines.append(
            f"  {m.meter:10} {m.line:12} {state:9} reads {m.reads:6}  "
            f"failures {m.failures:5}  last good {last}"
        )
    return "\n".join(lines)
