#!/usr/bin/env python3
"""Fallback static web server for the bench corpus, used by run_bench.py when nginx is missing.

    static_server.py DIR PORT

Serves DIR with aiohttp's file handler (ETag + Last-Modified, 304 on conditional GET, no gzip)
on ``127.0.0.X:PORT`` for every host in DIR/hosts.txt. Refuses any host outside 127.0.0.0/8.
Writes "ready" to stdout once every socket is bound; stops on SIGTERM / SIGINT or after
--max-s seconds. It is a Python server on the same cores as the contenders, so numbers
measured with it are lower than with nginx and are marked as such.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import signal
import sys
from pathlib import Path

from aiohttp import web


def loopback_hosts(root: Path) -> list[str]:
    hosts = [h.strip() for h in (root / "hosts.txt").read_text().split() if h.strip()]
    for host in hosts:
        if not ipaddress.ip_address(host).is_loopback:
            sys.exit(f"static_server: refusing non-loopback host {host}")
    if not hosts:
        sys.exit("static_server: no hosts in hosts.txt")
    return hosts


async def serve(root: Path, port: int, max_s: float) -> None:
    app = web.Application()
    app.router.add_static("/", root, follow_symlinks=False)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    for host in loopback_hosts(root):
        await web.TCPSite(runner, host, port, backlog=1024).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    try:
        await asyncio.wait_for(stop.wait(), timeout=max_s)
    except TimeoutError:
        print("static_server: max lifetime reached, stopping", file=sys.stderr)
    finally:
        await runner.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dir")
    ap.add_argument("port", type=int)
    ap.add_argument("--max-s", type=float, default=3600.0)
    a = ap.parse_args()
    asyncio.run(serve(Path(a.dir).resolve(), a.port, a.max_s))


if __name__ == "__main__":
    main()
