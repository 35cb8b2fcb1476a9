"""Statements: what each tenant pays for a unit and period, written out, signed, exported.

A statement holds the unit, the tenant and its days, the meters' previous and current
readings (local time, UTC, quality), own use per register, each line with its key written
out with the actual numbers (e.g. ``LIFT 350.000 kWh × 6000 m²·d ÷ 12000 m²·d (area key) =
175.000 kWh``), the catalog unit price, the amounts, the loss rate λ of the nodes above the
unit, and the part the landlord carries there (loss over the cap, vacant shares, the part a
formula did not pass on).

Signature: a detached Ed25519 signature over the statement's canonical JSON bytes (sorted
keys, no whitespace, UTF-8). The signed export carries those exact bytes as a string
(``payload``) with the key id (RFC 7638 thumbprint) and the signature (base64url); a
tenant's page verifies the signature over ``payload`` with the cloud's public key and only
then parses and shows it, so nothing is re-serialised between signing and verifying
(docs/decisions/0008-apportionment-money.md says why not JWS).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from cloud.apportion.case.canonical import canonical_json
from cloud.apportion.case.document import Case
from cloud.apportion.engine_result import EngineResult
from cloud.apportion.errors import SignatureError
from cloud.apportion.lines import Component, Step
from cloud.apportion.money import DEMAND, TariffKind, cny
from cloud.apportion.statement_facts import (
    SCHEMA_STATEMENT_V2,
    MeterEnergies,
    Names,
    NodeTotals,
    catalogue_price,
    line_calc,
    line_price,
    meter_section,
    tenant_flags,
)
from edge.wire import key_id

#: the schema statements are signed in now (structured, decision 0021)
SCHEMA_STATEMENT = SCHEMA_STATEMENT_V2
#: statements signed before: their lines carry English sentences, shown as they are
SCHEMA_STATEMENT_V1 = "mf.statement/1"
SCHEMAS = frozenset({SCHEMA_STATEMENT_V1, SCHEMA_STATEMENT_V2})
LANDLORD_PARTY = "landlord"
SIGNATURE_ALGORITHM = "Ed25519"
_WEIGHT_UNIT = {
    "area": "m²·d",
    "usage": "kWh",
    "per_unit": "unit·d",
    "coefficient": "coef·d",
    "blend": "(blend)",
    "formula": "m²·kWh",
    "exclusive": "kWh",
}


@dataclass(frozen=True)
class LineRow:
    """One rounded line with names instead of indices (for printing and export).

    ``unit`` is the unit (or landlord) node, empty for a node-level landlord line;
    ``origin`` the allocating node, empty for own use; dates are local, ``to`` exclusive.
    """

    register: str
    tariff: str
    unit: str
    party: str
    start: str
    end: str
    component: str
    origin: str
    kwh: float
    weight: float
    ideal_cents: float
    cents: int
    explanation: str
    #: the line's arithmetic as data (:func:`cloud.apportion.statement_facts.line_calc`)
    calc: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "party": self.party,
            "from": self.start,
            "to": self.end,
            "component": self.component,
            "origin": self.origin,
            "register": self.register,
            "tariff": self.tariff,
            "kwh": f"{self.kwh:.3f}",
            "cents": self.cents,
            "amount_cny": cny(self.cents),
            "explanation": self.explanation,
            "calc": self.calc,
        }


def line_rows(result: EngineResult) -> list[LineRow]:
    """Every line of a computed run, in the run's order, with its key written out
    (lines of nothing — no energy, no money — are left out)."""
    inputs = result.inputs
    ids, period = inputs.tree.ids, inputs.period
    lines, segs = result.lines, result.segments
    party = result.party()
    steps = {(s.pot, s.origin, s.component): s for s in result.steps}
    bp = period.breakpoints
    # plain lists and per-slice dates once: per-line numpy indexing is the slow part
    pot_of, seg_of = lines.pot.tolist(), lines.segment.tolist()
    origin_of, component_of = lines.origin.tolist(), lines.component.tolist()
    kwh_of, weight_of = lines.kwh.tolist(), lines.weight.tolist()
    ideal_of, cents_of, party_of = lines.ideal.tolist(), lines.cents.tolist(), party.tolist()
    seg_unit = result.shape.participant[segs.participant].tolist()
    first_slice, last_slice = segs.first_slice.tolist(), segs.last_slice.tolist()
    day_of = [period.day(int(d)).isoformat() for d in bp.tolist()]
    totals = NodeTotals(result)
    rows = []
    for i in range(len(cents_of)):
        kwh, weight, ideal, cents = kwh_of[i], weight_of[i], ideal_of[i], cents_of[i]
        if cents == 0 and ideal == 0 and kwh == 0:
            continue  # e.g. a landlord load without floor area in an area key
        pot = result.pots[pot_of[i]]
        seg = seg_of[i]
        origin = origin_of[i]
        component = Component(component_of[i])
        unit = start = end = ""
        if seg >= 0:
            unit = ids[seg_unit[seg]]
            start = day_of[first_slice[seg]]
            end = day_of[last_slice[seg] + 1]
        step = steps.get((pot.index, origin, component))
        rows.append(
            LineRow(
                register=pot.register,
                tariff=pot.version,
                unit=unit,
                party=inputs.tenants[party_of[i]] if party_of[i] >= 0 else LANDLORD_PARTY,
                start=start,
                end=end,
                component=component.label,
                origin=ids[origin] if origin >= 0 else "",
                kwh=kwh,
                weight=weight,
                ideal_cents=ideal,
                cents=cents,
                explanation=_explain(result, component, origin, step, kwh, weight, ideal, totals),
                calc=line_calc(result, component, origin, step, kwh, weight, ideal, totals),
            )
        )
    return rows


def _explain(
    result: EngineResult,
    component: Component,
    origin: int,
    step: Step | None,
    kwh: float,
    weight: float,
    ideal: float,
    totals: NodeTotals,
) -> str:
    """The line's arithmetic with the actual numbers."""
    ids = result.inputs.tree.ids
    price = f"{ideal / kwh / 100:.6f} CNY/kWh" if kwh else ""
    if component in (Component.OWN_USE, Component.LANDLORD_LOAD):
        return f"{kwh:.3f} kWh × {price} = {ideal / 100:.4f} CNY"
    name = ids[origin]
    if component is Component.EXCESS_LOSS:
        rule = result.inputs.tree.rules[origin]
        cap = rule.loss_cap if rule and rule.loss_cap is not None else 0.0
        return (
            f"{name} loss above the cap: λ = {totals.of(origin)[0]:.2%} > "
            f"{cap:.2%}, {kwh:.3f} kWh × {price} = {ideal / 100:.4f} CNY"
        )
    if component is Component.FORMULA_REMAINDER:
        return (
            f"{name}: {kwh:.3f} kWh not passed on by the formula (cool days) × {price} = "
            f"{ideal / 100:.4f} CNY"
        )
    if component is Component.UNALLOCATED:
        return f"{name}: no key weight to allocate by; {ideal / 100:.4f} CNY to the landlord"
    if step is None:
        return ""
    unit = _WEIGHT_UNIT.get(step.basis, "")
    head = f"{name} {step.kwh:.3f} kWh"
    if component is Component.LOSS:
        rate, node_kwh, residual = totals.of(origin)
        head = (
            f"{name} loss (λ = {rate:.2%} of {node_kwh:.3f} kWh, residual {residual:.3f} kWh"
            f") carried by tenants {step.kwh:.3f} kWh"
        )
    if step.basis == "formula":
        rule = result.inputs.tree.rules[origin]
        assert rule is not None and rule.formula is not None
        f = rule.formula
        head = (
            f"{name} Σ_d difference_d × clip(({f.driver}_d − {f.base:g}) ÷ {f.span:g}, 0, 1)"
            f" = {step.kwh:.3f} kWh of {step.kwh + step.landlord_kwh:.3f} kWh"
        )
    if component is Component.DEMAND:
        return (
            f"demand charge {step.amount / 100:.2f} CNY × {weight:.6g} ÷ "
            f"{step.weight_total:.6g} {unit} ({step.basis} key) = {ideal / 100:.4f} CNY"
        )
    return (
        f"{head} × {weight:.6g} ÷ {step.weight_total:.6g} {unit} ({step.basis} key) = "
        f"{kwh:.3f} kWh, {ideal / 100:.4f} CNY"
    )


