"""httpcore's network layer on asyncio itself, not through anyio.

httpx talks to the network through an httpcore backend; the default one goes through
anyio, which wraps every read and write in a cancel scope and a checkpoint, and answers the
pool's per-request "is this idle socket readable?" by rebuilding an attribute table with a
getpeername() call. This backend does the same work with one asyncio Protocol per
connection:

    reads     bytes are buffered as they arrive; reading pauses past `HIGH_WATER` buffered
              bytes and resumes under `LOW_WATER`, so a fast server cannot fill memory
    writes    the transport's own flow control (`pause_writing`) is waited on
    EOF       remembered, so a pooled connection the server closed reads as readable and
              the pool drops it instead of sending a request into it; the loop keeps
              that flag (and the buffer) current, so the pool's check, made for every
              idle connection each time it assigns a request, costs no system call
    close     like anyio: close, let the loop run once, then abort (no lingering)
    errors    timeouts and OS errors become httpcore's ReadTimeout/ReadError, ... exactly
              as the anyio backend maps them, so httpx raises the same exceptions
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpcore

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection's receive buffer, end-of-stream and write flow control."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self._reader: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._reading_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        """Buffer `data`; stop reading while too much waits."""
        self.buffer += data
        if len(self.buffer) >= HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
            self._reading_paused = True
        _wake(self._reader)

    def eof_received(self) -> bool:
        """The peer finished sending: close our side too."""
        self.eof = True
        _wake(self._reader)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection is gone (`exc`: why, when it broke)."""
        self.eof = True
        self.error = exc
        _wake(self._reader)
        _wake(self._writable)

    def pause_writing(self) -> None:
        """The transport's send buffer is full."""
        if self._writable is None or self._writable.done():
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        """The send buffer drained."""
        _wake(self._writable)

    async def receive(self, max_bytes: int) -> bytes:
        """Up to `max_bytes` buffered bytes, waiting for some; b"" at the end."""
        while not self.buffer and not self.eof:
            self._reader = asyncio.get_running_loop().create_future()
            await self._reader
        if not self.buffer:
            if self.error is not None:
                raise self.error
            return b""
        data = bytes(self.buffer[:max_bytes])
        del self.buffer[:max_bytes]
        if self._reading_paused and len(self.buffer) < LOW_WATER and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    async def writable(self) -> None:
        """Return once the transport accepts more bytes."""
        if self._writable is not None and not self._writable.done():
            await self._writable
        if self.error is not None:
            raise self.error


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


@contextlib.contextmanager
def _mapped(timeout_error: type[Exception], os_error: type[Exception], what: str) -> Iterator[None]:
    try:
        yield
    except TimeoutError as exc:
        raise timeout_error(f"{what} timed out") from exc
    except ConnectionError as exc:  # reset, aborted, broken pipe: anyio says nothing more
        raise os_error("") from exc
    except OSError as exc:  # ssl.SSLError is an OSError
        raise os_error(str(exc) or type(exc).__name__) from exc


def _deadline(timeout: float | None) -> contextlib.AbstractAsyncContextManager[Any]:
    return contextlib.nullcontext() if timeout is None else asyncio.timeout(timeout)


class LazyTLS:
    """A TLS client context built on the first https connection, not at start-up: loading
    the CA bundle took 13 ms, a fiftieth of a re-poll where every feed is plain http.

    Give `placeholder` to the pool as its context; the streams swap in the real one
    (`resolve`)."""

    def __init__(self, build: Callable[[], ssl.SSLContext]) -> None:
        self.placeholder = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._build = build
        self._context: ssl.SSLContext | None = None

    def resolve(self, context: ssl.SSLContext) -> ssl.SSLContext:
        """`context`, or the real one when it is the placeholder."""
        if context is not self.placeholder:
            return context
        if self._context is None:
            self._context = self._build()
        return self._context


