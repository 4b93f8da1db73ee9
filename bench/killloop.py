#!/usr/bin/env python3
"""kill -9 `aggregator fetch` at random points of a crawl + export, many times, and check that
nothing is lost, duplicated, half-written or left locked.

For each round: start a one-shot fetch (pages and exports on) against a generated loopback
corpus, SIGKILL it after a random delay (unless it finished first), then check:

    records never decrease and never exceed the truth; no duplicate webUrl
    every export file (.md, .jsonl, .xml/.rss/.atom, .json) parses
    no stale claim blocks the next round (a dead holder's claim is taken over at once)

After the last kill a clean run must finish with exit 0, every article stored, every record
in a story, and every published record in the export.
tests/test_crash_safety.py runs a short version of this loop; run this for longer ones:

    python bench/killloop.py --kills 200 --feeds 8 --items 10
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from lxml import etree

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from aggregator.export.jsonl import iter_jsonl  # noqa: E402
from aggregator.export.markdown import parse_markdown  # noqa: E402
from tests.loopback import free_port, generate_corpus, serve_corpus  # noqa: E402

RUN_TIMEOUT = 120.0  # no single fetch may take longer than this
MIN_DELAY = 0.2  # seconds before the earliest kill
ENTRY = "import sys; from aggregator.entry import main; sys.argv[0] = 'aggregator'; main()"


@dataclass
class LoopReport:
    """What the loop saw."""

    kills: int = 0
    finished_early: int = 0
    counts: list[int] = field(default_factory=list)
    files_checked: int = 0
    temp_files_left: int = 0


def write_config(workdir: Path, corpus: Path, **scheduler: float | None) -> Path:
    """A config for the corpus in `workdir` (pages, exports and private networks on)."""
    feeds = (corpus / "feeds.txt").read_text().split()
    config = {
        "data_dir": str(workdir / "data"),
        "storage": {"url": f"sqlite:///{workdir / 'data' / 'agg.db'}"},
        # one worker: parsing and linking run in processes of their own, as on any
        # machine with two cores, so the kills also land on the worker and the linker
        "fetch": {"allow_private_networks": True, "retries": 0, "parse_workers": 1},
        "export": {"dir": str(workdir / "export")},
        "sources": [{"name": f"outlet {i}", "url": url} for i, url in enumerate(feeds)],
    }
    if scheduler:
        config["scheduler"] = scheduler
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start(args: list[str]) -> subprocess.Popen[bytes]:
    """Start the CLI with `args` (output discarded)."""
    return subprocess.Popen(
        [sys.executable, "-c", ENTRY, *args],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def record_counts(db: Path) -> tuple[int, int]:
    """(records, distinct webUrls), read-only; (0, 0) before the database exists."""
    if not db.exists():
        return 0, 0
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        row = connection.execute("SELECT count(*), count(DISTINCT web_url) FROM records").fetchone()
    except sqlite3.OperationalError:  # killed before the tables were created
        return 0, 0
    finally:
        connection.close()
    return int(row[0]), int(row[1])


def completeness(db: Path, export_dir: Path) -> tuple[int, int, int]:
    """(records without a story, published records, lines of records.jsonl), read-only."""
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        unlinked, published = connection.execute(
            "SELECT sum(story_id IS NULL), sum(is_published) FROM records"
        ).fetchone()
    finally:
        connection.close()
    jsonl = export_dir / "records.jsonl"
    lines = len(jsonl.read_bytes().splitlines()) if jsonl.exists() else 0
    return int(unlinked or 0), int(published or 0), lines


def check_exports(export_dir: Path) -> tuple[int, int]:
    """Parse every export file; (files parsed, hidden temp files left by a kill)."""
    parsed = temps = 0
    if not export_dir.exists():
        return 0, 0
    for path in sorted(p for p in export_dir.rglob("*") if p.is_file()):
        if path.name.startswith(".") and path.name.endswith(".tmp"):
            temps += 1  # an unfinished atomic write: never seen under the real name
            continue
        suffix = path.suffix
        if suffix == ".md":
            parse_markdown(path.read_text(encoding="utf-8"), source=str(path))
        elif suffix == ".jsonl":
            list(iter_jsonl(path))
        elif suffix in (".xml", ".rss", ".atom"):
            etree.fromstring(path.read_bytes())
        elif suffix == ".json":
            json.loads(path.read_bytes())
        else:
            continue
        parsed += 1
    return parsed, temps


def check_round(workdir: Path, truth: int, report: LoopReport) -> None:
    """The invariants after a kill (raise AssertionError naming the broken one)."""
    count, distinct = record_counts(workdir / "data" / "agg.db")
    previous = report.counts[-1] if report.counts else 0
    assert count == distinct, f"duplicate webUrls: {count} records, {distinct} distinct"
    assert previous <= count <= truth, f"record count went {previous} → {count} (truth {truth})"
    report.counts.append(count)
    parsed, temps = check_exports(workdir / "export")
    report.files_checked += parsed
    report.temp_files_left = temps


def shorter_ceiling(ceiling: float, run_seconds: float) -> float:
    """The delay ceiling after a run finished in `run_seconds` before it could be killed.

    A fixed ceiling lets a fast machine (or faster code) finish most runs before the kill, so
    the ceiling follows the quickest run seen: later kills land inside the run, not after it.
    """
    return max(MIN_DELAY * 1.5, min(ceiling, run_seconds * 0.9))


def kill_loop(
    workdir: Path,
    corpus: Path,
    *,
    kills: int,
    seed: int = 1,
    max_delay: float = 3.0,
    epoch: int = 4,
    log: Callable[[str], None] = print,
) -> LoopReport:
    """SIGKILL `kills` fetches at random delays, checking after each; then one clean run.

    Delays are drawn below `max_delay`, and below 90% of the quickest run that finished first.

    Every `epoch` rounds the database and exports are wiped, so kills keep landing in cold
    crawls (page fetches, upserts, full exports) rather than in 304-only re-polls.
    """
    rng = random.Random(seed)
    config = write_config(workdir, corpus)
    truth = len((corpus / "truth.jsonl").read_text().splitlines())
    report = LoopReport()
    rounds = 0
    ceiling = max_delay
    while report.kills < kills and rounds < kills * 3:  # bounded even if runs finish early
        rounds += 1
        if rounds % epoch == 1 and rounds > 1:
            shutil.rmtree(workdir / "data", ignore_errors=True)
            shutil.rmtree(workdir / "export", ignore_errors=True)
            report.counts.append(0)
        delay = rng.uniform(MIN_DELAY, ceiling)
        process = start(["fetch", "--config", str(config)])
        started = time.monotonic()
        try:
            process.wait(timeout=delay)
            report.finished_early += 1
            ceiling = shorter_ceiling(ceiling, time.monotonic() - started)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            report.kills += 1
        check_round(workdir, truth, report)
        log(f"round {rounds}: delay {delay:.2f}s records {report.counts[-1]}/{truth}")
    process = start(["fetch", "--config", str(config)])
    _, stderr = process.communicate(timeout=RUN_TIMEOUT)
    assert process.returncode == 0, f"clean run exit {process.returncode}: {stderr.decode()}"
    check_round(workdir, truth, report)
    assert report.counts[-1] == truth, f"clean run stored {report.counts[-1]} of {truth}"
    unlinked, published, exported = completeness(workdir / "data" / "agg.db", workdir / "export")
    assert unlinked == 0, f"{unlinked} records without a story after the clean run"
    assert exported == published, f"{exported} records exported of {published} published"
    return report


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--feeds", type=int, default=4)
    parser.add_argument("--items", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-delay", type=float, default=3.0)
    parser.add_argument("--epoch", type=int, default=4, help="wipe the data every N rounds")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="killloop-") as tmp:
        port = free_port("127.0.0.2")
        corpus = generate_corpus(
            Path(tmp) / "web", feeds=args.feeds, items=args.items, port=port, seed=args.seed
        )
        started = time.monotonic()
        with serve_corpus(corpus, port):
            report = kill_loop(
                Path(tmp),
                corpus,
                kills=args.kills,
                seed=args.seed,
                max_delay=args.max_delay,
                epoch=args.epoch,
            )
    print(
        f"ok: {report.kills} kills, {report.finished_early} runs finished first, "
        f"{report.files_checked} export files parsed, {report.temp_files_left} temp files left, "
        f"{time.monotonic() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
