"""A distributed-mode cluster on one machine, for tests and bench/bench_workers.py.

One scheduler (`python -m aggregator.daemon`) and N workers (`python -m
aggregator.distributed`), all subprocesses against one PostgreSQL database, crawling a
generated corpus served on loopback by `SlowWeb` (article pages answer after a delay, so a
worker can be killed in the middle of a job).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from sqlalchemy import create_engine, text

from tests.loopback import REPO_ROOT, StaticWeb


class SlowWeb(StaticWeb):
    """`StaticWeb` whose .html pages answer after `page_delay` seconds."""

    def __init__(self, root: Path, hosts: list[str], port: int, page_delay: float) -> None:
        super().__init__(root, hosts, port)
        self.page_delay = page_delay

    async def _start(self) -> None:
        @web.middleware
        async def slow(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            if request.path.endswith(".html"):
                await asyncio.sleep(self.page_delay)
            return await handler(request)

        app = web.Application(middlewares=[slow])
        app.on_response_prepare.append(self._log)
        app.router.add_static("/", self.root, show_index=False)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        for host in self.hosts:
            await web.TCPSite(self._runner, host, self.port).start()

    def feed_fetches(self) -> dict[str, int]:
        """host → how many times its feed was fetched (any status)."""
        counts: dict[str, int] = {}
        for host, path, _ in self.requests:
            if path.endswith("feed.xml"):
                counts[host] = counts.get(host, 0) + 1
        return counts


def cluster_config(tmp_path: Path, corpus: Path, storage_url: str, **scheduler: Any) -> Path:
    """A distributed-mode config for the corpus (fast ticks, quick stalled-job recovery)."""
    feeds = (corpus / "feeds.txt").read_text().split()
    config = {
        "data_dir": str(tmp_path / "data"),
        "storage": {"url": storage_url},
        "fetch": {"allow_private_networks": True, "retries": 0, "per_host_concurrency": 4},
        "export": {"dir": str(tmp_path / "export"), "formats": ["jsonl"]},
        "sources": [{"name": f"outlet {i}", "url": url} for i, url in enumerate(feeds)],
        "scheduler": {
            "mode": "distributed",
            "crawl_tick": 0.5,
            "stalled_after": 2,
            "per_host_per_tick": 100,
            "export_debounce": 3600,
            **scheduler,
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def spawn(module: str, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Run `python -m module args…` from the repository root, output into `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args], cwd=REPO_ROOT, stdout=out, stderr=out
        )


def start_scheduler(config: Path, logs: Path) -> subprocess.Popen[bytes]:
    """`aggregator run` (distributed mode: it only queues jobs)."""
    return spawn("aggregator.daemon", ["--config", str(config)], logs / "scheduler.log")


def start_worker(
    config: Path, logs: Path, index: int, concurrency: int = 1
) -> subprocess.Popen[bytes]:
    """`aggregator worker --concurrency N`."""
    args = ["--config", str(config), "--concurrency", str(concurrency)]
    return spawn("aggregator.distributed", args, logs / f"worker{index}.log")


def stop(processes: list[subprocess.Popen[bytes]], timeout: float = 20) -> None:
    """SIGTERM every live process, then wait (kill what does not stop)."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(condition: Callable[[], bool], timeout: float = 60.0, every: float = 0.1) -> None:
    """Poll `condition` until true; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(every)


def job_rows(storage_url: str) -> list[dict[str, Any]]:
    """Every procrastinate job: id, source, status, attempts."""
    engine = create_engine(storage_url)
    try:
        with engine.connect() as connection:
            if not connection.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar():
                return []
            rows = connection.execute(
                text("SELECT id, args->>'source_name', status, attempts FROM procrastinate_jobs")
            )
            return [{"id": r[0], "source": r[1], "status": r[2], "attempts": r[3]} for r in rows]
    finally:
        engine.dispose()


def all_done(storage_url: str, sources: int) -> bool:
    """True when every source has a finished job and none is queued or running."""
    rows = job_rows(storage_url)
    done = {row["source"] for row in rows if row["status"] == "succeeded"}
    busy = [row for row in rows if row["status"] in ("todo", "doing")]
    return len(done) == sources and not busy
