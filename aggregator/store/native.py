"""Each backend's own ``INSERT … ON CONFLICT``, so writers never read-then-write a unique key.

    dialect_insert(session, model)      the PostgreSQL or SQLite insert construct for `model`
    insert_new_rows(connection, rows)   insert many records rows in one executemany, skipping
                                        any whose unique key (web_url, or source+guid) another
                                        transaction already stored; → web_url → new id
    upsert_by_name(connection, model, values)   insert or update the row keyed by ``name``

On PostgreSQL a conflicting insert waits for the other transaction: when that commits, the
insert does nothing and the caller sees the row missing from the answer (then re-reads the
winner, which READ COMMITTED shows, and updates it instead). SQLite serialises writers
(``BEGIN IMMEDIATE``), so there it never conflicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlmodel import Session, SQLModel

from aggregator.store.convert import RowValues
from aggregator.store.tables import RecordRow

_RECORDS: Table = RecordRow.__table__  # type: ignore[attr-defined]


def dialect_insert(session: Session | Connection, model: type[SQLModel] | Table) -> Any:
    """``INSERT INTO model`` in the dialect of `session`'s bind (supports ON CONFLICT)."""
    bind = session.get_bind() if isinstance(session, Session) else session
    if bind.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql  # loaded by PostgreSQL engines only

        return postgresql.insert(model)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(model)


def insert_new_rows(connection: Connection, rows: Sequence[RowValues]) -> dict[str, int]:
    """Insert `rows` (without their ``id``) in one executemany; web_url → id of each row
    inserted. A row whose unique key is already taken is skipped and missing from the answer."""
    if not rows:
        return {}
    statement = (
        dialect_insert(connection, _RECORDS)
        .on_conflict_do_nothing()
        .returning(_RECORDS.c.id, _RECORDS.c.web_url)
    )
    params = [{key: value for key, value in row.items() if key != "id"} for row in rows]
    result = connection.execute(statement, params)
    return {web_url: int(row_id) for row_id, web_url in result}


def upsert_by_name(connection: Connection, model: type[SQLModel], values: dict[str, Any]) -> None:
    """Insert the row of ``values["name"]`` or overwrite the given columns of the stored one."""
    key = (connection.dialect.name, model, tuple(values))
    statement = _UPSERTS.get(key)
    if statement is None:
        insert = dialect_insert(connection, model.__table__)  # type: ignore[attr-defined]
        excluded = {name: insert.excluded[name] for name in values if name != "name"}
        statement = _UPSERTS[key] = insert.on_conflict_do_update(
            index_elements=["name"], set_=excluded
        )
    # core, with the values as parameters: building an ORM statement around each row's
    # values cost more than running it (a re-poll saves the state of every source)
    connection.execute(statement, values)


_UPSERTS: dict[tuple[str, type[SQLModel], tuple[str, ...]], Any] = {}
