"""Stored batches linked one after another, the ones that waited written together.

    batcher = LinkBatcher(tracker, link_thread)
    await batcher.link(records, now=now, features=features)    once they are linked

A crawl stores each source's records, then links them before it saves the source's state
(a killed crawl fetches again a source whose records were not linked). Linking runs one
call at a time in one thread (and, behind it, in the linker process), and each call used to
be a write transaction of its own (`Store.apply_links`): on the bench, ~5 ms of the
linker's CPU for a source's 30 records, plus a wait for SQLite's write lock, which the
crawling process takes as often. Batches that arrive while a call runs wait here, and the
next call takes them all (up to `MAX_RECORDS` records): `Tracker.after_upsert_many` links
them batch by batch, exactly as calls one by one would, and writes them in one transaction.
(Linking their records together, in one time order, made worse stories on the bench corpus:
see docs/benchmarks.md.)

A merged call that fails is run again batch by batch, so a batch that cannot be linked
fails alone, as it would without merging. A batch whose caller was cancelled while it
waited is dropped, as a job still queued in the thread was before.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aggregator.models import Record
    from aggregator.stories import LinkFeatures
    from aggregator.tracking import Linker

MAX_RECORDS = 600
"""Records linked in one call at most: about twenty sources' batches on the bench."""


@dataclass(frozen=True, slots=True)
class LinkBatch:
    """One source's stored records to link, with their features (in order; may be empty)
    and the time of the crawl that stored them."""

    records: Sequence[Record]
    now: datetime
    features: Sequence[LinkFeatures] = ()


_Waiting = tuple[LinkBatch, "asyncio.Future[None]"]  # a batch and its caller's future


class LinkBatcher:
    """Links stored batches through `tracker`, in `thread`, writing those that waited
    together (see the module docstring). Use it from one event loop."""

    def __init__(self, tracker: Linker, thread: Executor, *, max_records: int = MAX_RECORDS):
        self._tracker = tracker
        self._thread = thread
        self._max_records = max_records
        self._waiting: deque[_Waiting] = deque()
        self._drainer: asyncio.Task[None] | None = None

    async def link(
        self, records: Sequence[Record], *, now: datetime, features: Sequence[LinkFeatures]
    ) -> None:
        """Link `records` (stored; `features` theirs, in order, or none), deferring their
        refresh as a crawl does; returns once they are linked and written."""
        if not records:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((LinkBatch(records, now, features), done))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.ensure_future(self._drain())
        await done

    async def _drain(self) -> None:
        try:
            while self._waiting:
                taken = self._next_call()
                if taken:
                    await self._link_together(taken)
        except BaseException:  # cancelled with the loop: so is every caller still waiting
            while self._waiting:
                self._waiting.popleft()[1].cancel()
            raise

    def _next_call(self) -> list[_Waiting]:
        """The waiting batches the next call takes: at least one, up to `max_records`."""
        taken: list[_Waiting] = []
        size = 0
        while self._waiting:
            batch, done = self._waiting[0]
            if taken and size + len(batch.records) > self._max_records:
                break
            self._waiting.popleft()
            if not done.done():  # its caller was cancelled meanwhile
                taken.append((batch, done))
                size += len(batch.records)
        return taken

    async def _link_together(self, taken: list[_Waiting]) -> None:
        try:
            await self._call([batch for batch, _ in taken])
        except Exception as exc:
            if len(taken) == 1:
                _settle(taken[0][1], exc)
                return
            for one in taken:  # which one cannot be linked: each alone
                await self._link_together([one])
            return
        except BaseException:  # cancelled with the loop: so are its callers
            for _, done in taken:
                done.cancel()
            raise
        for _, done in taken:
            _settle(done, None)

    async def _call(self, batches: list[LinkBatch]) -> None:
        loop = asyncio.get_running_loop()
        if len(batches) == 1:
            one = batches[0]
            link = partial(
                self._tracker.after_upsert, one.records, now=one.now, features=one.features,
                defer=True,
            )  # fmt: skip
            await loop.run_in_executor(self._thread, link)
            return
        await loop.run_in_executor(self._thread, self._tracker.after_upsert_many, batches)


def _settle(done: asyncio.Future[None], error: Exception | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
