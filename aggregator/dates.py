"""Date parsing and formatting: everything leaves as an aware UTC datetime.

The record shape wants ``YYYY-MM-DDTHH:MM:SSZ``; `format_utc` writes exactly that.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]

DEFAULT_SKEW = timedelta(minutes=15)
EARLIEST_PLAUSIBLE = datetime(1995, 1, 1, tzinfo=UTC)

_ISO = re.compile(
    r"^\s*(\d{4})-?(\d{2})-?(\d{2})"
    r"(?:[T ](\d{1,2}):?(\d{2})(?::?(\d{2})(?:[.,]\d+)?)?)?"
    r"\s*(Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?\s*$",
    re.IGNORECASE,
)


def utc_now() -> datetime:
    """The current time, aware, in UTC, to the second (the default `Clock`)."""
    return datetime.now(UTC).replace(microsecond=0)


def to_utc(value: datetime) -> datetime:
    """Return `value` as an aware UTC datetime without microseconds (naive means UTC)."""
    if value.tzinfo is UTC and not value.microsecond:
        return value  # the usual case, and called for every stored entry date of a feed
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
    try:
        return to_utc(value - _zone_offset(zone))
    except OverflowError:  # "9999-12-31T23:59:59-23:59" is past year 9999 in UTC
        return None


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
        return None if value is None else to_utc(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


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


_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_MONTH = (
    r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_YEAR = r"((?:19|20)\d{2})"
_CLOCK = r"(?:\D{1,6}?(\d{1,2})[:.](\d{2})(?::(\d{2}))?\s*([ap])?\.?m?\.?)?"
_TEXT_MDY = re.compile(rf"\b{_MONTH}\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+{_YEAR}\b{_CLOCK}", re.I)
_TEXT_DMY = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\.?\s+{_MONTH},?\s+{_YEAR}\b{_CLOCK}", re.I)
_ZONED = re.compile(r"(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$")
_ISO_INSIDE = re.compile(
    r"\b((?:19|20)\d{2}-\d{2}-\d{2}(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
    r"(?:\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?))?)?)(?!\d)"
)
_NUMERIC_YMD = re.compile(
    r"(?<!\d)((?:19|20)\d{2})\s*[/.年]\s*(\d{1,2})\s*[/.月]\s*(\d{1,2})(?!\d)日?"
    r"(?:\s*(\d{1,2})[:時](\d{2}))?"
)
_TEXT_PATTERNS = ((_TEXT_MDY, (3, 1, 2)), (_TEXT_DMY, (3, 2, 1)), (_NUMERIC_YMD, (1, 2, 3)))


def parse_date_text(
    text: str | None, *, limit: int = 200, offset: timedelta = timedelta(0)
) -> datetime | None:
    """The first date inside free text ("Dec. 9, 2016 9:13 AM", "9 December 2016",
    2016/12/09, 2019年4月4日), searching the first `limit` characters.

    A date or time without a zone is local time at `offset` from UTC. None when no whole
    date is found.
    """
    if not text:
        return None
    text = text[:limit]
    matches: list[tuple[int, datetime | None]] = []
    iso = _ISO_INSIDE.search(text)
    if iso:
        zoned = _ZONED.search(iso.group(1))
        value = parse_datetime(iso.group(1))
        shift = timedelta(0) if zoned or value is None else offset
        matches.append((iso.start(), value - shift if value else None))
    for pattern, order in _TEXT_PATTERNS:
        match = pattern.search(text)
        if match:
            year, month, day = (match.group(i) for i in order)
            number = int(month) if month.isdigit() else _MONTHS[month.lower().rstrip(".")]
            built = _build(year, number, day, match.groups()[3:])
            matches.append((match.start(), built - offset if built else None))
    found = [item for item in matches if item[1] is not None]
    return min(found, key=lambda item: item[0])[1] if found else None


def _build(year: str, month: int, day: str, clock: tuple[str | None, ...]) -> datetime | None:
    hour, minute, second, meridiem = (*clock, None, None, None, None)[:4]
    try:
        hours = int(hour or 0)
        if meridiem:
            hours = hours % 12 + (12 if meridiem.lower() == "p" else 0)
        value = datetime(int(year), month, int(day), hours, int(minute or 0), int(second or 0))
    except ValueError:
        return None
    return to_utc(value)
