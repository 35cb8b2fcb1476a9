"""Refusals, bad cells and queue notes worded on the pages: every code's words exist in both
languages and name the same values, and each worded text fills in what the code carries."""

from __future__ import annotations

import string
from datetime import date

import pytest

from cloud.apportion.close import CloseRefused
from cloud.leases.ledger_cells import Issue
from cloud.leases.queue import QueueItem
from cloud.web.close import close_error_text
from cloud.web.ledger import issue_text
from cloud.web.queue import note_text
from cloud.web.rendering import translations

PREFIXES = ("close_err_", "ledger_err_", "queue_note_", "task_kind_")


def fields(text: str) -> set[str]:
    return {name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name}


def test_every_code_is_worded_in_both_languages_with_the_same_values() -> None:
    zh, en = translations("zh-CN"), translations("en")
    keys = {k for k in zh if k.startswith(PREFIXES)}
    assert len(keys) > 60
    assert keys == {k for k in en if k.startswith(PREFIXES)}
    assert {k: fields(zh[k]) for k in keys} == {k: fields(en[k]) for k in keys}


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_worded_texts_fill_in_their_values_and_fall_back_to_english(lang: str) -> None:
    t = translations(lang)
    posted = CloseRefused(
        "site S 2026-11-01 … 2026-12-01 is posted already (run R1); …",
        "posted",
        site="S",
        start=date(2026, 11, 1),
        end=date(2026, 12, 1),
        run="R1",
    )
    text = close_error_text(posted, t)
    assert "R1" in text and "2026-11-01" in text and "{" not in text
    assert ("已过账" in text) == (lang == "zh-CN")
    # a code whose words name a value the refusal lacks: the English message, no error
    lacking = CloseRefused("period: --to X must be after --from Y", "period_order")
    assert close_error_text(lacking, t) == "period: --to X must be after --from Y"
    cell = Issue("租约 Leases", 7, "开始日期/start_on", "'x' is not a date", "not_date", {})
    assert issue_text(cell, t) == ("'x' is not a date", "en")
    cell = Issue(
        "租约 Leases", 7, "开始日期/start_on", "'x' is not a date", "not_date", {"value": "'x'"}
    )
    worded, tag = issue_text(cell, t)
    assert "'x'" in worded and tag == "" and (("不是日期" in worded) == (lang == "zh-CN"))
    item = QueueItem(
        "case:INV-1",
        "case",
        "L1",
        "S",
        "A",
        "A101",
        "T",
        date(2026, 12, 1),
        "red",
        None,
        None,
        "invoice INV-1 handed over on 2026-11-16, 317205 cents owed",
        "case",
        {"invoice": "INV-1", "day": date(2026, 11, 16), "owed_cents": 317205},
    )
    note = note_text(item, t, lang)
    assert "INV-1" in note and "3172.05" in note and "cents" not in note
