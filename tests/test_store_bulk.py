"""The batch write path: one transaction, few statements, same rows on SQLite and PostgreSQL.

`Store.upsert_records` plans a whole batch in memory and writes it with executemany;
`Store.apply_tracking` likewise. These tests pin what that relies on: the batch behaves as if
its records were written one by one, a failure anywhere leaves nothing, a concurrent
writer that takes a new row's key first is met by re-planning, and the statement count
does not grow with the batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text

from aggregator.errors import StorageError
from aggregator.models import Image, Provenance, QualityReason, Record
from aggregator.quality import score_quality
from aggregator.store import Store, UpsertCounts
from aggregator.store.tracking_batch import QualityUpdate, TrackingUpdate
from tests.pg import fresh_database
from tests.test_store import T0, make


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database of each backend (PostgreSQL skips without a test cluster)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bulk.db'}"
        return
    with fresh_database() as url:
        yield url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store(db_url, busy_timeout_seconds=5) as opened:
        yield opened


def _rows(store: Store) -> list[tuple[Any, ...]]:
    """Every stored record, as comparable values (ids and timestamps left out)."""
    return sorted(
        (
            stored.record.web_url,
            stored.record.title,
            stored.record.provenance.guid,
            stored.record.amp_web_url,
            stored.record.excerpt,
            stored.record.images,
            stored.record.topics,
            stored.content_hash,
        )
        for stored in store.iter_records()
    )


def test_two_entries_for_one_article_in_one_batch_are_one_row(store: Store) -> None:
    first = make(1)
    again = make(1, title="Story 1, corrected", images=(Image("https://news.example/b.jpg"),))
    assert store.upsert_records([first, again]) == UpsertCounts(new=1, updated=1)
    assert store.count_records() == 1
    stored = store.get_record(first.web_url)
    assert stored is not None
    assert stored.record == again


def test_an_existing_guid_is_updated_in_place_not_duplicated(store: Store) -> None:
    store.upsert_records([make(1), make(2)])
    before = store.get_record(make(1).web_url)
    assert before is not None
    moved = make(1, web_url="https://news.example/1-moved", title="Story 1 moved")
    assert store.upsert_records([moved, make(3)]) == UpsertCounts(new=1, updated=1)
    after = store.get_record(before.id)
    assert after is not None
    assert (after.record.web_url, after.record.title) == (moved.web_url, moved.title)
    assert store.count_records() == 3


def test_a_url_freed_in_a_batch_can_be_taken_by_a_new_row_of_that_batch(store: Store) -> None:
    store.upsert_records([make(1)])
    moved = make(1, web_url="https://news.example/elsewhere")
    newcomer = make(9, web_url=make(1).web_url, title="A different story on the old URL")
    assert store.upsert_records([moved, newcomer]) == UpsertCounts(new=1, updated=1)
    owner = store.get_record(make(1).web_url)
    assert owner is not None
    assert owner.record.provenance.guid == "g9"
    assert store.find_by_urls([moved.web_url]) == {moved.web_url: 1}


def test_a_later_arrival_by_amp_url_merges_into_the_row_planned_earlier(store: Store) -> None:
    canonical = make(1, amp_web_url="https://news.example/1/amp", excerpt="Short.")
    amp_entry = make(
        2,
        web_url="https://news.example/1/amp",
        excerpt="A much longer excerpt that should win over the short one.",
        images=(Image("https://news.example/big.jpg", 1200, 675),),
    )
    assert store.upsert_records([canonical, amp_entry]) == UpsertCounts(new=1, updated=1)
    stored = store.get_record(canonical.web_url)
    assert stored is not None
    assert stored.record.excerpt == amp_entry.excerpt
    assert stored.record.images[0].width == 1200  # the richer images, planned in this batch
    assert store.count_records() == 1


def test_a_failing_child_insert_rolls_the_whole_batch_back(store: Store, db_url: str) -> None:
    store.upsert_records([make(1)])
    _refuse_image_url(db_url, "https://news.example/boom.jpg")
    boom = make(3, images=(Image("https://news.example/boom.jpg"),))
    with pytest.raises(StorageError):
        store.upsert_records([make(1, title="Changed"), make(2), boom])
    assert store.count_records() == 1
    stored = store.get_record(make(1).web_url)
    assert stored is not None
    assert stored.record.title == "Story 1"
    assert stored.record.images == make(1).images


def _refuse_image_url(db_url: str, url: str) -> None:
    """Install a trigger that fails any insert of an image with `url` (the batch's last write)."""
    engine = create_engine(db_url)
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(
                text(
                    "CREATE TRIGGER refuse_image BEFORE INSERT ON images "
                    f"WHEN NEW.url = '{url}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
        else:
            connection.execute(
                text(
                    "CREATE FUNCTION refuse_image() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.url = '{url}' THEN RAISE EXCEPTION 'refused'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            connection.execute(
                text(
                    "CREATE TRIGGER refuse_image BEFORE INSERT ON images "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_image()"
                )
            )
    engine.dispose()


def _ladder_batches() -> list[list[Record]]:
    """Batches that exercise every ladder step, in and across batches."""
    body = " ".join(f"word{i} about the harbour bridge reopening" for i in range(60))
    title = "Harbour bridge reopens after two years of repairs"
    first = [
        make(1, amp_web_url="https://news.example/1/amp"),
        make(2, text=body),
        make(3, title=title),
        make(4),
        make(4, title="Story 4, corrected"),
    ]
    second = [
        make(10, web_url="https://news.example/1/amp", excerpt="Longer excerpt here."),
        make(11, web_url="https://mirror.example/2", text=body),
        make(12, title=title.upper() + "!", published=T0 + timedelta(hours=20)),
        make(2, provenance=Provenance("src", "", "g2", None, "new-entry-hash"), text=body),
        make(5, topics=("Robots", "AI")),
    ]
    return [first, second, first]


def test_the_same_batches_give_the_same_rows_on_both_backends(tmp_path: Path) -> None:
    stores = {"sqlite": f"sqlite:///{tmp_path / 'same.db'}"}
    rows: dict[str, list[tuple[Any, ...]]] = {}
    counts: dict[str, list[UpsertCounts]] = {}
    with fresh_database() as pg_url:
        stores["postgresql"] = pg_url
        for backend, url in stores.items():
            with Store(url) as store:
                counts[backend] = [store.upsert_records(b) for b in _ladder_batches()]
                rows[backend] = _rows(store)
    assert counts["sqlite"] == counts["postgresql"]
    assert counts["sqlite"][1].new == 1  # only the record with new topics is new
    assert rows["sqlite"] == rows["postgresql"]
    assert len(rows["sqlite"]) == 5


def test_statements_per_batch_do_not_grow_with_the_batch(store: Store) -> None:
    small = _statements(store, [make(n) for n in range(2)])
    large = _statements(store, [make(n) for n in range(100, 160)])
    assert large == small
    again = _statements(store, [make(n, title=f"Updated {n}") for n in range(100, 160)])
    assert again <= small + 4  # updates, child deletes; no per-row statement


def _statements(store: Store, records: list[Record]) -> int:
    seen: list[str] = []
    with _recording(store, seen):
        store.upsert_records(records)
    return len(seen)


@contextmanager
def _recording(store: Store, seen: list[str]) -> Iterator[None]:
    """Append every SQL statement `store` sends to the driver to `seen`."""
    engine = store._engine  # counting what reaches the driver

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_a_concurrent_insert_of_a_new_key_is_met_by_replanning(tmp_path: Path) -> None:
    """PostgreSQL: another transaction inserts our new row's URL first and commits while
    our INSERT waits on it; the batch re-plans and updates that row instead."""
    with fresh_database() as url, Store(url) as store:
        store.upsert_records([make(0)])
        blocker = create_engine(url)
        with blocker.connect() as other:
            other.execute(text(_COPY_AS_RECORD_1), {"url": make(1).web_url})
            outcome: list[UpsertCounts | BaseException] = []
            thread = threading.Thread(target=_upsert_into, args=(store, [make(1)], outcome))
            seen: list[str] = []
            with _recording(store, seen):
                thread.start()
                _wait_for_lock_wait(url)
                other.commit()
                thread.join()
        blocker.dispose()
        assert outcome == [UpsertCounts(updated=1)]
        heads = [" ".join(statement.split()[:2]) for statement in seen]
        assert heads.count("SELECT records.id,") == 2  # planned twice
        assert heads.count("INSERT INTO") == 3  # the refused row, then its images and topics
        assert store.count_records() == 2
        stored = store.get_record(make(1).web_url)
        assert stored is not None
        assert stored.record.title == make(1).title


_COPY_AS_RECORD_1 = (
    "INSERT INTO records (source_name, guid, web_url, amp_web_url, cdn_amp_web_url, category,"
    " title, excerpt, published_at, type, quality, heat, is_published, provider_name,"
    " provider_domain, title_key, page_pending, page_attempts, text_hash, secured, feed_url,"
    " entry_hash, fetched_at, text, quality_reasons, story_id, content_hash, created_at,"
    " updated_at) SELECT source_name, 'other-guid', :url, amp_web_url, cdn_amp_web_url,"
    " category, 'Inserted by someone else', excerpt, published_at, type, quality, heat,"
    " is_published, provider_name, provider_domain, 'someone else', page_pending,"
    " page_attempts, text_hash, secured, feed_url, entry_hash, fetched_at, text,"
    " quality_reasons, story_id, 'other', created_at, updated_at FROM records"
)


def _upsert_into(store: Store, records: list[Record], outcome: list[Any]) -> None:
    try:
        outcome.append(store.upsert_records(records))
    except BaseException as exc:
        outcome.append(exc)


def _wait_for_lock_wait(url: str) -> None:
    """Poll until some backend of this database waits on a lock (our blocked INSERT)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    watcher_engine = create_engine(url)
    with watcher_engine.connect() as watcher:
        while not watcher.execute(query).scalar_one():
            watcher.rollback()
            time.sleep(0.01)
    watcher_engine.dispose()


def test_scoring_records_score_like_the_full_stored_record(store: Store) -> None:
    record = make(
        1,
        excerpt="An excerpt that says something.",
        text="The body, which scoring never reads.",
        images=(Image("https://news.example/1.jpg", 1200, 675), Image("https://x.example/2")),
        quality_reasons=(QualityReason("title", 12, "has a title"),),
    )
    store.upsert_records([record])
    full = store.get_record(record.web_url)
    assert full is not None
    slim = store.scoring_records([full.id, 999])
    assert list(slim) == [full.id]
    assert slim[full.id].text == ""
    assert slim[full.id] == replace(full.record, text="", topics=(), related=())
    now = T0 + timedelta(days=1)
    assert score_quality(slim[full.id], now=now) == score_quality(full.record, now=now)


def _tagged(n: int, *categories: str, **changes: object) -> Record:
    """`make(n)` whose feed entry carries `categories`."""
    record = make(n, **changes)
    return replace(record, provenance=replace(record.provenance, categories=categories))


def test_feed_categories_are_stored_and_read_back_by_every_reader(store: Store) -> None:
    record = _tagged(1, "Science", "Space")
    store.upsert_records([record, make(2)])
    stored = store.get_record(record.web_url)
    assert stored is not None
    assert stored.record == record
    by_url = {s.record.web_url: s.record for s in store.iter_records()}
    assert by_url[record.web_url].provenance.categories == ("Science", "Space")
    assert by_url[make(2).web_url].provenance.categories == ()
    slim = store.scoring_records([stored.id])
    assert slim[stored.id].provenance.categories == ("Science", "Space")


def test_new_feed_categories_are_kept_even_when_the_public_fields_did_not_change(
    store: Store,
) -> None:
    store.upsert_records([_tagged(1, "Science")])
    assert store.upsert_records([_tagged(1, "Science", "Space")]) == UpsertCounts(unchanged=1)
    stored = store.get_record(make(1).web_url)
    assert stored is not None
    assert stored.record.provenance.categories == ("Science", "Space")


def test_the_same_article_under_another_url_keeps_the_union_of_categories(store: Store) -> None:
    canonical = _tagged(1, "Science", "Space", amp_web_url="https://news.example/1/amp")
    amp_entry = _tagged(2, "Space", "Rockets", web_url="https://news.example/1/amp")
    assert store.upsert_records([canonical]) == UpsertCounts(new=1)
    store.upsert_records([amp_entry])
    assert store.count_records() == 1
    stored = store.get_record(canonical.web_url)
    assert stored is not None
    assert stored.record.provenance.categories == ("Science", "Space", "Rockets")
    assert stored.record.provenance.guid == "g1"  # the stored identity is kept


def test_apply_tracking_writes_only_what_changed(store: Store) -> None:
    store.upsert_records([make(1), make(2), make(3)])
    score = QualityUpdate(70, (QualityReason("title", 12, "has a title"),), True)
    updates = [
        TrackingUpdate(1, story_id="s1", heat=5, related=(2, 3, 2, 1), quality=score),
        TrackingUpdate(2, story_id="s1", related=(1,)),
        TrackingUpdate(999, story_id="gone"),
    ]
    assert store.apply_tracking(updates) == 2
    first = store.get_record(1)
    assert first is not None
    assert (first.story_id, first.record.heat, first.record.quality) == ("s1", 5, 70)
    assert [r.web_url for r in first.record.related] == [make(2).web_url, make(3).web_url]
    stamp = first.updated_at
    assert store.apply_tracking(updates) == 0
    unchanged = store.get_record(1)
    assert unchanged is not None and unchanged.updated_at == stamp
    reordered = [TrackingUpdate(1, related=(3, 2))]
    assert store.apply_tracking(reordered) == 1
    moved = store.get_record(1)
    assert moved is not None
    assert [r.web_url for r in moved.record.related] == [make(3).web_url, make(2).web_url]


def test_set_secured_many_seals_each_url_and_keeps_updated_at(store: Store) -> None:
    store.upsert_records([make(1), make(2), make(3)])
    before = {s.record.web_url: s.updated_at for s in store.iter_records()}
    store.set_secured_many([(make(1).web_url, "seal-1"), (make(3).web_url, "seal-3")])
    after = {s.record.web_url: s for s in store.iter_records()}
    assert {url: s.record.secured for url, s in after.items()} == {
        make(1).web_url: "seal-1",
        make(2).web_url: "",
        make(3).web_url: "seal-3",
    }
    assert {url: s.updated_at for url, s in after.items()} == before
