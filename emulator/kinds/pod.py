"""Pod (core/v1): the model, the write-path rules (defaults, validation, the pod IP), the columns of
`kubectl get pods`, its merge keys and its protobuf layout.

Without the kubelet (the default) a pod is Running and Ready at creation unless the client says otherwise;
with it (`emulator serve --kubelet`) a pod whose commands are known is born Pending and the kubelet
(emulator/kubelet/) reports the rest.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field

from emulator import errors, podenv, validation
from emulator.errors import FieldError, invalid
from emulator.kinds.base import Kind, ResourceType, Subresource
from emulator.kinds.node import NODE_NAME, NODES
from emulator.kinds.podwarnings import SECCOMP_CONTAINER_PREFIX, SECCOMP_POD_ANNOTATION, pod_warnings
from emulator.kinds.printing import (
    AGE,
    NAME,
    NONE,
    Column,
    Printer,
    human_duration,
    meta_of,
    name_age,
    spec_of,
    status_of,
)
from emulator.kinds.priorityclass import pod_priority
from emulator.kinds.protobuf_layout import OBJECT_META, POD_SPEC, POD_STATUS, Message
from emulator.kinds.protobuf_layout import Field as ProtoField
from emulator.kinds.runtimeclass import pod_runtime_class
from emulator.kinds.serviceaccount import SERVICE_ACCOUNTS, mount_api_access
from emulator.models.base import GoType, Int32, Int64
from emulator.models.meta import ApiModel, Protocol, TypedObject
from emulator.registry import ipam
from emulator.registry.patch import ListRule, ListRules, container_rules
from emulator.registry.strategy import Allocation, Strategy
from emulator.scheduling import default_scheduler, place, why_not_on
from emulator.timestamps import now_rfc3339, parse_rfc3339

PODS = ResourceType(
    "", "v1", "pods", "Pod", True, "pod", ("po",), ("all",), subresources=(
        Subresource("status"),
        # kubectl debug: only spec.ephemeralContainers changes through it (Strategy.subresource_fields)
        Subresource("ephemeralcontainers"),
        # a scheduler's binding of a pod to a node (Registry.bind): what custom schedulers post
        Subresource("binding", ("create",), kind="Binding"),
        Subresource("log", ("get",)),  # api/podlogs.py (kubectl logs)
        # api/exec.py and api/portforward.py (kubectl exec, attach, cp, port-forward)
        Subresource("attach", ("create", "get"), kind="PodAttachOptions"),
        Subresource("exec", ("create", "get"), kind="PodExecOptions"),
        Subresource("portforward", ("create", "get"), kind="PodPortForwardOptions"),
    ),
)
# the condition that says whether the emulator's kubelet runs a pod (emulator/kubelet/images.py decides)
RUNNABLE_CONDITION = "emulator.local/Runnable"
READY_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "ContainersReady", "PodScheduled", "Ready")


# -- model -------------------------------------------------------------------------------------------

class ContainerPort(ApiModel):
    name: str | None = None
    container_port: Int32
    protocol: Protocol = "TCP"
    host_port: Int32 | None = None
    host_ip: str | None = Field(default=None, alias="hostIP")


class VolumeMount(ApiModel):
    # name and mountPath are required: validation says so, with every other problem of the pod
    name: str | None = None
    mount_path: str | None = None
    read_only: bool | None = None
    recursive_read_only: Annotated[str, GoType("v1.RecursiveReadOnlyMode")] | None = None
    sub_path: str | None = None
    mount_propagation: Annotated[str, GoType("v1.MountPropagationMode")] | None = None
    sub_path_expr: str | None = None


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
    volume_mounts: list[VolumeMount] | None = None
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
    restart_policy: Annotated[Literal["Always", "OnFailure", "Never"], GoType("v1.RestartPolicy")] = "Always"
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
    termination_grace_period_seconds: Int64 | None = None
    active_deadline_seconds: Int64 | None = None
    dns_policy: str | None = None
    dns_config: Any = None
    security_context: Any = None
    image_pull_secrets: Any = None
    affinity: Any = None
    tolerations: Any = None
    scheduler_name: str | None = None
    priority: Int32 | None = None
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
    # 1.32 fields behind feature gates that are off by default (PodLevelResources, alpha;
    # UserNamespacesSupport, beta): the API server's dropDisabledPodFields drops them, so they are
    # decoded (and checked against the schema) but never stored
    resources: Any = Field(default=None, exclude=True)
    host_users: bool | None = Field(default=None, exclude=True)


class PodCondition(ApiModel):
    type: str
    status: Annotated[Literal["True", "False", "Unknown"], GoType("v1.ConditionStatus")]
    last_probe_time: str | None = None
    last_transition_time: str | None = None
    reason: str | None = None
    message: str | None = None


class PodIP(ApiModel):
    ip: str


class HostIP(PodIP):
    pass


class PodStatus(ApiModel):
    phase: Annotated[Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"], GoType("v1.PodPhase")] | None = None
    pod_ip: str | None = Field(default=None, alias="podIP")
    pod_ips: list[PodIP] | None = Field(default=None, alias="podIPs")
    host_ip: str | None = Field(default=None, alias="hostIP")
    host_ips: list[HostIP] | None = Field(default=None, alias="hostIPs")
    conditions: list[PodCondition] | None = None
    start_time: str | None = None
    container_statuses: Any = None
    resize: str | None = Field(default=None, exclude=True)  # InPlacePodVerticalScaling (alpha): dropped
    resource_claim_statuses: Any = Field(default=None, exclude=True)  # DynamicResourceAllocation (beta, off): dropped
    init_container_statuses: Any = None
    ephemeral_container_statuses: Any = None
    qos_class: str | None = Field(default=None, alias="qosClass")
    message: str | None = None
    reason: str | None = None
    nominated_node_name: str | None = None


class Pod(TypedObject):
    spec: PodSpec
    status: PodStatus | None = None


def not_run_because(pod: dict[str, Any]) -> str | None:
    """Why the emulator's kubelet does not run a pod (its Runnable condition's message, when that is
    False), else None."""
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if condition.get("type") == RUNNABLE_CONDITION and condition.get("status") == "False":
            return str(condition.get("message") or "")
    return None


# -- defaults ----------------------------------------------------------------------------------------


def _image_pull_policy(image: str) -> str:
    """SetDefaults_Container: Always for `:latest` (or no tag and no digest), IfNotPresent otherwise."""
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    for key, value in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1), ("failureThreshold", 3)):
        if not probe.get(key):
            probe[key] = value
    http = probe.get("httpGet")
    if isinstance(http, dict):
        _default_strings(http, (("path", "/"), ("scheme", "HTTP")))


def _default_strings(obj: dict[str, Any], defaults: tuple[tuple[str, str], ...]) -> None:
    """Go's defaulting of a string field: an empty one is as good as none (a chart's `imagePullPolicy: ""`)."""
    for key, value in defaults:
        if not obj.get(key):
            obj[key] = value


_CONTAINER_STRINGS = (("terminationMessagePath", "/dev/termination-log"), ("terminationMessagePolicy", "File"))
_SPEC_STRINGS = (("dnsPolicy", "ClusterFirst"), ("schedulerName", "default-scheduler"))


def _default_container(container: dict[str, Any]) -> None:
    _default_strings(container, _CONTAINER_STRINGS)
    if not container.get("imagePullPolicy") and isinstance(container.get("image"), str):
        container["imagePullPolicy"] = _image_pull_policy(container["image"])
    if container.get("resources") is None:
        container["resources"] = {}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        _default_probe(container.get(probe))
    for env in container.get("env") or []:
        if not isinstance(env, dict):
            continue
        field_ref = (env.get("valueFrom") or {}).get("fieldRef") if isinstance(env.get("valueFrom"), dict) else None
        if isinstance(field_ref, dict) and not field_ref.get("apiVersion"):
            field_ref["apiVersion"] = "v1"


def default_pod_spec(spec: dict[str, Any]) -> None:
    """The API server's defaults for a pod spec (SetDefaults_PodSpec, _Container, _EphemeralContainer,
    _Probe, _Volume), applied to every Pod written and every pod template: what `kubectl get -o yaml` shows
    (a container's `terminationMessagePath`, read by the kubelet when it exits, its `imagePullPolicy`).
    Idempotent."""
    if "restartPolicy" not in spec:  # ("" is refused by the model, as an unsupported value)
        spec["restartPolicy"] = "Always"
    _default_strings(spec, _SPEC_STRINGS)
    if spec.get("terminationGracePeriodSeconds") is None:  # (0 is a grace period: none)
        spec["terminationGracePeriodSeconds"] = 30
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    for group in ("containers", "initContainers", "ephemeralContainers"):
        for container in spec.get(group) or []:
            if isinstance(container, dict):
                _default_container(container)
    for volume in spec.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        for source in ("configMap", "secret", "downwardAPI", "projected"):
            if isinstance(volume.get(source), dict) and volume[source].get("defaultMode") is None:
                volume[source]["defaultMode"] = 420


DEFAULT_TOLERATION_SECONDS = 300  # the DefaultTolerationSeconds admission plugin's, for both taints
DEFAULT_TOLERATIONS = tuple(
    {"key": f"node.kubernetes.io/{taint}", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": DEFAULT_TOLERATION_SECONDS}
    for taint in ("not-ready", "unreachable")
)


def default_tolerations(spec: dict[str, Any]) -> None:
    """The DefaultTolerationSeconds admission plugin (pods, on create and update): a pod that does not
    tolerate a node's NoExecute `not-ready` or `unreachable` taint tolerates it for 300 s, so that
    `kubectl describe pod` lists what it lists on a cluster."""
    tolerations = spec.get("tolerations")
    if tolerations is not None and not isinstance(tolerations, list):
        return  # (validation says what is wrong)
    tolerations = list(tolerations or [])
    for default in DEFAULT_TOLERATIONS:
        if not any(
            isinstance(t, dict) and t.get("key") in (default["key"], "", None) and t.get("effect") in ("NoExecute", "", None)
            for t in tolerations
        ):
            tolerations.append(dict(default))
    spec["tolerations"] = tolerations


def _defaulted(spec: dict[str, Any]) -> dict[str, Any]:
    """A defaulted copy of a stored spec: what an update's (defaulted) new spec is compared with, as the API
    server defaults what it reads. A pod stored by an earlier version lacks some defaults (all of them
    when created directly; a probe's or an ephemeral container's when made from a template or by
    `kubectl debug`); an orjson round trip copies a spec in a few microseconds."""
    defaulted: dict[str, Any] = orjson.loads(orjson.dumps(spec))
    default_pod_spec(defaulted)
    return defaulted


# -- write path --------------------------------------------------------------------------------------


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


TOLERATION_OPERATORS = ["Equal", "Exists"]
TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]


def validate_tolerations(tolerations: Any, path: str = "spec.tolerations") -> list[FieldError]:
    """ValidateTolerations: the key a label name (or empty with Exists: every taint), the operator Equal
    (a label value) or Exists (no value), the effect one of the taint effects, tolerationSeconds only with
    NoExecute. (The decoder has checked the JSON types against 1.32's schema.)"""
    problems: list[FieldError] = []
    for i, toleration in enumerate(tolerations if isinstance(tolerations, list) else []):
        if not isinstance(toleration, dict) or toleration in DEFAULT_TOLERATIONS:  # (those are valid: every pod has them)
            continue
        at = f"{path}[{i}]"
        key, operator = toleration.get("key") or "", toleration.get("operator") or ""
        value, effect = toleration.get("value") or "", toleration.get("effect") or ""
        if key:
            problems += [invalid(f"{at}.key", key, m) for m in validation.qualified_name_errors(key)]
        if not key and operator != "Exists":
            problems.append(invalid(f"{at}.operator", operator, 'operator must be Exists when `key` is empty, which means "match all values and all keys"'))
        if toleration.get("tolerationSeconds") is not None and effect != "NoExecute":
            problems.append(invalid(f"{at}.effect", effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if operator in ("Equal", ""):
            found = validation.label_value_errors(value)
            if found:
                problems.append(invalid(f"{at}.operator", value, ";".join(found)))
        elif operator == "Exists":
            if value:  # (Go shows the whole toleration: %#v of a core.Toleration)
                seconds = toleration.get("tolerationSeconds")
                shown = (f'core.Toleration{{Key:"{key}", Operator:"{operator}", Value:"{value}", Effect:"{effect}", '
                         f'TolerationSeconds:{"(*int64)(nil)" if seconds is None else f"&{seconds}"}}}')
                problems.append(FieldError(f"{at}.operator", "FieldValueInvalid", f"Invalid value: {shown}: value must be empty when `operator` is 'Exists'"))
        else:
            problems.append(errors.not_supported(f"{at}.operator", operator, TOLERATION_OPERATORS))
        if effect and effect not in TAINT_EFFECTS:
            problems.append(errors.not_supported(f"{at}.effect", effect, TAINT_EFFECTS))
    return problems


def _seccomp_mismatch(annotation: str, profile: Any, path: str) -> FieldError | None:
    """validateSeccompAnnotationsAndFieldsMatch: the old annotation and the field say the same."""
    if not isinstance(profile, dict):
        return None
    kind = profile.get("type")
    if (kind == "Unconfined" and annotation != "unconfined") or (kind == "RuntimeDefault" and annotation not in ("runtime/default", "docker/default")):
        return errors.forbidden(f"{path}.type", "seccomp type in annotation and field must match")
    if kind == "Localhost":
        if not annotation.startswith("localhost/"):
            return errors.forbidden(f"{path}.type", "seccomp type in annotation and field must match")
        if profile.get("localhostProfile") != annotation.removeprefix("localhost/"):
            return errors.forbidden(f"{path}.localhostProfile", "seccomp profile in annotation and field must match")
    return None


def validate_seccomp_annotations(meta: dict[str, Any], spec: dict[str, Any], path: str = "spec") -> list[FieldError]:
    """validateSeccompAnnotationsAndFields: where both the deprecated annotation and the field are given
    (the pod's, or a container's), they must agree."""
    annotations = meta.get("annotations") or {}
    if not annotations:
        return []
    found: list[FieldError] = []
    pod_profile = (spec.get("securityContext") or {}).get("seccompProfile")
    if pod_profile is not None and SECCOMP_POD_ANNOTATION in annotations:
        problem = _seccomp_mismatch(annotations[SECCOMP_POD_ANNOTATION], pod_profile, f"{path}.securityContext.seccompProfile")
        found += [problem] if problem else []
    for group in ("initContainers", "containers", "ephemeralContainers"):
        for i, container in enumerate(spec.get(group) or []):
            if not isinstance(container, dict):
                continue
            profile = (container.get("securityContext") or {}).get("seccompProfile")
            key = SECCOMP_CONTAINER_PREFIX + (container.get("name") or "")
            if profile is not None and key in annotations:
                problem = _seccomp_mismatch(annotations[key], profile, f"{path}.{group}[{i}].securityContext.seccompProfile")
                found += [problem] if problem else []
    return found


def _validate_volume_names(volumes: Any) -> tuple[set[str], list[FieldError]]:
    """The names of the pod's volumes that a mount may use, and what is wrong with the names (ValidateVolumes
    checks the names; a volume whose name is wrong cannot be mounted). The sources are stored, not checked."""
    names: set[str] = set()
    problems: list[FieldError] = []
    if not isinstance(volumes, list):
        return names, problems
    for i, volume in enumerate(volumes):
        name = volume.get("name") if isinstance(volume, dict) else None
        path = f"spec.volumes[{i}].name"
        if not isinstance(name, str) or not name:
            problems.append(errors.required(path))
            continue
        found = [invalid(path, name, m) for m in validation.dns1123_label_errors(name)]
        if name in names:
            found.append(errors.duplicate(path, name))
        if found:
            problems += found
        else:
            names.add(name)
    return names, problems


def _validate_volume_mounts(mounts: list[dict[str, Any]], volumes: set[str], path: str) -> list[FieldError]:
    """ValidateVolumeMounts: each mount names one of the pod's volumes, at a path no other mount uses."""
    problems: list[FieldError] = []
    paths: set[str] = set()
    for j, mount in enumerate(mounts):
        at = f"{path}[{j}]"
        name, mount_path = mount.get("name") or "", mount.get("mountPath") or ""
        if not name:
            problems.append(errors.required(f"{at}.name"))
        if name not in volumes:
            problems.append(errors.not_found_value(f"{at}.name", name))
        if not mount_path:
            problems.append(errors.required(f"{at}.mountPath"))
        if mount_path in paths:
            problems.append(invalid(f"{at}.mountPath", mount_path, "must be unique"))
        paths.add(mount_path)
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


def _unscheduled(obj: dict[str, Any], stamp: str, reason: str, message: str) -> None:
    """The status of a pod no node fits (or whose scheduling gates are not all removed): Pending, not
    scheduled, saying why in kube-scheduler's words (controllers/scheduler.py binds it once one fits).
    Without a reason (another scheduler's pod) no PodScheduled condition: that scheduler writes it."""
    status = obj.setdefault("status", {})
    status["phase"] = "Pending"
    conditions = [c for c in status.get("conditions") or [] if c.get("type") not in READY_CONDITIONS]
    if reason:
        conditions.append({"type": "PodScheduled", "status": "False", "lastTransitionTime": stamp, "reason": reason, "message": message})
    status["conditions"] = conditions
    status.setdefault("qosClass", "BestEffort")


def _born_pending(obj: dict[str, Any], stamp: str) -> None:
    """The status of a pod the kubelet will run: scheduled, nothing started yet (the kubelet reports the
    rest). `RUNNABLE_CONDITION` True marks it as the kubelet's."""
    spec, status = obj["spec"], obj.setdefault("status", {})
    status["phase"] = "Pending"
    status["conditions"] = [
        {"type": RUNNABLE_CONDITION, "status": "True", "lastTransitionTime": stamp, "reason": "CommandKnown"},
        {"type": "PodReadyToStartContainers", "status": "False", "lastTransitionTime": stamp},
        {"type": "Initialized", "status": "False", "lastTransitionTime": stamp, "reason": "ContainersNotInitialized"},
        {"type": "Ready", "status": "False", "lastTransitionTime": stamp, "reason": "ContainersNotReady"},
        {"type": "ContainersReady", "status": "False", "lastTransitionTime": stamp, "reason": "ContainersNotReady"},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
    ]
    inits = spec.get("initContainers") or []

    def waiting(container: dict[str, Any], reason: str) -> dict[str, Any]:
        return {
            "name": container["name"], "image": container.get("image") or "", "imageID": "", "ready": False,
            "restartCount": 0, "started": False, "state": {"waiting": {"reason": reason}}, "lastState": {},
        }

    if inits:
        status["initContainerStatuses"] = [waiting(c, "PodInitializing") for c in inits]
    status["containerStatuses"] = [
        waiting(c, "PodInitializing" if inits else "ContainerCreating") for c in spec.get("containers") or []
    ]


def _drop_runnable(status: dict[str, Any]) -> None:
    """Remove every `RUNNABLE_CONDITION` a client put in `status`: whether the kubelet runs a pod is the
    strategy's decision, never the client's (a forged one would run its command as the owner)."""
    conditions = status.get("conditions")
    if isinstance(conditions, list):
        status["conditions"] = [c for c in conditions if not (isinstance(c, dict) and c.get("type") == RUNNABLE_CONDITION)]


def _keep_runnable(new: dict[str, Any], old: dict[str, Any]) -> None:
    """On any update (the pod or its status), the stored `RUNNABLE_CONDITION` stays exactly as the strategy
    set it at creation: a client can neither add, change nor remove it."""
    old_conditions = (old.get("status") or {}).get("conditions") or []
    stored = [(i, c) for i, c in enumerate(old_conditions) if c.get("type") == RUNNABLE_CONDITION]
    status = new.get("status")
    if status is None:
        if not stored:
            return
        status = new["status"] = {}
    _drop_runnable(status)
    if stored:
        conditions = status.setdefault("conditions", [])
        for index, condition in stored:
            conditions.insert(min(index, len(conditions)), condition)


def _normalise_pod_ips(status: dict[str, Any]) -> None:
    """status.podIP and status.podIPs as the v1 conversion leaves them: podIP is podIPs[0] when only the list
    is given, and podIP is authoritative when both are given and differ (the list becomes [podIP])."""
    ips = status.get("podIPs")
    first = ips[0].get("ip") if isinstance(ips, list) and ips and isinstance(ips[0], dict) else None
    if not status.get("podIP") and first:
        status["podIP"] = first
    elif status.get("podIP") and first and first != status["podIP"]:
        status["podIPs"] = [{"ip": status["podIP"]}]


def _validate_pod_ip(value: Any, path: str) -> list[FieldError]:
    """A pod address given by a client: an IP, and none the API refuses for endpoint addresses and external IPs
    (ValidateNonSpecialIP: unspecified, link-local such as 169.254.169.254, link-local multicast). Loopback stays
    allowed: every address of the emulator, pods' included, is in 127.0.0.0/8."""
    return validation.validate_ip(value, path) or validation.validate_non_special_ip(value, path, allow_loopback=True)


# ValidatePodUpdate (Kubernetes 1.32): what an update may change in a pod's spec
UPDATABLE_POD_SPEC_FIELDS = (
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
)
SPEC_UPDATE_FORBIDDEN = "pod updates may not change fields other than " + ",".join(UPDATABLE_POD_SPEC_FIELDS)
# Go's zero values: a false (non-pointer) bool is the same as an absent one
_ZERO_FALSE = frozenset({"hostNetwork", "hostPID", "hostIPC", "stdin", "stdinOnce", "tty"})
_MAX_INT32 = 2**31 - 1


def _semantic(value: Any) -> Any:
    """`value` as apiequality.Semantic compares it: nil, empty lists, maps and strings (and false for a
    non-pointer bool) equal to absent."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = _semantic(v)
            if v is None or v == [] or v == {} or v == "" or (v is False and k in _ZERO_FALSE):
                continue
            out[k] = v
        return out
    if isinstance(value, list):
        return [_semantic(v) for v in value]
    return value


def _spec_diff(old: Any, new: Any, path: str = "spec") -> list[str]:
    """What differs between two specs, one `-`/`+` pair per changed field (Kubernetes prints Go's cmp.Diff)."""
    if isinstance(old, dict) and isinstance(new, dict):
        lines: list[str] = []
        for key in [*old, *(k for k in new if k not in old)]:
            if old.get(key) != new.get(key):
                lines += _spec_diff(old.get(key), new.get(key), f"{path}.{key}")
        return lines
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [line for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b for line in _spec_diff(a, b, f"{path}[{i}]")]

    def shown(value: Any) -> str:
        return "(absent)" if value is None else orjson.dumps(value).decode()

    return [f"  {path}:", f"-   {shown(old)}", f"+   {shown(new)}"]


def validate_pod_update(new_spec: dict[str, Any], old_spec: dict[str, Any]) -> list[FieldError]:
    """ValidatePodUpdate: a pod's spec is fixed once it exists, except its containers' images, a shorter
    activeDeadlineSeconds, added tolerations, removed scheduling gates (and, while gated, an added
    nodeSelector) and terminationGracePeriodSeconds from negative to 1. Worded as the API server words it."""
    problems: list[FieldError] = []
    for group in ("containers", "initContainers"):
        new_containers, old_containers = new_spec.get(group) or [], old_spec.get(group) or []
        if len(new_containers) != len(old_containers):
            return [*problems, errors.forbidden(f"spec.{group}", "pod updates may not add or remove containers")]
        for i, container in enumerate(new_containers):
            image = container.get("image") or ""
            if not image:
                problems.append(errors.required(f"spec.{group}[{i}].image"))
            elif image.strip() != image:
                problems.append(invalid(f"spec.{group}[{i}].image", image, "must not have leading or trailing whitespace"))
    deadline, old_deadline = new_spec.get("activeDeadlineSeconds"), old_spec.get("activeDeadlineSeconds")
    if deadline is not None:
        if not 0 <= deadline <= _MAX_INT32:
            return [*problems, invalid("spec.activeDeadlineSeconds", deadline, f"must be between 0 and {_MAX_INT32}, inclusive")]
        if old_deadline is not None and old_deadline < deadline:
            return [*problems, invalid("spec.activeDeadlineSeconds", deadline, "must be less than or equal to previous value")]
    elif old_deadline is not None:
        problems.append(FieldError("spec.activeDeadlineSeconds", "FieldValueInvalid", "Invalid value: \"null\": must not update from a positive integer to nil value"))
    def but_seconds(toleration: Any) -> Any:
        toleration = _semantic(toleration)
        return {k: v for k, v in toleration.items() if k != "tolerationSeconds"} if isinstance(toleration, dict) else toleration

    new_tolerations = [but_seconds(t) for t in new_spec.get("tolerations") or []]
    for toleration in old_spec.get("tolerations") or []:
        if but_seconds(toleration) not in new_tolerations:
            problems.append(errors.forbidden("spec.tolerations", "existing toleration can not be modified except its tolerationSeconds"))
            break
    old_gates = {g.get("name") for g in old_spec.get("schedulingGates") or [] if isinstance(g, dict)}
    for i, gate in enumerate(new_spec.get("schedulingGates") or []):
        if isinstance(gate, dict) and gate.get("name") not in old_gates:
            problems.append(errors.forbidden(f"spec.schedulingGates[{i}].name", f"only deletion is allowed, but found new scheduling gate '{gate.get('name')}'"))
    new, old = _semantic(new_spec), _semantic(old_spec)
    new.pop("ephemeralContainers", None)  # their own rules: validate_ephemeral_update
    old.pop("ephemeralContainers", None)
    if new == old:
        return problems
    munged = copy.deepcopy(new)
    for group in ("containers", "initContainers"):
        for container, before in zip(munged.get(group) or [], old.get(group) or [], strict=True):
            container.pop("image", None)
            if "image" in before:
                container["image"] = before["image"]
    for field in ("activeDeadlineSeconds", "schedulingGates", "tolerations"):
        munged.pop(field, None)
        if field in old:
            munged[field] = old[field]
    if (old.get("terminationGracePeriodSeconds") or 0) < 0 and munged.get("terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = old["terminationGracePeriodSeconds"]
    if old.get("schedulingGates") and munged.get("nodeSelector") != old.get("nodeSelector"):
        selector, before = munged.get("nodeSelector") or {}, old.get("nodeSelector") or {}
        if any(selector.get(k) != v for k, v in before.items()):
            shown = "map[string]string{" + ", ".join(f"{orjson.dumps(k).decode()}:{orjson.dumps(v).decode()}" for k, v in sorted(selector.items())) + "}"
            problems.append(FieldError("spec.nodeSelector", "FieldValueInvalid", f"Invalid value: {shown}: only additions to spec.nodeSelector are allowed (no mutations or deletions)"))
        munged.pop("nodeSelector", None)
        if before:
            munged["nodeSelector"] = before
    # munged keeps the key order of the new spec; dicts compare regardless of order
    if munged != old:
        problems.append(errors.forbidden("spec", SPEC_UPDATE_FORBIDDEN + "\n" + "\n".join(_spec_diff(old, munged))))
    return problems


# what an ephemeral container may not have (validateEphemeralContainers), in the API server's order
_EPHEMERAL_FORBIDDEN = ("lifecycle", "livenessProbe", "ports", "readinessProbe", "resources", "resizePolicy", "restartPolicy", "startupProbe")


def _validate_ephemeral_containers(spec: dict[str, Any]) -> list[FieldError]:
    """validateEphemeralContainers: no ports, probes, lifecycle, resources or restart policy (kubectl debug
    sets none), and a targetContainerName that names a container of the pod."""
    problems: list[FieldError] = []
    others = {c.get("name") for group in ("containers", "initContainers") for c in spec.get(group) or []}
    for i, container in enumerate(spec.get("ephemeralContainers") or []):
        path = f"spec.ephemeralContainers[{i}]"
        for field in _EPHEMERAL_FORBIDDEN:
            if container.get(field):
                problems.append(errors.forbidden(f"{path}.{field}", "cannot be set for an Ephemeral Container"))
        if not container.get("image"):
            problems.append(errors.required(f"{path}.image"))
        target = container.get("targetContainerName")
        if target and target not in others:
            problems.append(errors.not_found_value(f"{path}.targetContainerName", target))
    return problems


def validate_ephemeral_update(new_spec: dict[str, Any], old_spec: dict[str, Any]) -> list[FieldError]:
    """ValidatePodEphemeralContainersUpdate: ephemeral containers are only ever added, never changed or removed."""
    new = {c.get("name"): _semantic(c) for c in new_spec.get("ephemeralContainers") or []}
    for before in old_spec.get("ephemeralContainers") or []:
        name = before.get("name")
        if new.get(name) != _semantic(before):
            return [errors.forbidden("spec.ephemeralContainers", f'existing ephemeral containers "{name}" may not be changed')]
    return []


class PodStrategy(Strategy):
    resource = PODS
    model = Pod
    subresource_fields = {"ephemeralcontainers": "ephemeralContainers"}
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
        if spec.get("ephemeralContainers"):
            raise errors.invalid_object("Pod", "", obj["metadata"].get("name", ""), [
                errors.forbidden("spec.ephemeralContainers", "cannot be set on create")])
        default_pod_spec(spec)
        default_tolerations(spec)
        if spec.get("serviceAccount") and not spec.get("serviceAccountName"):
            spec["serviceAccountName"] = spec["serviceAccount"]
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        if self.cluster.root_ca is not None:  # the ServiceAccount admission plugin's token volume
            mount_api_access(self.cluster.store, obj)
        spec.setdefault("enableServiceLinks", True)
        pod_priority(self.cluster.store, obj)  # the Priority admission plugin
        pod_runtime_class(self.cluster.store, obj)  # the RuntimeClass admission plugin
        status = obj.setdefault("status", {})
        _drop_runnable(status)  # decided below, never taken from the client
        _normalise_pod_ips(status)
        stamp = now_rfc3339()
        if not spec.get("nodeName"):
            spec.pop("nodeName", None)  # "" (a chart's empty value) is no node
            if not self._place(obj, stamp):
                return
        self._scheduled(obj, stamp)

    def _place(self, obj: dict[str, Any], stamp: str) -> bool:
        """The scheduler's part at creation (emulator/scheduling.py): the node written into the spec, or the
        pod left unscheduled, saying why (False)."""
        spec = obj["spec"]
        if not default_scheduler(spec):
            _unscheduled(obj, stamp, "", "")  # another scheduler's pod: it binds it (pods/binding)
            return False
        nodes, open_node = self.nodes()
        if open_node and not (spec.get("nodeSelector") or spec.get("affinity") or spec.get("schedulingGates")):
            spec["nodeName"] = NODE_NAME  # the common case, without the filters: any such pod fits it
            return True
        node, reason, message = place(obj, nodes, NODE_NAME)
        if node is None:
            _unscheduled(obj, stamp, reason, message)
            return False
        spec["nodeName"] = node
        return True

    _nodes: tuple[tuple[tuple[str, int], ...], list[dict[str, Any]], bool] = ((), [], False)

    def nodes(self) -> tuple[list[dict[str, Any]], bool]:
        """The stored Nodes, decoded again only when one changed (every pod create asks: one node, ~2 KB),
        and whether the emulator's node takes any pod that selects no node (Ready, not cordoned, no
        NoSchedule or NoExecute taint)."""
        entries = list(self.cluster.store.entries(NODES.key, ""))
        key = tuple((name, rv) for _, name, rv, _ in entries)
        if key != self._nodes[0]:
            nodes = [orjson.loads(raw) for _, _, _, raw in entries]
            mine = next((n for n in nodes if n["metadata"]["name"] == NODE_NAME), None)
            self._nodes = (key, nodes, mine is not None and why_not_on({}, mine) is None)
        return self._nodes[1], self._nodes[2]

    def bound(self, obj: dict[str, Any]) -> None:
        """A pod that waited for a node got one (`Registry.bind`, as pods/binding): its status as if it had
        been placed when created, the conditions others set on it kept."""
        status = obj.get("status") or {}
        kept = [c for c in status.get("conditions") or [] if c.get("type") not in ("PodScheduled", RUNNABLE_CONDITION)]
        obj["status"] = {"conditions": kept} if kept else {}
        self._scheduled(obj, now_rfc3339())

    def _scheduled(self, obj: dict[str, Any], stamp: str) -> None:
        """The status of a pod bound to a node when it is created (or bound later)."""
        spec, status = obj["spec"], obj.setdefault("status", {})
        why_not = self.cluster.unrunnable(obj) if self.cluster.unrunnable is not None else ""
        if why_not is None:
            # the kubelet (emulator/kubelet/) runs it: born Pending, its containers being created
            _born_pending(obj, stamp)
        elif self.cluster.unrunnable is not None:
            status.setdefault("conditions", []).append({
                "type": RUNNABLE_CONDITION, "status": "False", "lastTransitionTime": stamp,
                "reason": "NoCommand", "message": why_not,
            })
        # Without a kubelet (or one that does not run it) a pod runs and is ready at once unless the client
        # says otherwise.
        status.setdefault("phase", "Running")
        conditions = status.setdefault("conditions", [])
        present = {c["type"] for c in conditions}
        ready_now = status["phase"] == "Running"
        ready_value = next((c["status"] for c in conditions if c["type"] == "Ready"), "True" if ready_now else "False")
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
        if status["phase"] in ("Pending", "Running") and why_not is not None:
            # The kubelet cannot create a container whose env names a missing ConfigMap, Secret or key:
            # such a pod is born waiting (emulator/podenv.py); controllers/podconfig.py starts it later.
            namespace = obj["metadata"]["namespace"]
            failures = podenv.config_failures(obj, lambda rt, name: self.cluster.store.get(rt, namespace, name))
            if failures:
                obj["status"] = podenv.held_status(obj, failures, stamp)

    def grace_period(self, obj: dict[str, Any], requested: int | None) -> int | None:
        """A pod the kubelet runs terminates (preStop, SIGTERM, its grace, SIGKILL) before it goes; the
        kubelet then removes it. Records, finished pods and a zero grace (`--force`) go at once."""
        if self.cluster.unrunnable is None or not _condition_true(obj.get("status") or {}, RUNNABLE_CONDITION):
            return None
        if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return None
        if requested is None:
            requested = obj["spec"].get("terminationGracePeriodSeconds")
        grace = 30 if requested is None else max(int(requested), 0)
        return grace or None

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj["spec"]
        problems: list[FieldError] = []
        if not spec.get("containers"):
            problems.append(errors.required("spec.containers"))
        names: set[str] = set()
        for group in ("containers", "initContainers", "ephemeralContainers"):
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
            problems += _validate_pod_ip(status["podIP"], "status.podIP")
        for i, entry in enumerate(status.get("podIPs") or []):
            if isinstance(entry, dict) and entry.get("ip") and entry.get("ip") != status.get("podIP"):
                problems += _validate_pod_ip(entry["ip"], f"status.podIPs[{i}].ip")
        sa = spec.get("serviceAccountName")
        if sa:
            problems += [invalid("spec.serviceAccountName", sa, m) for m in validation.dns1123_subdomain_errors(sa)]
        node = spec.get("nodeName")
        if node:  # ValidateNodeName: a DNS subdomain
            problems += [invalid("spec.nodeName", node, m) for m in validation.dns1123_subdomain_errors(node)]
        problems += validate_tolerations(spec.get("tolerations"))
        problems += validate_seccomp_annotations(obj.get("metadata") or {}, spec)
        problems += _validate_ephemeral_containers(spec)
        volumes, volume_problems = _validate_volume_names(spec.get("volumes"))
        problems += volume_problems
        for group in ("containers", "initContainers", "ephemeralContainers"):
            for i, container in enumerate(spec.get(group) or []):
                problems += _validate_volume_mounts(container.get("volumeMounts") or [], volumes, f"spec.{group}[{i}].volumeMounts")
        return problems

    def warnings(self, obj: dict[str, Any]) -> list[str]:
        return pod_warnings(obj["metadata"], obj.get("spec") or {})

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        problems = []
        old_ip = (old.get("status") or {}).get("podIP")
        new_ip = (new.get("status") or {}).get("podIP")
        if old_ip and new_ip != old_ip:
            problems.append(errors.forbidden("status.podIP", f"pod IP may not change once set (was {old_ip})"))
        # (a status write carries the stored spec over: nothing of it to compare, on the kubelet's hot path)
        old_spec = old["spec"] if new["spec"] == old["spec"] else _defaulted(old["spec"])
        return problems + validate_pod_update(new["spec"], old_spec) + validate_ephemeral_update(new["spec"], old_spec)

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        default_pod_spec(new["spec"])
        default_tolerations(new["spec"])
        # keep server defaults the client did not send back (e.g. a PUT of an edited manifest)
        for field in ("serviceAccountName", "serviceAccount", "nodeName", "enableServiceLinks", "priority", "priorityClassName", "preemptionPolicy"):
            if field in old["spec"] and field not in new["spec"]:
                new["spec"][field] = old["spec"][field]
        _keep_runnable(new, old)
        self._unrun_ephemeral(new, old)
        status = new.get("status") or {}
        old_status = old.get("status") or {}
        _normalise_pod_ips(status)
        if old_status.get("podIP") and not status.get("podIP") and "status" in new:
            status["podIP"] = old_status["podIP"]
            status.setdefault("podIPs", old_status.get("podIPs", [{"ip": old_status["podIP"]}]))

    def _unrun_ephemeral(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        """Ephemeral containers added to a pod no kubelet runs (records, or a pod the kubelet does not run)
        wait, saying why: `kubectl debug` shows the message instead of waiting silently."""
        before = {c.get("name") for c in old["spec"].get("ephemeralContainers") or []}
        added = [c for c in new["spec"].get("ephemeralContainers") or [] if c.get("name") not in before]
        if not added or (self.cluster.unrunnable is not None and _condition_true(old.get("status") or {}, RUNNABLE_CONDITION)):
            return
        why = ("the emulator runs no containers: start it with `emulator serve --kubelet` to run them"
               if self.cluster.unrunnable is None else "the emulator's kubelet does not run this pod (see its emulator.local/Runnable condition)")
        statuses = new.setdefault("status", {}).setdefault("ephemeralContainerStatuses", [])
        for c in added:
            statuses.append({"name": c.get("name"), "image": c.get("image") or "", "imageID": "", "ready": False, "restartCount": 0,
                             "state": {"waiting": {"reason": "ContainerCreating", "message": why}}, "lastState": {}})

    def allocate(self, obj: dict[str, Any], old: dict[str, Any] | None, dry_run: bool) -> Allocation:
        allocation = Allocation()
        status = obj["status"]
        if old is not None:
            if old["spec"].get("nodeName") or not obj["spec"].get("nodeName") or status.get("podIP"):
                return allocation
            # just bound to a node (Registry.bind): its address now, as the node's network plugin gives it
        else:
            self._check_service_account(obj)
        if not obj["spec"].get("nodeName") and not status.get("podIP"):
            return allocation  # waiting for a node: no address yet
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


# -- merge keys, columns, protobuf -------------------------------------------------------------------

MERGE_RULES: ListRules = {
    **container_rules(("spec", "containers")),
    **container_rules(("spec", "initContainers")),
    **container_rules(("spec", "ephemeralContainers")),
    ("spec", "volumes"): ListRule("name", ("name",), retain_keys=True),
    ("spec", "imagePullSecrets"): ListRule("name", ("name",)),
    ("spec", "schedulingGates"): ListRule("name", ("name",)),
    ("spec", "hostAliases"): ListRule("ip", ("ip",)),
    ("spec", "topologySpreadConstraints"): ListRule("topologyKey", ("topologyKey", "whenUnsatisfiable")),
    ("spec", "resourceClaims"): ListRule("name", ("name",), retain_keys=True),
    ("status", "conditions"): ListRule("type", ("type",)),
    ("status", "podIPs"): ListRule("ip", ("ip",)),
    ("status", "hostIPs"): ListRule("ip", ("ip",)),
}


def _condition_true(status: dict[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in status.get("conditions") or [])


def _pod_cells(pod: dict[str, Any], now: datetime) -> list[Any]:
    spec, status, meta = spec_of(pod), status_of(pod), meta_of(pod)
    containers = spec.get("containers") or []
    # Sidecars (init containers that keep running) count towards the total, as in kubectl.
    sidecars = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    total = len(containers) + len(sidecars)
    # A pod that has not been given a status yet is Pending, which is what a real server stores for it.
    phase = status.get("phase") or "Pending"
    reason = status.get("reason") or phase
    if any(c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated" for c in status.get("conditions") or []):
        reason = "SchedulingGated"

    statuses = status.get("containerStatuses")
    restarts = 0
    last_restart: datetime | None = None
    restartable = {c.get("name") for c in sidecars}
    init_statuses = status.get("initContainerStatuses") or []
    initializing = False
    sidecars_ready = 0
    for i, cs in enumerate(init_statuses):  # kubectl's printPod: the first unfinished init container speaks
        restarts += int(cs.get("restartCount") or 0)
        finished = parse_rfc3339(((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt"))
        if finished and (last_restart is None or finished > last_restart):
            last_restart = finished
        state = cs.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated is not None and terminated.get("exitCode") == 0:
            continue
        if cs.get("name") in restartable and cs.get("started"):
            sidecars_ready += 1 if cs.get("ready") else 0
            continue
        initializing = True
        if terminated is not None:
            if terminated.get("reason"):
                reason = "Init:" + terminated["reason"]
            else:
                reason = f"Init:Signal:{terminated['signal']}" if terminated.get("signal") else f"Init:ExitCode:{terminated.get('exitCode') or 0}"
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(spec.get('initContainers') or [])}"
        break
    if initializing and not _condition_true(status, "Initialized"):
        statuses = []
        ready = sidecars_ready
    elif statuses is None:
        # The emulator may not track containers individually: the Ready condition speaks for all of them.
        ready = total if _condition_true(status, "Ready") else 0
    else:
        ready = sidecars_ready
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
    name, created = name_age(pod, now)
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
    phase = status_of(pod).get("phase")
    messages = {"Succeeded": "The pod has completed successfully.", "Failed": "The pod failed."}
    if phase not in messages:
        return []
    return [{"type": "Completed", "status": "True", "reason": phase, "message": messages[phase]}]


PRINTER = Printer(
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


# The whole of core/v1 Pod (protobuf_layout.py has the PodSpec and PodStatus trees)
POD_PROTOBUF: Message = {
    1: ProtoField("metadata", "message", OBJECT_META),
    2: ProtoField("spec", "message", POD_SPEC),
    3: ProtoField("status", "message", POD_STATUS),
}


KIND = Kind(PODS, PodStrategy, PRINTER, MERGE_RULES, {("v1", "Pod"): POD_PROTOBUF})
