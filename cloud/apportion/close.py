"""The monthly close: from the registry's site set-up and the series store's readings to a
stored draft run (docs/monthly-close.md).

:func:`close_period` builds the engine's case for one site and period [start, end) of the
site's calendar:

- the site half from the registry (:func:`cloud.apportion.configuration.stored_site`);
- the utility company's bill as given (the case file's ``bill`` section);
- the readings: every point stamped exactly at a local midnight of the period (a freeze
  snapshot or a manual read). At the days the engine cuts the period at (its start and
  end, and every tariff, occupancy, installation and multiplier date inside it) a meter
  without such a point gets a value interpolated linearly in time between its nearest
  points within :data:`INTERPOLATION_WINDOW` on either side, marked ``estimated`` with
  method ``interpolated``; otherwise it is missing there and the case's estimation rules
  apply (between readings the engine prorates by days), the meter's ``history`` being its
  average daily use over the :data:`HISTORY_DAYS` days before the period;
- register ``r`` is read from the wire quantity the site file maps it to (``total`` from
  ``energy_import``, ``T1``…``T4`` from ``energy_import_t1``…``_t4``). Stored values are
  primary-side — the gateway multiplies by its CT × PT, and a manual read is entered the
  same way — so each is divided by the site file's multiplier in force that day to give the
  register the case file holds (the engine multiplies again);
- the formula drivers' daily values from the registry (``meterflow cloud drivers import``).

It runs the engine once and stores a draft run with its input snapshot and hashes. Closing
the same site and period again (after a manual reading, a corrected site file or an accepted
estimate) stores a new version linked to the one it supersedes, which is voided with that
reason; a posted period is never closed again (corrections are adjustment lines).
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.apportion.case.document import Case
from cloud.apportion.case.loading import case_from_data
from cloud.apportion.close_readings import (
    boundary_days,
    boundary_readings,
    installed_on,
    meter_history,
    multiplier_on,
)
from cloud.apportion.drivers import load_drivers
from cloud.apportion.engine_result import EngineResult
from cloud.apportion.errors import ApportionError
from cloud.apportion.models import ApportionRun, SiteSettings, TariffVersionRow
from cloud.apportion.runs import RunStatus, store_run, stored_bill, void_run
from cloud.apportion.site import case_data
from cloud.apportion.site_export import stored_site
from cloud.registry.models import Site
from cloud.series.base import SeriesStore
from cloud.staff.accounts import FINANCE_ROLES, Principal
from cloud.staff.audit import record
from edge.wire import Clock, utc_now

#: Largest register value entered by hand [register unit] (meters show at most 8 digits).
MAX_DISPLAY = Decimal(10) ** 10
#: Longest period one close covers [days].
MAX_PERIOD_DAYS = 366


class CloseRefused(ApportionError):
    """The close cannot run: bad period, no site file, bad bill, posted period ...

    The message is English (commands, the API); ``code`` and ``params`` say the same for a
    page to word in its reader's language (codes: ``accept_unknown``, ``period_order``,
    ``period_long``, ``no_site_file``, ``posted``, ``role``, ``not_your_site``,
    ``no_series``, ``no_run``, ``not_lacking``, ``reading_number``, ``reading_range``;
    ``""`` for anything else)."""

    def __init__(self, message: str, code: str = "", **params: Any) -> None:
        super().__init__(message)
        self.code = code
        self.params = params


@dataclass(frozen=True)
class ClosedRun:
    """A stored draft run, with the case and the engine's result it was computed from."""

    run: ApportionRun
    case: Case
    result: EngineResult
    superseded: str | None
    interpolated: int
    missing: list[tuple[str, str]]  # (meter, day) with no reading to use


def _csv_text(text: str) -> str:
    """A free-text CSV field: one line, bounded, quoted."""
    flat = " ".join(text.split())[:200]
    return '"' + flat.replace('"', '""') + '"'


#: The one holding flag a person may accept at close: estimates over a node's limit.
ACCEPTABLE = "estimates_over_limit"


def _flag_node(flag: Mapping[str, Any]) -> str:
    """The node a stored flag is about (its subject reads ``node N``)."""
    return str(flag["subject"]).removeprefix("node ")


