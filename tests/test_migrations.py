"""Alembic migrations on SQLite: the head revision matches the SQLModel metadata (no drift).

When this fails after a change to `aggregator/store/tables.py`, add a revision:
``alembic -x url=sqlite:///tmp.db revision --autogenerate -m "what changed"`` (see
docs/scaling.md), or, before the first release, regenerate 0001.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlmodel import SQLModel

from aggregator.store import Store, migrate
from aggregator.store.migrate import (
    alembic_config,
    head_revision,
    include_name,
    schema_status,
    upgrade,
)


def schema_drift(url: str) -> list[Any]:
    """Upgrade the database at `url` to head, then diff it against the metadata."""
    engine = create_engine(url)
    try:
        upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"include_name": include_name, "compare_type": True}
            )
            return list(compare_metadata(context, SQLModel.metadata))
    finally:
        engine.dispose()


def test_head_revision_matches_the_metadata(tmp_path: Path) -> None:
    assert schema_drift(f"sqlite:///{tmp_path / 'drift.db'}") == []


def test_a_new_sqlite_database_is_upgraded_on_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    with Store(url) as store:
        status = schema_status(store._engine)
    assert status.current == head_revision()


def test_a_database_made_before_migrations_is_stamped_then_upgraded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'legacy.db'}"
    engine = create_engine(url)
    SQLModel.metadata.create_all(engine)
    status = schema_status(engine)
    assert status.legacy and status.behind
    engine.dispose()
    with Store(url) as store:
        assert store.count_records() == 0
        status = schema_status(store._engine)
    assert status.current == head_revision()


def test_the_procrastinate_revision_leaves_sqlite_alone(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'q.db'}")
    upgrade(engine)
    names = set(inspect(engine).get_table_names())
    engine.dispose()
    assert not {name for name in names if name.startswith("procrastinate")}
    assert "records" in names


_ROW_0004 = (
    "INSERT INTO records (source_name, guid, web_url, amp_web_url, cdn_amp_web_url, category,"
    " title, excerpt, type, quality, heat, is_published, provider_name, provider_domain,"
    " title_key, page_pending, page_attempts, text_hash, secured, feed_url, entry_hash, text,"
    " quality_reasons, content_hash, created_at, updated_at) VALUES ('src', 'g1',"
    " 'https://news.example/1', '', '', 'news', 'Old', '', 'article', 0, -1, 0, 'News',"
    " 'news.example', 'old', 0, 0, '', '', '', '', '', '[]', 'h', '2020-01-01 00:00:00',"
    " '2020-01-01 00:00:00')"
)


def test_records_stored_before_0005_get_no_feed_categories(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.connect() as connection:
        command.upgrade(alembic_config(connection), "0004")
        connection.execute(text(_ROW_0004))
        connection.commit()
    engine.dispose()
    with Store(url) as store:
        assert schema_status(store._engine).current == head_revision() == "0006"
        stored = store.get_record("https://news.example/1")
    assert stored is not None
    assert stored.record.provenance.categories == ()


def test_the_fast_schema_check_knows_alembics_head() -> None:
    assert migrate.head_revision() == migrate.HEAD_REVISION


def test_a_missing_stamp_still_takes_the_alembic_path(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'unstamped.db'}"
    Store(url).close()
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM alembic_version"))
        migrate.ensure_schema(engine)  # tables but no stamp: compared, then stamped
        with engine.connect() as connection:
            stamped = connection.execute(text("SELECT version_num FROM alembic_version"))
            assert stamped.scalar_one() == migrate.HEAD_REVISION
    finally:
        engine.dispose()


def _schema_facts(url: str) -> dict[str, Any]:
    """Tables, their columns and indexes, the stamp and the link counter of a database."""
    engine = create_engine(url)
    try:
        inspector = inspect(engine)
        tables = sorted(inspector.get_table_names())
        facts: dict[str, Any] = {"tables": tables}
        for table in tables:
            columns = inspector.get_columns(table)
            facts[f"{table}.columns"] = sorted(  # revisions add columns at the end
                (c["name"], str(c["type"]), c["nullable"], c.get("default")) for c in columns
            )
            facts[f"{table}.pk"] = inspector.get_pk_constraint(table)["constrained_columns"]
            facts[f"{table}.indexes"] = sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
            )
            facts[f"{table}.fks"] = sorted(
                (tuple(f["constrained_columns"]), f["referred_table"])
                for f in inspector.get_foreign_keys(table)
            )
        with engine.connect() as connection:
            facts["stamp"] = connection.execute(text("SELECT * FROM alembic_version")).all()
            facts["counter"] = connection.execute(text("SELECT * FROM link_counter")).all()
        return facts
    finally:
        engine.dispose()


def test_a_new_sqlite_database_is_built_as_the_migrations_build_it(tmp_path: Path) -> None:
    migrated = f"sqlite:///{tmp_path / 'migrated.db'}"
    engine = create_engine(migrated)
    upgrade(engine)  # Alembic, revision by revision
    engine.dispose()
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    Store(fresh).close()  # the direct path
    facts = _schema_facts(fresh)
    assert facts["stamp"] == [(head_revision(),)] and facts["counter"] == [(1, 0)]
    assert facts == _schema_facts(migrated)
    assert schema_status(create_engine(fresh)).current == head_revision()


def test_a_new_sqlite_database_is_opened_without_importing_alembic(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = (
        "import sys; from aggregator.store import Store; "
        f"Store('sqlite:///{tmp_path / 'new.db'}').close(); "
        "Store('sqlite:///' + sys.argv[1]).close(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "again.db")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"


def test_an_sqlite_database_with_any_table_is_not_created_over(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE notes (body TEXT)"))
    try:
        assert not migrate.create_fresh_sqlite(engine)
        assert inspect(engine).get_table_names() == ["notes"]
    finally:
        engine.dispose()
