"""Date parsing and formatting: everything leaves as an aware UTC datetime.

The record shape wants ``YYYY-MM-DDTHH:MM:SSZ``; `format_utc` writes exactly that.
"""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime, timedelta

DEFAULT_SKEW = timedelta(minutes=15)
EARLIEST_PLAUSIBLE = datetime(1995, 1, 1, tzinfo=UTC)

_ISO = re.compile(
    r"^\s*(\d{4})-?(\d{2})-?(\d{2})"
    r"(?:[T ](\d{1,2}):?(\d{2})(?::?(\d{2})(?:[.,]\d+)?)?)?"
    r"\s*(Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?\s*$",
    re.IGNORECASE,
)


def to_utc(value: datetime) -> datetime:
    """Return `value` as an aware UTC datetime without microseconds (naive means UTC)."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.replace(microsecond=0)


def format_utc(value: datetime) -> str:
    """Format as RFC 3339 UTC with seconds precision and a ``Z`` suffix."""
    return to_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_datetime(text: str | None) -> datetime | None:
    """Parse ISO 8601 / RFC 3339 or RFC 2822 dates; None when the text is not a date."""
    if not text:
        return None
    text = text.strip()
    return _parse_iso(text) or _parse_rfc2822(text)


def _parse_iso(text: str) -> datetime | None:
    match = _ISO.match(text)
    if not match:
        return None
    year, month, day, hour, minute, second, zone = match.groups()
    try:
        value = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)
        )
    except ValueError:
        return None
    return to_utc(value - _zone_offset(zone))


def _zone_offset(zone: str | None) -> timedelta:
    if not zone or zone.upper() in ("Z", "UTC", "GMT"):
        return timedelta(0)
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    return sign * timedelta(hours=hours, minutes=minutes)


def _parse_rfc2822(text: str) -> datetime | None:
    try:
        value = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if value is None:
        return None
    return to_utc(value)


def is_plausible(value: datetime, now: datetime, skew: timedelta = DEFAULT_SKEW) -> bool:
    """True unless `value` lies in the future beyond `skew` or before the web had news."""
    utc = to_utc(value)
    return EARLIEST_PLAUSIBLE <= utc <= to_utc(now) + skew


def first_plausible(
    candidates: list[datetime | None], now: datetime, skew: timedelta = DEFAULT_SKEW
) -> datetime | None:
    """The first candidate that `is_plausible`, as UTC; future dates fall through."""
    for candidate in candidates:
        if candidate is not None and is_plausible(candidate, now, skew):
            return to_utc(candidate)
    return None
