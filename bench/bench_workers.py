"""Distributed-mode throughput: one scheduler + 1, 2 and 4 worker processes, one PostgreSQL.

Each run gets a fresh database and crawls the same generated corpus (served on loopback,
article pages delayed by --page-delay to stand in for network latency) until every source
has a finished job. Prints one JSON line per worker count: seconds, sources/s, records/s;
then the same corpus crawled by one `aggregator fetch` into SQLite (local mode), for scale.

Usage: AGGREGATOR_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
       python bench/bench_workers.py --feeds 60 --items 10 --workers 1 2 4
(.ci/pg.sh start DIR PORT prints such a URL for a throwaway cluster.)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregator.store import Store
from tests.cluster import (
    SlowWeb,
    all_done,
    cluster_config,
    start_scheduler,
    start_worker,
    stop,
    wait_for,
)
from tests.loopback import corpus_hosts, free_port, generate_corpus
from tests.pg import ENV_VAR, fresh_database


def run_once(
    corpus: Path, workers: int, concurrency: int, feeds: int, work: Path
) -> dict[str, float]:
    """Crawl the corpus with `workers` processes into a fresh database; return the timings."""
    with fresh_database() as url:
        config = cluster_config(work, corpus, url, crawl_tick=0.5)
        Store(url).close()
        processes = [start_worker(config, work, i, concurrency) for i in range(workers)]
        time.sleep(1.0)  # let the workers connect before the clock starts
        started = time.monotonic()
        processes.append(start_scheduler(config, work))
        try:
            wait_for(lambda: all_done(url, feeds), timeout=1800, every=0.2)
            elapsed = time.monotonic() - started
        finally:
            stop(processes)
        with Store(url) as store:
            records = store.count_records()
    return {
        "workers": workers,
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "sources_per_s": round(feeds / elapsed, 2),
        "records": records,
        "records_per_s": round(records / elapsed, 1),
    }


FETCH = "import sys; from aggregator.entry import main; sys.argv[0] = 'aggregator'; main()"


def run_sqlite(corpus: Path, feeds: int, work: Path) -> dict[str, float | str]:
    """The same corpus crawled by one `aggregator fetch` (local mode) into SQLite."""
    config = cluster_config(work, corpus, f"sqlite:///{work / 'agg.db'}", mode="local")
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-c", FETCH, "fetch", "--config", str(config)],
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=1800,
    )
    elapsed = time.monotonic() - started
    with Store(f"sqlite:///{work / 'agg.db'}") as store:
        records = store.count_records()
    return {
        "workers": "sqlite, aggregator fetch",
        "seconds": round(elapsed, 2),
        "sources_per_s": round(feeds / elapsed, 2),
        "records": records,
        "records_per_s": round(records / elapsed, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, serve the corpus, run each worker count, print JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=60)
    parser.add_argument("--items", type=int, default=10)
    parser.add_argument("--page-delay", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=4, help="jobs per worker process")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args(argv)
    if not os.environ.get(ENV_VAR):
        parser.error(f"set {ENV_VAR} to a PostgreSQL URL (see .ci/pg.sh)")
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        port = free_port("127.0.0.2")
        corpus = generate_corpus(Path(tmp) / "web", feeds=args.feeds, items=args.items, port=port)
        server = SlowWeb(corpus, corpus_hosts(corpus), port, page_delay=args.page_delay)
        server.start()
        try:
            for count in args.workers:
                work = Path(tmp) / f"w{count}"
                work.mkdir()
                result = run_once(corpus, count, args.concurrency, args.feeds, work)
                print(json.dumps(result), flush=True)
            (Path(tmp) / "sqlite").mkdir()
            print(json.dumps(run_sqlite(corpus, args.feeds, Path(tmp) / "sqlite")), flush=True)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