def _accept_estimates(run: ApportionRun, accept: Sequence[tuple[str, str]], by: str) -> None:
    reasons = dict(accept)
    flags = [dict(f) for f in run.flags]
    used = set()
    for flag in flags:
        node = _flag_node(flag)
        if flag["code"] == ACCEPTABLE and node in reasons:
            flag.update(holds=False, accepted_by=by, accepted_reason=reasons[node])
            used.add(node)
    unknown = sorted(reasons.keys() - used)
    if unknown:
        held = sorted(_flag_node(f) for f in run.flags if f["code"] == ACCEPTABLE)
        raise CloseRefused(
            f"--accept-estimates: no estimates over the limit at {', '.join(unknown)} "
            f"(the run has them at: {', '.join(held) or 'none'})",
            "accept_unknown",
            nodes=unknown,
            held=held,
        )
    run.flags = flags
    run.held = any(f["holds"] for f in flags)


def _previous_runs(session: Session, site_id: str, start: date, end: date) -> list[ApportionRun]:
    return list(
        session.scalars(
            select(ApportionRun)
            .where(
                ApportionRun.site_id == site_id,
                ApportionRun.period_start == start,
                ApportionRun.period_end == end,
            )
            .order_by(ApportionRun.created_at)
        )
    )


def close_period(
    session: Session,
    store: SeriesStore,
    *,
    site_id: str,
    start: date,
    end: date,
    bill: Mapping[str, Any],
    by: str,
    drivers: Mapping[str, Mapping[date, Any]] | None = None,
    accept: Sequence[tuple[str, str]] = (),
    clock: Clock = utc_now,
) -> ClosedRun:
    """Close ``site_id`` over [start, end) against ``bill``; store and return a draft run.

    ``drivers`` default to the formula drivers' values imported for the site
    (``meterflow cloud drivers import``). ``accept`` lists (node, reason): that node's
    estimates over the limit are accepted, so its ``estimates_over_limit`` flag no longer
    holds the run (kept with who and why).

    Raises CloseRefused (period, site, a posted period) or CaseError (bill, readings, site
    data), naming the item; nothing is stored then.

    The cyclic garbage collector is paused meanwhile (:func:`cyclic_gc_paused`).
    """
    with cyclic_gc_paused():
        return _close_period(
            session,
            store,
            site_id=site_id,
            start=start,
            end=end,
            bill=bill,
            by=by,
            drivers=drivers,
            accept=accept,
            clock=clock,
        )


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for one close (decision 0027).

    A close of 10,000 units allocates millions of short-lived objects (readings, lines,
    statements) and makes no reference cycles of note; reference counting frees them. With
    the collector on, its full collections rescanned that whole growing heap again and
    again: about a quarter of the close. It is switched on again afterwards (if it was on),
    and collects whatever cycles there were then. Process-wide: other threads of a server
    run those seconds without it too."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def _close_period(
    session: Session,
    store: SeriesStore,
    *,
    site_id: str,
    start: date,
    end: date,
    bill: Mapping[str, Any],
    by: str,
    drivers: Mapping[str, Mapping[date, Any]] | None,
    accept: Sequence[tuple[str, str]],
    clock: Clock,
) -> ClosedRun:
    if not start < end:
        raise CloseRefused(
            f"period: --to {end} must be after --from {start}", "period_order", start=start, end=end
        )
    if (end - start).days > MAX_PERIOD_DAYS:
        days = (end - start).days
        raise CloseRefused(
            f"period: {days} days; one close covers at most {MAX_PERIOD_DAYS}",
            "period_long",
            days=days,
            most=MAX_PERIOD_DAYS,
        )
    try:
        # the site's cross-field checks run once, on the whole case below
        site = stored_site(session, site_id, cross_checks=False)
    except LookupError as exc:
        raise CloseRefused(
            f"{exc}; import one with: meterflow cloud site import", "no_site_file", site=site_id
        ) from None
    earlier = _previous_runs(session, site_id, start, end)
    posted = [r for r in earlier if r.status == RunStatus.POSTED.value]
    if posted:
        raise CloseRefused(
            f"site {site_id} {start} … {end} is posted already (run {posted[0].id}); "
            "a correction is carried by a later run as adjustment lines",
            "posted",
            site=site_id,
            start=start,
            end=end,
            run=posted[0].id,
        )
    readings, interpolated, missing = boundary_readings(store, site, start, end)
    history = meter_history(store, site, start, [meter for meter, _day in missing])
    if drivers is None:
        used = {n.rule.formula.driver for n in site.schema.tree if n.rule and n.rule.formula}
        stored = load_drivers(session, site_id, start, end)
        drivers = {d: stored.get(d, {}) for d in sorted(used)}
    data = case_data(
        site.case_sections(),
        start,
        end,
        readings=readings,
        bill=bill,
        drivers=drivers,
        history=history,
    )
    case = case_from_data(data, f"close of site {site_id}")
    superseded = next((r for r in reversed(earlier) if r.status != RunStatus.VOID.value), None) or (
        earlier[-1] if earlier else None
    )
    run, result = store_run(session, case, by=by, clock=clock)
    if accept:
        _accept_estimates(run, accept, by)
    run.version = (max((r.version for r in earlier), default=0)) + 1
    run.supersedes_id = superseded.id if superseded is not None else None
    for old in earlier:
        if old.status != RunStatus.VOID.value:
            void_run(
                session,
                old.id,
                by=by,
                reason=f"superseded by run {run.id} (version {run.version})",
                clock=clock,
            )
    record(
        session,
        at=clock(),
        actor=by,
        action="run.close",
        subject=f"run:{run.id}",
        detail=(
            f"site {site_id} {start} … {end} version {run.version}"
            + (f", supersedes {run.supersedes_id}" if run.supersedes_id else "")
            + f"; {interpolated} interpolated, {len(missing)} missing boundary readings"
            + "".join(f"; estimates at {node} accepted: {why}" for node, why in accept)
        ),
    )
    session.flush()
    return ClosedRun(run, case, result, run.supersedes_id, interpolated, missing)


