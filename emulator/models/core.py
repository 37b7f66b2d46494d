"""Pydantic models of the API subset the emulator serves: core/v1, discovery.k8s.io/v1, networking.k8s.io/v1.

Fields the emulator acts on are typed; fields it only stores for clients (probes, resources,
volumes, security contexts, ...) are declared as `Any` so that real manifests pass strict field
validation unchanged. Defaults here are the API server's defaults for the same fields.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from emulator.models.base import ApiModel

Protocol = Literal["TCP", "UDP", "SCTP"]


# -- metadata ----------------------------------------------------------------------------------------

class OwnerReference(ApiModel):
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(ApiModel):
    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: int | None = None
    owner_references: list[OwnerReference] | None = None
    finalizers: list[str] | None = None
    managed_fields: list[Any] | None = None
    self_link: str | None = None


class ObjectReference(ApiModel):
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    uid: str | None = None
    api_version: str | None = None
    resource_version: str | None = None
    field_path: str | None = None


class LabelSelectorRequirement(ApiModel):
    key: str
    operator: str
    values: list[str] | None = None


class LabelSelector(ApiModel):
    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None


class TypedObject(ApiModel):
    api_version: str | None = None
    kind: str | None = None
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)


# -- pods --------------------------------------------------------------------------------------------

class ContainerPort(ApiModel):
    name: str | None = None
    container_port: int
    protocol: Protocol = "TCP"
    host_port: int | None = None
    host_ip: str | None = Field(default=None, alias="hostIP")


class EnvVar(ApiModel):
    name: str
    value: str | None = None
    value_from: Any = None


class Container(ApiModel):
    name: str
    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    env: list[EnvVar] | None = None
    env_from: Any = None
    ports: list[ContainerPort] | None = None
    readiness_probe: Any = None
    liveness_probe: Any = None
    startup_probe: Any = None
    restart_policy: str | None = None  # "Always" on an init container makes it a sidecar
    working_dir: str | None = None
    resources: Any = None
    volume_mounts: Any = None
    volume_devices: Any = None
    image_pull_policy: str | None = None
    security_context: Any = None
    lifecycle: Any = None
    termination_message_path: str | None = None
    termination_message_policy: str | None = None
    stdin: bool | None = None
    stdin_once: bool | None = None
    tty: bool | None = None
    resize_policy: Any = None


class PodSpec(ApiModel):
    containers: list[Container]
    init_containers: list[Container] | None = None
    ephemeral_containers: Any = None
    restart_policy: Literal["Always", "OnFailure", "Never"] = "Always"
    service_account_name: str | None = None
    service_account: str | None = None
    automount_service_account_token: bool | None = None
    host_network: bool | None = None
    hostname: str | None = None
    subdomain: str | None = None
    enable_service_links: bool | None = None
    volumes: Any = None
    node_name: str | None = None
    node_selector: dict[str, str] | None = None
    termination_grace_period_seconds: int | None = None
    active_deadline_seconds: int | None = None
    dns_policy: str | None = None
    dns_config: Any = None
    security_context: Any = None
    image_pull_secrets: Any = None
    affinity: Any = None
    tolerations: Any = None
    scheduler_name: str | None = None
    priority: int | None = None
    priority_class_name: str | None = None
    host_aliases: Any = None
    host_pid: bool | None = Field(default=None, alias="hostPID")
    host_ipc: bool | None = Field(default=None, alias="hostIPC")
    share_process_namespace: bool | None = None
    topology_spread_constraints: Any = None
    readiness_gates: Any = None
    runtime_class_name: str | None = None
    preemption_policy: str | None = None
    overhead: Any = None
    os: Any = None
    set_hostname_as_fqdn: bool | None = Field(default=None, alias="setHostnameAsFQDN")
    scheduling_gates: Any = None
    resource_claims: Any = None


class PodCondition(ApiModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    last_probe_time: str | None = None
    last_transition_time: str | None = None
    reason: str | None = None
    message: str | None = None


class PodIP(ApiModel):
    ip: str


class PodStatus(ApiModel):
    phase: Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"] | None = None
    pod_ip: str | None = Field(default=None, alias="podIP")
    pod_ips: list[PodIP] | None = Field(default=None, alias="podIPs")
    host_ip: str | None = Field(default=None, alias="hostIP")
    host_ips: list[PodIP] | None = Field(default=None, alias="hostIPs")
    conditions: list[PodCondition] | None = None
    start_time: str | None = None
    container_statuses: Any = None
    init_container_statuses: Any = None
    ephemeral_container_statuses: Any = None
    qos_class: str | None = Field(default=None, alias="qosClass")
    message: str | None = None
    reason: str | None = None
    nominated_node_name: str | None = None


class Pod(TypedObject):
    spec: PodSpec
    status: PodStatus | None = None


# -- services ----------------------------------------------------------------------------------------

class ServicePort(ApiModel):
    name: str | None = None
    protocol: Protocol = "TCP"
    port: int
    target_port: int | str | None = None
    node_port: int | None = None
    app_protocol: str | None = None


class ClientIPConfig(ApiModel):
    timeout_seconds: int | None = None


class SessionAffinityConfig(ApiModel):
    client_ip: ClientIPConfig | None = Field(default=None, alias="clientIP")


class ServiceSpec(ApiModel):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"] = "ClusterIP"
    selector: dict[str, str] | None = None
    ports: list[ServicePort] | None = None
    cluster_ip: str | None = Field(default=None, alias="clusterIP")
    cluster_ips: list[str] | None = Field(default=None, alias="clusterIPs")
    external_name: str | None = None
    external_ips: list[str] | None = Field(default=None, alias="externalIPs")
    session_affinity: Literal["None", "ClientIP"] = "None"
    session_affinity_config: SessionAffinityConfig | None = None
    publish_not_ready_addresses: bool | None = None
    load_balancer_ip: str | None = Field(default=None, alias="loadBalancerIP")
    load_balancer_source_ranges: list[str] | None = None
    load_balancer_class: str | None = None
    allocate_load_balancer_node_ports: bool | None = None
    external_traffic_policy: str | None = None
    internal_traffic_policy: str | None = None
    health_check_node_port: int | None = None
    ip_families: list[str] | None = Field(default=None, alias="ipFamilies")
    ip_family_policy: str | None = Field(default=None, alias="ipFamilyPolicy")
    traffic_distribution: str | None = None


class LoadBalancerIngress(ApiModel):
    ip: str | None = None
    hostname: str | None = None
    ip_mode: str | None = None
    ports: Any = None


class LoadBalancerStatus(ApiModel):
    ingress: list[LoadBalancerIngress] | None = None


class ServiceStatus(ApiModel):
    load_balancer: LoadBalancerStatus | None = None
    conditions: Any = None


class Service(TypedObject):
    spec: ServiceSpec = Field(default_factory=ServiceSpec)
    status: ServiceStatus | None = None


# -- endpoints ---------------------------------------------------------------------------------------

class EndpointAddress(ApiModel):
    ip: str
    hostname: str | None = None
    node_name: str | None = None
    target_ref: ObjectReference | None = None


class EndpointPort(ApiModel):
    name: str | None = None
    port: int
    protocol: Protocol = "TCP"
    app_protocol: str | None = None


class EndpointSubset(ApiModel):
    addresses: list[EndpointAddress] | None = None
    not_ready_addresses: list[EndpointAddress] | None = None
    ports: list[EndpointPort] | None = None


class Endpoints(TypedObject):
    subsets: list[EndpointSubset] | None = None


class EndpointConditions(ApiModel):
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


class SliceEndpoint(ApiModel):
    addresses: list[str]
    conditions: EndpointConditions | None = None
    hostname: str | None = None
    target_ref: ObjectReference | None = None
    node_name: str | None = None
    zone: str | None = None
    hints: Any = None


class EndpointSlice(TypedObject):
    address_type: Literal["IPv4", "IPv6", "FQDN"]
    endpoints: list[SliceEndpoint] | None = None
    ports: list[EndpointPort] | None = None


# -- namespaces, service accounts, events ------------------------------------------------------------

class NamespaceSpec(ApiModel):
    finalizers: list[str] | None = None


class NamespaceStatus(ApiModel):
    phase: Literal["Active", "Terminating"] | None = None
    conditions: Any = None


class Namespace(TypedObject):
    spec: NamespaceSpec | None = None
    status: NamespaceStatus | None = None


class LocalObjectReference(ApiModel):
    name: str | None = None


class ServiceAccount(TypedObject):
    secrets: list[ObjectReference] | None = None
    image_pull_secrets: list[LocalObjectReference] | None = None
    automount_service_account_token: bool | None = None


class Event(TypedObject):
    involved_object: ObjectReference | None = None
    reason: str | None = None
    message: str | None = None
    source: Any = None
    first_timestamp: str | None = None
    last_timestamp: str | None = None
    count: int | None = None
    type: str | None = None
    event_time: str | None = None
    series: Any = None
    action: str | None = None
    related: Any = None
    reporting_component: str | None = None
    reporting_instance: str | None = None


# -- networking.k8s.io/v1 ----------------------------------------------------------------------------

class IPBlock(ApiModel):
    cidr: str
    except_: list[str] | None = Field(default=None, alias="except")


class NetworkPolicyPeer(ApiModel):
    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


class NetworkPolicyPort(ApiModel):
    protocol: Protocol = "TCP"
    port: int | str | None = None
    end_port: int | None = None


class NetworkPolicyIngressRule(ApiModel):
    from_: list[NetworkPolicyPeer] | None = Field(default=None, alias="from")
    ports: list[NetworkPolicyPort] | None = None


class NetworkPolicyEgressRule(ApiModel):
    to: list[NetworkPolicyPeer] | None = None
    ports: list[NetworkPolicyPort] | None = None


class NetworkPolicySpec(ApiModel):
    pod_selector: LabelSelector = Field(default_factory=LabelSelector)
    policy_types: list[Literal["Ingress", "Egress"]] | None = None
    ingress: list[NetworkPolicyIngressRule] | None = None
    egress: list[NetworkPolicyEgressRule] | None = None


class NetworkPolicy(TypedObject):
    spec: NetworkPolicySpec = Field(default_factory=NetworkPolicySpec)
