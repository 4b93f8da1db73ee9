"""A hostile HTTP/1.1 server on loopback, for fault-injection tests.

Raw asyncio sockets (not a framework) so a route can misbehave below HTTP: hang before the
status line, drip one byte at a time, reset the connection mid-body, lie about lengths.
Every connection is closed after one response. The server runs on its own event loop in a
background thread, so the code under test can use its own loop (or a subprocess)::

    with FaultServer("127.0.0.1") as server:
        server.route("/hang", hang())
        server.route("/feed", respond(200, body, {"Content-Type": "application/rss+xml"}))
        fetch(server.url("/feed"))

Every handler is bounded in time: a hanging handler sleeps at most `HANG_SECONDS`, and
`stop()` cancels whatever is still running.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType

HANG_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Request:
    """The parts of a request a handler needs."""

    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]


def _head(status: int, headers: Mapping[str, str]) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += ["Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1")


def respond(
    status: int = 200,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    *,
    declare_length: bool = True,
) -> Handler:
    """A plain response; without `declare_length` the body ends when the connection closes."""

    async def handler(_request: Request, writer: asyncio.StreamWriter) -> None:
        sent = dict(headers or {})
        if declare_length:
            sent.setdefault("Content-Length", str(len(body)))
        writer.write(_head(status, sent))
        for start in range(0, len(body), 1 << 16):
            writer.write(body[start : start + (1 << 16)])
            await writer.drain()

    return handler


def stream(chunk: bytes, count: int, headers: Mapping[str, str] | None = None) -> Handler:
    """200 with `count` copies of `chunk` and no Content-Length (close-delimited)."""

    async def handler(_request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(_head(200, dict(headers or {})))
        for _ in range(count):
            writer.write(chunk)
            await writer.drain()

    return handler


def declared_only(length: int, headers: Mapping[str, str] | None = None) -> Handler:
    """Declare a huge Content-Length, send a few bytes, then hold the connection briefly."""

    async def handler(_request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(_head(200, {**(headers or {}), "Content-Length": str(length)}))
        writer.write(b"<rss>")
        await writer.drain()
        await asyncio.sleep(2)

    return handler


def hang() -> Handler:
    """Accept the request, then never send a status line."""

    async def handler(_request: Request, _writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(HANG_SECONDS)

    return handler


def drip(body: bytes, interval: float = 1.0) -> Handler:
    """Send the headers, then the body one byte every `interval` seconds."""

    async def handler(_request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(_head(200, {"Content-Length": str(len(body))}))
        for index in range(min(len(body), int(HANG_SECONDS / interval))):
            writer.write(body[index : index + 1])
            await writer.drain()
            await asyncio.sleep(interval)

    return handler


def reset_mid_body(body: bytes, sent: int) -> Handler:
    """Declare the whole body, send `sent` bytes of it, then reset the connection (RST)."""

    async def handler(_request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(_head(200, {"Content-Length": str(len(body))}))
        writer.write(body[:sent])
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    return handler


def truncated_gzip(body: bytes, keep: float = 0.5) -> Handler:
    """A gzip-encoded body cut after `keep` of its compressed bytes (length declared as cut)."""
    compressed = gzip.compress(body)
    return respond(
        200,
        compressed[: int(len(compressed) * keep)],
        {"Content-Type": "application/rss+xml", "Content-Encoding": "gzip"},
    )


def gzip_bomb(decoded_size: int) -> Handler:
    """A small gzip body that inflates to `decoded_size` bytes of zeros."""
    bomb = gzip.compress(b"\0" * decoded_size, compresslevel=9)
    return respond(200, bomb, {"Content-Type": "application/rss+xml", "Content-Encoding": "gzip"})


def raw(head: bytes, repeat: bytes = b"", interval: float = 0.0) -> Handler:
    """Send `head` as it is (no status line or headers added), then `repeat` over and over,
    every `interval` seconds, until `HANG_SECONDS` pass: a server that breaks HTTP itself."""

    async def handler(_request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head)
        await writer.drain()
        deadline = time.monotonic() + HANG_SECONDS
        while repeat and time.monotonic() < deadline:
            writer.write(repeat)
            await writer.drain()
            await asyncio.sleep(interval)

    return handler


def redirect(location: str, status: int = 302) -> Handler:
    """A redirect to `location`."""
    return respond(status, b"", {"Location": location})


class FaultServer:
    """Serve `routes` (path → handler) on `host` from a background thread; 404 otherwise."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.routes: dict[str, Handler] = {}
        self.requests: list[Request] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def route(self, path: str, handler: Handler) -> str:
        """Serve `handler` at `path`; returns the absolute URL."""
        self.routes[path] = handler
        return self.url(path)

    def url(self, path: str) -> str:
        """The absolute URL of `path` on this server."""
        return f"http://{self.host}:{self.port}{path}"

    def hits(self, prefix: str = "") -> int:
        """How many requests had a path starting with `prefix`."""
        return sum(1 for request in list(self.requests) if request.path.startswith(prefix))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The work runs in an inner task that stop() may cancel; cancelling the connection
        # task itself would make asyncio log an error from its done-callback.
        work = asyncio.ensure_future(self._answer(reader, writer))
        self._tasks.add(work)
        try:
            await work
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            if not work.cancelled():
                raise
        finally:
            self._tasks.discard(work)
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(HANG_SECONDS + 5):
            request = await self._read_request(reader)
            if request is None:
                return
            self.requests.append(request)
            handler = self.routes.get(request.path.split("?", 1)[0], respond(404, b"nope"))
            await handler(request, writer)

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> Request | None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return None
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        return Request(parts[0], parts[1], headers)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 5)

    def start(self) -> FaultServer:
        """Start listening; returns when the port is bound."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        """Cancel every open connection, stop the loop and join the thread."""
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def rss(items: Iterable[str], *, title: str = "Faulty", prolog: str = "") -> bytes:
    """A small RSS 2.0 document around `items` (already-rendered <item> elements)."""
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n{prolog}<rss version="2.0"><channel>'
        f"<title>{title}</title><link>http://news.invalid/</link>{''.join(items)}"
        "</channel></rss>"
    ).encode()


def item(
    title: str | None,
    link: str | None,
    *,
    guid: str | None = None,
    date: str | None = "Mon, 02 Jun 2025 10:00:00 GMT",
    description: str = "A short summary.",
) -> str:
    """One <item>; None leaves an element out."""
    parts = ["<item>"]
    if title is not None:
        parts.append(f"<title>{title}</title>")
    if link is not None:
        parts.append(f"<link>{link}</link>")
    if guid is not None:
        parts.append(f'<guid isPermaLink="false">{guid}</guid>')
    if date is not None:
        parts.append(f"<pubDate>{date}</pubDate>")
    parts.append(f"<description>{description}</description></item>")
    return "".join(parts)
