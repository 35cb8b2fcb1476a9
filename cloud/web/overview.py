"""What needs a person's attention, on the staff home page: a count per kind of work the
role does, each linking to the page where it is done — finance's held runs and runs waiting
for review or approval and open tenant disputes; the work queue's items (overdue ones
urgent); deposit refunds waiting (past their SLA urgent); an engineer's gateways not online
(offline, stale or never heard from; revoked ones left out).
Each count is read through the same service, scope and route policy as its page: a role
that may not open the page sees no count of it."""

from __future__ import annotations

from dataclasses import dataclass

from cloud.leases.deposit_desk import DepositDesk
from cloud.staff.accounts import Principal
from cloud.web.authz import POLICIES, ROLES
from cloud.web.deps import WebServices


@dataclass(frozen=True)
class Attention:
    """A count of one kind of work: its label (an i18n key with ``{n}``), the page, and
    whether any of it is urgent (held, overdue, past its SLA, offline)."""

    key: str
    count: int
    href: str
    urgent: bool = False


def _may(who: Principal, route: str) -> bool:
    return who.role in ROLES[POLICIES[route]]


def attention(web: WebServices, who: Principal) -> list[Attention]:
    """The counts for ``who`` that are not zero, in the order of the navigation."""
    out: list[Attention] = []
    if _may(who, "runs_page"):
        runs = web.runs.list_runs(who)
        held = sum(1 for r in runs if r.held and r.status in ("draft", "reviewed"))
        review = sum(1 for r in runs if r.status == "draft" and not r.held)
        approve = sum(1 for r in runs if r.status == "reviewed" and not r.held)
        out += [
            Attention("overview_runs_held", held, "/finance/runs", urgent=True),
            Attention("overview_runs_review", review, "/finance/runs"),
            Attention("overview_runs_approve", approve, "/finance/runs"),
        ]
    if _may(who, "disputes_page"):
        out.append(Attention("overview_disputes", len(web.runs.disputes(who)), "/finance/disputes"))
    if _may(who, "queue_page"):
        items = web.queue.items(who)
        overdue = sum(1 for i in items if i.sla == "red")
        out += [
            Attention("overview_queue_overdue", overdue, "/queue", urgent=True),
            Attention("overview_queue", len(items) - overdue, "/queue"),
        ]
    if _may(who, "deposits_page"):
        waiting = [
            r
            for r in DepositDesk(web.leases.sessions, clock=web.leases.clock).refunds(who)
            if r.waiting_for is not None
        ]
        late = sum(1 for r in waiting if r.sla == "red")
        out += [
            Attention("overview_deposits_late", late, "/deposits", urgent=True),
            Attention("overview_deposits", len(waiting) - late, "/deposits"),
        ]
    if _may(who, "gateways_page"):
        gateways = web.gateways.gateways(who)
        offline = sum(1 for g in gateways if g.state != "online" and g.revoked_at is None)
        out.append(Attention("overview_gateways_offline", offline, "/engineer/gateways", True))
    return [a for a in out if a.count]


__all__ = ["Attention", "attention"]
