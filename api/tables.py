"""`meta.k8s.io/v1` Table documents: what `kubectl get` prints, with the columns and cell formatting of a
real 1.32 API server (pkg/printers/internalversion), Age included.

The server formats every cell; kubectl only lays them out. Priority-1 columns are what `-o wide` adds.
Rows carry the object (PartialObjectMetadata by default) because kubectl reads the NAMESPACE and LABELS
columns from it (KUBECTL.md §6).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from emulator.resources import ResourceType
from emulator.timestamps import parse_rfc3339

INCLUDE_OBJECT = ("None", "Metadata", "Object")
NONE = "<none>"


# --------------------------------------------------------------------------------------------------------
# Age


def human_duration(seconds: float) -> str:
    """Format an elapsed time the way kubectl's AGE column does (apimachinery `duration.HumanDuration`):
    two significant units while they are informative ("2m30s", "5h12m", "3d4h", "2y100d"), one after."""
    s = int(seconds)  # Go's int(d.Seconds()) truncates toward zero
    # A clock up to 2s behind the creator still reads as "now".
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    if days < 365 * 8:
        return f"{years}y{days % 365}d" if days % 365 else f"{years}y"
    return f"{years}y"


def age(timestamp: str | None, now: datetime) -> str:
    """The AGE cell for a timestamp; "<unknown>" when unset, as kubectl prints it."""
    then = parse_rfc3339(timestamp)
    if then is None:
        return "<unknown>"
    return human_duration((now - then).total_seconds())


# --------------------------------------------------------------------------------------------------------
# Column specs


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    description: str
    type: str = "string"
    format: str = ""
    priority: int = 0

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


NAME = Column("Name", "Name must be unique within a namespace.", format="name")
AGE = Column(
    "Age",
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
)

# Cells are computed per object from the object and "now"; one function per kind keeps the shared work
# (e.g. a pod's container walk) in one place.
Cells = Callable[[dict[str, Any], datetime], list[Any]]


@dataclass(frozen=True, slots=True)
class Printer:
    columns: tuple[Column, ...]
    cells: Cells
    conditions: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("spec") or {}


def _status(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("status") or {}


def _name_age(obj: dict[str, Any], now: datetime) -> tuple[str, str]:
    meta = _meta(obj)
    return meta.get("name", ""), age(meta.get("creationTimestamp"), now)


def format_labels(labels: dict[str, str] | None) -> str:
    """`labels.FormatLabels`: sorted `k=v` pairs, "<none>" when empty."""
    if not labels:
        return NONE
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def format_label_selector(selector: dict[str, Any] | None) -> str:
    """`metav1.FormatLabelSelector`: matchLabels and matchExpressions as one selector string, sorted by key."""
    selector = selector or {}
    terms: list[tuple[str, str]] = [(k, f"{k}={v}") for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key", ""), expr.get("operator", "")
        values = ",".join(sorted(expr.get("values") or []))
        rendered = {
            "In": f"{key} in ({values})",
            "NotIn": f"{key} notin ({values})",
            "Exists": key,
            "DoesNotExist": f"!{key}",
        }.get(op, f"{key} {op} ({values})")
        terms.append((key, rendered))
    if not terms:
        return NONE
    return ",".join(text for _, text in sorted(terms, key=lambda t: t[0]))


def join_with_more(items: Iterable[str], limit: int = 3, empty: str = "<unset>") -> str:
    """The first `limit` items and "+ N more..." for the rest, as kubectl abbreviates long address lists."""
    listed = list(items)
    shown = ",".join(listed[:limit])
    if len(listed) > limit:
        return f"{shown} + {len(listed) - limit} more..."
    return shown or empty


def _host_port(ip: str, port: Any) -> str:
    # net.JoinHostPort brackets IPv6 addresses
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


# --------------------------------------------------------------------------------------------------------
# Pods


def _condition_true(status: dict[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in status.get("conditions") or [])


def _pod_cells(pod: dict[str, Any], now: datetime) -> list[Any]:
    spec, status, meta = _spec(pod), _status(pod), _meta(pod)
    containers = spec.get("containers") or []
    # Sidecars (init containers that keep running) count towards the total, as in kubectl.
    sidecars = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    total = len(containers) + len(sidecars)
    # A pod that has not been given a status yet is Pending, which is what a real server stores for it.
    phase = status.get("phase") or "Pending"
    reason = status.get("reason") or phase

    statuses = status.get("containerStatuses")
    restarts = 0
    last_restart: datetime | None = None
    if statuses is None:
        # The emulator may not track containers individually: the Ready condition speaks for all of them.
        ready = total if _condition_true(status, "Ready") else 0
    else:
        ready = 0
        running = False
        for cs in reversed(statuses):
            restarts += int(cs.get("restartCount") or 0)
            finished = parse_rfc3339(((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt"))
            if finished and (last_restart is None or finished > last_restart):
                last_restart = finished
            state = cs.get("state") or {}
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if waiting and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated is not None:
                signal = terminated.get("signal") or 0
                reason = f"Signal:{signal}" if signal else f"ExitCode:{terminated.get('exitCode') or 0}"
            elif cs.get("ready") and "running" in state:
                running = True
                ready += 1
        if reason == "Completed" and running:
            reason = "Running" if _condition_true(status, "Ready") else "NotReady"

    if meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"

    restarts_cell = str(restarts)
    if restarts and last_restart is not None:
        restarts_cell = f"{restarts} ({human_duration((now - last_restart).total_seconds())} ago)"

    pod_ips = status.get("podIPs") or []
    ip = (pod_ips[0].get("ip") if pod_ips else None) or status.get("podIP") or NONE
    gates = spec.get("readinessGates") or []
    if gates:
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        passed = sum(1 for g in gates if conditions.get(g.get("conditionType")) == "True")
        gates_cell = f"{passed}/{len(gates)}"
    else:
        gates_cell = NONE
    name, created = _name_age(pod, now)
    return [
        name,
        f"{ready}/{total}",
        reason,
        restarts_cell,
        created,
        ip,
        spec.get("nodeName") or NONE,
        status.get("nominatedNodeName") or NONE,
        gates_cell,
    ]


def _pod_conditions(pod: dict[str, Any]) -> list[dict[str, Any]]:
    # Lets clients tell finished pods apart (metav1.RowCompleted).
    phase = _status(pod).get("phase")
    messages = {"Succeeded": "The pod has completed successfully.", "Failed": "The pod failed."}
    if phase not in messages:
        return []
    return [{"type": "Completed", "status": "True", "reason": phase, "message": messages[phase]}]


POD = Printer(
    (
        NAME,
        Column("Ready", "The aggregate readiness state of this pod for accepting traffic."),
        Column("Status", "The aggregate status of the containers in this pod."),
        Column(
            "Restarts",
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        ),
        AGE,
        Column("IP", "IP address allocated to the pod. Routable at least within the cluster.", priority=1),
        Column("Node", "NodeName indicates in which node this pod is scheduled.", priority=1),
        Column(
            "Nominated Node", "nominatedNodeName is set only when this pod preempts other pods on the node.", priority=1
        ),
        Column("Readiness Gates", "If specified, all readiness gates will be evaluated for pod readiness.", priority=1),
    ),
    _pod_cells,
    _pod_conditions,
)


# --------------------------------------------------------------------------------------------------------
# Services


def _service_external_ip(svc: dict[str, Any]) -> str:
    spec = _spec(svc)
    external = list(spec.get("externalIPs") or [])
    kind = spec.get("type") or "ClusterIP"
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or NONE
    if kind == "LoadBalancer":
        ingress = (_status(svc).get("loadBalancer") or {}).get("ingress") or []
        lb = sorted({i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")})
        return ",".join(lb + external) or "<pending>"
    if kind == "ExternalName":
        return spec.get("externalName") or ""
    return "<unknown>"


def format_service_ports(ports: list[dict[str, Any]] | None) -> str:
    """ "80/TCP,9090/TCP"; a node port shows as "80:30080/TCP"."""
    pieces = []
    for p in ports or []:
        protocol = p.get("protocol") or "TCP"
        node_port = p.get("nodePort")
        pieces.append(f"{p.get('port')}:{node_port}/{protocol}" if node_port else f"{p.get('port')}/{protocol}")
    return ",".join(pieces) or NONE


def _service_cells(svc: dict[str, Any], now: datetime) -> list[Any]:
    spec = _spec(svc)
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    name, created = _name_age(svc, now)
    return [
        name,
        spec.get("type") or "ClusterIP",
        cluster_ips[0] if cluster_ips else NONE,
        _service_external_ip(svc),
        format_service_ports(spec.get("ports")),
        created,
        format_labels(spec.get("selector")),
    ]


SERVICE = Printer(
    (
        NAME,
        Column("Type", "type determines how the Service is exposed."),
        Column("Cluster-IP", "clusterIP is the IP address of the service and is usually assigned randomly."),
        Column(
            "External-IP",
            "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
        ),
        Column("Port(s)", "The list of ports that are exposed by this service."),
        AGE,
        Column(
            "Selector", "Route service traffic to pods with label keys and values matching this selector.", priority=1
        ),
    ),
    _service_cells,
)


# --------------------------------------------------------------------------------------------------------
# Endpoints and EndpointSlices


def format_endpoints(endpoints: dict[str, Any]) -> str:
    """Ready addresses as ip:port for every port of each subset (bare IPs for port-less headless
    subsets), abbreviated after three; "<none>" when there are no subsets."""
    subsets = endpoints.get("subsets") or []
    if not subsets:
        return NONE
    entries: list[str] = []
    for subset in subsets:
        ips = [a.get("ip", "") for a in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        if not ports:
            entries.extend(ips)
        for port in ports:
            entries.extend(_host_port(ip, port.get("port")) for ip in ips)
    return join_with_more(entries, empty="")


def _endpoints_cells(ep: dict[str, Any], now: datetime) -> list[Any]:
    name, created = _name_age(ep, now)
    return [name, format_endpoints(ep), created]


ENDPOINTS = Printer(
    (NAME, Column("Endpoints", "The set of all endpoints is the union of all subsets."), AGE),
    _endpoints_cells,
)


def _slice_cells(eps: dict[str, Any], now: datetime) -> list[Any]:
    # A port without a number matches the named target port on each pod: shown by name, or "*".
    ports = [str(p["port"]) if p.get("port") is not None else p.get("name") or "*" for p in eps.get("ports") or []]
    addresses = [a for e in eps.get("endpoints") or [] for a in e.get("addresses") or []]
    name, created = _name_age(eps, now)
    return [name, eps.get("addressType", ""), join_with_more(ports), join_with_more(addresses), created]


ENDPOINT_SLICE = Printer(
    (
        NAME,
        Column("AddressType", "addressType specifies the type of address carried by this EndpointSlice."),
        Column("Ports", "ports specifies the list of network ports exposed by each endpoint in this slice."),
        Column("Endpoints", "endpoints is a list of unique endpoints in this slice."),
        AGE,
    ),
    _slice_cells,
)


# --------------------------------------------------------------------------------------------------------
# Namespaces, service accounts, network policies, events, everything else


def _namespace_cells(ns: dict[str, Any], now: datetime) -> list[Any]:
    name, created = _name_age(ns, now)
    return [name, _status(ns).get("phase", ""), created]


def _service_account_cells(sa: dict[str, Any], now: datetime) -> list[Any]:
    name, created = _name_age(sa, now)
    return [name, len(sa.get("secrets") or []), created]


def _network_policy_cells(np: dict[str, Any], now: datetime) -> list[Any]:
    name, created = _name_age(np, now)
    return [name, format_label_selector(_spec(np).get("podSelector")), created]


def _event_cells(ev: dict[str, Any], now: datetime) -> list[Any]:
    # Events of the events.k8s.io API set eventTime instead of firstTimestamp.
    first = age(ev.get("firstTimestamp") or ev.get("eventTime"), now)
    last = age(ev.get("lastTimestamp"), now) if ev.get("lastTimestamp") else first
    count = ev.get("count") or 1  # events of the new API leave count unset: they happened once
    series = ev.get("series")
    if series:
        last = age(series.get("lastObservedTime"), now)
        count = series.get("count") or count
    involved = ev.get("involvedObject") or {}
    kind = (involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = ev.get("source") or {}
    component = source.get("component") or ev.get("reportingComponent") or ""
    instance = source.get("host") or ev.get("reportingInstance") or ""
    return [
        last,
        ev.get("type", ""),
        ev.get("reason", ""),
        target,
        involved.get("fieldPath", ""),
        f"{component}, {instance}" if instance else component,
        (ev.get("message") or "").strip(),
        first,
        count,
        _meta(ev).get("name", ""),
    ]


def _name_age_cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    return list(_name_age(obj, now))


NAMESPACE = Printer((NAME, Column("Status", "The status of the namespace"), AGE), _namespace_cells)
SERVICE_ACCOUNT = Printer(
    (
        NAME,
        Column(
            "Secrets",
            "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
            type="integer",
        ),
        AGE,
    ),
    _service_account_cells,
)
NETWORK_POLICY = Printer(
    (NAME, Column("Pod-Selector", "Selects the pods to which this NetworkPolicy object applies."), AGE),
    _network_policy_cells,
)
EVENT = Printer(
    (
        Column("Last Seen", "The time at which the most recent occurrence of this event was recorded."),
        Column("Type", "Type of this event (Normal, Warning), new types could be added in the future"),
        Column(
            "Reason",
            "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
        ),
        Column("Object", "The object that this event is about."),
        Column("Subobject", "The part of the object the event is about, e.g. spec.containers{name}.", priority=1),
        Column("Source", "The component reporting this event.", priority=1),
        Column("Message", "A human-readable description of the status of this operation."),
        Column("First Seen", "The time at which the event was first recorded.", priority=1),
        Column("Count", "The number of times this event has occurred.", priority=1),
        Column("Name", NAME.description, format="name", priority=1),
    ),
    _event_cells,
)
DEFAULT = Printer((NAME, AGE), _name_age_cells)

# Keyed by ResourceType.key; a kind not listed prints Name and Age.
PRINTERS: dict[str, Printer] = {
    "pods": POD,
    "services": SERVICE,
    "endpoints": ENDPOINTS,
    "endpointslices.discovery.k8s.io": ENDPOINT_SLICE,
    "namespaces": NAMESPACE,
    "serviceaccounts": SERVICE_ACCOUNT,
    "networkpolicies.networking.k8s.io": NETWORK_POLICY,
    "events": EVENT,
}


def printer_for(resource: ResourceType) -> Printer:
    return PRINTERS.get(resource.key, DEFAULT)


def column_definitions(resource: ResourceType) -> list[dict[str, Any]]:
    return [c.definition() for c in printer_for(resource).columns]


# --------------------------------------------------------------------------------------------------------
# Table documents


def partial_object_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": _meta(obj)}


def table_row(
    resource: ResourceType, obj: dict[str, Any], include_object: str = "Metadata", now: datetime | None = None
) -> dict[str, Any]:
    """One row: formatted cells plus, unless includeObject=None, the object (or its metadata)."""
    if include_object not in INCLUDE_OBJECT:
        raise ValueError(f"includeObject must be one of {', '.join(INCLUDE_OBJECT)}, not {include_object!r}")
    printer = printer_for(resource)
    row: dict[str, Any] = {"cells": printer.cells(obj, now or datetime.now(UTC))}
    if printer.conditions is not None:
        conditions = printer.conditions(obj)
        if conditions:
            row["conditions"] = conditions
    if include_object == "Metadata":
        row["object"] = partial_object_metadata(obj)
    elif include_object == "Object":
        row["object"] = {"apiVersion": resource.api_version, "kind": resource.kind, **obj}
    return row


def table(
    resource: ResourceType,
    objects: list[dict[str, Any]],
    resource_version: str,
    include_object: str = "Metadata",
    now: datetime | None = None,
    *,
    continue_token: str | None = None,
    version: str = "v1",
) -> dict[str, Any]:
    """A Table for a list, a single GET (one object) or one watch event. Always carries the column
    definitions and a resourceVersion, even when empty: without the RV `kubectl get -w` re-lists and
    prints every row twice (KUBECTL.md §12.7)."""
    now = now or datetime.now(UTC)
    metadata: dict[str, Any] = {"resourceVersion": str(resource_version)}
    if continue_token:
        metadata["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": metadata,
        "columnDefinitions": column_definitions(resource),
        "rows": [table_row(resource, obj, include_object, now) for obj in objects],
    }
