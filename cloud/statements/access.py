"""What a tenant sees through a statement link, and the tenant's answer to it.

The statement shown is the signed one the run posted (:mod:`cloud.apportion.statement`): its
signature is verified over the stored payload bytes with the cloud's public key and only then
is the payload parsed, so every number on the page is the signed number. The page adds a
12-month history of the same unit and tenant (earlier posted statements, verified alike).

A tenant answers once: **confirm** (the statement is accepted; recorded with the link it came
through — issuing the invoice itself is the billing run's, :mod:`cloud.leases.billing`, which
puts posted amounts on invoices) or **dispute** with a comment (an open dispute in the finance
queue; a statement with an open dispute cannot be confirmed until finance resolves it).
Verified documents are cached by the SHA-256 of payload, key id and signature: statements
are immutable, and a changed current statement has another digest, so it is verified again
(and refused). The history is cached by the runs and signatures of the tenant's posted
statements up to this one. The page reads, in one registry round trip per request, the
link's facts, the current statement's payload and signature, the tenant's answer and those
history signatures (:meth:`TenantStatementService.open_statement`); only what cannot change
under the same facts is cached, so revocation, expiry, voids and answers show at once.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, Row, Select, and_, bindparam, func, literal_column, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, sessionmaker

from cloud.apportion.errors import SignatureError
from cloud.apportion.models import (
    ApportionRun,
    ApportionStatement,
    StatementConfirmation,
    StatementDispute,
)
from cloud.apportion.run_summary import OWN_COMPONENTS, StatementFacts, own_kwh, verify_summary
from cloud.apportion.statement import SignedStatement, verify_statement
from cloud.leases.models import Tenant
from cloud.registry.base import as_utc
from cloud.staff.audit import record
from cloud.statements.links import (
    LINK_QUERY,
    OpenedLink,
    StatementKey,
    TenantLinkService,
    parse_token,
)
from cloud.statements.models import TenantLink
from cloud.wording import check_language
from edge.wire import Clock, utc_now

HISTORY_MONTHS = 12
MAX_COMMENT_CHARS = 2000
#: longest name a tenant may type when confirming [characters]
MAX_NAME_CHARS = 100
_CACHE_SIZE = 4096
#: verified run summaries kept (a year of monthly runs of a few dozen sites)
_SUMMARY_CACHE_SIZE = 512
#: A tenant's answer in the audit log is written by ``tenant:<party>``.
TENANT_ACTOR = "tenant:"


class AnswerError(Exception):
    """A tenant's answer cannot be taken (already confirmed, dispute open, empty comment)."""


class NotGenuine(Exception):
    """The stored statement's signature does not verify: nothing of it is shown."""


@dataclass(frozen=True)
class HistoryPoint:
    """One month of the history chart: the period's first day, amount [cents], own use [kWh]."""

    period_start: date
    cents: int
    own_kwh: Decimal


@dataclass(frozen=True)
class Answer:
    """The tenant's answer so far: confirmation time, and the open dispute if any."""

    confirmed_at: datetime | None = None
    confirmed_name: str = ""
    dispute_id: int | None = None
    dispute_comment: str = ""
    dispute_status: str = ""
    dispute_resolution: str = ""


@dataclass(frozen=True)
class TenantStatement:
    """A verified statement document with its signature facts, history and the answer."""

    key: StatementKey
    document: dict[str, Any]
    kid: str
    signature: str
    history: list[HistoryPoint]
    answer: Answer = field(default_factory=Answer)
    #: the language of the tenant's notices (``zh-CN``/``en``); None when the statement's
    #: party is no registered tenant (a site without leases)
    notice_language: str | None = None

    @property
    def own_lines(self) -> list[dict[str, Any]]:
        return [x for x in self.document["lines"] if x["component"] in OWN_COMPONENTS]

    @property
    def shared_lines(self) -> list[dict[str, Any]]:
        return [x for x in self.document["lines"] if x["component"] not in OWN_COMPONENTS]


