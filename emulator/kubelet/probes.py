"""Container probes as the kubelet's prober runs them: the four handlers (httpGet, tcpSocket, exec, gRPC),
the per-probe bookkeeping of thresholds and delays, and one small asyncio task per probe.

The shape follows pkg/kubelet/prober: a handler answers one probe with a `Result` and an output
(`HTTP probe failed with statuscode: 500`); `ProbeState` is the worker's bookkeeping as a pure state
machine fed results and times (initial delay, consecutive-result runs against successThreshold and
failureThreshold, hold after a liveness or startup failure until the container restarts); `ProbeWorker`
is the task that sleeps, probes and reports; `ContainerProbes` holds one container's workers and lets the
startup probe gate the other two.

Results reach the owner (the pod worker) through `on_result(kind, success, message)` only when the
published result changes: readiness starts False and turns True after successThreshold successes;
liveness starts True; startup starts unknown. A failure's message is the one of the kubelet's
`Unhealthy` event (`Readiness probe failed: ...`). Every single failed probe, as on a real node, can also
be reported through `on_event(reason, message)` for the Events the kubelet records on each failure.

Scheduling is the kubelet's ideal one: the first probe at container start + initialDelaySeconds, then
every periodSeconds; when the startup probe succeeds the other probes run at once.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import os
import socket
import struct
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import yarl

log = logging.getLogger(__name__)

STARTUP = "startup"
READINESS = "readiness"
LIVENESS = "liveness"
PROBE_KINDS = (STARTUP, READINESS, LIVENESS)  # the order the kubelet adds workers in
PROBE_FIELDS = {STARTUP: "startupProbe", READINESS: "readinessProbe", LIVENESS: "livenessProbe"}

PROBE_USER_AGENT = "kube-probe/1.32"  # the kubelet's `kube-probe/<major>.<minor>`
MAX_PROBE_OUTPUT = 10 * 1024  # bytes of a body or of an exec's output the kubelet reads
MAX_PROBE_REDIRECTS = 10  # Go's http.Client default, kept by the prober's redirect checker
EXEC_TIMEOUT_GRACE = 1.0  # seconds a ProbeTarget gets past the timeout to kill the command itself


class Result(enum.Enum):
    """pkg/probe's results. WARNING is a success with something to say (a redirect not followed);
    UNKNOWN means the probe could not run (a named port the container does not have): the kubelet
    throws such a result away, so it counts for nothing."""

    SUCCESS = "success"
    WARNING = "warning"
    FAILURE = "failure"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Outcome:
    result: Result
    output: str


class ProbeTarget(Protocol):
    """What a probe needs of the container it probes (the contract's interface). `exec` runs argv in the
    container's sandbox and environment and returns (exit code, combined stdout+stderr); when `timeout`
    passes it kills the command and raises TimeoutError. Named ports are resolved from the container
    spec the worker is given, so the target needs no port map."""

    pod_ip: str

    async def exec(self, argv: list[str], timeout: float) -> tuple[int, bytes]: ...


# -- the probe's settings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeSpec:
    """A probe's timings and thresholds with the API's defaults, plus its handler."""

    handler: str  # httpGet | tcpSocket | exec | grpc
    action: dict[str, Any]
    initial_delay: float = 0
    period: float = 10
    timeout: float = 1
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace_period_seconds: int | None = None

    @classmethod
    def of(cls, probe: dict[str, Any]) -> ProbeSpec:
        handler = next((name for name in ("httpGet", "tcpSocket", "exec", "grpc") if probe.get(name) is not None), "")
        grace = probe.get("terminationGracePeriodSeconds")
        return cls(
            handler=handler,
            action=dict(probe.get(handler) or {}),
            initial_delay=max(0, int(probe.get("initialDelaySeconds") or 0)),
            period=max(1, int(probe.get("periodSeconds") or 10)),
            timeout=max(1, int(probe.get("timeoutSeconds") or 1)),
            success_threshold=max(1, int(probe.get("successThreshold") or 1)),
            failure_threshold=max(1, int(probe.get("failureThreshold") or 3)),
            termination_grace_period_seconds=int(grace) if grace is not None else None,
        )


class PortError(ValueError):
    pass


def resolve_port(port: Any, container: dict[str, Any]) -> int:
    """probe.ResolveContainerPort: a number, or the name of one of the container's ports (a number
    written as a string is the last resort)."""
    if isinstance(port, str):
        named = next((p.get("containerPort") for p in container.get("ports") or [] if p.get("name") == port), None)
        if named is None:
            if not port.isdigit():
                raise PortError(f"port {port} not found")
            named = int(port)
        port = named
    if not isinstance(port, int) or isinstance(port, bool):
        raise PortError(f"intOrString had no kind: {port!r}")
    if not 0 < port < 65536:
        raise PortError(f"invalid port number: {port}")
    return port


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def go_duration(seconds: float) -> str:
    """A timeout as Go prints a time.Duration (`1s`, `500ms`)."""
    return f"{seconds:g}s" if seconds >= 1 else f"{seconds * 1000:g}ms"


def go_quote(text: str) -> str:
    """Go's %q of a string, close enough for messages."""
    return json.dumps(text, ensure_ascii=False)


