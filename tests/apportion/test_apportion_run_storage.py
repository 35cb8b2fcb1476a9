"""A run is computed once, when it is created: its statements (unsigned canonical JSON) and
its tree's balances are stored with it, posting signs the stored statements as they are,
and runs from before they were stored (revision 0009) still post by recomputing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from cloud.apportion import runs
from cloud.apportion.balances import balances_from_json, tree_balances
from cloud.apportion.case.canonical import canonical_json
from cloud.apportion.case.loading import load_case
from cloud.apportion.errors import RerunMismatchError, RunStateError
from cloud.apportion.models import ApportionDraft, ApportionRun, ApportionStatement
from cloud.apportion.runs import (
    approve_run,
    create_run,
    post_run,
    rerun,
    review_run,
    statement_drafts,
)
from cloud.apportion.statement import build_statements, verify_statement
from cloud.registry.db import open_registry

CASES = Path(__file__).parents[1] / "cases"
T0 = datetime(2026, 5, 3, 9, 0, tzinfo=UTC)


def clock() -> datetime:
    return T0


@pytest.fixture()
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    sessions = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    yield sessions
    sessions.kw["bind"].dispose()


def approved(sessions: sessionmaker[Session], name: str) -> str:
    with sessions.begin() as s:
        run = create_run(s, load_case(CASES / f"{name}.yaml"), by="finance-1", clock=clock)
        review_run(s, run.id, by="finance-2", clock=clock)
        approve_run(s, run.id, by="controller", clock=clock)
        return run.id


def signed(sessions: sessionmaker[Session], run_id: str) -> dict[tuple[str, str], str]:
    with sessions() as s:
        rows = s.scalars(select(ApportionStatement).where(ApportionStatement.run_id == run_id))
        return {(r.unit, r.party): r.payload for r in rows}


@pytest.mark.parametrize("name", ["move_in", "tou", "replacement", "two_part"])
def test_stored_statements_and_balances_are_what_the_run_computes(
    sessions: sessionmaker[Session], name: str
) -> None:
    run_id = approved(sessions, name)
    with sessions() as s:
        case, result = rerun(s, run_id)
        fresh = build_statements(case, result, run_id=run_id)
        drafts = statement_drafts(s, run_id)
        run = s.get(ApportionRun, run_id)
        assert run is not None and run.balances is not None
        assert balances_from_json(run.balances) == tree_balances(result)
    assert [(u, p) for u, p, _ in drafts] == [
        (d["unit"]["node"] if d["unit"] else "", d["party"]) for d in fresh
    ]
    assert [payload for _, _, payload in drafts] == [canonical_json(d).decode() for d in fresh]


def test_posting_signs_the_stored_statements_without_recomputing(
    sessions: sessionmaker[Session],
) -> None:
    key = Ed25519PrivateKey.generate()
    run_id = approved(sessions, "move_in")
    with sessions.begin() as s:
        drafts = statement_drafts(s, run_id)
        run = s.get(ApportionRun, run_id)
        assert run is not None and '"INV-MOVE"' in run.inputs
        # inputs that no longer reproduce the run: a recompute would refuse to post
        tampered = run.inputs.replace('"INV-MOVE"', '"INV-OTHER"')
        s.execute(update(ApportionRun).where(ApportionRun.id == run_id).values(inputs=tampered))
    with sessions.begin() as s:
        post_run(s, run_id, by="controller", key=key, clock=clock)
    assert signed(sessions, run_id) == {(u, p): payload for u, p, payload in drafts}
    with sessions() as s:
        st = s.get(ApportionStatement, (run_id, "A", "Y"))
        assert st is not None
        doc = verify_statement({"alg": "Ed25519", **_signed(st)}, key.public_key())
        assert doc["total"]["cents"] == 4200 and doc["run"]["id"] == run_id
        with pytest.raises(RerunMismatchError, match="hash"):
            rerun(s, run_id)  # the audit still recomputes, and sees the changed inputs


def _signed(st: ApportionStatement) -> dict[str, str]:
    return {"kid": st.kid, "payload": st.payload, "signature": st.signature}


def test_a_run_from_before_stored_statements_posts_by_recomputing(
    sessions: sessionmaker[Session],
) -> None:
    key = Ed25519PrivateKey.generate()
    run_id = approved(sessions, "move_in")
    with sessions.begin() as s:
        drafts = statement_drafts(s, run_id)
        # as a run created before revision 0009: no drafts, no balances
        s.execute(delete(ApportionDraft).where(ApportionDraft.run_id == run_id))
        s.execute(update(ApportionRun).where(ApportionRun.id == run_id).values(balances=None))
    with sessions() as s:
        assert statement_drafts(s, run_id) == drafts  # recomputed, the same bytes
    with sessions.begin() as s:
        post_run(s, run_id, by="controller", key=key, clock=clock)
    assert signed(sessions, run_id) == {(u, p): payload for u, p, payload in drafts}


def test_posting_refuses_statements_that_do_not_add_up(sessions: sessionmaker[Session]) -> None:
    run_id = approved(sessions, "basic")
    with sessions.begin() as s:
        s.execute(
            update(ApportionDraft)
            .where(ApportionDraft.run_id == run_id, ApportionDraft.party == "ACME")
            .values(cents=ApportionDraft.cents + 1)
        )
    with sessions() as s, pytest.raises(RerunMismatchError, match="statements total"):
        post_run(s, run_id, by="controller", key=Ed25519PrivateKey.generate(), clock=clock)


def test_stored_statements_are_never_changed(sessions: sessionmaker[Session]) -> None:
    run_id = approved(sessions, "basic")
    with sessions() as s:
        draft = s.get(ApportionDraft, (run_id, "A101", "ACME"))
        assert draft is not None
        draft.payload = draft.payload.replace("ACME", "EMCA")
        with pytest.raises(RunStateError, match="never changed"):
            s.flush()
        s.rollback()
        s.delete(s.get(ApportionDraft, (run_id, "", "landlord")))
        with pytest.raises(RunStateError, match="never changed"):
            s.flush()


@pytest.mark.parametrize("name", ["basic", "tou", "two_part"])
def test_a_runs_bill_is_read_from_the_head_of_its_inputs(
    sessions: sessionmaker[Session], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sessions.begin() as s:
        run_id = create_run(s, load_case(CASES / f"{name}.yaml"), by="f", clock=clock).id
    with sessions() as s:
        run = s.get(ApportionRun, run_id)
        assert run is not None
        whole = json.loads(run.inputs)["bill"]
        assert runs.stored_bill(s, run_id) == whole and whole["amounts"]
        # a bill longer than the head read: read from the whole inputs, the same
        monkeypatch.setattr(runs, "_BILL_HEAD", 12)
        assert runs.stored_bill(s, run_id) == whole
        with pytest.raises(LookupError, match="no run"):
            runs.stored_bill(s, "no-such-run")
