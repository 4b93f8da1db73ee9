"""Schema migrations (Alembic, ``migrations/`` at the repository root) for every backend.

    schema_status(engine)     → SchemaStatus(current, head, empty)
    upgrade(engine)           bring the schema to the head revision (under an advisory lock
                              on PostgreSQL, so several processes may race to do it)
    ensure_schema(engine)     what `Store` does on open: upgrade a SQLite database or an
                              empty one; refuse a PostgreSQL schema that is behind, naming
                              ``aggregator db upgrade``
    db_upgrade_command        the ``aggregator db upgrade`` command

A database created before migrations existed (tables, no ``alembic_version``) is stamped
with the initial revision, then upgraded.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import SQLModel

from aggregator.cli_options import ConfigOption
from aggregator.errors import AggregatorError, StorageError
from aggregator.store.engine import writer
from aggregator.store.values import HEAD_REVISION as HEAD_REVISION

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
INITIAL_REVISION = "0001"
_MIGRATION_LOCK = 0x61676772  # pg_advisory_lock key: "aggr"


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """Where a database's schema stands against the migrations."""

    current: str | None  # the stamped revision; None when never migrated
    head: str
    legacy: bool  # tables exist but no revision is stamped (made by create_all)

    @property
    def behind(self) -> bool:
        """True when an upgrade is needed."""
        return self.current != self.head

    @property
    def empty(self) -> bool:
        """True when the database holds none of our tables yet."""
        return self.current is None and not self.legacy


def include_name(name: str | None, type_: str, _parent: Mapping[str, str | None]) -> bool:
    """Alembic filter: compare only the tables the store's metadata declares (so
    procrastinate's tables are not reported as drift)."""
    if type_ == "table":
        return name in SQLModel.metadata.tables
    return True


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for ``migrations/``, optionally bound to an open connection."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision in ``migrations/versions``."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise StorageError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def _status(connection: Connection) -> SchemaStatus:
    from alembic.runtime.migration import MigrationContext

    current = MigrationContext.configure(connection).get_current_revision()
    legacy = current is None and inspect(connection).has_table("records")
    return SchemaStatus(current, head_revision(), legacy)


def schema_status(engine: Engine) -> SchemaStatus:
    """Read the stamped revision of the database behind `engine`."""
    try:
        with engine.connect() as connection:
            return _status(connection)
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot read the schema version: {exc}") from exc


@contextmanager
def _migration_connection(engine: Engine) -> Iterator[Connection]:
    """A connection holding the migration lock (a PostgreSQL advisory lock)."""
    with engine.connect() as connection:
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
            connection.commit()
        try:
            yield connection
        finally:
            if postgres:
                connection.rollback()
                connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK}
                )
                connection.commit()


def upgrade(engine: Engine) -> SchemaStatus:
    """Upgrade the schema to head (stamping a legacy database first); return the new status."""
    from alembic import command

    try:
        with _migration_connection(engine) as connection:
            status = _status(connection)
            if status.legacy:
                # create_all made it: it matches head if nothing differs, else the first revision
                matches_head = not _differences(connection)
                command.stamp(
                    alembic_config(connection), "head" if matches_head else INITIAL_REVISION
                )
                connection.commit()
                status = _status(connection)
            if status.behind:
                command.upgrade(alembic_config(connection), "head")
                connection.commit()
            return _status(connection)
    except SQLAlchemyError as exc:
        raise StorageError(f"schema upgrade failed: {exc}") from exc


def _differences(connection: Connection) -> list[object]:
    """How the database's tables differ from the SQLModel metadata (empty: they match)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(
        connection, opts={"include_name": include_name, "compare_type": True}
    )
    return list(compare_metadata(context, SQLModel.metadata))


def _stamped_revision(engine: Engine) -> str | None:
    """The revision in ``alembic_version`` read with plain SQL (None: none, or unreadable)."""
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except SQLAlchemyError:
        return None
    return str(rows[0][0]) if len(rows) == 1 else None


def ensure_schema(engine: Engine) -> None:
    """Upgrade when that is safe to do implicitly; refuse a PostgreSQL schema that is behind.

    A new, empty SQLite database is created at the head revision directly
    (`create_fresh_sqlite`), without importing Alembic."""
    if _stamped_revision(engine) == HEAD_REVISION:
        return
    if engine.dialect.name == "sqlite" and create_fresh_sqlite(engine):
        return
    status = schema_status(engine)
    if not status.behind:
        return
    if engine.dialect.name == "sqlite" or status.empty:
        upgrade(engine)
        return
    current = status.current or "none (created before migrations)"
    raise StorageError(
        f"the database schema is at revision {current} but this version needs {status.head}; "
        "run `aggregator db upgrade` first"
    )


def create_fresh_sqlite(engine: Engine) -> bool:
    """Create the head schema in an SQLite database that holds no table at all, in one
    write transaction; return False (and do nothing) when it holds any.

    The result is what the migrations build: the tables of the metadata (held equal to
    Alembic's head by tests/test_migrations.py), the head stamped in ``alembic_version``,
    and the link counter row that revision 0004 inserts. Importing and running Alembic
    cost a cold `fetch` about 10 MB and 60 ms more."""
    from aggregator.store.link_log import COUNTER_ID
    from aggregator.store.tables import LinkCounterRow

    try:
        with writer(engine).begin() as connection:
            if connection.exec_driver_sql(_ANY_TABLE).first() is not None:
                return False
            SQLModel.metadata.create_all(connection)
            connection.exec_driver_sql(_VERSION_TABLE)
            connection.execute(text(_STAMP), {"head": HEAD_REVISION})
            counter = LinkCounterRow.__table__  # type: ignore[attr-defined]
            connection.execute(counter.insert().values(id=COUNTER_ID, seq=0))
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot create the database schema: {exc}") from exc
    return True


_ANY_TABLE = "SELECT name FROM sqlite_master WHERE type = 'table' LIMIT 1"
_VERSION_TABLE = (  # as Alembic creates it
    "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
    "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
)
_STAMP = "INSERT INTO alembic_version (version_num) VALUES (:head)"


def db_upgrade_command(
    config: ConfigOption = None,
) -> None:
    """Apply the pending schema migrations to the configured database.

    Example: aggregator db upgrade --config config.yaml
    """
    from aggregator.settings import load_settings
    from aggregator.store.engine import create_store_engine

    try:
        settings = load_settings(config)
        engine = create_store_engine(settings.storage.url, settings.storage.busy_timeout_seconds)
        try:
            before = schema_status(engine)
            after = upgrade(engine)
        finally:
            engine.dispose()
    except AggregatorError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"schema at revision {after.current} (was {before.current or 'empty'})")
