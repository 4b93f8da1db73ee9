"""Alembic environment: the store's SQLModel metadata, run on the connection we are handed.

`aggregator.store.migrate` passes an open connection in ``config.attributes["connection"]``
(so upgrades share its advisory lock); the ``alembic`` CLI instead builds an engine from
``sqlalchemy.url`` or, when unset, from the configured storage URL.

Tables that are not ours (procrastinate's job queue, created by its own revision) are
ignored by autogenerate, so ``alembic check`` only compares the store's tables.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine
from sqlmodel import SQLModel

import aggregator.store  # noqa: F401  (registers every table on SQLModel.metadata)
from aggregator.store.migrate import include_name

target_metadata = SQLModel.metadata


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_name=include_name,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = context.config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from aggregator.settings import load_settings

    return load_settings().storage.url


def run() -> None:
    """Run the migrations online (offline SQL generation is not supported)."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    engine = create_engine(_url())
    try:
        with engine.connect() as fresh:
            _configure_and_run(fresh)
    finally:
        engine.dispose()


run()
