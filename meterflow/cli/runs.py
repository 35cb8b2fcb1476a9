"""``meterflow cloud run list|show|review|approve|post|void``: apportionment runs from the
command line, on the cloud's own host (``MF_*`` settings: the registry, and the cloud key in
the data directory for posting).

Each step acts as a staff account named with ``--as``, decided as on the finance pages: the
account must exist and be enabled, have the admin or finance role and the run's site in its
scope; the step goes through the same service as the pages
(:meth:`cloud.apportion.review.RunReviewService.act`), so it is written to the audit log
once, and four eyes hold (whoever created or reviewed a run cannot approve it).

Exit status: 0 done; 2 refused, with one line on stderr (unknown run or account, a run
outside the account's sites, wrong state, four eyes, held run, no reason, no cloud key).
Only typer is imported at module level (see :mod:`meterflow.cli.web`).
"""

from __future__ import annotations

import json
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

import typer

from meterflow.cli.apportion import line_table, lines_json
from meterflow.cli.common import acting_as, fail, load_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from cloud.apportion.models import ApportionRun
    from cloud.apportion.review import RunAction, RunReviewService
    from cloud.apportion.statement import LineRow
    from cloud.staff.accounts import AccountService, Principal

_EXIT_CODES = "Exit status: 0 done; 2 refused, with one line on stderr saying why."
run_app = typer.Typer(
    help=(
        "Apportionment runs: list, show, review, approve, post, void (four eyes: whoever "
        f"created or reviewed a run cannot approve it). {_EXIT_CODES}"
    ),
    no_args_is_help=True,
)
RunArg = Annotated[str, typer.Argument(help="the run's id (see `run list`)")]
AsOpt = Annotated[
    str, typer.Option("--as", help="the staff account that does this step (admin or finance)")
]
ReadAsOpt = Annotated[
    str | None,
    typer.Option("--as", help="only what this staff account may see (default: every site)"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON document")]


class _Services:
    """The registry's sessions, the run service (with the cloud key when there is one) and
    the accounts, as ``meterflow cloud api`` builds them from the same settings."""

    def __init__(self, *, need_key: bool = False) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import (
            Ed25519PrivateKey,
        )

        from cloud.apportion.review import RunReviewService
        from cloud.gateways.provisioning import CloudKeyError, CloudSigner
        from cloud.leases.tenants import tenant_names
        from cloud.staff.accounts import AccountService
        from meterflow.assembly import registry

        settings = load_settings()
        key_path = settings.data_dir / "cloud.key"
        signing_key = None
        if key_path.exists():
            try:
                CloudSigner.load_or_create(key_path)  # checks the file (mode, type)
            except CloudKeyError as exc:
                raise fail(str(exc)) from None
            loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if isinstance(loaded, Ed25519PrivateKey):
                signing_key = loaded
        if need_key and signing_key is None:
            raise fail(
                f"no cloud key at {key_path}: statements are signed with the cloud's key, "
                "made when `meterflow cloud api` first starts (expected MF_DATA_DIR to be the "
                "cloud's data directory)"
            )
        # without a key nothing is posted and no stored statement is verified here
        public = (signing_key or Ed25519PrivateKey.generate()).public_key()
        self.sessions = registry(settings)
        self.runs: RunReviewService = RunReviewService(
            self.sessions, signing_key, public, tenant_names=partial(tenant_names, self.sessions)
        )
        self.accounts: AccountService = AccountService(self.sessions)

    def principal(self, account: str | None) -> Principal:
        """The account's principal, or (None) the host's operator, who sees every site."""
        return acting_as(self.sessions, account)


def _when(value: Any) -> str | None:
    from cloud.registry.base import as_utc

    return as_utc(value).isoformat() if value is not None else None


def _people(run: ApportionRun) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for step in ("created", "reviewed", "approved", "posted", "voided"):
        out[f"{step}_by"] = getattr(run, f"{step}_by")
        out[f"{step}_at"] = _when(getattr(run, f"{step}_at"))
    return out


def _summary(run: ApportionRun, cents: int) -> dict[str, Any]:
    from cloud.apportion.money import cny

    return {
        "id": run.id,
        "site": run.site_id,
        "period": {"start": run.period_start.isoformat(), "end": run.period_end.isoformat()},
        "status": run.status,
        "held": bool(run.held),
        "flags": len(run.flags or []),
        "total_cents": cents,
        "total_cny": cny(cents),
        **_people(run),
    }


@run_app.command("list")
def run_list(
    site: Annotated[str | None, typer.Option(help="only this site")] = None,
    status: Annotated[
        str | None, typer.Option(help="only runs in this state: draft, reviewed, ...")
    ] = None,
    account: ReadAsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Runs, newest first: site, period, state, hold, total (CNY), who did each step.

    Exit status: 0 listed; 2 unknown --status or --as account.
    """
    from sqlalchemy import func, select

    from cloud.apportion.models import ApportionLine, ApportionRun
    from cloud.apportion.runs import RunStatus

    if status is not None and status not in {s.value for s in RunStatus}:
        raise fail(f"--status {status!r}: expected one of {', '.join(s.value for s in RunStatus)}")
    services = _Services()
    who = services.principal(account)
    totals = (
        select(ApportionLine.run_id, func.sum(ApportionLine.cents).label("cents"))
        .group_by(ApportionLine.run_id)
        .subquery()
    )
    query = (
        select(ApportionRun, func.coalesce(totals.c.cents, 0))
        .outerjoin(totals, totals.c.run_id == ApportionRun.id)
        .order_by(ApportionRun.created_at.desc(), ApportionRun.period_start.desc())
    )
    sites = who.site_filter()
    if sites is not None:
        query = query.where(ApportionRun.site_id.in_(sorted(sites)))
    if site:
        query = query.where(ApportionRun.site_id == site)
    if status:
        query = query.where(ApportionRun.status == status)
    with services.sessions() as session:
        rows = [_summary(run, int(cents)) for run, cents in session.execute(query).all()]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    header = (
        f"{'run':<36} {'site':<12} {'period':<23} {'status':<9} {'held':<4} "
        f"{'CNY':>12}  created/reviewed/approved by"
    )
    typer.echo(header)
    typer.echo("-" * len(header))
    for r in rows:
        people = "/".join(r[f"{s}_by"] or "-" for s in ("created", "reviewed", "approved"))
        typer.echo(
            f"{r['id']:<36} {r['site']:<12} {r['period']['start']} … {r['period']['end']} "
            f"{r['status']:<9} {'HOLD' if r['held'] else '':<4} {r['total_cny']:>12}  {people}"
        )


def _rows(session: Session, run: ApportionRun) -> tuple[list[LineRow], str]:
    """The run's lines with their explanations (recomputed from the stored inputs, which
    must reproduce the stored lines) and the adjustment lines it carries; when the
    recomputation fails, the stored lines without explanations and the error."""
    from sqlalchemy import select

    from cloud.apportion.errors import ApportionError
    from cloud.apportion.models import ApportionLine
    from cloud.apportion.runs import rerun
    from cloud.apportion.statement import LineRow, line_rows

    stored = session.scalars(
        select(ApportionLine).where(ApportionLine.run_id == run.id).order_by(ApportionLine.line_no)
    ).all()

    def row(x: ApportionLine) -> LineRow:
        note = f"adjustment of posted run {x.adjusts_run_id}" if x.adjusts_run_id else ""
        return LineRow(
            x.register,
            x.tariff,
            x.unit,
            x.party,
            x.from_,
            x.to,
            x.component,
            x.origin,
            float(x.kwh),
            0.0,
            float(x.cents),
            x.cents,
            note,
        )

    try:
        _, result = rerun(session, run.id)
    except ApportionError as exc:
        return [row(x) for x in stored], str(exc)
    return line_rows(result) + [row(x) for x in stored if x.kind != "charge"], ""


@run_app.command("show")
def run_show(run_id: RunArg, account: ReadAsOpt = None, as_json: JsonOpt = False) -> None:
    """A run: summary, flags, statements and every line (JSON form of `cloud apportion`).

    Exit status: 0 shown; 2 no such run (or not in the --as account's sites).
    """
    from cloud.apportion.models import ApportionRun
    from cloud.apportion.money import cny
    from cloud.apportion.statement import LANDLORD_PARTY

    services = _Services()
    who = services.principal(account)
    with services.sessions() as session:
        run = session.get(ApportionRun, run_id)
        if run is None or not who.may_act_on(run.site_id):
            raise fail(f"no run {run_id!r}" + (f" in the sites of {account!r}" if account else ""))
        rows, error = _rows(session, run)
        cents = sum(r.cents for r in rows)
        statements: dict[tuple[str, str], int] = {}
        for r in rows:
            key = ("" if r.party == LANDLORD_PARTY else r.unit, r.party)
            statements[key] = statements.get(key, 0) + r.cents
        doc = {
            **_summary(run, cents),
            "flags": list(run.flags or []),
            "void_reason": run.void_reason,
            "input_hash": run.input_hash,
            "result_hash": run.result_hash,
            "recompute_error": error,
            "statements": [
                {"unit": u, "party": p, "cents": c, "amount_cny": cny(c)}
                for (u, p), c in sorted(statements.items())
            ],
            "lines": lines_json(rows),
        }
    if as_json:
        typer.echo(json.dumps(doc, ensure_ascii=False, indent=2))
        return
    typer.echo(
        f"run {doc['id']} {doc['site']} {doc['period']['start']} … {doc['period']['end']} "
        f"(exclusive): {doc['status']}{', HELD' if doc['held'] else ''}, "
        f"total {doc['total_cny']} CNY"
    )
    for step in ("created", "reviewed", "approved", "posted", "voided"):
        if doc[f"{step}_by"]:
            typer.echo(f"{step} by {doc[f'{step}_by']} at {doc[f'{step}_at']}")
    if doc["void_reason"]:
        typer.echo(f"void reason: {doc['void_reason']}")
    typer.echo(f"input hash {doc['input_hash']}, result hash {doc['result_hash']}")
    for f in doc["flags"]:
        typer.echo(f"{'HOLD' if f['holds'] else 'note'} {f['code']} {f['subject']}: {f['message']}")
    if error:
        typer.echo(f"recomputing the run failed ({error}); stored lines shown")
    for s in doc["statements"]:
        typer.echo(f"statement {s['unit'] or '-'} {s['party']}: {s['amount_cny']} CNY")
    for line in line_table(rows):
        typer.echo(line)


def _act(action: RunAction, run_id: str, account: str, reason: str, as_json: bool) -> None:
    from cloud.apportion.review import ActionRefused, NotFound, RunAction

    services = _Services(need_key=action is RunAction.POST)
    who = services.principal(account)
    try:
        status = services.runs.act(who, run_id, action, reason)
    except NotFound:
        raise fail(f"no run {run_id!r} in the sites of {account!r}") from None
    except ActionRefused as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps({"id": run_id, "status": status, "by": account}))
    else:
        typer.echo(f"run {run_id}: {status} by {account}")


@run_app.command("review")
def run_review(run_id: RunArg, account: AsOpt, as_json: JsonOpt = False) -> None:
    """Mark a draft run reviewed.

    Exit status: 0 done; 2 refused: unknown run or account, role, site, not a draft.
    """
    from cloud.apportion.review import RunAction

    _act(RunAction.REVIEW, run_id, account, "", as_json)


@run_app.command("approve")
def run_approve(run_id: RunArg, account: AsOpt, as_json: JsonOpt = False) -> None:
    """Approve a reviewed run; four eyes: not by whoever created or reviewed it.

    Exit status: 0 done; 2 refused: unknown run/account, role, site, state, held, four eyes.
    """
    from cloud.apportion.review import RunAction

    _act(RunAction.APPROVE, run_id, account, "", as_json)


@run_app.command("post")
def run_post(run_id: RunArg, account: AsOpt, as_json: JsonOpt = False) -> None:
    """Post an approved run: recompute it, sign every statement with the cloud's key.

    Exit status: 0 done; 2 refused: unknown run/account, role, site, state, rerun, no key.
    """
    from cloud.apportion.review import RunAction

    _act(RunAction.POST, run_id, account, "", as_json)


@run_app.command("void")
def run_void(
    run_id: RunArg,
    account: AsOpt,
    reason: Annotated[str, typer.Option(help="why the run is void (kept with it)")],
    as_json: JsonOpt = False,
) -> None:
    """Void a run (any state but void), with the reason.

    Exit status: 0 done; 2 refused: unknown run/account, role, site, void already, no reason.
    """
    from cloud.apportion.review import RunAction

    _act(RunAction.VOID, run_id, account, reason, as_json)
