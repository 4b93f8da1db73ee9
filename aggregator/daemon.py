"""`aggregator run`: the long-running daemon that runs the scheduled jobs (APScheduler 3.x).

    lock data_dir/daemon.lock (flock)     a second daemon is refused: exit status 2
    open the store and the work pool (parsers, started by the first crawl that needs one);
    start the webhook dispatcher (when a topic has webhooks) and, with
    --http HOST:PORT, the export server (/healthz, /readyz fed by the last crawl tick, /metrics)
    every job (jobs/registry.py) on an interval, on the asyncio loop, timed into
    metrics.observe_job:
        crawl      due sources → pipeline.crawl (the same unit of work as `aggregator fetch`;
                   the pipeline stores each source's adaptive next check)
        export     the export tree and feeds, when records changed (debounced)
        prune      records past retention, and their files
        heartbeat  data_dir/daemon.heartbeat.json
    SIGTERM/SIGINT → stop launching jobs, let running ones finish within the grace period
                     (a second signal cancels them at once), close the store, exit 0

Each job runs alone (max_instances=1, coalesce=True); a failing job is logged and runs again
on its next tick. Schedule state (each source's next_check_at, claims) lives in the database,
so a restarted daemon resumes where the last one stopped.

`run_command` is the composition root: the one place in `aggregator` that reaches into
`jobs` (lazily), because it must hand the scheduler the job list.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from aggregator import metrics
from aggregator.cli_options import ConfigOption
from aggregator.dates import Clock, utc_now
from aggregator.errors import AggregatorError
from aggregator.locks import DaemonLock, process_owner
from aggregator.pipeline import crawl_linker, crawl_pool
from aggregator.serve import Readiness, build_app, is_loopback, parse_listen, start_http
from aggregator.settings import Settings, load_settings
from aggregator.sources import effective_settings
from aggregator.store import Store
from aggregator.tracking import Linker
from aggregator.webhooks import WebhookDispatcher
from aggregator.workpool import WorkPool

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_USAGE = 2


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    """The `scheduler:` section of the config. Durations in seconds."""

    crawl_tick: float = 30.0  # how often due sources are looked for
    export_debounce: float = 30.0  # at most one export per this many seconds
    prune_every: float = 6 * 3600.0
    retention_days: float | None = 90.0  # records older than this are pruned; None keeps all
    heartbeat_every: float = 60.0
    grace_period: float = 20.0  # how long running jobs may finish after SIGTERM
    misfire_grace_time: float = 60.0  # a job that could not start on time runs if this late

    @classmethod
    def from_settings(cls, settings: Settings) -> DaemonSettings:
        """Read `settings.scheduler` when the config has one (same field names), else defaults."""
        section = getattr(settings, "scheduler", None)
        if section is None:
            return cls()
        values = section.model_dump() if hasattr(section, "model_dump") else dict(section)
        names = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in names})


@dataclass(frozen=True, slots=True)
class JobContext:
    """What every job receives: settings passed in, the open store, and the stop flag."""

    settings: Settings
    daemon: DaemonSettings
    store: Store
    owner: str  # the claim owner of this daemon
    stopping: asyncio.Event  # set on SIGTERM: claim no new work
    clock: Clock = utc_now
    webhooks: WebhookDispatcher | None = None  # new published records → topic webhooks
    pool: WorkPool | None = None  # parses for every crawl tick (the daemon's lifetime)
    tracker: Linker | None = None  # links every tick, keeping its story index


JobFunc = Callable[[JobContext], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job: its name, its coroutine, and its interval in seconds."""

    name: str
    func: JobFunc
    every: float


Listen = tuple[str, int]


def lock_path(settings: Settings) -> Path:
    """The daemon lock file of the data directory."""
    return Path(settings.data_dir) / "daemon.lock"


