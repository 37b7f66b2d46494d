"""NetworkPolicy (networking.k8s.io/v1): the model, validation (emulator/netpol/semantics.py) and the
columns of `kubectl get netpol`. The proxy enforces them through emulator/netpol/engine.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from emulator.errors import FieldError
from emulator.kinds.base import Kind, ResourceType
from emulator.kinds.printing import AGE, NAME, Column, Printer, format_label_selector, name_age, spec_of
from emulator.labels import validate_label_selector
from emulator.models.base import GoType, Int32, IntOrString
from emulator.models.meta import ApiModel, LabelSelector, Protocol, TypedObject
from emulator.netpol.validation import validate_network_policy
from emulator.registry.strategy import Strategy

NETWORK_POLICIES = ResourceType(
    "networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, "networkpolicy", ("netpol",)
)


class IPBlock(ApiModel):
    cidr: str
    except_: list[str] | None = Field(default=None, alias="except")


class NetworkPolicyPeer(ApiModel):
    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


class NetworkPolicyPort(ApiModel):
    protocol: Protocol = "TCP"
    port: IntOrString | None = None
    end_port: Int32 | None = None


class NetworkPolicyIngressRule(ApiModel):
    from_: list[NetworkPolicyPeer] | None = Field(default=None, alias="from")
    ports: list[NetworkPolicyPort] | None = None


class NetworkPolicyEgressRule(ApiModel):
    to: list[NetworkPolicyPeer] | None = None
    ports: list[NetworkPolicyPort] | None = None


class NetworkPolicySpec(ApiModel):
    pod_selector: LabelSelector = Field(default_factory=LabelSelector)
    policy_types: list[Annotated[Literal["Ingress", "Egress"], GoType("v1.PolicyType")]] | None = None
    ingress: list[NetworkPolicyIngressRule] | None = None
    egress: list[NetworkPolicyEgressRule] | None = None


class NetworkPolicy(TypedObject):
    spec: NetworkPolicySpec = Field(default_factory=NetworkPolicySpec)


class NetworkPolicyStrategy(Strategy):
    resource = NETWORK_POLICIES
    model = NetworkPolicy

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        problems = validate_label_selector(obj["spec"].get("podSelector"), "spec.podSelector")
        return problems + validate_network_policy(obj)


def _network_policy_cells(np: dict[str, Any], now: datetime) -> list[Any]:
    name, created = name_age(np, now)
    return [name, format_label_selector(spec_of(np).get("podSelector")), created]


PRINTER = Printer(
    (NAME, Column("Pod-Selector", "Selects the pods to which this NetworkPolicy object applies."), AGE),
    _network_policy_cells,
)


# every NetworkPolicySpec list is atomic
KIND = Kind(NETWORK_POLICIES, NetworkPolicyStrategy, PRINTER)
