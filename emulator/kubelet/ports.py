"""Why a container could not listen: the `AddressInUse` warning.

On a node every pod has a network namespace of its own, so three replicas of a server that listens on
0.0.0.0:8000 each get their port. Here pods share this machine's network (a pod's IP is a loopback
address, docs/pods.md): the first process that listens on 0.0.0.0:8000 holds port 8000 on every address,
and the next replica's listen fails with "address already in use" and crash-loops. Kubernetes has nothing
to say about that, so the kubelet says it: when a container exits with an error and its last output (the
tail `terminationMessagePolicy: FallbackToLogsOnError` shows, logs.last_output) says "address already in use" (EADDRINUSE, as every runtime words it: Python's `[Errno 98]`, Go's
`bind: address already in use`, Node's `EADDRINUSE`, Java's `BindException`), it looks up who listens on
every address (or on the pod's IP) on the ports the container declares (when it declares none, or none
of those is held: a pod's listener on a port its output, command or environment names) and records a
Warning event naming the holder — another pod, a container of the same pod, or a process of this
machine — and what to do instead.

The look-up (psutil's `net_connections`, /proc walked) runs in a thread, and only after such an exit,
whose restarts the CrashLoopBackOff back-off spaces out.

The same sharing has a second side: a process that listens on 0.0.0.0 (or on a LAN address) is reachable
from other machines, which a pod on a node never is through its own IP. The emulator cannot stop that
without privileges (a network namespace of its own would cut the pod off from loopback, where the cluster
lives), so it says it: a container's processes are looked at 1, 5 and 30 s after it starts (one look at a
time, in a thread of its own), and each address and port it listens on beyond loopback is named once in a
Warning event `ListeningBeyondLoopback` (and the log), with what to do instead; its restarts do not name
them again. TCP listeners, and UDP sockets bound on a port the container declares as UDP (an unconnected
UDP socket is also what a client sends from); not a port declared with a `hostPort` (meant to be
reached), nor `hostNetwork` pods. Containers adopted after the emulator restarted are not looked at again.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REASON = "AddressInUse"
_IN_USE = re.compile(r"address already in use|EADDRINUSE", re.IGNORECASE)
_EVERY_ADDRESS = ("0.0.0.0", "::")
ADVICE = (
    "pods share this machine's network here, so a process listening on 0.0.0.0 (every address) holds its "
    "port for every pod: listen on the pod's own IP instead (status.podIP, e.g. an env var from the "
    "downward API), as docs/pods.md says"
)


@dataclass(frozen=True, slots=True)
class Holder:
    """A socket listening on every address: its port, and the process that holds it (None: not ours to see)."""

    port: int
    address: str
    pid: int | None


def said_in_use(output: str) -> bool:
    """Whether a container's last output (logs.last_output: the kubelet's fallback termination message)
    says a listen failed: the address was in use."""
    return _IN_USE.search(output) is not None


def host_ports(container: dict[str, Any]) -> set[int]:
    """The container ports a container declares with a `hostPort` (meant to be reached on the host)."""
    return {
        port["containerPort"] for port in container.get("ports") or []
        if isinstance(port, dict) and port.get("hostPort") and isinstance(port.get("containerPort"), int)
    }


def declared_ports(container: dict[str, Any], protocol: str = "TCP") -> set[int]:
    """The ports of `protocol` a container declares (`ports[].containerPort`)."""
    out: set[int] = set()
    for port in container.get("ports") or []:
        if isinstance(port, dict) and (port.get("protocol") or "TCP") == protocol and isinstance(port.get("containerPort"), int):
            out.add(port["containerPort"])
    return out


def every_address_listeners(ports: set[int], pod_ip: str = "") -> list[Holder]:
    """TCP sockets listening on 0.0.0.0 or :: (or on `pod_ip`: a container of the same pod, or one the podnet
    library moved there) on one of `ports` (any port when empty), sorted by port. Blocking (psutil walks
    /proc): call it in a thread."""
    import psutil  # loaded with the first such exit, not at start

    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return []
    addresses = {*_EVERY_ADDRESS, *((pod_ip, f"::ffff:{pod_ip}") if pod_ip else ())}
    found = {
        Holder(c.laddr.port, c.laddr.ip.removeprefix("::ffff:"), c.pid)
        for c in connections
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.ip in addresses and (not ports or c.laddr.port in ports)
    }
    return sorted(found, key=lambda h: (h.port, h.address, h.pid or 0))


_NUMBER = re.compile(r"(?<![\w.])(\d{1,5})(?![\w.])")


def mentioned_ports(*texts: str) -> set[int]:
    """The port numbers a container's output, command or environment name (any whole number 1-65535): the
    ports a container that declares none may have asked for."""
    return {n for text in texts for n in map(int, _NUMBER.findall(text)) if 0 < n < 65536}


def pod_of(pid: int | None, groups: dict[int, str]) -> str | None:
    """The pod ("namespace/name") whose container the process belongs to: each container runs as a process
    group of its own, `groups` maps their ids to their pods (Kubelet.container_groups)."""
    if pid is None:
        return None
    try:
        return groups.get(os.getpgid(pid))
    except OSError:  # gone meanwhile
        return None


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


SAME_POD_ADVICE = "the containers of a pod share its network, as on a node: two of them cannot listen on one port"


def message(container: str, holders: Iterable[Holder], pod_of: Callable[[int], str | None], own_pod: str = "") -> str:
    """The warning's text. `pod_of(pid)`: the "namespace/name" of the pod whose container the process belongs
    to, or None for a process that is no pod's; `own_pod`: the failing container's."""
    named: list[str] = []
    pods: set[str | None] = set()
    for holder in holders:
        where = f"{holder.address}:{holder.port}" if holder.address != "::" else f"[::]:{holder.port}"
        pod = pod_of(holder.pid) if holder.pid is not None else None
        pods.add(pod)
        if pod is not None and pod == own_pod:
            named.append(f"{where} is held by another container of this pod")
        elif pod is not None:
            named.append(f"{where} is held by pod {pod}")
        elif holder.pid is not None:
            name = process_name(holder.pid)
            named.append(f"{where} is held by process {holder.pid}{f' ({name})' if name else ''}, not a pod")
        else:
            named.append(f"{where} is held by a process of another user")
    if not named:
        return f'container {container} exited after "address already in use": {ADVICE}'
    advice = SAME_POD_ADVICE if own_pod and pods == {own_pod} else ADVICE
    return f"container {container} could not listen: {'; '.join(named[:3])}. {advice[0].upper()}{advice[1:]}"


# -- listening beyond loopback -------------------------------------------------------------------------

EXPOSED_REASON = "ListeningBeyondLoopback"
EXPOSED_LOOKS = (1.0, 4.0, 25.0)  # seconds between looks after a container starts: at 1, 5 and 30 s
EXPOSED_ADVICE = (
    "other machines on your network can reach it (pods share this machine's network here, and their IPs are "
    "loopback addresses): listen on the pod's own IP (status.podIP, e.g. $(POD_IP) from the downward API) to "
    "keep it on this machine, as docs/security.md says"
)


@dataclass(frozen=True, slots=True, order=True)
class Listener:
    """A socket a container listens on: its port, address and protocol ("TCP" or "UDP")."""

    port: int
    address: str
    protocol: str

    def __str__(self) -> str:
        where = f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"
        return where if self.protocol == "TCP" else f"{where}/{self.protocol}"


def beyond_loopback(address: str) -> bool:
    """Whether a socket bound to `address` is reachable from other machines: anything but a loopback
    address (0.0.0.0 and :: are every address; an IPv4-mapped loopback address is loopback)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return not (mapped or ip).is_loopback


