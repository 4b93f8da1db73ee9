"""The crawl's process pool: results and errors cross the process boundary intact, a dead
worker costs only its own task, and the pool size comes from `fetch.parse_workers`."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aggregator.errors import ConfigError, ExtractError, ParseError
from aggregator.pipeline import WORKER_MODULES, WORKER_NICENESS, crawl_pool
from aggregator.settings import parse_settings
from aggregator.workpool import (
    MAX_AUTO_WORKERS,
    OWNER_POLL_SECONDS,
    WorkerCrashError,
    WorkPool,
    default_workers,
    process_alive,
)
from aggregator.worktasks import PageBody, extract_page_task, parse_feed_task
from tests.loopback import REPO_ROOT

FEED_URL = "https://feeds.example/main.xml"
NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)


class UnpicklableError(Exception):
    """An exception whose constructor does not match its args: unpickling it fails."""

    def __init__(self, first: str, second: str) -> None:
        super().__init__(f"{first} and {second}")


def raise_unpicklable() -> None:
    raise UnpicklableError("one", "two")


@pytest.fixture
def pool() -> Iterator[WorkPool]:
    with WorkPool(2, preload=WORKER_MODULES) as work_pool:
        yield work_pool


def test_tasks_run_in_worker_processes(pool: WorkPool) -> None:
    async def pids() -> list[int]:
        return list(await asyncio.gather(*(pool.run(os.getpid) for _ in range(4))))

    found = asyncio.run(pids())
    assert pool.started
    assert os.getpid() not in found


def test_in_process_pool_runs_here_and_starts_nothing() -> None:
    pool = WorkPool(0)
    assert asyncio.run(pool.run(os.getpid)) == os.getpid()
    assert pool.in_process and not pool.started


def test_a_bad_feed_fails_with_the_same_error_as_in_process(pool: WorkPool) -> None:
    with pytest.raises(ParseError) as in_process:
        parse_feed_task(b"<html><body>no feed</body></html>", FEED_URL, {})
    with pytest.raises(ParseError) as in_worker:
        asyncio.run(pool.run(parse_feed_task, b"<html><body>no feed</body></html>", FEED_URL, {}))
    assert str(in_worker.value) == str(in_process.value)
    assert (in_worker.value.url, in_worker.value.message) == (FEED_URL, in_process.value.message)
    assert asyncio.run(pool.run(pow, 2, 10)) == 1024  # the pool survived


def test_a_page_that_is_not_html_is_skipped_not_retried(pool: WorkPool) -> None:
    body = PageBody("https://site.example/a", b'{"json": true}', {"content-type": "text/html"})
    outcome = asyncio.run(pool.run(extract_page_task, body, NOW))
    assert outcome == extract_page_task(body, NOW)
    assert outcome.page is None and not outcome.retry and outcome.skipped


def test_our_errors_pickle_by_their_constructor_arguments() -> None:
    for error in (ParseError(FEED_URL, "not a feed"), ExtractError(FEED_URL, "binary")):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)


def test_an_unpicklable_exception_comes_back_as_a_runtime_error(pool: WorkPool) -> None:
    with pytest.raises(RuntimeError, match="UnpicklableError"):
        asyncio.run(pool.run(raise_unpicklable))
    assert asyncio.run(pool.run(pow, 3, 2)) == 9  # the executor is not broken


def test_a_dying_worker_fails_only_its_own_task(pool: WorkPool) -> None:
    async def crash_beside_others() -> list[object]:
        tasks = [pool.run(os._exit, 3), *(pool.run(pow, 2, n) for n in range(6))]
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    crashed, *others = asyncio.run(crash_beside_others())
    assert isinstance(crashed, WorkerCrashError)
    assert "died" in str(crashed)
    assert others == [2**n for n in range(6)]
    assert asyncio.run(pool.run(pow, 2, 5)) == 32  # replaced, and working


class PoolWithARacingSubmit(WorkPool):
    """Its worker pool's first task submission fails as CPython 3.11's can while the pool
    breaks: the manager thread closes the wake-up pipe that `submit` writes to."""

    failed = False

    def _new_executor(self, workers: int) -> ProcessPoolExecutor:
        executor = super()._new_executor(workers)
        if workers > 1:
            submit = executor.submit

            def racing_submit(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
                if fn is not len and not self.failed:  # len: the warm-up task
                    self.failed = True
                    raise OSError("handle is closed")
                return submit(fn, *args, **kwargs)

            executor.submit = racing_submit  # type: ignore[method-assign]
        return executor


def test_a_task_that_cannot_be_submitted_to_a_breaking_pool_still_runs() -> None:
    # Seen in CI: a task beside one that killed its worker failed with this OSError.
    with PoolWithARacingSubmit(2, preload=WORKER_MODULES) as pool:
        assert asyncio.run(pool.run(pow, 2, 5)) == 32
        assert not pool.started  # the pool was discarded
        assert asyncio.run(pool.run(pow, 2, 6)) == 64  # and a fresh one started
        assert pool.started


def note_interval(log: str, seconds: float) -> None:
    """Append this task's (start, end) times to `log` (one line per task, O_APPEND)."""
    import time

    start = time.monotonic()
    time.sleep(seconds)
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"{start} {time.monotonic()}\n")


