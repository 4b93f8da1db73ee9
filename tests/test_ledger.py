"""The SQLite ledger (sources' bookkeeping over sqlite3) against the SQLAlchemy store, and the
LazyStore that uses it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from aggregator.errors import StorageError
from aggregator.store import SourceState, Store
from aggregator.store.lazy import LazyStore
from aggregator.store.ledger import SqliteLedger, sqlite_path
from aggregator.store.values import ImportedSource

PARIS = timezone(timedelta(hours=1))
STATES = [
    SourceState(name="plain", url="https://a.example/feed"),
    SourceState(
        name="Ünïcode — feed",
        url="https://b.example/rss?x=1&y=é",
        final_url="https://b.example/rss2",
        etag='W/"abc"',
        last_modified="Sat, 07 Jun 2025 23:35:25 GMT",
        last_status=304,
        last_fetch_at=datetime(2026, 11, 27, 11, 30, 41, 123456, tzinfo=UTC),
        last_error="HTTP 503: « unavailable »",
        error_count=3,
        not_modified_count=7,
        fetch_count=12,
        next_check_at=datetime(2026, 11, 28, 9, 0, tzinfo=PARIS),
        state="erroring",
        body_hash="8d00" * 16,
        first_error_at=datetime(2026, 11, 26, 1, 2, 3),
        last_interval_seconds=5400.5,
        redirect_url="https://c.example/feed",
        redirect_first_seen=datetime(2026, 11, 25, 0, 0, 0, 1, tzinfo=UTC),
        url_override="https://d.example/feed",
        entry_dates=(
            datetime(2025, 6, 7, 23, 35, 25, tzinfo=UTC),
            datetime(2025, 6, 7, 17, 16, 31, 500, tzinfo=PARIS),
        ),
    ),
]


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _new_store_file(path: Path) -> str:
    """A store file at the head schema, closed again."""
    Store(_url(path)).close()
    return _url(path)


def _rows(
    path: Path, table: str, order: str, skip: tuple[str, ...] = ()
) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as connection:
        columns = [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]
        kept = ", ".join(c for c in columns if c not in skip)
        return connection.execute(f"SELECT {kept} FROM {table} ORDER BY {order}").fetchall()


def _bookkeeping(store: Store | SqliteLedger) -> list[object]:
    """The same calls on either; what each returned."""
    answers: list[object] = []
    for state in STATES:
        store.save_source_state(state)
    answers.append(store.claim_sources(["plain", "Ünïcode — feed", "never saved"], "me", 60))
    answers.append(store.claim_sources(["plain", "other"], "you", 60))  # plain: mine
    answers.append(store.claim_sources(["plain"], "me", 60))  # mine again
    answers.append(store.claim_sources(["lapsed"], "gone", -1))  # expired at once
    answers.append(store.claim_sources(["lapsed"], "me", 60))  # so taken over
    answers.append(store.renew_claims(["plain", "other", "never saved"], "me", 120))
    answers.append(store.get_source_state("Ünïcode — feed"))
    answers.append(store.get_source_state("absent"))
    saved = SourceState(name="plain", url="https://a.example/feed", fetch_count=1, etag="e1")
    store.save_source_state(saved, release_owner="you")  # not your claim: it stays
    store.save_source_state(saved, release_owner="me")
    store.release_sources(["Ünïcode — feed", "never saved"], "me")
    answers.append(store.claim_sources(["plain"], "you", 60))
    answers.append(store.count_source_states())
    answers.append(store.queued_for_refresh())
    answers.append(store.imported_sources())
    return answers


def test_the_ledger_writes_and_answers_exactly_as_the_store(tmp_path: Path) -> None:
    store_file, ledger_file = tmp_path / "store.db", tmp_path / "ledger.db"
    _new_store_file(store_file)
    ledger = SqliteLedger.open(_new_store_file(ledger_file))
    assert ledger is not None
    with Store(_url(store_file)) as store:
        expected = _bookkeeping(store)
    try:
        answered = _bookkeeping(ledger)
    finally:
        ledger.close()
    assert answered == expected
    assert answered[0] == {
        "plain": (True, STATES[0]),
        "Ünïcode — feed": (True, _as_stored(STATES[1])),
        "never saved": (True, None),
    }
    assert _rows(ledger_file, "sources", "name") == _rows(store_file, "sources", "name")
    times = ("claimed_at", "claimed_until")  # taken from the clock
    claims = _rows(ledger_file, "source_claims", "source_name", skip=times)
    assert claims == _rows(store_file, "source_claims", "source_name", skip=times)
    assert claims == [("lapsed", "me"), ("other", "you"), ("plain", "you")]
    assert answered[1:5] == [
        {"plain": (False, None), "other": (True, None)},
        {"plain": (True, STATES[0])},
        {"lapsed": (True, None)},
        {"lapsed": (True, None)},
    ]


def _as_stored(state: SourceState) -> SourceState:
    """`state` as read back: every time in UTC."""
    values = {f: getattr(state, f) for f in state.__dataclass_fields__}
    for key in ("last_fetch_at", "next_check_at", "first_error_at", "redirect_first_seen"):
        if values[key] is not None:
            value = values[key]
            values[key] = value.replace(tzinfo=UTC) if value.tzinfo is None else value
            values[key] = values[key].astimezone(UTC)
    values["entry_dates"] = tuple(d.astimezone(UTC) for d in state.entry_dates)
    return SourceState(**values)


def test_each_reads_what_the_other_wrote(tmp_path: Path) -> None:
    url = _new_store_file(tmp_path / "a.db")
    with Store(url) as store:
        store.save_source_state(STATES[1])
        store.save_imported_sources(
            [ImportedSource("opml feed", "https://e.example/f", pages=False)]
        )
        linked = datetime(2026, 11, 27, 8, 0, 0, 250, tzinfo=PARIS)
        _queue_for_refresh(store, linked)
        ledger = SqliteLedger.open(url)
        assert ledger is not None
        try:
            assert ledger.get_source_state(STATES[1].name) == store.get_source_state(STATES[1].name)
            assert ledger.imported_sources() == store.imported_sources()
            assert ledger.imported_sources()[0].pages is False
            assert ledger.queued_for_refresh() == store.queued_for_refresh()
            assert list(ledger.queued_for_refresh().values()) == [linked.astimezone(UTC)]
            assert ledger.change_marker() == store.change_marker()
            assert store.change_marker()[1] == 1
            unlinked = store.unlinked_ids(10)  # stored, never given a story
            assert ledger.unlinked_ids(10) == unlinked and len(unlinked) == 1
            store.set_story(unlinked[0], "s-1")
            assert ledger.unlinked_ids(10) == store.unlinked_ids(10) == []
            ledger.save_source_state(STATES[0])
            assert store.get_source_state("plain") == ledger.get_source_state("plain")
            assert store.count_source_states() == ledger.count_source_states()
        finally:
            ledger.close()


def _queue_for_refresh(store: Store, at: datetime) -> None:
    from aggregator.models import Provenance, Provider, Record

    record = Record(
        title="Queued",
        web_url="https://e.example/a",
        provider=Provider(name="E", domain="e.example"),
        provenance=Provenance(source_name="opml feed", fetched_at=at),
    )
    store.upsert_records([record])
    key = store.find_by_urls(["https://e.example/a"])["https://e.example/a"]
    store.apply_links([], enqueue={key: at})


def test_the_ledger_opens_only_an_existing_store_at_the_head_revision(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    assert SqliteLedger.open(_url(missing)) is None
    assert not missing.exists()  # never created: the full store makes new files
    old = tmp_path / "old.db"
    _new_store_file(old)
    with sqlite3.connect(old) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0005'")
    assert SqliteLedger.open(_url(old)) is None
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    assert SqliteLedger.open(_url(empty)) is None
    for url in ("sqlite://", "sqlite:///:memory:", "postgresql+psycopg://h/db"):
        assert SqliteLedger.open(url) is None
    assert sqlite_path(f"{_url(old)}?timeout=3") is None
    assert sqlite_path("sqlite:///data/a.db") == Path("data/a.db")
    assert sqlite_path("sqlite:////abs/a.db") == Path("/abs/a.db")


def test_a_locked_database_is_a_storage_error_naming_the_call(tmp_path: Path) -> None:
    url = _new_store_file(tmp_path / "a.db")
    ledger = SqliteLedger.open(url, busy_timeout_seconds=0.05)
    assert ledger is not None
    holder = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageError, match=r"^save_source_state failed: database is locked"):
            ledger.save_source_state(STATES[0])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    ledger.save_source_state(STATES[0])  # the failed transaction left nothing open
    assert ledger.get_source_state("plain") == STATES[0]
    ledger.close()


def test_lazy_store_keeps_sqlalchemy_out_until_a_record_is_needed(tmp_path: Path) -> None:
    url = _new_store_file(tmp_path / "a.db")
    script = textwrap.dedent(
        f"""
        import sys
        from aggregator.store.lazy import LazyStore
        from aggregator.store.values import SourceState
        with LazyStore({url!r}) as store:
            held = store.claim_sources(["s"], "me", 60)
            store.save_source_state(SourceState(name="s", url="u"), release_owner="me")
            store.renew_claims(["s"], "me", 60)
            store.release_sources(["s"], "me")
            counts = store.count_source_states()
            store.queued_for_refresh(), store.imported_sources(), store.get_source_state("s")
            print("sqlalchemy" in sys.modules, held["s"][0], counts)
            print(store.count_records(), "sqlalchemy" in sys.modules)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines() == ["False True {'ok': 1}", "0 True"]


