"""A process pool for the crawl's CPU-bound work, shared by `aggregator fetch` and the daemon.

    pool  = WorkPool(workers, preload=("aggregator.worktasks",))   nothing starts yet
    value = await pool.run(fn, *args)     fn(*args) in a worker process, awaited on the loop
    pool.close()                          stop the workers (also on errors and on SIGTERM)

With ``workers == 0`` `run` calls ``fn(*args)`` in this process: the reference behaviour, and
the cheapest for a handful of sources. Otherwise the first `run` starts a
`ProcessPoolExecutor` whose workers are forked from a forkserver that has imported `preload`
once: forking the crawling process itself would copy its event loop, its sockets and the
locks of its resolver threads, and spawning each worker would import everything again.

Arguments go in as bytes and frozen values, results come back as frozen values. A task's
exception comes back as itself when it survives pickling (`ParseError` and `ExtractError`
are taught to below), else as a `RuntimeError` naming it, so a bad input never breaks the
pool. A worker that dies (a crash in a C extension, the OOM killer) breaks the executor: the
pool is replaced, and each task that was in flight runs once more, alone in a fresh process,
so only the task that kills its worker fails, with `WorkerCrashError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copyreg
import gc
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import BaseContext
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from aggregator.errors import AggregatorError, ExtractError, ParseError
from aggregator.startup import collect_less_often

log = logging.getLogger(__name__)

T = TypeVar("T")
UrlError = TypeVar("UrlError", ParseError, ExtractError)

OWNER_POLL_SECONDS = 1.0
"""How often a worker checks that the crawling process still runs."""

WORKER_MODULES = ("aggregator.worktasks", "aggregator.feeds", "aggregator.extract")
"""What the forkserver imports once, for every process it forks: the crawl's workers and
linker and the export's helpers alike (whichever starts it first decides for all)."""

MAX_AUTO_WORKERS = 8
"""`default_workers` never picks more: past this the main process is the bottleneck."""


class WorkerCrashError(AggregatorError):
    """A worker process died while running a task; the task's input is the suspect."""


def default_workers() -> int:
    """One worker per CPU, up to `MAX_AUTO_WORKERS`; 0 (in-process) on a single CPU.

    With story linking in a process of its own (`aggregator.linker`), the crawling process
    mostly waits on sockets and workers: on 2 CPUs, 200 outlets with article pages, it was
    idle 38% of the run with one worker, which was busy all along; two workers took the run
    from 40 s to 33 s, three made it slower again (35 s).
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return 0 if cpus <= 1 else min(cpus, MAX_AUTO_WORKERS)


def forkserver_context(preload: Sequence[str]) -> BaseContext:
    """The forkserver context, its server importing "__main__" and `preload` once (the
    first caller to start it decides: give every caller the same list). "__main__" comes
    first: the forkserver runs the entry script once, its forks need not."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(dict.fromkeys(["__main__", *preload])))
    return context


def start_forkserver(preload: Sequence[str]) -> None:
    """Start the forkserver of `forkserver_context(preload)` now, if it is not running:
    its imports then run in the background, and the first worker forks sooner. Cannot
    start processes here (limits, a sandbox): nothing happens, and the first pool to
    start reports it."""
    forkserver_context(preload)
    with contextlib.suppress(OSError):
        multiprocessing.forkserver.ensure_running()


