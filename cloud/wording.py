"""The languages people read the product in, and wording from a code and its values.

Chinese (``zh-CN``) is the default and English (``en``) the other language: pages choose by
``?lang=``, notices by their recipient's stored language, signed statements at view time.
What a job writes for people is kept as a code and its values and worded when it is read
(:func:`word`); the English text is kept beside it for commands, the API and the audit log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LANGUAGES = ("zh-CN", "en")
DEFAULT_LANGUAGE = "zh-CN"


def pick_language(value: str | None) -> str:
    """``value`` when it is a language the product speaks, else the default (Chinese)."""
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


def check_language(value: str, what: str = "language") -> str:
    """``value`` when it is one of :data:`LANGUAGES`; raises ValueError naming ``what``."""
    if value not in LANGUAGES:
        raise ValueError(f"{what} {value[:20]!r}: expected one of {', '.join(LANGUAGES)}")
    return value


def word(
    catalogue: Mapping[str, Mapping[str, str]],
    code: str,
    language: str,
    params: Mapping[str, Any],
) -> str | None:
    """The words of ``code`` in ``language`` (else English) filled with ``params``; None
    when the catalogue has no words for the code or they name a value ``params`` lacks."""
    entry = catalogue.get(code)
    if entry is None:
        return None
    words = entry.get(pick_language(language)) or entry.get("en")
    if words is None:
        return None
    try:
        return words.format(**params)
    except (KeyError, IndexError, ValueError):
        return None