class TenantStatementService:
    """Reads verified statements for tenant links and records tenants' answers."""

    def __init__(
        self, sessions: sessionmaker[Session], public_key: Ed25519PublicKey, clock: Clock = utc_now
    ) -> None:
        self.sessions = sessions
        self.public_key = public_key
        self.clock = clock
        self._verified: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._history: OrderedDict[tuple[Any, ...], list[HistoryPoint]] = OrderedDict()
        #: (run, summary signature) → the run's verified summary (None: it does not verify)
        self._summaries: OrderedDict[
            tuple[str, str], dict[tuple[str, str], StatementFacts] | None
        ] = OrderedDict()
        self._lock = threading.Lock()  # the caches are shared by the server's threads

    def _verify(self, payload: str, kid: str, signature: str) -> dict[str, Any]:
        digest = hashlib.sha256("\x00".join((payload, kid, signature)).encode()).hexdigest()
        document = self._verified.get(digest)
        if document is None:
            try:
                document = verify_statement(
                    SignedStatement(payload, kid, signature), self.public_key
                )
            except SignatureError as exc:
                raise NotGenuine(str(exc)) from None
            with self._lock:
                self._verified[digest] = document
                while len(self._verified) > _CACHE_SIZE:
                    self._verified.popitem(last=False)
        return document

    def open_statement(
        self, links: TenantLinkService, unit: str, token: str
    ) -> tuple[OpenedLink, TenantStatement]:
        """Open the link ``/t/{unit}/{token}`` with ``links`` and read its statement (as
        :meth:`statement`) in one registry round trip: the tenant page's path.

        LinkRefused when the link does not open it, NotGenuine when it does not verify.
        """
        parsed = parse_token(token)
        now = links.clock()
        with self.sessions.kw["bind"].connect() as conn:
            row = conn.execute(_LINKED_STATEMENT, parsed.params(now)).first()
            opened = links.check(row, unit, parsed, now)
            return opened, self._statement(conn, opened, row)

    def statement(self, opened: OpenedLink) -> TenantStatement:
        """The link's statement, verified, with its history and the tenant's answer.

        NotGenuine when the stored signature does not verify.
        """
        key = opened.statement
        with self.sessions.kw["bind"].connect() as conn:
            current = conn.execute(
                _CURRENT, {"run": key.run_id, "unit": key.unit, "party": key.party}
            ).first()
            return self._statement(conn, opened, current)

    def _statement(
        self, conn: Connection, opened: OpenedLink, current: Row[Any] | None
    ) -> TenantStatement:
        """The statement from ``current`` (the columns of :func:`_with_statement`); the
        history is read on ``conn`` only when its signatures are new."""
        key = opened.statement
        if current is None or current.payload is None:
            raise NotGenuine(
                f"run {key.run_id!r} has no posted statement for {key.unit}/{key.party}"
            )
        document = self._verify(current.payload, current.kid, current.signature)
        signed = (opened.site, key.unit, key.party, current.period_start, current.history)
        history = self._history.get(signed)
        if history is None:
            history = self._verified_history(
                conn,
                key.unit,
                key.party,
                conn.execute(
                    _HISTORY,
                    {
                        "unit": key.unit,
                        "party": key.party,
                        "site": opened.site,
                        "since": current.period_start - timedelta(days=366),
                        "until": current.period_start,
                    },
                ).all(),
            )
            with self._lock:
                self._history[signed] = history
                while len(self._history) > _CACHE_SIZE:
                    self._history.popitem(last=False)
        answer = Answer(
            confirmed_at=as_utc(current.confirmed_at),
            confirmed_name=current.confirmed_name or "",
            dispute_id=current.dispute_id,
            dispute_comment=current.dispute_comment or "",
            dispute_status=current.dispute_status or "",
            dispute_resolution=current.dispute_resolution or "",
        )
        return TenantStatement(
            key,
            document,
            current.kid,
            current.signature,
            history,
            answer,
            current.notice_language,
        )

    def _verified_history(
        self, conn: Connection, unit: str, party: str, rows: list[Row[Any]]
    ) -> list[HistoryPoint]:
        """Points of ``unit``/``party``'s statements of the runs in ``rows`` that verify (one
        that does not is left out, never shown), the last :data:`HISTORY_MONTHS`. A run's
        point comes from its signed summary (one verification per run, kept); a run without
        one, or whose summary does not verify, from its statement."""
        history = []
        for r in rows[-HISTORY_MONTHS:]:
            facts = None
            if r.summary_signature is not None:
                summary = self._summary(conn, r.run_id, r.summary_kid, r.summary_signature)
                facts = summary.get((unit, party)) if summary is not None else None
            if facts is None:
                statement = conn.execute(
                    _HISTORY_STATEMENT, {"run": r.run_id, "unit": unit, "party": party}
                ).first()
                try:
                    doc = self._verify(statement.payload, statement.kid, statement.signature)
                except NotGenuine:
                    continue
                facts = StatementFacts(int(doc["total"]["cents"]), own_kwh(doc))
            history.append(HistoryPoint(r.period_start, facts.cents, facts.own_kwh))
        return history

    def _summary(
        self, conn: Connection, run_id: str, kid: str, signature: str
    ) -> dict[tuple[str, str], StatementFacts] | None:
        """Run ``run_id``'s verified summary (read and verified once), None when it does
        not verify."""
        key = (run_id, signature)
        if key in self._summaries:
            return self._summaries[key]
        payload = conn.execute(_SUMMARY, {"run": run_id}).scalar_one()
        try:
            facts: dict[tuple[str, str], StatementFacts] | None = verify_summary(
                SignedStatement(payload, kid, signature), self.public_key, run_id
            )
        except (SignatureError, KeyError, TypeError, ValueError):
            facts = None
        with self._lock:
            self._summaries[key] = facts
            while len(self._summaries) > _SUMMARY_CACHE_SIZE:
                self._summaries.popitem(last=False)
        return facts

    def signed_export(self, opened: OpenedLink) -> dict[str, str]:
        """The signed form of the link's statement (payload, key id, signature) for anyone
        who wants to verify it independently."""
        key = opened.statement
        with self.sessions() as session:
            row = session.get(ApportionStatement, (key.run_id, key.unit, key.party))
        if row is None:
            raise NotGenuine(f"run {key.run_id!r} has no statement for {key.unit}/{key.party}")
        return SignedStatement(row.payload, row.kid, row.signature).as_dict()

    def confirm(self, opened: OpenedLink, name: str) -> datetime:
        """Record the tenant's confirmation of the statement with the ``name`` the tenant
        typed (required, stored and shown to finance); AnswerError when the name is empty
        or too long, it was confirmed already or a dispute of it is open."""
        key = opened.statement
        typed = " ".join(name.split())
        if not typed:
            raise AnswerError("type your name to confirm the statement")
        if len(typed) > MAX_NAME_CHARS:
            raise AnswerError(f"a name has at most {MAX_NAME_CHARS} characters, got {len(typed)}")
        now = self.clock()
        statement = self.statement(opened)
        try:
            with self.sessions.begin() as session:
                if statement.answer.dispute_status == "open":
                    raise AnswerError(
                        "a dispute of this statement is open; finance answers it first"
                    )
                session.add(
                    StatementConfirmation(
                        run_id=key.run_id,
                        unit=key.unit,
                        party=key.party,
                        link_nonce=opened.nonce,
                        confirmed_at=now,
                        total_cents=int(statement.document["total"]["cents"]),
                        confirmed_name=typed,
                    )
                )
                record(
                    session,
                    at=now,
                    actor=f"{TENANT_ACTOR}{key.party}",
                    action="confirm",
                    subject=f"statement:{key.run_id}/{key.unit}/{key.party}",
                    detail=f"confirmed {statement.document['total']['amount_cny']} CNY as {typed}",
                )
                record(
                    session,
                    at=now,
                    actor=f"{TENANT_ACTOR}{key.party}",
                    action="confirm",
                    subject=f"run:{key.run_id}",
                    detail=f"unit {key.unit}",
                )
        except IntegrityError:
            raise AnswerError("this statement was confirmed already") from None
        return now

    def set_notice_language(self, opened: OpenedLink, language: str) -> str:
        """The tenant of the link's statement chooses the language of their notices
        (``zh-CN`` or ``en``); audited on the tenant. AnswerError when the language is not
        one of those or the statement's party is no registered tenant."""
        try:
            check_language(language)
        except ValueError as exc:
            raise AnswerError(str(exc)) from None
        party = opened.statement.party
        now = self.clock()
        with self.sessions.begin() as session:
            tenant = session.get(Tenant, party)
            if tenant is None:
                raise AnswerError("notices are not sent for this statement's party")
            if tenant.language != language:
                record(
                    session,
                    at=now,
                    actor=f"{TENANT_ACTOR}{party}",
                    action="notice_language",
                    subject=f"tenant:{party}",
                    detail=f"{tenant.language} → {language}",
                )
                tenant.language = language
        return language

    def dispute(self, opened: OpenedLink, comment: str) -> int:
        """Open a dispute of the statement with the tenant's comment; its id."""
        key = opened.statement
        text = comment.strip()
        if not text:
            raise AnswerError("a dispute needs a comment saying what is wrong")
        if len(text) > MAX_COMMENT_CHARS:
            raise AnswerError(
                f"a comment has at most {MAX_COMMENT_CHARS} characters, got {len(text)}"
            )
        now = self.clock()
        params = {"run": key.run_id, "unit": key.unit, "party": key.party}
        with self.sessions.begin() as session:
            conn = session.connection()
            answer = _answer(
                conn.execute(_CONFIRMED, params).first(),
                conn.execute(_LAST_DISPUTE, params).first(),
            )
            if answer.confirmed_at is not None:
                raise AnswerError("this statement was confirmed already")
            if answer.dispute_status == "open":
                raise AnswerError("a dispute of this statement is open already")
            dispute = StatementDispute(
                run_id=key.run_id,
                site_id=opened.site,
                unit=key.unit,
                party=key.party,
                link_nonce=opened.nonce,
                comment=text,
                opened_at=now,
                status="open",
            )
            session.add(dispute)
            session.flush()
            record(
                session,
                at=now,
                actor=f"{TENANT_ACTOR}{key.party}",
                action="dispute",
                subject=f"run:{key.run_id}",
                detail=f"unit {key.unit}: {text[:200]}",
            )
            return int(dispute.id)


