"""pods/portforward: TCP to a port of a pod, over the protocols kubectl 1.32 and the Python client speak.

    GET|POST /api/v1/namespaces/{ns}/pods/{name}/portforward[?ports=8080,9090]

The far end is the pod's IP (`status.podIP`) and the port: every pod with an address works alike, whether
the kubelet runs it, `emulator run` registered it or a client gave its IP. (On a node, the kubelet dials
localhost inside the pod's network namespace; here the pod's IP is where its containers listen.)

Only pod addresses are dialled: one in the pod range (--pod-cidr), or a unicast address a client registered
(compose's container IPs). A loopback address outside the pod range (127.0.0.1, the node address a
hostNetwork pod reports) would reach whatever the host serves on it to itself alone, and link-local,
multicast, unspecified or reserved addresses are no pod's: those are refused (403) with the reason.

- kubectl 1.32 opens a WebSocket with subprotocol `SPDY/3.1+portforward.k8s.io` and speaks SPDY inside it,
  or, when that is refused, upgrades to SPDY directly (`X-Stream-Protocol-Version: portforward.k8s.io`).
  Each local connection is a pair of streams (headers `streamType` error|data, `port`, `requestID`);
  a failure to connect is written on the error stream, worded as the kubelet words it.
- The Python client's `portforward()` opens a WebSocket (`v4.channel.k8s.io`) with the ports in the query:
  one connection per port, data on channel 2i and errors on 2i+1, each channel's first message the port
  (api/channels.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from api import channels, spdy
from emulator import errors
from emulator.kinds.pod import PODS
from emulator.registry.registry import Registry
from emulator.timestamps import parse_rfc3339

log = logging.getLogger("emulator.api.portforward")

CONNECT_TIMEOUT = 10.0
COPY_CHUNK = 65536
PATH = "/api/v1/namespaces/{namespace}/pods/{name}/portforward"


def routes(registry: Registry, pod_cidr: str) -> list[web.RouteDef]:
    handler = PortForwardHandler(registry, pod_cidr)
    return [web.get(PATH, handler.handle, allow_head=False), web.post(PATH, handler.handle)]


# A container that started this recently may not listen yet: a refused connection is tried again until then
# (a server's own start-up, e.g. an interpreter's imports, takes longer than the kubelet takes to report it).
LISTEN_GRACE = 2.0
RETRY_EVERY = 0.05


@dataclass(frozen=True)
class PodAddress:
    name: str
    uid: str
    ip: str
    started: float = 0.0  # when its last container started (wall clock seconds), 0 if unknown


def undialable(ip: str, pod_network: ipaddress.IPv4Network) -> str | None:
    """Why port-forward will not connect to a pod's address `ip`; None when it may (a pod address)."""
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(ip)
    except ValueError:
        return f"its address {ip!r} is not an IP address"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:a.b.c.d is dialled as a.b.c.d
    if isinstance(address, ipaddress.IPv4Address) and address in pod_network:
        return None
    if address.is_loopback:
        return (
            f"its address {ip} is not a pod address (outside --pod-cidr {pod_network}): a loopback address outside "
            "the pod range is the host's own (a hostNetwork pod's, or one a client gave), and port-forward does "
            "not reach the host's loopback services"
        )
    for what, test in (
        ("unspecified", address.is_unspecified), ("link-local", address.is_link_local),
        ("multicast", address.is_multicast), ("reserved", address.is_reserved),
        ("in 0.0.0.0/8", isinstance(address, ipaddress.IPv4Address) and address in _THIS_NETWORK),
    ):
        if test:
            return f"its address {ip} is {what}, not a pod address"
    return None


_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")  # "this host on this network": Linux dials it as loopback


class PortForwardHandler:
    def __init__(self, registry: Registry, pod_cidr: str) -> None:
        self.registry = registry
        self.pod_network = ipaddress.IPv4Network(pod_cidr, strict=False)

    def _pod(self, namespace: str, name: str) -> PodAddress:
        pod = self.registry.get(PODS, namespace, name)
        ip = (pod.get("status") or {}).get("podIP")
        if not ip:
            raise errors.bad_request(f'pod "{name}" has no IP address yet: port-forward needs a pod that has one (status.podIP)')
        if (why := undialable(ip, self.pod_network)) is not None:
            raise errors.forbidden_request(f'port-forward to pod "{name}" refused: {why}')
        return PodAddress(name, pod["metadata"].get("uid", ""), ip, _last_start(pod))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        pod = self._pod(request.match_info["namespace"], request.match_info["name"])
        try:
            ports = channels.parse_ports(request.query.getall("ports", []))
        except ValueError as exc:
            raise errors.bad_request(str(exc)) from exc
        upgrade = request.headers.get("Upgrade", "").strip().lower()
        if upgrade == "websocket":
            session, ws = await spdy.tunnel(request, channels.PORT_FORWARD_PROTOCOLS)
            if session is not None:
                await _serve_spdy(session, pod)
                with contextlib.suppress(Exception):
                    await ws.close()
            else:
                await _serve_channels(ws, pod, ports)
            return ws
        if upgrade == "spdy/3.1":
            offered = request.headers.getall(spdy.STREAM_PROTOCOL_HEADER, [])
            if channels.negotiate(offered, (channels.PORT_FORWARD,)) is None:
                raise errors.forbidden_request(
                    f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
                    f"server supports [{channels.PORT_FORWARD}]"
                )
            session, response = await spdy.upgrade(request, channels.PORT_FORWARD)
            try:
                await _serve_spdy(session, pod)
            finally:
                if request.transport is not None:
                    request.transport.close()
            return response
        raise errors.bad_request("Upgrade request required")


