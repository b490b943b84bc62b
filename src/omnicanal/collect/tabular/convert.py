"""Cell converters by column type: text, whole numbers, French or ISO amounts and dates, yes/no."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from omnicanal.collect.tabular.columns import ColumnType

PARIS = ZoneInfo("Europe/Paris")

SPACES = re.compile(r"[ \u00a0\u202f]+")  # thousands separators
FRENCH_DATE = re.compile(
    r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T]+(\d{1,2})[:h](\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?)?$"
)
TRUE_WORDS = frozenset({"yes", "y", "oui", "o", "true", "vrai", "1", "x", "on"})
FALSE_WORDS = frozenset({"no", "n", "non", "false", "faux", "0", "off"})
CENT = Decimal(100)
PLAIN_INT = re.compile(r"^\s*-?\d{1,18}\s*$")
PLAIN_AMOUNT = re.compile(r"^\s*(-?)(\d{1,15})(?:[.,](\d{1,2}))?\s*$")


def to_text(value: object) -> str:
    """Return a cell as trimmed text (whole floats lose their `.0`: EANs from Excel)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def to_int(value: object) -> int:
    """Return a whole number; `1 234` and `12,0` are accepted."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and PLAIN_INT.match(value):
        return int(value)
    try:
        number = _decimal(value)
    except ValueError:
        number = Decimal("NaN")
    if not number.is_finite() or number != number.to_integral_value():
        raise ValueError(f"{to_text(value)[:40]!r} is not a whole number")
    return int(number)


def _decimal(value: object) -> Decimal:
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    else:
        text = SPACES.sub("", str(value)).removesuffix("€").removesuffix("EUR")
        if "," in text and "." in text:  # the last separator is the decimal one
            thousands = "." if text.rfind(",") > text.rfind(".") else ","
            text = text.replace(thousands, "")
        try:
            number = Decimal(text.replace(",", "."))
        except InvalidOperation:
            raise ValueError(f"{to_text(value)[:40]!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{to_text(value)[:40]!r} is not a number")
    return number


def to_cents(value: object) -> int:
    """Return an amount in integer cents: `12.50`, `12,50`, `1 234,50` (rounded half up)."""
    match = PLAIN_AMOUNT.match(value) if isinstance(value, str) else None
    if match:
        sign, whole, fraction = match.groups()
        cents = int(whole) * 100 + int((fraction or "0").ljust(2, "0"))
        return -cents if sign else cents
    return int((_decimal(value) * CENT).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _parse_text_datetime(text: str) -> datetime:
    if len(text) in (16, 19) and text[2] == "/" and text[5] == "/" and text[10] == " ":
        # `23/11/2026 14:05[:00]`, as French tills and spreadsheets write it, read fast
        seconds = int(text[17:19]) if len(text) == 19 and text[16] == ":" else 0
        if text[13] == ":" and (len(text) == 16 or text[16] == ":"):
            return datetime(
                int(text[6:10]),
                int(text[3:5]),
                int(text[:2]),
                int(text[11:13]),
                int(text[14:16]),
                seconds,
            )
    match = FRENCH_DATE.match(text)
    if match:
        day, month, year, hour, minute, second, fraction = match.groups()
        micro = int((fraction or "0").ljust(6, "0"))
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            micro,
        )
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    return datetime.fromisoformat(iso)


def to_datetime(value: object) -> datetime:
    """Return an aware datetime; naive values are Europe/Paris time."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime.combine(value, time())
    else:
        text = str(value).strip()
        try:
            parsed = _parse_text_datetime(text)
        except ValueError:
            raise ValueError(
                f"{text[:40]!r} is not a date (use 2026-11-23, 2026-11-23T14:05:00, "
                "23/11/2026 or 23/11/2026 14:05)"
            ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=PARIS)


def to_date(value: object) -> date:
    """Return a calendar date (a time, if given, is read in Europe/Paris)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    return to_datetime(value).astimezone(PARIS).date()


def to_bool(value: object) -> bool:
    """Return yes/no from oui/non, yes/no, true/false, 1/0."""
    if isinstance(value, bool):
        return value
    text = to_text(value).casefold()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ValueError(f"{text[:20]!r} is not yes/no (use oui/non, yes/no, 1/0, true/false)")


CONVERTERS: dict[ColumnType, Callable[[Any], Any]] = {
    ColumnType.TEXT: to_text,
    ColumnType.INT: to_int,
    ColumnType.CENTS: to_cents,
    ColumnType.DATETIME: to_datetime,
    ColumnType.DATE: to_date,
    ColumnType.BOOL: to_bool,
}