@dataclass(frozen=True)
class ClosableSite:
    """A site with an imported site file: id, display name, registers."""

    id: str
    name: str
    registers: list[str]
    demand: bool


class CloseService:
    """The close for the pages and the API: scope checks over :func:`close_period`.

    ``series`` opens the configured series store for one close (None: this server has
    none, and closing is refused with that reason).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        series: Callable[[], SeriesStore] | None,
        clock: Clock = utc_now,
    ) -> None:
        self.sessions = sessions
        self.series = series
        self.clock = clock

    def sites(self, who: Principal) -> list[ClosableSite]:
        """Sites in scope with an imported site file, by id."""
        with self.sessions() as session:
            rows = session.execute(
                select(Site.id, Site.name, SiteSettings.registers)
                .join(SiteSettings, SiteSettings.site_id == Site.id)
                .order_by(Site.id)
            ).all()
            two_part = set(
                session.scalars(
                    select(TariffVersionRow.site_id).where(TariffVersionRow.kind == "two_part")
                )
            )
        return [
            ClosableSite(i, n or i, list(r), i in two_part) for i, n, r in rows if who.may_act_on(i)
        ]

    def close(
        self,
        who: Principal,
        *,
        site_id: str,
        start: date,
        end: date,
        bill: Mapping[str, Any],
        accept: Sequence[tuple[str, str]] = (),
    ) -> ClosedRun:
        """Close as ``who`` (CloseRefused for a role other than admin or finance, outside
        their sites, or without a series store)."""
        if who.role not in FINANCE_ROLES:
            raise CloseRefused(
                f"{who.username!r} has the {who.role.value} role; closing a month takes an "
                "admin or finance account",
                "role",
                account=who.username,
                role=who.role.value,
            )
        if not who.may_act_on(site_id):
            raise CloseRefused(
                f"site {site_id!r} is not one of your sites", "not_your_site", site=site_id
            )
        if self.series is None:
            raise CloseRefused(
                "this server has no series store configured; it cannot close", "no_series"
            )
        store = self.series()
        try:
            with self.sessions.begin() as session:
                return close_period(
                    session,
                    store,
                    site_id=site_id,
                    start=start,
                    end=end,
                    bill=bill,
                    by=who.username,
                    accept=accept,
                    clock=self.clock,
                )
        finally:
            store.close()

    def _run(self, session: Session, who: Principal, run_id: str) -> ApportionRun:
        run = session.get(ApportionRun, run_id)
        if run is None or not who.may_act_on(run.site_id):
            raise CloseRefused(f"no run {run_id!r} in your sites", "no_run", run=run_id)
        return run

    def remedies(self, who: Principal, run_id: str) -> Remedies:
        """What fixes the held run ``run_id`` (see :class:`Remedies`)."""
        with self.sessions() as session:
            return remedies(session, self._run(session, who, run_id))

    def enter_reading(
        self, who: Principal, run_id: str, meter: str, day: date, display: str, note: str = ""
    ) -> Decimal:
        """Store a manual read (人工抄表) of ``meter`` at ``day``'s local midnight, as read on
        its display (``display`` [register unit]); stored × the meter's multiplier, source
        ``manual``, by ``who``. Returns the stored (primary-side) value.

        CloseRefused for a meter or day the run did not lack, or a bad number; the store's
        own checks (conflicting value, bounds) refuse with ImportRefused.
        """
        from cloud.series.manual import import_readings_data

        if who.role not in FINANCE_ROLES:
            raise CloseRefused(
                f"the {who.role.value} role may not enter readings",
                "role",
                account=who.username,
                role=who.role.value,
            )
        if self.series is None:
            raise CloseRefused("this server has no series store configured", "no_series")
        with self.sessions() as session:
            found = remedies(session, self._run(session, who, run_id))
            site = stored_site(session, found.site)
        lacking = {(m.meter, m.day): m for m in found.missing}
        if (meter, day) not in lacking:
            raise CloseRefused(
                f"run {run_id} does not lack a reading of {meter!r} on {day}",
                "not_lacking",
                run=run_id,
                meter=meter,
                day=day,
            )
        try:
            value = Decimal(display.strip())
        except ArithmeticError:
            raise CloseRefused(
                f"reading: {display[:40]!r} is not a number", "reading_number", value=display[:40]
            ) from None
        if not value.is_finite() or not 0 <= value < MAX_DISPLAY:
            raise CloseRefused(
                f"reading: expected a number from 0 to {MAX_DISPLAY}",
                "reading_range",
                most=MAX_DISPLAY,
            )
        primary = value * lacking[(meter, day)].multiplier
        at = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(site.schema.timezone))
        quantity = site.schema.quantity(site.schema.registers[0])
        text = "meter,quantity,read_at,value,note\r\n" + ",".join(
            [meter, quantity, at.isoformat(), format(primary, "f"), _csv_text(note)]
        )
        store = self.series()
        try:
            with self.sessions.begin() as session:
                import_readings_data(
                    store,
                    session,
                    text.encode(),
                    f"run {run_id}",
                    who.username,
                    self.clock(),
                    site=found.site,
                )
                record(
                    session,
                    at=self.clock(),
                    actor=who.username,
                    action="reading.manual",
                    subject=f"run:{run_id}",
                    detail=f"{meter} {day} display {value} × {lacking[(meter, day)].multiplier}",
                )
        finally:
            store.close()
        return primary

    def close_again(
        self, who: Principal, run_id: str, accept: Sequence[tuple[str, str]] = ()
    ) -> ClosedRun:
        """Close the run's site and period again with its own bill: a new version."""
        with self.sessions() as session:
            run = self._run(session, who, run_id)
            bill = stored_bill(session, run.id)
            site_id, start, end = run.site_id, run.period_start, run.period_end
        bill = {k: v for k, v in bill.items() if v is not None}
        return self.close(who, site_id=site_id, start=start, end=end, bill=bill, accept=accept)


