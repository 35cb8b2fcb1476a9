"""Runs: compute, store, review, approve, post (signed statements), void, rerun, correct.

A run goes draft → reviewed → approved → posted, and any of them → void. It stores the
canonical JSON of all its inputs (rules and tariff snapshot, readings, bill — the whole
case), their SHA-256 (the input hash), the rounded lines and their SHA-256 (the result
hash), the flags and who did what when; it also stores what it computed for people to read —
each statement as unsigned canonical JSON and the meter tree's balances — so posting signs
the stored statements and finance's pages read them, without recomputing the run. A run
with holding flags (negative residual, estimates over the limit ...) cannot be approved.
Posted runs are immutable (see :mod:`cloud.apportion.models`); a correction is a set of
adjustment lines — corrected minus posted, per line — carried by a later run.

:func:`rerun` recomputes a stored run from its stored inputs and checks that it reproduces
the input hash, the result hash and every line to the cent (an explicit audit; nothing on
the way to posting calls it for a run that stored its statements).
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
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from cloud.apportion.balances import balances_json, tree_balances
from cloud.apportion.case.canonical import canonical_json, decimal_text, plain_json
from cloud.apportion.case.conversion import build_engine_inputs
from cloud.apportion.case.document import Case
from cloud.apportion.case.loading import case_from_data
from cloud.apportion.engine import apportion
from cloud.apportion.engine_result import EngineResult
from cloud.apportion.errors import (
    FourEyesError,
    MissingReasonError,
    RerunMismatchError,
    RunHeldError,
    RunStateError,
    WrongStateError,
)
from cloud.apportion.models import (
    ApportionDraft,
    ApportionLine,
    ApportionRun,
    ApportionStatement,
)
from cloud.apportion.run_summary import summary_payload
from cloud.apportion.statement import LineRow, build_statements, line_rows, sign_payload
from cloud.registry.bulk import bulk_insert, copy_into
from cloud.registry.service import ensure_site
from edge.wire import Clock, key_id, utc_now


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

    def plain(self) -> dict[str, Any]:
        """:meth:`as_json` as plain JSON values (what :func:`canonical.plain` makes of it,
        without walking it: the energy as its canonical text, the rest as they are)."""
        out = self.as_json()
        out["kwh"] = decimal_text(self.kwh)
        return out

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


def line_records(result: EngineResult, rows: list[LineRow] | None = None) -> list[LineRecord]:
    """The run's lines as records, in the run's order (``rows``: ``line_rows(result)``
    when the caller has them already)."""
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
        for r in (line_rows(result) if rows is None else rows)
    ]


def result_hash(records: Iterable[LineRecord]) -> str:
    """SHA-256 (hex) of the canonical JSON of the lines, in order."""
    return hashlib.sha256(plain_json([r.plain() for r in records])).hexdigest()


#: How much of a run's stored inputs is read for its bill [characters]: the bill is the
#: first section of their canonical JSON (keys sorted) and a few hundred characters long.
_BILL_HEAD = 16_384
_BILL_KEY = '{"bill":'


def stored_bill(session: Session, run_id: str) -> dict[str, Any]:
    """The ``bill`` section of a run's stored inputs (amounts as canonical text), read from
    the head of their canonical JSON only — a large site's inputs are tens of MB, and a
    page showing the run's reconciliation needs just the bill. A bill longer than the head
    is read from the whole. LookupError for no such run."""
    head = session.scalar(
        select(func.substr(ApportionRun.inputs, 1, _BILL_HEAD)).where(ApportionRun.id == run_id)
    )
    if head is None:
        raise LookupError(f"no run {run_id!r}")
    if head.startswith(_BILL_KEY):
        try:
            bill, _end = json.JSONDecoder().raw_decode(head, len(_BILL_KEY))
        except json.JSONDecodeError:
            pass  # cut off by the head: read the whole
        else:
            if isinstance(bill, dict):
                return bill
    inputs = session.scalar(select(ApportionRun.inputs).where(ApportionRun.id == run_id))
    found = json.loads(inputs or "{}").get("bill")
    return found if isinstance(found, dict) else {}


def _get(session: Session, run_id: str) -> ApportionRun:
    run = session.get(ApportionRun, run_id)
    if run is None:
        raise RunStateError(f"run {run_id!r} does not exist")
    return run


def stored_records(session: Session, run_id: str) -> list[LineRecord]:
    """The run's stored lines in their order (kWh at the stored 6 decimals)."""
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
    """Compute ``case`` and store it as a draft run (see :func:`store_run`)."""
    return store_run(session, case, by=by, adjustments=adjustments, clock=clock)[0]


