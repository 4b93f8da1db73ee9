"""Many small calls of one function, sent to a `WorkPool` as a few batch tasks.

    batcher = TaskBatcher(pool, extract_page_task)
    outcome = await batcher.run(body, now)     one call, awaited on its own

A pool task costs ~0.5 ms of plumbing on the crawling process alone (the submit, the queue
feeder and result threads, the future's wake-up) and as much in the worker, whatever the
task does: about half of what extracting one article page costs. The batcher keeps at
most `pool.workers + 1` batches in flight; calls that arrive meanwhile wait here and go
out together in the next batch, so batches grow exactly as large as the pool is slow
(up to `max_batch`) and a pool that keeps up gets every call at once.

Each call keeps its own outcome: a call that raises fails alone. When a worker dies in a
batch (`WorkerCrashError`), the batch's calls run again one by one, so, as without
batching, only the call that kills its worker fails.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aggregator.workpool import WorkerCrashError, WorkPool, portable_error

T = TypeVar("T")

MAX_BATCH = 16
"""Calls per batch at most: a batch's first results wait for its last."""


@dataclass(frozen=True, slots=True)
class _Failed:
    """A call's exception, standing in for its result in a batch's results."""

    error: Exception


def call_each(fn: Callable[..., T], calls: Sequence[tuple[Any, ...]]) -> list[T | _Failed]:
    """`fn(*args)` for each of `calls`, in a worker: each result, or the exception it
    raised (made picklable), so one failing call does not fail its batch."""
    results: list[T | _Failed] = []
    for args in calls:
        try:
            results.append(fn(*args))
        except Exception as exc:
            results.append(_Failed(portable_error(exc)))
    return results


_Waiting = tuple[tuple[Any, ...], "asyncio.Future[Any]"]


class TaskBatcher(Generic[T]):
    """Runs calls of `fn` in `pool`, several to a task (see the module docstring).

    Use it from one event loop; an in-process pool runs each call at once, here."""

    def __init__(self, pool: WorkPool, fn: Callable[..., T], *, max_batch: int = MAX_BATCH):
        self._pool = pool
        self._fn = fn
        self._max_batch = max_batch
        self._waiting: deque[_Waiting] = deque()
        self._in_flight = 0
        self._tasks: set[asyncio.Future[None]] = set()

    async def run(self, *args: Any) -> T:
        """`fn(*args)`, run in the pool with whatever other calls are waiting."""
        if self._pool.in_process:
            return self._fn(*args)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((args, future))
        self._dispatch()
        return await future

    def _dispatch(self) -> None:
        while self._waiting and self._in_flight < self._pool.workers + 1:
            batch: list[_Waiting] = []
            while self._waiting and len(batch) < self._max_batch:
                args, future = self._waiting.popleft()
                if not future.done():  # its caller was cancelled meanwhile
                    batch.append((args, future))
            if batch:
                self._in_flight += 1
                task = asyncio.ensure_future(self._run_batch(batch))
                self._tasks.add(task)  # the loop keeps only a weak reference
                task.add_done_callback(self._tasks.discard)

    async def _run_batch(self, batch: list[_Waiting]) -> None:
        try:
            results = await self._results(tuple(args for args, _ in batch))
            for (_, future), result in zip(batch, results, strict=True):
                _settle(future, result)
        finally:  # cancelled with the loop: so are the calls still waiting on this batch
            for _, future in batch:
                if not future.done():
                    future.cancel()
            self._in_flight -= 1
            self._dispatch()

    async def _results(self, calls: tuple[tuple[Any, ...], ...]) -> list[T | _Failed]:
        try:
            return await self._pool.run(call_each, self._fn, calls)
        except WorkerCrashError:
            return await self._one_by_one(calls)
        except Exception as exc:  # the batch as a whole failed (the pool was closed…)
            return [_Failed(exc)] * len(calls)

    async def _one_by_one(self, calls: Sequence[tuple[Any, ...]]) -> list[T | _Failed]:
        """Each call of a batch whose worker died, alone, so only the culprit fails."""
        outcomes = await asyncio.gather(
            *(self._pool.run(self._fn, *args) for args in calls), return_exceptions=True
        )
        results: list[T | _Failed] = []
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                results.append(_Failed(outcome))
            elif isinstance(outcome, BaseException):  # cancelled
                raise outcome
            else:
                results.append(outcome)
        return results


def _settle(future: asyncio.Future[Any], result: object) -> None:
    if future.done():
        return
    if isinstance(result, _Failed):
        future.set_exception(result.error)
    else:
        future.set_result(result)
