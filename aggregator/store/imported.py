"""Sources imported from OPML, and the read queries behind the `sources` health table.

    imported_sources   one row per imported feed: name (unique), url, category, type, pages

Imported sources live beside the config's; `aggregator.sources.effective_sources` merges the
two and the config wins for every name it defines. The functions here take an open session;
`Store` wraps each in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import text
from sqlmodel import Field, Session, SQLModel, col, func, select

from aggregator.store.convert import source_from_row
from aggregator.store.tables import RecordRow, SourceRow
from aggregator.store.values import ImportCounts as ImportCounts
from aggregator.store.values import ImportedSource as ImportedSource
from aggregator.store.values import SourceState


class ImportedSourceRow(SQLModel, table=True):
    """A feed imported from an OPML file."""

    __tablename__ = "imported_sources"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    url: str
    category: str = "news"
    type: str = "article"
    pages: bool = True
    imported_at: datetime


def _fields(source: ImportedSource) -> tuple[str, str, str, bool]:
    return (source.url, source.category, source.type, source.pages)


def save_imported(
    session: Session, sources: Iterable[ImportedSource], now: datetime
) -> ImportCounts:
    """Insert new names, update changed ones; the last of repeated names wins."""
    wanted = {source.name: source for source in sources}
    existing = {
        row.name: row
        for row in session.exec(
            select(ImportedSourceRow).where(col(ImportedSourceRow.name).in_(list(wanted)))
        )
    }
    added = updated = 0
    for name, source in wanted.items():
        row = existing.get(name)
        if row is None:
            url, category, kind, pages = _fields(source)
            session.add(
                ImportedSourceRow(
                    name=name, url=url, category=category, type=kind, pages=pages, imported_at=now
                )
            )
            added += 1
        elif (row.url, row.category, row.type, row.pages) != _fields(source):
            row.url, row.category, row.type, row.pages = _fields(source)
            row.imported_at = now
            updated += 1
    return ImportCounts(added, updated, len(wanted) - added - updated)


def load_imported(session: Session) -> list[ImportedSource]:
    """Every imported source, in import order."""
    rows = session.exec(select(ImportedSourceRow).order_by(col(ImportedSourceRow.id)))
    return [ImportedSource(r.name, r.url, r.category, r.type, r.pages) for r in rows]


def delete_imported(session: Session, names: Iterable[str]) -> int:
    """Forget the imported sources called `names`; return how many were removed."""
    rows = session.exec(
        select(ImportedSourceRow).where(col(ImportedSourceRow.name).in_(list(names)))
    ).all()
    for row in rows:
        session.delete(row)
    return len(rows)


def load_source_states(session: Session) -> list[SourceState]:
    """The saved state of every source, by name."""
    rows = session.exec(select(SourceRow).order_by(col(SourceRow.name)))
    return [source_from_row(row) for row in rows]


def count_records_since(session: Session, since: datetime) -> dict[str, int]:
    """source name → records published (else first stored) at or after `since`."""
    when = func.coalesce(col(RecordRow.published_at), col(RecordRow.created_at))
    statement = (
        select(RecordRow.source_name, func.count())
        .where(when >= since)
        .group_by(col(RecordRow.source_name))
    )
    return {str(name): int(count) for name, count in session.exec(statement)}


def ping(session: Session) -> None:
    """Run a trivial query (raises SQLAlchemyError when the database does not answer)."""
    session.execute(text("SELECT 1")).scalar_one()
