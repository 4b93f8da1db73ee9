"""Long-lived story indexes (daemon, distributed workers) catch up instead of rebuilding;
the linking lock keeps two workers linking one event at once from opening two stories.

Two Trackers on one store stand for two worker processes: each links batches in turn and
must end with the same stories as one Tracker that linked everything, rebuilding its index
only once (the first time), never per batch. On PostgreSQL too (tests/pg.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aggregator.models import Provenance, Provider, Record
from aggregator.settings import Settings, parse_settings
from aggregator.store import Store
from aggregator.store.tracking_batch import TrackingUpdate
from aggregator.tracking import Tracker
from tests.pg import fresh_database

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
EVENTS = {
    "quake": "Earthquake of magnitude 7.1 strikes Hokkaido; Sapporo hospitals treat injured",
    "merger": "Vantorix agrees to buy Quellmark for 40 billion dollars in chip merger",
    "final": "Ravensholt beat Corvanto 3-1 to win the Lindqvist Cup final in Oslo",
}
OUTLETS = ("alpha.example", "beta.example", "gamma.example", "delta.example")


def event_record(event: str, outlet: int) -> Record:
    """Outlet `outlet`'s article about `event`, published in outlet order."""
    domain = OUTLETS[outlet]
    body = EVENTS[event]
    return Record(
        title=f"{body.split(';')[0]} ({domain.split('.')[0]})",
        excerpt=body,
        text=f"{body}. " * 5 + f"Reported by {domain}.",
        web_url=f"https://{domain}/{event}",
        provider=Provider(domain.split(".")[0].title(), domain),
        published=NOW - timedelta(hours=8) + timedelta(hours=outlet, minutes=len(event)),
        provenance=Provenance(domain, f"https://{domain}/feed", f"{domain}/{event}"),
    )


def batches() -> list[list[Record]]:
    """One batch per outlet, each covering every event."""
    return [[event_record(event, outlet) for event in EVENTS] for outlet in range(len(OUTLETS))]


def settings_for(url: str) -> Settings:
    return parse_settings({"storage": {"url": url}, "sources": []})


def link(tracker: Tracker, store: Store, batch: list[Record]) -> None:
    store.upsert_records(batch)
    tracker.after_upsert(batch, now=NOW)


def partition(store: Store) -> set[frozenset[str]]:
    """The stored stories as sets of web URLs."""
    stories: dict[str, set[str]] = {}
    for stored in store.iter_records():
        assert stored.story_id, stored.record.web_url
        stories.setdefault(stored.story_id, set()).add(stored.record.web_url)
    return {frozenset(urls) for urls in stories.values()}


@pytest.fixture(params=["sqlite", "postgresql"])
def store_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
        return
    with fresh_database() as first, fresh_database() as second:
        yield first, second


def test_two_trackers_taking_turns_match_one_and_never_rebuild(
    store_urls: tuple[str, str],
) -> None:
    shared_url, reference_url = store_urls
    with Store(reference_url) as store:
        alone = Tracker(settings_for(reference_url), store)
        for batch in batches():
            link(alone, store, batch)
        expected = partition(store)
    assert len(expected) == len(EVENTS)  # the fixture itself links as intended
    with Store(shared_url) as store:
        workers = [Tracker(settings_for(shared_url), store) for _ in range(2)]
        for turn, batch in enumerate(batches()):
            link(workers[turn % 2], store, batch)
        assert partition(store) == expected
        assert [worker.rebuilds for worker in workers] == [1, 1]
        assert store.link_sequence() == len(OUTLETS)


