"""A posted run's signed summary (decision 0030): the tenant page's history reads one
verified summary per run instead of verifying every month's statement, shows the same points,
and falls back to the statement itself for a run without a summary or whose summary does not
verify; a summary is never taken for a statement, nor the reverse."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select, update

from cloud.apportion.errors import SignatureError
from cloud.apportion.models import ApportionRun, ApportionStatement
from cloud.apportion.run_summary import SCHEMA_RUN_SUMMARY, own_kwh, verify_summary
from cloud.apportion.statement import SignedStatement, verify_statement
from cloud.statements.access import HistoryPoint, TenantStatementService
from tests.support.browser import WebRig, make_rig


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("summary"), months=4)
    yield rig
    rig.sessions.kw["bind"].dispose()


def history(rig: WebRig) -> list[HistoryPoint]:
    """The latest statement's history of A101/ACME, read by a new service (cold caches)."""
    service = TenantStatementService(rig.sessions, rig.key.public_key())
    _, unit, token = rig.link(rig.seeded.latest).rsplit("/", 2)
    return service.open_statement(rig.web.links, unit, token)[1].history


def statement_points(rig: WebRig) -> list[HistoryPoint]:
    """The same history computed from the statements alone (each verified)."""
    points = []
    with rig.sessions() as s:
        for run_id in rig.seeded.posted.values():
            row = s.get(ApportionStatement, (run_id, "A101", "ACME"))
            run = s.get(ApportionRun, run_id)
            assert row is not None and run is not None
            doc = verify_statement(
                SignedStatement(row.payload, row.kid, row.signature), rig.key.public_key()
            )
            points.append(HistoryPoint(run.period_start, int(doc["total"]["cents"]), own_kwh(doc)))
    return sorted(points, key=lambda p: p.period_start)


def summaries(rig: WebRig) -> dict[str, tuple[str, str, str]]:
    with rig.sessions() as s:
        rows = s.execute(
            select(
                ApportionRun.id,
                ApportionRun.summary_payload,
                ApportionRun.summary_kid,
                ApportionRun.summary_signature,
            ).where(ApportionRun.status == "posted")
        ).all()
    return {r.id: (r.summary_payload, r.summary_kid, r.summary_signature) for r in rows}


def set_summary(rig: WebRig, run_id: str, payload: str | None, signature: str | None) -> None:
    with rig.sessions.begin() as s:  # Core: past the ORM's guard on posted runs, as a forger would
        s.execute(
            update(ApportionRun)
            .where(ApportionRun.id == run_id)
            .values(summary_payload=payload, summary_signature=signature)
        )


def test_posting_signs_a_summary_of_every_statement(rig: WebRig) -> None:
    stored = summaries(rig)
    assert set(rig.seeded.posted.values()) <= set(stored)
    run = rig.seeded.latest
    payload, kid, signature = stored[run]
    facts = verify_summary(SignedStatement(payload, kid, signature), rig.key.public_key(), run)
    with rig.sessions() as s:
        statements = s.scalars(
            select(ApportionStatement).where(ApportionStatement.run_id == run)
        ).all()
    assert set(facts) == {(x.unit, x.party) for x in statements} and len(facts) >= 2
    point = statement_points(rig)[-1]
    assert (facts[("A101", "ACME")].cents, facts[("A101", "ACME")].own_kwh) == (
        point.cents,
        point.own_kwh,
    )


def test_the_history_from_summaries_is_the_history_from_statements(rig: WebRig) -> None:
    assert history(rig) == statement_points(rig) and len(history(rig)) == 4


def test_a_summary_is_not_a_statement_nor_another_runs_summary(rig: WebRig) -> None:
    stored = summaries(rig)
    runs = list(rig.seeded.posted.values())
    payload, kid, signature = stored[runs[0]]
    signed = SignedStatement(payload, kid, signature)
    with pytest.raises(SignatureError, match="not one of"):
        verify_statement(signed, rig.key.public_key())
    with pytest.raises(SignatureError, match="not"):
        verify_summary(signed, rig.key.public_key(), runs[1])
    with rig.sessions() as s:
        row = s.get(ApportionStatement, (runs[0], "A101", "ACME"))
        assert row is not None
        statement = SignedStatement(row.payload, row.kid, row.signature)
    with pytest.raises(SignatureError, match=SCHEMA_RUN_SUMMARY):
        verify_summary(statement, rig.key.public_key(), runs[0])


def test_without_a_summary_or_with_a_forged_one_the_statement_speaks(rig: WebRig) -> None:
    runs = list(rig.seeded.posted.values())
    stored = summaries(rig)
    expected = statement_points(rig)
    try:
        set_summary(rig, runs[0], None, None)  # posted before summaries existed
        forged = stored[runs[1]][0].replace('"ACME",', '"ACME",9', 1)  # ACME's amount × 10+
        assert forged != stored[runs[1]][0]
        set_summary(rig, runs[1], forged, stored[runs[1]][2])
        assert history(rig) == expected
    finally:
        for run in runs[:2]:
            set_summary(rig, run, stored[run][0], stored[run][2])
    assert history(rig) == expected
