"""The calendar of the demo world: each day's demand, sales, closures and time zone.

Day numbers count from the loaded period's first day (0), back to the first customers'
acquisition (`PRE_DAYS` before) and on to the end of the holdout. A day's demand says how
much people shop that day compared with an average day: busier Saturdays, the soldes,
Black Friday, the weeks before Christmas, a quiet August.
"""

from __future__ import annotations

import calendar as cal
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

PARIS = ZoneInfo("Europe/Paris")
PRE_DAYS = 540  # customers of the loaded period's first day were acquired up to this far back


@dataclass(frozen=True, slots=True)
class Calendar:
    """Day-by-day facts from PRE_DAYS before the loaded period to the end of the holdout.

    Day numbers are relative to the loaded period's first day (0); `index(d)` turns
    them into positions in the arrays.
    """

    start: date
    days: int  # loaded days
    holdout: int  # holdout days after them
    weekday: IntArray  # 0 = Monday
    sales: BoolArray  # the winter and summer soldes
    sales_opening: BoolArray  # their first week
    black_friday: BoolArray  # Black Friday to Cyber Monday
    christmas: BoolArray  # 1-24 December
    closed: BoolArray  # stores closed: Sundays and public holidays
    demand: FloatArray  # how much people shop that day, relative (mean 1)
    bargain_demand: FloatArray  # the same for bargain hunters, who wait for the sales
    utc_offset_min: IntArray  # Europe/Paris offset from UTC at noon

    @property
    def first(self) -> int:
        """Return the first day number covered."""
        return -PRE_DAYS

    def index(self, day: int) -> int:
        """Return the array position of a day number."""
        return day + PRE_DAYS

    def epoch_ms(self, t: FloatArray) -> IntArray:
        """Return epoch milliseconds (UTC) of Paris times given in days from the start."""
        start = datetime(self.start.year, self.start.month, self.start.day)
        base = int((start - datetime(1970, 1, 1)).total_seconds() * 1000)
        day = np.floor(t - 2.0 / 24.0).astype(np.int64)  # clocks change at 2:00 or 3:00
        offset = self.utc_offset_min[np.clip(day + PRE_DAYS, 0, len(self.utc_offset_min) - 1)]
        result: IntArray = base + np.round(t * 86_400_000).astype(np.int64) - offset * 60_000
        return result

    def epoch_day(self, t: FloatArray) -> IntArray:
        """Return days since 1970-01-01 of times given in days from the start."""
        result: IntArray = (self.start - date(1970, 1, 1)).days + np.floor(t).astype(np.int64)
        return result

    def date_of(self, day: int) -> date:
        """Return the calendar date of a day number."""
        return self.start + timedelta(days=int(day))


def _second_wednesday_of_january(year: int) -> date:
    first = date(year, 1, 1)
    return first + timedelta(days=(2 - first.weekday()) % 7 + 7)


def _last_wednesday_of_june(year: int) -> date:
    last = date(year, 6, 30)
    return last - timedelta(days=(last.weekday() - 2) % 7)


def _black_friday(year: int) -> date:
    first = date(year, 11, 1)
    first_thursday = first + timedelta(days=(3 - first.weekday()) % 7)
    return first_thursday + timedelta(days=22)


def _flags(dates: list[date]) -> dict[str, BoolArray]:
    years = range(dates[0].year, dates[-1].year + 1)
    sales_starts = [
        f(y) for y in years for f in (_second_wednesday_of_january, _last_wednesday_of_june)
    ]
    fridays = {_black_friday(y) for y in years}
    holidays = {(1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25)}
    flags = {
        k: np.zeros(len(dates), dtype=bool) for k in ("sales", "opening", "bf", "xmas", "closed")
    }
    for i, day in enumerate(dates):
        since = [(day - s).days for s in sales_starts]
        flags["sales"][i] = any(0 <= d < 28 for d in since)
        flags["opening"][i] = any(0 <= d < 7 for d in since)
        flags["bf"][i] = any(0 <= (day - f).days <= 3 for f in fridays)
        flags["xmas"][i] = day.month == 12 and day.day <= 24
        flags["closed"][i] = day.weekday() == 6 or (day.month, day.day) in holidays
    return flags


def _offset_minutes(day: date) -> int:
    """Return the Europe/Paris offset from UTC at noon of a day, in minutes."""
    offset = PARIS.utcoffset(datetime(day.year, day.month, day.day, 12))
    return int(offset.total_seconds() // 60) if offset is not None else 60


_WEEKDAY_DEMAND = np.array([0.85, 0.9, 1.0, 0.95, 1.05, 1.35, 0.9])
_MONTH_DEMAND = np.array([1.0, 0.85, 1.0, 1.05, 1.05, 1.0, 1.0, 0.8, 1.1, 1.0, 1.0, 1.1])


def build(start: date, days: int, holdout: int) -> Calendar:
    dates = [start + timedelta(days=d) for d in range(-PRE_DAYS, days + holdout)]
    flags = _flags(dates)
    weekday = np.array([d.weekday() for d in dates], dtype=np.int64)
    month = np.array([d.month - 1 for d in dates], dtype=np.int64)
    bf_day = np.array([d.weekday() == 4 for d in dates]) & flags["bf"]
    demand = _WEEKDAY_DEMAND[weekday] * _MONTH_DEMAND[month]
    demand *= np.where(flags["opening"], 1.9, np.where(flags["sales"], 1.3, 1.0))
    demand *= np.where(bf_day, 3.0, np.where(flags["bf"], 1.8, 1.0))
    demand *= np.where(flags["xmas"], 1.35, 1.0)
    bargain = _WEEKDAY_DEMAND[weekday] * (
        0.45 + 4.0 * flags["opening"] + 1.6 * flags["sales"] + 5.0 * bf_day + 2.0 * flags["bf"]
    )
    offsets = np.array([_offset_minutes(d) for d in dates], dtype=np.int64)
    return Calendar(
        start=start,
        days=days,
        holdout=holdout,
        weekday=weekday,
        sales=flags["sales"],
        sales_opening=flags["opening"],
        black_friday=flags["bf"],
        christmas=flags["xmas"],
        closed=flags["closed"],
        demand=demand / demand.mean(),
        bargain_demand=bargain / bargain.mean(),
        utc_offset_min=offsets,
    )


def months_before(end: date, months: int) -> date:
    """Return the same day of the month `months` earlier (clamped to the month's end)."""
    year, month = divmod(end.year * 12 + end.month - 1 - months, 12)
    return date(year, month + 1, min(end.day, cal.monthrange(year, month + 1)[1]))