def test_a_story_moved_by_another_process_is_moved_in_the_index_too(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with Store(url) as store:
        tracker = Tracker(settings_for(url), store)
        first, *rest = batches()
        link(tracker, store, first)
        moved = store.find_by_urls([first[0].web_url])[first[0].web_url]
        # another process decides that record belongs to a story of its own
        store.apply_links([TrackingUpdate(moved, story_id="elsewhere")])
        link(tracker, store, rest[0])
        assert tracker.rebuilds == 1
        index = tracker._index
        assert index is not None and index.resolve(index.story_of(moved)) == "elsewhere"


def test_records_linked_elsewhere_are_restored_without_a_rebuild(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with Store(url) as store:
        mine, theirs = (Tracker(settings_for(url), store) for _ in range(2))
        one, two, three, _ = batches()
        link(mine, store, one)
        link(theirs, store, two)  # `mine` has not seen these
        link(mine, store, three)
        assert mine.rebuilds == 1
        index = mine._index
        assert index is not None
        for record in two:
            key = store.find_by_urls([record.web_url])[record.web_url]
            assert key in index
        assert partition(store) == {
            frozenset(r.web_url for r in (one[i], two[i], three[i])) for i in range(len(EVENTS))
        }


def test_after_a_restart_new_coverage_joins_the_restored_stories(tmp_path: Path) -> None:
    """Each batch linked by a fresh Tracker (a process per batch): the rebuilt index must
    restore the stored stories BEFORE adding the batch's own, already stored, records."""
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with Store(url) as store:
        for batch in batches():
            link(Tracker(settings_for(url), store), store, batch)
        stories = partition(store)
    assert stories == {
        frozenset(f"https://{domain}/{event}" for domain in OUTLETS) for event in EVENTS
    }


def test_a_source_whose_items_span_days_does_not_evict_the_next_sources_peers(
    tmp_path: Path,
) -> None:
    """A crawl links source after source, each with a week of items: the second source's
    oldest item must still meet the first source's item of the same day."""
    url = f"sqlite:///{tmp_path / 'a.db'}"

    def dated(event: str, outlet: int, day: int) -> Record:
        record = event_record(event, outlet)
        return replace(record, published=NOW - timedelta(days=7 - 3 * day, hours=outlet))

    events = list(EVENTS)
    first = [dated(event, 0, day) for day, event in enumerate(events)]  # days 0, 3, 6
    second = [dated(event, 1, day) for day, event in enumerate(events)]
    with Store(url) as store:
        tracker = Tracker(settings_for(url), store)
        link(tracker, store, first)
        link(tracker, store, second)
        assert partition(store) == {
            frozenset({first[i].web_url, second[i].web_url}) for i in range(len(events))
        }


class _SlowLinks(Store):
    """A store whose linking writes take a while: the window in which a second worker,
    without the linking lock, would read the stories before this one's are written."""

    def apply_links(self, *args: Any, **kwargs: Any) -> int:
        time.sleep(0.5)
        return super().apply_links(*args, **kwargs)


def test_two_workers_linking_one_event_at_once_open_one_story() -> None:
    with fresh_database() as url:
        Store(url).close()  # migrate first
        first, second = _SlowLinks(url), Store(url)
        try:
            workers = [Tracker(settings_for(url), store) for store in (first, second)]
            for outlet, worker in enumerate(workers):  # long-lived workers: indexes built
                link(worker, second, [event_record("merger", outlet)])
            event_batches = [[event_record("quake", 0)], [event_record("quake", 1)]]
            for store, batch in zip((first, second), event_batches, strict=True):
                store.upsert_records(batch)
            inside = threading.Event()
            original = first.apply_links

            def announce(*args: Any, **kwargs: Any) -> int:
                inside.set()  # the first worker holds the lock and is writing
                return original(*args, **kwargs)

            first.apply_links = announce  # type: ignore[method-assign]
            slow = threading.Thread(
                target=workers[0].after_upsert, args=(event_batches[0],), kwargs={"now": NOW}
            )
            slow.start()
            assert inside.wait(10)
            workers[1].after_upsert(event_batches[1], now=NOW)  # while the first writes
            slow.join(10)
            quake = frozenset(r.web_url for batch in event_batches for r in batch)
            assert quake in partition(second)
            assert [worker.rebuilds for worker in workers] == [1, 1]
        finally:
            first.close()
            second.close()