def store_run(
    session: Session,
    case: Case,
    *,
    by: str,
    adjustments: Iterable[LineRecord] = (),
    clock: Clock = utc_now,
) -> tuple[ApportionRun, EngineResult]:
    """Compute ``case`` and store it as a draft run (with any adjustment lines of earlier
    posted runs appended after its own lines); the run and the engine's result.

    The run is computed here once: its lines, its statements (unsigned canonical JSON, see
    :func:`statement_drafts`) and its meter tree's balances are stored with it, so posting
    and finance's pages never recompute it.
    """
    extra = list(adjustments)
    for a in extra:
        if a.kind != "adjustment" or a.adjusts is None:
            raise RunStateError(
                "only adjustment lines naming the run they correct can be carried by a later run"
            )
    # computed from the inputs as stored (decimals normalised: a price of 0.50 reads 0.5),
    # exactly as rerun() recomputes it, so the statements are those rerun() would give
    # (the case's cross-field checks passed already: its canonical form changes no id,
    # date or count)
    canonical, stored = case.canonical_bytes_and_stored()
    input_hash = hashlib.sha256(canonical).hexdigest()
    result = apportion(build_engine_inputs(stored))
    rows = line_rows(result)
    charges = line_records(result, rows)
    run_id = str(uuid.uuid4())
    ensure_site(session, case.site)
    session.flush()  # the site row first: runs refer to it
    run_row = {
        "id": run_id,
        "site_id": case.site,
        "period_start": case.period.start,
        "period_end": case.period.end,
        "status": RunStatus.DRAFT.value,
        "input_hash": input_hash,
        "result_hash": result_hash(charges + extra),
        "inputs": canonical.decode(),
        "flags": [
            {"code": f.code, "subject": f.subject, "holds": f.holds, "message": f.message}
            for f in result.flags
        ],
        "held": result.held,
        "version": 1,
        "created_by": by,
        "created_at": clock(),
        "balances": balances_json(tree_balances(result)),
    }
    del canonical
    # the run goes first (its lines and statements refer to it); on PostgreSQL the server
    # stores it, the input snapshot and all, while the statements are built
    with copy_into(session, ApportionRun.__table__, list(run_row), json_columns=("flags",)) as put:
        put(list(run_row.values()))
        del run_row
        documents = build_statements(
            stored, result, run_id=run_id, input_hash=input_hash, rows=rows
        )
    bulk_insert(
        session,
        ApportionLine.__table__,
        LINE_COLUMNS,
        (
            (
                run_id,
                n,
                r.kind,
                r.adjusts,
                r.register,
                r.tariff,
                r.unit,
                r.party,
                r.start,
                r.end,
                r.component,
                r.origin,
                r.kwh,
                r.cents,
            )
            for n, r in enumerate(charges + extra)
        ),
    )
    # each statement's JSON is written as the server stores the ones before it
    with copy_into(session, ApportionDraft.__table__, DRAFT_COLUMNS) as put:
        for n, d in enumerate(documents):
            put(
                (
                    run_id,
                    _statement_unit(d),
                    d["party"],
                    n,
                    plain_json(d).decode(),
                    d["total"]["cents"],
                )
            )
    run = session.get(ApportionRun, run_id)
    assert run is not None
    return run, result


#: The columns of apportion_lines and apportion_statement_drafts as :func:`store_run` writes
#: them (COPY on PostgreSQL).
LINE_COLUMNS = (
    "run_id",
    "line_no",
    "kind",
    "adjusts_run_id",
    "register",
    "tariff",
    "unit",
    "party",
    "from_date",
    "to_date",
    "component",
    "origin",
    "kwh",
    "cents",
)
DRAFT_COLUMNS = ("run_id", "unit", "party", "position", "payload", "cents")


def _statement_unit(statement: dict[str, Any]) -> str:
    """The unit node a statement is for; empty for the landlord's."""
    return statement["unit"]["node"] if statement["unit"] else ""


def statement_drafts(session: Session, run_id: str) -> list[tuple[str, str, str]]:
    """The run's statements as (unit node, party, canonical JSON text), in the run's order.

    Stored when the run was created; a run created before they were stored (revision 0009)
    is recomputed from its stored inputs (:func:`rerun`, which checks it reproduces).
    """
    stored = _stored_drafts(session, run_id)
    return stored if stored is not None else _recomputed_drafts(session, run_id)


