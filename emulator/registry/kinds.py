"""Per-kind strategies: the defaults, validation and allocation rules of each kind the emulator serves."""

from __future__ import annotations

from typing import Any

from emulator import errors, validation
from emulator.errors import FieldError, invalid
from emulator.labels import validate_label_selector
from emulator.models import core
from emulator.netpol.semantics import validate_network_policy
from emulator.registry import ipam
from emulator.registry.registry import Cluster
from emulator.registry.strategy import Allocation, Strategy
from emulator.resources import (
    ENDPOINT_SLICES,
    ENDPOINTS,
    EVENTS,
    NAMESPACES,
    NETWORK_POLICIES,
    PODS,
    SERVICE_ACCOUNTS,
    SERVICES,
    ResourceType,
)
from emulator.timestamps import now_rfc3339

DEFAULT_AFFINITY_TIMEOUT = 10800  # seconds, the API server's default for ClientIP affinity
READY_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "ContainersReady", "PodScheduled", "Ready")
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")


def _validate_ports_unique(containers: list[tuple[str, dict[str, Any]]]) -> list[FieldError]:
    """A pod's containers share one network namespace: a (port, protocol) or port name may appear once."""
    problems: list[FieldError] = []
    seen_ports: dict[tuple[int, str], str] = {}
    seen_names: set[str] = set()
    for path, container in containers:
        for j, port in enumerate(container.get("ports") or []):
            port_path = f"{path}.ports[{j}]"
            number = port["containerPort"]
            problems += validation.validate_port_number(number, f"{port_path}.containerPort")
            key = (number, port.get("protocol", "TCP"))
            if key in seen_ports:
                problems.append(FieldError(
                    f"{port_path}.containerPort", "FieldValueDuplicate",
                    f"Duplicate value: {number}: {key[1]} port {number} is already declared by container {seen_ports[key]!r} (containers of a pod share one IP and one port space)",
                ))
            else:
                seen_ports[key] = container["name"]
            if "name" in port:
                problems += validation.validate_port_name(port["name"], f"{port_path}.name")
                if port["name"] in seen_names:
                    problems.append(errors.duplicate(f"{port_path}.name", port["name"]))
                seen_names.add(port["name"])
    return problems


