"""kill -9 at random points of a crawl and an export, many times; the daemon too.

After every kill: no lost records (the count never decreases), no duplicates (one row per
webUrl), no half-written export file (every .md/.jsonl/.xml/.json parses), and no stale lock
(the next run is not blocked: a dead process's claims are taken over). The loop itself lives
in bench/killloop.py, which runs it for as many kills as wanted (`--kills N`).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aggregator.locks import source_claim
from aggregator.store import Store
from tests.loopback import REPO_ROOT, StaticWeb, free_port, generate_corpus, serve_corpus

sys.path.insert(0, str(REPO_ROOT / "bench"))
import killloop  # type: ignore[import-not-found]

sys.path.remove(str(REPO_ROOT / "bench"))

FEEDS, ITEMS = 4, 5
FAST: dict[str, float | None] = {
    "crawl_tick": 0.2,
    "min_interval_minutes": 0.05,
    "export_debounce": 0.3,
    "heartbeat_every": 0.3,
    "grace_period": 5.0,
    "retention_days": None,  # the corpus is dated 2025: do not prune it
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, StaticWeb]]:
    port = free_port("127.0.0.2")
    root = generate_corpus(
        tmp_path_factory.mktemp("corpus") / "web", feeds=FEEDS, items=ITEMS, port=port
    )
    with serve_corpus(root, port) as server:
        yield root, server


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll `condition` every 50 ms until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.mark.slow
def test_fetch_killed_20_times_loses_nothing_and_leaves_no_stale_lock(
    corpus: tuple[Path, StaticWeb], tmp_path: Path
) -> None:
    root, _ = corpus
    report = killloop.kill_loop(tmp_path, root, kills=20, seed=6, max_delay=2.5, log=lambda _: None)
    assert report.kills == 20
    assert report.counts[-1] == FEEDS * ITEMS  # the clean run after the last kill got it all
    assert report.files_checked > 0


def claims(db: Path) -> list[tuple[str, str]]:
    """The rows of the source-claims table."""
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return list(connection.execute("SELECT source_name, owner FROM source_claims"))
    finally:
        connection.close()


@pytest.mark.slow
def test_daemon_killed_twice_restarts_and_runs_beside_a_one_shot_fetch(
    corpus: tuple[Path, StaticWeb], tmp_path: Path
) -> None:
    root, _ = corpus
    truth = FEEDS * ITEMS
    config = killloop.write_config(tmp_path, root, **FAST)
    db = tmp_path / "data" / "agg.db"
    report = killloop.LoopReport()
    for delay in (1.2, 2.0):  # during the first crawl, then during crawl/export
        daemon = killloop.start(["run", "--config", str(config)])
        time.sleep(delay)
        assert daemon.poll() is None, daemon.stderr.read() if daemon.stderr else ""
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=30)
        killloop.check_round(tmp_path, truth, report)
    daemon = killloop.start(["run", "--config", str(config)])
    fetch = killloop.start(["fetch", "--config", str(config)])
    try:
        _, fetch_err = fetch.communicate(timeout=killloop.RUN_TIMEOUT)
        assert fetch.returncode == 0, fetch_err.decode()
        assert b"locked" not in fetch_err
        records = tmp_path / "export" / "records.jsonl"
        wait_for(lambda: killloop.record_counts(db)[0] == truth)
        wait_for(lambda: records.exists() and records.read_text().count("\n") == truth)
        assert daemon.poll() is None, "the daemon must keep running"
        # its lock names it once it runs (signal handlers installed): a SIGTERM sent while
        # it still imports would kill it before it can stop cleanly
        lock = tmp_path / "data" / "daemon.lock"
        wait_for(lambda: lock.exists() and lock.read_text().strip() == str(daemon.pid))
        daemon.send_signal(signal.SIGTERM)
        _, daemon_err = daemon.communicate(timeout=30)
    finally:
        for process in (daemon, fetch):
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
    assert daemon.returncode == 0, daemon_err.decode()
    assert b"locked" not in daemon_err and b"Traceback" not in daemon_err
    killloop.check_round(tmp_path, truth, report)
    assert report.counts[-1] == truth
    assert claims(db) == []  # nothing left claimed after a clean stop


def test_the_kill_loop_script_has_a_kills_flag() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "killloop.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "--kills" in done.stdout


def test_a_claim_left_by_a_killed_process_is_taken_over_at_once(tmp_path: Path) -> None:
    """The stale-lock case: kill -9 leaves a claim with a 5-minute lease behind."""
    host = socket.gethostname()
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    alive = f"fetch:{host}:{victim.pid}:aaaa"

    async def holds(store: Store, name: str) -> bool:
        async with source_claim(store, name, "fetch:me") as ok:
            return ok

    try:
        with Store(f"sqlite:///{tmp_path / 'a.db'}") as store:
            assert store.claim_source("s", alive, 300)
            assert not asyncio.run(holds(store, "s"))  # a live holder keeps its claim
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=30)
            assert asyncio.run(holds(store, "s"))  # a dead one's is taken over
            assert store.claim_source("t", "fetch:elsewhere:1:bbbb", 300)
            assert not asyncio.run(holds(store, "t"))  # another host's: wait for the lease
    finally:
        victim.kill()
        victim.wait(timeout=30)
