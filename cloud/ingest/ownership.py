"""Which meters a site's gateways may report: the site's rows in the registry's ``meters`` table.

A person puts them there (``meterflow cloud site import``, or ``register_meter`` when a site is
set up in code, as the demo does); a gateway's own configuration or health report never does
(docs/decisions/0015-meter-ownership.md). A site with no meter rows at all is not checked yet
(a gateway may be commissioned before the site file is imported): its gateways' readings are
accepted and ``meterflow cloud site check`` says so.

The sets are cached per site like the ingest's key cache: a hit is trusted for ``cache_s``
seconds, so a meter removed from the registry is refused within that time; a meter not in the
cached set makes the set be read again (at most once per ``miss_refresh_s`` seconds per site),
so a meter just imported is accepted at once and a flood of foreign ids costs at most one
query per site and ``miss_refresh_s``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from cloud.registry.service import site_meters


@dataclass(frozen=True)
class _Entry:
    read_at: float  # clock seconds
    meters: frozenset[str]


class MeterOwnership:
    """``not_owned(site, meters)``: the meters a gateway of ``site`` may not report;
    thread-safe, reads the registry through ``registry`` (see the module for the cache)."""

    def __init__(
        self,
        registry: sessionmaker[Session],
        *,
        cache_s: float = 30.0,
        miss_refresh_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.cache_s = cache_s
        self.miss_refresh_s = miss_refresh_s
        self._clock = clock
        self._lock = threading.Lock()
        self._sites: dict[str, _Entry] = {}

    def _read(self, site: str, now: float) -> _Entry:
        with self.registry() as session:
            entry = _Entry(now, site_meters(session, site))
        with self._lock:
            self._sites[site] = entry
        return entry

    def not_owned(self, site: str, meters: Iterable[str]) -> list[str]:
        """The ids among ``meters`` (sorted) that ``site`` does not own; none when the site
        has no meters configured at all (not checked yet)."""
        wanted = set(meters)
        now = self._clock()
        with self._lock:
            entry = self._sites.get(site)
        if entry is None or now - entry.read_at >= self.cache_s:
            entry = self._read(site, now)
        stray = wanted - entry.meters
        if stray and entry.meters and now - entry.read_at >= self.miss_refresh_s:
            entry = self._read(site, now)  # a meter imported since the set was read
            stray = wanted - entry.meters
        if not entry.meters:
            return []
        return sorted(stray)
