"""Runs: compute, store, review, approve, post (signed statements), void, rerun, correct.

A run goes draft → reviewed → approved → posted, and any of them → void. It stores the
canonical JSON of all its inputs (rules and tariff snapshot, readings, bill — the whole
case), their SHA-256 (the input hash), the rounded lines and their SHA-256 (the result
hash), the flags and who did what when. A run with holding flags (negative residual,
estimates over the limit ...) cannot be approved. Posted runs are immutable (see
:mod:`cloud.apportion.models`); a correction is a set of adjustment lines — corrected
minus posted, per line — carried by a later run.

:func:`rerun` recomputes a stored run from its stored inputs and checks that it reproduces
the input hash, the result hash and every line to the cent.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.apportion.case.canonical import canonical_json
from cloud.apportion.case.document import Case
from cloud.apportion.case.loading import case_from_data
from cloud.apportion.engine import apportion
from cloud.apportion.engine_result import EngineResult
from cloud.apportion.errors import RerunMismatchError, RunHeldError, RunStateError
from cloud.apportion.models import ApportionLine, ApportionRun, ApportionStatement
from cloud.apportion.statement import build_statements, line_rows, sign_statement
from cloud.registry.service import ensure_site
from edge.wire import Clock, utc_now


class RunStatus(StrEnum):
    """The states of a run."""

    DRAFT = "draft"
    REVIEWED = "reviewed"
    APPROVED = "approved"
    POSTED = "posted"
    VOID = "void"


@dataclass(frozen=True)
class LineRecord:
    """A stored line: its key, energy [kWh, 6 decimals] and cents; ``adjusts`` names the
    posted run an adjustment line corrects."""

    register: str
    tariff: str
    unit: str
    party: str
    start: str
    end: str
    component: str
    origin: str
    kwh: Decimal
    cents: int
    kind: str = "charge"
    adjusts: str | None = None

    @property
    def key(self) -> tuple[str, ...]:
        return (
            self.register,
            self.tariff,
            self.unit,
            self.party,
            self.start,
            self.end,
            self.component,
            self.origin,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "register": self.register,
            "tariff": self.tariff,
            "unit": self.unit,
            "party": self.party,
            "from": self.start,
            "to": self.end,
            "component": self.component,
            "origin": self.origin,
            "kwh": self.kwh,
            "cents": self.cents,
            "kind": self.kind,
            "adjusts": self.adjusts,
        }


def line_records(result: EngineResult) -> list[LineRecord]:
    """The run's lines as records, in the run's order."""
    return [
        LineRecord(
            r.register,
            r.tariff,
            r.unit,
            r.party,
            r.start,
            r.end,
            r.component,
            r.origin,
            Decimal(f"{r.kwh:.6f}"),
            r.cents,
        )
        for r in line_rows(result)
    ]


def result_hash(records: Iterable[LineRecord]) -> str:
    """SHA-256 (hex) of the canonical JSON of the lines, in order."""
    return hashlib.sha256(canonical_json([r.as_json() for r in records])).hexdigest()


def _get(session: Session, run_id: str) -> ApportionRun:
    run = session.get(ApportionRun, run_id)
    if run is None:
        raise RunStateError(f"run {run_id!r} does not exist")
    return run


def _stored_records(session: Session, run_id: str) -> list[LineRecord]:
    rows = session.scalars(
        select(ApportionLine).where(ApportionLine.run_id == run_id).order_by(ApportionLine.line_no)
    )
    return [
        LineRecord(
            r.register,
            r.tariff,
            r.unit,
            r.party,
            r.from_,
            r.to,
            r.component,
            r.origin,
            Decimal(r.kwh).quantize(Decimal("0.000001")),
            r.cents,
            r.kind,
            r.adjusts_run_id,
        )
        for r in rows
    ]


def create_run(
    session: Session,
    case: Case,
    *,
    by: str,
    adjustments: Iterable[LineRecord] = (),
    clock: Clock = utc_now,
) -> ApportionRun:
    """Compute ``case`` and store it as a draft run (with any adjustment lines of earlier
    posted runs appended after its own lines)."""
    result = apportion(case.to_engine_inputs())
    charges = line_records(result)
    extra = list(adjustments)
    for a in extra:
        if a.kind != "adjustment" or a.adjusts is None:
            raise RunStateError(
                "only adjustment lines naming the run they correct can be carried by a later run"
            )
    inputs = case.canonical_json()
    ensure_site(session, case.site)
    session.flush()  # the site row first: runs refer to it
    run = ApportionRun(
        id=str(uuid.uuid4()),
        site_id=case.site,
        period_start=case.period.start,
        period_end=case.period.end,
        status=RunStatus.DRAFT.value,
        input_hash=hashlib.sha256(inputs).hexdigest(),  # = case.input_hash(), built once
        result_hash=result_hash(charges + extra),
        inputs=inputs.decode(),
        flags=[
            {"code": f.code, "subject": f.subject, "holds": f.holds, "message": f.message}
            for f in result.flags
        ],
        held=result.held,
        created_by=by,
        created_at=clock(),
    )
    session.add(run)
    session.flush()
    session.add_all(
        ApportionLine(
            run_id=run.id,
            line_no=n,
            kind=r.kind,
            adjusts_run_id=r.adjusts,
            register=r.register,
            tariff=r.tariff,
            unit=r.unit,
            party=r.party,
            from_=r.start,
            to=r.end,
            component=r.component,
            origin=r.origin,
            kwh=r.kwh,
            cents=r.cents,
        )
        for n, r in enumerate(charges + extra)
    )
    session.flush()
    return run


def _advance(run: ApportionRun, expected: RunStatus, to: RunStatus) -> None:
    if run.status != expected.value:
        raise RunStateError(
            f"run {run.id!r} is {run.status}; only a {expected.value} run can become {to.value}"
        )
    run.status = to.value


def review_run(session: Session, run_id: str, *, by: str, clock: Clock = utc_now) -> ApportionRun:
    """draft → reviewed."""
    run = _get(session, run_id)
    _advance(run, RunStatus.DRAFT, RunStatus.REVIEWED)
    run.reviewed_by, run.reviewed_at = by, clock()
    session.flush()
    return run


def approve_run(session: Session, run_id: str, *, by: str, clock: Clock = utc_now) -> ApportionRun:
    """reviewed → approved; refused while the run carries holding flags."""
    run = _get(session, run_id)
    if run.held:
        holding = [f"{f['code']} ({f['subject']})" for f in run.flags if f["holds"]]
        raise RunHeldError(f"run {run.id!r} is held by: {', '.join(holding)}")
    _advance(run, RunStatus.REVIEWED, RunStatus.APPROVED)
    run.approved_by, run.approved_at = by, clock()
    session.flush()
    return run


def post_run(
    session: Session, run_id: str, *, by: str, key: Ed25519PrivateKey, clock: Clock = utc_now
) -> ApportionRun:
    """approved → posted: recompute from the stored inputs (it must reproduce the run),
    sign every statement with the cloud's key and store them."""
    run = _get(session, run_id)
    if run.status != RunStatus.APPROVED.value:
        raise RunStateError(f"run {run.id!r} is {run.status}; only an approved run is posted")
    case, result = rerun(session, run_id)
    for statement in build_statements(case, result, run_id=run.id):
        signed = sign_statement(statement, key)
        unit = statement["unit"]["node"] if statement["unit"] else ""
        session.add(
            ApportionStatement(
                run_id=run.id,
                unit=unit,
                party=statement["party"],
                payload=signed.payload,
                kid=signed.kid,
                signature=signed.signature,
            )
        )
    run.status = RunStatus.POSTED.value
    run.posted_by, run.posted_at = by, clock()
    session.flush()
    return run


