"""The audit log's change entries: who, from where, and only the fields that changed."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from cloud.registry.db import open_registry
from cloud.staff.audit import entries_for, record_change

AT = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)


def test_a_change_keeps_who_where_and_the_changed_fields_only(tmp_path: Path) -> None:
    sessions = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    with sessions.begin() as session:
        record_change(
            session,
            at=AT,
            actor="mgr-a",
            origin="web 127.0.0.1",
            action="lease.update",
            subject="lease:L1",
            before={"end_on": date(2027, 1, 1), "rent": Decimal("80.00"), "unit": "A-101"},
            after={"end_on": date(2028, 1, 1), "rent": Decimal("80.00"), "unit": "A-101"},
            note="提前续签",
        )
        record_change(
            session,
            at=AT,
            actor="cli",
            origin="cli",
            action="policy.create",
            subject="policy:park-a/office",
            before=None,
            after={"grace_days": 5},
        )
    with sessions() as session:
        first, second = entries_for(session, ["lease:L1", "policy:park-a/office"])
    assert (first.actor, first.action) == ("mgr-a", "lease.update")
    assert json.loads(first.detail) == {
        "from": "web 127.0.0.1",
        "before": {"end_on": "2027-01-01"},
        "after": {"end_on": "2028-01-01"},
        "note": "提前续签",
    }
    assert json.loads(second.detail)["before"] is None
    assert json.loads(second.detail)["after"] == {"grace_days": 5}


def test_the_newest_entries_first_when_asked(tmp_path: Path) -> None:
    sessions = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    with sessions.begin() as session:
        for n in range(5):
            record_change(
                session,
                at=AT.replace(minute=n),
                actor="a",
                origin="cli",
                action="lease.update",
                subject="lease:L1",
                before={"n": n},
                after={"n": n + 1},
            )
    with sessions() as session:
        oldest = entries_for(session, ["lease:L1"], limit=2)
        newest = entries_for(session, ["lease:L1"], limit=2, newest_first=True)
    assert [e.at.minute for e in oldest] == [0, 1]
    assert [e.at.minute for e in newest] == [4, 3]
