"""Node (core/v1, cluster-scoped): the model, the API server's validation (taints, pod CIDRs, capacity
names and values), the `spec.unschedulable` field selector and the columns of `kubectl get nodes`.

The emulator is one node, `emulator`: emulator/controllers/builtins.py writes it at start with what a
kubelet reports (Ready, addresses, this machine's CPUs and memory, node info). Nodes written by clients
are stored as they come; nothing runs on them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from emulator import errors, validation
from emulator.errors import FieldError, invalid
from emulator.kinds.base import Kind, ResourceType, Subresource
from emulator.kinds.printing import AGE, NAME, NONE, Column, Printer, meta_of, name_age, spec_of, status_of
from emulator.kinds.values import GoDecodedObject, ResourceList, quantity_of, validate_resource_name
from emulator.models.base import GoType
from emulator.models.meta import ApiModel
from emulator.registry.patch import ListRule, ListRules
from emulator.registry.strategy import Strategy

NODES = ResourceType(
    "", "v1", "nodes", "Node", False, "node", ("no",),
    subresources=(Subresource("status"),),
)
NODE_NAME = "emulator"  # the emulator's one node (pods are scheduled to it)
ROLE_LABEL_PREFIX = "node-role.kubernetes.io/"
ROLE_LABEL = "kubernetes.io/role"
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


class Taint(ApiModel):
    key: str | None = None
    value: str | None = None
    effect: Annotated[str, GoType("v1.TaintEffect")] | None = None
    time_added: str | None = None


class NodeSpec(ApiModel):
    pod_cidr: str | None = Field(default=None, alias="podCIDR")
    pod_cidrs: list[str] | None = Field(default=None, alias="podCIDRs")
    provider_id: str | None = Field(default=None, alias="providerID")
    unschedulable: bool | None = None
    taints: list[Taint] | None = None
    config_source: Any = None
    external_id: str | None = Field(default=None, alias="externalID")


class NodeStatus(ApiModel):
    capacity: ResourceList | None = None
    allocatable: ResourceList | None = None
    phase: str | None = None
    conditions: Any = None
    addresses: Any = None
    daemon_endpoints: Any = None
    node_info: Any = None
    images: Any = None
    volumes_in_use: Any = None
    volumes_attached: Any = None
    config: Any = None
    runtime_handlers: Any = None
    features: Any = None


class Node(GoDecodedObject):
    spec: NodeSpec | None = None
    status: NodeStatus | None = None


def _validate_taints(taints: list[dict[str, Any]]) -> list[FieldError]:
    """validateNodeTaints (its paths start at `metadata.taints`, as the API server's do)."""
    problems: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(taints):
        path = f"metadata.taints[{i}]"
        key, value, effect = taint.get("key") or "", taint.get("value") or "", taint.get("effect") or ""
        problems += [invalid(f"{path}.key", key, m) for m in validation.qualified_name_errors(key)]
        value_errors = validation.label_value_errors(value)
        if value_errors:
            problems.append(invalid(f"{path}.value", value, ";".join(value_errors)))
        if not effect:
            problems.append(errors.required(f"{path}.effect"))
        elif effect not in TAINT_EFFECTS:
            problems.append(errors.not_supported(f"{path}.effect", effect, list(TAINT_EFFECTS)))
        if (effect, key) in seen:
            shown = f"core.Taint{{Key:\"{key}\", Value:\"{value}\", Effect:\"{effect}\", TimeAdded:<nil>}}"
            problems.append(FieldError(path, "FieldValueDuplicate", f"Duplicate value: {shown}: taints must be unique by key and effect pair"))
            continue
        seen.add((effect, key))
    return problems


def _validate_resources(status: dict[str, Any]) -> list[FieldError]:
    """ValidateNodeResources: capacity and allocatable names, values not negative."""
    problems: list[FieldError] = []
    for field in ("capacity", "allocatable"):
        for name, value in (status.get(field) or {}).items():
            path = f"status.{field}[{name}]"
            problems += validate_resource_name(name, path)
            quantity = quantity_of(value)
            if quantity.value < 0:
                problems.append(invalid(path, str(quantity), "must be greater than or equal to 0"))
    return problems


class NodeStrategy(Strategy):
    resource = NODES
    model = Node
    has_status = True
    field_labels = {"spec.unschedulable": ("spec.unschedulable", "false")}

    def prepare_create(self, obj: dict[str, Any]) -> None:
        obj.setdefault("spec", {})
        # a node is created with the status its kubelet reports (the API server keeps it, unlike for pods)

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj.get("spec") or {}
        problems = _validate_taints(spec.get("taints") or [])
        problems += _validate_resources(obj.get("status") or {})
        cidrs = spec.get("podCIDRs") or []
        for i, cidr in enumerate(cidrs):
            problems += validation.validate_cidr(cidr, f"spec.podCIDRs[{i}]")
        if len(cidrs) > 1 and (len(cidrs) > 2 or len({validation.ip_family(c.split("/")[0]) for c in cidrs}) != 2):
            problems.append(errors.invalid_strings("spec.podCIDRs", cidrs, "may specify no more than one CIDR for each IP family"))
        if len(set(cidrs)) != len(cidrs):
            problems.append(errors.invalid_strings("spec.podCIDRs", cidrs, "must not contain duplicates"))
        return problems

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        """ValidateNodeUpdate: pod CIDRs and the provider ID may only be set once."""
        problems: list[FieldError] = []
        spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        old_cidrs = old_spec.get("podCIDRs") or []
        if old_cidrs and (spec.get("podCIDRs") or []) != old_cidrs:
            problems.append(errors.forbidden("spec.podCIDRs", 'node updates may not change podCIDR except from "" to valid'))
        if old_spec.get("providerID") and spec.get("providerID") != old_spec["providerID"]:
            problems.append(errors.forbidden("spec.providerID", 'node updates may not change providerID except from "" to valid'))
        return problems


MERGE_RULES: ListRules = {
    ("status", "conditions"): ListRule("type", ("type",)),
    ("status", "addresses"): ListRule("type", ("type",)),
}


def node_roles(node: dict[str, Any]) -> list[str]:
    """findNodeRoles: `node-role.kubernetes.io/<role>` labels and a `kubernetes.io/role` label, sorted."""
    roles: set[str] = set()
    for key, value in (meta_of(node).get("labels") or {}).items():
        if key.startswith(ROLE_LABEL_PREFIX):
            if role := key[len(ROLE_LABEL_PREFIX):]:
                roles.add(role)
        elif key == ROLE_LABEL and value:
            roles.add(value)
    return sorted(roles)


def _address(node: dict[str, Any], kind: str) -> str:
    for address in status_of(node).get("addresses") or []:
        if address.get("type") == kind:
            return str(address.get("address") or "")
    return NONE


def _node_cells(node: dict[str, Any], now: datetime) -> list[Any]:
    name, created = name_age(node, now)
    status = status_of(node)
    states = [
        "Ready" if c.get("status") == "True" else "NotReady"
        for c in status.get("conditions") or [] if c.get("type") == "Ready"
    ][-1:] or ["Unknown"]
    if spec_of(node).get("unschedulable"):
        states.append("SchedulingDisabled")
    info = status.get("nodeInfo") or {}
    return [
        name,
        ",".join(states),
        ",".join(node_roles(node)) or NONE,
        created,
        info.get("kubeletVersion") or "",
        _address(node, "InternalIP"),
        _address(node, "ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


_ADDRESSES = "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses"
PRINTER = Printer(
    (
        NAME,
        Column("Status", "The status of the node"),
        Column("Roles", "The roles of the node"),
        AGE,
        Column("Version", "Kubelet Version reported by the node."),
        Column("Internal-IP", _ADDRESSES, priority=1),
        Column("External-IP", _ADDRESSES, priority=1),
        Column("OS-Image", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).", priority=1),
        Column("Kernel-Version", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).", priority=1),
        Column("Container-Runtime", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).", priority=1),
    ),
    _node_cells,
)


KIND = Kind(NODES, NodeStrategy, PRINTER, MERGE_RULES)
