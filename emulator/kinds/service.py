"""Service (core/v1): the model, the write-path rules (defaults, validation, cluster IPs, node ports and
load-balancer addresses), the read view every consumer shares, the columns of `kubectl get svc`, its
merge keys and its protobuf layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from emulator import errors, validation
from emulator.errors import FieldError, invalid
from emulator.kinds.base import Kind, ResourceType, Subresource
from emulator.kinds.printing import AGE, NAME, NONE, Column, Printer, format_labels, name_age, spec_of, status_of
from emulator.kinds.protobuf_layout import CONDITION, OBJECT_META, Message
from emulator.kinds.protobuf_layout import Field as ProtoField
from emulator.models.base import GoType, Int32, IntOrString
from emulator.models.meta import ApiModel, Protocol, TypedObject
from emulator.registry import ipam
from emulator.registry.patch import ListRule, ListRules
from emulator.registry.strategy import Allocation, Strategy

SERVICES = ResourceType(
    "", "v1", "services", "Service", True, "service", ("svc",), ("all",), subresources=(Subresource("status"),)
)
DEFAULT_AFFINITY_TIMEOUT = 10800  # seconds, the API server's default for ClientIP affinity
HEADLESS = "None"  # the clusterIP of a headless service
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")
# The emulator serves one IP family: its service range (and every address it hands out) is IPv4.
SERVED_FAMILY = "IPv4"
IP_FAMILIES = ("IPv4", "IPv6")
SINGLE_STACK, PREFER_DUAL_STACK, REQUIRE_DUAL_STACK = "SingleStack", "PreferDualStack", "RequireDualStack"
IP_FAMILY_POLICIES = (PREFER_DUAL_STACK, REQUIRE_DUAL_STACK, SINGLE_STACK)  # sorted, as the API server lists them
TRAFFIC_POLICIES = ("Cluster", "Local")


# -- the read view: what a Service means, decided once ----------------------------------------------


@dataclass(frozen=True, slots=True)
class ServicePortView:
    name: str
    protocol: str  # TCP | UDP | SCTP, as stored
    port: int
    target_port: int | str  # a number, or a container port's name
    node_port: int | None
    app_protocol: str


@dataclass(frozen=True, slots=True)
class ServiceView:
    """A Service as DNS, the proxy, the endpoints controller and the environment variables read it
    (the idea of CoreDNS's `object.Service`): parsed once per event (`Event.view(ServiceView.of)`),
    each concept (headless, the cluster IPs, the selector, affinity) decided here and nowhere else."""

    namespace: str
    name: str
    uid: str
    created: str  # creationTimestamp (the kubelet links only services older than the pod)
    labels: dict[str, str]
    type: str
    headless: bool  # clusterIP "None": DNS answers with the endpoints, nothing is proxied
    cluster_ips: tuple[str, ...]  # allocated cluster IPs; empty for headless and ExternalName services
    external_name: str  # ExternalName's target, lower case, without the trailing dot
    ports: tuple[ServicePortView, ...]
    selector: dict[str, str] | None  # None: selectorless, its Endpoints belong to the user
    publish_not_ready: bool
    ingress_ips: tuple[str, ...]  # load-balancer addresses (LoadBalancer only) and externalIPs
    affinity_timeout: float  # seconds of ClientIP affinity; 0 when there is none

    @property
    def external(self) -> bool:
        return self.type == "ExternalName"

    @property
    def cluster_ip(self) -> str | None:
        """The primary cluster IP (what the service variables and the proxy use), None when there is none."""
        return self.cluster_ips[0] if self.cluster_ips else None

    @property
    def node_ports(self) -> bool:
        return self.type in NODE_PORT_TYPES

    @classmethod
    def of(cls, obj: dict[str, Any]) -> ServiceView:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        svc_type = spec.get("type") or "ClusterIP"
        headless = spec.get("clusterIP") == HEADLESS
        cluster_ips: tuple[str, ...] = ()
        if svc_type != "ExternalName" and not headless:
            texts = spec.get("clusterIPs") or [spec.get("clusterIP")]
            cluster_ips = tuple(str(t) for t in texts if t and t != HEADLESS)
        ingress: list[str] = []
        if svc_type == "LoadBalancer":
            lb = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            ingress = [i["ip"] for i in lb if i.get("ip")]
        ingress += [ip for ip in spec.get("externalIPs") or [] if ip]
        affinity = 0.0
        if spec.get("sessionAffinity") == "ClientIP":
            timeout = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds")
            affinity = float(timeout or DEFAULT_AFFINITY_TIMEOUT)
        selector = spec.get("selector")
        return cls(
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            uid=str(meta.get("uid") or ""),
            created=str(meta.get("creationTimestamp") or ""),
            labels=dict(meta.get("labels") or {}),
            type=svc_type,
            headless=headless,
            cluster_ips=cluster_ips,
            external_name=str(spec.get("externalName") or "").strip().rstrip(".").lower(),
            ports=tuple(
                ServicePortView(
                    str(p.get("name") or ""), str(p.get("protocol") or "TCP"),
                    p["port"] if isinstance(p.get("port"), int) else -1,
                    p.get("targetPort") if p.get("targetPort") is not None else p.get("port", -1),
                    p.get("nodePort"), str(p.get("appProtocol") or ""),
                )
                for p in spec.get("ports") or ()
            ),
            selector=dict(selector) if selector and svc_type != "ExternalName" else None,
            publish_not_ready=bool(spec.get("publishNotReadyAddresses")),
            ingress_ips=tuple(ingress),
            affinity_timeout=affinity,
        )


# -- model -------------------------------------------------------------------------------------------

class ServicePort(ApiModel):
    name: str | None = None
    protocol: Protocol = "TCP"
    port: Int32
    target_port: IntOrString | None = None
    node_port: Int32 | None = None
    app_protocol: str | None = None


class ClientIPConfig(ApiModel):
    timeout_seconds: Int32 | None = None


class SessionAffinityConfig(ApiModel):
    client_ip: ClientIPConfig | None = Field(default=None, alias="clientIP")


# string types the decoder takes as they come (validation checks the values), named as in Go
IPFamily = Annotated[str, GoType("v1.IPFamily")]
IPFamilyPolicy = Annotated[str, GoType("v1.IPFamilyPolicy")]
ExternalTrafficPolicy = Annotated[str, GoType("v1.ServiceExternalTrafficPolicy")]
InternalTrafficPolicy = Annotated[str, GoType("v1.ServiceInternalTrafficPolicy")]
LoadBalancerIPMode = Annotated[str, GoType("v1.LoadBalancerIPMode")]
ServiceType = Annotated[Literal["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"], GoType("v1.ServiceType")]
ServiceAffinity = Annotated[Literal["ClientIP", "None"], GoType("v1.ServiceAffinity")]


class ServiceSpec(ApiModel):
    type: ServiceType = "ClusterIP"
    selector: dict[str, str] | None = None
    ports: list[ServicePort] | None = None
    cluster_ip: str | None = Field(default=None, alias="clusterIP")
    cluster_ips: list[str] | None = Field(default=None, alias="clusterIPs")
    external_name: str | None = None
    external_ips: list[str] | None = Field(default=None, alias="externalIPs")
    session_affinity: ServiceAffinity = "None"
    session_affinity_config: SessionAffinityConfig | None = None
    publish_not_ready_addresses: bool | None = None
    load_balancer_ip: str | None = Field(default=None, alias="loadBalancerIP")
    load_balancer_source_ranges: list[str] | None = None
    load_balancer_class: str | None = None
    allocate_load_balancer_node_ports: bool | None = None
    # the values of these are checked by ServiceStrategy.validate, with the API server's causes
    external_traffic_policy: ExternalTrafficPolicy | None = None
    internal_traffic_policy: InternalTrafficPolicy | None = None
    health_check_node_port: Int32 | None = None
    ip_families: list[IPFamily] | None = Field(default=None, alias="ipFamilies")
    ip_family_policy: IPFamilyPolicy | None = Field(default=None, alias="ipFamilyPolicy")
    traffic_distribution: str | None = None


class LoadBalancerIngress(ApiModel):
    ip: str | None = None
    hostname: str | None = None
    ip_mode: LoadBalancerIPMode | None = None
    ports: Any = None


class LoadBalancerStatus(ApiModel):
    ingress: list[LoadBalancerIngress] | None = None


class ServiceStatus(ApiModel):
    load_balancer: LoadBalancerStatus | None = None
    conditions: Any = None


class Service(TypedObject):
    spec: ServiceSpec = Field(default_factory=ServiceSpec)
    status: ServiceStatus | None = None


# -- write path --------------------------------------------------------------------------------------


def _service_ports(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"].get("ports") or []


def _drop_type_dependent_fields(spec: dict[str, Any], old_spec: dict[str, Any], new_type: str) -> None:
    """A type change drops what only the old type had, when the client merely kept the old values
    (like the API server's dropTypeDependentFields): `kubectl patch -p '{"spec":{"type":"ClusterIP"}}'`
    on a NodePort service must not fail on the node ports it still carries."""

    def drop_if_kept(field: str) -> None:
        if field in spec and spec[field] == old_spec.get(field):
            del spec[field]

    if new_type == "ExternalName":
        for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy"):
            drop_if_kept(field)
    if new_type not in ("NodePort", "LoadBalancer"):
        old_node_ports = {p.get("nodePort") for p in old_spec.get("ports") or [] if p.get("nodePort")}
        for port in spec.get("ports") or []:
            if port.get("nodePort") in old_node_ports:
                del port["nodePort"]
        for field in ("externalTrafficPolicy", "healthCheckNodePort"):
            drop_if_kept(field)
    if new_type != "LoadBalancer":
        for field in ("allocateLoadBalancerNodePorts", "loadBalancerClass", "loadBalancerIP"):
            drop_if_kept(field)


class ServiceStrategy(Strategy):
    resource = SERVICES
    model = Service
    name_rule = "dns1035"
    has_status = True
    field_labels = {"spec.clusterIP": ("spec.clusterIP", ""), "spec.type": ("spec.type", "ClusterIP")}

    def prepare_create(self, obj: dict[str, Any]) -> None:
        self._defaults(obj)

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        spec, old_spec = new["spec"], old["spec"]
        new_type, old_type = spec.get("type", "ClusterIP"), old_spec.get("type", "ClusterIP")
        if new_type != old_type:
            _drop_type_dependent_fields(spec, old_spec, new_type)
        if _externally_accessible(old_spec) and not _externally_accessible(spec):
            # like the API server: a policy the client merely kept goes with the external access
            if spec.get("externalTrafficPolicy") == old_spec.get("externalTrafficPolicy"):
                spec.pop("externalTrafficPolicy", None)
        if new_type != "ExternalName":
            # an update that does not name them keeps the stack it has (the API server's initIPFamilyFields)
            for field in ("ipFamilyPolicy", "ipFamilies"):
                if field not in spec and old_spec.get(field):
                    spec[field] = list(old_spec[field]) if field == "ipFamilies" else old_spec[field]
        if new_type == old_type == "LoadBalancer":
            # the emulator is the load-balancer controller: status.loadBalancer is its to write
            new.setdefault("status", {})["loadBalancer"] = (old.get("status") or {}).get("loadBalancer", {})
        # clusterIP(s) are server-allocated: a client that omits them keeps the ones it has
        # (the API server's patchAllocatedValues, then normalizeClusterIPs)
        if spec.get("type") != "ExternalName":
            if not spec.get("clusterIP") and old_spec.get("clusterIP"):
                spec["clusterIP"] = old_spec["clusterIP"]
            if not spec.get("clusterIPs") and old_spec.get("clusterIP"):
                spec["clusterIPs"] = list(old_spec.get("clusterIPs") or [old_spec["clusterIP"]])
        if spec.get("clusterIP") and spec.get("clusterIP") != old_spec.get("clusterIP") and spec.get("clusterIPs") == old_spec.get("clusterIPs"):
            spec["clusterIPs"] = [spec["clusterIP"]]  # an old client changed the singular only
        if spec.get("type") in ("NodePort", "LoadBalancer"):
            old_ports = {(p["port"], p.get("protocol", "TCP")): p.get("nodePort") for p in _service_ports(old)}
            for port in _service_ports(new):
                if not port.get("nodePort") and old_ports.get((port["port"], port.get("protocol", "TCP"))):
                    port["nodePort"] = old_ports[(port["port"], port.get("protocol", "TCP"))]
        self._defaults(new)

    def _defaults(self, obj: dict[str, Any]) -> None:
        spec = obj["spec"]
        kind = spec.get("type", "ClusterIP")
        for port in _service_ports(obj):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port["port"])
        if spec.get("sessionAffinity") == "ClientIP":
            config = spec.setdefault("sessionAffinityConfig", {}).setdefault("clientIP", {})
            config.setdefault("timeoutSeconds", DEFAULT_AFFINITY_TIMEOUT)
        if kind == "ExternalName":
            return
        # a client that sends clusterIP only (the singular, from before dual-stack) gets clusterIPs to match;
        # one that sends clusterIPs must send clusterIP too, as with the API server
        if spec.get("clusterIP") and not spec.get("clusterIPs"):
            spec["clusterIPs"] = [spec["clusterIP"]]
        spec.setdefault("ipFamilyPolicy", SINGLE_STACK)
        if not spec.get("ipFamilies") and _served_family_only(spec.get("clusterIPs") or []):
            # otherwise validation says which address this cluster cannot serve
            spec["ipFamilies"] = [SERVED_FAMILY]
        spec.setdefault("internalTrafficPolicy", "Cluster")
        if _externally_accessible(spec):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if kind == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        obj.setdefault("status", {}).setdefault("loadBalancer", {})

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj["spec"]
        kind = spec.get("type", "ClusterIP")
        problems: list[FieldError] = []
        ports = _service_ports(obj)
        headless = spec.get("clusterIP") == HEADLESS
        if kind == "ExternalName":
            name = spec.get("externalName")
            if not name:
                problems.append(errors.required("spec.externalName"))
            else:
                cname = name.rstrip(".").lower()
                problems += [invalid("spec.externalName", name, m) for m in validation.dns1123_subdomain_errors(cname)]
                # the API server stops at the subdomain rule; the emulator answers this name in DNS,
                # where no label may be longer than 63 characters
                problems += [invalid("spec.externalName", name, m) for m in validation.dns_label_length_errors(cname)]
            if spec.get("clusterIP") and spec.get("clusterIP") != HEADLESS:
                problems.append(errors.forbidden("spec.clusterIP", "may not be set for ExternalName services"))
            for field in ("ipFamilies", "ipFamilyPolicy"):
                if spec.get(field):
                    problems.append(errors.forbidden(f"spec.{field}", "may not be set for ExternalName services"))
        elif not ports and not headless:
            problems.append(errors.required("spec.ports"))
        if headless and kind != "ClusterIP":
            problems.append(invalid("spec.clusterIP", HEADLESS, f"may not be set to 'None' for {kind} services"))
        if spec.get("clusterIP") not in (None, "", HEADLESS):
            problems += validation.validate_ip(spec["clusterIP"], "spec.clusterIP")
        seen_names: set[str] = set()
        seen_ports: set[tuple[int, str]] = set()
        for i, port in enumerate(ports):
            path = f"spec.ports[{i}]"
            name = port.get("name")
            if len(ports) > 1 and not name:
                problems.append(errors.required(f"{path}.name"))
            if name:
                problems += [invalid(f"{path}.name", name, m) for m in validation.dns1123_label_errors(name)]
                if name in seen_names:
                    problems.append(errors.duplicate(f"{path}.name", name))
                seen_names.add(name)
            problems += validation.validate_port_number(port["port"], f"{path}.port")
            key = (port["port"], port.get("protocol", "TCP"))
            if key in seen_ports:
                problems.append(errors.duplicate(path, f"{key[0]}/{key[1]}"))
            seen_ports.add(key)
            target = port.get("targetPort")
            if isinstance(target, int):
                problems += validation.validate_port_number(target, f"{path}.targetPort")
            elif isinstance(target, str):
                problems += validation.validate_port_name(target, f"{path}.targetPort")
            if port.get("nodePort") is not None:
                if kind not in ("NodePort", "LoadBalancer"):
                    problems.append(errors.forbidden(f"{path}.nodePort", f"may not be used when `type` is '{kind}'"))
                elif not self.cluster.plan.node_ports.contains(port["nodePort"]):
                    problems.append(invalid(f"{path}.nodePort", port["nodePort"], f"provided port is not in the valid range. The range of valid ports is {self.cluster.plan.node_ports}"))
        affinity = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
        timeout = affinity.get("timeoutSeconds")
        if timeout is not None and not 0 < timeout <= 86400:
            problems.append(invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds", timeout, "must be greater than 0 and less than 86400"))
        if spec.get("selector"):
            problems += validation.validate_labels(spec["selector"], "spec.selector")
        if kind != "ExternalName":
            problems += _validate_ip_families(spec)
        for i, ip in enumerate(spec.get("externalIPs") or []):
            path = f"spec.externalIPs[{i}]"
            # loopback stays allowed, unlike in Kubernetes: every address of the emulator is in 127.0.0.0/8
            problems += validation.validate_ip(ip, path) or validation.validate_non_special_ip(ip, path, allow_loopback=True)
        if spec.get("loadBalancerIP"):
            # the API server leaves this to the cloud's load-balancer controller, which the emulator is
            problems += validation.validate_ip(spec["loadBalancerIP"], "spec.loadBalancerIP")
        problems += _validate_traffic_policies(spec)
        return problems

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        old_ip, new_ip = old["spec"].get("clusterIP"), new["spec"].get("clusterIP")
        switching = "ExternalName" in (old["spec"].get("type"), new["spec"].get("type"))
        if old_ip and new_ip != old_ip and not switching:
            return [invalid("spec.clusterIP", new_ip or "", "field is immutable")]
        return []

    # -- allocation ----------------------------------------------------------------------------------

    def allocate(self, obj: dict[str, Any], old: dict[str, Any] | None, dry_run: bool) -> Allocation:
        allocation = Allocation()
        try:
            self._allocate_cluster_ip(obj, old, allocation)
            self._allocate_node_ports(obj, old, allocation)
            self._allocate_lb_ip(obj, old, allocation)
        except BaseException:
            allocation.rollback()
            raise
        return allocation

    def _fail(self, obj: dict[str, Any], path: str, value: Any, detail: str) -> errors.StatusError:
        return errors.invalid_object("Service", "", obj["metadata"]["name"], [invalid(path, value, detail)])

    def _allocate_cluster_ip(self, obj: dict[str, Any], old: dict[str, Any] | None, allocation: Allocation) -> None:
        spec = obj["spec"]
        if spec.get("type") == "ExternalName" or spec.get("clusterIP") == HEADLESS:
            if spec.get("clusterIP") == HEADLESS:
                spec["clusterIPs"] = [HEADLESS]
            return
        ips = self.cluster.plan.service_ips
        requested = spec.get("clusterIP")
        if old is not None and requested and requested == old["spec"].get("clusterIP"):
            return
        if requested:
            if not ips.contains(requested):
                raise self._fail(obj, "spec.clusterIP", requested, f"provided IP is not in the valid range. The range of valid IPs is {ips.network}")
            is_kubernetes = obj["metadata"]["name"] == "kubernetes" and obj["metadata"].get("namespace") == "default"
            if requested == ips.first_address and is_kubernetes:
                return
            if not ips.claim(requested):
                raise self._fail(obj, "spec.clusterIP", requested, "provided IP is already allocated")
        else:
            try:
                requested = ips.allocate()
            except ipam.RangeFull:
                raise ipam.full("cluster IP", "spec.clusterIP", "Service", "", obj["metadata"]["name"], str(ips.network)) from None
            spec["clusterIP"] = requested
        spec["clusterIPs"] = [requested]
        taken = requested
        allocation.undo.append(lambda: ips.release(taken))

    def _allocate_node_ports(self, obj: dict[str, Any], old: dict[str, Any] | None, allocation: Allocation) -> None:
        spec = obj["spec"]
        if spec.get("type") not in ("NodePort", "LoadBalancer"):
            return
        if spec.get("type") == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is False:
            return
        ports = self.cluster.plan.node_ports
        held = {p.get("nodePort") for p in (_service_ports(old) if old else []) if p.get("nodePort")}
        for i, port in enumerate(_service_ports(obj)):
            wanted = port.get("nodePort")
            if wanted and wanted in held:
                held.discard(wanted)  # one service may not list the same node port twice
                continue
            if wanted:
                if not ports.claim(wanted):
                    raise self._fail(obj, f"spec.ports[{i}].nodePort", wanted, "provided port is already allocated")
            else:
                try:
                    wanted = ports.allocate()
                except ipam.RangeFull:
                    raise ipam.full("node port", f"spec.ports[{i}].nodePort", "Service", "", obj["metadata"]["name"], str(ports)) from None
                port["nodePort"] = wanted
            taken = wanted
            allocation.undo.append(lambda p=taken: ports.release(p))

    def _allocate_lb_ip(self, obj: dict[str, Any], old: dict[str, Any] | None, allocation: Allocation) -> None:
        spec = obj["spec"]
        if spec.get("type") != "LoadBalancer":
            if (obj.get("status") or {}).get("loadBalancer"):
                obj["status"]["loadBalancer"] = {}  # no longer a load balancer: its address is given back
            return
        lbs = self.cluster.plan.lb_ips
        current = _lb_ip(old) if old and old["spec"].get("type") == "LoadBalancer" else None
        if current:
            ip = current
        else:
            requested = spec.get("loadBalancerIP")
            if requested:
                if not lbs.contains(requested):
                    raise self._fail(obj, "spec.loadBalancerIP", requested, f"not in the load-balancer range {lbs.network}")
                if not lbs.claim(requested):
                    raise self._fail(obj, "spec.loadBalancerIP", requested, "provided IP is already allocated")
                ip = requested
            else:
                try:
                    ip = lbs.allocate()
                except ipam.RangeFull:
                    raise ipam.full("load-balancer IP", "spec.type", "Service", "", obj["metadata"]["name"], str(lbs.network)) from None
            allocation.undo.append(lambda: lbs.release(ip))
        obj.setdefault("status", {})["loadBalancer"] = {"ingress": [{"ip": ip, "ipMode": "VIP"}]}

    def release(self, obj: dict[str, Any], keep: dict[str, Any] | None = None) -> None:
        plan = self.cluster.plan
        ip = obj["spec"].get("clusterIP")
        if ip and ip != HEADLESS and (keep is None or keep["spec"].get("clusterIP") != ip) and plan.service_ips.contains(ip):
            plan.service_ips.release(ip)
        kept_ports = {p.get("nodePort") for p in _service_ports(keep)} if keep else set()
        for port in _service_ports(obj):
            if port.get("nodePort") and port["nodePort"] not in kept_ports and plan.node_ports.contains(port["nodePort"]):
                plan.node_ports.release(port["nodePort"])
        lb = _lb_ip(obj)
        if lb and _lb_ip(keep) != lb and plan.lb_ips.contains(lb):
            plan.lb_ips.release(lb)

    def claim(self, obj: dict[str, Any]) -> None:
        plan = self.cluster.plan
        ip = obj["spec"].get("clusterIP")
        if ip and ip != HEADLESS and plan.service_ips.contains(ip):
            plan.service_ips.claim(ip)
        for port in _service_ports(obj):
            if port.get("nodePort") and plan.node_ports.contains(port["nodePort"]):
                plan.node_ports.claim(port["nodePort"])
        lb = _lb_ip(obj)
        if lb and plan.lb_ips.contains(lb):
            plan.lb_ips.claim(lb)


def _externally_accessible(spec: dict[str, Any]) -> bool:
    """apiservice.ExternallyAccessible: reachable from outside through node ports, a load balancer or external IPs."""
    kind = spec.get("type") or "ClusterIP"
    return kind in NODE_PORT_TYPES or (kind == "ClusterIP" and bool(spec.get("externalIPs")))


def _served_family_only(cluster_ips: list[Any]) -> bool:
    """At most one cluster IP, of the family the emulator serves (or None): its ipFamilies can be defaulted."""
    addresses = [ip for ip in cluster_ips if ip and ip != HEADLESS]
    return len(addresses) <= 1 and all(validation.ip_family(ip) == SERVED_FAMILY for ip in addresses)


def _validate_ip_families(spec: dict[str, Any]) -> list[FieldError]:
    """The API server's ValidateServiceClusterIPsRelatedFields, then (when those pass) what its allocator
    checks against the cluster's families (initIPFamilyFields) — the emulator serves IPv4 only."""
    problems: list[FieldError] = []
    cluster_ip = spec.get("clusterIP")
    cluster_ips: list[Any] = spec.get("clusterIPs") or []
    families: list[Any] = spec.get("ipFamilies") or []
    policy = spec.get("ipFamilyPolicy")
    if cluster_ip:
        if not cluster_ips:
            problems.append(errors.required("spec.clusterIPs"))
        elif cluster_ips[0] != cluster_ip:
            problems.append(errors.invalid_strings("spec.clusterIPs", cluster_ips, "first value must match `clusterIP`"))
    elif cluster_ips:
        problems.append(errors.invalid_strings("spec.clusterIPs", cluster_ips, "must be empty when `clusterIP` is not specified"))
    seen: set[str] = set()
    for i, family in enumerate(families):
        if family not in IP_FAMILIES:
            problems.append(errors.not_supported(f"spec.ipFamilies[{i}]", family, list(IP_FAMILIES)))
        if family in seen:
            problems.append(errors.duplicate(f"spec.ipFamilies[{i}]", family))
        seen.add(family)
    if policy is not None and policy not in IP_FAMILY_POLICIES:
        problems.append(errors.not_supported("spec.ipFamilyPolicy", policy, list(IP_FAMILY_POLICIES)))
    bad_ips = False
    for i, ip in enumerate(cluster_ips):
        if i == 0 and ip == HEADLESS:
            if len(cluster_ips) > 1:
                bad_ips = True
                problems.append(errors.invalid_strings("spec.clusterIPs", cluster_ips, "'None' must be the first and only value"))
            continue
        if i == 0 and ip == cluster_ip:
            bad_ips = bad_ips or validation.parse_ip(ip) is None  # reported on spec.clusterIP
            continue
        found = validation.validate_ip(ip, f"spec.clusterIPs[{i}]")
        bad_ips = bad_ips or bool(found)
        problems += found
    if len(cluster_ips) > 2:
        problems.append(errors.invalid_strings("spec.clusterIPs", cluster_ips, "may only hold up to 2 values"))
    if bad_ips:
        return problems
    if len(cluster_ips) > 1 and {validation.ip_family(ip) for ip in cluster_ips} != set(IP_FAMILIES):
        problems.append(errors.invalid_strings("spec.clusterIPs", cluster_ips, "may specify no more than one IP for each IP family"))
    headless = cluster_ips[:1] == [HEADLESS]
    if not headless:
        for i, (ip, family) in enumerate(zip(cluster_ips, families, strict=False)):
            if family in IP_FAMILIES and validation.ip_family(ip) != family:
                problems.append(invalid(f"spec.clusterIPs[{i}]", ip, f"expected an {family} value as indicated by `ipFamilies[{i}]`"))
    if problems:
        return problems
    # what the API server's allocator adds, against the families this cluster serves
    if policy == SINGLE_STACK:
        for what, values in (("cluster IPs", cluster_ips), ("IP families", families)):
            if len(values) == 2:
                problems.append(invalid("spec.ipFamilyPolicy", policy, f"must be 'RequireDualStack' or 'PreferDualStack' when multiple {what} are specified"))
    families = list(families)
    for i, ip in enumerate(cluster_ips):
        if ip == HEADLESS:
            break
        family = validation.ip_family(ip)
        if i >= len(families):
            if family != SERVED_FAMILY:
                problems.append(errors.invalid_strings(f"spec.clusterIPs[{i}]", cluster_ips, f"{family} is not configured on this cluster"))
            else:
                families.append(family)
    if problems or (headless and not spec.get("selector")):
        return problems  # a headless service without a selector may name any families, as in Kubernetes
    if policy == REQUIRE_DUAL_STACK:
        problems.append(invalid("spec.ipFamilyPolicy", policy, "this cluster is not configured for dual-stack services"))
    for i, family in enumerate(families):
        if family != SERVED_FAMILY:
            problems.append(invalid(f"spec.ipFamilies[{i}]", family, "not configured on this cluster"))
    return problems


def _validate_traffic_policies(spec: dict[str, Any]) -> list[FieldError]:
    """validateServiceExternalTrafficPolicy and validateServiceInternalTrafficFieldsValue."""
    problems: list[FieldError] = []
    external = spec.get("externalTrafficPolicy")
    if not _externally_accessible(spec):
        if external:
            problems.append(invalid("spec.externalTrafficPolicy", external, "may only be set for externally-accessible services"))
    elif not external:
        problems.append(errors.required("spec.externalTrafficPolicy"))
    elif external not in TRAFFIC_POLICIES:
        problems.append(errors.not_supported("spec.externalTrafficPolicy", external, list(TRAFFIC_POLICIES)))
    internal = spec.get("internalTrafficPolicy")
    if internal is not None and internal not in TRAFFIC_POLICIES:
        problems.append(errors.not_supported("spec.internalTrafficPolicy", internal, list(TRAFFIC_POLICIES)))
    return problems


def _lb_ip(obj: dict[str, Any] | None) -> str | None:
    """The load-balancer address a LoadBalancer service holds (None for other types)."""
    if not obj or obj["spec"].get("type") != "LoadBalancer":
        return None
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return ingress[0].get("ip") if ingress else None


# -- merge keys, columns, protobuf -------------------------------------------------------------------

MERGE_RULES: ListRules = {
    ("spec", "ports"): ListRule("port", ("port", "protocol")),
    ("status", "conditions"): ListRule("type", ("type",)),
}


def _service_external_ip(svc: dict[str, Any]) -> str:
    spec = spec_of(svc)
    external = list(spec.get("externalIPs") or [])
    kind = spec.get("type") or "ClusterIP"
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or NONE
    if kind == "LoadBalancer":
        ingress = (status_of(svc).get("loadBalancer") or {}).get("ingress") or []
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
    spec = spec_of(svc)
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    name, created = name_age(svc, now)
    return [
        name,
        spec.get("type") or "ClusterIP",
        cluster_ips[0] if cluster_ips else NONE,
        _service_external_ip(svc),
        format_service_ports(spec.get("ports")),
        created,
        format_labels(spec.get("selector")),
    ]


PRINTER = Printer(
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


SERVICE_PORT: Message = {
    1: ProtoField("name", "string"),
    2: ProtoField("protocol", "string"),
    3: ProtoField("port", "int"),
    4: ProtoField("targetPort", "int_or_string"),
    5: ProtoField("nodePort", "int"),
    6: ProtoField("appProtocol", "string", optional=True),
}

SESSION_AFFINITY_CONFIG: Message = {
    1: ProtoField("clientIP", "message", {1: ProtoField("timeoutSeconds", "int", optional=True)}, optional=True),
}

SERVICE_SPEC: Message = {
    1: ProtoField("ports", "message", SERVICE_PORT, repeated=True),
    2: ProtoField("selector", "map"),
    3: ProtoField("clusterIP", "string"),
    4: ProtoField("type", "string"),
    5: ProtoField("externalIPs", "string", repeated=True),
    7: ProtoField("sessionAffinity", "string"),
    8: ProtoField("loadBalancerIP", "string"),
    9: ProtoField("loadBalancerSourceRanges", "string", repeated=True),
    10: ProtoField("externalName", "string"),
    11: ProtoField("externalTrafficPolicy", "string"),
    12: ProtoField("healthCheckNodePort", "int"),
    13: ProtoField("publishNotReadyAddresses", "bool"),
    14: ProtoField("sessionAffinityConfig", "message", SESSION_AFFINITY_CONFIG, optional=True),
    17: ProtoField("ipFamilyPolicy", "string", optional=True),
    18: ProtoField("clusterIPs", "string", repeated=True),
    19: ProtoField("ipFamilies", "string", repeated=True),
    20: ProtoField("allocateLoadBalancerNodePorts", "bool", optional=True),
    21: ProtoField("loadBalancerClass", "string", optional=True),
    22: ProtoField("internalTrafficPolicy", "string", optional=True),
    23: ProtoField("trafficDistribution", "string", optional=True),
}

LOAD_BALANCER_INGRESS: Message = {
    1: ProtoField("ip", "string"),
    2: ProtoField("hostname", "string"),
    3: ProtoField("ipMode", "string", optional=True),
    4: ProtoField("ports", "message", {
        1: ProtoField("port", "int", optional=True),
        2: ProtoField("protocol", "string", optional=True),
        3: ProtoField("error", "string", optional=True),
    }, repeated=True),
}
SERVICE_STATUS: Message = {
    1: ProtoField("loadBalancer", "message", {1: ProtoField("ingress", "message", LOAD_BALANCER_INGRESS, repeated=True)}),
    2: ProtoField("conditions", "message", CONDITION, repeated=True),
}
SERVICE_PROTOBUF: Message = {
    1: ProtoField("metadata", "message", OBJECT_META),
    2: ProtoField("spec", "message", SERVICE_SPEC),
    3: ProtoField("status", "message", SERVICE_STATUS),
}


KIND = Kind(SERVICES, ServiceStrategy, PRINTER, MERGE_RULES, {("v1", "Service"): SERVICE_PROTOBUF})
