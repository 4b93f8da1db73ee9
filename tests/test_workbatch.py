"""Batched pool calls: every call gets its own result or its own error, in far fewer
tasks than calls, and a call that kills its worker fails alone, as without batching."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from aggregator.pipeline import WORKER_MODULES
from aggregator.workbatch import TaskBatcher
from aggregator.workpool import WorkerCrashError, WorkPool

T = TypeVar("T")


class CountingPool(WorkPool):
    """A real pool that counts the tasks it is given."""

    tasks = 0

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        self.tasks += 1
        return await super().run(fn, *args)


def square_or_fail(n: int) -> int:
    if n == 7:
        raise ValueError("seven is refused")
    if n == 13:
        os._exit(3)  # as a crash in a C extension would
    return n * n


@pytest.fixture
def pool() -> Iterator[CountingPool]:
    with CountingPool(2, preload=WORKER_MODULES) as work_pool:
        yield work_pool


def run_all(pool: WorkPool, numbers: list[int]) -> list[object]:
    async def main() -> list[object]:
        batcher = TaskBatcher(pool, square_or_fail)
        calls = [batcher.run(n) for n in numbers]
        return list(await asyncio.gather(*calls, return_exceptions=True))

    return asyncio.run(main())


def test_each_call_gets_its_result_in_far_fewer_tasks(pool: CountingPool) -> None:
    numbers = [n for n in range(200) if n not in (7, 13)]
    assert run_all(pool, numbers) == [n * n for n in numbers]
    assert pool.tasks <= 200 // 4  # at most workers + 1 batches of one before they grow


def test_a_failing_call_fails_alone(pool: CountingPool) -> None:
    results = run_all(pool, list(range(12)))
    failed = results.pop(7)
    assert isinstance(failed, ValueError) and "seven" in str(failed)
    assert results == [n * n for n in range(12) if n != 7]


def test_a_call_that_kills_its_worker_fails_alone(pool: CountingPool) -> None:
    numbers = [n for n in range(40) if n != 7]
    results = run_all(pool, numbers)
    crashed = results.pop(numbers.index(13))
    assert isinstance(crashed, WorkerCrashError)
    assert results == [n * n for n in numbers if n != 13]
    assert run_all(pool, [3]) == [9]  # the pool was replaced and works


def test_an_in_process_pool_runs_each_call_here() -> None:
    pool = CountingPool(0)
    assert run_all(pool, [2, 7, 3])[0::2] == [4, 9]
    assert pool.tasks == 0 and not pool.started


def note_and_square(log: str, n: int) -> int:
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"{n}\n")
    return n * n


def test_a_cancelled_call_is_not_run_and_the_others_are(pool: CountingPool, tmp_path: Path) -> None:
    log = str(tmp_path / "ran")

    async def main() -> tuple[list[int], bool]:
        batcher = TaskBatcher(pool, note_and_square)
        first = [asyncio.ensure_future(batcher.run(log, n)) for n in range(3)]  # fill the pool
        doomed = asyncio.ensure_future(batcher.run(log, 99))  # waits for a batch
        later = [asyncio.ensure_future(batcher.run(log, n)) for n in range(20, 24)]
        await asyncio.sleep(0)
        doomed.cancel()
        done = await asyncio.gather(*first, *later)
        return list(done), doomed.cancelled()

    results, cancelled = asyncio.run(main())
    assert cancelled
    assert results == [0, 1, 4, 400, 441, 484, 529]
    ran = sorted(int(line) for line in Path(log).read_text().split())
    assert ran == [0, 1, 2, 20, 21, 22, 23]