def void_run(
    session: Session, run_id: str, *, by: str, reason: str, clock: Clock = utc_now
) -> ApportionRun:
    """Any state but void → void, with who, when and why."""
    run = _get(session, run_id)
    if run.status == RunStatus.VOID.value:
        raise RunStateError(f"run {run.id!r} is void already")
    if not reason.strip():
        raise RunStateError("voiding a run needs a reason")
    run.status = RunStatus.VOID.value
    run.voided_by, run.voided_at, run.void_reason = by, clock(), reason
    session.flush()
    return run


def rerun(session: Session, run_id: str) -> tuple[Case, EngineResult]:
    """Recompute a stored run from its stored inputs.

    Raises RerunMismatchError unless the inputs hash to the stored input hash and the
    recomputed lines equal the stored charge lines, to the cent, in order.
    """
    run = _get(session, run_id)
    case = case_from_data(json.loads(run.inputs), f"run {run.id}")
    if case.input_hash() != run.input_hash:
        raise RerunMismatchError(
            f"run {run.id!r}: stored inputs hash to {case.input_hash()}, "
            f"the run says {run.input_hash}"
        )
    result = apportion(case.to_engine_inputs())
    fresh = line_records(result)
    stored = _stored_records(session, run.id)
    charges = [r for r in stored if r.kind == "charge"]
    if len(fresh) != len(charges):
        raise RerunMismatchError(
            f"run {run.id!r}: {len(fresh)} lines recomputed, {len(charges)} stored"
        )
    for n, (a, b) in enumerate(zip(fresh, charges, strict=True)):
        if a.key != b.key or a.cents != b.cents or a.kwh != b.kwh:
            raise RerunMismatchError(
                f"run {run.id!r} line {n}: recomputed {a.as_json()}, stored {b.as_json()}"
            )
    if result_hash(stored) != run.result_hash:
        raise RerunMismatchError(
            f"run {run.id!r}: stored lines hash to "
            f"{result_hash(stored)}, the run says {run.result_hash}"
        )
    return case, result


def corrections(session: Session, posted_run_id: str, corrected: Case) -> list[LineRecord]:
    """Adjustment lines (corrected − posted, per line key, non-zero only) for a later run.

    Σ adjustments = corrected bill − posted bill (0 when only readings or rules changed).
    """
    run = _get(session, posted_run_id)
    if run.status != RunStatus.POSTED.value:
        raise RunStateError(f"run {run.id!r} is {run.status}; only posted runs are corrected")
    if (corrected.period.start, corrected.period.end) != (run.period_start, run.period_end):
        raise RunStateError(
            f"the correction is for {corrected.period.start} … "
            f"{corrected.period.end}, run {run.id!r} for {run.period_start} "
            f"… {run.period_end}"
        )
    posted = {r.key: r for r in _stored_records(session, run.id) if r.kind == "charge"}
    fresh = {r.key: r for r in line_records(apportion(corrected.to_engine_inputs()))}
    out = []
    for key in sorted(posted.keys() | fresh.keys()):
        new, old = fresh.get(key), posted.get(key)
        cents = (new.cents if new else 0) - (old.cents if old else 0)
        if cents == 0:
            continue
        kwh = (new.kwh if new else Decimal(0)) - (old.kwh if old else Decimal(0))
        out.append(LineRecord(*key, kwh=kwh, cents=cents, kind="adjustment", adjusts=run.id))
    return out