def _stored_drafts(session: Session, run_id: str) -> list[tuple[str, str, str]] | None:
    rows = session.execute(
        select(ApportionDraft.unit, ApportionDraft.party, ApportionDraft.payload)
        .where(ApportionDraft.run_id == run_id)
        .order_by(ApportionDraft.position)
    ).all()
    # a run always has the landlord's statement at least: none means none were stored
    return [(unit, party, payload) for unit, party, payload in rows] if rows else None


def _recomputed_drafts(session: Session, run_id: str) -> list[tuple[str, str, str]]:
    case, result = rerun(session, run_id)
    return [
        (_statement_unit(d), d["party"], canonical_json(d).decode())
        for d in build_statements(case, result, run_id=run_id)
    ]


def _check_drafts(session: Session, run: ApportionRun) -> None:
    """The stored statements add up to the stored charge lines, to the cent (a cheap
    consistency check before signing; :func:`rerun` is the full one)."""
    drafts = session.scalar(
        select(func.coalesce(func.sum(ApportionDraft.cents), 0)).where(
            ApportionDraft.run_id == run.id
        )
    )
    lines = session.scalar(
        select(func.coalesce(func.sum(ApportionLine.cents), 0)).where(
            ApportionLine.run_id == run.id, ApportionLine.kind == "charge"
        )
    )
    if int(drafts or 0) != int(lines or 0):
        raise RerunMismatchError(
            f"run {run.id!r}: its statements total {drafts} cents, its charge lines {lines}"
        )


def _advance(run: ApportionRun, expected: RunStatus, to: RunStatus) -> None:
    if run.status != expected.value:
        raise WrongStateError(
            f"run {run.id!r} is {run.status}; only a {expected.value} run can become {to.value}",
            status=run.status,
            expected=expected.value,
            to=to.value,
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
    """reviewed → approved; refused while the run carries holding flags, and refused to
    whoever created or reviewed the run (four eyes: FourEyesError)."""
    run = _get(session, run_id)
    if run.held:
        holding = [(f["code"], f["subject"]) for f in run.flags if f["holds"]]
        raise RunHeldError(
            f"run {run.id!r} is held by: {', '.join(f'{c} ({s})' for c, s in holding)}",
            holding=holding,
        )
    if run.status == RunStatus.REVIEWED.value and by in (run.created_by, run.reviewed_by):
        did = "created" if by == run.created_by else "reviewed"
        raise FourEyesError(
            f"run {run.id!r}: {by!r} {did} it and so cannot approve it; "
            "expected an account that neither created nor reviewed the run (four eyes)",
            account=by,
            did=did,
        )
    _advance(run, RunStatus.REVIEWED, RunStatus.APPROVED)
    run.approved_by, run.approved_at = by, clock()
    session.flush()
    return run


def post_run(
    session: Session, run_id: str, *, by: str, key: Ed25519PrivateKey, clock: Clock = utc_now
) -> ApportionRun:
    """approved → posted: sign every statement the run stored when it was created (the
    exact canonical bytes, nothing recomputed) with the cloud's key and store them, and the
    run's summary of them (:mod:`cloud.apportion.run_summary`).

    A run created before statements were stored is recomputed from its stored inputs
    instead (it must reproduce the run; see :func:`statement_drafts`).
    """
    run = _get(session, run_id)
    if run.status != RunStatus.APPROVED.value:
        raise WrongStateError(
            f"run {run.id!r} is {run.status}; only an approved run is posted",
            status=run.status,
            expected=RunStatus.APPROVED.value,
            to=RunStatus.POSTED.value,
        )
    drafts = _stored_drafts(session, run.id)
    if drafts is None:
        drafts = _recomputed_drafts(session, run.id)
    else:
        _check_drafts(session, run)
    kid = key_id(key.public_key())
    signed = [(unit, party, sign_payload(payload, key, kid)) for unit, party, payload in drafts]
    session.execute(
        insert(ApportionStatement),
        [
            {
                "run_id": run.id,
                "unit": unit,
                "party": party,
                "payload": s.payload,
                "kid": s.kid,
                "signature": s.signature,
            }
            for unit, party, s in signed
        ],
    )
    summary = sign_payload(summary_payload(run.id, run.site_id, drafts), key, kid)
    run.summary_payload, run.summary_kid, run.summary_signature = (
        summary.payload,
        summary.kid,
        summary.signature,
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
        raise WrongStateError(
            f"run {run.id!r} is void already", status=run.status, expected="", to="void"
        )
    if not reason.strip():
        raise MissingReasonError("voiding a run needs a reason")
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
    stored = stored_records(session, run.id)
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
    posted = {r.key: r for r in stored_records(session, run.id) if r.kind == "charge"}
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