def _answer(confirmed: Row[Any] | None, dispute: Row[Any] | None) -> Answer:
    return Answer(
        confirmed_at=as_utc(confirmed.confirmed_at) if confirmed else None,
        dispute_id=dispute.id if dispute else None,
        dispute_comment=dispute.comment if dispute else "",
        dispute_status=dispute.status if dispute else "",
        dispute_resolution=(dispute.resolution or "") if dispute else "",
    )


# The queries of a statement page, built once: the page is opened often.
_EARLIER = aliased(StatementDispute)
_LATEST_DISPUTE = (
    select(func.max(_EARLIER.id))
    .where(
        _EARLIER.run_id == ApportionStatement.run_id,
        _EARLIER.unit == ApportionStatement.unit,
        _EARLIER.party == ApportionStatement.party,
    )
    .correlate(ApportionStatement)
    .scalar_subquery()
)
# The history is computed from verified payloads once per set of (run, signature) of the
# tenant's posted statements up to this one (a superset of the 12-month window, so that the
# set is read in the same round trip without date arithmetic in SQL): a new posting or a void
# changes the set, a changed signature too. A history payload changed in the database under
# its old signature shows once the cache lets it go. The set is only a cache key: an order
# the database changed would cost a recomputation, never a wrong history.
_SIGNED = aliased(ApportionStatement)
_SIGNED_RUN = aliased(ApportionRun)
# written into the SQL: a plain string separator is rendered anew on every execution
_COMMA: Any = literal_column("','")
_HISTORY_SIGNED = (
    select(func.aggregate_strings(_SIGNED.run_id + " " + _SIGNED.signature, _COMMA))
    .join_from(_SIGNED, _SIGNED_RUN, _SIGNED_RUN.id == _SIGNED.run_id)
    .where(
        _SIGNED.unit == ApportionStatement.unit,
        _SIGNED.party == ApportionStatement.party,
        _SIGNED_RUN.site_id == ApportionRun.site_id,
        _SIGNED_RUN.status == "posted",
        _SIGNED_RUN.period_start <= ApportionRun.period_start,
    )
    .correlate(ApportionStatement, ApportionRun)
    .scalar_subquery()
)


