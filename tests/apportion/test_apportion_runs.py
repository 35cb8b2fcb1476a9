"""Runs on a real database (SQLite and PostgreSQL, schema by Alembic incl. revision 0002):
lifecycle, holds, signed statements, immutability, rerun, corrections."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session, sessionmaker

from cloud.apportion.case.loading import case_from_data, load_case
from cloud.apportion.errors import FourEyesError, RunHeldError, RunStateError, SignatureError
from cloud.apportion.models import ApportionLine, ApportionRun, ApportionStatement
from cloud.apportion.runs import (
    approve_run,
    corrections,
    create_run,
    post_run,
    rerun,
    review_run,
    void_run,
)
from cloud.apportion.statement import SignedStatement, verify_statement
from cloud.registry.db import open_registry

CASES = Path(__file__).parents[1] / "cases"
T0 = datetime(2026, 5, 3, 9, 0, tzinfo=UTC)


def clock() -> datetime:
    return T0


@pytest.fixture()
def sqlite_sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    sessions = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    yield sessions
    sessions.kw["bind"].dispose()


def post(sessions: sessionmaker[Session], case_name: str, key: Ed25519PrivateKey) -> str:
    case = load_case(CASES / f"{case_name}.yaml")
    with sessions.begin() as s:
        run = create_run(s, case, by="finance-1", clock=clock)
        review_run(s, run.id, by="finance-2", clock=clock)
        approve_run(s, run.id, by="controller", clock=clock)
        post_run(s, run.id, by="controller", key=key, clock=clock)
        return run.id


def lifecycle_reproduces(sessions: sessionmaker[Session]) -> None:
    key = Ed25519PrivateKey.generate()
    run_id = post(sessions, "move_in", key)
    with sessions() as s:
        run = s.get(ApportionRun, run_id)
        assert run is not None and run.status == "posted"
        approved_at = run.approved_at
        assert approved_at is not None and run.approved_by == "controller"
        # SQLite gives the stored UTC instant back without its zone
        assert (approved_at if approved_at.tzinfo else approved_at.replace(tzinfo=UTC)) == T0
        case, _ = rerun(s, run_id)  # raises unless the hash and every cent match
        assert case.input_hash() == run.input_hash
        stored = s.scalars(select(ApportionLine).where(ApportionLine.run_id == run_id)).all()
        assert sum(line.cents for line in stored) == 14000
        statements = s.scalars(
            select(ApportionStatement).where(ApportionStatement.run_id == run_id)
        ).all()
        by_party = {st.party: st for st in statements}
        assert set(by_party) == {"X", "Y", "Z", "landlord"}
        doc = verify_statement(
            SignedStatement(by_party["Y"].payload, by_party["Y"].kid, by_party["Y"].signature),
            key.public_key(),
        )
        assert doc["total"] == {"cents": 4200, "amount_cny": "42.00"}
        assert doc["run"] == {"id": run_id, "input_hash": run.input_hash}


def test_posted_run_reruns_to_the_cent_on_sqlite(sqlite_sessions) -> None:  # type: ignore[no-untyped-def]
    lifecycle_reproduces(sqlite_sessions)


def test_posted_run_reruns_to_the_cent_on_postgres(fresh_postgres_url: str) -> None:
    sessions = open_registry(fresh_postgres_url)
    try:
        tables = set(inspect(sessions.kw["bind"]).get_table_names())
        assert {
            "units",
            "meter_tree_nodes",
            "meter_installations",
            "multiplier_steps",
            "occupancy_segments",
            "allocation_rules",
            "tariff_versions",
            "source_bills",
            "source_bill_amounts",
            "apportion_runs",
            "apportion_lines",
            "apportion_statements",
        } <= tables
        lifecycle_reproduces(sessions)
        with sessions.begin() as s:
            run_id = s.scalars(select(ApportionRun.id)).one()
            line = s.get(ApportionLine, (run_id, 0))
            assert line is not None
            line.cents += 1
            with pytest.raises(RunStateError, match="never changed"):
                s.flush()
    finally:
        sessions.kw["bind"].dispose()


def test_issued_runs_are_immutable(sqlite_sessions) -> None:  # type: ignore[no-untyped-def]
    run_id = post(sqlite_sessions, "basic", Ed25519PrivateKey.generate())
    with sqlite_sessions() as s:
        run = s.get(ApportionRun, run_id)
        assert run is not None
        run.input_hash = "0" * 64
        with pytest.raises(RunStateError, match="issued runs are immutable"):
            s.flush()
        s.rollback()
        s.delete(s.get(ApportionLine, (run_id, 3)))
        with pytest.raises(RunStateError, match="never changed"):
            s.flush()
        s.rollback()
        with pytest.raises(RunStateError, match="only a draft run"):
            review_run(s, run_id, by="x")
    with sqlite_sessions.begin() as s:
        void_run(s, run_id, by="controller", reason="wrong invoice", clock=clock)
    with sqlite_sessions() as s:
        run = s.get(ApportionRun, run_id)
        assert run is not None and run.status == "void" and run.void_reason == "wrong invoice"
        run.void_reason = "changed my mind"
        with pytest.raises(RunStateError):
            s.flush()


def test_held_run_cannot_be_approved(sqlite_sessions) -> None:  # type: ignore[no-untyped-def]
    with sqlite_sessions.begin() as s:
        run = create_run(
            s, load_case(CASES / "negative_residual.yaml"), by="finance-1", clock=clock
        )
        assert run.held
        review_run(s, run.id, by="finance-2", clock=clock)
        with pytest.raises(RunHeldError, match="negative_residual"):
            approve_run(s, run.id, by="controller", clock=clock)


def test_four_eyes_whoever_created_or_reviewed_a_run_cannot_approve_it(
    sqlite_sessions: sessionmaker[Session],
) -> None:
    with sqlite_sessions.begin() as s:
        run = create_run(s, load_case(CASES / "basic.yaml"), by="finance-1", clock=clock)
        review_run(s, run.id, by="finance-2", clock=clock)
        with pytest.raises(FourEyesError, match="'finance-1' created it"):
            approve_run(s, run.id, by="finance-1", clock=clock)
        with pytest.raises(FourEyesError, match="'finance-2' reviewed it"):
            approve_run(s, run.id, by="finance-2", clock=clock)
        assert (run.status, run.approved_by) == ("reviewed", None)
        approve_run(s, run.id, by="controller", clock=clock)
        assert (run.status, run.approved_by) == ("approved", "controller")
    with sqlite_sessions.begin() as s:
        # the one who made it may review it, and still not approve it
        run = create_run(s, load_case(CASES / "basic.yaml"), by="finance-1", clock=clock)
        review_run(s, run.id, by="finance-1", clock=clock)
        with pytest.raises(FourEyesError, match="four eyes"):
            approve_run(s, run.id, by="finance-1", clock=clock)


def test_states_cannot_be_skipped(sqlite_sessions) -> None:  # type: ignore[no-untyped-def]
    with sqlite_sessions.begin() as s:
        run = create_run(s, load_case(CASES / "basic.yaml"), by="finance-1", clock=clock)
        with pytest.raises(RunStateError, match="only a reviewed run"):
            approve_run(s, run.id, by="controller")
        with pytest.raises(RunStateError, match="only an approved run is posted"):
            post_run(s, run.id, by="controller", key=Ed25519PrivateKey.generate())


def test_rerun_detects_tampered_inputs(sqlite_sessions) -> None:  # type: ignore[no-untyped-def]
    with sqlite_sessions.begin() as s:
        run = create_run(s, load_case(CASES / "basic.yaml"), by="finance-1", clock=clock)
        run.inputs = run.inputs.replace('"720"', '"721"')
    from cloud.apportion.errors import RerunMismatchError

    with sqlite_sessions() as s, pytest.raises(RerunMismatchError, match="hash"):
        rerun(s, run.id)


def test_corrections_are_adjustment_lines_in_a_later_run(sqlite_sessions) -> None:  # type: ignore[no-untyped-def]
    # basic.yaml posted; then U1's final reading turns out to be 790.00, not 800.00:
    # A101 uses 290 kWh, the residual grows to 110 kWh (λ 9.2 %), tenants still carry 60.
    run_id = post(sqlite_sessions, "basic", Ed25519PrivateKey.generate())
    data: dict[str, Any] = yaml.safe_load((CASES / "basic.yaml").read_text())
    data["readings"]["U1"][max(data["readings"]["U1"])] = 790.00
    corrected = case_from_data(data)
    with sqlite_sessions.begin() as s:
        adjustments = corrections(s, run_id, corrected)
        assert sum(a.cents for a in adjustments) == 0  # same bill, money only moves
        own = next(a for a in adjustments if a.unit == "A101" and a.component == "own_use")
        assert own.cents == -600  # 10 kWh × 60 c/kWh back to ACME
        may = yaml.safe_load((CASES / "basic.yaml").read_text())
        may["period"] = {"start": "2026-05-01", "end": "2026-06-01"}
        may["readings"] = {
            m: {"2026-05-01": v[max(v)], "2026-06-01": v[max(v)] + 1}
            for m, v in may["readings"].items()
        }
        may["readings"]["M0"]["2026-06-01"] = may["readings"]["M0"]["2026-05-01"] + 0.6
        may["bill"]["amounts"]["total"] = 3.60
        later = create_run(
            s, case_from_data(may), by="finance-1", adjustments=adjustments, clock=clock
        )
        lines = s.scalars(select(ApportionLine).where(ApportionLine.run_id == later.id)).all()
        carried = [line for line in lines if line.kind == "adjustment"]
        assert len(carried) == len(adjustments)
        assert {line.adjusts_run_id for line in carried} == {run_id}
    with sqlite_sessions() as s:
        rerun(s, later.id)  # charges recompute; adjustments are stored as they came
        original = s.get(ApportionRun, run_id)
        assert original is not None and original.status == "posted"


def test_tampered_statement_fails_verification(sqlite_sessions) -> None:  # type: ignore[no-untyped-def]
    key = Ed25519PrivateKey.generate()
    run_id = post(sqlite_sessions, "basic", key)
    with sqlite_sessions() as s:
        st = s.scalars(select(ApportionStatement).where(ApportionStatement.party == "ACME")).one()
        signed = SignedStatement(st.payload, st.kid, st.signature)
        assert verify_statement(signed, key.public_key())["run"]["id"] == run_id
        forged = SignedStatement(st.payload.replace("25740", "15740"), st.kid, st.signature)
        with pytest.raises(SignatureError, match="does not verify"):
            verify_statement(forged, key.public_key())
        with pytest.raises(SignatureError, match="signed with key"):
            verify_statement(signed, Ed25519PrivateKey.generate().public_key())