class AsyncioStream(httpcore.AsyncNetworkStream):
    """A connection as httpcore reads, writes, upgrades and closes it."""

    def __init__(self, connection: _Connection, tls: LazyTLS | None = None) -> None:
        self._connection = connection
        self._tls = tls

    @property
    def _transport(self) -> asyncio.Transport:
        transport = self._connection.transport
        assert transport is not None
        return transport

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Up to `max_bytes` bytes; b"" once the peer has finished."""
        with _mapped(httpcore.ReadTimeout, httpcore.ReadError, "read"):
            async with _deadline(timeout):
                return await self._connection.receive(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Send all of `buffer`."""
        if not buffer:
            return
        with _mapped(httpcore.WriteTimeout, httpcore.WriteError, "write"):
            if self._connection.error is not None or self._transport.is_closing():
                raise ConnectionResetError("the connection is closed")
            self._transport.write(buffer)
            async with _deadline(timeout):
                await self._connection.writable()

    async def aclose(self) -> None:
        """Close at once: what was sent is sent, nothing lingers."""
        transport = self._connection.transport
        if transport is None or transport.is_closing():
            return
        transport.close()
        try:
            await asyncio.sleep(0)
        finally:  # cancelled or not, nothing lingers
            transport.abort()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """This connection, now speaking TLS to `server_hostname`."""
        loop = asyncio.get_running_loop()
        if self._tls is not None:
            ssl_context = self._tls.resolve(ssl_context)
        try:
            with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError, "TLS handshake"):
                async with _deadline(timeout):
                    upgraded = await loop.start_tls(
                        self._transport,
                        self._connection,
                        ssl_context,
                        server_hostname=server_hostname,
                    )
        except BaseException:
            self._transport.abort()
            raise
        if upgraded is None:
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        self._connection.transport = upgraded
        return self

    def get_extra_info(self, info: str) -> Any:
        """ "ssl_object", "client_addr", "server_addr", "socket", or "is_readable": true
        when a read would return at once (buffered bytes, or the end of the stream)."""
        transport = self._connection.transport
        if transport is None:
            return True if info == "is_readable" else None
        if info == "is_readable":
            connection = self._connection
            return bool(connection.buffer) or connection.eof or transport.is_closing()
        key = {"client_addr": "sockname", "server_addr": "peername"}.get(info, info)
        if key not in ("ssl_object", "sockname", "peername", "socket"):
            return None
        return transport.get_extra_info(key)


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Opens `AsyncioStream`s (whose TLS context comes from `tls` when given)."""

    def __init__(self, tls: LazyTLS | None = None) -> None:
        self.tls = tls

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connect to `host`:`port` (resolved by the loop when it is a name)."""
        loop = asyncio.get_running_loop()
        local = None if local_address is None else (local_address, 0)
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError, "connect"):
            async with _deadline(timeout):
                transport, connection = await loop.create_connection(
                    _Connection, host, port, local_addr=local
                )
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(connection, self.tls)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connect to the Unix socket at `path`."""
        loop = asyncio.get_running_loop()
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError, "connect"):
            async with _deadline(timeout):
                _, connection = await loop.create_unix_connection(_Connection, path)
        return AsyncioStream(connection, self.tls)

    async def sleep(self, seconds: float) -> None:
        """Sleep on the loop."""
        await asyncio.sleep(seconds)


Origin = tuple[bytes, bytes, int | None]


class OriginPools:
    """httpcore connection pools, one per origin (scheme, host, port), in place of one
    shared pool.

    A crawl talks to hundreds of hosts at once. One shared pool of `concurrency`
    connections closed an idle connection to one host to open one to the next (1,686
    connects for 6,200 requests on the page bench), and scanned every pooled connection,
    quadratically, each time it assigned a request. Per origin, connections to a host
    are reused for as long as it is crawled, and each pool holds at most `per_host`.

    At most `keep` pools are kept: past that, the least recently used pools whose
    connections are all idle are closed (a pool with a response in progress never is),
    so idle sockets stay bounded whatever the number of hosts. The caller bounds the
    requests in flight (the fetcher's semaphores)."""

    def __init__(self, make_pool: Callable[[], httpcore.AsyncConnectionPool], *, keep: int) -> None:
        self._make_pool = make_pool
        self._keep = keep
        self._pools: dict[Origin, httpcore.AsyncConnectionPool] = {}  # least recent first

    @property
    def connections(self) -> list[httpcore.AsyncConnectionInterface]:
        """Every pooled connection, of every origin."""
        return [c for pool in self._pools.values() for c in pool.connections]

    def origins(self) -> list[Origin]:
        """The origins with a pool, least recently used first."""
        return list(self._pools)

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        """Send `request` through its origin's pool."""
        url = request.url
        origin = (url.scheme, url.host, url.port)
        pool = self._pools.pop(origin, None)
        if pool is None:
            pool = self._make_pool()
            excess = len(self._pools) + 1 - self._keep
            older = list(self._pools.items())
            self._pools[origin] = pool
            await self._close_unused(older, excess)
        else:
            self._pools[origin] = pool  # now the most recent
        return await pool.handle_async_request(request)

    async def _close_unused(
        self, older: list[tuple[Origin, httpcore.AsyncConnectionPool]], excess: int
    ) -> None:
        """Close up to `excess` of the `older` pools (least recent first) not in use."""
        for origin, pool in older:
            if excess <= 0:
                return
            if not _in_use(pool) and self._pools.get(origin) is pool:
                del self._pools[origin]
                excess -= 1
                await pool.aclose()

    async def aclose(self) -> None:
        """Close every pool."""
        pools = list(self._pools.values())
        self._pools.clear()
        for pool in pools:
            await pool.aclose()

    async def __aenter__(self) -> OriginPools:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _in_use(pool: httpcore.AsyncConnectionPool) -> bool:
    """True while the pool has a request not yet finished (queued, assigned to a connection
    but not sent, or with its response still open) or a connection that is not idle."""
    if getattr(pool, "_requests", None):  # httpcore's own queue: exact when present
        return True
    return not all(c.is_idle() or c.is_closed() for c in pool.connections)