def dial_error(addr: str, exc: BaseException) -> str:
    """A connection error worded as Go's net package words it (`dial tcp 10.0.0.1:80: connect:
    connection refused`), which is what the kubelet's messages contain."""
    if isinstance(exc, TimeoutError):
        return f"dial tcp {addr}: i/o timeout"
    if isinstance(exc, socket.gaierror):
        host = addr.rsplit(":", 1)[0].strip("[]")
        return f"dial tcp: lookup {host}: no such host"
    if isinstance(exc, OSError) and exc.errno is not None:
        text = os.strerror(exc.errno)  # asyncio's own strerror names the address instead
        return f"dial tcp {addr}: connect: {text[:1].lower()}{text[1:]}"
    return f"dial tcp {addr}: {exc}"


# -- the handlers -----------------------------------------------------------------------------------


def probe_url(action: dict[str, Any], container: dict[str, Any], pod_ip: str) -> tuple[yarl.URL, int]:
    """The URL an httpGet probe requests (NewRequestForHTTPGetAction): scheme lower-cased, the pod's IP
    unless `host` is given, the port resolved, the path with its query kept."""
    scheme = str(action.get("scheme") or "HTTP").lower()
    host = action.get("host") or pod_ip
    port = resolve_port(action.get("port"), container)
    path = str(action.get("path") or "")
    if not path.startswith("/"):
        path = "/" + path
    return yarl.URL(f"{scheme}://{join_host_port(host, port)}{path}"), port


