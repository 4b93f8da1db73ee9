"""Engine creation and the transaction boundary where SQLAlchemy errors become StorageError.

SQLite gets ``busy_timeout`` and `sqlite_conn.SQLITE_PRAGMAS` (WAL, ``synchronous=NORMAL``,
foreign keys, a longer checkpoint interval) on every new connection. Write transactions
start with ``BEGIN IMMEDIATE`` (`sqlite_conn.begin_immediate`: within ``busy_timeout``, in
half-millisecond steps) so that a read-then-write batch waits for the write lock instead
of failing on a stale WAL snapshot. Other dialects
(PostgreSQL) get plain defaults.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlmodel import Session

from aggregator.errors import StorageError
from aggregator.store.sqlite_conn import SQLITE_PRAGMAS, begin_immediate

_BEGIN_OPTION = "aggregator_begin"


def create_store_engine(url: str, busy_timeout_seconds: float) -> Engine:
    """Build the engine for `url`; for SQLite files, create the parent folder and pragmas."""
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            _make_parent_dir(parsed.database)
        engine = create_engine(parsed)
    except (ArgumentError, ImportError, OSError) as exc:
        raise StorageError(f"cannot open storage {url!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        _install_sqlite_hooks(engine, busy_timeout_seconds)
    return engine


def writer(engine: Engine) -> Engine:
    """An engine sharing `engine`'s pool whose transactions take the write lock up front."""
    return engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})


def _make_parent_dir(database: str | None) -> None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _install_sqlite_hooks(engine: Engine, busy_timeout_seconds: float) -> None:
    busy_ms = max(0, int(busy_timeout_seconds * 1000))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event own transactions (pysqlite's own are lazy).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            for pragma in SQLITE_PRAGMAS:
                cursor.execute(f"PRAGMA {pragma}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        if mode != "IMMEDIATE":
            connection.exec_driver_sql(f"BEGIN {mode}")
            return
        raw = connection.connection.driver_connection
        if not isinstance(raw, sqlite3.Connection):  # another SQLite driver: its own waiting
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            return
        try:
            begin_immediate(raw, busy_timeout_seconds)
        except sqlite3.OperationalError as exc:  # as SQLAlchemy would have wrapped it
            raise OperationalError("BEGIN IMMEDIATE", None, exc) from exc


@contextmanager
def core_transaction(engine: Engine, action: str) -> Iterator[Connection]:
    """A connection in one transaction, for core statements only: lighter than a Session
    (a re-poll runs two of these per source). Errors as in `transaction`."""
    try:
        with engine.begin() as connection:
            yield connection
    except SQLAlchemyError as exc:
        raise StorageError(f"{action} failed: {exc}") from exc


@contextmanager
def transaction(engine: Engine, action: str) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on any error.

    SQLAlchemy errors are re-raised as StorageError naming `action`.
    """
    try:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            yield session
    except SQLAlchemyError as exc:
        raise StorageError(f"{action} failed: {exc}") from exc
