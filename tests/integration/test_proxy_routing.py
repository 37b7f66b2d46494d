"""The proxy with real sockets: round-robin, readiness, NodePort/LoadBalancer addresses, failover,
no endpoints, ClientIP affinity — in TCP mode and HTTP mode."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

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
    http_service,
    loopback_ip,
    modified,
    service,
    tcp_backend,
    tcp_hello,
)


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    p = Proxy(ProxySettings(gateway_port=None, sweep_interval=0.1, connect_timeout=1.0))
    await p.start()
    yield p
    await p.close()


async def start_tcp_backends(n: int) -> tuple[list[str], int, list[asyncio.AbstractServer]]:
    ips = [loopback_ip("127.97") for _ in range(n)]
    port = free_port(ips[0])
    servers = [await tcp_backend(ip, port) for ip in ips]
    return ips, port, servers


async def start_http_backends(n: int) -> tuple[list[str], int, list]:
    ips = [loopback_ip("127.97") for _ in range(n)]
    port = free_port(ips[0])
    runners = [await http_backend(ip, port) for ip in ips]
    return ips, port, runners


def rotation_ok(seen: list[str], ips: list[str]) -> bool:
    """Exact round-robin: each window of len(ips) consecutive picks holds every backend once, in the
    same cyclic order."""
    n = len(ips)
    return sorted(seen[:n]) == sorted(ips) and all(seen[i] == seen[i % n] for i in range(len(seen)))


async def test_tcp_round_robin_per_connection(proxy: Proxy) -> None:
    ips, bport, servers = await start_tcp_backends(3)
    vip, port = loopback_ip(), 0
    port = free_port(vip)
    proxy.apply(added("services", service("echo", vip, [{"port": port, "targetPort": bport}])))
    proxy.apply(added("endpoints", endpoints("echo", ips, [{"port": bport}])))
    await proxy.sync()
    seen = [await tcp_hello(vip, port) for _ in range(9)]
    assert rotation_ok(seen, ips), seen
    # and the bytes really flow both ways
    reader, writer = await asyncio.open_connection(vip, port)
    await reader.readline()
    writer.write(b"x" * 300_000)
    got = await reader.readexactly(300_000)
    assert got == b"x" * 300_000
    writer.close()
    for s in servers:
        s.close()


async def test_tcp_source_address_is_preserved(proxy: Proxy) -> None:
    ips, bport, servers = await start_tcp_backends(1)
    vip = loopback_ip()
    port = free_port(vip)
    proxy.apply(added("services", service("echo", vip, [{"port": port}])))
    proxy.apply(added("endpoints", endpoints("echo", ips, [{"port": bport}])))
    await proxy.sync()
    pod_ip = loopback_ip("127.98")
    reader, writer = await asyncio.open_connection(vip, port, local_addr=(pod_ip, 0))
    await reader.readline()
    writer.write(b"peer?\n")
    assert (await reader.readline()).decode().strip() == pod_ip
    writer.close()
    servers[0].close()


async def test_http_round_robin_per_request_on_one_connection(proxy: Proxy) -> None:
    ips, bport, runners = await start_http_backends(3)
    vip = loopback_ip()
    port = free_port(vip)
    proxy.apply(added("services", service("web", vip, [{"name": "http", "port": port, "targetPort": "web"}])))
    proxy.apply(added("endpoints", endpoints("web", ips, [{"name": "http", "port": bport}])))
    await proxy.sync()
    conn = await HttpConn.open(vip, port)
    seen, bodies = [], []
    for i in range(9):
        if i % 3 == 1:
            status, _, body = await conn.request(
                "POST", f"/p{i}", host=f"web:{port}", body=b"hello" * 1000, chunked=i == 4
            )
        else:
            status, _, body = await conn.request("GET", f"/g{i}", host=f"web:{port}")
        assert status == 200
        doc = json.loads(body)
        seen.append(doc["backend"])
        bodies.append(doc)
    assert rotation_ok(seen, ips), seen
    assert bodies[1]["body"] == "hello" * 1000 and bodies[4]["body"] == "hello" * 1000
    assert bodies[0]["xff"] == "127.0.0.1" and bodies[0]["xfh"] == f"web:{port}" and bodies[0]["xfp"] == "http"
    assert bodies[0]["path"] == "/g0"
    # pipelined requests are answered in order
    for i in range(3):
        conn.send("GET", f"/pipe{i}", host="web")
    paths = [json.loads((await conn.response())[2])["path"] for _ in range(3)]
    assert paths == ["/pipe0", "/pipe1", "/pipe2"]
    conn.close()
    for r in runners:
        await r.cleanup()


async def test_http_head_then_get(proxy: Proxy) -> None:
    ips, bport, runners = await start_http_backends(1)
    vip = loopback_ip()
    port = free_port(vip)
    proxy.apply(added("services", service("web", vip, [{"name": "http-api", "port": port}])))
    proxy.apply(added("endpoints", endpoints("web", ips, [{"name": "http-api", "port": bport}])))
    await proxy.sync()
    reader, writer = await asyncio.open_connection(vip, port)
    writer.write(b"HEAD / HTTP/1.1\r\nHost: web\r\n\r\nGET /after HTTP/1.1\r\nHost: web\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
    assert head.startswith(b"HTTP/1.1 200")
    second = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
    assert second.startswith(b"HTTP/1.1 200")
    length = int([ln for ln in second.split(b"\r\n") if ln.lower().startswith(b"content-length")][0].split(b":")[1])
    assert json.loads(await reader.readexactly(length))["path"] == "/after"
    writer.close()
    await runners[0].cleanup()


async def test_readiness_flip_and_removal_take_endpoint_out(proxy: Proxy) -> None:
    ips, bport, servers = await start_tcp_backends(3)
    vip = loopback_ip()
    port = free_port(vip)
    proxy.apply(added("services", service("echo", vip, [{"port": port}])))
    proxy.apply(added("endpoints", endpoints("echo", ips, [{"port": bport}])))
    await proxy.sync()
    assert set([await tcp_hello(vip, port) for _ in range(3)]) == set(ips)
    # ips[1] becomes not ready
    proxy.apply(modified("endpoints", endpoints("echo", [ips[0], ips[2]], [{"port": bport}], not_ready=[ips[1]])))
    assert set([await tcp_hello(vip, port) for _ in range(6)]) == {ips[0], ips[2]}
    # ips[0] deleted (pod gone)
    proxy.apply(modified("endpoints", endpoints("echo", [ips[2]], [{"port": bport}], not_ready=[ips[1]])))
    assert set([await tcp_hello(vip, port) for _ in range(4)]) == {ips[2]}
    for s in servers:
        s.close()


async def test_nodeport_and_loadbalancer_addresses(proxy: Proxy) -> None:
    ips, bport, runners = await start_http_backends(1)
    vip, lb_ip = loopback_ip(), loopback_ip("127.99")
    port = free_port(vip)
    node_port = free_port("127.0.0.1")
    svc = service(
        "lb",
        vip,
        [{"name": "http", "port": port, "nodePort": node_port}],
        type="LoadBalancer",
        status={"loadBalancer": {"ingress": [{"ip": lb_ip}]}},
    )
    proxy.apply(added("services", svc))
    proxy.apply(added("endpoints", endpoints("lb", ips, [{"name": "http", "port": bport}])))
    await proxy.sync()
    for ip, p in ((vip, port), ("127.0.0.1", node_port), (lb_ip, port)):
        conn = await HttpConn.open(ip, p)
        status, _, body = await conn.request(host="lb")
        assert status == 200 and json.loads(body)["backend"] == ips[0], (ip, p)
        conn.close()
    assert {(d["address"], d["port"]) for d in proxy.listening()} == {
        (vip, port),
        ("127.0.0.1", node_port),
        (lb_ip, port),
    }
    await runners[0].cleanup()


async def test_failover_skips_dead_endpoint(proxy: Proxy) -> None:
    ips, bport, servers = await start_tcp_backends(2)
    dead = loopback_ip("127.97")  # nothing listens there: connection refused
    vip = loopback_ip()
    port = free_port(vip)
    proxy.apply(added("services", service("echo", vip, [{"port": port}])))
    proxy.apply(added("endpoints", endpoints("echo", [ips[0], dead, ips[1]], [{"port": bport}])))
    await proxy.sync()
    seen = [await tcp_hello(vip, port) for _ in range(6)]
    assert set(seen) == set(ips) and "" not in seen
    for s in servers:
        s.close()


async def test_http_failover_and_all_dead_is_502(proxy: Proxy) -> None:
    ips, bport, runners = await start_http_backends(1)
    dead = loopback_ip("127.97")
    vip, port = await http_service(proxy, [dead, ips[0]], bport)
    conn = await HttpConn.open(vip, port)
    for _ in range(4):
        status, _, body = await conn.request(host="web")
        assert status == 200 and json.loads(body)["backend"] == ips[0]
    proxy.apply(modified("endpoints", endpoints("web", [dead], [{"name": "http", "port": bport}])))
    status, _, body = await conn.request(host="web")
    assert status == 502 and b"default/web" in body and b"refused" in body.lower()
    conn.close()
    await runners[0].cleanup()


async def test_no_endpoints_http_503_and_tcp_close(proxy: Proxy) -> None:
    vip = loopback_ip()
    hport, tport = free_port(vip), free_port(vip)
    proxy.apply(
        added(
            "services",
            service("empty", vip, [{"name": "http", "port": hport}, {"name": "raw", "port": tport}], namespace="shop"),
        )
    )
    await proxy.sync()
    conn = await HttpConn.open(vip, hport)
    status, _, body = await conn.request(host="empty.shop")
    assert status == 503 and b'"shop/empty"' in body
    status, _, _ = await conn.request(host="empty.shop")  # keep-alive survives a 503
    assert status == 503
    conn.close()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await tcp_hello(vip, tport) == ""
    assert loop.time() - t0 < 1.0


async def test_client_ip_affinity(proxy: Proxy) -> None:
    ips, bport, servers = await start_tcp_backends(3)
    vip = loopback_ip()
    port = free_port(vip)
    svc = service(
        "sticky",
        vip,
        [{"port": port}],
        sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 1}},
    )
    proxy.apply(added("services", svc))
    proxy.apply(added("endpoints", endpoints("sticky", ips, [{"port": bport}])))
    await proxy.sync()
    a, b = loopback_ip("127.98"), loopback_ip("127.98")
    first_a = {await tcp_hello(vip, port, local_ip=a) for _ in range(5)}
    first_b = {await tcp_hello(vip, port, local_ip=b) for _ in range(5)}
    assert len(first_a) == 1 and len(first_b) == 1 and first_a != first_b
    await asyncio.sleep(1.3)  # the pin expires after the timeout of quiet
    proxy.apply(modified("services", service("sticky", vip, [{"port": port}])))  # affinity off: round-robin again
    assert len({await tcp_hello(vip, port, local_ip=a) for _ in range(3)}) == 3
    for s in servers:
        s.close()


def test_round_robin_under_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        p = Proxy(ProxySettings(gateway_port=None))
        await p.start()
        try:
            ips, bport, runners = await start_http_backends(2)
            tips, tport, servers = await start_tcp_backends(2)
            vip = loopback_ip()
            hport, rport = free_port(vip), free_port(vip)
            p.apply(added("services", service("web", vip, [{"name": "http", "port": hport}])))
            p.apply(added("endpoints", endpoints("web", ips, [{"name": "http", "port": bport}])))
            p.apply(added("services", service("raw", vip, [{"port": rport}])))
            p.apply(added("endpoints", endpoints("raw", tips, [{"port": tport}])))
            await p.sync()
            conn = await HttpConn.open(vip, hport)
            seen = [json.loads((await conn.request(host="web"))[2])["backend"] for _ in range(4)]
            assert rotation_ok(seen, ips)
            conn.close()
            assert rotation_ok([await tcp_hello(vip, rport) for _ in range(4)], tips)
            for r in runners:
                await r.cleanup()
            for s in servers:
                s.close()
        finally:
            await p.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


async def test_keep_alive_client_follows_a_recreated_service(proxy: Proxy) -> None:
    ips, bport, runners = await start_http_backends(2)
    vip = loopback_ip()
    port = free_port(vip)
    web = service("web", vip, [{"name": "http", "port": port}])
    proxy.apply(added("services", web))
    proxy.apply(added("endpoints", endpoints("web", [ips[0]], [{"name": "http", "port": bport}])))
    await proxy.sync()
    conn = await HttpConn.open(vip, port)
    assert json.loads((await conn.request(host="web"))[2])["backend"] == ips[0]
    # deleted and created again (one reconcile: the socket stays bound), now with another endpoint
    proxy.apply(deleted("services", web))
    proxy.apply(deleted("endpoints", endpoints("web", [ips[0]], [{"name": "http", "port": bport}])))
    proxy.apply(added("services", web))
    proxy.apply(added("endpoints", endpoints("web", [ips[1]], [{"name": "http", "port": bport}])))
    await proxy.sync()
    for _ in range(3):
        status, _, body = await conn.request(host="web")
        assert status == 200 and json.loads(body)["backend"] == ips[1]
    # deleted for good: the connection that outlived it gets 503, not the old endpoint
    proxy.apply(deleted("services", web))
    await proxy.sync()
    status, _, body = await conn.request(host="web")
    assert status == 503 and b"default/web" in body
    conn.close()
    for r in runners:
        await r.cleanup()


async def test_two_services_claiming_one_external_ip(proxy: Proxy) -> None:
    ips, bport, servers = await start_tcp_backends(2)
    vip_a, vip_b, shared = loopback_ip(), loopback_ip(), loopback_ip("127.99")
    port = free_port(shared)
    a = service("a", vip_a, [{"port": port}], externalIPs=[shared])
    b = service("b", vip_b, [{"port": port}], externalIPs=[shared])
    proxy.apply(added("services", a))
    proxy.apply(added("endpoints", endpoints("a", [ips[0]], [{"port": bport}])))
    proxy.apply(added("services", b))
    proxy.apply(added("endpoints", endpoints("b", [ips[1]], [{"port": bport}])))
    await proxy.sync()
    assert await tcp_hello(shared, port) == ips[0]  # the first claimant keeps it
    conflicts = [p for p in proxy.problems() if p["reason"] == "AddressConflict"]
    assert len(conflicts) == 1 and conflicts[0]["address"] == shared and conflicts[0]["port"] == port
    assert "default/b" in conflicts[0]["message"] and "default/a" in conflicts[0]["message"]
    assert conflicts[0]["fix"]
    # the first goes away: the address stays bound and serves the other
    proxy.apply(deleted("services", a))
    await proxy.sync()
    assert await tcp_hello(shared, port) == ips[1]
    assert proxy.problems() == []
    assert (shared, port) in {(d["address"], d["port"]) for d in proxy.listening()}
    for s in servers:
        s.close()


async def test_http10_client_gets_no_chunked_response(proxy: Proxy) -> None:
    ip = loopback_ip("127.97")
    bport = free_port(ip)

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # no length: chunked to an HTTP/1.1 request
        await response.prepare(request)
        await response.write(b"part one, ")
        await response.write(b"part two")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/", stream)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, ip, bport).start()
    vip, port = await http_service(proxy, [ip], bport)
    reader, writer = await asyncio.open_connection(vip, port)
    writer.write(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
    async with asyncio.timeout(3):
        response = await reader.read()  # an HTTP/1.0 exchange ends with the connection
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0]
    assert b"chunked" not in head.lower(), head
    assert body == b"part one, part two"
    writer.close()
    # HTTP/1.1 clients still get it chunked, on a connection that stays open
    conn = await HttpConn.open(vip, port)
    conn.send(host="web")
    async with asyncio.timeout(3):
        head = await conn.reader.readuntil(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    conn.close()
    await runner.cleanup()


async def test_proxy_answers_to_head_have_no_body(proxy: Proxy) -> None:
    vip = loopback_ip()
    port = free_port(vip)
    proxy.apply(added("services", service("empty", vip, [{"name": "http", "port": port}])))
    await proxy.sync()
    reader, writer = await asyncio.open_connection(vip, port)
    writer.write(b"HEAD / HTTP/1.1\r\nHost: empty\r\n\r\n")
    async with asyncio.timeout(3):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503") and b"content-length: " in head.lower()
    writer.write(b"GET / HTTP/1.1\r\nHost: empty\r\n\r\n")  # the next response starts right after the head
    async with asyncio.timeout(3):
        second = await reader.readuntil(b"\r\n\r\n")
    assert second.startswith(b"HTTP/1.1 503"), second
    writer.close()


async def test_pipelined_upgrade_is_refused(proxy: Proxy) -> None:
    ips, bport, runners = await start_http_backends(1)
    vip, port = await http_service(proxy, ips, bport)
    conn = await HttpConn.open(vip, port)
    conn.writer.write(
        b"GET /slow?s=0.3 HTTP/1.1\r\nHost: web\r\n\r\n"
        b"GET /ws HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        b"TUNNEL BYTES"
    )
    status, _, body = await conn.response()
    assert status == 200 and json.loads(body)["path"] == "/slow?s=0.3"
    status, headers, body = await conn.response()
    assert status == 400 and b"pipelined" in body and headers.get("connection") == "close"
    assert await conn.closed_by_peer()
    # the endpoint's pooled connection did not get the tunnel bytes: the next client is served normally
    conn = await HttpConn.open(vip, port)
    for _ in range(2):
        status, _, body = await conn.request(host="web")
        assert status == 200 and json.loads(body)["path"] == "/"
    conn.close()
    await runners[0].cleanup()