def _unit_price(result: EngineResult, register: str, version: str) -> str:
    """The catalog price written out (called once per register and version)."""
    tariff = next(t for t in result.inputs.tariffs if t.id == version)
    if register == DEMAND:
        return f"{tariff.demand_price} CNY/kW·month" if tariff.demand_price is not None else ""
    if tariff.kind is TariffKind.TIERED:
        return (
            "; ".join(
                f"≤{t.upto_kwh} kWh: {t.price}" if t.upto_kwh is not None else f"rest: {t.price}"
                for t in tariff.tiers
            )
            + " CNY/kWh"
        )
    return f"{tariff.prices[register]} CNY/kWh"


def _local_midnight(case: Case, day_iso: str) -> dict[str, str]:
    local = datetime.combine(
        datetime.fromisoformat(day_iso).date(), time(0), ZoneInfo(case.timezone)
    )
    return {"local": local.isoformat(), "utc": local.astimezone(UTC).isoformat()}


def build_statements(
    case: Case,
    result: EngineResult,
    run_id: str = "",
    input_hash: str | None = None,
    rows: list[LineRow] | None = None,
) -> list[dict[str, Any]]:
    """One statement document per (unit, tenant) and one for the landlord.

    Plain JSON-ready dicts (schema ``mf.statement/2``): numbers, display names and the
    rules' parameters, the words left to the page (decision 0021); amounts as strings of
    CNY and integer cents. ``input_hash`` is the case's
    :meth:`~cloud.apportion.case.document.Case.input_hash` when the caller has it already.
    Linear in lines, segments and meters: everything per unit is grouped once. ``rows`` is
    ``line_rows(result)`` when the caller has them already.
    """
    rows = line_rows(result) if rows is None else rows
    inputs = result.inputs
    ids = inputs.tree.ids
    names = Names.of_case(case)
    units = {u.id: u for u in case.units}
    nodes = {n.id: n for n in case.tree}
    specs = case.meter_index()
    energies = MeterEnergies(result)
    midnights: dict[str, dict[str, str]] = {}

    def midnight(day: str) -> dict[str, str]:
        if day not in midnights:
            midnights[day] = _local_midnight(case, day)
        return dict(midnights[day])

    node_index = {name: i for i, name in enumerate(ids)}
    tenant_index = {name: i for i, name in enumerate(inputs.tenants)}
    node_meters: dict[int, list[int]] = {}
    for m, n in enumerate(inputs.meters.node.tolist()):
        node_meters.setdefault(n, []).append(m)
    segments_of: dict[tuple[int, int], list[int]] = {}
    for s, (p, o) in enumerate(
        zip(result.segments.participant.tolist(), result.segments.occupant.tolist(), strict=True)
    ):
        segments_of.setdefault((p, o), []).append(s)
    prices: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    applied: dict[tuple[int, str], dict[str, Any]] = {}

    def line(r: LineRow) -> dict[str, Any]:
        key = (r.register, r.tariff)
        if key not in prices:
            prices[key] = (
                _unit_price(result, r.register, r.tariff),
                catalogue_price(result, r.register, r.tariff),
            )
        text, catalogue = prices[key]
        out = r.as_dict()
        out["calc"] = _with_days(r, area_of(r.unit))
        out["unit_price"] = text
        out["price"] = line_price(catalogue, r.kwh, r.ideal_cents, applied)
        out["origin_name"] = names.nodes.get(r.origin, "")
        return out

    def area_of(node: str) -> Decimal | None:
        spec = nodes.get(node)
        if spec is None:
            return None
        if spec.kind == "unit":
            unit = units.get(spec.unit or node)
            return unit.area if unit else None
        return spec.area

    bill_cents = sum(r.cents for r in rows)
    header = {
        "schema": SCHEMA_STATEMENT,
        "site": case.site,
        "site_name": names.site,
        "timezone": case.timezone,
        "period": {"start": case.period.start.isoformat(), "end": case.period.end.isoformat()},
        "run": {"id": run_id, "input_hash": input_hash or case.input_hash()},
        "bill": {
            "invoice": inputs.bill.invoice,
            "cents": bill_cents,
            "amount_cny": cny(bill_cents),
        },
    }
    landlord_by_origin: dict[str, int] = {}
    by_key: dict[tuple[str, str], list[LineRow]] = {}
    landlord: list[LineRow] = []
    for r in rows:
        if r.party == LANDLORD_PARTY:
            landlord.append(r)
            if r.origin:
                landlord_by_origin[r.origin] = landlord_by_origin.get(r.origin, 0) + r.cents
        elif r.unit:
            by_key.setdefault((r.unit, r.party), []).append(r)
    landlord_part = {o: cny(c) for o, c in sorted(landlord_by_origin.items())}
    statements = []
    for unit_node, party in sorted(by_key):
        mine = by_key[(unit_node, party)]
        node = node_index[unit_node]
        p = int(result.shape.participant_of[node])
        seg_rows = segments_of.get((p, tenant_index[party]), [])
        stays, meters = [], []
        for s in seg_rows:
            sl = np.arange(result.segments.first_slice[s], result.segments.last_slice[s] + 1)
            start = inputs.period.day(int(inputs.period.breakpoints[sl[0]])).isoformat()
            end = inputs.period.day(int(inputs.period.breakpoints[sl[-1] + 1])).isoformat()
            stays.append({"from": start, "to": end})
            meters += meter_section(
                case,
                result,
                node_meters.get(node, []),
                start,
                end,
                sl,
                midnight,
                specs,
                energies,
            )
        for m in meters:
            m["name"] = names.meters.get(m["meter"], "")
        ancestors = []
        cursor = int(inputs.tree.parent[node])
        while cursor >= 0:
            rule = inputs.tree.rules[cursor]
            ancestors.append(
                {
                    "node": ids[cursor],
                    "name": names.nodes.get(ids[cursor], ""),
                    "loss_rate": f"{result.loss_rate[cursor]:.6f}",
                    "loss_cap": None
                    if rule is None or rule.loss_cap is None
                    else f"{rule.loss_cap:g}",
                    "landlord_part": cny(landlord_by_origin.get(ids[cursor], 0)),
                }
            )
            cursor = int(inputs.tree.parent[cursor])
        unit_spec = units[nodes[unit_node].unit or unit_node]
        total = sum(r.cents for r in mine)
        own = sum(r.cents for r in mine if r.component == Component.OWN_USE.label)
        statements.append(
            {
                **header,
                "flags": tenant_flags(
                    result.flags,
                    {m["meter"] for m in meters},
                    {unit_node, *(a["node"] for a in ancestors)},
                ),
                "unit": {
                    "node": unit_node,
                    "id": unit_spec.id,
                    "name": unit_spec.name or names.nodes.get(unit_node, ""),
                    "area_m2": str(unit_spec.area),
                    "building": unit_spec.building,
                    "floor": unit_spec.floor,
                },
                "party": party,
                "party_name": names.tenants.get(party, ""),
                "stays": stays,
                "meters": meters,
                "lines": [line(r) for r in mine],
                "nodes": ancestors,
                "landlord_part": dict(landlord_part),
                "subtotals": {"own_cents": own, "shared_cents": total - own},
                "share_of_bill": f"{total / bill_cents:.6f}" if bill_cents else None,
                "total": {"cents": total, "amount_cny": cny(total)},
            }
        )
    total = sum(r.cents for r in landlord)
    own = sum(
        r.cents
        for r in landlord
        if r.component in (Component.OWN_USE.label, Component.LANDLORD_LOAD.label)
    )
    statements.append(
        {
            **header,
            "flags": [
                {"code": f.code, "subject": f.subject, "holds": f.holds, "message": f.message}
                for f in result.flags
            ],
            "unit": None,
            "party": LANDLORD_PARTY,
            "party_name": "",
            "stays": [],
            "meters": [],
            "lines": [line(r) for r in landlord],
            "nodes": [],
            "landlord_part": dict(landlord_part),
            "subtotals": {"own_cents": own, "shared_cents": total - own},
            "share_of_bill": f"{total / bill_cents:.6f}" if bill_cents else None,
            "total": {"cents": total, "amount_cny": cny(total)},
        }
    )
    return statements


