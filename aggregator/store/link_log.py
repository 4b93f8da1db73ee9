"""Which story writes a long-lived story index has seen: `link_counter` and `records.link_seq`.

    seq = next_sequence(session)          every linking batch takes the next number ...
    apply_updates(..., link_seq=seq)      ... and stamps the records whose story it changed,
                                          in one transaction (`Store.apply_links`)
    ids = linked_since(session, seen)     a process that saw up to `seen` re-reads only these

Linking runs under `Store.linking_lock`, so on PostgreSQL the numbers follow commit order.
A number taken by a batch that then fails is a harmless gap.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, or_, select, update
from sqlmodel import Session, col

from aggregator.store.tables import LinkCounterRow, RecordRow

COUNTER_ID = 1


def current_sequence(session: Session) -> int:
    """The number of the last linking batch (0 before the first)."""
    counter = LinkCounterRow.__table__  # type: ignore[attr-defined]
    value = (
        session.connection()
        .execute(select(counter.c.seq).where(counter.c.id == COUNTER_ID))
        .scalar()
    )
    return int(value or 0)


def next_sequence(session: Session) -> int:
    """Take the next linking batch number."""
    connection = session.connection()
    counter = LinkCounterRow.__table__  # type: ignore[attr-defined]
    statement = (
        update(counter)
        .where(counter.c.id == COUNTER_ID)
        .values(seq=counter.c.seq + 1)
        .returning(counter.c.seq)
    )
    value = connection.execute(statement).scalar()
    if value is None:  # a schema created without the migration's first row
        _create_counter(connection)
        return 1
    return int(value)


def _create_counter(connection: Connection) -> None:
    counter = LinkCounterRow.__table__  # type: ignore[attr-defined]
    connection.execute(insert(counter).values(id=COUNTER_ID, seq=1))


def linked_since(session: Session, seen: int, *, dated_since: datetime) -> list[int]:
    """Ids of records whose story was written after batch `seen`, dated (published, else
    first stored) at or after `dated_since`, oldest batch first."""
    published = col(RecordRow.published_at)
    dated = or_(
        published >= dated_since,
        published.is_(None) & (col(RecordRow.created_at) >= dated_since),
    )
    statement = (
        select(col(RecordRow.id))
        .where(col(RecordRow.link_seq) > seen, dated)
        .order_by(col(RecordRow.link_seq), col(RecordRow.id))
    )
    return [row_id for row_id in session.connection().execute(statement).scalars() if row_id]
