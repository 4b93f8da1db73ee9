"""Each backend's own ``INSERT … ON CONFLICT``, so writers never read-then-write a unique key.

    dialect_insert(session, model)   the PostgreSQL or SQLite insert construct for `model`
    insert_record_row(session, row)  insert a new records row unless another transaction
                                     already stored one of its unique keys (web_url, or
                                     source+guid); True when inserted, the row then persistent
    upsert_by_name(session, model, values)   insert or update the row keyed by ``name``

On PostgreSQL a conflicting insert waits for the other transaction: when that commits, the
insert does nothing and the caller re-reads the winner (READ COMMITTED sees it) and updates
it instead. SQLite serialises writers (``BEGIN IMMEDIATE``), so there it never conflicts.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import Session, SQLModel

from aggregator.store.tables import RecordRow


def dialect_insert(session: Session, model: type[SQLModel]) -> Any:
    """``INSERT INTO model`` in the dialect of `session`'s bind (supports ON CONFLICT)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


def insert_record_row(session: Session, row: RecordRow) -> bool:
    """Insert `row` (its id comes back) or do nothing when a unique key is already taken."""
    values = row.model_dump(exclude={"id"})
    statement = (
        dialect_insert(session, RecordRow)
        .values(**values)
        .on_conflict_do_nothing()
        .returning(RecordRow.__table__.c.id)  # type: ignore[attr-defined]
    )
    new_id = session.execute(statement).scalar_one_or_none()
    if new_id is None:
        return False
    row.id = int(new_id)
    make_transient_to_detached(row)
    session.add(row)
    return True


def upsert_by_name(session: Session, model: type[SQLModel], values: dict[str, Any]) -> None:
    """Insert the row of ``values["name"]`` or overwrite the given columns of the stored one."""
    changes = {key: value for key, value in values.items() if key != "name"}
    statement = dialect_insert(session, model).values(**values)
    statement = statement.on_conflict_do_update(index_elements=["name"], set_=changes)
    session.execute(statement)