def _with_days(r: LineRow, area: Decimal | None) -> dict[str, Any]:
    """A fixed key's line with the days it covers and the unit's area [m²] (area key) or
    coefficient (coefficient key) its weight is made of, when the weight is exactly that."""
    calc = r.calc
    if calc.get("kind") not in ("key", "demand") or not (r.start and r.end):
        return calc
    days = (date.fromisoformat(r.end) - date.fromisoformat(r.start)).days
    if days <= 0:
        return calc
    exact = area is not None and abs(float(area) * days - r.weight) <= 1e-6 * max(r.weight, 1)
    if calc.get("basis") == "area" and exact:
        return {**calc, "days": days, "area_m2": str(area)}
    if calc.get("basis") == "coefficient":
        return {**calc, "days": days, "coefficient": f"{r.weight / days:g}"}
    return calc


@dataclass(frozen=True)
class SignedStatement:
    """A statement as signed: the canonical JSON text, the key id and the signature."""

    payload: str
    kid: str
    signature: str
    alg: str = SIGNATURE_ALGORITHM

    def as_dict(self) -> dict[str, str]:
        return {
            "alg": self.alg,
            "kid": self.kid,
            "payload": self.payload,
            "signature": self.signature,
        }


def sign_statement(statement: dict[str, Any], key: Ed25519PrivateKey) -> SignedStatement:
    """Sign the statement's canonical JSON bytes with the cloud's Ed25519 key."""
    return sign_payload(canonical_json(statement).decode(), key)


