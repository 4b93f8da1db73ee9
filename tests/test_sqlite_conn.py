"""Taking SQLite's write lock (`store.sqlite_conn.begin_immediate`)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from aggregator.store.sqlite_conn import begin_immediate


def _connect(path: Path, busy_ms: int = 5000) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute(f"PRAGMA busy_timeout = {busy_ms}")
    return connection


def test_the_lock_is_taken_as_soon_as_the_holder_commits(tmp_path: Path) -> None:
    holder, waiter = _connect(tmp_path / "a.db"), _connect(tmp_path / "a.db", busy_ms=4321)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    released = []

    def release_later() -> None:
        time.sleep(0.06)  # past SQLite's own 1+2+5+10+15 ms retries, before its next one
        holder.execute("INSERT INTO t VALUES (1)")
        holder.execute("COMMIT")
        released.append(time.monotonic())

    thread = threading.Thread(target=release_later)
    thread.start()
    begin_immediate(waiter, timeout_seconds=5)
    took = time.monotonic()
    thread.join()
    assert waiter.in_transaction
    assert took - released[0] < 0.015  # SQLite's own handler would sleep until 0.078 s
    assert waiter.execute("SELECT count(*) FROM t").fetchone() == (1,)  # sees the commit
    waiter.execute("COMMIT")
    assert waiter.execute("PRAGMA busy_timeout").fetchone() == (4321,)  # restored


def test_a_lock_held_past_the_timeout_is_an_error_and_nothing_stays_open(tmp_path: Path) -> None:
    holder, waiter = _connect(tmp_path / "a.db"), _connect(tmp_path / "a.db", busy_ms=777)
    holder.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        begin_immediate(waiter, timeout_seconds=0.1)
    assert 0.1 <= time.monotonic() - started < 1.0
    assert not waiter.in_transaction
    assert waiter.execute("PRAGMA busy_timeout").fetchone() == (777,)
    holder.execute("ROLLBACK")
    begin_immediate(waiter, timeout_seconds=0.1)  # free now: taken at once
    assert waiter.in_transaction