class Daemon:
    """Runs `jobs` on their intervals until `request_stop`, holding the data-dir lock."""

    def __init__(
        self,
        settings: Settings,
        daemon: DaemonSettings,
        jobs: Sequence[JobSpec],
        *,
        clock: Clock = utc_now,
        http: Listen | None = None,
    ) -> None:
        self.settings = settings
        self.daemon = daemon
        self.jobs = list(jobs)
        self.clock = clock
        self.http = http
        self.owner = process_owner("daemon")
        self.stopping = asyncio.Event()
        self.last_crawl: datetime | None = None  # end of the last crawl tick that succeeded
        self._running: set[asyncio.Task[None]] = set()

    def request_stop(self) -> None:
        """First call: stop launching jobs and drain. Second call: cancel running jobs."""
        if self.stopping.is_set():
            log.warning("second stop request: cancelling %d running job(s)", len(self._running))
            for task in list(self._running):
                task.cancel()
            return
        log.info("stopping: no new work; running jobs get %.0fs", self.daemon.grace_period)
        self.stopping.set()

    async def run(self) -> None:
        """Lock, open the store, run the jobs until stopped, drain; raises LockHeldError."""
        lock = DaemonLock(lock_path(self.settings), self.settings.data_dir)
        with lock:
            storage = self.settings.storage
            store = Store(storage.url, busy_timeout_seconds=storage.busy_timeout_seconds)
            with store:
                sources = len(effective_settings(self.settings, store).sources)
                with (
                    crawl_pool(self.settings) as pool,
                    crawl_linker(self.settings, store, sources) as tracker,
                ):
                    await self._serve(store, pool, tracker)
        log.info("daemon stopped")

    async def _serve(self, store: Store, pool: WorkPool, tracker: Linker) -> None:
        async with contextlib.AsyncExitStack() as services:
            webhooks = await self._start_webhooks(services)
            await self._start_http(services)
            context = JobContext(
                self.settings, self.daemon, store, self.owner, self.stopping, self.clock
            )
            await self._run_until_stopped(
                replace(context, webhooks=webhooks, pool=pool, tracker=tracker)
            )

    async def _run_until_stopped(self, context: JobContext) -> None:
        scheduler = self._start_scheduler(context)
        log.info("daemon %s running %d job(s)", self.owner, len(self.jobs))
        await self.stopping.wait()
        scheduler.pause()
        await self._drain()
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0)  # let the scheduler's shutdown callback run

    async def _start_webhooks(
        self, services: contextlib.AsyncExitStack
    ) -> WebhookDispatcher | None:
        if not any(topic.webhooks for topic in self.settings.topics):
            return None
        dispatcher = WebhookDispatcher(self.settings)
        await dispatcher.start()
        services.push_async_callback(dispatcher.close, self.daemon.grace_period)
        return dispatcher

    async def _start_http(self, services: contextlib.AsyncExitStack) -> None:
        """Serve exports, /healthz, /readyz (last crawl tick) and /metrics until stopped."""
        if self.http is None:
            return
        host, port = self.http
        max_age = max(timedelta(hours=1), timedelta(seconds=10 * self.daemon.crawl_tick))
        readiness = Readiness(heartbeat=lambda: self.last_crawl, max_age=max_age)
        export_dir = Path(self.settings.export.dir)
        app = build_app(export_dir, self.settings.storage.url, readiness=readiness)
        try:
            runner = await start_http(app, host, port)
        except OSError as exc:
            raise AggregatorError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        services.push_async_callback(runner.cleanup)
        log.info("serving %s on http://%s:%d/", export_dir, host, port)

    def _start_scheduler(self, context: JobContext) -> AsyncIOScheduler:
        scheduler = AsyncIOScheduler(timezone=UTC)
        start = datetime.now(UTC)
        for spec in self.jobs:
            scheduler.add_job(
                self._run_job,
                IntervalTrigger(seconds=spec.every, timezone=UTC),
                args=(spec, context),
                id=spec.name,
                name=spec.name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, round(self.daemon.misfire_grace_time)),
                next_run_time=start,
            )
        scheduler.start()
        return scheduler

    async def _run_job(self, spec: JobSpec, context: JobContext) -> None:
        if self.stopping.is_set():
            return
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        started, failed = time.monotonic(), True
        try:
            await spec.func(context)
            failed = False
        except AggregatorError as exc:
            log.error("job %s failed: %s", spec.name, exc)
        except Exception:  # a bug: log it loudly, keep the daemon alive
            log.exception("bug in job %s", spec.name)
        finally:
            self._running.discard(task)
            metrics.observe_job(spec.name, time.monotonic() - started, failed)
        if spec.name == "crawl" and not failed:
            self.last_crawl = self.clock()

    async def _drain(self) -> None:
        pending = {task for task in self._running if not task.done()}
        if not pending:
            return
        log.info("waiting for %d running job(s)", len(pending))
        _, late = await asyncio.wait(pending, timeout=self.daemon.grace_period)
        if late:
            log.warning("cancelling %d job(s) still running after the grace period", len(late))
            for task in late:
                task.cancel()
            await asyncio.wait(late, timeout=5)


async def serve(settings: Settings, daemon: DaemonSettings, http: Listen | None = None) -> None:
    """Run the daemon with the default jobs until SIGTERM or SIGINT."""
    from jobs.registry import default_jobs  # the composition root (see the module docstring)

    runner = Daemon(settings, daemon, default_jobs(daemon, settings), http=http)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, runner.request_stop)
    try:
        await runner.run()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def run_process(
    config: Path | None, daemon: DaemonSettings | None = None, http: Listen | None = None
) -> int:
    """Load the config and serve until stopped; return the exit status (2: cannot start)."""
    _configure_logging()
    try:
        settings = load_settings(config)
        asyncio.run(serve(settings, daemon or DaemonSettings.from_settings(settings), http))
    except AggregatorError as exc:  # bad config, lock held, storage unusable
        typer.echo(f"error: {exc}", err=True)
        return EXIT_USAGE
    return EXIT_OK


def _configure_logging() -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for name in ("aggregator", "jobs"):
        logging.getLogger(name).setLevel(logging.INFO)
    # "skipped: maximum number of running instances reached" is the no-overlap rule working
    logging.getLogger("apscheduler").setLevel(logging.ERROR)


def run_command(
    config: ConfigOption = None,
    http: Annotated[
        str | None,
        typer.Option(
            "--http", help="Also serve exports, /healthz, /readyz, /metrics on HOST:PORT."
        ),
    ] = None,
    public: Annotated[
        bool, typer.Option("--public", help="Allow --http on a non-loopback address.")
    ] = False,
) -> None:
    """Run the daemon: crawl due sources, export, prune and heartbeat until SIGTERM.

    Only one daemon may own a data directory (exit status 2 otherwise); `aggregator fetch`
    may run beside it and skips the sources the daemon is crawling at that moment.

    Example: aggregator run --config config.yaml --http 127.0.0.1:8080
    """
    raise typer.Exit(run_process(config, http=_listen_or_exit(http, public)))


def _listen_or_exit(value: str | None, public: bool) -> Listen | None:
    if value is None:
        return None
    try:
        host, port = parse_listen(value)
    except ValueError as exc:
        typer.echo(f"error: --http: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    if not public and not is_loopback(host):
        typer.echo(f"error: --http: {host} is not a loopback address; add --public", err=True)
        raise typer.Exit(EXIT_USAGE)
    return host, port


if __name__ == "__main__":
    typer.run(run_command)
