"""Source claims: short leases that keep two processes from crawling one source at once.

    claim(name, owner, until)   atomic: INSERT … ON CONFLICT DO UPDATE … WHERE the old
                                lease expired; the caller holds the claim iff the row
                                then names it as owner
    renew(name, owner, until)   push the expiry of a claim we hold
    release(name, owner)        delete our claim (someone else's is left alone)

A lease lives in the database, so it works across processes and hosts, and a crashed
holder's claim simply expires. Owners are unique per process (`aggregator.locks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, or_
from sqlalchemy import update as core_update
from sqlmodel import Session, col, delete

from aggregator.store.chunks import chunked
from aggregator.store.native import dialect_insert
from aggregator.store.source_rows import utc
from aggregator.store.tables import SourceClaimRow


@dataclass(frozen=True, slots=True)
class SourceClaim:
    """Who holds a source, since when, and until when."""

    source_name: str
    owner: str
    claimed_at: datetime
    claimed_until: datetime


def claim(connection: Connection, name: str, owner: str, now: datetime, until: datetime) -> bool:
    """Take the claim on `name` unless another owner holds an unexpired one."""
    values = {"source_name": name, "owner": owner, "claimed_at": now, "claimed_until": until}
    # a row comes back iff it was inserted or taken over: one statement, no read-back
    return connection.execute(_claim_statement(connection), values).first() is not None


_CLAIMS: dict[str, Any] = {}


def _claim_statement(connection: Connection) -> Any:
    """INSERT … ON CONFLICT DO UPDATE … WHERE the lease expired (or is ours) RETURNING, built
    once per dialect with every value a parameter (the new row's claimed_at is "now")."""
    dialect = connection.dialect.name
    if dialect not in _CLAIMS:
        table = SourceClaimRow.__table__  # type: ignore[attr-defined]
        insert = dialect_insert(connection, table)
        new = insert.excluded
        _CLAIMS[dialect] = insert.on_conflict_do_update(
            index_elements=["source_name"],
            set_={
                "owner": new.owner,
                "claimed_at": new.claimed_at,
                "claimed_until": new.claimed_until,
            },
            where=or_(table.c.claimed_until < new.claimed_at, table.c.owner == new.owner),
        ).returning(table.c.owner)
    return _CLAIMS[dialect]


def renew_many(
    connection: Connection, names: Sequence[str], owner: str, until: datetime
) -> set[str]:
    """Extend our claims on `names`; the names we still hold."""
    table = SourceClaimRow.__table__  # type: ignore[attr-defined]
    held: set[str] = set()
    for part in chunked(names):
        statement = (
            core_update(table)
            .where(table.c.source_name.in_(part), table.c.owner == owner)
            .values(claimed_until=until)
            .returning(table.c.source_name)
        )
        held.update(connection.execute(statement).scalars())
    return held


def release_many(connection: Connection, names: Sequence[str], owner: str) -> None:
    """Drop our claims on `names` (one executemany)."""
    connection.execute(_RELEASE, [{"name": name, "owner": owner} for name in names])


def release(connection: Connection, name: str, owner: str) -> None:
    """Drop our claim on `name`, if we still hold it."""
    connection.execute(_RELEASE, {"name": name, "owner": owner})


_RELEASE = delete(SourceClaimRow).where(
    col(SourceClaimRow.source_name) == bindparam("name"),
    col(SourceClaimRow.owner) == bindparam("owner"),
)


def get(session: Session, name: str) -> SourceClaim | None:
    """The claim row of `name` (possibly expired), or None."""
    row = session.get(SourceClaimRow, name)
    if row is None:
        return None
    claimed_at, claimed_until = utc(row.claimed_at), utc(row.claimed_until)
    assert claimed_at is not None and claimed_until is not None
    return SourceClaim(row.source_name, row.owner, claimed_at, claimed_until)
