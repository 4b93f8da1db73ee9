"""Story linking in a process of its own (`aggregator.linker.LinkerProcess`).

It must end where linking in this process ends, hand over to this process when it dies,
bring its storage errors back, and never outlive a parent killed with -9.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from aggregator.errors import StorageError
from aggregator.linker import LinkerProcess
from aggregator.pipeline import WORKER_MODULES
from aggregator.store import Store
from tests.loopback import REPO_ROOT
from tests.pg import fresh_database
from tests.test_link_sync import EVENTS, NOW, batches, partition
from tests.test_refresh_queue import State, link_all, settings_for, state, store_and_link


def linker_for(url: str, store: Store) -> LinkerProcess:
    return LinkerProcess(settings_for(url), store, preload=WORKER_MODULES)


def test_the_linker_process_ends_where_linking_in_this_process_ends(tmp_path: Path) -> None:
    expected = link_all(f"sqlite:///{tmp_path / 'a.db'}", defer=False)
    url = f"sqlite:///{tmp_path / 'b.db'}"
    with Store(url) as store, linker_for(url, store) as linker:
        for batch in batches():
            store_and_link(linker, store, batch, defer=True)
        assert linker.flush(now=NOW) == len(EVENTS) * len(batches())
        assert state(store) == expected


def test_records_sent_with_their_features_link_as_in_this_process(tmp_path: Path) -> None:
    """With features, the records cross to the linker without text and excerpt."""
    from aggregator.tracking import Tracker, record_features

    expected = link_all(f"sqlite:///{tmp_path / 'a.db'}", defer=False)
    url = f"sqlite:///{tmp_path / 'b.db'}"
    with Store(url) as store, linker_for(url, store) as linker:
        for batch in batches():
            enriched = Tracker(settings_for(url), None).enrich(batch, now=NOW)
            assert any(record.text for record in enriched)
            store.upsert_records(enriched)
            features = [record_features(record) for record in enriched]
            linker.after_upsert(enriched, now=NOW, features=features, defer=True)
        linker.flush(now=NOW)
        assert state(store) == expected
        stored = [item.record for item in store.iter_records()]
        assert stored and all(record.text for record in stored)  # the store keeps its copy


def test_a_killed_linker_process_hands_over_to_this_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    first, *rest = batches()
    with Store(url) as store, linker_for(url, store) as linker:
        store_and_link(linker, store, first, defer=True)
        process = linker._process
        assert process is not None and process.pid is not None
        os.kill(process.pid, signal.SIGKILL)
        process.join(10)
        for batch in rest:
            store_and_link(linker, store, batch, defer=True)
        linker.flush(now=NOW)
        stories = partition(store)
        assert len(stories) == len(EVENTS)
        assert store.queued_for_refresh() == {}
        assert all(heat >= 0 for _, heat, *_ in state(store).values())


def test_a_storage_error_in_the_linker_process_comes_back_and_it_keeps_serving(
    tmp_path: Path,
) -> None:
    db = tmp_path / "a.db"
    url = f"sqlite:///{db}"
    first, second, *_ = batches()
    with Store(url) as store, linker_for(url, store) as linker:
        store_and_link(linker, store, first, defer=True)
        with sqlite3.connect(db) as connection:
            connection.execute("ALTER TABLE refresh_queue RENAME TO gone")
        with pytest.raises(StorageError, match="apply_links failed"):
            store_and_link(linker, store, second, defer=True)
        with sqlite3.connect(db) as connection:
            connection.execute("ALTER TABLE gone RENAME TO refresh_queue")
        store_and_link(linker, store, second, defer=True)
        assert linker._process is not None and linker._process.is_alive()


_ORPHAN_SCRIPT = """
import sys, time
from aggregator.linker import LinkerProcess
from aggregator.pipeline import WORKER_MODULES
from aggregator.store import Store
from tests.test_link_sync import NOW, batches
from tests.test_refresh_queue import settings_for, store_and_link
url = sys.argv[1]
store = Store(url)
linker = LinkerProcess(settings_for(url), store, preload=WORKER_MODULES)
store_and_link(linker, store, batches()[0], defer=True)
print(linker._process.pid, flush=True)
time.sleep(600)
"""


def test_the_linker_process_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT, url], cwd=REPO_ROOT, stdout=subprocess.PIPE
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    deadline = time.monotonic() + 10
    while _alive(child):
        assert time.monotonic() < deadline, f"linker {child} outlived its parent"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_a_flush_with_nothing_queued_does_not_start_the_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with Store(url) as store, linker_for(url, store) as linker:
        assert linker.flush(now=NOW) == 0
        assert linker._process is None
        store_and_link(linker, store, batches()[0], defer=True)
        assert linker._process is not None


def test_warm_up_starts_the_process_before_the_first_call(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with Store(url) as store, linker_for(url, store) as linker:
        linker.warm_up()
        deadline = time.monotonic() + 30
        while linker._process is None and time.monotonic() < deadline:
            time.sleep(0.01)
        process = linker._process
        assert process is not None and process.is_alive()
        linker.warm_up()  # started already: the same process serves
        store_and_link(linker, store, batches()[0], defer=True)
        assert linker._process is process
        assert linker.flush(now=NOW) == len(EVENTS)
    assert not process.is_alive()  # closed with the linker
    with Store(url) as store:
        closed = linker_for(url, store)
        closed.close()
        closed.warm_up()  # a closed linker starts nothing
        time.sleep(0.2)
        assert closed._process is None


def calls_of(linker: LinkerProcess, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The kinds of the calls `linker` makes, recorded as they are made."""
    made: list[str] = []
    call = linker._call

    def recorded(*message: object) -> object:
        made.append(str(message[0]))
        return call(*message)

    monkeypatch.setattr(linker, "_call", recorded)
    return made


