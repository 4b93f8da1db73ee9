"""Tests for aggregator.store, on real SQLite files in tmp_path."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aggregator.errors import StorageError
from aggregator.models import (
    Image,
    Provenance,
    Provider,
    QualityReason,
    Record,
    RelatedRecord,
)
from aggregator.store import SourceState, Store, UpsertCounts, export_read
from aggregator.store.queries import RecordFilter, iter_stored
from tests.test_export_identical import fill as fill_for_export

T0 = datetime(2020, 2, 2, 11, 6, tzinfo=UTC)
SEED_URL = (
    "https://edmontonjournal.com/news/local-news/"
    "city-police-eye-use-of-facial-recognition-technology-to-fight-crime"
)


def _related(title: str, url: str, domain: str) -> RelatedRecord:
    return RelatedRecord(
        title=title,
        excerpt=f"{title} excerpt ...",
        published=datetime(2020, 2, 3, 23, 42, tzinfo=UTC),
        web_url=url,
        amp_web_url=url + "?outputType=amp",
        cdn_amp_web_url="https://cdn.example/c/s/" + url.removeprefix("https://"),
        type="article",
        provider=Provider(name=domain.title(), domain=domain),
        quality=69,
        images=(Image(url=url + "/img.jpg", width=1280, height=720),),
    )


def seed_record() -> Record:
    """A record shaped like shared/seed/000_f39ce92c9ebe8ec3.txt."""
    title = "City police eye use of facial recognition technology to fight crime"
    return Record(
        title=title,
        web_url=SEED_URL,
        provider=Provider(name="Edmonton Journal", domain="edmontonjournal.com"),
        excerpt="City police are assessing the potential to use facial recognition ...",
        published=T0,
        amp_web_url=SEED_URL + "/amp",
        cdn_amp_web_url="https://edmontonjournal-com.cdn.ampproject.org/c/s/"
        + SEED_URL.removeprefix("https://")
        + "/amp",
        quality=59,
        topics=("AI", "Computer Vision"),
        images=(
            Image("https://postmedia.example/tech.jpg", 1000, 750, title),
            Image("https://postmedia.example/small.jpg"),
        ),
        related=(
            _related("Volusia County facial recognition", "https://clickorlando.com/a", "x.com"),
            _related("Facial recognition helps", "https://fox35orlando.com/b", "fox35.com"),
        ),
        secured="Y2lwaGVy;bm9uY2U=",
        provenance=Provenance("edmonton", "https://ej.example/feed", "guid-1", T0, "eh1"),
        text="Full article text.",
        quality_reasons=(QualityReason("complete", 30, "all fields"),),
    )


def make(n: int, **changes: object) -> Record:
    """A small record number `n` (published n hours after T0)."""
    base = Record(
        title=f"Story {n}",
        web_url=f"https://news.example/{n}",
        provider=Provider("News", "news.example"),
        published=T0 + timedelta(hours=n),
        images=(Image(f"https://news.example/{n}.jpg", 10, 10),),
        topics=("AI",),
        provenance=Provenance("src", "https://news.example/feed", f"g{n}"),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sub' / 'store.db'}"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store(db_url, busy_timeout_seconds=5) as opened:
        yield opened


def test_round_trip_seed_like_record(store: Store) -> None:
    record = seed_record()
    assert store.upsert_records([record]) == UpsertCounts(new=1)
    by_url = store.get_record(SEED_URL)
    assert by_url is not None
    assert by_url.record == record
    assert store.get_record(by_url.id) == by_url
    assert store.get_record(record.amp_web_url) == by_url
    assert store.get_record("https://nowhere.example/") is None
    assert store.get_record(999) is None


def test_same_batch_twice_is_idempotent(store: Store) -> None:
    batch = [make(1), make(2), make(3)]
    assert store.upsert_records(batch) == UpsertCounts(new=3)
    assert store.upsert_records(batch) == UpsertCounts(unchanged=3)
    assert store.count_records() == 3


def test_title_change_updates_in_place(store: Store) -> None:
    store.upsert_records([make(1)])
    before = store.get_record(make(1).web_url)
    assert before is not None
    store.set_story(before.id, "story-1")
    changed = make(1, title="Story 1, corrected", topics=("Robots",), images=())
    assert store.upsert_records([changed]) == UpsertCounts(updated=1)
    after = store.get_record(before.id)
    assert after is not None
    assert after.record == changed
    assert after.story_id == "story-1"
    assert after.updated_at > before.updated_at
    assert after.content_hash != before.content_hash
    assert store.count_records() == 1


@pytest.mark.parametrize(
    "changes",
    [
        {"web_url": "https://news.example/1-moved"},  # same source + guid
        {"provenance": Provenance("other", "https://o.example/feed", "x9")},  # same URL
        {  # same AMP URL only
            "web_url": "https://m.news.example/1",
            "provenance": Provenance("other", "", "x9"),
        },
    ],
    ids=["guid", "canonical-url", "amp-url"],
)
def test_identity_rules(store: Store, changes: dict[str, object]) -> None:
    first = make(1, amp_web_url="https://news.example/1/amp")
    store.upsert_records([first])
    again = replace(first, title="Retitled", **changes)  # type: ignore[arg-type]
    assert store.upsert_records([again]) == UpsertCounts(updated=1)
    assert store.count_records() == 1
    stored = store.get_record(1)
    assert stored is not None and stored.record.title == "Retitled"
    # the first source keeps its identity, so its crawler still knows the guid
    assert store.known_guids("src", ["g1"]) == {"g1"}


def test_same_guid_in_another_source_is_a_new_record(store: Store) -> None:
    store.upsert_records([make(1)])
    other = make(2, provenance=Provenance("other", "", "g1"))
    assert store.upsert_records([other]) == UpsertCounts(new=1)


def test_duplicate_identities_in_one_batch_collapse(store: Store) -> None:
    batch = [make(1), make(1), make(1, title="Later"), make(2, web_url=make(1).web_url)]
    counts = store.upsert_records(batch)
    assert counts == UpsertCounts(new=1, updated=2, unchanged=1)
    assert store.count_records() == 1
    stored = store.get_record(1)
    assert stored is not None and stored.record.title == "Story 2"


def test_moved_url_owned_by_another_row_does_not_fail(store: Store) -> None:
    store.upsert_records([make(1), make(2)])
    moved = make(1, web_url=make(2).web_url, title="Moved")
    assert store.upsert_records([moved]) == UpsertCounts(updated=1)
    stored = store.get_record(1)
    assert stored is not None
    assert (stored.record.title, stored.record.web_url) == ("Moved", make(1).web_url)


def test_known_guids_and_entry_hashes(store: Store) -> None:
    store.upsert_records([make(1), make(2, provenance=Provenance("src", "", "g2", None, "h2"))])
    assert store.known_guids("src", ["g1", "g2", "g3", ""]) == {"g1", "g2"}
    assert store.known_guids("other", ["g1"]) == set()
    assert store.entry_hashes("src", ["g2", "g3"]) == {"g2": "h2"}
    refreshed = make(2, provenance=Provenance("src", "", "g2", None, "h2b"))
    assert store.upsert_records([refreshed]) == UpsertCounts(unchanged=1)
    assert store.entry_hashes("src", ["g2"]) == {"g2": "h2b"}


def test_find_by_urls(store: Store) -> None:
    store.upsert_records([make(1, amp_web_url="https://amp.example/1"), make(2)])
    found = store.find_by_urls([make(2).web_url, "https://amp.example/1", "https://no.example"])
    assert found == {make(2).web_url: 2, "https://amp.example/1": 1}


def _titles(store: Store, **filters: object) -> list[str]:
    return [s.record.title for s in store.iter_records(**filters)]  # type: ignore[arg-type]


def test_iter_records_filters_and_order(store: Store) -> None:
    store.upsert_records(
        [
            make(1),
            make(3, topics=("Robots",)),
            make(2, is_published=True),
            make(4, published=None),
        ]
    )
    assert _titles(store) == ["Story 3", "Story 2", "Story 1", "Story 4"]
    assert _titles(store, topic="AI") == ["Story 2", "Story 1", "Story 4"]
    assert _titles(store, topic="Robots") == ["Story 3"]
    assert _titles(store, since=T0 + timedelta(hours=2)) == ["Story 3", "Story 2"]
    assert _titles(store, published_only=True) == ["Story 2"]
    mark = datetime.now(UTC)
    store.set_heat(1, 80)
    assert _titles(store, updated_after=mark) == ["Story 1"]


def test_iter_records_pages_through_ties_and_undated(store: Store, db_url: str) -> None:
    same_time = [make(n, published=T0) for n in range(5)]
    undated = [make(n, published=None) for n in range(5, 8)]
    store.upsert_records(same_time + undated)
    with Store(db_url) as other:
        ids = [s.id for s in iter_stored(other._engine, RecordFilter(), page_size=2)]
    assert ids == [5, 4, 3, 2, 1, 8, 7, 6]


def test_source_state_save_and_load(store: Store) -> None:
    assert store.get_source_state("feed") is None
    state = SourceState(name="feed", url="https://f.example/rss", etag='"abc"', last_fetch_at=T0)
    store.save_source_state(state)
    assert store.get_source_state("feed") == state
    later = replace(state, state="erroring", error_count=2, last_error="boom", next_check_at=T0)
    store.save_source_state(later)
    assert store.get_source_state("feed") == later


def test_invalid_source_state_is_a_storage_error(store: Store) -> None:
    with pytest.raises(StorageError):
        store.save_source_state(SourceState(name="feed", state="sleepy"))


def test_set_related_renders_the_linked_records_current_row(store: Store) -> None:
    store.upsert_records([make(1), make(2), make(3)])
    store.set_related(1, [3, 2, 3, 1])
    store.upsert_records([make(3, title="Story 3, updated")])
    stored = store.get_record(1)
    assert stored is not None
    assert [r.title for r in stored.record.related] == ["Story 3, updated", "Story 2"]
    assert stored.record.related[1].images == make(2).images
    # an upsert without related entries keeps the computed links
    store.upsert_records([make(1, title="Story 1 again")])
    again = store.get_record(1)
    assert again is not None and len(again.record.related) == 2
    with pytest.raises(StorageError):
        store.set_related(1, [99])


def test_updaters_change_fields_and_bump_updated_at(store: Store) -> None:
    store.upsert_records([make(1)])
    before = store.get_record(1)
    assert before is not None
    store.set_quality(1, 72, [QualityReason("text", 20, "long")], is_published=True)
    store.set_topics(1, ["Robots", "AI"])
    store.set_heat(1, 15)
    store.set_secured(make(1).web_url, "c;n")
    after = store.get_record(1)
    assert after is not None
    assert after.record.quality == 72 and after.record.is_published
    assert after.record.quality_reasons == (QualityReason("text", 20, "long"),)
    assert after.record.topics == ("Robots", "AI")
    assert (after.record.heat, after.record.secured) == (15, "c;n")
    assert after.updated_at > before.updated_at
    assert after.content_hash == before.content_hash
    assert store.upsert_records([make(1)]) == UpsertCounts(unchanged=1)
    with pytest.raises(StorageError):
        store.set_heat(42, 1)


def test_wal_mode_is_on(store: Store, tmp_path: Path) -> None:
    store.count_records()
    with sqlite3.connect(tmp_path / "sub" / "store.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_failed_batch_leaves_no_partial_rows(store: Store) -> None:
    store.upsert_records([make(1)])
    bad = [make(1, title="Changed"), make(2), make(3, quality=500)]
    with pytest.raises(StorageError) as caught:
        store.upsert_records(bad)
    assert caught.value.__cause__ is not None
    assert store.count_records() == 1
    stored = store.get_record(1)
    assert stored is not None and stored.record.title == "Story 1"
    assert store.known_guids("src", ["g2", "g3"]) == set()


def test_second_store_sees_first_stores_writes(store: Store, db_url: str) -> None:
    store.upsert_records([make(1)])
    with Store(db_url) as second:
        assert second.count_records() == 1
        second.upsert_records([make(2)])
    assert store.count_records() == 2


def test_bad_url_is_a_storage_error() -> None:
    with pytest.raises(StorageError):
        Store("nosuchdialect://x")


@pytest.mark.parametrize(("page_size", "remembered"), [(1, 0), (3, 1), (4, 3), (7, 50), (500, 0)])
def test_export_records_are_the_stored_records_without_private_fields(
    store: Store, page_size: int, remembered: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same records, same order (ties, undated last), linked entries reused across pages."""
    monkeypatch.setattr(export_read, "PAGE_SIZE", page_size)
    monkeypatch.setattr(export_read, "REMEMBERED", remembered)
    fill_for_export(store)
    full = [stored.record for stored in store.iter_records(published_only=True)]
    lean = list(store.iter_export_records())
    assert lean == [
        replace(
            record,
            text="",
            quality_reasons=(),
            provenance=replace(record.provenance, categories=()),
        )
        for record in full
    ]
    assert any(record.related for record in lean)
    assert any(record.published is None for record in lean)
