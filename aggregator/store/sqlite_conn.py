"""How every SQLite connection of the store is set up, and how it takes the write lock.

    SQLITE_PRAGMAS                 run on each new connection (SQLAlchemy engine and ledger)
    begin_immediate(connection)    BEGIN IMMEDIATE, waiting for the write lock in short steps

The pragmas:

    WAL                       readers never block the writer, nor the writer the readers
    synchronous = NORMAL      a commit survives the process being killed (not a power cut)
    foreign_keys = ON         the schema's ON DELETE CASCADE holds
    wal_autocheckpoint        pages of WAL between checkpoints: 20,000 (80 MB) instead of
                              SQLite's 1,000, so a hot index page is copied back once per
                              80 MB of writes, not once per 4 MB (a cold 6,000-record crawl
                              runs about 3% faster); the WAL file is reused, not grown,
                              after each checkpoint

Waiting for the write lock: SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25, 25,
25, 50, 50, 100 ms between tries, so a writer that finds the lock held for 12 ms sleeps until
18 ms, and one that has waited 200 ms sleeps in steps of 100 ms. A crawl has two writers on
one file (the crawling process and the linker), each holding the lock a few milliseconds
at a time: `begin_immediate` tries again every half millisecond instead, so a waiting
writer takes the lock as soon as it is free.
"""

from __future__ import annotations

import sqlite3
import time

SQLITE_PRAGMAS = (
    "journal_mode = WAL",
    "synchronous = NORMAL",
    "foreign_keys = ON",
    "wal_autocheckpoint = 20000",
)
RETRY_SECONDS = 0.0005


def begin_immediate(connection: sqlite3.Connection, timeout_seconds: float) -> None:
    """``BEGIN IMMEDIATE`` on `connection` (in autocommit mode), trying every
    `RETRY_SECONDS` while another connection holds the write lock; after `timeout_seconds`
    the last "database is locked" error is raised."""
    deadline = time.monotonic() + max(0.0, timeout_seconds)
    busy_ms = connection.execute("PRAGMA busy_timeout").fetchone()[0]
    connection.execute("PRAGMA busy_timeout = 0")  # fail at once; we wait here, finer
    try:
        while True:
            try:
                connection.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(RETRY_SECONDS)
    finally:
        connection.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