def probe_headers(action: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The request headers (the probe's httpHeaders win over the kubelet's User-Agent and `Accept: */*`;
    an empty Accept removes it) and the automatic headers to leave out."""
    headers: dict[str, str] = {}
    for header in action.get("httpHeaders") or []:
        name = "-".join(part.capitalize() for part in str(header.get("name", "")).split("-"))
        if name:
            headers[name] = str(header.get("value", ""))
    skip: list[str] = []
    headers.setdefault("User-Agent", PROBE_USER_AGENT)
    if "Accept" not in headers:
        headers["Accept"] = "*/*"
    elif headers["Accept"] == "":
        del headers["Accept"]
        skip.append("Accept")
    if headers["User-Agent"] == "":
        del headers["User-Agent"]
        skip.append("User-Agent")
    return headers, skip


async def probe_http(
    action: dict[str, Any],
    container: dict[str, Any],
    pod_ip: str,
    timeout: float,
    session: aiohttp.ClientSession | None = None,
) -> Outcome:
    """An httpGet probe: 200 <= code < 400 succeeds. Redirects are followed only while they stay on the
    same host (the prober's redirect checker); a redirect elsewhere ends the probe as a success with a
    warning. At most 10 KiB of the body is read. Certificates are not verified."""
    try:
        url, _port = probe_url(action, container, pod_ip)
    except PortError as exc:
        return Outcome(Result.UNKNOWN, str(exc))
    except ValueError as exc:
        return Outcome(Result.UNKNOWN, f"parse {go_quote(str(action.get('path') or ''))}: {exc}")
    headers, skip = probe_headers(action)
    own = session is None
    if session is None:
        session = new_probe_session()
    phase = "while awaiting headers"
    first_host = url.host
    try:
        async with asyncio.timeout(timeout):
            for _hop in range(MAX_PROBE_REDIRECTS + 1):
                phase = "while awaiting headers"
                async with session.get(
                    url, headers=headers, skip_auto_headers=skip, allow_redirects=False, ssl=False
                ) as response:
                    location = response.headers.get("Location")
                    if response.status in (301, 302, 303, 307, 308) and location is not None:
                        target = url.join(yarl.URL(location))
                        if target.host == first_host:
                            url = target
                            continue
                    phase = "or context cancellation while reading body"
                    body = (await response.content.read(MAX_PROBE_OUTPUT)).decode("utf-8", "replace")
                    return http_outcome(response.status, body)
            return Outcome(Result.FAILURE, f"Get {go_quote(str(url))}: stopped after {MAX_PROBE_REDIRECTS} redirects")
    except TimeoutError:
        return Outcome(
            Result.FAILURE, f"Get {go_quote(str(url))}: context deadline exceeded (Client.Timeout exceeded {phase})"
        )
    except aiohttp.ClientConnectorError as exc:
        addr = join_host_port(url.host or "", url.port or 0)
        return Outcome(Result.FAILURE, f"Get {go_quote(str(url))}: {dial_error(addr, exc.os_error)}")
    except aiohttp.ServerDisconnectedError:
        return Outcome(Result.FAILURE, f"Get {go_quote(str(url))}: EOF")
    except (aiohttp.ClientError, OSError) as exc:
        return Outcome(Result.FAILURE, f"Get {go_quote(str(url))}: {exc}")
    finally:
        if own:
            await session.close()


def http_outcome(status: int, body: str) -> Outcome:
    """DoHTTPProbe's verdict on a response (the failure message leaves the body out, as upstream does)."""
    if 200 <= status < 400:
        if status >= 300:
            return Outcome(Result.WARNING, f"Probe terminated redirects, Response body: {body}")
        return Outcome(Result.SUCCESS, body)
    return Outcome(Result.FAILURE, f"HTTP probe failed with statuscode: {status}")


def new_probe_session() -> aiohttp.ClientSession:
    """A client for probes: no keep-alive (the prober opens a connection per probe), no cookies, the
    kubelet's headers set per request."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True, limit=0, ssl=False),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=True,
    )


async def probe_tcp(action: dict[str, Any], container: dict[str, Any], pod_ip: str, timeout: float) -> Outcome:
    """A tcpSocket probe: the connection opens within the timeout."""
    try:
        port = resolve_port(action.get("port"), container)
    except PortError as exc:
        return Outcome(Result.UNKNOWN, str(exc))
    host = action.get("host") or pod_ip
    addr = join_host_port(host, port)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            transport, _ = await loop.create_connection(asyncio.Protocol, host, port)
    except (OSError, TimeoutError) as exc:
        return Outcome(Result.FAILURE, dial_error(addr, exc))
    transport.close()
    return Outcome(Result.SUCCESS, "")


async def probe_exec(action: dict[str, Any], target: ProbeTarget, timeout: float) -> Outcome:
    """An exec probe: exit status 0 succeeds; the output (at most 10 KiB) is the failure's message; a
    command still running at the timeout fails with `command "..." timed out`."""
    argv = [str(arg) for arg in action.get("command") or []]
    if not argv:
        return Outcome(Result.UNKNOWN, "exec probe has no command")
    try:
        async with asyncio.timeout(timeout + EXEC_TIMEOUT_GRACE):
            code, output = await target.exec(argv, timeout)
    except TimeoutError:
        return Outcome(Result.FAILURE, f"command {go_quote(' '.join(argv))} timed out")
    except OSError as exc:
        return Outcome(Result.UNKNOWN, str(exc))
    text = output[:MAX_PROBE_OUTPUT].decode("utf-8", "replace")
    return Outcome(Result.SUCCESS if code == 0 else Result.FAILURE, text)


# -- gRPC: one unary call of grpc.health.v1.Health/Check over HTTP/2 (h2) ---------------------------

GRPC_CODES = (
    "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists",
    "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange", "Unimplemented",
    "Internal", "Unavailable", "DataLoss", "Unauthenticated",
)  # fmt: skip
SERVING_STATUSES = ("UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN")  # HealthCheckResponse.ServingStatus
GRPC_CONNECT_BACKOFF = (0.1, 0.2, 0.4, 0.8, 1.0)


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def decode_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def health_check_request(service: str) -> bytes:
    """HealthCheckRequest{service} in protobuf wire format (field 1, a string), framed as one gRPC
    message (no compression flag, big-endian length)."""
    raw = service.encode()
    message = b"\x0a" + encode_varint(len(raw)) + raw if raw else b""
    return struct.pack(">BI", 0, len(message)) + message


def health_check_status(message: bytes) -> int:
    """The `status` (field 1, an enum) of a HealthCheckResponse; other fields are skipped, a missing
    status is 0 (UNKNOWN) as protobuf defaults it."""
    status, pos = 0, 0
    while pos < len(message):
        key, pos = decode_varint(message, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = decode_varint(message, pos)
            if field == 1:
                status = value
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = decode_varint(message, pos)
            pos += length
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    if pos != len(message):
        raise ValueError("truncated message")
    return status


async def grpc_connect(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect, retrying with back-off as grpc-go's blocking dial does until the caller's deadline."""
    attempt = 0
    while True:
        try:
            return await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(GRPC_CONNECT_BACKOFF[min(attempt, len(GRPC_CONNECT_BACKOFF) - 1)])
            attempt += 1


async def probe_grpc(action: dict[str, Any], pod_ip: str, timeout: float) -> Outcome:
    """A gRPC probe: grpc.health.v1.Health/Check with the probe's `service` against the pod's IP; SERVING
    succeeds. Messages are the kubelet's (pkg/probe/grpc)."""
    import h2.config
    import h2.connection
    import h2.events
    import h2.exceptions

    port = action.get("port")
    if not isinstance(port, int) or not 0 < port < 65536:
        return Outcome(Result.UNKNOWN, f"invalid port number: {port}")
    service = str(action.get("service") or "")
    addr = join_host_port(pod_ip, port)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await grpc_connect(pod_ip, port)
    except TimeoutError:
        return Outcome(
            Result.FAILURE,
            f"timeout: failed to connect service {go_quote(addr)} within {go_duration(timeout)}: context deadline exceeded",
        )
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    headers: dict[str, str] = {}
    data = bytearray()
    try:
        async with asyncio.timeout_at(deadline):
            conn.initiate_connection()
            stream = conn.get_next_available_stream_id()
            conn.send_headers(
                stream,
                [
                    (":method", "POST"),
                    (":scheme", "http"),
                    (":path", "/grpc.health.v1.Health/Check"),
                    (":authority", addr),
                    ("content-type", "application/grpc"),
                    ("te", "trailers"),
                    ("user-agent", PROBE_USER_AGENT),
                    ("grpc-timeout", f"{max(1, int((deadline - loop.time()) * 1000))}m"),
                ],
            )
            conn.send_data(stream, health_check_request(service), end_stream=True)
            writer.write(conn.data_to_send())
            ended = False
            while not ended:
                chunk = await reader.read(65536)
                if not chunk:
                    return rpc_error("Unavailable", "connection closed")
                for event in conn.receive_data(chunk):
                    if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                        headers.update({str(k): str(v) for k, v in event.headers})
                    elif isinstance(event, h2.events.DataReceived):
                        data += event.data
                        conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2.events.StreamReset):
                        return rpc_error("Unavailable", f"stream reset with code {event.error_code}")
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        return rpc_error("Unavailable", "connection closed")
                    if isinstance(event, h2.events.StreamEnded):
                        ended = True
                writer.write(conn.data_to_send())
    except TimeoutError:
        return Outcome(Result.FAILURE, f"timeout: health rpc did not complete within {go_duration(timeout)}")
    except (h2.exceptions.ProtocolError, OSError) as exc:
        return Outcome(Result.FAILURE, f"error: failed to connect service at {go_quote(addr)}: {exc}")
    finally:
        writer.close()
    return grpc_outcome(headers, bytes(data), timeout)


def rpc_error(code: str, desc: str) -> Outcome:
    return Outcome(Result.FAILURE, f"error: health rpc probe failed: rpc error: code = {code} desc = {desc}")


def grpc_outcome(headers: dict[str, str], data: bytes, timeout: float) -> Outcome:
    """The verdict on a finished Health/Check call: its status (from the trailers, or the headers of a
    trailers-only answer) and then the serving status of the response message."""
    if headers.get(":status") not in (None, "200"):
        return rpc_error("Unknown", f"unexpected HTTP status code received from server: {headers.get(':status')}")
    code = int(headers.get("grpc-status", "2") or 2)
    message = urllib.parse.unquote(headers.get("grpc-message", ""))
    name = GRPC_CODES[code] if 0 <= code < len(GRPC_CODES) else f"Code({code})"
    if code == 12:
        return Outcome(
            Result.FAILURE,
            f"error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {message}",
        )
    if code == 4:
        return Outcome(Result.FAILURE, f"timeout: health rpc did not complete within {go_duration(timeout)}")
    if code != 0:
        return rpc_error(name, message)
    try:
        if len(data) < 5 or data[0] != 0:
            raise ValueError("missing or compressed message")
        (length,) = struct.unpack(">I", data[1:5])
        status = health_check_status(data[5 : 5 + length])
    except (ValueError, struct.error) as exc:
        return rpc_error("Internal", str(exc))
    if status != 1:
        label = SERVING_STATUSES[status] if status < len(SERVING_STATUSES) else str(status)
        return Outcome(Result.FAILURE, f"service unhealthy (responded with {go_quote(label)})")
    return Outcome(Result.SUCCESS, "service is serving")


async def run_probe(
    spec: ProbeSpec,
    container: dict[str, Any],
    target: ProbeTarget,
    session: Callable[[], aiohttp.ClientSession] | None = None,
) -> Outcome:
    """One probe of any kind of handler."""
    if spec.handler == "httpGet":
        return await probe_http(spec.action, container, target.pod_ip, spec.timeout, session() if session else None)
    if spec.handler == "tcpSocket":
        return await probe_tcp(spec.action, container, target.pod_ip, spec.timeout)
    if spec.handler == "exec":
        return await probe_exec(spec.action, target, spec.timeout)
    if spec.handler == "grpc":
        return await probe_grpc(spec.action, target.pod_ip, spec.timeout)
    return Outcome(Result.UNKNOWN, "probe has no handler")


# -- the bookkeeping (pure) -------------------------------------------------------------------------

INITIAL_RESULT: dict[str, bool | None] = {READINESS: False, LIVENESS: True, STARTUP: None}


class ProbeState:
    """One probe's bookkeeping as the kubelet's prober worker keeps it, fed times and results.

    `result` is the published result: readiness starts False, liveness True, startup None (unknown).
    It changes after `success_threshold` consecutive successes or `failure_threshold` consecutive
    failures. A liveness or startup failure puts the probe on hold: the container is about to be
    restarted, and probing resumes with `restart` for the next instance."""

    def __init__(self, kind: str, spec: ProbeSpec, started_at: float) -> None:
        if kind not in INITIAL_RESULT:
            raise ValueError(f"unknown probe kind {kind!r}")
        self.kind = kind
        self.spec = spec
        self.restart(started_at)

    def restart(self, started_at: float) -> None:
        """A new instance of the container started: initial result, delay counted from its start."""
        self.started_at = started_at
        self.result: bool | None = INITIAL_RESULT[self.kind]
        self.last: bool | None = None
        self.run = 0
        self.on_hold = False

    def delay_over(self, now: float) -> bool:
        return now - self.started_at >= self.spec.initial_delay

    def should_probe(self, now: float, started: bool) -> bool:
        """Whether a probe runs at `now`: not on hold, past the initial delay, and for startup only until
        the container has started, for the others only once it has (`started` is the startup probe's
        verdict, True for a container without one)."""
        if self.on_hold or not self.delay_over(now):
            return False
        return not started if self.kind == STARTUP else started

    def observe(self, success: bool) -> bool | None:
        """Count one probe result; the new published result when it changes, else None."""
        if success == self.last:
            self.run += 1
        else:
            self.last, self.run = success, 1
        if self.run < (self.spec.success_threshold if success else self.spec.failure_threshold):
            return None
        if not success and self.kind in (LIVENESS, STARTUP):
            self.on_hold, self.run = True, 0
        if success == self.result:
            return None
        self.result = success
        return success


# -- the workers ------------------------------------------------------------------------------------

OnResult = Callable[[str, bool, str], None]
OnEvent = Callable[[str, str], None]  # (reason, message): Unhealthy | ProbeWarning


class ProbeWorker:
    """One probe of one container (the contract's interface): an asyncio task that sleeps until the
    next probe, runs it, feeds `ProbeState`, and calls `on_result(kind, success, message)` when the
    published result changes. `gate` says whether the container has started (the startup probe's
    verdict); `wake()` makes a waiting worker look again at once."""

    def __init__(
        self,
        kind: str,
        probe: dict[str, Any],
        container: dict[str, Any],
        target: ProbeTarget,
        on_result: OnResult,
        *,
        gate: Callable[[], bool] | None = None,
        on_event: OnEvent | None = None,
        clock: Callable[[], float] = time.monotonic,
        started_at: float | None = None,
    ) -> None:
        self.kind = kind
        self.spec = ProbeSpec.of(probe)
        self.container = container
        self.target = target
        self.on_result = on_result
        self.on_event = on_event
        self.gate = gate or (lambda: True)
        self.clock = clock
        self.state = ProbeState(kind, self.spec, clock() if started_at is None else started_at)
        self.probes = 0  # how many probes ran, for tests and status pages
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def termination_grace_period_seconds(self) -> int | None:
        """The probe's own grace for the kill its failure causes (liveness/startup), None for the pod's."""
        return self.spec.termination_grace_period_seconds

    @property
    def result(self) -> bool | None:
        return self.state.result

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"probe-{self.kind}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        if self._session is not None:
            await self._session.close()
            self._session = None

    def restart(self, started_at: float | None = None) -> None:
        """The container restarted: initial result, delay counted anew, probing resumes."""
        self.state.restart(self.clock() if started_at is None else started_at)
        self.wake()

    def wake(self) -> None:
        self._wakeup.set()

    def _http_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = new_probe_session()
        return self._session

    async def _sleep(self, seconds: float | None) -> None:
        """Sleep `seconds` (None: until woken); `wake()` cuts it short."""
        if seconds is not None and seconds <= 0:
            return
        try:
            async with asyncio.timeout(seconds):
                await self._wakeup.wait()
        except TimeoutError:
            pass
        self._wakeup.clear()

    async def _run(self) -> None:
        while True:
            now = self.clock()
            if not self.state.delay_over(now) and not self.state.on_hold:
                await self._sleep(self.state.started_at + self.spec.initial_delay - now)
                continue
            if not self.state.should_probe(now, self.gate()):
                await self._sleep(None)  # on hold, started already, or waiting for startup: until woken
                continue
            began = now
            try:
                outcome = await run_probe(self.spec, self.container, self.target, self._http_session)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a handler's bug must not end the worker: count it as unknown
                log.exception("%s probe of %s crashed", self.kind, self.container.get("name"))
                outcome = Outcome(Result.UNKNOWN, str(exc))
            self.probes += 1
            self.deliver(outcome)
            await self._sleep(began + self.spec.period - self.clock())

    def deliver(self, outcome: Outcome) -> None:
        """Feed one outcome to the state, report the event a real kubelet records for it, and the result
        when it changes."""
        label = self.kind.capitalize()
        if outcome.result is Result.UNKNOWN:
            self._event("Unhealthy", f"{label} probe errored and resulted in unknown state: {outcome.output}")
            return
        success = outcome.result is not Result.FAILURE
        message = "" if success else f"{label} probe failed: {outcome.output}"
        if outcome.result is Result.WARNING:
            self._event("ProbeWarning", f"{label} probe warning: {outcome.output}")
        elif not success:
            self._event("Unhealthy", message)
        changed = self.state.observe(success)
        if changed is not None:
            self.on_result(self.kind, changed, message)

    def _event(self, reason: str, message: str) -> None:
        if self.on_event is not None:
            self.on_event(reason, message)


class ContainerProbes:
    """The probes of one container: a worker per probe it declares, the startup probe gating readiness
    and liveness (a container without one has started as soon as it runs). `started` and `ready` are
    the values for its containerStatus (`ready` is True without a readiness probe once started)."""

    def __init__(
        self,
        container: dict[str, Any],
        target: ProbeTarget,
        on_result: OnResult,
        *,
        on_event: OnEvent | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.on_result = on_result
        self.workers: dict[str, ProbeWorker] = {}
        started_at = clock()
        for kind in PROBE_KINDS:
            probe = container.get(PROBE_FIELDS[kind])
            if probe:
                self.workers[kind] = ProbeWorker(
                    kind, probe, container, target, self._result,
                    gate=self._started, on_event=on_event, clock=clock, started_at=started_at,
                )  # fmt: skip

    def _started(self) -> bool:
        startup = self.workers.get(STARTUP)
        return startup is None or startup.result is True

    @property
    def started(self) -> bool:
        return self._started()

    @property
    def ready(self) -> bool:
        readiness = self.workers.get(READINESS)
        return self.started and (readiness is None or readiness.result is True)

    def worker(self, kind: str) -> ProbeWorker | None:
        return self.workers.get(kind)

    def _result(self, kind: str, success: bool, message: str) -> None:
        if kind == STARTUP and success:
            for other in (READINESS, LIVENESS):
                if other in self.workers:
                    self.workers[other].wake()
        self.on_result(kind, success, message)

    def start(self) -> None:
        for worker in self.workers.values():
            worker.start()

    async def stop(self) -> None:
        await asyncio.gather(*(worker.stop() for worker in self.workers.values()))

    def restart(self, started_at: float | None = None) -> None:
        """The container restarted: every probe starts over."""
        for worker in self.workers.values():
            worker.restart(started_at)