def _with_statement(query: Select[Any]) -> Select[Any]:
    """``query`` (over ``apportion_statements`` joined to its run) with what the page shows
    that can change: the signed statement, the tenant's confirmation, the latest dispute,
    and the history's signatures (``history``)."""
    return (
        query.add_columns(
            ApportionStatement.payload,
            ApportionStatement.kid,
            ApportionStatement.signature,
            ApportionRun.period_start,
            StatementConfirmation.confirmed_at,
            StatementConfirmation.confirmed_name,
            StatementDispute.id.label("dispute_id"),
            StatementDispute.comment.label("dispute_comment"),
            StatementDispute.status.label("dispute_status"),
            StatementDispute.resolution.label("dispute_resolution"),
            _HISTORY_SIGNED.label("history"),
            Tenant.language.label("notice_language"),
        )
        .outerjoin(Tenant, Tenant.id == ApportionStatement.party)
        .outerjoin(
            StatementConfirmation,
            and_(
                StatementConfirmation.run_id == ApportionStatement.run_id,
                StatementConfirmation.unit == ApportionStatement.unit,
                StatementConfirmation.party == ApportionStatement.party,
            ),
        )
        .outerjoin(StatementDispute, StatementDispute.id == _LATEST_DISPUTE)
    )


_CURRENT = _with_statement(
    select()
    .select_from(ApportionStatement)
    .join(ApportionRun, ApportionRun.id == ApportionStatement.run_id)
    .where(
        ApportionStatement.run_id == bindparam("run"),
        ApportionStatement.unit == bindparam("unit"),
        ApportionStatement.party == bindparam("party"),
        ApportionRun.status == "posted",
    )
)
# The link's facts and its statement in one row; a link without its statement row gets
# NULL statement columns (refused as not genuine once the link itself is good).
_LINKED_STATEMENT = _with_statement(
    LINK_QUERY.outerjoin(
        ApportionStatement,
        and_(
            ApportionStatement.run_id == TenantLink.run_id,
            ApportionStatement.unit == TenantLink.unit,
            ApportionStatement.party == TenantLink.party,
        ),
    )
)
_HISTORY = (
    select(
        ApportionRun.id.label("run_id"),
        ApportionRun.period_start,
        ApportionRun.summary_kid,
        ApportionRun.summary_signature,
    )
    .join(ApportionStatement, ApportionStatement.run_id == ApportionRun.id)
    .where(
        ApportionStatement.unit == bindparam("unit"),
        ApportionStatement.party == bindparam("party"),
        ApportionRun.site_id == bindparam("site"),
        ApportionRun.status == "posted",
        ApportionRun.period_start > bindparam("since"),
        ApportionRun.period_start <= bindparam("until"),
    )
    .order_by(ApportionRun.period_start)
)
_SUMMARY = select(ApportionRun.summary_payload).where(ApportionRun.id == bindparam("run"))
_HISTORY_STATEMENT = select(
    ApportionStatement.payload, ApportionStatement.kid, ApportionStatement.signature
).where(
    ApportionStatement.run_id == bindparam("run"),
    ApportionStatement.unit == bindparam("unit"),
    ApportionStatement.party == bindparam("party"),
)
_CONFIRMED = select(StatementConfirmation.confirmed_at).where(
    StatementConfirmation.run_id == bindparam("run"),
    StatementConfirmation.unit == bindparam("unit"),
    StatementConfirmation.party == bindparam("party"),
)
_LAST_DISPUTE = (
    select(
        StatementDispute.id,
        StatementDispute.comment,
        StatementDispute.status,
        StatementDispute.resolution,
    )
    .where(
        StatementDispute.run_id == bindparam("run"),
        StatementDispute.unit == bindparam("unit"),
        StatementDispute.party == bindparam("party"),
    )
    .order_by(StatementDispute.id.desc())
    .limit(1)
)
