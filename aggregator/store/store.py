"""`Store`: the persistence API the pipeline and the tracking jobs use.

Every public method runs in one transaction and raises `StorageError` on any database
failure; nothing SQLAlchemy-shaped leaves this package. Values in and out are the frozen
models (`Record`) plus the store's own `StoredRecord` / `SourceState` / `UpsertCounts`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import TracebackType

from sqlalchemy import Connection, bindparam, text
from sqlalchemy import select as core_select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, func, or_, select

from aggregator.errors import StorageError
from aggregator.models import QualityReason, Record
from aggregator.store import claims, export_read, imported, link_log, refresh_queue, retention
from aggregator.store.bulk import in_param, set_secured_by_url
from aggregator.store.chunks import chunked
from aggregator.store.claims import SourceClaim
from aggregator.store.convert import source_from_row
from aggregator.store.engine import core_transaction, create_store_engine, transaction, writer
from aggregator.store.migrate import ensure_schema
from aggregator.store.native import dialect_insert, upsert_by_name
from aggregator.store.queries import RecordFilter, iter_stored, load_stored, rows_by_id
from aggregator.store.retention import ChangeMarker
from aggregator.store.scoring import scoring_records
from aggregator.store.source_rows import source_values
from aggregator.store.story_queries import StorySummary, story_summaries
from aggregator.store.tables import RecordRow, SourceRow
from aggregator.store.tracking import replace_related, replace_topics
from aggregator.store.tracking_batch import (
    QualityUpdate,
    TrackingUpdate,
    apply_to_row,
    apply_updates,
)
from aggregator.store.upsert import upsert_batch
from aggregator.store.values import (
    ImportCounts,
    ImportedSource,
    SourceState,
    StoredRecord,
    UpsertCounts,
)

_LINKING_LOCK = 0x6C696E6B  # pg_advisory_lock key of story linking: "link"


def _now() -> datetime:
    return datetime.now(UTC)


def _apply_tracking(
    session: Session,
    updates: Sequence[TrackingUpdate],
    link_seq: int | None,
    enqueue: Mapping[int, datetime],
    dequeue: list[int],
) -> int:
    changed = apply_updates(session, updates, _now(), link_seq=link_seq) if updates else 0
    refresh_queue.dequeue(session.connection(), dequeue)
    refresh_queue.enqueue(session.connection(), enqueue)
    return changed


class Store:
    """Records, their images/topics/related entries, and source state, in one database."""

    def __init__(self, url: str, *, busy_timeout_seconds: float = 30.0) -> None:
        """Open the database at `url`, e.g. ``sqlite:///data/a.db`` or
        ``postgresql+psycopg://host/db``; see `migrate.ensure_schema` for its schema."""
        self._engine = create_store_engine(url, busy_timeout_seconds)
        self._writer = writer(self._engine)
        try:
            ensure_schema(self._engine)
        except StorageError:
            self._engine.dispose()
            raise

    def close(self) -> None:
        """Release every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def upsert_records(self, records: Sequence[Record]) -> UpsertCounts:
        """Insert or update `records` in ONE transaction; see `aggregator.store.upsert`."""
        outcomes: Counter[str] = Counter()
        with transaction(self._writer, "upsert_records") as session:
            outcomes.update(upsert_batch(session, records, _now()))
        return UpsertCounts(outcomes["new"], outcomes["updated"], outcomes["unchanged"])

    def get_record(self, key: int | str) -> StoredRecord | None:
        """The record with id `key`, or whose web_url (else amp_web_url) is `key`."""
        with transaction(self._engine, "get_record") as session:
            row = self._find_row(session, key)
            return load_stored(session, [row])[0] if row else None

    @staticmethod
    def _find_row(session: Session, key: int | str) -> RecordRow | None:
        if isinstance(key, int):
            return session.get(RecordRow, key)
        by_url = select(RecordRow).where(col(RecordRow.web_url) == key)
        by_amp = select(RecordRow).where(col(RecordRow.amp_web_url) == key)
        return (
            session.exec(by_url).first()
            or session.exec(by_amp.order_by(col(RecordRow.id)).limit(1)).first()
        )

    def iter_records(
        self,
        *,
        topic: str | None = None,
        since: datetime | None = None,
        published_only: bool = False,
        updated_after: datetime | None = None,
    ) -> Iterator[StoredRecord]:
        """Matching records, newest published first (undated last), streamed in pages.

        `since` keeps records published at or after it; `updated_after` those whose row
        changed strictly after it. Safe to write to the store while iterating.
        """
        flt = RecordFilter(topic, since, published_only, updated_after)
        return iter_stored(self._engine, flt)

    def iter_export_records(self) -> Iterator[Record]:
        """The published records in `iter_records` order, as the export tree needs them:
        `text`, `quality_reasons` and the provenance's feed categories are left empty.

        Fewer and lighter queries than `iter_records`; see `export_read`."""
        return export_read.iter_published(self._engine)

    def export_reader(self) -> export_read.ExportReader:
        """A reader of the published records by pages of ids, for exporters that share
        the pages out (see `export_read`)."""
        return export_read.ExportReader(self._engine)

    def known_guids(self, source_name: str, guids: Iterable[str]) -> set[str]:
        """The subset of `guids` already stored for `source_name`."""
        return set(self.entry_hashes(source_name, guids))

    def entry_hashes(self, source_name: str, guids: Iterable[str]) -> dict[str, str]:
        """guid → stored feed-entry fingerprint, for the `guids` stored for `source_name`."""
        found: dict[str, str] = {}
        with core_transaction(self._engine, "entry_hashes") as connection:
            for part in chunked({g for g in guids if g}):
                params = {"source": source_name, "guids": part}
                found.update(
                    (guid, hashed) for guid, hashed in connection.execute(_ENTRY_HASHES, params)
                )
        return found

    def find_by_urls(self, urls: Iterable[str]) -> dict[str, int]:
        """Map each of `urls` that a record has as web_url (preferred) or amp_web_url to its id."""
        wanted = {u for u in urls if u}
        by_web: dict[str, int] = {}
        by_amp: dict[str, int] = {}
        with core_transaction(self._engine, "find_by_urls") as connection:
            for part in chunked(wanted):
                rows = connection.execute(_IDS_BY_URL, {"urls": part})
                for row_id, web_url, amp_url in rows:
                    by_web[web_url] = row_id
                    by_amp.setdefault(amp_url, row_id)
        return {
            u: by_web[u] if u in by_web else by_amp[u] for u in wanted if u in by_web or u in by_amp
        }

    def story_summaries(self, story_ids: Iterable[str]) -> dict[str, StorySummary]:
        """Size, providers and first-seen time of each given story."""
        with transaction(self._engine, "story_summaries") as session:
            return story_summaries(session, story_ids)

    def count_records(self) -> int:
        """How many records are stored."""
        with transaction(self._engine, "count_records") as session:
            return session.exec(select(func.count()).select_from(RecordRow)).one()

    def get_source_state(self, name: str) -> SourceState | None:
        """The saved state of source `name`, or None when it was never saved."""
        with core_transaction(self._engine, "get_source_state") as connection:
            return _source_state(connection, name)

    def save_source_state(self, state: SourceState, *, release_owner: str | None = None) -> None:
        """Insert or replace the row of `state.name`; with `release_owner`, end that owner's
        claim on the source in the same transaction (the last step of crawling it)."""
        values = source_values(state)
        with core_transaction(self._writer, "save_source_state") as connection:
            upsert_by_name(connection, SourceRow, values)
            if release_owner is not None:
                claims.release(connection, state.name, release_owner)

    def list_source_states(self) -> list[SourceState]:
        """The saved state of every source, by name."""
        with transaction(self._engine, "list_source_states") as session:
            return imported.load_source_states(session)

    def count_source_states(self) -> dict[str, int]:
        """Source state ("ok", "erroring", …) → how many saved sources are in it."""
        table = SourceRow.__table__  # type: ignore[attr-defined]
        statement = core_select(table.c.state, func.count()).group_by(table.c.state)
        with core_transaction(self._engine, "count_source_states") as connection:
            return {str(state): int(count) for state, count in connection.execute(statement)}

    def count_records_by_source(self, since: datetime) -> dict[str, int]:
        """source name → records published (else first stored) at or after `since`."""
        with transaction(self._engine, "count_records_by_source") as session:
            return imported.count_records_since(session, since)

    def imported_sources(self) -> list[ImportedSource]:
        """The sources imported from OPML, in import order."""
        with transaction(self._engine, "imported_sources") as session:
            return imported.load_imported(session)

    def save_imported_sources(self, sources: Iterable[ImportedSource]) -> ImportCounts:
        """Insert or update imported sources by name, in one transaction."""
        with transaction(self._writer, "save_imported_sources") as session:
            return imported.save_imported(session, sources, _now())

    def delete_imported_sources(self, names: Iterable[str]) -> int:
        """Forget the imported sources called `names`; return how many were removed."""
        with transaction(self._writer, "delete_imported_sources") as session:
            return imported.delete_imported(session, names)

    def ping(self) -> None:
        """Raise StorageError unless the database answers a trivial query."""
        with transaction(self._engine, "ping") as session:
            imported.ping(session)

    def pending_pages(self, limit: int, *, max_attempts: int) -> list[StoredRecord]:
        """Records whose article page is still to fetch, fewest attempts and newest first."""
        with transaction(self._engine, "pending_pages") as session:
            statement = (
                select(RecordRow)
                .where(col(RecordRow.page_pending), col(RecordRow.page_attempts) < max_attempts)
                .order_by(col(RecordRow.page_attempts), col(RecordRow.id).desc())
                .limit(limit)
            )
            return load_stored(session, list(session.exec(statement)))

    def set_page_state(self, record_id: int, *, pending: bool, attempted: bool) -> None:
        """Clear (or keep) a record's pending page and count an attempt."""
        with transaction(self._writer, "set_page_state") as session:
            row = session.get(RecordRow, record_id)
            if row is not None:
                row.page_pending = pending
                row.page_attempts += int(attempted)

    def get_records(self, ids: Iterable[int]) -> dict[int, StoredRecord]:
        """The stored records with these ids, loaded in a few queries (missing ids left out)."""
        with transaction(self._engine, "get_records") as session:
            rows = list(rows_by_id(session, ids).values())
            return {stored.id: stored for stored in load_stored(session, rows)}

    def scoring_records(self, ids: Iterable[int]) -> dict[int, Record]:
        """id → the stored record as quality scoring sees it: every field but `text`,
        `topics` and `related` (left empty), in two queries per 500 ids."""
        with transaction(self._engine, "scoring_records") as session:
            return scoring_records(session.connection(), ids)

    def apply_tracking(
        self,
        updates: Sequence[TrackingUpdate],
        *,
        enqueue: Mapping[int, datetime] | None = None,
        dequeue: Iterable[int] = (),
    ) -> int:
        """Apply story, heat, related and quality updates in ONE transaction; rows changed.

        In the same transaction, the records of `enqueue` (id → time it counts at) join the
        refresh queue and those of `dequeue` leave it (see `refresh_queue`). Linking batches
        use `apply_links`, which also stamps the story changes (see `link_log`)."""
        leaving = list(dequeue)
        if not (updates or enqueue or leaving):
            return 0
        with transaction(self._writer, "apply_tracking") as session:
            return _apply_tracking(session, updates, None, enqueue or {}, leaving)

    def apply_links(
        self,
        updates: Sequence[TrackingUpdate],
        *,
        enqueue: Mapping[int, datetime] | None = None,
        dequeue: Iterable[int] = (),
    ) -> int:
        """`apply_tracking` with every record whose story id changes stamped with the next
        link sequence, taken in the same transaction (hold `linking_lock` around it, so
        numbers follow the order of the writes); returns that sequence number."""
        with transaction(self._writer, "apply_links") as session:
            seq = link_log.next_sequence(session)
            _apply_tracking(session, updates, seq, enqueue or {}, list(dequeue))
            return seq

    def queued_for_refresh(self) -> dict[int, datetime]:
        """record id → the time it counts at, of every record waiting for a refresh."""
        with transaction(self._engine, "queued_for_refresh") as session:
            return refresh_queue.queued(session.connection())

    def unlinked_ids(self, limit: int) -> list[int]:
        """Ids of stored records that have no story, lowest first, at most `limit`: a crawl
        stopped between storing a batch and linking it (Ctrl-C, a kill, a crash) left them."""
        statement = (
            select(col(RecordRow.id))
            .where(col(RecordRow.story_id).is_(None))
            .order_by(col(RecordRow.id))
            .limit(limit)
        )
        with transaction(self._engine, "unlinked_ids") as session:
            return [row_id for row_id in session.exec(statement) if row_id is not None]

    def link_sequence(self) -> int:
        """The number of the last story-linking batch written (0 before the first)."""
        with transaction(self._engine, "link_sequence") as session:
            return link_log.current_sequence(session)

    def linked_since(self, seen: int, *, dated_since: datetime) -> list[StoredRecord]:
        """Records whose story was written by a linking batch after `seen`, dated at or
        after `dated_since`, in batch order."""
        with transaction(self._engine, "linked_since") as session:
            ids = link_log.linked_since(session, seen, dated_since=dated_since)
        by_id = self.get_records(ids)
        return [by_id[record_id] for record_id in ids if record_id in by_id]

    def set_related(self, record_id: int, related_ids: Sequence[int]) -> None:
        """Replace the related entries of a record by links to `related_ids`, best first.

        The record itself and repeated ids are dropped. Linked entries are rendered from
        the linked record's current row each time the record is read.
        """
        self._update(record_id, "set_related", lambda s, r: replace_related(s, r, related_ids))

    def set_topics(self, record_id: int, topics: Sequence[str]) -> None:
        """Replace the topics of a record (best first)."""
        self._update(record_id, "set_topics", lambda s, r: replace_topics(s, r, topics))

    def set_quality(
        self,
        record_id: int,
        quality: int,
        reasons: Sequence[QualityReason],
        is_published: bool,
    ) -> None:
        """Set the quality score, its reasons and the published flag of a record."""
        score = QualityUpdate(quality, tuple(reasons), is_published)
        update = TrackingUpdate(record_id, quality=score)
        self._update(record_id, "set_quality", lambda _s, row: apply_to_row(row, update))

    def set_secured_many(self, seals: Sequence[tuple[str, str]]) -> None:
        """Store many (web_url, seal) pairs in one transaction (does not bump updated_at)."""
        if not seals:
            return
        with transaction(self._writer, "set_secured_many") as session:
            set_secured_by_url(session.connection(), seals)

    def set_secured(self, web_url: str, secured: str) -> None:
        """Store the seal of the record at `web_url` (does not bump updated_at)."""
        with transaction(self._writer, "set_secured") as session:
            row = session.exec(select(RecordRow).where(col(RecordRow.web_url) == web_url)).first()
            if row is None:
                raise StorageError(f"set_secured: no record with web_url {web_url!r}")
            row.secured = secured

    def set_story(self, record_id: int, story_id: str | None) -> None:
        """Attach a record to a story cluster (None detaches it)."""
        self._set_field(record_id, "story_id", story_id)

    def set_heat(self, record_id: int, heat: int) -> None:
        """Set the heat of a record (-1 when unknown)."""
        update = TrackingUpdate(record_id, heat=heat)
        self._update(record_id, "set_heat", lambda _s, row: apply_to_row(row, update))

    def _set_field(self, record_id: int, name: str, value: object) -> None:
        def mutate(_session: Session, row: RecordRow) -> bool:
            if getattr(row, name) == value:
                return False
            setattr(row, name, value)
            return True

        self._update(record_id, f"set_{name}", mutate)

    def _update(
        self, record_id: int, action: str, mutate: Callable[[Session, RecordRow], bool]
    ) -> None:
        """Apply `mutate` to a record row in one transaction; bump updated_at if it changed."""
        with transaction(self._writer, action) as session:
            row = session.get(RecordRow, record_id)
            if row is None:
                raise StorageError(f"{action}: no record with id {record_id}")
            if mutate(session, row):
                row.updated_at = _now()

    # -- scheduling, claims and retention (used by the daemon and the crawl) --

    def set_next_check(self, name: str, at: datetime | None) -> None:
        """Set when source `name` is next due (creates its row if needed)."""
        with transaction(self._writer, "set_next_check") as session:
            statement = dialect_insert(session, SourceRow).values(
                name=name, url="", next_check_at=at
            )
            session.execute(
                statement.on_conflict_do_update(index_elements=["name"], set_={"next_check_at": at})
            )

    def claim_source(self, name: str, owner: str, ttl_seconds: float) -> bool:
        """Atomically lease source `name` to `owner`; False while another owner's lease runs."""
        now = _now()
        until = now + timedelta(seconds=ttl_seconds)
        with core_transaction(self._writer, "claim_source") as connection:
            return claims.claim(connection, name, owner, now, until)

    def claim_sources(
        self, names: Sequence[str], owner: str, ttl_seconds: float
    ) -> dict[str, tuple[bool, SourceState | None]]:
        """`claim_source` for each of `names`, and the stored state of those claimed, in one
        transaction: name → (claimed, state or None)."""
        now = _now()
        until = now + timedelta(seconds=ttl_seconds)
        with core_transaction(self._writer, "claim_sources") as connection:
            held = {name for name in names if claims.claim(connection, name, owner, now, until)}
            states = _source_states(connection, sorted(held))
        return {name: (name in held, states.get(name)) for name in names}

    def renew_claims(self, names: Sequence[str], owner: str, ttl_seconds: float) -> set[str]:
        """Extend `owner`'s leases on `names` in one transaction; the names it still holds."""
        until = _now() + timedelta(seconds=ttl_seconds)
        with core_transaction(self._writer, "renew_claims") as connection:
            return claims.renew_many(connection, names, owner, until)

    def renew_claim(self, name: str, owner: str, ttl_seconds: float) -> bool:
        """Extend `owner`'s lease on `name`; False when it no longer holds it."""
        return name in self.renew_claims([name], owner, ttl_seconds)

    def release_sources(self, names: Sequence[str], owner: str) -> None:
        """`release_source` for each of `names`, in one transaction."""
        if names:
            with core_transaction(self._writer, "release_sources") as connection:
                claims.release_many(connection, names, owner)

    def release_source(self, name: str, owner: str) -> None:
        """End `owner`'s lease on `name` (a lease held by someone else is left alone)."""
        with core_transaction(self._writer, "release_source") as connection:
            claims.release(connection, name, owner)

    def get_claim(self, name: str) -> SourceClaim | None:
        """The lease row of source `name` (possibly expired), or None."""
        with transaction(self._engine, "get_claim") as session:
            return claims.get(session, name)

    @contextmanager
    def linking_lock(self) -> Iterator[None]:
        """Hold the story-linking lock: a PostgreSQL advisory lock, so concurrent workers
        link one at a time and never open two stories for one event. SQLite: a no-op."""
        if self._engine.dialect.name != "postgresql":
            yield
            return
        try:
            connection = self._engine.connect()
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LINKING_LOCK})
        except SQLAlchemyError as exc:
            raise StorageError(f"linking_lock failed: {exc}") from exc
        try:
            yield
        finally:
            connection.close()  # rolls the transaction back, which releases the lock

    def change_marker(self) -> ChangeMarker:
        """(latest record updated_at, record count): changes whenever records do."""
        with transaction(self._engine, "change_marker") as session:
            return retention.change_marker(session)

    def prune_older_than(self, cutoff: datetime) -> tuple[str, ...]:
        """Delete records dated before `cutoff` (published, else first stored) with their
        images, topics and related entries, and links to them; return their web URLs."""
        with transaction(self._writer, "prune_older_than") as session:
            return retention.prune(session, cutoff)

    def prune_by_topics(self, cutoffs: Mapping[str, datetime]) -> tuple[str, ...]:
        """Per-topic retention: delete records whose topics ALL have a cutoff in `cutoffs` and
        that are dated before the earliest of them (see `retention.prune_by_topics`)."""
        with transaction(self._writer, "prune_by_topics") as session:
            return retention.prune_by_topics(session, cutoffs)


