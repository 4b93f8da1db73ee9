"""The asyncio network backend under httpcore: TLS, flow control both ways, timeouts."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from pathlib import Path

import httpcore
import pytest

from aggregator.netio import AsyncioBackend, LazyTLS, OriginPools
from tests.tlscert import write_certificate

BIG = 5 * 1024 * 1024


def certificate(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting it) for a throwaway cert of 127.0.0.1."""
    cert_path, key_path = write_certificate(directory, ip_san=True)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer each request on the connection: GET /big sends BIG bytes, POST echoes a hash."""
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            break
        lines = head.decode().split("\r\n")
        length = next(
            (int(x.split(":")[1]) for x in lines if x.lower().startswith("content-length")), 0
        )
        body = b""
        while len(body) < length:
            body += await reader.read(65536)
            await asyncio.sleep(0)  # a slow reader: the client must wait on flow control
        reply = hashlib.sha256(body).hexdigest().encode() if length else b"x" * BIG
        if lines[0].startswith("GET /small"):
            reply = b"small"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(reply) + reply)
        await writer.drain()
    writer.close()


def pool(context: ssl.SSLContext | None = None) -> httpcore.AsyncConnectionPool:
    return httpcore.AsyncConnectionPool(ssl_context=context, network_backend=AsyncioBackend())


def test_tls_requests_reuse_one_verified_connection(tmp_path: Path) -> None:
    server_context, client_context = certificate(tmp_path)

    async def go() -> tuple[list[bytes], bool]:
        server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]
        async with server, pool(client_context) as client:
            bodies, streams = [], set()
            for _ in range(3):
                response = await client.request("GET", f"https://127.0.0.1:{port}/small")
                bodies.append(response.content)
                streams.add(id(response.extensions["network_stream"]))
            tls = response.extensions["network_stream"].get_extra_info("ssl_object") is not None
            return bodies, tls and len(streams) == 1

    bodies, one_tls_stream = asyncio.run(go())
    assert bodies == [b"small"] * 3
    assert one_tls_stream


@pytest.mark.parametrize("tls", [False, True])
def test_big_bodies_flow_both_ways(tmp_path: Path, tls: bool) -> None:
    server_context, client_context = certificate(tmp_path) if tls else (None, None)
    upload = bytes(range(256)) * (BIG // 256)

    async def go() -> tuple[int, bytes]:
        server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]
        scheme = "https" if tls else "http"
        async with server, pool(client_context) as client:
            down = await client.request("GET", f"{scheme}://127.0.0.1:{port}/big")
            up = await client.request("POST", f"{scheme}://127.0.0.1:{port}/", content=upload)
            return len(down.content), up.content

    size, digest = asyncio.run(go())
    assert size == BIG
    assert digest == hashlib.sha256(upload).hexdigest().encode()


def test_a_silent_server_is_a_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async def go() -> None:
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, pool() as client:
            extensions = {"timeout": {"read": 0.3, "connect": 1.0}}
            await client.request("GET", f"http://127.0.0.1:{port}/", extensions=extensions)

    with pytest.raises(httpcore.ReadTimeout):
        asyncio.run(go())


def test_a_refused_connection_is_a_connect_error() -> None:
    async def go() -> None:
        async with pool() as client:
            await client.request("GET", "http://127.0.0.1:9/")

    with pytest.raises(httpcore.ConnectError):
        asyncio.run(go())


def test_the_lazy_tls_context_is_built_once_on_the_first_https_connection(
    tmp_path: Path,
) -> None:
    server_context, client_context = certificate(tmp_path)
    builds: list[int] = []

    def build() -> ssl.SSLContext:
        builds.append(1)
        return client_context

    tls = LazyTLS(build)

    async def go() -> list[bytes]:
        server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]
        backend = AsyncioBackend(tls)
        bodies = []
        for _ in range(2):  # two pools: two connections, one context
            async with httpcore.AsyncConnectionPool(
                ssl_context=tls.placeholder, network_backend=backend
            ) as client:
                assert builds == [1] * len(bodies)  # nothing built before the first one
                response = await client.request("GET", f"https://127.0.0.1:{port}/small")
                bodies.append(response.content)
        server.close()
        return bodies

    assert asyncio.run(go()) == [b"small", b"small"]  # the placeholder alone trusts no CA
    assert builds == [1]


# ----------------------------------------------------------------- one pool per origin


def origin_pools(keep: int) -> OriginPools:
    return OriginPools(lambda: pool(), keep=keep)


def get(port: int, path: str) -> httpcore.Request:
    host = f"127.0.0.1:{port}".encode()
    return httpcore.Request("GET", f"http://127.0.0.1:{port}{path}", headers=[(b"Host", host)])


async def small_servers(count: int) -> tuple[list[asyncio.Server], list[int], list[int]]:
    """`count` servers answering /small; (servers, ports, connections accepted by each)."""
    accepted = [0] * count
    servers, ports = [], []
    for index in range(count):

        async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter, i: int = index) -> None:
            accepted[i] += 1
            await answer(r, w)

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        servers.append(server)
        ports.append(server.sockets[0].getsockname()[1])
    return servers, ports, accepted


def test_each_origin_keeps_its_connection_between_requests_to_others() -> None:
    async def go() -> tuple[list[int], int]:
        servers, ports, accepted = await small_servers(3)
        async with origin_pools(keep=8) as pools:
            for _ in range(4):  # interleaved: a shared pool of one would reconnect each time
                for port in ports:
                    response = await pools.handle_async_request(get(port, "/small"))
                    assert await response.aread() == b"small"
                    await response.aclose()
            open_connections = len(pools.connections)
        for server in servers:
            server.close()
        return accepted, open_connections

    accepted, open_connections = asyncio.run(go())
    assert accepted == [1, 1, 1] and open_connections == 3


def test_least_recently_used_idle_pools_are_closed_past_keep() -> None:
    async def go() -> tuple[list[int], list[int], list[int]]:
        servers, ports, accepted = await small_servers(3)
        async with origin_pools(keep=2) as pools:
            # a response in progress: its pool is never closed, however old
            streaming = await pools.handle_async_request(get(ports[0], "/big"))
            for port in ports[1:]:
                done = await pools.handle_async_request(get(port, "/small"))
                await done.aread()
                await done.aclose()
            kept = [origin[2] or 0 for origin in pools.origins()]
            assert len(await streaming.aread()) == BIG
            await streaming.aclose()
            again = await pools.handle_async_request(get(ports[1], "/small"))
            await again.aread()
            await again.aclose()
            later = [origin[2] or 0 for origin in pools.origins()]
        for server in servers:
            server.close()
        return ports, kept, later + accepted

    ports, kept, later_and_accepted = asyncio.run(go())
    later, accepted = later_and_accepted[:2], later_and_accepted[2:]
    assert kept == [ports[0], ports[2]]  # the idle second origin went, not the busy first
    assert later == [ports[2], ports[1]]  # then the first, idle by now and least recent
    assert accepted == [1, 2, 1]  # the second origin's pool was closed: it reconnected


def test_a_new_pool_is_never_closed_to_make_room_for_itself() -> None:
    async def go() -> tuple[list[int], list[int], list[int], int]:
        servers, ports, _ = await small_servers(3)
        async with origin_pools(keep=1) as pools:
            streaming = await pools.handle_async_request(get(ports[0], "/big"))  # busy
            second = await pools.handle_async_request(get(ports[1], "/small"))
            assert await second.aread() == b"small"  # its pool was not closed under it
            await second.aclose()
            both = [origin[2] or 0 for origin in pools.origins()]
            await streaming.aread()
            await streaming.aclose()
            third = await pools.handle_async_request(get(ports[2], "/small"))
            await third.aread()
            await third.aclose()
            last = [origin[2] or 0 for origin in pools.origins()]
            connections = len(pools.connections)
        for server in servers:
            server.close()
        return ports, both, last, connections

    ports, both, last, connections = asyncio.run(go())
    assert both == ports[:2]  # over `keep`, because the first was busy and the second new
    assert last == ports[2:] and connections == 1  # both idle ones closed for the third
