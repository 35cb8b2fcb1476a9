"""An amount of money in Chinese capitals (人民币大写), as written on 票据 and 结算凭证.

Pure, no I/O. Integer cents in, text out: ``123456`` → ``壹仟贰佰叁拾肆元伍角陆分``,
``0`` → ``零元整``, ``1000`` → ``壹拾元整``, ``10005`` → ``壹佰元零伍分``,
``100000000`` → ``壹佰万元整``. The rules are those of the People's Bank of China's
《正确填写票据和结算凭证的基本规定》:

- digits 零壹贰叁肆伍陆柒捌玖, places 拾佰仟, sections 万 亿 万亿; a leading ten is 壹拾;
- zeros between non-zero digits (one or several, across a 万 or 亿 boundary too) are one 零;
  trailing zeros of the yuan are not written;
- an amount to the yuan ends in 整; to the 角, ends in 角 (no 整); a 分 with no 角 is
  written 零X分 after the yuan (``壹佰元零伍分``) and X分 alone below a yuan (``伍分``);
- a negative amount (a credit) starts with 负.

Decision record: docs/decisions/0022-printable-statement.md (why not cn2an's RMB mode).
"""

from __future__ import annotations

DIGITS = "零壹贰叁肆伍陆柒捌玖"
_PLACES = ("", "拾", "佰", "仟")
_SECTIONS = ("", "万", "亿", "万亿")
#: The largest amount written [cents]: 9,999,9999,9999,9999.99 yuan.
MAX_CENTS = 10**18 - 1


def _group(value: int) -> str:
    """0 < value < 10000 in capitals, without leading 零 (internal zeros as one 零)."""
    out, zero = "", False
    for place in range(3, -1, -1):
        digit = value // 10**place % 10
        if digit == 0:
            zero = bool(out)
            continue
        if zero:
            out += "零"
            zero = False
        out += DIGITS[digit] + _PLACES[place]
    return out


def yuan_capitals(yuan: int) -> str:
    """A whole number of yuan (0 ≤ yuan < 10**16) in capitals, without the 元."""
    if yuan == 0:
        return "零"
    groups: list[int] = []
    while yuan:
        groups.append(yuan % 10000)
        yuan //= 10000
    out, zero = "", False
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            zero = bool(out)
            continue
        if out and (zero or group < 1000):
            out += "零"
        out += _group(group) + _SECTIONS[index]
        zero = False
    return out


def rmb_capitals(cents: int) -> str:
    """``cents`` (integer cents, |cents| ≤ :data:`MAX_CENTS`) as 人民币大写.

    Raises TypeError for anything but an int (a float is never money here) and ValueError
    beyond :data:`MAX_CENTS`.
    """
    if not isinstance(cents, int) or isinstance(cents, bool):
        raise TypeError(f"amount in integer cents expected, got {type(cents).__name__}")
    if abs(cents) > MAX_CENTS:
        raise ValueError(f"amount {cents} cents is beyond {MAX_CENTS} cents")
    sign = "负" if cents < 0 else ""
    yuan, rest = divmod(abs(cents), 100)
    jiao, fen = divmod(rest, 10)
    if rest == 0:
        return f"{sign}{yuan_capitals(yuan)}元整"
    head = f"{yuan_capitals(yuan)}元" if yuan else ""
    if jiao == 0:
        return f"{sign}{head}{'零' if head else ''}{DIGITS[fen]}分"
    return f"{sign}{head}{DIGITS[jiao]}角{DIGITS[fen] + '分' if fen else ''}"
