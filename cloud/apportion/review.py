"""Finance's work on apportionment runs: lists by site and period, a run's meter tree with
each node's balance, the review → approve → post (and void) actions with their audit trail,
the tenants' disputes, and exports (CSV, Excel) of a run's statement lines.

Every call takes the acting :class:`~cloud.staff.accounts.Principal`; a run, statement or dispute of
a site outside the principal's scope is reported as not found. The state machine itself is
:mod:`cloud.apportion.runs`; this module adds who may call it and the audit entries.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cloud.apportion.balances import NodeBalance, tree_balances
from cloud.apportion.case.document import Case
from cloud.apportion.engine_result import EngineResult
from cloud.apportion.errors import (
    ApportionError,
    FourEyesError,
    MissingReasonError,
    RunHeldError,
    SignatureError,
    WrongStateError,
)
from cloud.apportion.exports import (
    ExportLine,
    NodeRow,
    RunFacts,
    SiteNames,
    StatementTotal,
    export_lines,
    lines_csv,
    run_workbook,
)
from cloud.apportion.models import (
    ApportionDraft,
    ApportionLine,
    ApportionRun,
    ApportionStatement,
    StatementDispute,
)
from cloud.apportion.reconcile import LineSum, RegisterReconciliation, bill_cents, reconcile
from cloud.apportion.run_statements import statement_totals
from cloud.apportion.runs import (
    approve_run,
    post_run,
    rerun,
    review_run,
    stored_bill,
    stored_records,
    void_run,
)
from cloud.apportion.statement import (
    SignedStatement,
    build_statements,
    verify_statement,
)
from cloud.apportion.trail import merge_trail
from cloud.registry.base import as_utc
from cloud.staff.accounts import FINANCE_ROLES, Principal
from cloud.staff.audit import AuditRecord, entries_for, record
from edge.wire import Clock, utc_now

_TREE_CACHE = 32
#: (session, run, its stored nodes) → the nodes and statements a view of the run shows
PickRows = Callable[
    [Session, ApportionRun, list[dict[str, Any]]], tuple[list[NodeBalance], list[StatementTotal]]
]


def _everything(
    session: Session, run: ApportionRun, stored: list[dict[str, Any]]
) -> tuple[list[NodeBalance], list[StatementTotal]]:
    """Every node and every statement of the run (the JSON API's view)."""
    return [NodeBalance(**n) for n in stored], statement_totals(session, run.id)


class ReviewError(Exception):
    """Base of the errors of finance's actions."""


class NotFound(ReviewError):
    """No such run, statement or dispute in the principal's scope."""


class ActionRefused(ReviewError):
    """The run's state does not allow the action (or a holding flag stops it). The message
    is English; ``code`` and ``params`` say the same for a page to word in its language
    (codes: ``role``, ``no_key``, ``four_eyes``, ``held``, ``state``, ``void_reason``,
    ``dispute_answer``, ``dispute_done``, ``""`` for anything else)."""

    def __init__(self, message: str, code: str = "", **params: Any) -> None:
        super().__init__(message)
        self.code = code
        self.params = params

    @classmethod
    def from_error(cls, exc: ApportionError) -> ActionRefused:
        """The refusal for a run's own error (its state machine, its holding flags)."""
        if isinstance(exc, FourEyesError):
            return cls(str(exc), "four_eyes", account=exc.account, did=exc.did)
        if isinstance(exc, RunHeldError):
            return cls(str(exc), "held", holding=exc.holding)
        if isinstance(exc, WrongStateError):
            return cls(str(exc), "state", status=exc.status, expected=exc.expected, to=exc.to)
        if isinstance(exc, MissingReasonError):
            return cls(str(exc), "void_reason")
        return cls(str(exc))


class RunAction(StrEnum):
    """What finance does to a run."""

    REVIEW = "review"
    APPROVE = "approve"
    POST = "post"
    VOID = "void"


@dataclass(frozen=True)
class RunSummary:
    """A run in a list: site, period, state, hold, totals."""

    id: str
    site: str
    period_start: date
    period_end: date
    status: str
    held: bool
    flags: int
    total_cents: int
    created_at: datetime


@dataclass(frozen=True)
class RunDetail:
    """A run for its review page."""

    run: RunSummary
    input_hash: str
    result_hash: str
    flags: list[dict[str, Any]]
    nodes: list[NodeBalance]
    statements: list[StatementTotal]
    trail: list[AuditRecord]
    recompute_error: str = ""
    #: per register: the utility bill against Σ lines (own use, shared, loss)
    reconciliation: list[RegisterReconciliation] = field(default_factory=list)


@dataclass(frozen=True)
class DisputeItem:
    """An entry of the disputes queue."""

    id: int
    run_id: str
    site: str
    period_start: date
    unit: str
    party: str
    comment: str
    opened_at: datetime
    status: str
    resolved_by: str | None
    resolution: str | None


class RunReviewService:
    """Finance's services over runs, statements and disputes."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        signing_key: Ed25519PrivateKey | None,
        public_key: Ed25519PublicKey,
        clock: Clock = utc_now,
        tenant_names: Callable[[Iterable[str]], Mapping[str, str]] | None = None,
    ) -> None:
        self.sessions = sessions
        self.signing_key = signing_key
        self.public_key = public_key
        self.clock = clock
        #: parties → tenants' display names, from whoever keeps tenants (the leases; given
        #: by the composition, since apportionment does not import leases); none by default
        self.tenant_names = tenant_names or (lambda _parties: {})
        self._computed: OrderedDict[tuple[str, str], tuple[Case, EngineResult]] = OrderedDict()
        self._lock = threading.Lock()  # the cache is shared by the server's threads

    # ------------------------------------------------------------------ reading

    def _run(self, session: Session, who: Principal, run_id: str) -> ApportionRun:
        run = session.get(ApportionRun, run_id)
        if run is None or not who.may_act_on(run.site_id):
            raise NotFound(f"no run {run_id!r}")
        return run

    def list_runs(
        self, who: Principal, *, site: str | None = None, period: str | None = None
    ) -> list[RunSummary]:
        """Runs in scope, held ones first, then newest period first; ``period`` is
        ``YYYY-MM`` (the month the period starts in)."""
        sites = who.site_filter()
        totals = (
            select(ApportionLine.run_id, func.sum(ApportionLine.cents).label("cents"))
            .group_by(ApportionLine.run_id)
            .subquery()
        )
        query = select(ApportionRun, func.coalesce(totals.c.cents, 0)).outerjoin(
            totals, totals.c.run_id == ApportionRun.id
        )
        if sites is not None:
            query = query.where(ApportionRun.site_id.in_(sorted(sites)))
        if site:
            query = query.where(ApportionRun.site_id == site)
        if period:
            try:
                first = date.fromisoformat(f"{period}-01")
            except ValueError:
                raise NotFound(f"period {period!r}: expected YYYY-MM") from None
            nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
            query = query.where(ApportionRun.period_start >= first, ApportionRun.period_start < nxt)
        with self.sessions() as session:
            rows = session.execute(query).all()
        out = [self._summary(run, int(cents)) for run, cents in rows]
        out.sort(
            key=lambda r: (
                not (r.held and r.status not in ("posted", "void")),
                -r.period_start.toordinal(),
                r.site,
                r.id,
            )
        )
        return out

    @staticmethod
    def _summary(run: ApportionRun, cents: int) -> RunSummary:
        return RunSummary(
            run.id,
            run.site_id,
            run.period_start,
            run.period_end,
            run.status,
            bool(run.held),
            len(run.flags or []),
            cents,
            as_utc(run.created_at) or run.created_at,
        )

    def _compute(self, session: Session, run: ApportionRun) -> tuple[Case, EngineResult]:
        """A run created before it stored its statements and balances (revision 0009),
        recomputed from its stored inputs (cached)."""
        key = (run.id, run.input_hash)
        found = self._computed.get(key)
        if found is None:
            found = rerun(session, run.id)
            with self._lock:
                self._computed[key] = found
                while len(self._computed) > _TREE_CACHE:
                    self._computed.popitem(last=False)
        return found

    def run_detail(self, who: Principal, run_id: str) -> RunDetail:
        """The run with its tree balances, statements, and audit trail."""
        return self.detail_with(who, run_id, _everything)

    def detail_with(self, who: Principal, run_id: str, pick: PickRows) -> RunDetail:
        """The run with the tree nodes and statements ``pick`` chooses: it is given the
        session, the run and its nodes as stored (dicts of :class:`NodeBalance`'s fields,
        depth-first) and returns the nodes and statements to keep. The total, flags, trail
        and reconciliation are the whole run's whatever it picks."""
        with self.sessions() as session:
            run = self._run(session, who, run_id)
            cents = (
                session.scalar(
                    select(func.coalesce(func.sum(ApportionLine.cents), 0)).where(
                        ApportionLine.run_id == run_id
                    )
                )
                or 0
            )
            stored: list[dict[str, Any]] = []
            error = ""
            if run.balances is not None:  # stored when the run was created
                stored = json.loads(run.balances)
            else:
                try:
                    _, result = self._compute(session, run)
                    stored = [vars(n) for n in tree_balances(result)]
                except ApportionError as exc:
                    error = str(exc)
            roots = [NodeBalance(**n) for n in stored if n["parent"] is None]
            nodes, statements = pick(session, run, stored)
            trail = merge_trail(_run_trail(run), entries_for(session, [f"run:{run.id}"]))
            return RunDetail(
                self._summary(run, int(cents)),
                run.input_hash,
                run.result_hash,
                list(run.flags or []),
                nodes,
                statements,
                trail,
                error,
                self._reconciliation(session, run, roots),
            )

    def _reconciliation(
        self, session: Session, run: ApportionRun, nodes: list[NodeBalance]
    ) -> list[RegisterReconciliation]:
        """Per register: the bill [cents] and the main meter's energy [kWh] (of the roots of
        ``nodes``) against Σ the run's charge lines (adjustments of earlier runs are not
        this bill's)."""
        roots = [n for n in nodes if n.parent is None]
        if any(n.kwh_by_register is None for n in roots):  # stored before it was kept
            try:
                roots = [n for n in tree_balances(self._compute(session, run)[1]) if not n.parent]
            except ApportionError:
                roots = []
        meter: dict[str, Decimal] | None = None
        if roots:
            meter = {}
            for n in roots:
                for register, kwh in (n.kwh_by_register or {}).items():
                    meter[register] = meter.get(register, Decimal(0)) + Decimal(repr(kwh))
        sums = session.execute(
            select(
                ApportionLine.register,
                ApportionLine.component,
                func.sum(ApportionLine.kwh),
                func.sum(ApportionLine.cents),
            )
            .where(ApportionLine.run_id == run.id, ApportionLine.kind == "charge")
            .group_by(ApportionLine.register, ApportionLine.component)
        ).all()
        lines = [LineSum(r, c, Decimal(str(k or 0)), int(m or 0)) for r, c, k, m in sums]
        return reconcile(bill_cents(stored_bill(session, run.id)), meter, lines)

    def statement(
        self, who: Principal, run_id: str, unit: str, party: str
    ) -> tuple[dict[str, Any], dict[str, str] | None]:
        """A statement document of the run and, when posted, its signed form (verified).

        Before posting it is the unsigned document the run stored when it was created.
        """
        with self.sessions() as session:
            run = self._run(session, who, run_id)
            stored = session.get(ApportionStatement, (run_id, unit, party))
            if stored is not None:
                signed = SignedStatement(stored.payload, stored.kid, stored.signature)
                try:
                    return verify_statement(signed, self.public_key), signed.as_dict()
                except SignatureError as exc:
                    raise ActionRefused(f"the stored statement does not verify: {exc}") from None
            draft = session.get(ApportionDraft, (run_id, unit, party))
            if draft is not None:
                return json.loads(draft.payload), None
            if run.balances is not None:  # the run stored its statements: not one of them
                raise NotFound(
                    f"run {run_id!r} has no statement for unit {unit!r}, party {party!r}"
                )
            case, result = self._compute(session, run)
        for document in build_statements(case, result, run_id=run_id):
            node = document["unit"]["node"] if document["unit"] else ""
            if (node, document["party"]) == (unit, party):
                return document, None
        raise NotFound(f"run {run_id!r} has no statement for unit {unit!r}, party {party!r}")

    # ------------------------------------------------------------------ exports

    def _export_lines(
        self, session: Session, run: ApportionRun
    ) -> tuple[list[ExportLine], SiteNames, dict[str, str]]:
        names = SiteNames.from_inputs(run.inputs)
        parties = select(ApportionLine.party).where(ApportionLine.run_id == run.id).distinct()
        tenants = dict(self.tenant_names(set(session.scalars(parties))))
        lines = export_lines(stored_records(session, run.id), names, tenants)
        return lines, names, tenants

    def export_csv(self, who: Principal, run_id: str, labels: Mapping[str, str]) -> bytes:
        """Every stored line of the run (adjustments included: they sum to the run's total)
        as CSV in UTF-8 with a BOM, headers and names in the ``labels``' language
        (:func:`cloud.apportion.exports.lines_csv`)."""
        with self.sessions() as session:
            lines, _, _ = self._export_lines(session, self._run(session, who, run_id))
        return lines_csv(lines, labels)

    def export_xlsx(self, who: Principal, run_id: str, labels: Mapping[str, str]) -> bytes:
        """The run as an Excel workbook: lines and statements with totals rows, the tree's
        balances, the run's facts in the site's local time
        (:func:`cloud.apportion.exports.run_workbook`)."""
        detail = self.run_detail(who, run_id)
        with self.sessions() as session:
            run = self._run(session, who, run_id)
            lines, names, tenants = self._export_lines(session, run)
            facts = RunFacts(
                run.id,
                run.status,
                run.period_start,
                run.period_end,
                run.input_hash,
                [(e.action, e.actor, e.at) for e in _run_trail(run)],
            )
        return run_workbook(
            lines,
            detail.statements,
            [
                NodeRow(
                    n.id,
                    n.kind,
                    n.parent or "",
                    n.kwh,
                    n.children_kwh,
                    n.residual_kwh,
                    n.loss_rate,
                )
                for n in detail.nodes
            ],
            facts,
            names,
            labels,
            tenants,
        )

    # ------------------------------------------------------------------ actions

    def act(self, who: Principal, run_id: str, action: RunAction, reason: str = "") -> str:
        """Move the run (review, approve, post, void); return its new status.

        ActionRefused when the role may not act on runs, or the state machine refuses
        (wrong state, held run, four eyes, no reason); NotFound outside the principal's sites.
        """
        if who.role not in FINANCE_ROLES:
            raise ActionRefused(
                f"{who.username!r} has the {who.role.value} role; "
                f"to {action.value} a run takes an admin or finance account",
                "role",
                account=who.username,
                role=who.role.value,
                action=action.value,
            )
        now = self.clock()
        clock = self._fixed(now)
        try:
            with self.sessions.begin() as session:
                run = self._run(session, who, run_id)
                if action is RunAction.REVIEW:
                    review_run(session, run_id, by=who.username, clock=clock)
                elif action is RunAction.APPROVE:
                    approve_run(session, run_id, by=who.username, clock=clock)
                elif action is RunAction.POST:
                    if self.signing_key is None:
                        raise ActionRefused(
                            "this server has no statement signing key; runs cannot be posted here",
                            "no_key",
                        )
                    post_run(session, run_id, by=who.username, key=self.signing_key, clock=clock)
                else:
                    void_run(session, run_id, by=who.username, reason=reason, clock=clock)
                record(
                    session,
                    at=now,
                    actor=who.username,
                    action=action.value,
                    subject=f"run:{run_id}",
                    detail=reason,
                )
                return run.status
        except ApportionError as exc:
            raise ActionRefused.from_error(exc) from None

    @staticmethod
    def _fixed(now: datetime) -> Clock:
        return lambda: now

    # ------------------------------------------------------------------ disputes

    def disputes(self, who: Principal, status: str | None = "open") -> list[DisputeItem]:
        """The disputes queue in scope, oldest first (all statuses when ``status`` is None)."""
        sites = who.site_filter()
        query = (
            select(StatementDispute, ApportionRun.period_start)
            .join(ApportionRun, ApportionRun.id == StatementDispute.run_id)
            .order_by(StatementDispute.opened_at, StatementDispute.id)
        )
        if sites is not None:
            query = query.where(StatementDispute.site_id.in_(sorted(sites)))
        if status:
            query = query.where(StatementDispute.status == status)
        with self.sessions() as session:
            rows = session.execute(query).all()
        return [
            DisputeItem(
                d.id,
                d.run_id,
                d.site_id,
                start,
                d.unit,
                d.party,
                d.comment,
                as_utc(d.opened_at) or d.opened_at,
                d.status,
                d.resolved_by,
                d.resolution,
            )
            for d, start in rows
        ]

    def resolve_dispute(self, who: Principal, dispute_id: int, resolution: str) -> None:
        """Close an open dispute with finance's answer (shown to the tenant)."""
        text = resolution.strip()
        if not text:
            raise ActionRefused(
                "resolving a dispute needs an answer for the tenant", "dispute_answer"
            )
        now = self.clock()
        with self.sessions.begin() as session:
            dispute = session.get(StatementDispute, dispute_id)
            if dispute is None or not who.may_act_on(dispute.site_id):
                raise NotFound(f"no dispute {dispute_id}")
            if dispute.status != "open":
                raise ActionRefused(
                    f"dispute {dispute_id} is {dispute.status} already",
                    "dispute_done",
                    status=dispute.status,
                )
            dispute.status, dispute.resolved_by = "resolved", who.username
            dispute.resolved_at, dispute.resolution = now, text[:2000]
            record(
                session,
                at=now,
                actor=who.username,
                action="resolve",
                subject=f"run:{dispute.run_id}",
                detail=f"dispute {dispute_id} of unit {dispute.unit}: {text[:200]}",
            )


def _run_trail(run: ApportionRun) -> list[AuditRecord]:
    """The run's own who-did-what-when fields as audit entries."""
    out = []
    for action, by, at in (
        ("create", run.created_by, run.created_at),
        ("reviewed", run.reviewed_by, run.reviewed_at),
        ("approved", run.approved_by, run.approved_at),
        ("posted", run.posted_by, run.posted_at),
        ("voided", run.voided_by, run.voided_at),
    ):
        when = as_utc(at)
        if by and when is not None:
            detail = (run.void_reason or "") if action == "voided" else ""
            out.append(AuditRecord(when, by, action, f"run:{run.id}", detail))
    return out