def test_retries_after_a_crash_run_at_most_workers_at_once(pool: WorkPool, tmp_path: Path) -> None:
    log = str(tmp_path / "intervals")

    async def crash_with_a_queue() -> list[object]:
        tasks = [pool.run(os._exit, 3), *(pool.run(note_interval, log, 0.1) for _ in range(12))]
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    crashed, *others = asyncio.run(crash_with_a_queue())
    assert isinstance(crashed, WorkerCrashError) and others == [None] * 12
    intervals = [tuple(map(float, line.split())) for line in Path(log).read_text().splitlines()]
    most_at_once = max(sum(1 for s, e in intervals if s <= t < e) for t, _ in intervals)
    # a task whose result the broken pool lost runs again (tasks are pure), and the old
    # pool's surviving worker may still finish its task beside the lone retries
    assert len(intervals) >= 12 and most_at_once <= 2 * pool.workers


def test_a_closed_pool_refuses_work() -> None:
    pool = WorkPool(1, preload=WORKER_MODULES)
    assert asyncio.run(pool.run(pow, 2, 2)) == 4
    pool.close()
    assert not pool.started
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(pool.run(pow, 2, 2))


def own_niceness() -> int:
    return os.nice(0)


def test_the_crawl_pool_runs_its_workers_at_a_lower_priority() -> None:
    """Parse workers yield the CPU to the linker and the crawling process; the crawling
    process itself keeps its priority."""
    here = os.nice(0)
    with crawl_pool(parse_settings({"fetch": {"parse_workers": 2}})) as crawl_workers:
        found = asyncio.run(crawl_workers.run(own_niceness))
    assert found == min(19, here + WORKER_NICENESS) > here
    assert os.nice(0) == here
    with WorkPool(1, preload=WORKER_MODULES) as plain:
        assert asyncio.run(plain.run(own_niceness)) == here


def young_collection_threshold() -> int:
    import gc

    return gc.get_threshold()[0]


def test_workers_collect_the_young_generation_less_often(pool: WorkPool) -> None:
    """A worker builds and drops many short-lived objects: it raises the threshold of its
    young collections, as the console script does, whatever this process runs with."""
    from aggregator.startup import YOUNG_COLLECTION_THRESHOLD

    assert young_collection_threshold() < YOUNG_COLLECTION_THRESHOLD  # pytest: left alone
    found = asyncio.run(pool.run(young_collection_threshold))
    assert found == YOUNG_COLLECTION_THRESHOLD


