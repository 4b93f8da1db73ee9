"""Issue 7's check in one command: one scheduler and three workers on one PostgreSQL crawl the
loopback corpus while one worker is killed with -9; then the same corpus is crawled by one
process into SQLite and the two stores are compared.

Usage (a throwaway cluster: `.ci/pg.sh start /tmp/pg 55432` prints the URL):
    AGGREGATOR_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:55432/aggregator_test \\
        python bench/cluster_check.py --feeds 30 --items 8

Prints one JSON object: feed fetches per source (each must be 1), jobs by status, the killed
worker's jobs and their attempts, record counts, whether the records' content equals the
SQLite run (fields that depend on arrival order excluded: quality, heat, related, seal) and
both runs' pairwise story F1 against the corpus truth. Exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregator.store import Store
from tests.cluster import (
    SlowWeb,
    all_done,
    cluster_config,
    job_rows,
    start_scheduler,
    start_worker,
    stop,
    wait_for,
)
from tests.loopback import corpus_hosts, free_port, generate_corpus
from tests.pg import ENV_VAR, fresh_database
from tests.test_distributed import pairwise_f1, projection, sqlite_reference, truth_stories


def run_cluster(corpus: Path, url: str, work: Path, feeds: int) -> dict[str, object]:
    """Scheduler + 3 workers; worker 0 is killed -9 once it runs a job."""
    config = cluster_config(work, corpus, url)
    Store(url).close()
    workers = [start_worker(config, work, i) for i in range(3)]
    scheduler = start_scheduler(config, work)
    try:
        wait_for(lambda: any(r["status"] == "doing" for r in job_rows(url)), timeout=120)
        doing = [r["id"] for r in job_rows(url) if r["status"] == "doing"]
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        wait_for(lambda: all_done(url, feeds), timeout=1800, every=0.5)
        asyncio.run(asyncio.sleep(1.5))  # a few more ticks: nothing may be due again
    finally:
        stop([scheduler, *workers])
    jobs = {row["id"]: row for row in job_rows(url)}
    return {
        "jobs_by_status": dict(Counter(row["status"] for row in jobs.values())),
        "jobs_running_when_killed": {str(i): jobs[i]["attempts"] for i in doing if i in jobs},
        "config": config,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the check; print the JSON report; exit 1 when a check fails."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=30)
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--page-delay", type=float, default=0.1)
    args = parser.parse_args(argv)
    if not os.environ.get(ENV_VAR):
        parser.error(f"set {ENV_VAR} to a PostgreSQL URL (see .ci/pg.sh)")
    with tempfile.TemporaryDirectory(prefix="cluster-check-") as tmp:
        port = free_port("127.0.0.2")
        corpus = generate_corpus(Path(tmp) / "web", feeds=args.feeds, items=args.items, port=port)
        server = SlowWeb(corpus, corpus_hosts(corpus), port, page_delay=args.page_delay)
        server.start()
        try:
            with fresh_database() as url:
                cluster = run_cluster(corpus, url, Path(tmp), args.feeds)
                fetches = server.feed_fetches()
                with Store(url) as store:
                    distributed = projection(store)
                    count = store.count_records()
            reference = sqlite_reference(Path(tmp), Path(str(cluster.pop("config"))))
        finally:
            server.stop()
        truth = truth_stories(corpus)
        report = {
            **cluster,
            "feed_fetches_per_source": dict(Counter(fetches.values())),
            "records": count,
            "records_sqlite": len(reference["records"]),
            "content_equal_to_sqlite": distributed["records"] == reference["records"],
            "story_f1": round(pairwise_f1(distributed["stories"], truth), 3),
            "story_f1_sqlite": round(pairwise_f1(reference["stories"], truth), 3),
        }
    print(json.dumps(report, indent=1))
    ok = (
        set(fetches.values()) == {1}
        and len(fetches) == args.feeds
        and report["jobs_by_status"] == {"succeeded": args.feeds}
        and count == report["records_sqlite"] == args.feeds * args.items
        and report["content_equal_to_sqlite"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
