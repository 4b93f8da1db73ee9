"""Sources' state and claims in a SQLite store, through the standard library's sqlite3.

A crawl where every feed answers 304 reads and writes nothing but its sources' rows: it
claims them, reads their conditional-GET state, saves each one's next check and releases
it. Importing SQLAlchemy and the table models for that costs about 180 ms, a third of such
a crawl, against 2 ms for `sqlite3`. `SqliteLedger` does exactly what the `Store` methods
of the same names do, statement for statement and byte for byte in the rows
(tests/test_ledger.py compares the two), and `aggregator.store.lazy.LazyStore` uses it
until something else is asked of the store.

It opens only a SQLite file that exists and is stamped with the head schema revision;
anything else (a new file, an older schema, PostgreSQL, a URL with options) is the full
store's to open, create or upgrade, and `open` answers None.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aggregator.errors import StorageError
from aggregator.store.chunks import chunked
from aggregator.store.source_rows import (
    SOURCE_COLUMNS,
    SOURCE_TIMES,
    source_from_columns,
    source_values,
    utc,
)
from aggregator.store.sqlite_conn import SQLITE_PRAGMAS, begin_immediate
from aggregator.store.values import HEAD_REVISION, ImportedSource, SourceState

_URL_PREFIXES = ("sqlite:///", "sqlite+pysqlite:///")


def _marks(part: Sequence[str]) -> str:
    return ", ".join("?" for _ in part)


# Statements hold only column names (SourceState's fields) and "?" marks: every value is a
# parameter, hence the S608 exemptions below.
_COLUMN_LIST = ", ".join(SOURCE_COLUMNS)
_SAVE_SOURCE = (
    f"INSERT INTO sources ({_COLUMN_LIST}) VALUES ({_marks(SOURCE_COLUMNS)}) "  # noqa: S608
    "ON CONFLICT (name) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in SOURCE_COLUMNS if name != "name")
)
_CLAIM = (
    "INSERT INTO source_claims (source_name, owner, claimed_at, claimed_until) "
    "VALUES (?, ?, ?, ?) ON CONFLICT (source_name) DO UPDATE SET owner = excluded.owner, "
    "claimed_at = excluded.claimed_at, claimed_until = excluded.claimed_until "
    "WHERE source_claims.claimed_until < excluded.claimed_at "
    "OR source_claims.owner = excluded.owner RETURNING owner"
)
_RELEASE = "DELETE FROM source_claims WHERE source_name = ? AND owner = ?"


def sqlite_path(url: str) -> Path | None:
    """The file of a plain ``sqlite:///path`` URL; None for anything else (memory,
    options, percent-escapes, other backends)."""
    prefix = next((p for p in _URL_PREFIXES if url.startswith(p)), None)
    if prefix is None:
        return None
    path = url[len(prefix) :]
    if not path or path == ":memory:" or any(c in path for c in "?%#") or path.startswith("file:"):
        return None
    return Path(path)


class SqliteLedger:
    """The source-bookkeeping methods of `Store`, on one sqlite3 connection (thread-safe)."""

    def __init__(self, connection: sqlite3.Connection, busy_timeout_seconds: float) -> None:
        self._connection = connection
        self._busy_timeout_seconds = busy_timeout_seconds
        self._lock = threading.Lock()

    @classmethod
    def open(cls, url: str, *, busy_timeout_seconds: float = 30.0) -> SqliteLedger | None:
        """A ledger on the SQLite file of `url` when it exists at the head schema, else None."""
        path = sqlite_path(url)
        if path is None or not path.is_file():
            return None
        try:  # mode=rw: never create the file (the full store does that, with its schema)
            connection = sqlite3.connect(
                f"file:{quote(str(path.resolve()))}?mode=rw",
                uri=True,
                timeout=max(0.0, busy_timeout_seconds),
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error:
            return None
        try:
            if _at_head(connection):
                _configure(connection)
                return cls(connection, busy_timeout_seconds)
        except sqlite3.Error:
            pass
        connection.close()
        return None

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._connection.close()

    def claim_sources(
        self, names: Sequence[str], owner: str, ttl_seconds: float
    ) -> dict[str, tuple[bool, SourceState | None]]:
        """`Store.claim_sources`: claim each of `names` and read the states of those held,
        in one transaction: name → (claimed, state or None)."""
        now = datetime.now(UTC)
        at, until = _datetime(now), _datetime(now + timedelta(seconds=ttl_seconds))
        with self._writing("claim_sources") as connection:
            held = {
                name
                for name in names
                if connection.execute(_CLAIM, (name, owner, at, until)).fetchone() is not None
            }
            states = _source_states(connection, sorted(held))
        return {name: (name in held, states.get(name)) for name in names}

    def renew_claims(self, names: Sequence[str], owner: str, ttl_seconds: float) -> set[str]:
        """`Store.renew_claims`: extend `owner`'s leases on `names`; the names still held."""
        until = _datetime(datetime.now(UTC) + timedelta(seconds=ttl_seconds))
        held: set[str] = set()
        with self._writing("renew_claims") as connection:
            for part in chunked(names):
                where = f"source_name IN ({_marks(part)}) AND owner = ?"
                statement = f"UPDATE source_claims SET claimed_until = ? WHERE {where}"  # noqa: S608
                statement += " RETURNING source_name"
                rows = connection.execute(statement, (until, *part, owner)).fetchall()
                held.update(str(row[0]) for row in rows)
        return held

    def release_sources(self, names: Sequence[str], owner: str) -> None:
        """`Store.release_sources`: end `owner`'s leases on `names`, in one transaction."""
        if names:
            with self._writing("release_sources") as connection:
                connection.executemany(_RELEASE, [(name, owner) for name in names])

    def get_source_state(self, name: str) -> SourceState | None:
        """`Store.get_source_state`: the saved state of source `name`, or None."""
        with self._reading("get_source_state") as connection:
            return _source_states(connection, [name]).get(name)

    def save_source_state(self, state: SourceState, *, release_owner: str | None = None) -> None:
        """`Store.save_source_state`: insert or replace the row of `state.name`; with
        `release_owner`, end that owner's claim on the source in the same transaction."""
        values = source_values(state)
        row = tuple(_parameter(values[name]) for name in SOURCE_COLUMNS)
        with self._writing("save_source_state") as connection:
            connection.execute(_SAVE_SOURCE, row)
            if release_owner is not None:
                connection.execute(_RELEASE, (state.name, release_owner))

    def count_source_states(self) -> dict[str, int]:
        """`Store.count_source_states`: source state → how many saved sources are in it."""
        with self._reading("count_source_states") as connection:
            rows = connection.execute("SELECT state, count(*) FROM sources GROUP BY state")
            return {str(state): int(count) for state, count in rows}

    def queued_for_refresh(self) -> dict[int, datetime]:
        """`Store.queued_for_refresh`: record id → the time it counts at, of every record
        waiting for a refresh."""
        with self._reading("queued_for_refresh") as connection:
            rows = connection.execute("SELECT record_id, linked_at FROM refresh_queue")
            return {int(record_id): _read_datetime(at) for record_id, at in rows}

    def change_marker(self) -> tuple[datetime | None, int]:
        """`Store.change_marker`: (latest record updated_at, number of records)."""
        with self._reading("change_marker") as connection:
            latest, count = connection.execute(
                "SELECT max(updated_at), count(*) FROM records"
            ).fetchone()
            return (_read_datetime(latest) if latest else None), int(count)

    def unlinked_ids(self, limit: int) -> list[int]:
        """`Store.unlinked_ids`: ids of stored records without a story, lowest first."""
        with self._reading("unlinked_ids") as connection:
            rows = connection.execute(
                "SELECT id FROM records WHERE story_id IS NULL ORDER BY id LIMIT ?", (limit,)
            )
            return [int(row_id) for (row_id,) in rows]

    def imported_sources(self) -> list[ImportedSource]:
        """`Store.imported_sources`: the sources imported from OPML, in import order."""
        with self._reading("imported_sources") as connection:
            rows = connection.execute(
                "SELECT name, url, category, type, pages FROM imported_sources ORDER BY id"
            )
            return [ImportedSource(n, u, c, t, bool(p)) for n, u, c, t, p in rows]

    @contextmanager
    def _reading(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._connection
            except sqlite3.Error as exc:
                raise StorageError(f"{action} failed: {exc}") from exc

    @contextmanager
    def _writing(self, action: str) -> Iterator[sqlite3.Connection]:
        """One write transaction, taking the write lock up front as the store's do."""
        with self._lock:
            connection = self._connection
            try:
                begin_immediate(connection, self._busy_timeout_seconds)
                try:
                    yield connection
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StorageError(f"{action} failed: {exc}") from exc


def _at_head(connection: sqlite3.Connection) -> bool:
    row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    return row is not None and row[0] == HEAD_REVISION


def _configure(connection: sqlite3.Connection) -> None:
    """The pragmas `store.engine` sets on every SQLite connection."""
    for pragma in SQLITE_PRAGMAS:
        connection.execute(f"PRAGMA {pragma}")


def _source_states(connection: sqlite3.Connection, names: Sequence[str]) -> dict[str, SourceState]:
    found: dict[str, SourceState] = {}
    for part in chunked(names):
        statement = f"SELECT {_COLUMN_LIST} FROM sources WHERE name IN ({_marks(part)})"  # noqa: S608
        for row in connection.execute(statement, part):
            columns = dict(zip(SOURCE_COLUMNS, row, strict=True))
            for name in SOURCE_TIMES:
                columns[name] = _read_datetime(columns[name]) if columns[name] else None
            columns["entry_dates"] = json.loads(columns["entry_dates"] or "[]")
            found[columns["name"]] = source_from_columns(columns)
    return found


def _datetime(value: datetime) -> str:
    """A datetime as SQLAlchemy writes it to SQLite: naive UTC, always with microseconds."""
    v = utc(value)
    assert v is not None
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d} "
        f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}"
    )


def _read_datetime(text: str) -> datetime:
    parsed = utc(datetime.fromisoformat(text))
    assert parsed is not None
    return parsed


def _parameter(value: Any) -> Any:
    if isinstance(value, datetime):
        return _datetime(value)
    if isinstance(value, list):
        return json.dumps(value)  # SQLAlchemy's JSON type: json.dumps with its defaults
    return value