class WorkPool:
    """Runs picklable functions in worker processes (or in-process with 0 workers)."""

    def __init__(self, workers: int, *, preload: Sequence[str] = (), niceness: int = 0) -> None:
        self.workers = workers
        self._preload = list(preload)  # `forkserver_context` puts "__main__" first
        self._niceness = niceness
        self._executor: ProcessPoolExecutor | None = None
        self._starting: asyncio.Task[ProcessPoolExecutor] | None = None
        self._closed = False
        self._alone_slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    @property
    def in_process(self) -> bool:
        """True when tasks run in the calling process."""
        return self.workers == 0

    @property
    def started(self) -> bool:
        """True once worker processes exist (until `close`)."""
        return self._executor is not None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)`, in a worker process unless the pool is in-process."""
        if self.in_process:
            return fn(*args)
        try:
            executor = await self._running_executor()
        except (BrokenProcessPool, OSError) as exc:  # no processes here (limits, sandbox…)
            log.warning("cannot start worker processes, parsing in-process: %s", exc)
            self.workers = 0
            return fn(*args)
        try:
            future = executor.submit(_call, fn, args)
        except (BrokenProcessPool, OSError):
            # Broken by another task's worker. CPython 3.11's submit can also fail with
            # OSError("handle is closed"), writing to the wake-up pipe of a broken executor
            # whose manager thread is closing it.
            self._discard(executor)
            return await self._run_alone(fn, args)
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            self._discard(executor)
            return await self._run_alone(fn, args)

    def start_soon(self) -> None:
        """Start the workers now, in the background, for a caller that knows it will
        need them: the first `run` then finds them ready (or waits for the same start)."""
        if self.in_process or self._closed or self._executor is not None:
            return
        self._start_task()

    def close(self) -> None:
        """Stop the workers: queued tasks are cancelled, running ones finish first."""
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> WorkPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def _running_executor(self) -> ProcessPoolExecutor:
        """The executor, started off the event loop: the first worker waits for the
        forkserver's imports, and the sockets must not wait with it."""
        if self._closed:
            raise RuntimeError("the work pool is closed")
        if self._executor is not None:
            return self._executor
        starting = self._start_task()
        try:
            return await asyncio.shield(starting)
        except Exception:
            if self._starting is starting:  # let the next task try again
                self._starting = None
            raise

    def _start_task(self) -> asyncio.Task[ProcessPoolExecutor]:
        """The start of the executor under way on this loop, begun here if there is none."""
        loop = asyncio.get_running_loop()
        if self._starting is None or self._starting.get_loop() is not loop:
            self._starting = loop.create_task(asyncio.to_thread(self._start_executor))
            self._starting.add_done_callback(_quietly_failed)
        return self._starting

    def _start_executor(self) -> ProcessPoolExecutor:
        executor = self._new_executor(self.workers)
        executor.submit(len, ()).result()  # one worker up: the forkserver is warm
        if self._closed:  # closed while starting
            executor.shutdown(wait=False, cancel_futures=True)
            raise RuntimeError("the work pool is closed")
        self._executor = executor
        return executor

    def _new_executor(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            workers,
            mp_context=self._context(),
            initializer=prepare_worker,
            initargs=(os.getpid(), self._niceness),
        )

    def _context(self) -> BaseContext:
        return forkserver_context(self._preload)

    def _discard(self, executor: ProcessPoolExecutor) -> None:
        """Forget a broken executor; the next `run` starts a fresh one."""
        if self._executor is executor:
            log.warning("a worker process died: replacing the work pool")
            self._executor = self._starting = None
        _kill_workers(executor)
        executor.shutdown(wait=False, cancel_futures=True)

    async def _run_alone(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        """Retry a task whose worker died, alone in a fresh process: only a task that kills
        its worker twice fails, the tasks that were merely in flight beside it succeed."""
        async with self._alone_slot():
            alone = self._new_executor(1)
            try:
                return await asyncio.wrap_future(alone.submit(_call, fn, args))
            except BrokenProcessPool as exc:
                name = getattr(fn, "__qualname__", repr(fn))
                raise WorkerCrashError(f"a worker process died while running {name}") from exc
            finally:
                alone.shutdown(wait=False, cancel_futures=True)

    def _alone_slot(self) -> asyncio.Semaphore:
        """At most `workers` lone retries at once: a pool broken with hundreds of tasks
        queued must not start hundreds of processes."""
        loop = asyncio.get_running_loop()
        if self._alone_slots is None or self._alone_slots[0] is not loop:
            self._alone_slots = (loop, asyncio.Semaphore(max(1, self.workers)))
        return self._alone_slots[1]


def _quietly_failed(starting: asyncio.Task[ProcessPoolExecutor]) -> None:
    """A start ahead of need that failed is reported by the `run` that awaits it; without
    one, say it here rather than as an exception nobody retrieved."""
    if not starting.cancelled() and (exc := starting.exception()) is not None:
        log.debug("starting worker processes ahead of time failed: %s", exc)


def _kill_workers(executor: ProcessPoolExecutor) -> None:
    """SIGKILL the surviving workers of a broken executor. Its manager thread only sends
    SIGTERM, which our workers ignore, and then joins them: without this, that join (and
    the interpreter's exit, which waits for the thread) would hang."""
    processes: dict[int, multiprocessing.process.BaseProcess] = (
        getattr(executor, "_processes", None) or {}
    )
    for process in list(processes.values()):
        if process.is_alive():
            process.kill()


def prepare_worker(owner: int, niceness: int = 0) -> None:
    """Set up a pool worker (its executor's initialiser). Workers leave SIGINT/SIGTERM to
    the crawling process `owner`, which closes the pool itself, and leave when it is gone
    (`exit_with`). A positive `niceness` lowers their CPU priority by that much."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    exit_with(owner)
    keep_inherited_pages_shared()
    if niceness > 0:
        with contextlib.suppress(OSError):  # lowering one's own priority: only where allowed
            os.nice(niceness)


def keep_inherited_pages_shared() -> None:
    """Freeze the objects this process inherited from the forkserver (call first thing in
    a forked child). A full collection writes into the header of every object it scans, so
    each child ended up with a private copy of every page of the modules the forkserver had
    imported for it; frozen objects are never scanned. Splicing the lists is O(1). The
    collector then runs less often, as in the console script (`startup.collect_less_often`)."""
    gc.freeze()
    collect_less_often()


def exit_with(owner: int) -> None:
    """End this process soon after process `owner` ends, killed with -9 included.

    A pool worker waits on a queue whose writing end it holds itself, so it never sees the
    crawl die; it would wait forever, and keep the forkserver alive with it. A thread polls
    `owner` every `OWNER_POLL_SECONDS` instead."""

    def watch() -> None:
        while process_alive(owner):
            time.sleep(OWNER_POLL_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-owner", daemon=True).start()


def process_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its parent to reap it has ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): the signal said it exists
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _call(fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    """Run a task in a worker; an exception that would not unpickle is replaced by one that
    does (an unpicklable result breaks the whole executor, not just the task)."""
    try:
        return fn(*args)
    except Exception as exc:
        raise portable_error(exc) from None


def portable_error(exc: Exception) -> Exception:
    """`exc` itself when it survives pickling, else a `RuntimeError` naming it."""
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own bytes, just made
    except Exception:
        return RuntimeError(f"{exc!r}")
    return exc


def _reduce_url_error(exc: UrlError) -> tuple[type[UrlError], tuple[str, str]]:
    """Pickle our (url, message) errors by their constructor arguments, not their text."""
    return type(exc), (exc.url, exc.message)


copyreg.pickle(ParseError, _reduce_url_error)
copyreg.pickle(ExtractError, _reduce_url_error)
