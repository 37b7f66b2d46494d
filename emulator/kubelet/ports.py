"""Why a container could not listen: the `AddressInUse` warning.

On a node every pod has a network namespace of its own, so three replicas of a server that listens on
0.0.0.0:8000 each get their port. Here pods share this machine's network (a pod's IP is a loopback
address, docs/pods.md): the first process that listens on 0.0.0.0:8000 holds port 8000 on every address,
and the next replica's listen fails with "address already in use" and crash-loops. Kubernetes has nothing
to say about that, so the kubelet says it: when a container exits with an error and its last output (the
tail `terminationMessagePolicy: FallbackToLogsOnError` shows, logs.last_output) says "address already in use" (EADDRINUSE, as every runtime words it: Python's `[Errno 98]`, Go's
`bind: address already in use`, Node's `EADDRINUSE`, Java's `BindException`), it looks up who listens on
every address on the ports the container declares (all ports when it declares none) and records a
Warning event naming the holder — another pod, or a process of this machine — and what to do instead.

The look-up (psutil's `net_connections`, /proc walked) runs in a thread, and only after such an exit,
whose restarts the CrashLoopBackOff back-off spaces out.
"""

from __future__ import annotations

import os
import re
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


def declared_ports(container: dict[str, Any]) -> set[int]:
    """The TCP ports a container declares (`ports[].containerPort`)."""
    out: set[int] = set()
    for port in container.get("ports") or []:
        if isinstance(port, dict) and (port.get("protocol") or "TCP") == "TCP" and isinstance(port.get("containerPort"), int):
            out.add(port["containerPort"])
    return out


def every_address_listeners(ports: set[int]) -> list[Holder]:
    """TCP sockets listening on 0.0.0.0 or :: on one of `ports` (any port when empty), sorted by port. Blocking
    (psutil walks /proc): call it in a thread."""
    import psutil  # loaded with the first such exit, not at start

    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return []
    found = {
        Holder(c.laddr.port, c.laddr.ip, c.pid)
        for c in connections
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.ip in _EVERY_ADDRESS and (not ports or c.laddr.port in ports)
    }
    return sorted(found, key=lambda h: (h.port, h.address, h.pid or 0))


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


def message(container: str, holders: Iterable[Holder], pod_of: Callable[[int], str | None]) -> str:
    """The warning's text. `pod_of(pid)`: the "namespace/name" of the pod whose container the process belongs
    to, or None for a process that is no pod's."""
    named: list[str] = []
    for holder in holders:
        where = f"{holder.address}:{holder.port}" if holder.address != "::" else f"[::]:{holder.port}"
        pod = pod_of(holder.pid) if holder.pid is not None else None
        if pod is not None:
            named.append(f"{where} is held by pod {pod}")
        elif holder.pid is not None:
            name = process_name(holder.pid)
            named.append(f"{where} is held by process {holder.pid}{f' ({name})' if name else ''}, not a pod")
        else:
            named.append(f"{where} is held by a process of another user")
    if not named:
        return f'container {container} exited after "address already in use": {ADVICE}'
    return f"container {container} could not listen: {'; '.join(named[:3])}. {ADVICE[0].upper()}{ADVICE[1:]}"
