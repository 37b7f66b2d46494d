"""Shared pieces for the proxy's real-socket tests: addresses, synthetic store events, tiny backends
that answer with their own identity, and a raw keep-alive HTTP client (one connection, visible)."""

from __future__ import annotations

import asyncio
import random
import socket
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from emulator.store.events import ADDED, DELETED, MODIFIED, Event

if TYPE_CHECKING:
    from emulator.proxy import Proxy

_used: set[str] = set()
_rv = 0


def loopback_ip(prefix: str = "127.96") -> str:
    """A fresh address in 127.0.0.0/8 (every one of them reaches loopback on Linux)."""
    while True:
        ip = f"{prefix}.{random.randint(0, 255)}.{random.randint(2, 254)}"
        if ip not in _used:
            _used.add(ip)
            return ip


def free_port(ip: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def event(type: str, resource: str, obj: dict[str, Any]) -> Event:
    global _rv
    _rv += 1
    meta = obj["metadata"]
    return Event(type, resource, meta.get("namespace", ""), meta["name"], _rv, orjson.dumps(obj))


def service(
    name: str,
    cluster_ip: str,
    ports: list[dict[str, Any]],
    namespace: str = "default",
    type: str = "ClusterIP",
    **spec: Any,
) -> dict[str, Any]:
    status = spec.pop("status", {})
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"type": type, "clusterIP": cluster_ip, "ports": ports, **spec},
        "status": status,
    }


def endpoints(
    name: str, ready: list[str], ports: list[dict[str, Any]], namespace: str = "default", not_ready: list[str] = ()
) -> dict[str, Any]:  # type: ignore[assignment]
    subset: dict[str, Any] = {"ports": ports}
    if ready:
        subset["addresses"] = [{"ip": ip} for ip in ready]
    if not_ready:
        subset["notReadyAddresses"] = [{"ip": ip} for ip in not_ready]
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": name, "namespace": namespace},
        "subsets": [subset] if ready or not_ready else [],
    }


def added(resource: str, obj: dict[str, Any]) -> Event:
    return event(ADDED, resource, obj)


def modified(resource: str, obj: dict[str, Any]) -> Event:
    return event(MODIFIED, resource, obj)


def deleted(resource: str, obj: dict[str, Any]) -> Event:
    return event(DELETED, resource, obj)


async def http_service(proxy: Proxy, ips: list[str], backend_port: int) -> tuple[str, int]:
    """Service `web` with one HTTP-mode port on a fresh cluster IP, in front of `ips` at `backend_port`,
    applied and synced: (cluster IP, port)."""
    vip = loopback_ip()
    port = free_port(vip)
    proxy.apply(added("services", service("web", vip, [{"name": "http", "port": port}])))
    proxy.apply(added("endpoints", endpoints("web", ips, [{"name": "http", "port": backend_port}])))
    await proxy.sync()
    return vip, port


# -- backends -----------------------------------------------------------------------------------


async def tcp_backend(ip: str, port: int) -> asyncio.AbstractServer:
    """Says its address on connect, then echoes; reports the peer address it saw on `peer?`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(f"{ip}\n".encode())
            while data := await reader.read(65536):
                if data == b"bye\n":
                    break
                if data == b"peer?\n":
                    writer.write(f"{writer.get_extra_info('peername')[0]}\n".encode())
                else:
                    writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, ip, port)


async def http_backend(ip: str, port: int) -> web.AppRunner:
    """Answers every request with its own address and what the proxy told it."""

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.path == "/slow":
            await asyncio.sleep(float(request.query.get("s", "1")))
        return web.json_response(
            {
                "backend": ip,
                "path": request.path_qs,
                "method": request.method,
                "body": body.decode(errors="replace"),
                "xff": request.headers.get("X-Forwarded-For"),
                "xfh": request.headers.get("X-Forwarded-Host"),
                "xfp": request.headers.get("X-Forwarded-Proto"),
                "host": request.headers.get("Host"),
            }
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, ip, port).start()
    return runner


# -- a raw HTTP/1.1 client --------------------------------------------------------------------------


class HttpConn:
    """One client connection; requests go one after another on it (or pipelined with `send`)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, ip: str, port: int, local_ip: str | None = None) -> HttpConn:
        reader, writer = await asyncio.open_connection(ip, port, local_addr=(local_ip, 0) if local_ip else None)
        return cls(reader, writer)

    def send(
        self,
        method: str = "GET",
        path: str = "/",
        host: str = "svc",
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        chunked: bool = False,
    ) -> None:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        payload = b""
        if body is not None and chunked:
            lines.append("Transfer-Encoding: chunked")
            payload = (
                b"".join(
                    b"%x\r\n%b\r\n" % (len(part), part)
                    for part in (body[: len(body) // 2], body[len(body) // 2 :])
                    if part
                )
                + b"0\r\n\r\n"
            )
        elif body is not None:
            lines.append(f"Content-Length: {len(body)}")
            payload = body
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)

    async def response(self, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
        async with asyncio.timeout(timeout):
            status_line = await self.reader.readuntil(b"\r\n")
            status = int(status_line.split()[1])
            headers: dict[str, str] = {}
            while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
                k, _, v = line.decode().partition(":")
                headers[k.strip().lower()] = v.strip()
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
            return status, headers, body

    async def request(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
        self.send(*args, **kwargs)
        return await self.response()

    async def closed_by_peer(self, timeout: float = 3.0) -> bool:
        async with asyncio.timeout(timeout):
            try:
                return await self.reader.read(1) == b""
            except ConnectionError:
                return True

    def close(self) -> None:
        self.writer.close()


async def tcp_hello(ip: str, port: int, local_ip: str | None = None, timeout: float = 3.0) -> str:
    """Connect and read the backend's greeting; "" when the proxy closed the connection instead."""
    reader, writer = await asyncio.open_connection(ip, port, local_addr=(local_ip, 0) if local_ip else None)
    try:
        async with asyncio.timeout(timeout):
            line = await reader.readline()
        return line.decode().strip()
    except ConnectionError:
        return ""
    finally:
        writer.close()
