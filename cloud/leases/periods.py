"""The site's local calendar: billing periods (calendar months, half-open [start, end)),
month arithmetic and the instant a day's jobs judge time-limited steps at.

Lease dates are dates of the site's local calendar (Asia/Shanghai by default), because a
lease starts and ends on a date, not at an instant. Rules never read the system clock: the
jobs take ``today`` and every function here is pure.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from cloud.leases.errors import LeaseError

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")


def days_in_month(day: date) -> int:
    """Days [d] of the calendar month ``day`` falls in."""
    if day.month == 2:
        return 29 if calendar.isleap(day.year) else 28
    return _DAYS[day.month]


_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def month_start(day: date) -> date:
    """The first day of ``day``'s month."""
    return day.replace(day=1)


@lru_cache(maxsize=4096)
def add_months(day: date, months: int) -> date:
    """``day`` moved by whole months, clamped to the last day of a shorter month
    (2026-01-31 + 1 month = 2026-02-28)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def months_between(earlier: date, later: date) -> int:
    """Whole calendar months from ``earlier``'s month to ``later``'s month."""
    return (later.year - earlier.year) * 12 + later.month - earlier.month


@dataclass(frozen=True, order=True)
class BillingPeriod:
    """A calendar month of the local calendar, half-open: [start, end)."""

    start: date
    end: date

    @classmethod
    def of(cls, day: date) -> BillingPeriod:
        """The month ``day`` falls in."""
        first = month_start(day)
        return cls(first, add_months(first, 1))

    @classmethod
    def parse(cls, text: str) -> BillingPeriod:
        """``YYYY-MM`` → that month; anything else is refused with what was expected."""
        m = _PERIOD.match(text.strip())
        if not m or not 1 <= int(m.group(2)) <= 12:
            raise LeaseError(f"period {text!r}: expected YYYY-MM, e.g. 2026-03")
        return cls.of(date(int(m.group(1)), int(m.group(2)), 1))

    @property
    def label(self) -> str:
        return f"{self.start:%Y-%m}"

    def previous(self) -> BillingPeriod:
        return BillingPeriod.of(self.start - timedelta(days=1))

    def next(self) -> BillingPeriod:
        return BillingPeriod.of(self.end)


def end_of_day(day: date) -> datetime:
    """The instant local ``day`` ends (the next local midnight), at which the daily job
    judges hour-based limits such as a deposit step's SLA, so two runs of one day agree."""
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=LOCAL_TZ)


def local_today() -> date:
    """Today in the local calendar; only the command line calls this, never a rule."""
    return datetime.now(LOCAL_TZ).date()
