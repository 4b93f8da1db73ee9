"""A crawl links each batch at once but refreshes heat, related and quality once, at the end.

`Tracker.after_upsert(..., defer=True)` writes the stories and queues every touched record in
the store's refresh queue; `Tracker.flush` refreshes the queue. The end state must equal
linking without deferral, the queue must survive a killed process (a new Tracker finishes
it), and queued records about to leave the story index are refreshed before they leave.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from aggregator.models import Record
from aggregator.settings import Settings, parse_settings
from aggregator.store import Store
from aggregator.tracking import Linker, Tracker
from tests.test_link_sync import EVENTS, NOW, batches, event_record, partition

State = dict[str, tuple[str | None, int, int, bool, tuple[str, ...]]]


def settings_for(url: str, **stories: float) -> Settings:
    return parse_settings({"storage": {"url": url}, "stories": stories, "sources": []})


def state(store: Store) -> State:
    """web URL → (story, heat, quality, published, related web URLs) of every record."""
    found: State = {}
    for stored in store.iter_records():
        record = stored.record
        related = tuple(entry.web_url for entry in record.related)
        found[record.web_url] = (
            stored.story_id,
            record.heat,
            record.quality,
            record.is_published,
            related,
        )
    return found


def unordered(found: State) -> dict[str, tuple[object, ...]]:
    return {url: (*values[:4], frozenset(values[4])) for url, values in found.items()}


def store_and_link(linker: Linker, store: Store, batch: list[Record], *, defer: bool) -> None:
    """What a crawl does with one source's batch: enrich, store, link."""
    enriched = Tracker(settings_for("sqlite://"), None).enrich(batch, now=NOW)
    store.upsert_records(enriched)
    linker.after_upsert(enriched, now=NOW, defer=defer)


def link_all(url: str, *, defer: bool, flush: bool = True) -> State:
    with Store(url) as store:
        tracker = Tracker(settings_for(url), store)
        for batch in batches():
            store_and_link(tracker, store, batch, defer=defer)
        if flush and defer:
            assert tracker.flush(now=NOW) > 0
        return state(store)


def test_deferred_linking_ends_where_immediate_linking_does(tmp_path: Path) -> None:
    immediate = link_all(f"sqlite:///{tmp_path / 'a.db'}", defer=False)
    deferred = link_all(f"sqlite:///{tmp_path / 'b.db'}", defer=True)
    assert deferred == immediate
    assert all(heat >= 0 for _, heat, _, _, _ in deferred.values())
    assert all(len(related) >= len(OUTLET_PEERS) for *_, related in deferred.values())


OUTLET_PEERS = range(3)  # each event is covered by 4 outlets: 3 peers at least


def test_before_the_flush_records_wait_in_the_queue_and_after_it_none_do(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    link_all(url, defer=True, flush=False)
    with Store(url) as store:
        waiting = store.queued_for_refresh()
        assert len(waiting) == store.count_records() == len(EVENTS) * 4
        assert all(heat == -1 for _, heat, *_ in state(store).values())
        assert Tracker(settings_for(url), store).flush(now=NOW) == len(waiting)
        assert store.queued_for_refresh() == {}


def test_a_new_process_finishes_the_queue_a_killed_one_left(tmp_path: Path) -> None:
    immediate = link_all(f"sqlite:///{tmp_path / 'a.db'}", defer=False)
    url = f"sqlite:///{tmp_path / 'b.db'}"
    link_all(url, defer=True, flush=False)  # the process "dies" here: its memory is gone
    with Store(url) as store:
        successor = Tracker(settings_for(url), store)
        successor.flush(now=NOW)
        # a rebuilt index may order equally similar peers differently: compare them as sets
        assert unordered(state(store)) == unordered(immediate)
        assert store.queued_for_refresh() == {}
        assert successor.rebuilds == 1


def dated(event: str, outlet: int, days: int) -> Record:
    record = event_record(event, outlet)
    assert record.published is not None
    return replace(record, published=record.published + timedelta(days=days))


def test_queued_records_leaving_the_window_are_refreshed_before_they_leave(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with Store(url) as store:
        tracker = Tracker(settings_for(url, window_hours=24), store)
        early = [dated(event, outlet, -10) for event in EVENTS for outlet in range(2)]
        late = [dated(event, outlet, 0) for event in EVENTS for outlet in range(2, 4)]
        for batch in (early, late):
            store_and_link(tracker, store, batch, defer=True)
        waiting = store.queued_for_refresh()
        ids = store.find_by_urls(record.web_url for record in early)
        assert not set(ids.values()) & set(waiting)  # refreshed when the late batch came
        stored = state(store)
        for record in early:
            _, heat, _, _, related = stored[record.web_url]
            assert heat >= 0
            assert len(related) == 1  # its one same-event peer of that day
        assert len(waiting) == len(late)


def test_records_stored_but_never_linked_are_linked_by_the_next_flush(tmp_path: Path) -> None:
    """A crawl stopped between storing its batches and linking them (Ctrl-C, a kill) leaves
    records without a story; the next flush links and refreshes them even when nothing new
    arrived, and they end in the stories linking batch by batch gives."""
    url = f"sqlite:///{tmp_path / 'b.db'}"
    first = f"sqlite:///{tmp_path / 'a.db'}"
    with Store(first) as reference:
        tracker = Tracker(settings_for(first), reference)
        for batch in batches():
            store_and_link(tracker, reference, batch, defer=True)
        tracker.flush(now=NOW)
        expected = partition(reference)
    with Store(url) as store:
        for batch in batches():  # stored, as a crawl does, then the crawl stopped
            store.upsert_records(Tracker(settings_for(url), None).enrich(batch, now=NOW))
        assert len(store.unlinked_ids(100)) == len(EVENTS) * len(batches())
        assert Tracker(settings_for(url), store).flush(now=NOW) == len(EVENTS) * len(batches())
        assert store.unlinked_ids(100) == []
        assert partition(store) == expected
        assert all(heat > 0 and related for _, heat, _, _, related in state(store).values())


def test_records_that_cannot_be_linked_do_not_stop_the_refresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A leftover record whose linking fails (a bug, bad data) is logged and waits: the
    queued records are refreshed all the same, and no flush is blocked for good."""
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with Store(url) as store:
        tracker = Tracker(settings_for(url), store)
        for batch in batches()[:2]:
            store_and_link(tracker, store, batch, defer=True)
        store.upsert_records(Tracker(settings_for(url), None).enrich(batches()[2], now=NOW))
        queued = len(store.queued_for_refresh())

        def cannot_link(*args: object, **kwargs: object) -> None:
            raise RuntimeError("cannot link")

        monkeypatch.setattr(tracker, "_link", cannot_link)
        assert queued > 0 and tracker.flush(now=NOW) == queued
        assert store.queued_for_refresh() == {}
        assert len(store.unlinked_ids(100)) == len(EVENTS)
        assert f"could not link {len(EVENTS)} stored records" in caplog.text
