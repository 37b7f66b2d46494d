"""HTTP/2 on the gateway (emulator/proxy/h2.py) with real sockets: an asyncio server speaking H2Gateway,
a RoutingConfig built by hand, a ProxyTable fed with Service/Endpoints events, real backends (a grpcio
server, an aiohttp HTTP/1.1 server) and real clients (grpcio, curl --http2-prior-knowledge, httpx)."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]
import httpx
import orjson
import pytest
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

from emulator.proxy.context import ProxyContext, ProxySettings
from emulator.proxy.h2 import H2Gateway, H2Upstreams, _grpc_message
from emulator.proxy.table import ProxyTable
from emulator.routing.model import (
    SHARED_HTTP,
    SHARED_HTTPS,
    Action,
    Entry,
    HeaderChanges,
    HeaderMatch,
    HostRoutes,
    ListenerKey,
    ListenerRoutes,
    Match,
    PathModifier,
    Redirect,
    Rewrite,
    RoutingConfig,
    ServiceBackend,
)
from emulator.store.events import ADDED, Event

CURL = shutil.which("curl")
_rv = 0


def _event(resource: str, obj: dict[str, Any]) -> Event:
    global _rv
    _rv += 1
    meta = obj["metadata"]
    return Event(ADDED, resource, meta.get("namespace", ""), meta["name"], _rv, orjson.dumps(obj))


def add_service(
    table: ProxyTable, name: str, port: int, target: int | None, app_protocol: str | None = None, ips: tuple[str, ...] = ("127.0.0.1",)
) -> None:
    """Service `default/<name>` with one port named "p" whose endpoints are <ip>:<target> (none when
    target is None)."""
    spec_port: dict[str, Any] = {"name": "p", "port": port, "protocol": "TCP"}
    if app_protocol:
        spec_port["appProtocol"] = app_protocol
    svc = {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "ClusterIP", "clusterIP": f"10.96.0.{len(table.all_routes()) + 10}", "ports": [spec_port]},
    }  # fmt: skip
    subsets = [{"addresses": [{"ip": ip} for ip in ips], "ports": [{"name": "p", "port": target}]}] if target else []
    eps = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": "default"}, "subsets": subsets}
    table.apply(_event("services", svc))
    table.apply(_event("endpoints", eps))


def route(name: str, port: int, source: str, **action: Any) -> Action:
    return Action(backends=(ServiceBackend("default", name, port=port),), source=source, **action)


# -- backends ---------------------------------------------------------------------------------------


@dataclass
class GrpcBackend:
    server: grpc.Server
    port: int
    peers: list[str] = field(default_factory=list)  # the connection each call arrived on
    ended: list[str] = field(default_factory=list)  # Chat calls that ended (completed or cancelled)


def start_grpc_backend() -> GrpcBackend:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    backend = GrpcBackend(server, 0)

    def chat(requests: Any, context: grpc.ServicerContext) -> Any:
        backend.peers.append(context.peer())
        context.add_callback(lambda: backend.ended.append(context.peer()))
        yield from requests

    def say(request: bytes, context: grpc.ServicerContext) -> bytes:
        backend.peers.append(context.peer())
        if request == b"fail":
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "asked to fail")
        context.set_trailing_metadata((("x-echo-trailer", "yes"),))
        return b"echo:" + request + b":" + dict(context.invocation_metadata()).get("x-added", "").encode()

    echo = grpc.method_handlers_generic_handler(
        "test.Echo",
        {"Chat": grpc.stream_stream_rpc_method_handler(chat), "Say": grpc.unary_unary_rpc_method_handler(say)},
    )
    server.add_generic_rpc_handlers((echo,))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    backend.port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return backend


async def start_http_backend() -> tuple[web.AppRunner, int]:
    """Answers with what it was asked (HTTP/1.1): method, path, headers, body length."""

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.path == "/slow":
            await asyncio.sleep(float(request.query["s"]))
        if request.path == "/big":
            return web.Response(body=b"x" * int(request.query["n"]), headers={"X-Backend": "h1"})
        return web.json_response(
            {
                "method": request.method,
                "path": request.path_qs,
                "version": f"{request.version.major}.{request.version.minor}",
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": len(body),
                "peer": request.transport.get_extra_info("peername")[1] if request.transport else 0,
            },
            headers={"X-Backend": "h1", "X-Drop": "me"},
        )

    app = web.Application(client_max_size=64 << 20)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


# -- the gateway ------------------------------------------------------------------------------------


class DenyAll:
    def check(self, src_ip: str, dst_ip: str, dst_port: int, protocol: str) -> tuple[bool, str]:
        return False, "policy default/deny-all"


@dataclass
class Gateway:
    ctx: ProxyContext
    table: ProxyTable
    port: int
    grpc: GrpcBackend
    http_port: int
    config: RoutingConfig
    tls_port: int = 0
    cert: bytes = b""

    def set_routes(self, listener: ListenerKey, routes: ListenerRoutes) -> None:
        self.config = RoutingConfig(listeners={**self.config.listeners, listener: routes})


def _tls_context(tmp: Path) -> tuple[ssl.SSLContext, bytes]:
    from cryptography.hazmat.primitives import serialization

    from emulator.security.tls import _new_key, self_signed_certificate

    key = _new_key()
    cert = self_signed_certificate(key, ["grpc.example", "web.example", "127.0.0.1"]).encode()
    (tmp / "tls.crt").write_bytes(cert)
    (tmp / "tls.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp / "tls.crt", tmp / "tls.key")
    context.set_alpn_protocols(["h2"])
    return context, cert


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Gateway]:
    loop = asyncio.get_running_loop()
    ctx = ProxyContext(ProxySettings(), None, loop)
    table = ProxyTable()
    grpc_backend = start_grpc_backend()
    runner, http_port = await start_http_backend()
    add_service(table, "grpc", 50051, grpc_backend.port, app_protocol="kubernetes.io/h2c")
    add_service(table, "web", 80, http_port)
    add_service(table, "empty", 80, None)
    g = Gateway(ctx, table, 0, grpc_backend, http_port, RoutingConfig())
    upstreams = H2Upstreams(ctx)

    def factory(listener: ListenerKey, tls: bool) -> Callable[[], H2Gateway]:
        return lambda: H2Gateway(ctx, lambda: g.config, table, listener, tls, upstreams)

    server = await loop.create_server(factory(SHARED_HTTP, False), "127.0.0.1", 0)
    g.port = server.sockets[0].getsockname()[1]
    context, g.cert = _tls_context(tmp_path)
    tls_server = await loop.create_server(factory(SHARED_HTTPS, True), "127.0.0.1", 0, ssl=context)
    g.tls_port = tls_server.sockets[0].getsockname()[1]
    try:
        yield g
    finally:
        server.close()
        tls_server.close()
        for conn in list(ctx.live):
            conn.shutdown()
        ctx.live.clear()
        upstreams.h1.close_all()
        await asyncio.sleep(0.05)
        grpc_backend.server.stop(None)
        await runner.cleanup()


def grpc_routes(source: str = "grpcroute default/g rule 0") -> ListenerRoutes:
    entries = (
        Entry(Match("Exact", "/grpc.health.v1.Health/Check"), route("grpc", 50051, source)),
        Entry(
            Match("PathPrefix", "/test.Echo"),
            route("grpc", 50051, source, request_headers=HeaderChanges(set=(("x-added", "by-gateway"),))),
        ),
        Entry(Match("PathPrefix", "/empty.Service"), route("empty", 80, source)),
    )
    return ListenerRoutes(exact={"grpc.example": HostRoutes(entries)})


def channel(port: int, authority: str = "grpc.example") -> grpc.Channel:
    return grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.default_authority", authority)])


async def in_thread(fn: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(fn)


# -- gRPC -------------------------------------------------------------------------------------------


async def test_grpc_route_matching_a_method_reaches_the_grpc_backend(gw: Gateway) -> None:
    gw.set_routes(SHARED_HTTP, grpc_routes())

    def call() -> Any:
        with channel(gw.port) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            return stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)

    reply = await in_thread(call)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_grpc_method_without_a_route_is_unimplemented(gw: Gateway) -> None:
    gw.set_routes(SHARED_HTTP, grpc_routes())

    def call() -> grpc.RpcError:
        with channel(gw.port) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            with pytest.raises(grpc.RpcError) as info:
                list(stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=5))
            return info.value

    error = await in_thread(call)
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED  # HTTP 404 from the gateway
    assert error.details() == 'no route for POST /grpc.health.v1.Health/Watch on host "grpc.example"'


async def test_grpc_without_endpoints_is_unavailable(gw: Gateway) -> None:
    gw.set_routes(SHARED_HTTP, grpc_routes())

    def call() -> grpc.RpcError:
        with channel(gw.port) as ch:
            with pytest.raises(grpc.RpcError) as info:
                ch.unary_unary("/empty.Service/Do")(b"x", timeout=5)
            return info.value

    error = await in_thread(call)
    assert error.code() == grpc.StatusCode.UNAVAILABLE  # HTTP 503, in gRPC's words
    assert error.details() == 'no endpoints available for service "default/empty" (port 80)'
    assert error.trailing_metadata() == ()  # a trailers-only answer: nothing but the status


def test_grpc_message_is_percent_encoded_utf8() -> None:
    assert _grpc_message('no route for "a b"') == b'no route for "a b"'
    assert _grpc_message("100% caf\u00e9\n") == b"100%25 caf%C3%A9%0A"


async def test_grpc_unary_headers_trailers_and_status_pass_through(gw: Gateway) -> None:
    gw.set_routes(SHARED_HTTP, grpc_routes())

    def call() -> tuple[bytes, dict[str, str], grpc.RpcError]:
        with channel(gw.port) as ch:
            say = ch.unary_unary("/test.Echo/Say")
            reply, rpc = say.with_call(b"hello", timeout=5)
            trailers = dict(rpc.trailing_metadata())
            with pytest.raises(grpc.RpcError) as info:
                say(b"fail", timeout=5)
            return reply, trailers, info.value

    reply, trailers, error = await in_thread(call)
    assert reply == b"echo:hello:by-gateway"  # the RequestHeaderModifier reached the backend
    assert trailers.get("x-echo-trailer") == "yes"
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == "asked to fail"


async def test_grpc_bidirectional_streaming_with_flow_control(gw: Gateway) -> None:
    gw.set_routes(SHARED_HTTP, grpc_routes())
    messages = [bytes([i % 256]) * (256 * 1024) for i in range(40)]  # 10 MiB each way, past every window

    def call() -> list[bytes]:
        with channel(gw.port) as ch:
            chat = ch.stream_stream("/test.Echo/Chat")
            return list(chat(iter(messages), timeout=30))

    assert await in_thread(call) == messages


async def test_client_cancel_reaches_the_backend_and_nothing_is_left_behind(gw: Gateway) -> None:
    gw.set_routes(SHARED_HTTP, grpc_routes())

    stop = threading.Event()

    def requests() -> Iterator[bytes]:
        yield b"one"
        while not stop.wait(0.05):
            yield b"more"

    def call() -> None:
        with channel(gw.port) as ch:
            chat = ch.stream_stream("/test.Echo/Chat")
            replies = chat(requests(), timeout=30)
            assert next(replies) == b"one"
            replies.cancel()
        stop.set()

    await in_thread(call)
    for _ in range(100):
        if gw.grpc.ended:
            break
        await asyncio.sleep(0.02)
    assert gw.grpc.ended, "the backend never learned that the client went away"
    await asyncio.sleep(0.1)
    for conn in gw.ctx.live:
        assert not getattr(conn, "streams", None), f"{type(conn).__name__} still holds streams"


async def test_h2c_upstream_connection_is_shared_across_streams_and_clients(gw: Gateway) -> None:
    gw.set_routes(SHARED_HTTP, grpc_routes())

    def calls() -> None:
        for _ in range(2):  # two client connections
            with channel(gw.port) as ch:
                say = ch.unary_unary("/test.Echo/Say")
                for i in range(3):
                    assert say(b"%d" % i, timeout=5).startswith(b"echo:")

    await in_thread(calls)
    assert len(gw.grpc.peers) == 6
    assert len(set(gw.grpc.peers)) == 1  # one multiplexed connection to the endpoint


async def test_grpc_by_service_name_host_uses_h2c_for_the_app_protocol(gw: Gateway) -> None:
    def call() -> Any:
        with channel(gw.port, authority="grpc.default:50051") as ch:
            return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)

    assert (await in_thread(call)).status == health_pb2.HealthCheckResponse.SERVING


async def test_grpc_over_tls_with_alpn_h2(gw: Gateway) -> None:
    gw.set_routes(SHARED_HTTPS, grpc_routes())

    def call() -> Any:
        creds = grpc.ssl_channel_credentials(root_certificates=gw.cert)
        options = [("grpc.ssl_target_name_override", "grpc.example"), ("grpc.default_authority", "grpc.example")]
        with grpc.secure_channel(f"127.0.0.1:{gw.tls_port}", creds, options=options) as ch:
            return ch.unary_unary("/test.Echo/Say")(b"tls", timeout=5)

    assert await in_thread(call) == b"echo:tls:by-gateway"


async def test_network_policy_denial_is_403(gw: Gateway) -> None:
    gw.set_routes(SHARED_HTTP, grpc_routes())
    gw.ctx.policy = DenyAll()

    def call() -> grpc.RpcError:
        with channel(gw.port) as ch:
            with pytest.raises(grpc.RpcError) as info:
                ch.unary_unary("/test.Echo/Say")(b"x", timeout=5)
            return info.value

    error = await in_thread(call)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED  # HTTP 403


# -- HTTP/2 clients, HTTP/1.1 backends ----------------------------------------------------------------


def web_routes() -> ListenerRoutes:
    src = "httproute default/web rule"
    entries = (
        Entry(Match("Exact", "/old"), Action(redirect=Redirect(path=PathModifier("ReplaceFullPath", "/new"), status_code=301), source=f"{src} 0")),
        Entry(
            Match("PathPrefix", "/api", headers=(HeaderMatch("x-version", "2"),)),
            route(
                "web", 80, f"{src} 1",
                rewrite=Rewrite(hostname="v2.internal", path=PathModifier("ReplacePrefixMatch", "/v2")),
                matched_prefix="/api",
            ),
        ),  # fmt: skip
        Entry(
            Match("PathPrefix", "/"),
            route(
                "web", 80, f"{src} 2",
                request_headers=HeaderChanges(set=(("x-route", "web"),), remove=("x-secret",)),
                response_headers=HeaderChanges(add=(("x-served-by", "gateway"),), remove=("x-drop",)),
            ),
        ),  # fmt: skip
    )
    return ListenerRoutes(exact={"web.example": HostRoutes(entries, uses_headers=True)})


async def curl(*args: str) -> tuple[int, str]:
    assert CURL is not None
    proc = await asyncio.create_subprocess_exec(
        CURL, "-sS", "--http2-prior-knowledge", "--max-time", "10", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return proc.returncode, out.decode()


@pytest.mark.skipif(CURL is None, reason="needs curl")
async def test_curl_h2c_prior_knowledge_to_an_http1_backend_via_an_httproute(gw: Gateway) -> None:
    gw.set_routes(SHARED_HTTP, web_routes())
    _, out = await curl(
        "-i", "-H", "Host: web.example", "-H", "X-Secret: s", "-H", "Cookie: a=1", f"http://127.0.0.1:{gw.port}/hello?q=1"
    )
    head, _, body = out.partition("\r\n\r\n")
    assert head.startswith("HTTP/2 200")
    assert "x-served-by: gateway" in head.lower()
    assert "x-drop" not in head.lower()
    seen = json.loads(body)
    assert seen["version"] == "1.1" and seen["path"] == "/hello?q=1" and seen["method"] == "GET"
    assert seen["headers"]["host"] == "web.example"
    assert seen["headers"]["x-route"] == "web"
    assert "x-secret" not in seen["headers"]
    assert seen["headers"]["x-forwarded-proto"] == "http"
    assert seen["headers"]["x-forwarded-host"] == "web.example"
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert seen["headers"]["cookie"] == "a=1"


@pytest.mark.skipif(CURL is None, reason="needs curl")
async def test_curl_h2c_redirect_rewrite_and_404(gw: Gateway) -> None:
    gw.set_routes(SHARED_HTTP, web_routes())
    base = f"http://127.0.0.1:{gw.port}"
    _, out = await curl("-i", "-H", f"Host: web.example:{gw.port}", f"{base}/old?x=1")
    assert out.startswith("HTTP/2 301")
    assert f"location: http://web.example:{gw.port}/new?x=1" in out.lower()
    _, out = await curl("-H", "Host: web.example", "-H", "X-Version: 2", f"{base}/api/items")
    seen = json.loads(out)
    assert seen["path"] == "/v2/items" and seen["headers"]["host"] == "v2.internal"
    _, out = await curl("-i", "-H", "Host: nowhere.example", f"{base}/")
    assert out.startswith("HTTP/2 404")


@pytest.mark.skipif(CURL is None, reason="needs curl")
async def test_curl_h2c_large_upload_and_download(gw: Gateway, tmp_path: Path) -> None:
    gw.set_routes(SHARED_HTTP, web_routes())
    upload = tmp_path / "up.bin"
    upload.write_bytes(b"u" * (5 << 20))
    _, out = await curl("-H", "Host: web.example", "--data-binary", f"@{upload}", f"http://127.0.0.1:{gw.port}/up")
    seen = json.loads(out)
    assert seen["method"] == "POST" and seen["body"] == 5 << 20
    _, out = await curl("-H", "Host: web.example", f"http://127.0.0.1:{gw.port}/big?n={8 << 20}")
    assert len(out) == 8 << 20


async def test_httpx_h2_many_concurrent_streams_on_one_connection(gw: Gateway) -> None:
    gw.set_routes(SHARED_HTTP, web_routes())
    async with httpx.AsyncClient(http1=False, http2=True, base_url=f"http://127.0.0.1:{gw.port}") as client:
        replies = await asyncio.gather(*(client.get(f"/n/{i}", headers={"host": "web.example"}) for i in range(200)))
        head = await client.head("/hello", headers={"host": "web.example"})
        one_by_one = [(await client.get("/seq", headers={"host": "web.example"})).json()["peer"] for _ in range(5)]
    assert all(r.status_code == 200 and r.http_version == "HTTP/2" for r in replies)
    assert sorted(r.json()["path"] for r in replies) == sorted(f"/n/{i}" for i in range(200))
    assert head.status_code == 200 and head.content == b""
    assert len(set(one_by_one)) == 1  # one pooled keep-alive connection to the endpoint
    assert len({r.json()["peer"] for r in replies}) <= 128  # the pool keeps (and reuses) at most this many


async def test_httpx_over_tls_alpn_h2_by_service_name(gw: Gateway) -> None:
    ctx = ssl.create_default_context(cadata=gw.cert.decode())
    ctx.check_hostname = False
    async with httpx.AsyncClient(http2=True, verify=ctx) as client:
        reply = await client.get(f"https://127.0.0.1:{gw.tls_port}/x", headers={"host": "web.default"})
    assert reply.http_version == "HTTP/2"
    assert reply.json()["headers"]["x-forwarded-proto"] == "https"


async def test_no_endpoints_is_503_and_unknown_service_404(gw: Gateway) -> None:
    async with httpx.AsyncClient(http1=False, http2=True, base_url=f"http://127.0.0.1:{gw.port}") as client:
        empty = await client.get("/", headers={"host": "empty.default"})
        unknown = await client.get("/", headers={"host": "nothing.default"})
    assert empty.status_code == 503 and "no endpoints available" in empty.text
    assert unknown.status_code == 404



async def test_a_slow_http2_reader_holds_back_the_http1_endpoint(gw: Gateway) -> None:
    """The client's window (64 KiB, the default) limits what the gateway sends; the rest waits in a
    bounded buffer while the endpoint is paused, and everything arrives once the client reads."""
    import h2.config
    import h2.connection
    import h2.events

    from emulator.proxy.h2 import H1_RESPONSE_BUFFER

    size = 32 << 20
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    conn.send_headers(
        1, [(":method", "GET"), (":scheme", "http"), (":path", f"/big?n={size}"), (":authority", "web.default")], end_stream=True
    )
    writer.write(conn.data_to_send())
    await asyncio.sleep(0.5)  # nothing read meanwhile
    held = [s.response.size for c in gw.ctx.live if isinstance(c, H2Gateway) for s in c.streams.values()]
    assert held and max(held) <= H1_RESPONSE_BUFFER + (256 << 10), held
    got, status, ended = 0, "", False
    while not ended:
        data = await reader.read(1 << 16)
        assert data, "the gateway closed the connection"
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                headers: Any = event.headers  # str pairs: header_encoding is set
                status = dict(headers)[":status"]
            elif isinstance(event, h2.events.DataReceived):
                got += len(event.data)
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                ended = True
        writer.write(conn.data_to_send())
    writer.close()
    assert status == "200" and got == size


async def test_endpoint_going_away_mid_stream_resets_the_clients_stream(gw: Gateway) -> None:
    gw.set_routes(SHARED_HTTP, grpc_routes())
    stop = threading.Event()
    first = threading.Event()

    def requests() -> Iterator[bytes]:
        yield b"one"
        while not stop.wait(0.05):
            yield b"more"

    def call() -> grpc.RpcError:
        with channel(gw.port) as ch:
            replies = ch.stream_stream("/test.Echo/Chat")(requests(), timeout=30)
            assert next(replies) == b"one"
            first.set()
            with pytest.raises(grpc.RpcError) as info:
                list(replies)
        stop.set()
        return info.value

    task = asyncio.ensure_future(in_thread(call))
    while not first.is_set():
        await asyncio.sleep(0.02)
    gw.grpc.server.stop(None)
    error = await asyncio.wait_for(task, 10)
    assert error.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    for conn in gw.ctx.live:
        assert not getattr(conn, "streams", None), f"{type(conn).__name__} still holds streams"


async def raw_client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Any]:
    import h2.config
    import h2.connection

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    return reader, writer, conn


async def events_until(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: Any, kind: type) -> list[Any]:
    seen: list[Any] = []
    while not any(isinstance(e, kind) for e in seen):
        data = await asyncio.wait_for(reader.read(1 << 16), 5)
        assert data, f"connection closed before {kind.__name__}: {seen}"
        seen += conn.receive_data(data)
        writer.write(conn.data_to_send())
    return seen


async def test_settings_limit_streams_and_an_idle_connection_gets_goaway(gw: Gateway) -> None:
    import h2.events

    reader, writer, conn = await raw_client(gw.port)
    await events_until(reader, writer, conn, h2.events.RemoteSettingsChanged)
    assert conn.remote_settings.max_concurrent_streams == 128
    conn.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "web.default")], end_stream=True)
    writer.write(conn.data_to_send())
    await events_until(reader, writer, conn, h2.events.StreamEnded)
    for proto in [c for c in gw.ctx.live if isinstance(c, H2Gateway)]:
        assert not proto.streams and proto.deadline > 0
        proto.on_deadline(proto.deadline)  # what the proxy's sweeper does once keepalive_timeout passed
    events = await events_until(reader, writer, conn, h2.events.ConnectionTerminated)
    goaway = next(e for e in events if isinstance(e, h2.events.ConnectionTerminated))
    assert goaway.error_code == 0 and goaway.last_stream_id == 1
    writer.close()


async def test_client_reset_of_an_http1_exchange_closes_that_endpoint_connection(gw: Gateway) -> None:
    import h2.errors
    import h2.events

    reader, writer, conn = await raw_client(gw.port)
    conn.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":path", "/up"), (":authority", "web.default")])
    conn.send_data(1, b"partial")
    writer.write(conn.data_to_send())
    for _ in range(100):
        if any(getattr(c, "stream", None) is not None for c in gw.ctx.live):
            break
        await asyncio.sleep(0.01)
    upstream: Any = next(c for c in gw.ctx.live if getattr(c, "stream", None) is not None)
    conn.reset_stream(1, h2.errors.ErrorCodes.CANCEL)
    writer.write(conn.data_to_send())
    for _ in range(100):
        if upstream.closed:
            break
        await asyncio.sleep(0.01)
    assert upstream.closed  # a half-sent request: that connection is never reused
    conn.send_headers(3, [(":method", "GET"), (":scheme", "http"), (":path", "/after"), (":authority", "web.default")], end_stream=True)
    writer.write(conn.data_to_send())
    events = await events_until(reader, writer, conn, h2.events.StreamEnded)
    heads: list[Any] = [e.headers for e in events if isinstance(e, h2.events.ResponseReceived)]
    statuses = [dict(h)[":status"] for h in heads]
    assert statuses == ["200"]
    writer.close()


async def test_reset_streams_give_their_unread_data_back_to_the_shared_endpoint_connection(gw: Gateway) -> None:
    """Clients that reset streams with response data still held (their window was full) must not eat
    the shared h2c endpoint connection's window: 24 MiB held and dropped, then a call still passes."""
    import struct

    import h2.errors

    gw.set_routes(SHARED_HTTP, grpc_routes())
    message = b"m" * (1 << 20)
    reader, writer, conn = await raw_client(gw.port)
    headers = [
        (":method", "POST"), (":scheme", "http"), (":path", "/test.Echo/Chat"), (":authority", "grpc.example"),
        ("content-type", "application/grpc"), ("te", "trailers"),
    ]  # fmt: skip
    for i in range(24):
        stream_id = 1 + 2 * i
        conn.send_headers(stream_id, headers)
        framed = struct.pack(">BI", 0, len(message)) + message
        while framed:  # as the gateway's window allows: it credits what went on to the endpoint
            room = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size, len(framed))
            if room:
                conn.send_data(stream_id, framed[:room])
                framed = framed[room:]
                continue
            writer.write(conn.data_to_send())
            conn.receive_data(await asyncio.wait_for(reader.read(1 << 16), 5))  # response data left unacknowledged
        writer.write(conn.data_to_send())
        await asyncio.sleep(0.05)  # the echo comes back and waits for our (full) window
        conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        writer.write(conn.data_to_send())
    writer.close()

    def call() -> list[bytes]:
        with channel(gw.port) as ch:
            return list(ch.stream_stream("/test.Echo/Chat")(iter([message] * 4), timeout=10))

    assert await in_thread(call) == [message] * 4
    assert len(set(gw.grpc.peers)) == 1  # all on the one endpoint connection


