"""A real static web server on several loopback addresses, for crawl tests.

The benchmark corpus puts outlet k on host 127.0.0.(k % 250 + 2); `StaticWeb` serves a
directory on every address it is given, on one shared port, with aiohttp's file handler
(which answers conditional GETs with 304 from ETag / Last-Modified, like nginx).
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def generate_corpus(out: Path, *, feeds: int, items: int, port: int, seed: int = 1) -> Path:
    """Run the vendored corpus generator into `out` and return it."""
    sys.path.insert(0, str(REPO_ROOT / "bench"))
    try:
        import gen_corpus  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    args = ["--feeds", str(feeds), "--items", str(items), "--seed", str(seed)]
    gen_corpus.main([*args, "--port", str(port), "--out", str(out), "--force"])
    return out


class StaticWeb:
    """Serve `root` on each of `hosts` at `port` from a background thread."""

    def __init__(
        self, root: Path, hosts: Sequence[str], port: int, *, page_delay: float = 0.0
    ) -> None:
        self.root = root
        self.hosts = list(hosts)
        self.port = port
        self.page_delay = page_delay  # seconds before answering an HTML page (a slow site)
        self.requests: list[tuple[str, str, int]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    async def _start(self) -> None:
        app = web.Application(middlewares=[self._slow_pages] if self.page_delay else [])
        app.on_response_prepare.append(self._log)
        app.router.add_static("/", self.root, show_index=False)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        for host in self.hosts:
            await web.TCPSite(self._runner, host, self.port).start()

    @web.middleware
    async def _slow_pages(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.endswith(".html"):
            await asyncio.sleep(self.page_delay)
        response: web.StreamResponse = await handler(request)
        return response

    async def _log(self, request: web.Request, response: web.StreamResponse) -> None:
        self.requests.append((request.host, request.path, response.status))

    def start(self) -> None:
        """Start serving; returns when every address is listening."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)


def corpus_hosts(corpus: Path) -> list[str]:
    """The loopback addresses a generated corpus expects (from its hosts.txt)."""
    lines = (corpus / "hosts.txt").read_text().split()
    return sorted({line.split(":")[0] for line in lines if line.startswith("127.")})


@contextmanager
def serve_corpus(corpus: Path, port: int, *, page_delay: float = 0.0) -> Iterator[StaticWeb]:
    """Serve a generated corpus on all its hosts for the duration of the block (each HTML
    page after `page_delay` seconds)."""
    server = StaticWeb(corpus, corpus_hosts(corpus), port, page_delay=page_delay)
    server.start()
    try:
        yield server
    finally:
        server.stop()
