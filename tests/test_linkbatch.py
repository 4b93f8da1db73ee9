"""Batches linked one after another, the ones that waited written together.

`Tracker.after_upsert_many` must write exactly what `after_upsert` of each batch in turn
writes (stories, heat, related lists, quality, the refresh queue), and `LinkBatcher` must
send the batches that wait behind a call together, a failing one failing alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aggregator.errors import StorageError
from aggregator.linkbatch import LinkBatcher
from aggregator.models import Provider, Record
from aggregator.store import Store
from aggregator.stories_types import LinkFeatures
from aggregator.tracking import LinkBatch, Tracker, record_features
from tests.test_link_sync import EVENTS, NOW, batches
from tests.test_refresh_queue import dated, settings_for, state

T0 = datetime(2026, 11, 27, 12, tzinfo=UTC)


# ------------------------------------------------------------- Tracker.after_upsert_many


def stored_batches(store: Store, groups: list[list[Record]]) -> list[LinkBatch]:
    """Each group enriched and stored, as a crawl stores a source's batch."""
    enricher = Tracker(settings_for("sqlite://"), None)
    out = []
    for group in groups:
        enriched = enricher.enrich(group, now=NOW)
        store.upsert_records(enriched)
        out.append(LinkBatch(enriched, NOW, [record_features(r) for r in enriched]))
    return out


def linked(url: str, groups: list[list[Record]], *, together: bool, window: float) -> tuple:
    """(state and refresh queue after linking, state after the flush)."""
    with Store(url) as store:
        tracker = Tracker(settings_for(url, window_hours=window), store)
        linking = stored_batches(store, groups)
        if together:
            tracker.after_upsert_many(linking)
        else:
            for b in linking:
                tracker.after_upsert(b.records, now=b.now, features=b.features, defer=True)
        before = (state(store), store.queued_for_refresh(), store.link_sequence())
        tracker.flush(now=NOW)
        return before, state(store)


@pytest.mark.parametrize("window", [72.0, 24.0])
def test_linking_batches_together_writes_what_linking_them_in_turn_writes(
    tmp_path: Path, window: float
) -> None:
    """With a 24 h window the early batches leave the index while the late ones link, so
    records queued by one batch are refreshed and taken off the queue by a later one, in
    the same transaction."""
    early = [[dated(event, outlet, -10) for event in EVENTS] for outlet in range(2)]
    groups = [*early, *batches()]
    in_turn = linked(f"sqlite:///{tmp_path / 'a.db'}", groups, together=False, window=window)
    together = linked(f"sqlite:///{tmp_path / 'b.db'}", groups, together=True, window=window)
    (state_a, queue_a, seq_a), after_a = in_turn
    (state_b, queue_b, seq_b), after_b = together
    assert state_b == state_a and after_b == after_a
    assert queue_b == queue_a and queue_a  # some wait for the flush...
    if window == 24.0:  # ...and the early ones were refreshed by the late batches
        assert len(queue_a) < sum(len(group) for group in groups)
    assert (seq_a, seq_b) == (len(groups), 1)  # one write instead of one per batch


def fail_then_link_again(
    tmp_path: Path,
    method: str,
    failing: Callable[[Callable[..., Any]], Callable[..., Any]],
    after_failure: Callable[[Tracker], None],
) -> None:
    """Link every batch in one call while `failing(the store's method)` stands in for the
    store's `method`: the call raises, `after_failure` checks the tracker and no record
    is linked in the store. Linking them again, with `method` back, ends where one merged
    call would have."""
    url = f"sqlite:///{tmp_path / 'a.db'}"
    expected = linked(f"sqlite:///{tmp_path / 'b.db'}", batches(), together=True, window=72.0)
    with Store(url) as store:
        tracker = Tracker(settings_for(url), store)
        linking = stored_batches(store, batches())
        original = getattr(store, method)
        setattr(store, method, failing(original))
        with pytest.raises(StorageError):
            tracker.after_upsert_many(linking)
        after_failure(tracker)
        assert all(story is None for story, *_ in state(store).values())
        setattr(store, method, original)
        tracker.after_upsert_many(linking)
        before = (state(store), store.queued_for_refresh(), 1)
        tracker.flush(now=NOW)
        assert (before, state(store)) == expected


def test_a_failed_write_leaves_nothing_half_noted(tmp_path: Path) -> None:
    """When the one write fails, no batch is linked in the store and the tracker's
    pending queue is as it was: linking the batches again ends where it would have."""

    def failing(apply_links: Callable[..., Any]) -> Callable[..., Any]:
        def fail(*args: object, **kwargs: object) -> int:
            raise StorageError("database is locked")

        return fail

    def unnoted(tracker: Tracker) -> None:
        assert tracker._pending == {}

    fail_then_link_again(tmp_path, "apply_links", failing, unnoted)


def test_a_batch_that_fails_to_link_leaves_the_earlier_ones_unnoted(tmp_path: Path) -> None:
    """The second batch fails while linking: the first one's links, made in the index but
    not written, are forgotten with it, and linking all again ends where it would have."""

    def second_fails(find_by_urls: Callable[..., Any]) -> Callable[..., Any]:
        calls = []

        def find(urls: object) -> dict[str, int]:
            calls.append(urls)
            if len(calls) == 2:
                raise StorageError("database is locked")
            return dict(find_by_urls(urls))

        return find

    def forgotten(tracker: Tracker) -> None:
        assert tracker._pending == {} and tracker._index is None

    fail_then_link_again(tmp_path, "find_by_urls", second_fails, forgotten)


# ------------------------------------------------------------------------ LinkBatcher


def record(url: str) -> Record:
    return Record(
        title=url,
        web_url=f"https://example.org/{url}",
        provider=Provider(name="Example", domain="example.org"),
    )


