"""A source's state as the columns of its ``sources`` row, and back; library-free, so the
SQLite ledger (`aggregator.store.ledger`) and the SQLAlchemy store read and write the same
values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from aggregator.store.values import SourceState

SOURCE_COLUMNS = tuple(f.name for f in fields(SourceState))
"""The columns of a sources row that hold a SourceState (all but ``id``), in field order."""
SOURCE_TIMES = ("last_fetch_at", "next_check_at", "first_error_at", "redirect_first_seen")


def utc(value: datetime | None) -> datetime | None:
    """`value` as an aware UTC datetime (naive means UTC); None stays None."""
    if value is None or value.tzinfo is UTC:
        return value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_utc(value: datetime | None) -> str | None:
    """`value` in UTC as ISO 8601, or None."""
    aware = utc(value)
    return aware.isoformat() if aware else None


def source_values(state: SourceState) -> dict[str, Any]:
    """The column values of a sources row for `state` (datetimes in UTC)."""
    values = {name: getattr(state, name) for name in SOURCE_COLUMNS}  # asdict deep-copies
    for key in SOURCE_TIMES:
        values[key] = utc(values[key])
    values["entry_dates"] = [iso_utc(date) for date in state.entry_dates]
    return values


def source_from_columns(columns: Mapping[str, Any]) -> SourceState:
    """The SourceState held in a sources row's columns (`entry_dates` decoded: a list of
    ISO 8601 texts)."""
    values = {name: columns[name] for name in SOURCE_COLUMNS}
    for key in SOURCE_TIMES:
        values[key] = utc(values[key])
    dates = (datetime.fromisoformat(text) for text in columns["entry_dates"] or () if text)
    values["entry_dates"] = tuple(date for date in (utc(d) for d in dates) if date)
    return SourceState(**values)
