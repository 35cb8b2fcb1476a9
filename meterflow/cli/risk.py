"""``meterflow cloud risk ...``: train, score, list, forecast, backtest, simulate.

Each command prints JSON (one document; ``list`` and ``forecast`` a list) so that jobs and
people can read it. Dates are local dates YYYY-MM-DD; the default is today in Asia/Shanghai.
Only typer is imported at module level.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any

import typer

from meterflow.cli.common import fail

risk_app = typer.Typer(
    help="Move-out risk, tenant health score, vacancy forecast.", no_args_is_help=True
)

DateOpt = Annotated[
    str | None,
    typer.Option("--as-of", help="cutoff YYYY-MM-DD: the first day not seen (default: today)"),
]


def _day(text: str | None, option: str) -> date:
    from cloud.leases.periods import local_today

    if text is None:
        return local_today()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise fail(f"{option} {text!r}: expected YYYY-MM-DD") from None


def _services() -> tuple[Any, Any]:
    from meterflow.assembly import registry, series_store
    from meterflow.settings import Settings

    settings = Settings()
    return registry(settings), series_store(settings)


@risk_app.command("train")
def risk_train(as_of: DateOpt = None) -> None:
    """Train a model version on every lease outcome known by --as-of and store it with its
    metrics (in-sample and a time-split validation beside the health-score baseline)."""
    from cloud.risk.jobs import train_job

    day = _day(as_of, "--as-of")
    sessions, store = _services()
    try:
        with sessions.begin() as session:
            row = train_job(session, store, day)
            out = {
                "version": row.version,
                "as_of": day.isoformat(),
                "examples": row.examples,
                "metrics": row.metrics,
            }
    except ValueError as exc:
        raise fail(str(exc)) from None
    finally:
        store.close()
    typer.echo(json.dumps(out, default=str))


@risk_app.command("score")
def risk_score(
    as_of: DateOpt = None, site: Annotated[str | None, typer.Option(help="only this site")] = None
) -> None:
    """Score every running lease as of --as-of with the newest model and store the scores
    (the risk list and the renewal reminders read them)."""
    from cloud.risk.jobs import score, store_scores

    day = _day(as_of, "--as-of")
    sessions, store = _services()
    try:
        with sessions.begin() as session:
            scores = score(session, store, day, site_id=site)
            written = store_scores(session, scores)
    finally:
        store.close()
    high = int((scores.probability >= 0.5).sum()) if written else 0
    typer.echo(
        json.dumps(
            {
                "as_of": day.isoformat(),
                "model_version": scores.model_version,
                "leases": written,
                "high_risk": high,
                "bands": {b: int((scores.band == b).sum()) for b in ("green", "yellow", "red")},
            }
        )
    )


@risk_app.command("list")
def risk_list_command(
    site: Annotated[str | None, typer.Option(help="only this site")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 20,
) -> None:
    """The managers' risk list from the latest scores: highest move-out probability first,
    with reasons (in English) and the health score."""
    from cloud.risk.jobs import risk_list
    from cloud.risk.wording import reasons_text

    sessions, store = _services()
    store.close()
    with sessions() as session:
        rows = risk_list(session, site_id=site, limit=limit)
    worded = [{**r, "reasons": reasons_text(r["reasons"], "en")} for r in rows]
    typer.echo(json.dumps(worded, indent=1))


@risk_app.command("forecast")
def risk_forecast(
    site: Annotated[str, typer.Option(help="site id")],
    as_of: DateOpt = None,
    months: Annotated[int, typer.Option(min=1, max=24)] = 6,
) -> None:
    """Expected vacant units per building at each of the next months' ends, with a 90 %
    interval."""
    from cloud.risk.jobs import NoModel, vacancy_forecast

    day = _day(as_of, "--as-of")
    sessions, store = _services()
    try:
        with sessions() as session:
            rows = vacancy_forecast(session, store, site, day, months=months)
    except NoModel as exc:
        raise fail(str(exc)) from None
    finally:
        store.close()
    typer.echo(
        json.dumps(
            [
                {
                    "building": r.building,
                    "month": r.month.isoformat()[:7],
                    "on": r.on.isoformat(),
                    "vacant_now": r.current,
                    "expected": r.expected,
                    "low": r.low,
                    "high": r.high,
                    "expected_move_outs": r.move_outs,
                }
                for r in rows
            ],
            indent=1,
        )
    )


@risk_app.command("backtest")
def risk_backtest(
    split: Annotated[str, typer.Option(help="train on outcomes known by this day, test after it")],
    history_from: Annotated[str, typer.Option(help="first day of history")],
    history_to: Annotated[str, typer.Option(help="last day of history")],
) -> None:
    """Time-split backtest: ROC AUC and precision at the top 10 % for the model and the
    health-score baseline."""
    from cloud.risk.training import backtest

    sessions, store = _services()
    try:
        with sessions() as session:
            out = backtest(
                session,
                store,
                history_from=_day(history_from, "--history-from"),
                split=_day(split, "--split"),
                history_to=_day(history_to, "--history-to"),
            )
    except ValueError as exc:
        raise fail(str(exc)) from None
    finally:
        store.close()
    out.pop("model_params", None)
    typer.echo(json.dumps(out, indent=1))