def pod_port_containers(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Containers whose ports are served: app containers and sidecars (init containers that keep running)."""
    out = [(f"spec.containers[{i}]", c) for i, c in enumerate(spec.get("containers") or [])]
    out += [
        (f"spec.initContainers[{i}]", c)
        for i, c in enumerate(spec.get("initContainers") or [])
        if c.get("restartPolicy") == "Always"
    ]
    return out


class PodStrategy(Strategy):
    resource = PODS
    model = core.Pod
    has_status = True
    field_labels = {
        **{f: (f, "") for f in (
            "spec.nodeName", "spec.restartPolicy", "spec.serviceAccountName", "status.phase", "status.podIP",
            "status.nominatedNodeName",
        )},
        "spec.hostNetwork": ("spec.hostNetwork", "false"),
        "spec.schedulerName": ("spec.schedulerName", "default-scheduler"),
    }

    def prepare_create(self, obj: dict[str, Any]) -> None:
        spec = obj["spec"]
        if spec.get("serviceAccount") and not spec.get("serviceAccountName"):
            spec["serviceAccountName"] = spec["serviceAccount"]
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("nodeName", "emulator")
        status = obj.setdefault("status", {})
        # There is no kubelet: a pod runs and is ready at once unless the client says otherwise.
        status.setdefault("phase", "Running")
        conditions = status.setdefault("conditions", [])
        present = {c["type"] for c in conditions}
        ready_now = status["phase"] == "Running"
        ready_value = next((c["status"] for c in conditions if c["type"] == "Ready"), "True" if ready_now else "False")
        stamp = now_rfc3339()
        for ctype in READY_CONDITIONS:
            if ctype not in present:
                value = ready_value if ctype in ("Ready", "ContainersReady") else "True"
                conditions.append({"type": ctype, "status": value, "lastTransitionTime": stamp})
        status.setdefault("startTime", stamp)
        status.setdefault("hostIP", self.cluster.node_address)
        status.setdefault("hostIPs", [{"ip": self.cluster.node_address}])
        status.setdefault("qosClass", "BestEffort")
        if spec.get("hostNetwork") and not status.get("podIP"):
            status["podIP"] = self.cluster.node_address
        if status.get("podIP"):
            status.setdefault("podIPs", [{"ip": status["podIP"]}])

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj["spec"]
        problems: list[FieldError] = []
        if not spec.get("containers"):
            problems.append(errors.required("spec.containers"))
        names: set[str] = set()
        for group in ("containers", "initContainers"):
            for i, container in enumerate(spec.get(group) or []):
                path = f"spec.{group}[{i}].name"
                problems += [invalid(path, container["name"], m) for m in validation.dns1123_label_errors(container["name"])]
                if container["name"] in names:
                    problems.append(errors.duplicate(path, container["name"]))
                names.add(container["name"])
                for k, env in enumerate(container.get("env") or []):
                    path = f"spec.{group}[{i}].env[{k}].name"
                    if not env["name"]:
                        problems.append(errors.required(path))
                    else:
                        problems += [invalid(path, env["name"], m) for m in validation.env_var_name_errors(env["name"])]
        problems += _validate_ports_unique(pod_port_containers(spec))
        for field in ("hostname", "subdomain"):
            if spec.get(field):
                problems += [invalid(f"spec.{field}", spec[field], m) for m in validation.dns1123_label_errors(spec[field])]
        status = obj.get("status") or {}
        if status.get("podIP"):
            problems += validation.validate_ip(status["podIP"], "status.podIP")
        sa = spec.get("serviceAccountName")
        if sa:
            problems += [invalid("spec.serviceAccountName", sa, m) for m in validation.dns1123_subdomain_errors(sa)]
        return problems

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        problems = []
        old_ip = (old.get("status") or {}).get("podIP")
        new_ip = (new.get("status") or {}).get("podIP")
        if old_ip and new_ip != old_ip:
            problems.append(errors.forbidden("status.podIP", f"pod IP may not change once set (was {old_ip})"))
        for field in ("serviceAccountName", "hostNetwork", "nodeName"):
            if new["spec"].get(field) != old["spec"].get(field):
                problems.append(errors.forbidden(f"spec.{field}", "may not change once the pod exists: delete the pod and create it again"))
        return problems

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        # keep server defaults the client did not send back (e.g. a PUT of an edited manifest)
        for field in ("serviceAccountName", "serviceAccount", "nodeName", "enableServiceLinks"):
            if field in old["spec"] and field not in new["spec"]:
                new["spec"][field] = old["spec"][field]
        status = new.get("status") or {}
        old_status = old.get("status") or {}
        if old_status.get("podIP") and not status.get("podIP") and "status" in new:
            status["podIP"] = old_status["podIP"]
            status.setdefault("podIPs", old_status.get("podIPs", [{"ip": old_status["podIP"]}]))

    def allocate(self, obj: dict[str, Any], old: dict[str, Any] | None, dry_run: bool) -> Allocation:
        allocation = Allocation()
        if old is not None:
            return allocation
        self._check_service_account(obj)
        status = obj["status"]
        pods = self.cluster.plan.pod_ips
        ip = status.get("podIP")
        if ip:
            # a pod may bring its own address (a process that really listens there); inside the pod
            # range it must be free, outside it is the caller's business (host network, containers)
            if pods.contains(ip):
                if not pods.claim(ip):
                    raise errors.invalid_object("Pod", "", obj["metadata"]["name"], [invalid("status.podIP", ip, "address is already in use by another pod")])
                allocation.undo.append(lambda: pods.release(ip))
            return allocation
        try:
            ip = pods.allocate()
        except ipam.RangeFull:
            raise ipam.full("pod IP", "status.podIP", "Pod", "", obj["metadata"]["name"], str(pods.network)) from None
        allocation.undo.append(lambda: pods.release(ip))
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
        return allocation

    def _check_service_account(self, obj: dict[str, Any]) -> None:
        meta, sa = obj["metadata"], obj["spec"].get("serviceAccountName")
        if sa and self.cluster.store.get_raw(SERVICE_ACCOUNTS.key, meta["namespace"], sa) is None:
            raise errors.forbidden_request(
                f'pods "{meta["name"]}" is forbidden: error looking up service account {meta["namespace"]}/{sa}: '
                f'serviceaccount "{sa}" not found'
            )

    def release(self, obj: dict[str, Any], keep: dict[str, Any] | None = None) -> None:
        if keep is not None:
            return
        ip = (obj.get("status") or {}).get("podIP")
        if ip and self.cluster.plan.pod_ips.contains(ip):
            self.cluster.plan.pod_ips.release(ip)

    def claim(self, obj: dict[str, Any]) -> None:
        ip = (obj.get("status") or {}).get("podIP")
        if ip and self.cluster.plan.pod_ips.contains(ip):
            self.cluster.plan.pod_ips.claim(ip)

    def claim_raw(self, raw: bytes) -> None:
        # orjson writes `"podIP":"1.2.3.4"` exactly so; status is stored last, so the last match is
        # status.podIP even when a label or annotation happens to be called podIP
        at = raw.rfind(b'"podIP":"')
        if at < 0:
            return
        start = at + 9
        ip = raw[start:raw.index(b'"', start)].decode()
        if self.cluster.plan.pod_ips.contains(ip):
            self.cluster.plan.pod_ips.claim(ip)


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
    model = core.Service
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
        if new_type == old_type == "LoadBalancer":
            # the emulator is the load-balancer controller: status.loadBalancer is its to write
            new.setdefault("status", {})["loadBalancer"] = (old.get("status") or {}).get("loadBalancer", {})
        # clusterIP is server-allocated: a client that omits it keeps the one it has
        if not spec.get("clusterIP") and old_spec.get("clusterIP") and spec.get("type") != "ExternalName":
            spec["clusterIP"] = old_spec["clusterIP"]
            spec["clusterIPs"] = old_spec.get("clusterIPs", [old_spec["clusterIP"]])
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
        if spec.get("clusterIPs") and not spec.get("clusterIP"):
            spec["clusterIP"] = spec["clusterIPs"][0]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        if kind in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if kind == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        obj.setdefault("status", {}).setdefault("loadBalancer", {})

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj["spec"]
        kind = spec.get("type", "ClusterIP")
        problems: list[FieldError] = []
        ports = _service_ports(obj)
        headless = spec.get("clusterIP") == "None"
        if kind == "ExternalName":
            name = spec.get("externalName")
            if not name:
                problems.append(errors.required("spec.externalName"))
            else:
                problems += [invalid("spec.externalName", name, m) for m in validation.dns1123_subdomain_errors(name.rstrip(".").lower())]
            if spec.get("clusterIP") and spec.get("clusterIP") != "None":
                problems.append(errors.forbidden("spec.clusterIP", "may not be set for ExternalName services"))
        elif not ports and not headless:
            problems.append(errors.required("spec.ports"))
        if headless and kind != "ClusterIP":
            problems.append(invalid("spec.clusterIP", "None", f"may not be set to 'None' for {kind} services"))
        if spec.get("clusterIP") not in (None, "", "None"):
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
        if spec.get("type") == "ExternalName" or spec.get("clusterIP") == "None":
            if spec.get("clusterIP") == "None":
                spec["clusterIPs"] = ["None"]
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
        if ip and ip != "None" and (keep is None or keep["spec"].get("clusterIP") != ip) and plan.service_ips.contains(ip):
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
        if ip and ip != "None" and plan.service_ips.contains(ip):
            plan.service_ips.claim(ip)
        for port in _service_ports(obj):
            if port.get("nodePort") and plan.node_ports.contains(port["nodePort"]):
                plan.node_ports.claim(port["nodePort"])
        lb = _lb_ip(obj)
        if lb and plan.lb_ips.contains(lb):
            plan.lb_ips.claim(lb)


def _lb_ip(obj: dict[str, Any] | None) -> str | None:
    """The load-balancer address a LoadBalancer service holds (None for other types)."""
    if not obj or obj["spec"].get("type") != "LoadBalancer":
        return None
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return ingress[0].get("ip") if ingress else None


class EndpointsStrategy(Strategy):
    resource = ENDPOINTS
    model = core.Endpoints

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        problems: list[FieldError] = []
        for i, subset in enumerate(obj.get("subsets") or []):
            for group in ("addresses", "notReadyAddresses"):
                for j, address in enumerate(subset.get(group) or []):
                    problems += validation.validate_ip(address["ip"], f"subsets[{i}].{group}[{j}].ip")
            for j, port in enumerate(subset.get("ports") or []):
                problems += validation.validate_port_number(port["port"], f"subsets[{i}].ports[{j}].port")
        return problems


class EndpointSliceStrategy(Strategy):
    resource = ENDPOINT_SLICES
    model = core.EndpointSlice

    # discovery/v1 defaulting: a port's name is "" when unset (`kubectl describe svc` dereferences it)
    def prepare_create(self, obj: dict[str, Any]) -> None:
        for port in obj.get("ports") or []:
            port.setdefault("name", "")

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        self.prepare_create(new)


class NamespaceStrategy(Strategy):
    resource = NAMESPACES
    model = core.Namespace
    name_rule = "label"
    has_status = True
    field_labels = {"status.phase": ("status.phase", "")}
    # like the API server: a deleted namespace turns Terminating, its contents go, then it goes
    deletes_gracefully = True

    def prepare_delete(self, obj: dict[str, Any]) -> None:
        obj.setdefault("status", {})["phase"] = "Terminating"

    def prepare_create(self, obj: dict[str, Any]) -> None:
        self._label(obj)
        obj.setdefault("spec", {})
        obj["status"] = {"phase": "Active"}

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        self._label(new)
        new.setdefault("spec", old.get("spec", {}))

    def check_delete(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if name in PROTECTED_NAMESPACES:
            raise errors.forbidden_request(f'namespaces "{name}" is forbidden: this namespace may not be deleted')

    @staticmethod
    def _label(obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        meta.setdefault("labels", {})[NAMESPACE_NAME_LABEL] = meta["name"]


class ServiceAccountStrategy(Strategy):
    resource = SERVICE_ACCOUNTS
    model = core.ServiceAccount


class EventStrategy(Strategy):
    resource = EVENTS
    model = core.Event
    field_labels = {
        **{f"involvedObject.{f}": (f"involvedObject.{f}", "") for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")},
        **{f: (f, "") for f in ("reason", "reportingComponent", "type")},
        "source": ("source.component", ""),
    }


class NetworkPolicyStrategy(Strategy):
    resource = NETWORK_POLICIES
    model = core.NetworkPolicy

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        problems = validate_label_selector(obj["spec"].get("podSelector"), "spec.podSelector")
        return problems + validate_network_policy(obj)


STRATEGY_CLASSES: tuple[type[Strategy], ...] = (
    NamespaceStrategy, PodStrategy, ServiceStrategy, EndpointsStrategy, ServiceAccountStrategy,
    EventStrategy, EndpointSliceStrategy, NetworkPolicyStrategy,
)


def build_strategies(cluster: Cluster) -> dict[str, Strategy]:
    strategies: dict[str, Strategy] = {}
    for cls in STRATEGY_CLASSES:
        rt: ResourceType = cls.resource
        strategies[rt.key] = cls(cluster)
    return strategies
