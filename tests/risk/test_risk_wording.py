"""Move-out reasons in the reader's words (cloud.risk.wording): every feature the model knows
has Chinese and English words, the English reads as the sentences the risk list always had,
and a reason stored as words before reasons were structured is shown as it is."""

from __future__ import annotations

import math
import re

import pytest

from cloud.risk.features import FEATURES
from cloud.risk.wording import reason_text, reasons_text

CJK = re.compile(r"[\u4e00-\u9fff]")

#: (feature, stored value) → (English, Chinese)
WORDED = {
    ("use_ratio", math.log(0.6)): (
        "use -40 % vs its own 60-day baseline",
        "用量较自身 60 天基线 -40 %",
    ),
    ("peer_ratio", -0.3): ("use trend -26 % vs comparable units", "用量趋势较同类单元 -26 %"),
    ("use_slope", -0.25): (
        "use falling 25 % of baseline over the last 30 days",
        "近 30 天用量下降了基线的 25 %",
    ),
    ("zero_streak", 12.0): ("12 days in a row with almost no use", "连续 12 天几乎没有用量"),
    ("late_share", 0.5): (
        "50 % of the last year's invoices paid late",
        "近一年 50 % 的账单逾期支付",
    ),
    ("days_late", 12.34): ("invoices paid 12.3 days late on average", "账单平均逾期 12.3 天支付"),
    ("collections_stage", 3.0): ("collections at step 3", "催收已到第 3 步"),
    ("open_tickets", 3.0): ("3 repair ticket(s) open", "3 个报修未关闭"),
    ("recent_tickets", 4.0): ("4 repair ticket(s) in the last 90 days", "近 90 天报修 4 次"),
    ("days_to_expiry", 45.0): ("contract ends in 45 days", "合同 45 天后到期"),
    ("days_to_paid_through", -10.0): ("paid through -10 days from now", "费用已付至 -10 天后"),
    ("rent_ratio", 0.2): ("rent +22 % vs comparable units", "租金较同类单元 +22 %"),
    ("tenure_years", 3.44): ("tenant for 3.4 years", "已租住 3.4 年"),
    ("nps", 4.0): ("satisfaction survey score 4 of 10", "满意度调查评分 4 分（满分 10 分）"),
    ("activities", 0.0): ("joined 0 community activities in 180 days", "180 天内参加社区活动 0 次"),
}


def test_the_cases_cover_every_feature_of_the_model() -> None:
    assert sorted(name for name, _ in WORDED) == sorted(FEATURES)


@pytest.mark.parametrize(("feature", "value"), sorted(WORDED))
def test_each_feature_in_both_languages(feature: str, value: float) -> None:
    english, chinese = WORDED[feature, value]
    reason = {"feature": feature, "value": value}
    assert reason_text(reason, "en") == english
    assert reason_text(reason, "zh-CN") == chinese
    assert reason_text(reason) == chinese  # Chinese by default
    assert reason_text(reason, "fr") == chinese  # and for a language it does not speak


@pytest.mark.parametrize("feature", FEATURES)
def test_every_feature_the_model_knows_has_chinese_words(feature: str) -> None:
    reason = {"feature": feature, "value": 2.0}
    chinese, english = reason_text(reason, "zh-CN"), reason_text(reason, "en")
    assert CJK.search(chinese), f"{feature} has no Chinese words: {chinese!r}"
    assert not CJK.search(english) and "=" not in english, english
    assert chinese != english


def test_an_unknown_feature_is_its_name_and_value() -> None:
    assert reason_text({"feature": "mystery", "value": 0.123456}) == "mystery = 0.123"
    assert reason_text({"feature": "mystery", "value": 7}, "en") == "mystery = 7"
    assert reason_text({"feature": "use_ratio", "value": None}, "en") == "use_ratio = None"


def test_a_reason_stored_as_words_is_shown_as_it_is() -> None:
    legacy = "use -45 % vs its own baseline"
    assert reason_text(legacy) == reason_text(legacy, "en") == legacy
    mixed = [legacy, {"feature": "open_tickets", "value": 2}]
    assert reasons_text(mixed) == [legacy, "2 个报修未关闭"]
    assert reasons_text(mixed, "en") == [legacy, "2 repair ticket(s) open"]
    assert reasons_text([], "en") == []


def test_a_huge_log_ratio_does_not_fail() -> None:
    assert reason_text({"feature": "use_ratio", "value": 1e6}, "en") == (
        "use +inf % vs its own 60-day baseline"
    )
