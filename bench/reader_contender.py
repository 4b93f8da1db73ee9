#!/usr/bin/env python3
"""lemon24/reader on the bench corpus: the "real feed reader" contender of run_bench.py.

    reader_contender.py CORPUS_DIR DB_PATH cold     # new db, add every feed, update_feeds
    reader_contender.py CORPUS_DIR DB_PATH repoll   # same db again: every feed unchanged

Both modes call ``update_feeds(workers=1, scheduled=False)`` (``scheduled=False`` so the
re-poll really asks every feed again, with reader's own ETag / Last-Modified revalidation)
and print one JSON object: entries in the db, seconds spent inside ``update_feeds``, and
entries/s over that time. reader is a bench-only dependency (``pip install reader``).
Only loopback (127.0.0.0/8) feed URLs are accepted.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("corpus")
    ap.add_argument("db")
    ap.add_argument("mode", choices=["cold", "repoll"])
    a = ap.parse_args()

    t_import = time.perf_counter()
    from reader import make_reader  # imported here so its import time is reported apart

    import_s = time.perf_counter() - t_import
    feeds = [u for u in Path(a.corpus, "feeds.txt").read_text().split() if u]
    bad = [u for u in feeds if not is_loopback(u)]
    if bad:
        sys.exit(f"refusing non-loopback feed URL {bad[0]}")
    if a.mode == "cold" and Path(a.db).exists():
        sys.exit(f"cold run needs a fresh db, {a.db} exists")
    reader = make_reader(a.db, search_enabled=False)
    try:
        if a.mode == "cold":
            for url in feeds:
                reader.add_feed(url, exist_ok=True)
        before = reader.get_entry_counts().total
        errors = 0
        t0 = time.perf_counter()
        for result in reader.update_feeds_iter(workers=1, scheduled=False):
            if isinstance(result.error, Exception):
                errors += 1
        update_s = time.perf_counter() - t0
        total = reader.get_entry_counts().total
    finally:
        reader.close()
    new = total - before
    out = {
        "tool": "reader",
        "mode": a.mode,
        "feeds": len(feeds),
        "entries": total,
        "new_entries": new,
        "feed_errors": errors,
        "update_s": round(update_s, 3),
        "import_s": round(import_s, 3),
        "entries_per_s": round(new / update_s, 1) if update_s and new else None,
        "reader_version": __import__("reader").__version__,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
