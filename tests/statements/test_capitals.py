"""The amount in capitals (人民币大写): known values from the PBoC's rules and bank practice,
and properties over any amount — read back by an independent parser it is the same number of
cents, its ending says whether it stops at the yuan, 角 or 分, and it never writes two 零."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.statements.capitals import MAX_CENTS, rmb_capitals

KNOWN = {
    0: "零元整",
    1: "壹分",
    5: "伍分",
    10: "壹角",
    50: "伍角",
    55: "伍角伍分",
    100: "壹元整",
    150: "壹元伍角",
    101: "壹元零壹分",
    1000: "壹拾元整",
    1010: "壹拾元壹角",
    1500: "壹拾伍元整",
    2000: "贰拾元整",
    10000: "壹佰元整",
    10005: "壹佰元零伍分",
    10050: "壹佰元伍角",
    100100: "壹仟零壹元整",
    106000: "壹仟零陆拾元整",
    123456: "壹仟贰佰叁拾肆元伍角陆分",
    1000000: "壹万元整",
    1001000: "壹万零壹拾元整",
    1010000: "壹万零壹佰元整",
    10000000: "壹拾万元整",
    10010000: "壹拾万零壹佰元整",
    10100000: "壹拾万壹仟元整",
    32507000: "叁拾贰万伍仟零柒拾元整",
    100000000: "壹佰万元整",
    100000005: "壹佰万元零伍分",
    1000000000: "壹仟万元整",
    1000100000: "壹仟万壹仟元整",
    1000010000: "壹仟万零壹佰元整",
    10000000000: "壹亿元整",
    10000000100: "壹亿零壹元整",
    10001000000: "壹亿零壹万元整",
    11000000000: "壹亿壹仟万元整",
    110000000001: "壹拾壹亿元零壹分",
    100000000000000: "壹万亿元整",
    1000000000000000: "壹拾万亿元整",
    -123456: "负壹仟贰佰叁拾肆元伍角陆分",
}


@pytest.mark.parametrize(("cents", "text"), sorted(KNOWN.items()))
def test_known_values(cents: int, text: str) -> None:
    assert rmb_capitals(cents) == text


def test_the_issues_values() -> None:
    # 0, 10, 100.05 and 1,000,000.00 yuan, as the issue names them
    assert [rmb_capitals(c) for c in (0, 1000, 10005, 100000000)] == [
        "零元整",
        "壹拾元整",
        "壹佰元零伍分",
        "壹佰万元整",
    ]


@pytest.mark.parametrize("bad", [1.5, "100", None, True])
def test_only_integer_cents(bad: object) -> None:
    with pytest.raises(TypeError):
        rmb_capitals(bad)  # type: ignore[arg-type]


def test_bounds() -> None:
    assert rmb_capitals(MAX_CENTS).startswith("玖仟玖佰玖拾玖万亿")
    with pytest.raises(ValueError, match="beyond"):
        rmb_capitals(MAX_CENTS + 1)


# ------------------------------------------------------------------ an independent reader

_DIGIT = {c: i for i, c in enumerate("零壹贰叁肆伍陆柒捌玖")}
_PLACE = {"拾": 10, "佰": 100, "仟": 1000}


def _section(text: str) -> int:
    """'壹仟零伍' → 1005 (places multiply the digit before them; 零 is a gap)."""
    total, digit = 0, None
    for ch in text:
        if ch in _DIGIT:
            digit = _DIGIT[ch]
        elif ch in _PLACE:
            total += (1 if digit is None else digit) * _PLACE[ch]
            digit = None
        else:
            raise AssertionError(f"unexpected {ch!r} in {text!r}")
    return total + (digit or 0)


def _yuan(text: str) -> int:
    value = 0
    for unit, factor in (("万亿", 10**12), ("亿", 10**8), ("万", 10**4)):
        if unit in text:
            head, text = text.split(unit, 1)
            value += _section(head) * factor
    return value + _section(text)


def read_capitals(text: str) -> int:
    """Cents of a 大写 amount (written for this test, not shared with the converter)."""
    sign = -1 if text.startswith("负") else 1
    text = text.removeprefix("负").removesuffix("整")
    yuan, _, small = text.rpartition("元") if "元" in text else ("", "", text)
    jiao = re.search(r"(.)角", small)
    fen = re.search(r"(.)分", small)
    cents = _yuan(yuan) * 100
    cents += _DIGIT[jiao.group(1)] * 10 if jiao else 0
    cents += _DIGIT[fen.group(1)] if fen else 0
    return sign * cents


amounts = st.one_of(
    st.integers(min_value=-(10**14), max_value=10**14),
    st.integers(min_value=0, max_value=10**6),
    # sparse digits: zeros inside and across the 万 and 亿 sections
    st.lists(st.sampled_from([0, 0, 0, 1, 5, 9]), min_size=1, max_size=17).map(
        lambda ds: int("".join(map(str, ds)))
    ),
)


@given(amounts)
def test_reads_back_to_the_same_cents(cents: int) -> None:
    assert read_capitals(rmb_capitals(cents)) == cents


@given(amounts)
def test_ending_follows_the_smallest_unit(cents: int) -> None:
    text = rmb_capitals(cents)
    if cents % 100 == 0:
        assert text.endswith("元整")
    elif cents % 10 == 0:
        assert text.endswith("角")
    else:
        assert text.endswith("分")


@given(amounts)
def test_form(cents: int) -> None:
    text = rmb_capitals(cents)
    assert re.fullmatch(r"负?[零壹贰叁肆伍陆柒捌玖拾佰仟万亿元角分整]+", text)
    assert "零零" not in text
    body = text.removeprefix("负")
    if cents == 0:
        assert body == "零元整"
    else:
        assert not body.startswith("零")
        assert not re.search(r"零[元万亿角]", text)  # no 零 right before a unit
    if abs(cents) >= 1000 and abs(cents) < 2000:
        assert body.startswith("壹拾")  # a leading ten is 壹拾