@contextmanager
def linked_in_chunks_of_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[State, Store, LinkerProcess]]:
    """The end state of linking every batch in this process, and a store whose batches a
    linker process linked with deferred refresh, to flush 3 records at a time."""
    monkeypatch.setattr("aggregator.linker.FLUSH_CHUNK", 3)
    expected = link_all(f"sqlite:///{tmp_path / 'a.db'}", defer=False)
    url = f"sqlite:///{tmp_path / 'b.db'}"
    with Store(url) as store, linker_for(url, store) as linker:
        for batch in batches():
            store_and_link(linker, store, batch, defer=True)
        yield expected, store, linker


def test_a_flush_in_chunks_planned_there_and_written_here_ends_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The linker plans each chunk (heat, related) while this process rescores and writes
    the one before: the same end state as flushing in this process, in many chunks."""
    with linked_in_chunks_of_3(tmp_path, monkeypatch) as (expected, store, linker):
        queued = len(store.queued_for_refresh())
        made = calls_of(linker, monkeypatch)
        assert linker.flush(now=NOW) == queued > 6
        assert made.count("flush_next") == -(-queued // 3) + 1  # the last one says "done"
        assert store.queued_for_refresh() == {}
        assert state(store) == expected


def test_a_failed_write_during_a_flush_loses_nothing_and_the_next_flush_ends_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with linked_in_chunks_of_3(tmp_path, monkeypatch) as (expected, store, linker):
        queued = len(store.queued_for_refresh())
        write = store.apply_tracking
        writes = 0

        def fails_second(*args: object, **kwargs: object) -> int:
            nonlocal writes
            writes += 1
            if writes == 2:
                raise StorageError("disk full")
            return write(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(store, "apply_tracking", fails_second)
        with pytest.raises(StorageError, match="disk full"):
            linker.flush(now=NOW)
        assert len(store.queued_for_refresh()) == queued - 3  # only the first chunk is done
        assert linker.flush(now=NOW) == queued - 3  # the calls are still in step
        assert store.queued_for_refresh() == {}
        assert state(store) == expected


def test_a_linker_killed_during_a_flush_hands_the_rest_to_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with linked_in_chunks_of_3(tmp_path, monkeypatch) as (expected, store, linker):
        queued = len(store.queued_for_refresh())
        call = linker._call
        plans = 0

        def killed_after_first_plan(*message: object) -> object:
            nonlocal plans
            if message[0] == "flush_next":
                plans += 1
                if plans == 2 and linker._process is not None:
                    os.kill(linker._process.pid or 0, signal.SIGKILL)
                    linker._process.join(10)
            return call(*message)

        monkeypatch.setattr(linker, "_call", killed_after_first_plan)
        assert linker.flush(now=NOW) == queued
        assert linker._fallback is not None
        assert store.queued_for_refresh() == {}
        # the rebuilt index ranks equally similar related records in another order
        unordered = {url: (*values[:4], set(values[4])) for url, values in state(store).items()}
        assert unordered == {url: (*v[:4], set(v[4])) for url, v in expected.items()}


def test_chunks_finished_where_they_are_planned_or_here_end_the_same(tmp_path: Path) -> None:
    """`flush_next(finish=True)` (the linker rescores the chunk itself) and a plan finished
    by the caller give the same updates: any mix of the two ends like `Tracker.flush`."""
    from aggregator.tracking import Tracker

    expected = link_all(f"sqlite:///{tmp_path / 'a.db'}", defer=False)
    url = f"sqlite:///{tmp_path / 'b.db'}"
    with Store(url) as store:
        tracker = Tracker(settings_for(url), store)
        for batch in batches():
            store_and_link(tracker, store, batch, defer=True)
        queued = len(store.queued_for_refresh())
        assert tracker.flush_begin(now=NOW, chunk=2) == queued > 4
        finished_there = 0
        for turn in range(queued):
            plan = tracker.flush_next(finish=turn % 2 == 1)
            if plan is None:
                break
            if plan.updates is not None:
                finished_there += 1
                assert plan.updates == tuple(tracker.finish_refresh(plan).values())
            updates = plan.updates or tuple(tracker.finish_refresh(plan).values())
            store.apply_tracking(list(updates), dequeue=plan.keys)
        assert finished_there >= 2
        assert tracker.flush_next() is None
        assert store.queued_for_refresh() == {}
        assert state(store) == expected


def test_on_postgresql_the_linker_flushes_alone_under_the_linking_lock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Other processes may link beside this one on PostgreSQL: a chunk's plan and write
    must not be split between two processes there, so the whole flush is the linker's."""
    with fresh_database() as reference_url, fresh_database() as url:
        expected = link_all(reference_url, defer=False)
        with Store(url) as store, linker_for(url, store) as linker:
            for batch in batches():
                store_and_link(linker, store, batch, defer=True)
            made = calls_of(linker, monkeypatch)
            assert linker.flush(now=NOW) > 0
            assert made == ["flush"]
            assert store.queued_for_refresh() == {}
            assert state(store) == expected


def test_a_flush_starts_the_process_for_records_a_stopped_crawl_left_unlinked(
    tmp_path: Path,
) -> None:
    """Nothing queued, but records stored without a story: the flush links them there."""
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with Store(url) as store, linker_for(url, store) as linker:
        for batch in batches():
            store.upsert_records(batch)
        assert linker.flush(now=NOW) == len(EVENTS) * len(batches())
        assert linker._process is not None
        assert store.unlinked_ids(100) == []
        assert len(partition(store)) == len(EVENTS)
