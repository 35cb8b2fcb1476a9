"""Canonical JSON: the bytes a run's inputs are hashed over and a statement is signed over.

Sorted keys, no whitespace, UTF-8; decimals as normalised strings, dates ISO, enums by
value (:func:`plain` turns a value into such plain JSON values).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys and no whitespace, UTF-8 — the bytes hashed and signed."""
    return plain_json(plain(value))


def plain_json(value: Any) -> bytes:
    """:func:`canonical_json` of a value :func:`plain` returned already (no second pass)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


#: Types that are plain JSON values already (exact types: a StrEnum is a str subclass).
_ATOMS = frozenset({str, int, float, bool, type(None)})


def decimal_text(value: Decimal) -> str:
    """A decimal's canonical text: normalised, positional (``0.50`` → ``0.5``, ``1E+2`` →
    ``100``, ``-0`` → ``0``)."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def plain(value: Any) -> Any:
    """``value`` as plain JSON values (decimals as normalised strings, dates ISO, enums by
    value); linear in its size."""
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind is dict:  # the common cases inline: str keys, atoms as values
        return {
            k if type(k) is str else str(plain(k)): v if type(v) in _ATOMS else plain(v)
            for k, v in value.items()
        }
    if kind is list:
        return [v if type(v) in _ATOMS else plain(v) for v in value]
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, Mapping):
        return {str(plain(k)): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value
