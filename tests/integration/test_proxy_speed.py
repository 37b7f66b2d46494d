"""What the HTTP hot path's shortcuts must not change: a client that asks to close is told so, HEAD
responses on pooled connections, requests that miss the pool or are denied, and connections freed by
reference counting (no cyclic garbage per connection for the collector)."""

from __future__ import annotations

import asyncio
import gc
import http.server
import json
import threading
import time
from collections.abc import AsyncIterator

import pytest

from emulator.proxy import Proxy, ProxySettings
from emulator.proxy.l4 import TcpClient, TcpUpstream
from emulator.proxy.l7 import HttpClient, HttpUpstream, say_close

from .test_proxy_support import added, endpoints, free_port, http_backend, http_service, loopback_ip, service

# What the backend answers: keep-alive by default, like nginx, which says so.
_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"


class _Backend(asyncio.Protocol):
    """A keep-alive HTTP/1.1 endpoint without a framework (aiohttp's own objects would be garbage in the
    collector's count); answers each request head with `_RESPONSE`, a HEAD with its head only."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            self.transport.write(_RESPONSE[:-2] if head.startswith(b"HEAD ") else _RESPONSE)


@pytest.fixture
async def web() -> AsyncIterator[tuple[Proxy, str, int, int]]:
    """A proxy with an HTTP-mode port and a TCP-mode port to one `_Backend`: (proxy, vip, http, tcp)."""
    proxy = Proxy(ProxySettings(gateway_port=None, sweep_interval=0.1, connect_timeout=1.0))
    await proxy.start()
    ip = loopback_ip("127.97")
    bport = free_port(ip)
    server = await asyncio.get_running_loop().create_server(_Backend, ip, bport)
    vip = loopback_ip()
    http, tcp = free_port(vip), free_port(vip)
    proxy.apply(added("services", service("web", vip, [{"name": "http", "port": http}, {"name": "raw", "port": tcp}])))
    proxy.apply(
        added("endpoints", endpoints("web", [ip], [{"name": "http", "port": bport}, {"name": "raw", "port": bport}]))
    )
    await proxy.sync()
    yield proxy, vip, http, tcp
    await proxy.close()
    server.close()


async def exchange(vip: str, port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(vip, port)
    writer.write(request)
    try:
        async with asyncio.timeout(3):
            return await reader.read()  # until the proxy closes
    finally:
        writer.close()


def test_say_close() -> None:
    assert say_close(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n") == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
    )
    assert say_close(b"HTTP/1.1 200 OK\r\nconnection: Keep-Alive\r\nContent-Length: 2\r\nConnection : x\r\n\r\n") == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
    )


async def test_connection_close_is_said_in_the_response(web: tuple[Proxy, str, int, int]) -> None:
    _, vip, http, _ = web
    for _ in range(2):  # the first connects, the second takes the pooled connection
        answer = await exchange(vip, http, b"GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and body == b"ok"
        fields = [line.lower() for line in head.split(b"\r\n")[1:]]
        assert b"connection: close" in fields and b"connection: keep-alive" not in fields
    # HTTP/1.0 without keep-alive: closed after the answer, which says so
    answer = await exchange(vip, http, b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200") and b"\r\nConnection: close\r\n" in answer


async def test_head_on_a_pooled_connection_then_get(web: tuple[Proxy, str, int, int]) -> None:
    _, vip, http, _ = web
    reader, writer = await asyncio.open_connection(vip, http)
    for method in (b"GET", b"HEAD", b"HEAD", b"GET"):
        writer.write(method + b" / HTTP/1.1\r\nHost: web\r\n\r\n")
        async with asyncio.timeout(3):
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            if method == b"GET":
                assert await reader.readexactly(2) == b"ok"
    writer.close()


async def test_no_cyclic_garbage_per_connection(web: tuple[Proxy, str, int, int]) -> None:
    _, vip, http, tcp = web
    await exchange(vip, http, b"GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")  # warm: the pool
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(20):
            await exchange(vip, http, b"GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
            reader, writer = await asyncio.open_connection(vip, tcp)
            writer.write(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
            async with asyncio.timeout(3):
                assert (await reader.readuntil(b"ok")).startswith(b"HTTP/1.1 200")
            writer.close()
            await writer.wait_closed()
        await asyncio.sleep(0.2)  # the proxy's side of the TCP pairs goes away
        gc.collect()
        left = [
            type(o).__name__ for o in gc.garbage if isinstance(o, (HttpClient, HttpUpstream, TcpClient, TcpUpstream))
        ]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert left == []


async def test_bodies_sent_with_their_head_on_pooled_connections() -> None:
    """A request whose body comes in the same read as its head is written to a pooled connection in one
    write (head and body held to the end of the read): the endpoint gets all of it, in order."""
    proxy = Proxy(ProxySettings(gateway_port=None, sweep_interval=0.1, connect_timeout=1.0))
    await proxy.start()
    ip = loopback_ip("127.97")
    bport = free_port(ip)
    runner = await http_backend(ip, bport)
    try:
        vip, port = await http_service(proxy, [ip], bport)
        reader, writer = await asyncio.open_connection(vip, port)
        requests = [
            b"POST /a HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\n\r\nhello",  # the first connects
            b"POST /b HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\n\r\nworld",  # pooled from here on
            b"POST /c HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            b"POST /d HTTP/1.1\r\nHost: web\r\nContent-Length: 6\r\n\r\nsp",  # the rest in a later read
        ]
        bodies = []
        for request in requests:
            writer.write(request)
            if request.endswith(b"sp"):
                await writer.drain()
                await asyncio.sleep(0.05)
                writer.write(b"lit!")
            async with asyncio.timeout(3):
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(
                    next(
                        v
                        for k, _, v in (ln.partition(b":") for ln in head.split(b"\r\n"))
                        if k.lower() == b"content-length"
                    )
                )
                bodies.append(json.loads(await reader.readexactly(length))["body"])
        assert bodies == ["hello", "world", "abcde", "split!"]
        # a request with a body and one pipelined behind it, in one read: answered in order
        writer.write(
            b"POST /e HTTP/1.1\r\nHost: web\r\nContent-Length: 3\r\n\r\none" + b"GET /f HTTP/1.1\r\nHost: web\r\n\r\n"
        )
        for path, body in (("/e", "one"), ("/f", "")):
            async with asyncio.timeout(3):
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(
                    next(
                        v
                        for k, _, v in (ln.partition(b":") for ln in head.split(b"\r\n"))
                        if k.lower() == b"content-length"
                    )
                )
                answer = json.loads(await reader.readexactly(length))
            assert (answer["path"], answer["body"]) == (path, body)
        writer.close()
    finally:
        await proxy.close()
        await runner.cleanup()


class _TwoWrites(http.server.BaseHTTPRequestHandler):
    """Python's http.server with keep-alive: the head in one send, the body in another (Nagle on)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()  # one send: the head
        self.wfile.write(b"ok")  # a second send, held by Nagle until the head is ACKed

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's name)
        pass


async def test_a_body_sent_after_its_head_is_not_held_by_delayed_acks() -> None:
    """An endpoint that writes head and body in two sends, on a pooled keep-alive connection: the proxy
    ACKs the head at once, so the body is not held back by Nagle for Linux's delayed ACK (~40 ms a
    request before). 40 requests take a fraction of what 40 delayed ACKs would."""
    proxy = Proxy(ProxySettings(gateway_port=None, sweep_interval=0.1, connect_timeout=1.0))
    await proxy.start()
    ip = loopback_ip("127.97")
    bport = free_port(ip)
    server = http.server.ThreadingHTTPServer((ip, bport), _TwoWrites)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        vip, port = await http_service(proxy, [ip], bport)
        reader, writer = await asyncio.open_connection(vip, port)
        started = time.monotonic()
        for _ in range(40):
            writer.write(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
            async with asyncio.timeout(3):
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200") and await reader.readexactly(2) == b"ok"
        elapsed = time.monotonic() - started
        writer.close()
        assert elapsed < 40 * 0.040 / 2, f"40 requests took {elapsed:.2f} s: bodies waited for delayed ACKs"
    finally:
        await proxy.close()
        await asyncio.to_thread(server.shutdown)
        server.server_close()
