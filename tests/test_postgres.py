"""The store on a real PostgreSQL: the SQLite store tests again, migrations, and write races.

Needs $AGGREGATOR_TEST_PG_URL (see tests/pg.py): skipped without it, failing under CI.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from alembic import command
from sqlalchemy import create_engine
from typer.testing import CliRunner

from aggregator.cli import app
from aggregator.errors import StorageError
from aggregator.store import Store
from aggregator.store.migrate import alembic_config, db_upgrade_command, schema_status
from tests import test_store
from tests.pg import pg_url
from tests.test_migrations import schema_drift
from tests.test_store import make

__all__ = ["pg_url"]

# The backend-neutral store tests, run again with `db_url` pointing at PostgreSQL.
_SHARED = [
    name
    for name in dir(test_store)
    if name.startswith("test_")
    and name not in {"test_wal_mode_is_on", "test_bad_url_is_a_storage_error"}
]
globals().update({name: getattr(test_store, name) for name in _SHARED})


@pytest.fixture
def db_url(pg_url: str) -> str:
    return pg_url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store(db_url, busy_timeout_seconds=5) as opened:
        yield opened


def test_an_empty_database_is_migrated_to_head_on_open(pg_url: str) -> None:
    with Store(pg_url) as store:
        store.ping()
        status = schema_status(store._engine)
    assert status.current == status.head and not status.behind
    assert schema_drift(pg_url) == []


def test_a_schema_behind_is_refused_until_db_upgrade(pg_url: str, tmp_path: Path) -> None:
    engine = create_engine(pg_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0001")
    engine.dispose()
    with pytest.raises(StorageError, match="aggregator db upgrade"):
        Store(pg_url)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"storage": {"url": pg_url}}))
    result = CliRunner().invoke(_db_app(), ["--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "was 0001" in result.output
    with Store(pg_url) as store:
        assert store.count_records() == 0


def _db_app() -> object:
    import typer

    db = typer.Typer()
    db.command("upgrade")(db_upgrade_command)
    return db


def test_concurrent_writers_store_each_record_exactly_once(pg_url: str) -> None:
    """Four stores upsert overlapping batches at once: native ON CONFLICT, no lost race."""
    Store(pg_url).close()  # migrate once
    batches = [[make(n) for n in range(start, start + 30)] for start in (0, 10, 20, 0)]
    errors: list[BaseException] = []

    def write(batch: list[object]) -> None:
        try:
            with Store(pg_url) as store:
                for _ in range(3):
                    store.upsert_records(batch)  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Store(pg_url) as store:
        assert store.count_records() == 50
        assert sorted(r.record.web_url for r in store.iter_records()) == sorted(
            make(n).web_url for n in range(50)
        )


def test_source_state_and_next_check_upsert_natively(pg_url: str) -> None:
    from datetime import UTC, datetime

    from aggregator.store import SourceState

    at = datetime(2026, 1, 1, tzinfo=UTC)
    with Store(pg_url) as store:
        store.set_next_check("feed", at)
        store.save_source_state(SourceState(name="feed", url="https://f.example/rss"))
        store.set_next_check("feed", at)
        state = store.get_source_state("feed")
    assert state is not None
    assert (state.url, state.next_check_at) == ("https://f.example/rss", at)
    assert replace(state, next_check_at=None).name == "feed"


def test_cli_fetch_and_export_work_on_postgres(pg_url: str, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"storage": {"url": pg_url}, "data_dir": str(tmp_path)}))
    result = CliRunner().invoke(app, ["export", "--config", str(config), "--format", "jsonl"])
    assert result.exit_code == 0, result.output


def test_a_json_feed_of_control_characters_stores_on_postgres(pg_url: str) -> None:
    """PostgreSQL refuses a NUL in text: one in a JSON Feed's item URL failed the upsert
    of the whole batch. Controls and lone surrogates never reach a stored field."""
    import json
    from datetime import UTC, datetime

    from aggregator.feeds import parse_feed
    from aggregator.records import build_record
    from aggregator.settings import SourceSettings

    hostile = "a\x00b\x01c\u202e\ud800"
    item = {"id": hostile, "url": "https://a.example/x" + hostile, "title": hostile + " story"}
    item |= {"summary": hostile, "image": "https://a.example/i.jpg" + hostile, "tags": [hostile]}
    document = {"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": [item]}
    feed_url = "https://f.example/feed.json"
    (entry,) = parse_feed(json.dumps(document).encode(), url=feed_url).entries
    source = SourceSettings(name="j", url=feed_url)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    record = build_record(entry, None, source, feed_url=feed_url, fetched_at=now, now=now)
    assert record is not None
    with Store(pg_url) as store:
        assert store.upsert_records([record]).new == 1
        stored = store.get_record(record.web_url)
    assert stored is not None
    assert stored.record.web_url == "https://a.example/xa%00b%01c%E2%80%AE%ED%A0%80"
    assert stored.record.title == "abc story"
