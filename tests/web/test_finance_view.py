"""The run page's words (pure): every flag code the apportionment writes has a label and an
explanation in Chinese and English; subjects, people and the services' details read in the
page's language; and the stylesheet's text colours reach 4.5:1 on their backgrounds."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cloud.apportion.engine import _METER_FLAGS
from cloud.staff.audit import AuditRecord
from cloud.web.finance_view import (
    FLAG_CODES,
    actor_text,
    detail_text,
    flag_view,
    refusal_text,
    subject_text,
    trail_views,
)
from cloud.web.rendering import translations

ROOT = Path(__file__).parents[2]
ZH, EN = translations("zh-CN"), translations("en")


def written_flag_codes() -> set[str]:
    """The codes in every ``Flag("code", …)`` of cloud/apportion, and the meter flags."""
    codes = set(_METER_FLAGS)
    for path in (ROOT / "cloud" / "apportion").rglob("*.py"):
        codes |= set(re.findall(r'Flag\(\s*"([a-z_]+)"', path.read_text(encoding="utf-8")))
    return codes


def test_every_flag_code_has_a_label_and_an_explanation_in_both_languages() -> None:
    assert written_flag_codes() == set(FLAG_CODES)
    for code in FLAG_CODES:
        for t in (ZH, EN):
            assert t[f"flag_{code}"] and t[f"flag_{code}_help"], code
        assert ZH[f"flag_{code}"] != EN[f"flag_{code}"], code
        assert re.search(r"[\u4e00-\u9fff]", ZH[f"flag_{code}"]), code


def test_a_stored_flag_reads_in_words() -> None:
    flag = {
        "code": "negative_residual",
        "subject": "node MAIN",
        "holds": True,
        "message": "children measure more than the node (-20.00 kWh, λ = -6.67%)",
    }
    zh = flag_view(flag, ZH)
    assert (zh.label, zh.subject, zh.holds) == ("负残差（分表合计大于总表）", "节点 MAIN", True)
    assert zh.help.startswith("下级表计之和大于本节点")
    assert flag_view(flag, EN).subject == "node MAIN"
    unknown = flag_view({"code": "new_flag", "subject": "x", "message": "m"}, ZH)
    assert (unknown.label, unknown.subject) == ("new_flag", "x")  # shown, never dropped


@pytest.mark.parametrize(
    ("subject", "zh"),
    [
        ("meter U1", "电表 U1"),
        ("meters U1, U2, … (1234 meters)", "电表 U1, U2, … (1234 meters)"),
        ("tariff flat-2026", "电价 flat-2026"),
        ("pot total/flat-2026", "账单分项 total/flat-2026"),
        ("something else", "something else"),
    ],
)
def test_subjects(subject: str, zh: str) -> None:
    assert subject_text(subject, ZH) == zh


def test_people_by_their_display_names() -> None:
    names = {"ACME": "星辰科技有限公司"}
    assert actor_text("fin-a", names, ZH) == "fin-a"
    assert actor_text("tenant:ACME", names, ZH) == "租户 星辰科技有限公司 (ACME)"
    assert actor_text("tenant:ACME", names, EN) == "Tenant 星辰科技有限公司 (ACME)"
    assert actor_text("tenant:BETA", names, ZH) == "租户 BETA"


@pytest.mark.parametrize(
    ("action", "detail", "zh"),
    [
        (
            "create",
            "site park-a 2026-04-01 … 2026-05-01 version 2, supersedes r1; 3 interpolated, "
            "0 missing boundary readings; estimates at A103 accepted: meter was replaced",
            "项目 park-a，2026-04-01 … 2026-05-01，第 2 版；插值读数 3 个，缺少边界读数 0 个"
            "；取代批次 r1；接受 A103 的估算，理由：meter was replaced",
        ),
        ("voided", "superseded by run r2 (version 2)", "被批次 r2（第 2 版）取代"),
        ("voided", "wrong bill", "wrong bill"),  # a person's words stay as written
        (
            "reading.manual",
            "U2 2026-05-01 display 450.00 × 20",
            "电表 U2 2026-05-01：表显示数 450.00 × 倍率 20",
        ),
        ("confirm", "unit A101", "单元 A101"),
        ("dispute", "unit A101: 读数不对: 偏高", "单元 A101：读数不对: 偏高"),
        ("resolve", "dispute 7 of unit A101: checked", "异议 #7（单元 A101）：checked"),
    ],
)
def test_service_details_in_words(action: str, detail: str, zh: str) -> None:
    assert detail_text(action, detail, ZH) == zh


def test_trail_view_translates_the_action() -> None:
    at = datetime(2026, 5, 2, tzinfo=UTC)
    (zh,) = trail_views([AuditRecord(at, "fin-a", "reviewed", "run:r", "")], {}, ZH)
    (en,) = trail_views([AuditRecord(at, "fin-a", "reviewed", "run:r", "")], {}, EN)
    assert (zh.actor, zh.action, en.action) == ("fin-a", "复核", "reviewed")


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_contrast_of_every_coloured_text_on_its_background() -> None:
    css = (ROOT / "cloud" / "web" / "static" / "meterflow.css").read_text(encoding="utf-8")
    var = dict(re.findall(r"--([a-z]+): (#[0-9a-f]{6})", css))
    rules = re.findall(r"([^{}]+)\{([^{}]*background: (#[0-9a-f]{6})[^{}]*)\}", css)
    checked = 0
    for selector, body, background in rules:
        colour = re.search(r"(?<!-)color: (var\(--([a-z]+)\)|#[0-9a-f]{6})", body)
        if colour is None:
            continue
        fg = var[colour.group(2)] if colour.group(2) else colour.group(1)
        assert contrast(fg, background) >= 4.5, f"{selector.strip()}: {fg} on {background}"
        checked += 1
    assert checked >= 10  # .badge.*, .q-*, .st-*, .m-*, .error …
    for pair in (("muted", "#ffffff"), ("muted", "#fde7e4"), ("muted", "#f4f6f9")):
        assert contrast(var[pair[0]], pair[1]) >= 4.5, pair
    # the colours axe found under 4.5:1 (badge 4.43, .q-good, .st-unknown) are gone
    assert "#1b7f3b" not in css and "#b35c00" not in css


REFUSALS = [
    ("role", {"account": "li.gong", "role": "engineer", "action": "approve"}),
    ("no_key", {}),
    ("four_eyes", {"account": "fin-a", "did": "reviewed"}),
    ("held", {"holding": [("negative_residual", "node MAIN")]}),
    ("state", {"status": "posted", "expected": "reviewed", "to": "approved"}),
    ("state", {"status": "void", "expected": "", "to": "void"}),
    ("void_reason", {}),
    ("dispute_answer", {}),
    ("dispute_done", {"status": "resolved"}),
]


@pytest.mark.parametrize(("code", "params"), REFUSALS)
def test_every_refusal_reads_in_both_languages_without_codes(code, params) -> None:
    zh = refusal_text(code, params, "English text", translations("zh-CN"))
    en = refusal_text(code, params, "English text", translations("en"))
    assert zh != en and "English text" not in zh + en
    assert re.search(r"[\u4e00-\u9fff]", zh) and not re.search(r"[\u4e00-\u9fff]", en)
    for raw in ("negative_residual", "reviewed", "posted", "engineer", "resolved"):
        assert raw not in zh, (code, zh)  # codes are worded, in Chinese at least
    assert "{" not in zh + en


def test_the_refusals_carry_their_numbers_and_names() -> None:
    t = translations("zh-CN")
    assert refusal_text(*REFUSALS[2], "", t) == (
        "fin-a 复核了本批次，不能再批准；请由既未创建也未复核本批次的账号批准（四眼原则）。"
    )
    assert refusal_text(*REFUSALS[4], "", t) == (
        "本批次当前为“已过账”，只有“已复核”的批次可以变为“已批准”。"
    )
    held = refusal_text(*REFUSALS[3], "", translations("en"))
    assert held.startswith("This run is held by: ") and "MAIN" in held
    assert refusal_text("", {}, "run 'x' does not exist", t) == "run 'x' does not exist"
