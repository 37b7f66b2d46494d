"""The proxy's edges with real sockets: the Host gateway, UDP, bind failures, the policy hook, timeouts,
WebSocket upgrades, and no leaked task or socket when either side goes away."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from emulator.proxy import Proxy, ProxySettings

from .test_proxy_support import (
    HttpConn,
    added,
    deleted,
    endpoints,
    free_port,
    http_backend,
    loopback_ip,
    service,
    tcp_backend,
    tcp_hello,
)


def settings(**kw: object) -> ProxySettings:
    base = dict(gateway_port=None, sweep_interval=0.05, connect_timeout=1.0, bind_retry_interval=0.2)
    base.update(kw)
    return ProxySettings(**base)  # type: ignore[arg-type]


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    p = Proxy(settings())
    await p.start()
    yield p
    await p.close()


async def test_gateway_routes_by_host() -> None:
    gport = free_port("127.0.0.1")
    p = Proxy(settings(gateway_port=gport))
    await p.start()
    try:
        web_ip, api_ip, api_admin_ip = loopback_ip("127.97"), loopback_ip("127.97"), loopback_ip("127.97")
        bport = free_port(web_ip)
        runners = [await http_backend(ip, bport) for ip in (web_ip, api_ip, api_admin_ip)]
        apport = free_port(api_admin_ip)
        runners.append(await http_backend(api_admin_ip, apport))
        vip1, vip2 = loopback_ip(), loopback_ip()
        p.apply(
            added("services", service("web", vip1, [{"port": 80}]))
        )  # port 80: may not bind, the gateway still routes
        p.apply(added("endpoints", endpoints("web", [web_ip], [{"port": bport}])))
        ports = [{"name": "http", "port": 8080}, {"name": "admin", "port": 9090}]
        p.apply(added("services", service("api", vip2, ports, namespace="shop")))
        eps = endpoints("api", [api_ip], [{"name": "http", "port": bport}], namespace="shop")
        eps["subsets"].append({"addresses": [{"ip": api_admin_ip}], "ports": [{"name": "admin", "port": apport}]})
        p.apply(added("endpoints", eps))
        await p.sync()
        conn = await HttpConn.open("127.0.0.1", gport)
        cases = {
            "web": web_ip,
            "web.default": web_ip,
            f"web.default:{gport}": web_ip,
            "api.shop": api_ip,
            "API.shop.svc": api_ip,
            "api.shop.svc.cluster.local": api_ip,
            "api.shop.svc.cluster.local:9090": api_admin_ip,
            "api.shop:8080": api_ip,
        }
        for host, want in cases.items():
            status, _, body = await conn.request(host=host)
            assert status == 200, (host, body)
            doc = json.loads(body)
            assert doc["backend"] == want, host
            assert doc["xfh"] == host
        status, _, body = await conn.request(host="nope.shop")
        assert status == 404 and b"nope.shop" in body
        conn.close()
        for r in runners:
            await r.cleanup()
    finally:
        await p.close()


async def test_udp_relay_per_flow(proxy: Proxy) -> None:
    ips = [loopback_ip("127.97") for _ in range(2)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((ips[0], 0))
        bport = s.getsockname()[1]
    loop = asyncio.get_running_loop()

    class Echo(asyncio.DatagramProtocol):
        def __init__(self, ip: str) -> None:
            self.ip = ip

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.transport.sendto(self.ip.encode() + b" " + data, addr)  # type: ignore[attr-defined]

    echoes = [(await loop.create_datagram_endpoint(lambda ip=ip: Echo(ip), local_addr=(ip, bport)))[0] for ip in ips]
    vip = loopback_ip()
    port = free_port(vip, socket.SOCK_DGRAM)
    proxy.apply(added("services", service("dns", vip, [{"name": "dns", "port": port, "protocol": "UDP"}])))
    proxy.apply(added("endpoints", endpoints("dns", ips, [{"name": "dns", "port": bport, "protocol": "UDP"}])))
    await proxy.sync()

    def ask(sock: socket.socket, payload: bytes) -> bytes:
        sock.sendto(payload, (vip, port))
        return sock.recvfrom(65535)[0]

    clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
    try:
        for c in clients:
            c.settimeout(2)
        answers = []
        for c in clients:
            first = await asyncio.to_thread(ask, c, b"ping")
            again = await asyncio.to_thread(ask, c, b"again")
            assert first.endswith(b" ping") and again.split()[0] == first.split()[0]  # a flow sticks
            answers.append(first.split()[0].decode())
        assert answers[0] != answers[1] and answers[0] == answers[2]  # flows are round-robined
    finally:
        for c in clients:
            c.close()
        for e in echoes:
            e.close()


async def test_bind_failure_is_reported_and_others_keep_working(proxy: Proxy) -> None:
    ips = [loopback_ip("127.97")]
    bport = free_port(ips[0])
    server = await tcp_backend(ips[0], bport)
    vip = loopback_ip()
    busy = socket.socket()
    busy.bind((vip, 0))
    busy.listen()
    busy_port = busy.getsockname()[1]
    ok_port = free_port(vip)
    proxy.apply(
        added("services", service("two", vip, [{"name": "a", "port": busy_port}, {"name": "b", "port": ok_port}]))
    )
    proxy.apply(added("endpoints", endpoints("two", ips, [{"name": "a", "port": bport}, {"name": "b", "port": bport}])))
    await proxy.sync()
    problems = proxy.problems()
    assert len(problems) == 1
    assert (
        problems[0]["reason"] == "AddressInUse"
        and problems[0]["port"] == busy_port
        and "default/two" in problems[0]["message"]
    )
    assert "ss -lpn" in problems[0]["fix"]
    assert await tcp_hello(vip, ok_port) == ips[0]
    busy.close()  # the port frees up: the proxy retries by itself
    for _ in range(40):
        await asyncio.sleep(0.05)
        if not proxy.problems():
            break
    assert proxy.problems() == []
    assert await tcp_hello(vip, busy_port) == ips[0]
    proxy.apply(deleted("services", service("two", vip, [])))
    await proxy.sync()
    assert proxy.listening() == []
    server.close()


class DenyFrom:
    def __init__(self, src: str) -> None:
        self.src = src
        self.calls: list[tuple[str, str, int, str]] = []

    def check(self, src_ip: str, dst_ip: str, dst_port: int, protocol: str) -> tuple[bool, str]:
        self.calls.append((src_ip, dst_ip, dst_port, protocol))
        if src_ip == self.src:
            return False, 'no policy in namespace "default" allows ingress from 127.x (isolated by default/deny-all)'
        return True, "default/allow-web"


async def test_policy_hook_denies_tcp_and_http(proxy: Proxy) -> None:
    tips, hips = [loopback_ip("127.97")], [loopback_ip("127.97")]
    tport, hport_b = free_port(tips[0]), free_port(hips[0])
    server = await tcp_backend(tips[0], tport)
    runner = await http_backend(hips[0], hport_b)
    vip = loopback_ip()
    raw, http = free_port(vip), free_port(vip)
    proxy.apply(added("services", service("raw", vip, [{"port": raw}])))
    proxy.apply(added("endpoints", endpoints("raw", tips, [{"port": tport}])))
    proxy.apply(added("services", service("web", vip, [{"name": "http", "port": http}])))
    proxy.apply(added("endpoints", endpoints("web", hips, [{"name": "http", "port": hport_b}])))
    await proxy.sync()
    bad, good = loopback_ip("127.98"), loopback_ip("127.98")
    policy = DenyFrom(bad)
    proxy.policy = policy
    assert await tcp_hello(vip, raw, local_ip=bad) == ""
    assert await tcp_hello(vip, raw, local_ip=good) == tips[0]
    assert (bad, tips[0], tport, "TCP") in policy.calls
    conn = await HttpConn.open(vip, http, local_ip=bad)
    status, _, body = await conn.request(host="web")
    assert status == 403 and b"default/deny-all" in body
    conn.close()
    conn = await HttpConn.open(vip, http, local_ip=good)
    status, _, body = await conn.request(host="web")
    assert status == 200 and json.loads(body)["xff"] == good
    conn.close()
    proxy.policy = None  # policies removed: new connections are allowed
    assert await tcp_hello(vip, raw, local_ip=bad) == tips[0]
    server.close()
    await runner.cleanup()


async def test_slow_and_half_open_clients_time_out() -> None:
    p = Proxy(settings(header_timeout=0.3, keepalive_timeout=0.3, idle_timeout=0.3))
    await p.start()
    try:
        tips = [loopback_ip("127.97")]
        bport = free_port(tips[0])
        server = await tcp_backend(tips[0], bport)
        runner = await http_backend(tips[0], free_port(tips[0]))
        hb = runner.addresses[0][1]
        vip = loopback_ip()
        raw, http = free_port(vip), free_port(vip)
        p.apply(added("services", service("raw", vip, [{"port": raw}])))
        p.apply(added("endpoints", endpoints("raw", tips, [{"port": bport}])))
        p.apply(added("services", service("web", vip, [{"name": "http", "port": http}])))
        p.apply(added("endpoints", endpoints("web", tips, [{"name": "http", "port": hb}])))
        await p.sync()
        slow = await HttpConn.open(vip, http)
        slow.writer.write(b"GET / HTTP/1.1\r\nHo")  # never finishes its head
        idle = await HttpConn.open(vip, http)
        assert (await idle.request(host="web"))[0] == 200  # then stays idle on keep-alive
        reader, writer = await asyncio.open_connection(vip, raw)  # a TCP client that goes silent
        await reader.readline()
        assert await slow.closed_by_peer(2) and await idle.closed_by_peer(2)
        async with asyncio.timeout(2):
            assert await reader.read() == b""
        writer.close()
        slow.close()
        idle.close()
        server.close()
        await runner.cleanup()
    finally:
        await p.close()


async def test_websocket_upgrade_is_tunnelled(proxy: Proxy) -> None:
    ip = loopback_ip("127.97")
    bport = free_port(ip)

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for msg in sock:
            await sock.send_str("echo " + msg.data)
        return sock

    app = web.Application()
    app.router.add_get("/ws", ws)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, ip, bport).start()
    vip = loopback_ip()
    port = free_port(vip)
    proxy.apply(added("services", service("ws", vip, [{"name": "http", "port": port}])))
    proxy.apply(added("endpoints", endpoints("ws", [ip], [{"name": "http", "port": bport}])))
    await proxy.sync()
    async with aiohttp.ClientSession() as session, session.ws_connect(f"http://{vip}:{port}/ws") as sock:
        for i in range(3):
            await sock.send_str(f"m{i}")
            assert (await sock.receive_str(timeout=2)) == f"echo m{i}"
    await runner.cleanup()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_no_task_or_socket_leak_when_either_side_goes_away(proxy: Proxy) -> None:
    tips = [loopback_ip("127.97") for _ in range(2)]
    bport = free_port(tips[0])
    servers = [await tcp_backend(ip, bport) for ip in tips]
    hang_ip = loopback_ip("127.97")
    hport = free_port(hang_ip)

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if b"/close" in head:
            writer.close()  # goes away without answering
            return
        await reader.read()  # never answers; ends when the proxy hangs up
        writer.close()

    hanger = await asyncio.start_server(hang, hang_ip, hport)
    vip = loopback_ip()
    raw, http = free_port(vip), free_port(vip)
    proxy.apply(added("services", service("raw", vip, [{"port": raw}])))
    proxy.apply(added("endpoints", endpoints("raw", tips, [{"port": bport}])))
    proxy.apply(added("services", service("web", vip, [{"name": "http", "port": http}])))
    proxy.apply(added("endpoints", endpoints("web", [hang_ip], [{"name": "http", "port": hport}])))
    await proxy.sync()
    await asyncio.sleep(0.05)
    tasks0, fds0 = len(asyncio.all_tasks()), open_fds()

    for _ in range(3):
        # TCP: clients vanish abruptly
        conns = [await asyncio.open_connection(vip, raw) for _ in range(10)]
        for reader, writer in conns:
            await reader.readline()
            writer.transport.abort()
        # TCP: the backend goes away, the client is told
        reader, writer = await asyncio.open_connection(vip, raw)
        await reader.readline()
        writer.write(b"bye\n")
        async with asyncio.timeout(2):
            assert await reader.read() == b""
        writer.close()
        # HTTP: the client vanishes while its request is in flight
        for _ in range(5):
            conn = await HttpConn.open(vip, http)
            conn.send(host="web")
            await asyncio.sleep(0.01)
            conn.writer.transport.abort()
        # HTTP: the backend goes away without answering
        conn = await HttpConn.open(vip, http)
        status, _, body = await conn.request(path="/close", host="web")
        assert status == 502 and b"default/web" in body
        conn.close()

    for _ in range(40):
        await asyncio.sleep(0.05)
        if len(asyncio.all_tasks()) <= tasks0 and open_fds() <= fds0:
            break
    assert len(asyncio.all_tasks()) <= tasks0, "\n".join(repr(t) for t in asyncio.all_tasks())
    assert open_fds() <= fds0
    assert proxy._ctx is not None and not proxy._ctx.live
    for s in servers:
        s.close()
    hanger.close()


async def test_gateway_bind_is_retried_and_reports_its_real_port() -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    gport = holder.getsockname()[1]
    p = Proxy(settings(gateway_port=gport))
    await p.start()
    try:
        problems = p.problems()
        assert len(problems) == 1 and problems[0]["for"] == "the service gateway"
        assert "retries" in problems[0]["fix"] and p.gateway_address is None
        holder.close()  # the port frees up: the sweeper binds the gateway by itself
        for _ in range(60):
            await asyncio.sleep(0.05)
            if p.gateway_address is not None:
                break
        assert p.gateway_address == f"127.0.0.1:{gport}" and p.problems() == []
        conn = await HttpConn.open("127.0.0.1", gport)
        status, _, body = await conn.request(host="nope")
        assert status == 404 and b"nope" in body
        conn.close()
    finally:
        holder.close()
        await p.close()


async def test_gateway_on_port_0_is_named_by_its_bound_port(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="emulator.proxy")
    p = Proxy(settings(gateway_port=0))
    await p.start()
    try:
        address = p.gateway_address
        assert address is not None and not address.endswith(":0")
        assert any(f"http://{address}" in r.getMessage() for r in caplog.records)
        assert not any("127.0.0.1:0" in r.getMessage() for r in caplog.records)
        vip = loopback_ip()
        busy = socket.socket()
        busy.bind((vip, 0))
        busy.listen()
        proxy_port = busy.getsockname()[1]
        p.apply(added("services", service("web", vip, [{"name": "http", "port": proxy_port}])))
        await p.sync()
        (problem,) = p.problems()
        assert f"http://{address}" in problem["fix"] and "127.0.0.1:0" not in problem["fix"]
        busy.close()
    finally:
        await p.close()


class UdpEcho(asyncio.DatagramProtocol):
    """Answers each datagram with its own address and the datagram."""

    def __init__(self, ip: str) -> None:
        self.ip = ip

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(self.ip.encode() + b" " + data, addr)  # type: ignore[attr-defined]


async def udp_service(proxy: Proxy, n: int) -> tuple[list[str], int, str, int, list[asyncio.BaseTransport]]:
    ips = [loopback_ip("127.97") for _ in range(n)]
    bport = free_port(ips[0], socket.SOCK_DGRAM)
    loop = asyncio.get_running_loop()
    echoes = [(await loop.create_datagram_endpoint(lambda ip=ip: UdpEcho(ip), local_addr=(ip, bport)))[0] for ip in ips]
    vip = loopback_ip()
    port = free_port(vip, socket.SOCK_DGRAM)
    proxy.apply(added("services", service("dns", vip, [{"name": "dns", "port": port, "protocol": "UDP"}])))
    proxy.apply(added("endpoints", endpoints("dns", ips, [{"name": "dns", "port": bport, "protocol": "UDP"}])))
    await proxy.sync()
    return ips, bport, vip, port, echoes


async def ask_udp(sock: socket.socket, vip: str, port: int, payload: bytes = b"ping") -> str:
    def ask() -> bytes:
        sock.sendto(payload, (vip, port))
        return sock.recvfrom(65535)[0]

    return (await asyncio.to_thread(ask)).split()[0].decode()


def udp_client() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2)
    sock.bind(("127.0.0.1", 0))
    return sock


def udp_flows(proxy: Proxy) -> dict:
    assert proxy._listeners is not None
    (binding,) = [b for b in proxy._listeners.bound.values() if b.udp is not None]
    return binding.udp.flows


async def test_udp_flow_leaves_a_removed_endpoint(proxy: Proxy) -> None:
    ips, bport, vip, port, echoes = await udp_service(proxy, 2)
    with udp_client() as client:
        first = await ask_udp(client, vip, port)
        assert await ask_udp(client, vip, port) == first
        # that endpoint leaves the service (its process still answers): the flow must move
        rest = [ip for ip in ips if ip != first]
        proxy.apply(added("endpoints", endpoints("dns", rest, [{"name": "dns", "port": bport, "protocol": "UDP"}])))
        for _ in range(3):
            assert await ask_udp(client, vip, port) == rest[0]
    for e in echoes:
        e.close()


async def test_idle_expiry_is_on_time() -> None:
    p = Proxy(settings(udp_timeout=1.0, idle_timeout=1.0))
    await p.start()
    try:
        ips, _, vip, port, echoes = await udp_service(p, 1)
        tips = [loopback_ip("127.97")]
        tport = free_port(tips[0])
        server = await tcp_backend(tips[0], tport)
        raw = free_port(vip)
        p.apply(added("services", service("raw", vip, [{"port": raw}])))
        p.apply(added("endpoints", endpoints("raw", tips, [{"port": tport}])))
        await p.sync()
        loop = asyncio.get_running_loop()
        with udp_client() as client:
            reader, writer = await asyncio.open_connection(vip, raw)
            await reader.readline()
            await ask_udp(client, vip, port)
            await asyncio.sleep(0.1)  # activity just after the start, then quiet
            writer.write(b"x\n")
            await reader.readline()
            await ask_udp(client, vip, port)
            quiet_since = loop.time()
            async with asyncio.timeout(3):
                assert await reader.read() == b""  # closed for idleness
            closed_after = loop.time() - quiet_since
            assert 0.9 < closed_after < 1.5, closed_after  # the timeout, not up to twice it
            assert not udp_flows(p)
        writer.close()
        server.close()
        for e in echoes:
            e.close()
    finally:
        await p.close()


async def test_udp_flows_are_capped_least_recently_used_first() -> None:
    p = Proxy(settings(udp_max_flows=3))
    await p.start()
    try:
        _, _, vip, port, echoes = await udp_service(p, 1)
        clients = [udp_client() for _ in range(4)]
        try:
            for c in clients[:3]:
                await ask_udp(c, vip, port)
            await asyncio.sleep(0.15)  # a sweep or two later, the first client is heard from again
            await ask_udp(clients[0], vip, port)
            await ask_udp(clients[3], vip, port)
            flows = udp_flows(p)
            assert len(flows) == 3
            assert set(flows) == {c.getsockname() for c in (clients[0], clients[2], clients[3])}
            assert await ask_udp(clients[1], vip, port)  # an evicted client just opens a new flow
        finally:
            for c in clients:
                c.close()
        for e in echoes:
            e.close()
    finally:
        await p.close()


async def test_repeated_denials_are_logged_once_per_interval(
    proxy: Proxy, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from emulator.proxy import context

    monkeypatch.setattr(context, "DENIAL_LOG_INTERVAL", 0.5)
    hips = [loopback_ip("127.97")]
    runner = await http_backend(hips[0], free_port(hips[0]))
    vip = loopback_ip()
    http = free_port(vip)
    proxy.apply(added("services", service("web", vip, [{"name": "http", "port": http}])))
    proxy.apply(added("endpoints", endpoints("web", hips, [{"name": "http", "port": runner.addresses[0][1]}])))
    await proxy.sync()
    bad = loopback_ip("127.98")
    proxy.policy = DenyFrom(bad)
    caplog.set_level("WARNING", logger="emulator.proxy")

    def denials() -> list[str]:
        return [r.getMessage() for r in caplog.records if "network policy denied" in r.getMessage()]

    conn = await HttpConn.open(vip, http, local_ip=bad)
    for _ in range(20):
        assert (await conn.request(host="web"))[0] == 403  # every request is still denied
    assert len(denials()) == 1
    await asyncio.sleep(0.6)
    assert (await conn.request(host="web"))[0] == 403
    assert len(denials()) == 2 and "19 more" in denials()[1]
    conn.close()
    await runner.cleanup()