@dataclass(frozen=True)
class MissingReading:
    """A boundary reading a held run lacked: meter, local day, its multiplier (CT × PT)."""

    meter: str
    day: date
    multiplier: Decimal


@dataclass(frozen=True)
class Remedies:
    """What fixes a held run: the readings it lacked at the engine's cut days (enter them by
    hand), the nodes whose estimates over the limit may be accepted with a reason, and
    closing again (with the run's own period and bill) as a new version."""

    run_id: str
    site: str
    start: date
    end: date
    missing: list[MissingReading]
    acceptable: list[str]
    #: False for a run of a site without an imported site file (a run made from a case
    #: file): nothing here applies; the case is corrected and run again, or the run voided
    closable: bool = True


def remedies(session: Session, run: ApportionRun) -> Remedies:
    """The remedies of ``run`` (from its stored inputs and the site's current set-up)."""
    inputs = json.loads(run.inputs)
    start, end = run.period_start, run.period_end
    try:
        site = stored_site(session, run.site_id)
    except LookupError:
        return Remedies(run.id, run.site_id, start, end, [], [], closable=False)
    by_id = {m.id: m for m in site.schema.meters}
    have = {m: set(series) for m, series in inputs.get("readings", {}).items()}
    missing = [
        MissingReading(meter, day, multiplier_on(by_id[meter], day))
        for day in boundary_days(site, start, end)
        for meter in sorted(by_id)
        if installed_on(by_id[meter], day, start, end)
        and day.isoformat() not in have.get(meter, set())
    ]
    acceptable = sorted(_flag_node(f) for f in run.flags if f["code"] == ACCEPTABLE and f["holds"])
    return Remedies(run.id, run.site_id, start, end, missing, acceptable)