def exposed_listeners(pid: int, udp_ports: set[int]) -> set[Listener]:
    """What the process `pid` and its descendants listen on beyond loopback: TCP sockets listening, and UDP
    sockets bound and not connected on one of `udp_ports`. Blocking (psutil reads /proc): call it in a thread."""
    import psutil  # (already loaded by the kubelet's process bookkeeping)

    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return set()
    found: set[Listener] = set()
    for process in tree:
        try:
            sockets = process.net_connections(kind="inet")
        except (psutil.Error, OSError):  # gone meanwhile, or not ours to read
            continue
        for sock in sockets:
            if not sock.laddr or not beyond_loopback(sock.laddr.ip):
                continue
            if sock.type == socket.SOCK_STREAM and sock.status == psutil.CONN_LISTEN:
                found.add(Listener(sock.laddr.port, sock.laddr.ip, "TCP"))
            elif sock.type == socket.SOCK_DGRAM and not sock.raddr and sock.laddr.port in udp_ports:
                found.add(Listener(sock.laddr.port, sock.laddr.ip, "UDP"))
    return found


def exposed_message(container: str, listeners: Iterable[Listener]) -> str:
    """The `ListeningBeyondLoopback` warning's text."""
    named = [str(listener) for listener in sorted(listeners)]
    shown = ", ".join(named[:5]) + (f" and {len(named) - 5} more" if len(named) > 5 else "")
    return f"container {container} listens on {shown}: {EXPOSED_ADVICE}"
