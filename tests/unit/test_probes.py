"""Probes: the bookkeeping as tables of results over time, and each handler against real servers on
loopback (an aiohttp app answering chosen codes and redirects, a TCP listener, `sh -c`, a grpcio health
server), then the workers running on their own."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from emulator.kubelet.probes import (
    LIVENESS,
    PROBE_USER_AGENT,
    READINESS,
    STARTUP,
    ContainerProbes,
    Outcome,
    PortError,
    ProbeSpec,
    ProbeState,
    ProbeWorker,
    Result,
    grpc_outcome,
    health_check_request,
    health_check_status,
    probe_exec,
    probe_grpc,
    probe_headers,
    probe_http,
    probe_tcp,
    resolve_port,
)
from emulator.security import tls

# -- the bookkeeping -------------------------------------------------------------------------------


def spec(**overrides: Any) -> ProbeSpec:
    return dataclasses.replace(ProbeSpec.of({"tcpSocket": {"port": 80}}), **overrides)


def feed(state: ProbeState, results: str) -> list[bool | None]:
    """Feed 'S'/'F' results; the published change after each (None when nothing changed)."""
    return [state.observe(r == "S") for r in results]


def test_probe_spec_has_the_api_defaults() -> None:
    s = ProbeSpec.of({"httpGet": {"path": "/healthz", "port": 8080}})
    assert (s.handler, s.initial_delay, s.period, s.timeout, s.success_threshold, s.failure_threshold) == (
        "httpGet", 0, 10, 1, 1, 3,
    )  # fmt: skip
    assert s.action == {"path": "/healthz", "port": 8080}
    assert s.termination_grace_period_seconds is None
    assert (
        ProbeSpec.of(
            {"exec": {"command": ["true"]}, "terminationGracePeriodSeconds": 5}
        ).termination_grace_period_seconds
        == 5
    )


@pytest.mark.parametrize(
    ("kind", "thresholds", "results", "changes"),
    [
        # readiness starts False: the first success publishes True
        (READINESS, (1, 3), "FS", [None, True]),
        # successThreshold 2: a failure in between starts the run again
        (READINESS, (2, 3), "SFSS", [None, None, None, True]),
        # ready, then failureThreshold consecutive failures are needed to drop it
        (READINESS, (1, 3), "SFFSFFF", [True, None, None, None, None, None, False]),
        # readiness keeps probing after a failure and comes back
        (READINESS, (1, 1), "SFS", [True, False, True]),
        # liveness starts True: successes change nothing, the third failure publishes False
        (LIVENESS, (1, 3), "SSFFF", [None, None, None, None, False]),
        # startup starts unknown: failures below the threshold, then success
        (STARTUP, (1, 3), "FFS", [None, None, True]),
        (STARTUP, (1, 2), "FF", [None, False]),
    ],
)
def test_results_over_time_publish_changes_past_the_thresholds(
    kind: str, thresholds: tuple[int, int], results: str, changes: list[bool | None]
) -> None:
    state = ProbeState(kind, spec(success_threshold=thresholds[0], failure_threshold=thresholds[1]), 0.0)
    assert feed(state, results) == changes


def test_initial_results_per_kind() -> None:
    assert ProbeState(READINESS, spec(), 0).result is False
    assert ProbeState(LIVENESS, spec(), 0).result is True
    assert ProbeState(STARTUP, spec(), 0).result is None
    with pytest.raises(ValueError):
        ProbeState("sideness", spec(), 0)


def test_liveness_failure_holds_until_the_container_restarts() -> None:
    state = ProbeState(LIVENESS, spec(failure_threshold=2), 100.0)
    assert state.should_probe(100.0, started=True)
    assert feed(state, "FF") == [None, False]
    assert state.on_hold and not state.should_probe(200.0, started=True)
    state.restart(300.0)
    assert state.result is True and not state.on_hold
    assert state.should_probe(300.0, started=True)
    assert feed(state, "FF") == [None, False]  # the new instance's failures publish again


def test_initial_delay_counts_from_the_container_start() -> None:
    state = ProbeState(READINESS, spec(initial_delay=5), 100.0)
    assert [state.should_probe(t, started=True) for t in (100.0, 104.9, 105.0, 130.0)] == [False, False, True, True]


def test_startup_gates_readiness_and_liveness_and_stops_once_started() -> None:
    readiness = ProbeState(READINESS, spec(), 0)
    liveness = ProbeState(LIVENESS, spec(), 0)
    startup = ProbeState(STARTUP, spec(), 0)
    assert not readiness.should_probe(1, started=False) and not liveness.should_probe(1, started=False)
    assert startup.should_probe(1, started=False)
    assert startup.observe(True) is True
    assert not startup.should_probe(2, started=True)
    assert readiness.should_probe(2, started=True) and liveness.should_probe(2, started=True)


def test_startup_failure_holds() -> None:
    startup = ProbeState(STARTUP, spec(failure_threshold=1), 0)
    assert startup.observe(False) is False
    assert startup.on_hold and not startup.should_probe(5, started=False)


# -- ports and headers ------------------------------------------------------------------------------

CONTAINER = {"name": "web", "ports": [{"name": "http", "containerPort": 8080}, {"name": "grpc", "containerPort": 9000}]}


def test_ports_by_number_by_name_and_the_errors() -> None:
    assert resolve_port(80, CONTAINER) == 80
    assert resolve_port("http", CONTAINER) == 8080
    assert resolve_port("81", CONTAINER) == 81  # an int stored as a string, the last resort
    with pytest.raises(PortError, match="port admin not found"):
        resolve_port("admin", CONTAINER)
    with pytest.raises(PortError, match="invalid port number: 70000"):
        resolve_port(70000, CONTAINER)


def test_headers_default_to_the_kubelets_and_the_probe_overrides_them() -> None:
    assert probe_headers({}) == ({"User-Agent": PROBE_USER_AGENT, "Accept": "*/*"}, [])
    headers, skip = probe_headers(
        {"httpHeaders": [{"name": "user-agent", "value": "mine"}, {"name": "x-custom", "value": "1"}]}
    )
    assert headers == {"User-Agent": "mine", "X-Custom": "1", "Accept": "*/*"} and skip == []
    headers, skip = probe_headers({"httpHeaders": [{"name": "Accept", "value": ""}]})
    assert "Accept" not in headers and skip == ["Accept"]


# -- httpGet against a real server ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclasses.dataclass
class HttpServer:
    port: int
    seen: list[dict[str, str]]


async def start_app(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, shutdown_timeout=0.1)  # the /slow handler is not waited for
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    return runner, port


def probe_app(seen: list[dict[str, str]]) -> web.Application:
    async def status(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(status=int(request.match_info["code"]), text=f"code {request.match_info['code']}")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 1_000_000)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()

    app = web.Application()
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/loop", loop)
    app.router.add_get("/big", big)
    app.router.add_get("/slow", slow)
    return app


@pytest.fixture
async def http_server() -> AsyncIterator[HttpServer]:
    seen: list[dict[str, str]] = []
    runner, port = await start_app(probe_app(seen))
    yield HttpServer(port, seen)
    await runner.cleanup()


async def http(path: str, port: Any, container: dict[str, Any] | None = None, **action: Any) -> Outcome:
    return await probe_http({"path": path, "port": port, **action}, container or {}, "127.0.0.1", 1)


async def test_http_codes_decide(http_server: HttpServer) -> None:
    assert await http("/status/200", http_server.port) == Outcome(Result.SUCCESS, "code 200")
    assert (await http("/status/399", http_server.port)).result is Result.WARNING  # a 3xx without Location
    assert await http("/status/500", http_server.port) == Outcome(
        Result.FAILURE, "HTTP probe failed with statuscode: 500"
    )
    assert (await http("/status/404", http_server.port)).output == "HTTP probe failed with statuscode: 404"


async def test_http_sends_the_kubelets_headers_and_the_probes(http_server: HttpServer) -> None:
    await http("/status/200", http_server.port)
    assert http_server.seen[-1]["User-Agent"] == "kube-probe/1.32"
    assert http_server.seen[-1]["Accept"] == "*/*"
    await http(
        "/status/200",
        http_server.port,
        httpHeaders=[{"name": "X-Probe", "value": "yes"}, {"name": "Host", "value": "web.example"}],
    )
    assert http_server.seen[-1]["X-Probe"] == "yes"
    assert http_server.seen[-1]["Host"] == "web.example"


async def test_http_named_port(http_server: HttpServer) -> None:
    container = {"ports": [{"name": "http", "containerPort": http_server.port}]}
    assert (await http("/status/204", "http", container)).result is Result.SUCCESS
    outcome = await http("/status/204", "admin", container)
    assert outcome == Outcome(Result.UNKNOWN, "port admin not found")


async def test_http_redirects_followed_on_the_same_host_only(http_server: HttpServer) -> None:
    port = http_server.port
    same = await http(f"/redirect?to=http://127.0.0.1:{port}/status/500", port)
    assert same.output == "HTTP probe failed with statuscode: 500"  # followed: the target's code counts
    relative = await http("/redirect?to=/status/200", port)
    assert relative == Outcome(Result.SUCCESS, "code 200")
    elsewhere = await http(f"/redirect?to=http://localhost:{port}/status/500", port)
    assert elsewhere.result is Result.WARNING  # not followed: the 302 itself is a success with a warning
    assert elsewhere.output.startswith("Probe terminated redirects, Response body: ")
    looping = await http("/loop", port)
    assert looping == Outcome(Result.FAILURE, f'Get "http://127.0.0.1:{port}/loop": stopped after 10 redirects')


async def test_http_reads_a_bounded_body(http_server: HttpServer) -> None:
    outcome = await http("/big", http_server.port)
    assert outcome.result is Result.SUCCESS and len(outcome.output) == 10 * 1024


async def test_http_connection_refused_and_timeout(http_server: HttpServer) -> None:
    port = free_port()
    assert await http("/healthz", port) == Outcome(
        Result.FAILURE, f'Get "http://127.0.0.1:{port}/healthz": dial tcp 127.0.0.1:{port}: connect: connection refused'
    )
    slow = await http("/slow", http_server.port)
    assert slow == Outcome(
        Result.FAILURE,
        f'Get "http://127.0.0.1:{http_server.port}/slow": context deadline exceeded '
        "(Client.Timeout exceeded while awaiting headers)",
    )


@pytest.fixture
def server_tls(tmp_path: Path) -> ssl.SSLContext:
    cert, key, _ = tls.api_certificate(tmp_path, ["127.0.0.1"])
    return tls.server_context(cert, key)


async def test_https_without_certificate_verification(server_tls: ssl.SSLContext) -> None:
    runner, port = await start_app(probe_app([]), server_tls)
    try:
        assert (await http("/status/200", port, scheme="HTTPS")).result is Result.SUCCESS
        assert (await http("/status/503", port, scheme="HTTPS")).output == "HTTP probe failed with statuscode: 503"
    finally:
        await runner.cleanup()


# -- tcpSocket --------------------------------------------------------------------------------------


async def test_tcp_connects_or_says_why_not() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert await probe_tcp({"port": port}, {}, "127.0.0.1", 1) == Outcome(Result.SUCCESS, "")
        named = {"ports": [{"name": "db", "containerPort": port}]}
        assert (await probe_tcp({"port": "db"}, named, "127.0.0.1", 1)).result is Result.SUCCESS
    finally:
        server.close()
        await server.wait_closed()
    assert await probe_tcp({"port": port}, {}, "127.0.0.1", 1) == Outcome(
        Result.FAILURE, f"dial tcp 127.0.0.1:{port}: connect: connection refused"
    )


# -- exec --------------------------------------------------------------------------------------------


class LocalTarget:
    """A ProbeTarget whose commands run as plain local processes (the kubelet's runs them in the
    container's sandbox)."""

    pod_ip = "127.0.0.1"

    async def exec(self, argv: list[str], timeout: float) -> tuple[int, bytes]:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        assert process.returncode is not None
        return process.returncode, output


async def test_exec_exit_status_decides() -> None:
    target = LocalTarget()
    assert await probe_exec({"command": ["sh", "-c", "echo fine"]}, target, 1) == Outcome(Result.SUCCESS, "fine\n")
    assert await probe_exec({"command": ["sh", "-c", "exit 1"]}, target, 1) == Outcome(Result.FAILURE, "")
    failed = await probe_exec({"command": ["cat", "/nonexistent/healthy"]}, target, 1)
    assert failed.result is Result.FAILURE and "No such file or directory" in failed.output


async def test_exec_timeout() -> None:
    outcome = await probe_exec({"command": ["sleep", "10"]}, LocalTarget(), 1)
    assert outcome == Outcome(Result.FAILURE, 'command "sleep 10" timed out')


# -- gRPC ---------------------------------------------------------------------------------------------


def test_health_messages_on_the_wire() -> None:
    assert health_check_request("") == b"\x00\x00\x00\x00\x00"
    assert health_check_request("db") == b"\x00\x00\x00\x00\x04\x0a\x02db"
    assert health_check_status(b"\x08\x01") == 1
    assert health_check_status(b"") == 0
    assert health_check_status(b"\x12\x01z\x08\x02") == 2  # unknown fields skipped
    ok = {":status": "200", "grpc-status": "0"}
    assert grpc_outcome(ok, b"\x00\x00\x00\x00\x02\x08\x01", 1).result is Result.SUCCESS
    assert (
        grpc_outcome(ok, b"\x00\x00\x00\x00\x02\x08\x02", 1).output
        == 'service unhealthy (responded with "NOT_SERVING")'
    )


@pytest.fixture(scope="module")
def grpc_server() -> Iterator[int]:
    grpc = pytest.importorskip("grpc")
    from concurrent import futures

    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("db", health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(None)


async def test_grpc_health_check(grpc_server: int) -> None:
    assert await probe_grpc({"port": grpc_server}, "127.0.0.1", 1) == Outcome(Result.SUCCESS, "service is serving")
    assert await probe_grpc({"port": grpc_server, "service": "db"}, "127.0.0.1", 1) == Outcome(
        Result.FAILURE, 'service unhealthy (responded with "NOT_SERVING")'
    )
    unknown = await probe_grpc({"port": grpc_server, "service": "nope"}, "127.0.0.1", 1)
    # grpcio's servicer answers NOT_FOUND without a message (grpc-go's says "unknown service")
    assert unknown == Outcome(Result.FAILURE, "error: health rpc probe failed: rpc error: code = NotFound desc = ")


async def test_grpc_without_the_health_service() -> None:
    grpc = pytest.importorskip("grpc")
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        outcome = await probe_grpc({"port": port}, "127.0.0.1", 1)
    finally:
        await server.stop(None)
    assert outcome.result is Result.FAILURE
    assert outcome.output.startswith(
        "error: this server does not implement the grpc health protocol (grpc.health.v1.Health)"
    )


async def test_grpc_nobody_listening() -> None:
    port = free_port()
    assert await probe_grpc({"port": port}, "127.0.0.1", 1) == Outcome(
        Result.FAILURE,
        f'timeout: failed to connect service "127.0.0.1:{port}" within 1s: context deadline exceeded',
    )


# -- the workers, running --------------------------------------------------------------------------


def fast(worker: ProbeWorker, period: float = 0.05) -> ProbeWorker:
    """Probe every `period` seconds instead of the API's whole seconds, so the test is quick."""
    worker.spec = worker.state.spec = dataclasses.replace(worker.spec, period=period)
    return worker


async def eventually(condition: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_readiness_worker_follows_a_server_that_comes_and_goes() -> None:
    codes = [500]

    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=codes[0])

    app = web.Application()
    app.router.add_get("/ready", handler)
    runner, port = await start_app(app)
    results: list[tuple[str, bool, str]] = []
    events: list[tuple[str, str]] = []
    probe = {"httpGet": {"path": "/ready", "port": "http"}, "failureThreshold": 2}
    container = {"name": "web", "ports": [{"name": "http", "containerPort": port}]}
    worker = fast(
        ProbeWorker(
            READINESS,
            probe,
            container,
            LocalTarget(),
            lambda *r: results.append(r),
            on_event=lambda *e: events.append(e),
        )
    )
    worker.start()
    try:
        await eventually(lambda: worker.probes >= 2)
        assert results == [] and worker.result is False  # failing from the start: nothing changes
        assert events[0] == ("Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 500")
        codes[0] = 200
        await eventually(lambda: results == [(READINESS, True, "")])
        codes[0] = 503
        await eventually(lambda: len(results) == 2)
        assert results[1] == (READINESS, False, "Readiness probe failed: HTTP probe failed with statuscode: 503")
    finally:
        await worker.stop()
        await runner.cleanup()


async def test_startup_gates_the_others_and_liveness_failure_holds(tmp_path: Path) -> None:
    started = tmp_path / "started"
    alive = tmp_path / "alive"
    alive.touch()
    container = {
        "name": "app",
        "startupProbe": {"exec": {"command": ["test", "-e", str(started)]}, "failureThreshold": 100},
        "readinessProbe": {"exec": {"command": ["true"]}},
        "livenessProbe": {"exec": {"command": ["test", "-e", str(alive)]}, "failureThreshold": 1},
    }
    results: list[tuple[str, bool, str]] = []
    probes = ContainerProbes(container, LocalTarget(), lambda *r: results.append(r))
    for worker in probes.workers.values():
        fast(worker)
    probes.start()
    try:
        await eventually(lambda: probes.workers[STARTUP].probes >= 3)
        assert results == [] and not probes.started and not probes.ready
        assert probes.workers[READINESS].probes == 0 and probes.workers[LIVENESS].probes == 0
        started.touch()
        await eventually(lambda: probes.ready)
        assert results[:2] == [(STARTUP, True, ""), (READINESS, True, "")]
        alive.unlink()
        await eventually(lambda: (LIVENESS, False, "Liveness probe failed: ") in results)
        count = probes.workers[LIVENESS].probes
        await asyncio.sleep(0.2)
        assert probes.workers[LIVENESS].probes == count  # on hold until the container restarts
        alive.touch()
        probes.restart()
        assert probes.workers[LIVENESS].result is True and probes.workers[READINESS].result is False
        await eventually(lambda: probes.workers[LIVENESS].probes > count and probes.ready)
    finally:
        await probes.stop()


async def test_initial_delay_holds_the_first_probe() -> None:
    results: list[tuple[str, bool, str]] = []
    worker = ProbeWorker(
        READINESS,
        {"exec": {"command": ["true"]}, "initialDelaySeconds": 1},
        {},
        LocalTarget(),
        lambda *r: results.append(r),
    )
    worker.start()
    try:
        await asyncio.sleep(0.6)
        assert worker.probes == 0
        await eventually(lambda: results == [(READINESS, True, "")], timeout=2)
    finally:
        await worker.stop()


async def test_a_probe_that_cannot_run_counts_for_nothing() -> None:
    events: list[tuple[str, str]] = []
    results: list[tuple[str, bool, str]] = []
    worker = fast(
        ProbeWorker(LIVENESS, {"tcpSocket": {"port": "missing"}, "failureThreshold": 1}, {}, LocalTarget(),
                    lambda *r: results.append(r), on_event=lambda *e: events.append(e))
    )  # fmt: skip
    worker.start()
    try:
        await eventually(lambda: worker.probes >= 3)
    finally:
        await worker.stop()
    assert results == [] and worker.result is True
    assert events[0] == ("Unhealthy", "Liveness probe errored and resulted in unknown state: port missing not found")
