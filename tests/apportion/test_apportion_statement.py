"""Statements: readings with times and quality, lines written out, λ and the landlord's
part, signature, JSON and CSV export."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.apportion.case.loading import load_case
from cloud.apportion.engine import apportion
from cloud.apportion.errors import SignatureError
from cloud.apportion.statement import (
    build_statements,
    sign_statement,
    verify_statement,
)
from cloud.statements.download import statement_csv

CASES = Path(__file__).parents[1] / "cases"


def statements(name: str) -> list[dict[str, Any]]:
    case = load_case(CASES / f"{name}.yaml")
    return build_statements(case, apportion(case.to_engine_inputs()), run_id="run-1")


def of(docs: list[dict[str, Any]], party: str) -> dict[str, Any]:
    return next(d for d in docs if d["party"] == party)


def test_statement_shows_readings_use_lines_loss_rate_and_landlord_part() -> None:
    acme = of(statements("basic"), "ACME")
    meter = acme["meters"][0]
    assert meter["meter"] == "U1"
    assert meter["start"] == {
        "at": {"local": "2026-04-01T00:00:00+08:00", "utc": "2026-03-31T16:00:00+00:00"},
        "values": {"total": "500.00"},
        "quality": "good",
        "source": "read",
    }
    assert meter["end"]["values"] == {"total": "800.00"}
    assert meter["measured_kwh"] == {"total": "300.000"}
    lines = {(line["component"], line["origin"]): line for line in acme["lines"]}
    assert lines[("common", "LIFT")]["explanation"] == (
        "LIFT 350.000 kWh × 1800 ÷ 6000 m²·d (area key) = 105.000 kWh, 63.0000 CNY"
    )
    assert lines[("common", "LIFT")]["calc"] == {
        "kind": "key",
        "basis": "area",
        "origin_kwh": "350.000",
        "weight": "1800.00",
        "weight_total": "6000.00",
        "weight_unit": "m2_day",
        "kwh": "105.000",
        "days": 30,
        "area_m2": "60",
    }
    assert lines[("own_use", "")]["price"] == {
        "applied": "0.60",
        "catalogue": {"kind": "flat", "price": "0.60"},
        "ratio": None,
    }
    assert acme["subtotals"] == {"own_cents": 18000, "shared_cents": 7740}
    assert acme["share_of_bill"] == "0.357500"  # 257.40 of the 720.00 bill
    assert lines[("own_use", "")]["unit_price"] == "0.60 CNY/kWh"
    assert acme["nodes"] == [
        {
            "node": "MAIN",
            "name": "",
            "loss_rate": "0.083333",
            "loss_cap": "0.05",
            "landlord_part": "33.60",
        }
    ]
    assert acme["total"] == {"cents": 25740, "amount_cny": "257.40"}
    landlord = of(statements("basic"), "landlord")
    assert landlord["total"]["cents"] == 25860


def test_replaced_meter_shows_both_installations_with_their_multipliers() -> None:
    ta = of(statements("replacement"), "TA")
    shown = {m["meter"]: m for m in ta["meters"]}
    assert shown["UA"]["multiplier"] == "1" and shown["UA2"]["multiplier"] == "2"
    assert shown["UA"]["end"]["values"] == {"total": "250.0"}  # removed 04-16
    assert shown["UA2"]["start"]["values"] == {"total": "0.0"}  # installed 04-16
    assert shown["UA2"]["measured_kwh"] == {"total": "160.000"}


def test_estimated_use_is_marked_with_its_method() -> None:
    ta = of(statements("gaps"), "TA")
    assert ta["meters"][0]["estimated_kwh"] == {"total": "40.000"}
    assert ta["meters"][0]["estimation"] == {"total": "history"}
    assert any(f["code"] == "estimates_over_limit" and f["holds"] for f in ta["flags"])


def test_tenant_who_moved_in_sees_only_its_days() -> None:
    y = of(statements("move_in"), "Y")
    assert y["stays"] == [{"from": "2026-04-16", "to": "2026-05-01"}]
    assert y["meters"][0]["start"]["values"] == {"total": "135.0"}
    assert y["meters"][0]["measured_kwh"] == {"total": "60.000"}
    assert y["total"]["cents"] == 4200


def test_signature_verifies_and_detects_any_change() -> None:
    key = Ed25519PrivateKey.generate()
    doc = of(statements("tou"), "TA")
    signed = sign_statement(doc, key)
    assert verify_statement(signed.as_dict(), key.public_key()) == json.loads(
        json.dumps(doc, ensure_ascii=False)
    )
    tampered = dict(signed.as_dict(), payload=signed.payload.replace('"TA"', '"TB"'))
    with pytest.raises(SignatureError, match="does not verify"):
        verify_statement(tampered, key.public_key())


def test_the_tenants_csv_names_the_time_bands_and_adds_up() -> None:
    """The CSV a tenant downloads (cloud.statements.download): a row per line with the TOU
    band's name and the applied price as a plain number, the total row the statement's."""
    doc = of(statements("tou"), "TA")
    rows = list(csv.reader(io.StringIO(statement_csv(doc, "zh-CN").decode("utf-8-sig"))))
    body, total = rows[1:-1], rows[-1]
    assert sum(Decimal(r[6]) for r in body) == Decimal("259.73") == Decimal(total[6])
    assert {r[1] for r in body} == {"尖", "峰", "平", "谷"}
    assert body[0][5] == "1.20" and body[0][4] == "40.000"
    english = list(csv.reader(io.StringIO(statement_csv(doc, "en").decode("utf-8-sig"))))
    assert english[-1][0] == "Total" and len(english) == len(rows)