def test_lazy_store_opens_the_full_store_at_once_for_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "new.db"
    with LazyStore(_url(path)) as store:
        assert path.exists()  # created with its schema, as Store does
        store.save_source_state(STATES[0])
        assert store.get_source_state("plain") == STATES[0]
        assert store.count_records() == 0
    with pytest.raises(StorageError):
        LazyStore("nosuchdialect://x")


def test_every_sqlite_connection_gets_the_same_pragmas(tmp_path: Path) -> None:
    url = _new_store_file(tmp_path / "a.db")
    queries = ("journal_mode", "synchronous", "foreign_keys", "wal_autocheckpoint")
    expected = ["wal", 1, 1, 20000]  # synchronous NORMAL is 1
    with Store(url) as store, store._engine.connect() as connection:
        assert [connection.exec_driver_sql(f"PRAGMA {q}").scalar() for q in queries] == expected
    ledger = SqliteLedger.open(url)
    assert ledger is not None
    try:
        raw = ledger._connection
        assert [raw.execute(f"PRAGMA {q}").fetchone()[0] for q in queries] == expected
    finally:
        ledger.close()


def test_lazy_store_attributes_never_recurse_before_init(tmp_path: Path) -> None:
    bare = LazyStore.__new__(LazyStore)  # as copy or unpickling would see it
    with pytest.raises(AttributeError):
        _ = bare._ledger
    url = _new_store_file(tmp_path / "a.db")
    with LazyStore(url) as store:
        assert store._ledger is not None and store._full is None
        assert store.count_records() == 0  # delegated: the full store opens
        assert store._full is not None
