"""The form on ``/policies`` that creates a policy set, and the words a set's values are
shown in.

Every field of :class:`cloud.leases.terms.LeasePolicy` is an input in the unit people use
(days, hours, yuan for cents, percent for rates), prefilled from a preset or from what a
site's sets give today (:func:`prefill`). A post is read bounded (:func:`read`): known
input names only, each once, short values — otherwise :class:`Refused` (400), answered with
the page and no value echoed. Each field is then parsed and checked on its own with the
domain's :func:`cloud.leases.policies.validate_fields`; a bad one is named with what it
expects, in the reader's language. A blank input takes the preset's value; the set is
created from the preset with only the fields that differ from it (:attr:`Posted.changes`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from cloud.apportion.money import cny
from cloud.leases.policies import POLICY_FIELDS, PRESETS, PolicyError, validate_fields
from cloud.leases.policy_sets import FIRST_DAY, LAST_DAY, SET_TYPES, PolicySet
from cloud.leases.terms import (
    DEFAULT_POLICY,
    DEPOSIT_STEPS,
    LADDER_ACTIONS,
    MAX_RUNGS,
    LeasePolicy,
)

_INT = re.compile(r"[0-9]{1,9}")
_DECIMAL = re.compile(r"-?[0-9]{1,9}(\.[0-9]{1,6})?")
_MONEY = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?")
_SPLIT = re.compile(r"[\s,，、/;；]+")
_DEFAULT_DOC: dict[str, Any] = DEFAULT_POLICY.model_dump(mode="json")

#: Inputs that are not policy fields, and their longest value [characters].
HEAD: dict[str, int] = {
    "csrf": 128,
    "site": 64,
    "property_type": 16,
    "effective_from": 10,
    "preset": 32,
}
#: Each input of a policy field: its name, the field, its longest value [characters].
INPUTS: dict[str, tuple[str, int]] = {
    "reminder_offsets_days": ("reminder_offsets_days", 60),
    "risk_threshold_pct": ("risk_threshold", 12),
    "risk_lead_days": ("risk_lead_days", 9),
    "acknowledge_within_days": ("acknowledge_within_days", 9),
    "auto_renew_window_days": ("auto_renew_window_days", 9),
    "price_band_low_pct": ("price_band", 16),
    "price_band_high_pct": ("price_band", 16),
    "arrears_block_yuan": ("arrears_block_cents", 16),
    "late_fee_grace_days": ("late_fee", 9),
    "late_fee_daily_rate_pct": ("late_fee", 16),
    "late_fee_cap_rate_pct": ("late_fee", 16),
    **{f"deposit_sla_hours_{step}": ("deposit_sla_hours", 9) for step in DEPOSIT_STEPS},
    **{f"ladder_{i}_days": ("ladder", 9) for i in range(MAX_RUNGS)},
    **{f"ladder_{i}_action": ("ladder", 20) for i in range(MAX_RUNGS)},
}
#: Most inputs one post may carry: every known name once.
MAX_INPUTS = len(HEAD) + len(INPUTS)


class Refused(Exception):
    """A post not made by the page (unknown, repeated or over-long inputs, too many):
    ``code`` and ``params`` word it (``policy_err_form_CODE``)."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


class _Bad(Exception):
    def __init__(self, name: str, row: int | None = None) -> None:
        super().__init__(name)
        self.name = name
        self.row = row


def percent_text(ratio: Decimal | float | str) -> str:
    """A ratio as the percentage typed in the form: ``0.0005`` → ``0.05``, ``0.1`` → ``10``."""
    value = (Decimal(str(ratio)) * 100).normalize()
    return format(value, "f")


def prefill(policy: LeasePolicy) -> dict[str, str]:
    """The form's inputs for ``policy``: every field in the form's units, as text."""
    out = {
        "reminder_offsets_days": ", ".join(str(d) for d in policy.reminder_offsets_days),
        "risk_threshold_pct": percent_text(policy.risk_threshold),
        "risk_lead_days": str(policy.risk_lead_days),
        "acknowledge_within_days": str(policy.acknowledge_within_days),
        "auto_renew_window_days": str(policy.auto_renew_window_days),
        "price_band_low_pct": percent_text(policy.price_band[0]),
        "price_band_high_pct": percent_text(policy.price_band[1]),
        "arrears_block_yuan": cny(policy.arrears_block_cents),
        "late_fee_grace_days": str(policy.late_fee.grace_days),
        "late_fee_daily_rate_pct": percent_text(policy.late_fee.daily_rate),
        "late_fee_cap_rate_pct": percent_text(policy.late_fee.cap_rate),
    }
    for step in DEPOSIT_STEPS:
        out[f"deposit_sla_hours_{step}"] = str(policy.deposit_sla_hours.get(step, ""))
    for i in range(MAX_RUNGS):
        rung = policy.ladder[i] if i < len(policy.ladder) else None
        out[f"ladder_{i}_days"] = str(rung.days) if rung else ""
        out[f"ladder_{i}_action"] = rung.action if rung else ""
    return out


