"""A ledger (台账) row's cells read into values, and the reasons a file is refused
(:class:`Issue`): each bad cell named by sheet, row and column label, with a code and its
values for a page to word in its reader's language. Used by :mod:`cloud.leases.ledger_sheets`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from cloud.apportion.workbook_cells import Row, shown
from cloud.leases.ledger_columns import LABELS, RISE_PERCENT

#: yuan as text: at most ten digits and two decimals
YUAN_TEXT = re.compile(r"^[0-9]{1,10}(\.[0-9]{1,2})?$")
_PERCENT = re.compile(r"^-?[0-9]{1,3}(\.[0-9]{1,4})?$")
_ID = re.compile(r"^[^\x00-\x1f\s]{1,64}$")


@dataclass(frozen=True)
class Issue:
    """A reason the file is refused: where (sheet, row, column; None: the whole sheet or
    row) and what was expected."""

    sheet: str
    row: int | None
    column: str | None
    message: str
    #: the message as a code and its values, for a page to word in its reader's language
    #: ("" when there is none: the English message is shown)
    code: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        where = self.sheet
        if self.row is not None:
            where += f" row {self.row}"
        if self.column:
            where += f", column {self.column}"
        return f"{where}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"sheet": self.sheet, "row": self.row, "column": self.column, "message": str(self)}


class Cells(Row):
    """A row whose bad cells become :class:`Issue` s (column by its label)."""

    def fail(self, key: str, message: str, code: str = "", **params: Any) -> None:
        if key not in self.failed:
            self.failed.add(key)
            label = LABELS.get(self.sheet, {}).get(key, key)
            self.errors.append(Issue(self.sheet, self.line, label, message, code, params))

    def whole(self, message: str, code: str = "", **params: Any) -> None:
        """The row as a whole is bad (a cross-row error)."""
        self.errors.append(Issue(self.sheet, self.line, None, message, code, params))

    def ident(self, key: str, required: bool = True) -> str | None:
        value = self.text(key)
        if value is None:
            if required:
                self.fail(key, "expected an id, got a blank cell", "blank_id")
            return None
        if not _ID.match(value):
            self.fail(
                key,
                f"expected 1–64 characters without spaces, got {shown(value)}",
                "bad_id",
                value=shown(value),
            )
            return None
        return value

    def yuan(self, key: str, required: bool = False) -> int | None:
        """Yuan with at most two decimals, as cents."""
        value = self.number(key)
        if value is None:
            if required and key not in self.failed:
                self.fail(key, "expected an amount in yuan, got a blank cell", "blank_yuan")
            return None
        text = format(value.normalize(), "f")
        if not YUAN_TEXT.match(text):
            self.fail(
                key,
                f"expected yuan ≥ 0 with at most two decimals, got {shown(text)}",
                "bad_yuan",
                value=shown(text),
            )
            return None
        return int(Decimal(text) * 100)

    def whole_number(self, key: str, low: int, high: int) -> int | None:
        value = self.number(key)
        if value is None:
            return None
        if value != value.to_integral_value() or not low <= value <= high:
            self.fail(
                key,
                f"expected a whole number {low}–{high}, got {shown(str(value))}",
                "bad_whole",
                low=low,
                high=high,
                value=shown(str(value)),
            )
            return None
        return int(value)

    def percent(self, key: str) -> Decimal | None:
        """A percentage (``5`` or ``5%`` is 5 %; -50 to 100, at most four decimals) as a
        rate (Decimal('0.05')); blank is None."""
        value = self.cells.get(key)
        if isinstance(value, str):
            value = value.strip().removesuffix("%").removesuffix("％").strip()
        if value is None or value == "":
            return None
        text = None
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            try:
                number = Decimal(str(value).replace(",", ""))
                text = format(number.normalize(), "f") if number.is_finite() else None
            except InvalidOperation:
                pass
        low, high = RISE_PERCENT
        if text is None or not _PERCENT.match(text) or not low <= Decimal(text) <= high:
            self.fail(
                key,
                f"expected a percentage from -50 to 100 with at most four decimals (5 or 5% "
                f"is 5 %), got {shown(self.cells.get(key))}",
                "bad_percent",
                value=shown(self.cells.get(key)),
            )
            return None
        return Decimal(text) / 100

    def filled(self, key: str) -> bool:
        """Whether the cell of ``key`` holds anything."""
        value = self.cells.get(key)
        return value is not None and not (isinstance(value, str) and not value.strip())

    def choice(self, key: str, choices: Sequence[str], default: str | None) -> str | None:
        value = self.text(key)
        if value is None:
            return default
        if value not in choices:
            self.fail(
                key,
                f"expected one of {', '.join(choices)}, got {shown(value)}",
                "bad_choice",
                choices=" / ".join(choices),
                value=shown(value),
            )
            return default
        return value

    def date_(self, key: str, required: bool = False) -> date | None:
        value = self.day(key)
        if value is None and required and key not in self.failed:
            self.fail(key, "expected YYYY-MM-DD, got a blank cell", "blank_date")
        return value