def _failure(pod: PodAddress, port: int, exc: OSError) -> str:
    """As the kubelet reports a port it could not reach (kubectl prints it after "an error occurred forwarding")."""
    reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else (exc.strerror or str(exc) or type(exc).__name__)
    return (
        f"error forwarding port {port} to pod {pod.name}, uid {pod.uid}: failed to connect to {pod.ip}:{port} "
        f"inside the pod, IP: {pod.ip}: dial tcp {pod.ip}:{port}: connect: {reason.lower()}"
    )


def _last_start(pod: dict[str, Any]) -> float:
    latest = 0.0
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        started = ((status.get("state") or {}).get("running") or {}).get("startedAt")
        parsed = parse_rfc3339(started) if started else None
        if parsed is not None:
            latest = max(latest, parsed.timestamp())
    return latest


async def _connect(pod: PodAddress, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    while True:
        try:
            return await asyncio.wait_for(asyncio.open_connection(pod.ip, port), CONNECT_TIMEOUT)
        except TimeoutError as exc:
            raise TimeoutError(110, "i/o timeout") from exc
        except ConnectionRefusedError:
            # whole seconds: startedAt has no fraction, so a start in the same second counts from its end
            if time.time() > pod.started + 1.0 + LISTEN_GRACE:
                raise
            await asyncio.sleep(RETRY_EVERY)


# -- SPDY (kubectl) ------------------------------------------------------------------------------------------

async def _serve_spdy(session: spdy.Session, pod: PodAddress) -> None:
    """Pair each connection's error and data streams by requestID, and forward each pair."""
    pending: dict[str, dict[str, spdy.Stream]] = {}
    tasks: set[asyncio.Task[None]] = set()
    try:
        while (stream := await session.next_stream()) is not None:
            kind, request_id = stream.header("streamType"), stream.header("requestID")
            port = stream.header("port")
            if kind not in ("error", "data") or not port.isdigit() or not 0 < int(port) < 65536:
                await stream.reset(spdy.REFUSED_STREAM)
                continue
            pair = pending.setdefault(request_id, {})
            pair[kind] = stream
            if len(pair) == 2:
                del pending[request_id]
                task = asyncio.ensure_future(_forward_pair(pod, int(port), pair["data"], pair["error"]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
    finally:
        for task in tasks:
            task.cancel()
        await session.close()


async def _forward_pair(pod: PodAddress, port: int, data: spdy.Stream, error: spdy.Stream) -> None:
    try:
        reader, writer = await _connect(pod, port)
    except OSError as exc:
        await error.write(_failure(pod, port, exc).encode())
        await error.close()
        await data.close()
        return
    try:
        await asyncio.gather(_stream_to_socket(data, writer), _socket_to_stream(reader, data))
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await error.close()


async def _stream_to_socket(stream: spdy.Stream, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while chunk := await stream.read():
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        return
    # the pod stopped reading: what the client still sends is dropped, not left to hold the session's reading
    while await stream.read():
        pass


async def _socket_to_stream(reader: asyncio.StreamReader, stream: spdy.Stream) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while chunk := await reader.read(COPY_CHUNK):
            await stream.write(chunk)
    await stream.close()


# -- WebSocket channels (the Python client) ------------------------------------------------------------------

async def _serve_channels(ws: web.WebSocketResponse, pod: PodAddress, ports: list[int]) -> None:
    if not ports:
        await ws.close(code=1008, message=b"no ports to forward: give them as ?ports=8080")
        return

    async def send(channel: int, data: bytes) -> None:
        if not ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_bytes(channels.frame(channel, data))

    for index, port in enumerate(ports):
        await send(2 * index, channels.port_prefix(port))
        await send(2 * index + 1, channels.port_prefix(port))
    writers: dict[int, asyncio.StreamWriter] = {}
    readers: list[asyncio.Task[None]] = []

    async def pod_to_client(index: int, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while chunk := await reader.read(COPY_CHUNK):
                await send(2 * index, chunk)

    for index, port in enumerate(ports):
        try:
            reader, writer = await _connect(pod, port)
        except OSError as exc:
            await send(2 * index + 1, _failure(pod, port, exc).encode())
            continue
        writers[index] = writer
        readers.append(asyncio.ensure_future(pod_to_client(index, reader)))

    async def client_to_pods() -> None:
        async for message in ws:
            if (raw := channels.message_bytes(message)) is None:
                continue
            channel, data = channels.unframe(raw)
            writer = writers.get(channel // 2) if channel >= 0 and channel % 2 == 0 else None
            if writer is not None and data and not writer.is_closing():
                with contextlib.suppress(ConnectionError, OSError):
                    writer.write(data)
                    await writer.drain()

    incoming = asyncio.ensure_future(client_to_pods())
    try:
        if readers:
            # the pods' side ends the session when every connection has closed (or the client leaves first)
            pods_done = asyncio.ensure_future(_all(readers))
            await asyncio.wait([incoming, pods_done], return_when=asyncio.FIRST_COMPLETED)
        else:
            await asyncio.wait_for(incoming, 5)
    except TimeoutError:
        pass
    finally:
        incoming.cancel()
        for task in readers:
            task.cancel()
        for writer in writers.values():
            writer.close()
        with contextlib.suppress(Exception):
            await ws.close()


async def _all(tasks: list[asyncio.Task[None]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)