def features(url: str) -> LinkFeatures:
    return LinkFeatures(((url, 1.0),), ())


@dataclass
class RecordingLinker:
    """Notes each call as (urls of each batch, now of each batch, feature terms); the first
    call waits until `release` is set, and a call holding the URL `poison` fails as a store
    error would."""

    release: threading.Event = field(default_factory=threading.Event)
    poison: str = "never"
    calls: list[tuple[list[list[str]], list[datetime], list[list[str]]]] = field(
        default_factory=list
    )

    def after_upsert(
        self,
        records: Sequence[Record],
        *,
        now: datetime,
        keep_given: bool = False,
        features: Sequence[LinkFeatures] = (),
        defer: bool = False,
    ) -> None:
        assert defer and not keep_given
        self.after_upsert_many([LinkBatch(records, now, features)])

    def after_upsert_many(self, batches: Sequence[LinkBatch]) -> None:
        if not self.calls:
            self.release.wait(5)
        urls = [[r.title for r in b.records] for b in batches]
        terms = [[f.terms[0][0] for f in b.features] for b in batches]
        self.calls.append((urls, [b.now for b in batches], terms))
        if any(self.poison in batch for batch in urls):
            raise StorageError("cannot link " + self.poison)

    def flush(self, *, now: datetime) -> int:
        return 0

    def warm_up(self) -> None:
        return None


async def link_all(
    linker: RecordingLinker, groups: list[list[str]], *, max_records: int = 600
) -> list[BaseException | None]:
    """Link each group from a task of its own, the later ones arriving while the first
    call is held; each caller's outcome."""
    with ThreadPoolExecutor(1) as thread:
        batcher = LinkBatcher(linker, thread, max_records=max_records)

        async def one(index: int, urls: list[str]) -> None:
            now = T0 + timedelta(minutes=index)
            await batcher.link([record(u) for u in urls], now=now, features=[*map(features, urls)])

        first = asyncio.ensure_future(one(0, groups[0]))
        await asyncio.sleep(0.05)  # the first call is running, and held
        rest = [asyncio.ensure_future(one(i, g)) for i, g in enumerate(groups) if i]
        await asyncio.sleep(0.05)
        linker.release.set()
        outcomes = await asyncio.gather(first, *rest, return_exceptions=True)
    return list(outcomes)


def test_batches_that_wait_go_together_in_the_next_call() -> None:
    linker = RecordingLinker()
    outcomes = asyncio.run(link_all(linker, [["a1", "a2"], ["b1"], ["c1", "c2"]]))
    assert outcomes == [None, None, None]
    minutes = [T0 + timedelta(minutes=i) for i in range(3)]
    assert linker.calls == [
        ([["a1", "a2"]], minutes[:1], [["a1", "a2"]]),
        ([["b1"], ["c1", "c2"]], minutes[1:], [["b1"], ["c1", "c2"]]),
    ]


def test_a_call_takes_at_most_max_records() -> None:
    linker = RecordingLinker()
    groups = [["a"], ["b1", "b2"], ["c1", "c2"], ["d"]]
    outcomes = asyncio.run(link_all(linker, groups, max_records=4))
    assert outcomes == [None] * 4
    assert [urls for urls, *_ in linker.calls] == [[["a"]], [["b1", "b2"], ["c1", "c2"]], [["d"]]]


def test_a_failing_merged_call_is_run_again_batch_by_batch() -> None:
    linker = RecordingLinker(poison="b1")
    outcomes = asyncio.run(link_all(linker, [["a"], ["b1"], ["c1"]]))
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], StorageError)
    calls = [urls for urls, *_ in linker.calls]
    assert calls == [[["a"]], [["b1"], ["c1"]], [["b1"]], [["c1"]]]


def test_a_batch_whose_caller_was_cancelled_is_not_linked() -> None:
    linker = RecordingLinker()

    async def go() -> None:
        with ThreadPoolExecutor(1) as thread:
            batcher = LinkBatcher(linker, thread)
            first = asyncio.ensure_future(batcher.link([record("a")], now=T0, features=[]))
            await asyncio.sleep(0.05)
            dropped = asyncio.ensure_future(batcher.link([record("b")], now=T0, features=[]))
            kept = asyncio.ensure_future(batcher.link([record("c")], now=T0, features=[]))
            await asyncio.sleep(0.01)
            dropped.cancel()
            linker.release.set()
            await asyncio.gather(first, kept)
            with pytest.raises(asyncio.CancelledError):
                await dropped

    asyncio.run(go())
    assert [urls for urls, *_ in linker.calls] == [[["a"]], [["c"]]]


def test_an_empty_batch_makes_no_call() -> None:
    linker = RecordingLinker()
    linker.release.set()

    async def go() -> None:
        with ThreadPoolExecutor(1) as thread:
            await LinkBatcher(linker, thread).link([], now=T0, features=[])

    asyncio.run(go())
    assert linker.calls == []


def test_the_linker_process_links_batches_together_as_this_process_does(tmp_path: Path) -> None:
    from aggregator.linker import LinkerProcess
    from aggregator.pipeline import WORKER_MODULES

    groups = batches()
    expected = linked(f"sqlite:///{tmp_path / 'a.db'}", groups, together=True, window=72.0)
    url = f"sqlite:///{tmp_path / 'b.db'}"
    with Store(url) as store:
        with LinkerProcess(settings_for(url), store, preload=WORKER_MODULES) as linker:
            linker.after_upsert_many(stored_batches(store, groups))
            before = (state(store), store.queued_for_refresh(), store.link_sequence())
            linker.flush(now=NOW)
        assert (before, state(store)) == expected