async def test_an_endpoint_silent_for_idle_timeout_gets_504_and_the_connection_stays(gw: Gateway) -> None:
    import h2.events

    reader, writer, conn = await raw_client(gw.port)
    conn.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":path", "/slow?s=1"), (":authority", "web.default")], end_stream=True)
    writer.write(conn.data_to_send())
    for _ in range(100):
        protos = [c for c in gw.ctx.live if isinstance(c, H2Gateway) and c.streams]
        if protos and any(s.backend for s in protos[0].streams.values()):
            break
        await asyncio.sleep(0.01)
    proto = protos[0]
    proto.on_deadline(proto.deadline)  # what the sweeper does after idle_timeout with no traffic
    events = await events_until(reader, writer, conn, h2.events.StreamEnded)
    heads: list[Any] = [e.headers for e in events if isinstance(e, h2.events.ResponseReceived)]
    assert [dict(h)[":status"] for h in heads] == ["504"]
    body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    assert b"did not answer within" in body
    conn.send_headers(3, [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "web.default")], end_stream=True)
    writer.write(conn.data_to_send())
    events = await events_until(reader, writer, conn, h2.events.StreamEnded)
    heads = [e.headers for e in events if isinstance(e, h2.events.ResponseReceived)]
    assert [dict(h)[":status"] for h in heads] == ["200"]
    writer.close()