def sign_payload(payload: str, key: Ed25519PrivateKey, kid: str | None = None) -> SignedStatement:
    """Sign a statement already in canonical JSON (e.g. a run's stored draft) as it is;
    ``kid`` is the key's id when the caller signs many."""
    signature = base64.urlsafe_b64encode(key.sign(payload.encode())).rstrip(b"=").decode("ascii")
    return SignedStatement(payload, kid or key_id(key.public_key()), signature)


def verify_statement(
    signed: SignedStatement | dict[str, Any], key: Ed25519PublicKey
) -> dict[str, Any]:
    """Verify a signed statement (object or its exported dict); return the document.

    Raises SignatureError when the key id differs, the signature does not verify over the
    payload bytes, or the payload is not a statement.
    """
    return verify_signed(signed, key, SCHEMAS)


def verify_signed(
    signed: SignedStatement | dict[str, Any], key: Ed25519PublicKey, schemas: frozenset[str]
) -> dict[str, Any]:
    """Verify a document the cloud signed (a statement, a run's summary); return it.
    SignatureError unless its key is ``key``, the signature verifies over the payload bytes
    and the payload is a JSON object whose ``schema`` is one of ``schemas``."""
    data = signed.as_dict() if isinstance(signed, SignedStatement) else signed
    try:
        payload = str(data["payload"]).encode()
        text = str(data["signature"])
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        kid = data["kid"]
    except (KeyError, binascii.Error, ValueError) as exc:
        raise SignatureError(f"not a signed statement: {exc}") from None
    if data.get("alg") != SIGNATURE_ALGORITHM:
        raise SignatureError(
            f"signature algorithm {data.get('alg')!r}, expected {SIGNATURE_ALGORITHM!r}"
        )
    if kid != key_id(key):
        raise SignatureError(f"signed with key {kid!r}, not {key_id(key)!r}")
    try:
        key.verify(raw, payload)
    except InvalidSignature:
        raise SignatureError("the statement's signature does not verify") from None
    try:
        document = json.loads(payload)
    except ValueError as exc:
        raise SignatureError(f"signed payload is not JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("schema") not in schemas:
        raise SignatureError(f"signed payload is not one of {sorted(schemas)}")
    return document