def test_pool_size_comes_from_parse_workers() -> None:
    assert crawl_pool(parse_settings({"fetch": {"parse_workers": 0}})).in_process
    assert crawl_pool(parse_settings({"fetch": {"parse_workers": 3}})).workers == 3
    assert crawl_pool(parse_settings({})).workers == default_workers()
    cpus = len(os.sched_getaffinity(0))
    assert default_workers() == (0 if cpus == 1 else min(cpus, MAX_AUTO_WORKERS))


def test_a_bad_parse_workers_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^fetch\.parse_workers: "):
        parse_settings({"fetch": {"parse_workers": -1}})


_OWNER_SCRIPT = """
import asyncio, os, time
from aggregator.pipeline import WORKER_MODULES
from aggregator.workpool import WorkPool
pool = WorkPool(1, preload=WORKER_MODULES)
print(asyncio.run(pool.run(os.getpid)), flush=True)
time.sleep(600)
"""


def test_a_worker_exits_when_the_crawling_process_is_killed() -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER_SCRIPT], cwd=REPO_ROOT, stdout=subprocess.PIPE
    )
    assert owner.stdout is not None
    worker = int(owner.stdout.readline())
    assert process_alive(worker)
    owner.send_signal(signal.SIGKILL)
    owner.wait(10)
    deadline = time.monotonic() + 10 * OWNER_POLL_SECONDS
    while process_alive(worker):
        assert time.monotonic() < deadline, f"worker {worker} outlived the crawling process"
        time.sleep(0.05)


def test_start_soon_starts_the_workers_in_the_background() -> None:
    async def started_then_ran(pool: WorkPool) -> tuple[bool, int]:
        pool.start_soon()
        pool.start_soon()  # already starting: the same start
        deadline = time.monotonic() + 30
        while not pool.started and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return pool.started, await pool.run(os.getpid)

    with WorkPool(1, preload=WORKER_MODULES) as pool:
        started, pid = asyncio.run(started_then_ran(pool))
    assert started and pid != os.getpid()
    in_process = WorkPool(0)
    asyncio.run(_start_soon(in_process))
    assert not in_process.started
    closed = WorkPool(1, preload=WORKER_MODULES)
    closed.close()
    asyncio.run(_start_soon(closed))
    assert not closed.started


async def _start_soon(pool: WorkPool) -> None:
    pool.start_soon()
    await asyncio.sleep(0.05)


_NEW_STORE_SCRIPT = """
import os, sys
from aggregator.pipeline import start_workers_for_new_store
from aggregator.settings import parse_settings
settings = parse_settings({
    "storage": {"url": "sqlite:///" + sys.argv[1]},
    "fetch": {"parse_workers": int(sys.argv[2])},
    "sources": [{"name": "one", "url": "http://127.0.0.1:9/feed.xml"}],
})
start_workers_for_new_store(settings)
children = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/stat") as stat, open(f"/proc/{pid}/cmdline", "rb") as cmd:
            if int(stat.read().rpartition(")")[2].split()[1]) == os.getpid():
                children.append(cmd.read().decode(errors="replace"))
    except OSError:
        pass
print(sum("forkserver" in command for command in children))
"""


@pytest.mark.parametrize(
    ("store_exists", "parse_workers", "forkservers"),
    [(False, 1, 1), (True, 1, 0), (False, 0, 0)],
)
def test_the_first_crawl_of_a_new_store_starts_the_forkserver_before_the_store(
    tmp_path: Path, store_exists: bool, parse_workers: int, forkservers: int
) -> None:
    """A crawl into a store not created yet will parse every feed in workers: their
    forkserver starts before the store opens. An existing store, or a crawl without
    worker processes, starts nothing until a feed has changed."""
    database = tmp_path / "aggregator.db"
    if store_exists:
        database.write_bytes(b"")
    done = subprocess.run(
        [sys.executable, "-c", _NEW_STORE_SCRIPT, str(database), str(parse_workers)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == [str(forkservers)]
    assert database.exists() == store_exists  # starting workers creates no store
