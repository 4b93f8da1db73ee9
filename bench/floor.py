#!/usr/bin/env python3
"""Floor benchmark: the least work a Python aggregator can do with these libraries.

httpx.AsyncClient fetches every feed in DIR/feeds.txt (and with --pages every
entry's article page), feedparser.parse() parses the bytes, and for pages
BeautifulSoup(html, "lxml") reads og:title / og:description / og:image.
Nothing is stored.  One process, one event loop; parsing runs inline on the loop.

  floor.py DIR --concurrency 16 [--pages] [--fast-parse]

--fast-parse passes sanitize_html=False, resolve_relative_uris=False to feedparser.
Prints one JSON object.  Only loopback (127.0.0.0/8) URLs are ever requested.

Port of ../shared/bench/floor.py (same behaviour, reformatted for this repo's ruff rules).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import resource
import sys
import time
from urllib.parse import urljoin, urlsplit

import feedparser
import httpx
from bs4 import BeautifulSoup


def is_loopback(url: str) -> bool:
    try:
        host = urlsplit(url).hostname or ""
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run(a) -> dict:
    with open(os.path.join(a.dir, "feeds.txt")) as f:
        feeds = [line.strip() for line in f if line.strip()]
    if a.limit_feeds:
        feeds = feeds[: a.limit_feeds]
    bad = [u for u in feeds if not is_loopback(u)]
    if bad:
        raise SystemExit(f"refusing non-loopback feed URLs, e.g. {bad[0]}")
    parse_kw = {"sanitize_html": False, "resolve_relative_uris": False} if a.fast_parse else {}
    st = {
        "feeds": 0,
        "feed_errors": 0,
        "entries": 0,
        "bozo": 0,
        "pages": 0,
        "page_errors": 0,
        "og_complete": 0,
        "wire_bytes": 0,
        "body_bytes": 0,
        "parse_s": 0.0,
        "soup_s": 0.0,
        "skipped_non_loopback": 0,
    }
    status: dict[int, int] = {}
    queue: asyncio.Queue = asyncio.Queue()
    for u in feeds:
        queue.put_nowait(("feed", u))
    seen_pages: set[str] = set()
    limits = httpx.Limits(max_connections=a.concurrency, max_keepalive_connections=a.concurrency)
    timeout = httpx.Timeout(a.timeout)
    async with httpx.AsyncClient(
        limits=limits,
        timeout=timeout,
        trust_env=False,
        follow_redirects=False,
        headers={"User-Agent": "bench-floor/1"},
    ) as client:

        async def handle(kind: str, url: str) -> None:
            try:
                r = await client.get(url)
            except httpx.HTTPError:
                st["feed_errors" if kind == "feed" else "page_errors"] += 1
                return
            status[r.status_code] = status.get(r.status_code, 0) + 1
            st["wire_bytes"] += r.num_bytes_downloaded
            body = r.content
            st["body_bytes"] += len(body)
            if r.status_code != 200:
                st["feed_errors" if kind == "feed" else "page_errors"] += 1
                return
            if kind == "feed":
                t0 = time.perf_counter()
                d = feedparser.parse(
                    body,
                    response_headers={
                        "content-type": r.headers.get("content-type", ""),
                        "content-location": url,
                    },
                    **parse_kw,
                )
                st["parse_s"] += time.perf_counter() - t0
                st["feeds"] += 1
                st["entries"] += len(d.entries)
                if d.bozo:
                    st["bozo"] += 1
                if a.pages:
                    for e in d.entries:
                        link = e.get("link")
                        if not link:
                            continue
                        link = urljoin(url, link)
                        if not is_loopback(link):
                            st["skipped_non_loopback"] += 1
                            continue
                        if link not in seen_pages:
                            seen_pages.add(link)
                            queue.put_nowait(("page", link))
            elif a.no_soup:
                st["pages"] += 1
            else:
                t0 = time.perf_counter()
                soup = BeautifulSoup(body, "lxml")
                og = {}
                for p in ("og:title", "og:description", "og:image"):
                    m = soup.find("meta", attrs={"property": p})
                    og[p] = m.get("content") if m else None
                st["soup_s"] += time.perf_counter() - t0
                st["pages"] += 1
                if all(og.values()):
                    st["og_complete"] += 1

        async def worker() -> None:
            while True:  # cancelled once queue.join() returns
                kind, url = await queue.get()
                try:
                    await handle(kind, url)
                finally:
                    queue.task_done()  # page jobs are queued before their feed's task_done

        cpu0, t0 = cpu_s(), time.perf_counter()
        workers = [asyncio.create_task(worker()) for _ in range(a.concurrency)]
        timed_out = False
        try:
            await asyncio.wait_for(queue.join(), timeout=a.max_s)
        except TimeoutError:
            timed_out = True
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        wall = time.perf_counter() - t0
        cpu = cpu_s() - cpu0
    n_items = st["entries"] + st["pages"]
    return {
        "tool": "floor",
        "variant": ("fast-parse" if a.fast_parse else "default-parse")
        + ("+pages" if a.pages else "")
        + ("-nosoup" if a.pages and a.no_soup else ""),
        "concurrency": a.concurrency,
        "feeds": st["feeds"],
        "entries": st["entries"],
        "pages": st["pages"],
        "wall_s": round(wall, 3),
        "entries_per_s": round(st["entries"] / wall, 1) if wall else None,
        "pages_per_s": round(st["pages"] / wall, 1) if (wall and a.pages) else None,
        "cpu_s": round(cpu, 3),
        "cpu_util": round(cpu / wall, 3) if wall else None,
        "parse_s": round(st["parse_s"], 3),
        "parse_us_per_entry": (
            round(1e6 * st["parse_s"] / st["entries"], 1) if st["entries"] else None
        ),
        "soup_s": round(st["soup_s"], 3),
        "soup_ms_per_page": round(1e3 * st["soup_s"] / st["pages"], 2) if st["pages"] else None,
        "og_complete": st["og_complete"],
        "feed_errors": st["feed_errors"],
        "page_errors": st["page_errors"],
        "bozo_feeds": st["bozo"],
        "http_status": {str(k): v for k, v in sorted(status.items())},
        "wire_bytes": st["wire_bytes"],
        "body_bytes": st["body_bytes"],
        "items_total": n_items,
        "timed_out": timed_out,
        "versions": {
            "python": sys.version.split()[0],
            "httpx": httpx.__version__,
            "feedparser": feedparser.__version__,
            "bs4": __import__("bs4").__version__,
            "lxml": ".".join(map(str, __import__("lxml.etree").etree.LXML_VERSION)),
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("dir")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--pages", action="store_true", help="also fetch and parse every article page")
    ap.add_argument(
        "--fast-parse",
        action="store_true",
        help="feedparser with sanitize_html=False, resolve_relative_uris=False",
    )
    ap.add_argument(
        "--no-soup",
        action="store_true",
        help="with --pages: fetch pages but skip BeautifulSoup (measures fetch cost alone)",
    )
    ap.add_argument("--limit-feeds", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=30.0, help="per-request timeout (s)")
    ap.add_argument("--max-s", type=float, default=900.0, help="hard cap on the whole run (s)")
    a = ap.parse_args()
    if not 1 <= a.concurrency <= 1024:
        ap.error("--concurrency must be 1..1024")
    print(json.dumps(asyncio.run(run(a))))


if __name__ == "__main__":
    main()
