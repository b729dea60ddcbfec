"""FHIR date and dateTime values as calendar days (the day as recorded, time zone not shifted)."""

from __future__ import annotations

import re
from datetime import date

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


class DateError(ValueError):
    """A date the rules cannot place on a calendar day."""


DAY_CACHE: dict[str, date] = {}  # "YYYY-MM-DD" -> its day: the values read fall on few days, each parsed once


def parse_day(value: object) -> date:
    """The calendar day of a FHIR date/dateTime/instant; partial dates (2024, 2024-03) are refused."""
    if isinstance(value, str):
        known = DAY_CACHE.get(value[:10])
        if known is not None:
            return known
        day = _parse_day(value)
        if len(DAY_CACHE) < 100_000:
            DAY_CACHE[value[:10]] = day  # a full day matched: the first 10 characters decide
        return day
    return _parse_day(value)


def _parse_day(value: object) -> date:
    if not isinstance(value, str):
        raise DateError(f"not a date string: {value!r}")
    m = _DATE.match(value)
    if not m:
        raise DateError(f"not a FHIR date: {value!r}")
    if m.group(3) is None:
        raise DateError(f"date {value!r} has no day; a day is needed to place it on the timeline")
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError as exc:
        raise DateError(f"impossible date {value!r}: {exc}") from exc


def parse_birth_date(value: object) -> tuple[date, bool]:
    """A birth date, and whether it was exact; a partial one is placed mid-period (2015 -> 2015-07-01)."""
    if not isinstance(value, str):
        raise DateError(f"not a date string: {value!r}")
    m = _DATE.match(value)
    if not m:
        raise DateError(f"not a FHIR date: {value!r}")
    year, month, day = m.group(1), m.group(2), m.group(3)
    try:
        if day is not None:
            return date(int(year), int(month), int(day)), True
        if month is not None:
            return date(int(year), int(month), 15), False
        return date(int(year), 7, 1), False
    except ValueError as exc:
        raise DateError(f"impossible date {value!r}: {exc}") from exc
