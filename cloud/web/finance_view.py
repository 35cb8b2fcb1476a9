"""What the run page shows of a run's flags and audit trail, in the reader's language.

Flags are stored with a code, a subject (``node MAIN``, ``meters U1, U2``, ``tariff T``,
``pot total/v1``) and an English message with the numbers; the page shows the code's label
and one-line explanation from the translations (``flag_<code>``, ``flag_<code>_help``), the
subject in words, and the message as the detail. Audit entries are shown with the action's
label (``trail_<action>``), the person's display name (a tenant's name from the tenants'
records) and the detail, the service-written details in words. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cloud.staff.audit import AuditRecord
from cloud.statements.access import TENANT_ACTOR

#: Every flag code the apportionment writes (cloud/apportion: engine, checks); each has a
#: label and an explanation in every language (tests/web/test_finance_view.py checks).
FLAG_CODES = (
    "negative_residual",
    "negative_usage",
    "estimates_over_limit",
    "rollover_implausible",
    "markup_over_cap",
    "loss_over_cap",
    "rollover",
    "prorated",
    "estimated",
    "area_fallback",
    "tou_ratio_low",
    "bill_differs_from_catalog",
)
#: Subject prefixes and the translation key of their word.
_SUBJECTS = (
    ("meters ", "subject_meters"),
    ("meter ", "subject_meter"),
    ("node ", "subject_node"),
    ("tariff ", "subject_tariff"),
    ("pot ", "subject_pot"),
)


@dataclass(frozen=True)
class FlagView:
    """A flag as the page shows it: code, label, explanation, subject in words, the
    stored message (English, with the numbers), whether it holds the run, and who
    accepted it (estimates over the limit accepted at close) with the reason."""

    code: str
    label: str
    help: str
    subject: str
    message: str
    holds: bool
    accepted_by: str = ""
    accepted_reason: str = ""


@dataclass(frozen=True)
class TrailView:
    """An audit entry as the page shows it: when, who (display name), what, detail."""

    at: datetime
    actor: str
    action: str
    detail: str


def subject_text(subject: str, t: Mapping[str, str]) -> str:
    """``node MAIN`` → ``节点 MAIN`` (the subject's kind in the reader's language)."""
    for prefix, key in _SUBJECTS:
        if subject.startswith(prefix) and key in t:
            return f"{t[key]} {subject.removeprefix(prefix)}"
    return subject


def flag_view(flag: Mapping[str, Any], t: Mapping[str, str]) -> FlagView:
    """A stored flag (``code``, ``subject``, ``message``, ``holds``) for the page."""
    code = str(flag.get("code", ""))
    return FlagView(
        code,
        t.get(f"flag_{code}", code),
        t.get(f"flag_{code}_help", ""),
        subject_text(str(flag.get("subject", "")), t),
        str(flag.get("message", "")),
        bool(flag.get("holds")),
        str(flag.get("accepted_by") or ""),
        str(flag.get("accepted_reason") or ""),
    )


def flag_views(flags: Iterable[Mapping[str, Any]], t: Mapping[str, str]) -> list[FlagView]:
    """The run's flags for the page, holding ones first."""
    views = [flag_view(f, t) for f in flags]
    return sorted(views, key=lambda f: not f.holds)


def actor_text(actor: str, names: Mapping[str, str], t: Mapping[str, str]) -> str:
    """A staff member's user name as it is; ``tenant:ACME`` → ``租户 星辰科技 (ACME)``."""
    if not actor.startswith(TENANT_ACTOR):
        return actor
    party = actor.removeprefix(TENANT_ACTOR)
    name = names.get(party)
    return f"{t.get('tenant', 'tenant')} {name} ({party})" if name else f"{t['tenant']} {party}"


#: Details the services write (cloud/apportion/close.py, review.py, runs.py,
#: cloud/statements/access.py), read back into their parts: (action, pattern, key).
_DETAILS = (
    (
        "create",
        re.compile(
            r"site (?P<site>\S+) (?P<start>\S+) … (?P<end>\S+) version (?P<version>\d+)"
            r"(?:, supersedes (?P<supersedes>\S+))?; (?P<interpolated>\d+) interpolated, "
            r"(?P<missing>\d+) missing boundary readings(?P<rest>.*)"
        ),
        "trail_detail_close",
    ),
    (
        "voided",
        re.compile(r"superseded by run (?P<run>\S+) \(version (?P<version>\d+)\)"),
        "trail_detail_superseded",
    ),
    (
        "reading.manual",
        re.compile(r"(?P<meter>\S+) (?P<day>\S+) display (?P<value>\S+) × (?P<multiplier>\S+)"),
        "trail_detail_reading",
    ),
    ("confirm", re.compile(r"unit (?P<unit>\S+)"), "trail_detail_unit"),
    (
        "dispute",
        re.compile(r"unit (?P<unit>[^:\s]+): (?P<text>.*)", re.S),
        "trail_detail_dispute",
    ),
    (
        "resolve",
        re.compile(r"dispute (?P<id>\d+) of unit (?P<unit>[^:\s]+): (?P<text>.*)", re.S),
        "trail_detail_resolve",
    ),
)
_ACCEPTED = re.compile(r"; estimates at (?P<node>[^:]+) accepted: (?P<why>[^;]*)")


def detail_text(action: str, detail: str, t: Mapping[str, str]) -> str:
    """A service-written detail in the reader's language (a person's words, such as a void
    reason or a dispute's comment, stay as they were written)."""
    for act, pattern, key in _DETAILS:
        found = pattern.fullmatch(detail) if act == action else None
        if found is None or key not in t:
            continue
        parts = {k: v or "" for k, v in found.groupdict().items()}
        text = t[key].format(**parts)
        if action == "create":
            if parts["supersedes"]:
                text += t["trail_detail_supersedes"].format(**parts)
            for accepted in _ACCEPTED.finditer(parts["rest"]):
                text += t["trail_detail_accepted"].format(**accepted.groupdict())
        return text
    return detail


def trail_views(
    trail: Iterable[AuditRecord], names: Mapping[str, str], t: Mapping[str, str]
) -> list[TrailView]:
    """The run's audit trail (one record per event) for the page."""
    return [
        TrailView(
            e.at,
            actor_text(e.actor, names, t),
            t.get(f"trail_{e.action}", e.action),
            detail_text(e.action, e.detail, t),
        )
        for e in trail
    ]


def trail_parties(trail: Iterable[AuditRecord]) -> set[str]:
    """The parties of the tenants who wrote entries of the trail."""
    return {e.actor.removeprefix(TENANT_ACTOR) for e in trail if e.actor.startswith(TENANT_ACTOR)}