def _source_states(connection: Connection, names: Sequence[str]) -> dict[str, SourceState]:
    found: dict[str, SourceState] = {}
    for part in chunked(names):
        for row in connection.execute(_SOURCES_BY_NAME, {"names": part}):
            found[row.name] = source_from_row(row)
    return found


def _source_state(connection: Connection, name: str) -> SourceState | None:
    row = connection.execute(_SOURCE_BY_NAME, {"name": name}).first()
    return source_from_row(row) if row else None


_SOURCE_TABLE = SourceRow.__table__  # type: ignore[attr-defined]
_RECORDS_TABLE = RecordRow.__table__  # type: ignore[attr-defined]
# Per-batch look-ups, built once: the values are expanding parameters, so SQLAlchemy
# neither turns each one into an expression nor builds a new statement for each call.
_ENTRY_HASHES = core_select(_RECORDS_TABLE.c.guid, _RECORDS_TABLE.c.entry_hash).where(
    _RECORDS_TABLE.c.source_name == bindparam("source"),
    in_param(_RECORDS_TABLE.c.guid, "guids"),
)
_IDS_BY_URL = (
    core_select(_RECORDS_TABLE.c.id, _RECORDS_TABLE.c.web_url, _RECORDS_TABLE.c.amp_web_url)
    .where(
        or_(
            in_param(_RECORDS_TABLE.c.web_url, "urls"),
            in_param(_RECORDS_TABLE.c.amp_web_url, "urls"),
        )
    )
    .order_by(_RECORDS_TABLE.c.id)
)
_SOURCE_BY_NAME = core_select(_SOURCE_TABLE).where(_SOURCE_TABLE.c.name == bindparam("name"))
_SOURCES_BY_NAME = core_select(_SOURCE_TABLE).where(in_param(_SOURCE_TABLE.c.name, "names"))