def read(items: Sequence[tuple[str, Any]]) -> dict[str, str]:
    """The inputs of a post, bounded: known names only (so at most :data:`MAX_INPUTS`),
    each given once with text no longer than its bound; :class:`Refused` otherwise."""
    if len(items) > 2 * MAX_INPUTS:  # far more than the page sends: not read further
        raise Refused("fields", most=MAX_INPUTS)
    out: dict[str, str] = {}
    for name, value in items:
        shown = name[:40]
        most = HEAD.get(name) or (INPUTS[name][1] if name in INPUTS else None)
        if most is None:
            raise Refused("unknown", name=shown)
        if name in out:
            raise Refused("repeated", name=shown)
        if not isinstance(value, str):
            raise Refused("unknown", name=shown)
        if len(value) > most:
            raise Refused("long", name=shown, most=most)
        out[name] = value.strip()
    return out


@dataclass
class Posted:
    """A post read: the head (site, type, first day, preset), what went wrong (``problems``:
    field or head input, ladder rung or None; ``invalid``: the inputs to mark) and, when
    nothing did, the fields that differ from the preset (``changes``)."""

    site: str
    property_type: str
    effective_from: date | None
    preset: str
    problems: list[tuple[str, int | None]] = field(default_factory=list)
    invalid: set[str] = field(default_factory=set)
    changes: dict[str, Any] = field(default_factory=dict)


def _int(values: Mapping[str, str], name: str, base: Any) -> int:
    text = values.get(name, "")
    if not text:
        return int(base)
    if not _INT.fullmatch(text):
        raise _Bad(name)
    return int(text)


def _ratio(values: Mapping[str, str], name: str, base: Any) -> str:
    text = values.get(name, "")
    if not text:
        return str(base)
    if not _DECIMAL.fullmatch(text):
        raise _Bad(name)
    return format(Decimal(text).scaleb(-2).normalize(), "f")


def _offsets(values: Mapping[str, str], base: Any) -> list[int]:
    text = values.get("reminder_offsets_days", "")
    if not text:
        return list(base)
    parts = [p for p in _SPLIT.split(text) if p]
    if not parts or len(parts) > 10 or not all(_INT.fullmatch(p) for p in parts):
        raise _Bad("reminder_offsets_days")
    return [int(p) for p in parts]


def _risk(values: Mapping[str, str], base: Any) -> float:
    text = values.get("risk_threshold_pct", "")
    if not text:
        return float(base)
    if not _DECIMAL.fullmatch(text):
        raise _Bad("risk_threshold_pct")
    return float(Decimal(text).scaleb(-2))


def _arrears(values: Mapping[str, str], base: Any) -> int:
    text = values.get("arrears_block_yuan", "")
    if not text:
        return int(base)
    if not _MONEY.fullmatch(text):
        raise _Bad("arrears_block_yuan")
    return int(Decimal(text) * 100)


def _ladder(values: Mapping[str, str], base: Any) -> list[dict[str, Any]]:
    rungs = []
    for i in range(MAX_RUNGS):
        days, action = values.get(f"ladder_{i}_days", ""), values.get(f"ladder_{i}_action", "")
        if not days:
            continue  # a blank row is ignored
        if not _INT.fullmatch(days):
            raise _Bad(f"ladder_{i}_days", i + 1)
        if action not in LADDER_ACTIONS:
            raise _Bad(f"ladder_{i}_action", i + 1)
        rungs.append({"days": int(days), "action": action})
    return rungs or list(base)


_PARSERS: dict[str, Callable[[Mapping[str, str], Any], Any]] = {
    "reminder_offsets_days": _offsets,
    "risk_threshold": _risk,
    "risk_lead_days": lambda v, b: _int(v, "risk_lead_days", b),
    "acknowledge_within_days": lambda v, b: _int(v, "acknowledge_within_days", b),
    "auto_renew_window_days": lambda v, b: _int(v, "auto_renew_window_days", b),
    "price_band": lambda v, b: [
        _ratio(v, "price_band_low_pct", b[0]),
        _ratio(v, "price_band_high_pct", b[1]),
    ],
    "arrears_block_cents": _arrears,
    "late_fee": lambda v, b: {
        "grace_days": _int(v, "late_fee_grace_days", b["grace_days"]),
        "daily_rate": _ratio(v, "late_fee_daily_rate_pct", b["daily_rate"]),
        "cap_rate": _ratio(v, "late_fee_cap_rate_pct", b["cap_rate"]),
    },
    "deposit_sla_hours": lambda v, b: {
        s: _int(v, f"deposit_sla_hours_{s}", b[s]) for s in DEPOSIT_STEPS
    },
    "ladder": _ladder,
}
assert set(_PARSERS) == set(POLICY_FIELDS), "every policy field has its inputs"


