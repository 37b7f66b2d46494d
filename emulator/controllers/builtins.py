"""The cluster-wide objects a fresh cluster has besides its namespaces, written at start
(`NamespaceController.bootstrap` calls these):

- the node `emulator`, as its kubelet would register it: Ready, this machine's CPUs and memory, its
  addresses (InternalIP: the node address pods and NodePort services use) and node info. Its status is
  written again at every start (heartbeat, capacity); labels a user added stay.
- the IngressClass `emulator` (controller `emulator.local/ingress`), marked as the default class. Once it
  exists it is the user's: a later start does not undo changes to it.
- the GatewayClass `emulator` (controllerName `emulator.local/gateway`), likewise written only when absent.
- the node's Lease (kube-node-lease/emulator), renewed at each start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import shutil
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from emulator import errors
from emulator.kinds import GATEWAY_CLASSES, INGRESS_CLASSES, NODES
from emulator.kinds.gatewayclass import EMULATOR_GATEWAY_CLASS, GATEWAY_CONTROLLER
from emulator.kinds.ingressclass import DEFAULT_CLASS_ANNOTATION, EMULATOR_CLASS, EMULATOR_CONTROLLER
from emulator.kinds.lease import LEASES
from emulator.kinds.node import NODE_NAME
from emulator.kinds.priorityclass import PRIORITY_CLASSES, SYSTEM_CLASSES
from emulator.kinds.storageclass import DEFAULT_CLASS_ANNOTATION as STORAGE_DEFAULT_ANNOTATION
from emulator.kinds.storageclass import EMULATOR_PROVISIONER, EMULATOR_STORAGE_CLASS, STORAGE_CLASSES
from emulator.registry.registry import Registry
from emulator.timestamps import now_rfc3339

log = logging.getLogger(__name__)

KUBELET_VERSION = "v1.32.0"  # what `kubectl get nodes` shows as VERSION: the API's minor version
MAX_PODS = 110  # the kubelet's default --max-pods
_ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
                  "i386": "386", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
_CONDITIONS = (
    ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
)


def _read(path: str) -> str:
    with contextlib.suppress(OSError):
        return Path(path).read_text().strip()
    return ""


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        key, _, value = line.partition("=")
        if key == "PRETTY_NAME":
            return value.strip().strip('"')
    return platform.platform(terse=True)


def _runtime_version() -> str:
    try:
        return f"emulator://{metadata.version('k8s-emulator')}"
    except metadata.PackageNotFoundError:
        return "emulator://unknown"


def _disk_size() -> str:
    try:  # statvfs' f_blocks * f_frsize, as psutil.disk_usage counts it
        return f"{shutil.disk_usage(os.path.abspath(os.sep)).total // 1024}Ki"
    except OSError:
        return "0"


def _cpus_and_memory() -> tuple[int, int]:
    """Logical CPUs and bytes of memory. On Linux the numbers psutil reads (sysconf's online CPUs; sysinfo's
    total RAM, /proc/meminfo's MemTotal) without loading psutil, ~8 ms of every start; psutil elsewhere."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(ValueError, OSError):
            return os.cpu_count() or 1, os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    import psutil

    return psutil.cpu_count(logical=True) or os.cpu_count() or 1, int(psutil.virtual_memory().total)


def node_labels() -> dict[str, str]:
    system = {"win32": "windows"}.get(sys.platform, sys.platform.rstrip("0123456789"))
    arch = _ARCHITECTURES.get(platform.machine().lower(), platform.machine().lower())
    return {
        "beta.kubernetes.io/arch": arch,
        "beta.kubernetes.io/os": system,
        "kubernetes.io/arch": arch,
        "kubernetes.io/hostname": NODE_NAME,
        "kubernetes.io/os": system,
        "node-role.kubernetes.io/control-plane": "",
    }


def node_status(address: str, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a kubelet on this machine reports: capacity from the machine (`_cpus_and_memory`), Ready, addresses, info."""
    now = now_rfc3339()
    cpus, memory = _cpus_and_memory()
    resources = {
        "cpu": str(cpus),
        "ephemeral-storage": _disk_size(),
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": f"{memory // 1024}Ki",
        "pods": str(MAX_PODS),
    }
    before = {c.get("type"): c for c in (previous or {}).get("conditions") or []}
    conditions = []
    for kind, status, reason, message in _CONDITIONS:
        old = before.get(kind) or {}
        since = old.get("lastTransitionTime") if old.get("status") == status and old.get("lastTransitionTime") else now
        conditions.append({
            "type": kind, "status": status, "lastHeartbeatTime": now, "lastTransitionTime": since,
            "reason": reason, "message": message,
        })
    labels = node_labels()
    return {
        "capacity": resources,
        "allocatable": dict(resources),
        "conditions": conditions,
        "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": NODE_NAME}],
        "nodeInfo": {
            "machineID": _read("/etc/machine-id"),
            "systemUUID": "",
            "bootID": _read("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": platform.release(),
            "osImage": _os_image(),
            "containerRuntimeVersion": _runtime_version(),
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": labels["kubernetes.io/os"],
            "architecture": labels["kubernetes.io/arch"],
        },
    }


def ensure_node(registry: Registry) -> None:
    """Register the node, or report its status again (a kubelet starting up)."""
    address = registry.cluster.node_address
    current = registry.store.get(NODES.key, "", NODE_NAME)
    if current is None:
        registry.create(NODES, "", {
            "metadata": {"name": NODE_NAME, "labels": node_labels()},
            "spec": {},
            "status": node_status(address),
        })
        return
    labels = current["metadata"].get("labels") or {}
    missing = {k: v for k, v in node_labels().items() if k not in labels}
    try:
        if missing:
            current["metadata"]["labels"] = {**labels, **missing}
            current = registry.update(NODES, "", NODE_NAME, current).obj
        current["status"] = node_status(address, current.get("status"))
        registry.update(NODES, "", NODE_NAME, current, subresource="status")
    except errors.StatusError:
        # a node a user broke (say, a label the API would now refuse) is left as it is
        pass


NODE_LEASE_NAMESPACE = "kube-node-lease"
NODE_LEASE_SECONDS = 40  # the kubelet's nodeLeaseDurationSeconds


def ensure_node_lease(registry: Registry) -> None:
    """The node's Lease in kube-node-lease, as its kubelet holds it, renewed at each start (a kubelet renews
    it every 10 s; here nothing watches it for expiry, and a write every 10 s would only be noise in every
    watch). Without it `kubectl describe node` says "Failed to get lease"."""
    node = registry.store.get(NODES.key, "", NODE_NAME)
    if node is None:
        return
    now = now_rfc3339().removesuffix("Z") + ".000000Z"  # a MicroTime, to the second as the node's heartbeat
    owner = {"apiVersion": "v1", "kind": "Node", "name": NODE_NAME, "uid": node["metadata"]["uid"]}
    spec = {"holderIdentity": NODE_NAME, "leaseDurationSeconds": NODE_LEASE_SECONDS, "renewTime": now}
    current = registry.store.get(LEASES.key, NODE_LEASE_NAMESPACE, NODE_NAME)
    try:
        if current is None:
            registry.create(LEASES, NODE_LEASE_NAMESPACE, {
                "metadata": {"name": NODE_NAME, "ownerReferences": [owner]}, "spec": spec,
            })
        else:
            current["spec"] = {**(current.get("spec") or {}), **spec}
            others = [r for r in current["metadata"].get("ownerReferences") or [] if r.get("kind") != "Node"]
            current["metadata"]["ownerReferences"] = [owner, *others]  # (the node's uid, were it made again)
            registry.update(LEASES, NODE_LEASE_NAMESPACE, NODE_NAME, current)
    except errors.StatusError as exc:  # (a lease a user broke, a namespace being deleted): never a refused start
        log.warning("the node's lease %s/%s not written: %s", NODE_LEASE_NAMESPACE, NODE_NAME, exc.message)


def ensure_ingress_class(registry: Registry) -> None:
    """The emulator's default IngressClass, when there is none of that name."""
    if registry.store.get_raw(INGRESS_CLASSES.key, "", EMULATOR_CLASS) is not None:
        return
    registry.create(INGRESS_CLASSES, "", {
        "metadata": {"name": EMULATOR_CLASS, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
        "spec": {"controller": EMULATOR_CONTROLLER},
    })


def ensure_storage_class(registry: Registry) -> None:
    """The emulator's default StorageClass, `standard` (as kind's), when there is none of that name."""
    if registry.store.get_raw(STORAGE_CLASSES.key, "", EMULATOR_STORAGE_CLASS) is not None:
        return
    registry.create(STORAGE_CLASSES, "", {
        "metadata": {"name": EMULATOR_STORAGE_CLASS, "annotations": {STORAGE_DEFAULT_ANNOTATION: "true"}},
        "provisioner": EMULATOR_PROVISIONER, "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate",
    })


def ensure_priority_classes(registry: Registry) -> None:
    """The system PriorityClasses every API server creates at start (system-node-critical,
    system-cluster-critical), when missing."""
    for name, (value, description) in SYSTEM_CLASSES.items():
        if registry.store.get_raw(PRIORITY_CLASSES.key, "", name) is None:
            registry.create(PRIORITY_CLASSES, "", {"metadata": {"name": name}, "value": value, "description": description})


def ensure_gateway_class(registry: Registry) -> None:
    """The emulator's GatewayClass, when there is none of that name."""
    if registry.store.get_raw(GATEWAY_CLASSES.key, "", EMULATOR_GATEWAY_CLASS) is not None:
        return
    registry.create(GATEWAY_CLASSES, "", {
        "metadata": {"name": EMULATOR_GATEWAY_CLASS},
        "spec": {"controllerName": GATEWAY_CONTROLLER, "description": "The emulator's own gateway (Gateway API built in)"},
    })
