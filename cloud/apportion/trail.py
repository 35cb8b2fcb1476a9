"""A run's audit trail, once per event.

A run keeps who created, reviewed, approved, posted and voided it in its own fields, and the
service that made each change wrote an audit-log entry in the same transaction (``review``,
``approve``, ``post``, ``void``, ``run.close``). Listing both showed every step twice; here
each log entry of a step the run's fields record is merged into that step (its detail kept),
and the remaining entries (a manual reading, a tenant's answer, a dispute resolved) follow in
time order. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from cloud.staff.audit import AuditRecord

#: The run's own steps (the names of its fields' events), in their order.
RUN_STEPS = ("create", "reviewed", "approved", "posted", "voided")
#: Audit-log actions that record one of the run's own steps.
LOG_STEPS = {
    "run.close": "create",
    "review": "reviewed",
    "approve": "approved",
    "post": "posted",
    "void": "voided",
}


def merge_trail(steps: Iterable[AuditRecord], entries: Iterable[AuditRecord]) -> list[AuditRecord]:
    """The run's ``steps`` (from its fields; actions in :data:`RUN_STEPS`) and the audit
    log's ``entries`` about it as one list in time order, one record per event: a log entry
    of a step the run records (same step, same actor) is merged into it, keeping whichever
    detail is not empty (the log's first). A log entry of a step the run's fields do not
    show is kept, with the step's name."""
    merged = {(s.action, s.actor): s for s in steps}
    out: list[AuditRecord] = []
    for entry in entries:
        step = LOG_STEPS.get(entry.action)
        if step is None:
            out.append(entry)
            continue
        found = merged.get((step, entry.actor))
        if found is None:
            out.append(AuditRecord(entry.at, entry.actor, step, entry.subject, entry.detail))
        else:
            merged[(step, entry.actor)] = AuditRecord(
                found.at, found.actor, step, found.subject, entry.detail or found.detail
            )
    out.extend(merged.values())
    out.sort(key=lambda e: (e.at, RUN_STEPS.index(e.action) if e.action in RUN_STEPS else 9))
    return out