def parse(values: Mapping[str, str]) -> Posted:
    """Read the head and every policy field of a post (see the module doc)."""
    preset = values.get("preset", "")
    ptype = values.get("property_type", "")
    posted = Posted(values.get("site", ""), ptype, None, preset)
    if not posted.site:
        posted.problems.append(("site", None))
        posted.invalid.add("site")
    if ptype not in SET_TYPES:
        posted.problems.append(("property_type", None))
        posted.invalid.add("property_type")
    try:
        first = date.fromisoformat(values.get("effective_from", ""))
        if not FIRST_DAY <= first <= LAST_DAY:
            raise ValueError(first)
        posted.effective_from = first
    except ValueError:
        posted.problems.append(("effective_from", None))
        posted.invalid.add("effective_from")
    if preset not in PRESETS:
        posted.problems.append(("preset", None))
        posted.invalid.add("preset")
    base_policy = PRESETS.get(preset, DEFAULT_POLICY)
    base = base_policy.model_dump(mode="json")
    fields: dict[str, Any] = {}
    for name in POLICY_FIELDS:
        inputs = [i for i, (f, _) in INPUTS.items() if f == name]
        try:
            fields[name] = _PARSERS[name](values, base[name])
            validate_fields({name: fields[name]}, name)
        except _Bad as bad:
            posted.problems.append((name, bad.row))
            posted.invalid.add(bad.name)
        except PolicyError:
            posted.problems.append((name, None))
            posted.invalid.update(i for i in inputs if values.get(i))
    if posted.problems:
        return posted
    try:
        whole = LeasePolicy.model_validate({**base, **fields})
    except ValidationError:  # every check lives inside one field; kept for safety
        posted.problems.append(("fields", None))
        return posted
    doc = whole.model_dump(mode="json")
    posted.changes = {
        n: doc[n] for n in POLICY_FIELDS if getattr(whole, n) != getattr(base_policy, n)
    }
    return posted


@dataclass(frozen=True)
class FieldRow:
    """One field of a set as the list shows it: the value (None: not set) and ``mark``:
    ``changed`` (differs from the set's preset), ``preset`` (as the preset), ``set`` (a
    set without a preset gives it) or ``unset`` (it comes from a lower layer)."""

    field: str
    value: Any
    mark: str


@dataclass(frozen=True)
class SetView:
    """A policy set for the list: the set, each field's row, the fields it changes."""

    set: PolicySet
    rows: tuple[FieldRow, ...]
    changed: tuple[str, ...]


def set_view(p: PolicySet) -> SetView:
    """How the list shows ``p``: every field's value and whether the set or its preset
    gives it."""
    preset = PRESETS.get(p.preset) if p.preset else None
    try:
        whole: LeasePolicy | None = LeasePolicy.model_validate({**_DEFAULT_DOC, **p.fields})
    except ValidationError:  # stored sets were checked when made
        whole = None
    rows = []
    for name in POLICY_FIELDS:
        if name not in p.fields:
            rows.append(FieldRow(name, None, "unset"))
        elif preset is None:
            rows.append(FieldRow(name, p.fields[name], "set"))
        else:
            same = whole is not None and getattr(whole, name) == getattr(preset, name)
            rows.append(FieldRow(name, p.fields[name], "preset" if same else "changed"))
    changed = tuple(r.field for r in rows if r.mark in ("changed", "set"))
    return SetView(p, tuple(rows), changed)


_HEAD_LABELS = {
    "site": "site",
    "property_type": "policy_property_type",
    "effective_from": "policy_from",
    "preset": "policy_preset",
    "fields": "policy_fields",
}


def problem_text(t: Mapping[str, str], problem: tuple[str, int | None]) -> str:
    """A problem in words: the field's name and what it expects."""
    name, row = problem
    label = t[_HEAD_LABELS[name]] if name in _HEAD_LABELS else t[f"policy_field_{name}"]
    expected = t[f"policy_expect_{name}"]
    if row is not None:
        return t["policy_bad_row"].format(field=label, row=row, expected=expected)
    return t["policy_bad"].format(field=label, expected=expected)
