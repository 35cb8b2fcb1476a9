"""The export rows of a run (pure): names from the stored inputs, days inclusive, the applied
price per register and tariff beside the catalogue's, TOU registers named, CSV with a BOM."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import yaml

from cloud.apportion.case.loading import case_from_data
from cloud.apportion.exports import SiteNames, export_lines, lines_csv
from cloud.apportion.runs import LineRecord
from cloud.web.rendering import translations

CASES = Path(__file__).parents[1] / "cases"


def names_of(case: str) -> SiteNames:
    data = case_from_data(yaml.safe_load((CASES / case).read_text()))
    return SiteNames.from_inputs(json.loads(data.canonical_json()))


def line(register: str, tariff: str, kwh: str, cents: int, **kw: str) -> LineRecord:
    fields = {
        "kind": "charge",
        "adjusts": None,
        "unit": "A",
        "party": "TA",
        "start": "2026-04-01",
        "end": "2026-05-01",
        "component": "own_use",
        "origin": "",
        **kw,
    }
    return LineRecord(
        register,
        tariff,
        fields["unit"],
        fields["party"],
        fields["start"],
        fields["end"],
        fields["component"],
        fields["origin"],
        Decimal(kwh),
        cents,
        fields["kind"],
        fields["adjusts"],
    )


def test_applied_price_per_register_beside_the_catalogue() -> None:
    names = names_of("tou.yaml")
    assert names.catalog[("T1", "tou-2026")] == Decimal("1.2")
    rows = export_lines(
        [
            line("T1", "tou-2026", "40", 4500),
            line("T1", "tou-2026", "80", 9000, unit="B", party="TB"),
            line("T4", "tou-2026", "100.000000", 3000),
            line("T1", "tou-2026", "10", 1000, kind="adjustment", adjusts="r0"),
        ],
        names,
    )
    assert [r.price for r in rows] == [
        Decimal("1.125000"),  # 135.00 CNY ÷ 120 kWh, not the catalogue's 1.2
        Decimal("1.125000"),
        Decimal("0.300000"),
        Decimal("1.000000"),  # an adjustment is priced within its own run's lines
    ]
    assert [r.catalog_price for r in rows][:3] == [Decimal("1.2"), Decimal("1.2"), Decimal("0.3")]
    assert rows[0].last_day == date(2026, 4, 30) and rows[0].first_day == date(2026, 4, 1)
    assert rows[0].line_no == 1 and rows[0].amount == Decimal("45.00")


def test_tiered_has_no_one_catalogue_price_and_demand_is_per_kw_month() -> None:
    tiered = names_of("tiered.yaml")
    assert not any(t == "tiers-v1" for _, t in tiered.catalog)
    two_part = names_of("two_part.yaml")
    assert two_part.catalog[("demand", "two-part")] == Decimal("40")
    rows = export_lines(
        [line("demand", "two-part", "0", 200000, component="demand", origin="MAIN")],
        two_part,
    )
    assert rows[0].price is None and rows[0].price_unit == "kw_month"
    assert rows[0].catalog_price == Decimal("40")


def test_csv_bom_and_labels_in_both_languages() -> None:
    rows = export_lines([line("T1", "tou-2026", "40.5", 4860)], names_of("tou.yaml"))
    for lang, register, unit in (("zh-CN", "尖", "元/kWh"), ("en", "Critical peak", "CNY/kWh")):
        data = lines_csv(rows, translations(lang))
        assert data.startswith(b"\xef\xbb\xbf")
        head, first = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
        cells = dict(zip(head, first, strict=True))
        assert register in first and unit in first
        assert "40.500000" in first and "48.60" in first and "1.200000" in first
        assert "2026-04-30" in first and "2026-05-01" not in first
        assert len(cells) == 20