async def test_streams_are_recorded_as_http_flows(gw: Gateway) -> None:
    gw.set_routes(SHARED_HTTP, grpc_routes())
    records: list[tuple[Any, ...]] = []
    gw.ctx.record = records.append

    def calls() -> None:
        with channel(gw.port) as ch:
            ch.unary_unary("/test.Echo/Say")(b"x", timeout=5)
            with pytest.raises(grpc.RpcError):
                ch.unary_unary("/nothing.Here/Do")(b"x", timeout=5)

    await in_thread(calls)
    for _ in range(50):
        if len(records) >= 2:
            break
        await asyncio.sleep(0.02)
    by_path = {r[13]: r for r in records}
    ok, missing = by_path[b"/test.Echo/Say"], by_path[b"/nothing.Here/Do"]
    assert ok[1] == "http" and ok[6] == "allowed" and ok[14] == 200 and ok[15] == "grpcroute default/g rule 0"
    assert ok[4] is not None and ok[4].rpartition(":")[0].endswith("/grpc") and ok[5] == ("127.0.0.1", gw.grpc.port)
    assert ok[11] == b"POST" and ok[12] == b"grpc.example" and ok[10] >= 0
    assert missing[6] == "error" and missing[14] == 404 and "no route" in missing[7]


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_endpoint_that_refuses_is_skipped_and_none_left_is_502(gw: Gateway) -> None:
    # 127.0.0.2 has nothing on the backend's port: connections there are refused
    add_service(gw.table, "half", 80, gw.http_port, ips=("127.0.0.2", "127.0.0.1"))
    add_service(gw.table, "dead", 80, _closed_port())
    add_service(gw.table, "grpcdead", 80, _closed_port(), app_protocol="grpc")
    async with httpx.AsyncClient(http1=False, http2=True, base_url=f"http://127.0.0.1:{gw.port}") as client:
        half = [await client.get("/", headers={"host": "half.default"}) for _ in range(4)]
        dead = await client.get("/", headers={"host": "dead.default"})
        grpcdead = await client.get("/", headers={"host": "grpcdead.default"})
    assert [r.status_code for r in half] == [200] * 4
    assert dead.status_code == 502 and "accepted the connection" in dead.text and "ECONNREFUSED" in dead.text
    assert grpcdead.status_code == 502 and "ECONNREFUSED" in grpcdead.text
