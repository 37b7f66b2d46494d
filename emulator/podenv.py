"""What the kubelet reads into a container's environment besides service links, and what it does to a pod
whose container cannot be given its environment.

Modelled on kubelet_pods.go `makeEnvironmentVariables` and kuberuntime_container.go `startContainer`:

- `envFrom` first, in order: every `data` key of a ConfigMap (`configMapRef`) or every decoded `data` key
  of a Secret (`secretRef`), with the entry's `prefix`; keys that are no valid variable name are skipped
  (the kubelet records an `InvalidEnvironmentVariableNames` event). `binaryData` is never used.
- then `env`, in order (a later entry replaces an earlier one, and `env` replaces `envFrom`): `value`
  with `$(VAR)` expanded from the variables so far, then the service variables; or `valueFrom`:
  `configMapKeyRef`, `secretKeyRef`, `fieldRef` (the downward API's pod fields, envvars.field_ref)
  and `resourceFieldRef` (a container's requests and limits over `divisor`, rounded up; a missing
  cpu/memory/ephemeral-storage limit is the node's allocatable, a missing request is the limit, as the
  API server defaults it).
- a missing ConfigMap or Secret, or a missing key, that is not `optional: true` stops the container
  from being created: the kubelet leaves it waiting with reason `CreateContainerConfigError` and the
  message below, and records a Warning event `Failed` "Error: <message>". Optional ones are left out.

Messages are the kubelet's: `configmap "x" not found` (its watch-based manager names the resource in
the singular), `couldn't find key k in ConfigMap ns/x`, and the same for secrets.

Decisions (the kubelet leaves these open or random):
- The variables of one ConfigMap or Secret are taken in key order (the kubelet ranges over a Go map).
- Init containers are checked first and in order; while one of them cannot start, the app containers
  wait with `PodInitializing`, as they would behind any unfinished init container.
"""

from __future__ import annotations

import base64
import binascii
import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emulator import envvars, validation
from emulator.kinds.configmap import CONFIG_MAPS
from emulator.kinds.secret import SECRETS
from emulator.kinds.values import Quantity, Undecodable, quantity_of

if TYPE_CHECKING:
    from emulator.kinds.service import ServiceView

# (resource key: "configmaps" or "secrets", name) → the object of the pod's namespace, or None
Lookup = Callable[[str, str], "Mapping[str, Any] | None"]

CONFIG_ERROR = "CreateContainerConfigError"  # the waiting reason of a container the kubelet cannot configure
FAILED_EVENT = "Failed"  # events.FailedToCreateContainer
INVALID_NAMES_EVENT = "InvalidEnvironmentVariableNames"
# The node resources a missing limit stands for (MergeContainerResourceLimits)
_ALLOCATABLE_DEFAULTS = ("cpu", "memory", "ephemeral-storage")
_SOURCES = {"configMap": (CONFIG_MAPS.key, "ConfigMap", "configmap"), "secret": (SECRETS.key, "Secret", "secret")}


class ConfigError(Exception):
    """Why the kubelet cannot create a container: a missing ConfigMap/Secret (`key` None) or key."""

    def __init__(self, message: str, resource: str, name: str, key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.resource = resource  # "configmaps" | "secrets"
        self.name = name
        self.key = key


@dataclass(frozen=True)
class SkippedKeys:
    """envFrom keys that are no variable names, per source: what InvalidEnvironmentVariableNames reports."""

    source: str  # "configMap" | "secret"
    namespace: str
    name: str
    keys: tuple[str, ...]

    @property
    def message(self) -> str:
        return (
            f"Keys [{', '.join(self.keys)}] from the EnvFrom {self.source} {self.namespace}/{self.name} were skipped "
            "since they are considered invalid environment variable names."
        )


@dataclass
class Resolver:
    """Reads one container's ConfigMaps, Secrets and resources; each object is looked up once."""

    pod: Mapping[str, Any]
    container: Mapping[str, Any]
    lookup: Lookup
    allocatable: Mapping[str, Any] = field(default_factory=dict)
    skipped: list[SkippedKeys] = field(default_factory=list)
    _seen: dict[tuple[str, str], Mapping[str, Any] | None] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return str((self.pod.get("metadata") or {}).get("namespace") or "default")

    def _object(self, resource: str, name: str, label: str, optional: bool) -> Mapping[str, Any] | None:
        """The ConfigMap/Secret, None when it is missing and optional; ConfigError when missing otherwise."""
        key = (resource, name)
        if key not in self._seen:
            self._seen[key] = self.lookup(resource, name) if name else None
        obj = self._seen[key]
        if obj is None and not optional:
            raise ConfigError(f'{label} "{name}" not found', resource, name)
        return obj

    def env_from(self, container: Mapping[str, Any]) -> dict[str, str]:
        """The variables of the container's `envFrom` entries, in order (later wins)."""
        env: dict[str, str] = {}
        for entry in container.get("envFrom") or []:
            for source, (resource, _kind, label) in _SOURCES.items():
                ref = entry.get(f"{source}Ref")
                if not isinstance(ref, Mapping):
                    continue
                name = str(ref.get("name") or "")
                obj = self._object(resource, name, label, ref.get("optional") is True)
                if obj is None:
                    continue
                prefix = str(entry.get("prefix") or "")
                invalid: list[str] = []
                data = obj.get("data") or {}
                for key in sorted(data):
                    variable = prefix + key
                    if validation.env_var_name_errors(variable):
                        invalid.append(variable)
                        continue
                    env[variable] = _secret_text(data[key]) if source == "secret" else str(data[key])
                if invalid:
                    self.skipped.append(SkippedKeys(source, self.namespace, name, tuple(sorted(invalid))))
        return env

    def value_from(self, source: Mapping[str, Any]) -> str | None:
        """The value of an `env[].valueFrom`; None when it is to be left out (optional and missing)."""
        for kind_field, (resource, kind, label) in (("configMapKeyRef", _SOURCES["configMap"]), ("secretKeyRef", _SOURCES["secret"])):
            ref = source.get(kind_field)
            if not isinstance(ref, Mapping):
                continue
            name, key = str(ref.get("name") or ""), str(ref.get("key") or "")
            optional = ref.get("optional") is True
            obj = self._object(resource, name, label, optional)
            if obj is None:
                return None
            data = obj.get("data") or {}
            if key not in data:
                if optional:
                    return None
                raise ConfigError(f"couldn't find key {key} in {kind} {self.namespace}/{name}", resource, name, key)
            return _secret_text(data[key]) if resource == SECRETS.key else str(data[key])
        if isinstance(source.get("resourceFieldRef"), Mapping):
            return resource_field_value(self.pod, self.container, source["resourceFieldRef"], self.allocatable)
        return envvars.field_ref(self.pod, source)


def _secret_text(value: Any) -> str:
    """A Secret's `data` value (base64) as the process sees it; bytes that are no UTF-8 become U+FFFD."""
    try:
        return base64.b64decode(str(value), validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return ""


# -- resourceFieldRef ---------------------------------------------------------------------------------


def _quantity(value: Any) -> Quantity:
    try:
        return quantity_of(value)
    except Undecodable:
        return Quantity.zero()


def _whole(quantity: Quantity) -> int:
    """Quantity.Value(): rounded up to a whole number."""
    value = quantity.value
    return -((-value.numerator) // value.denominator)


def resource_field_value(
    pod: Mapping[str, Any], container: Mapping[str, Any], ref: Mapping[str, Any], allocatable: Mapping[str, Any]
) -> str | None:
    """ExtractContainerResourceValue over the pod with its limits defaulted to the node's allocatable
    (defaultPodLimitsForDownwardAPI); None for a resource the downward API does not expose."""
    named = ref.get("containerName")
    target = envvars.find_container(pod, str(named)) if named else container
    if target is None:
        return None
    section, _, resource = str(ref.get("resource") or "").partition(".")
    if section not in ("limits", "requests") or not (resource in _ALLOCATABLE_DEFAULTS or resource.startswith("hugepages-")):
        return None
    resources = target.get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    if section == "requests":
        value = requests.get(resource, limits.get(resource))  # the API server defaults requests to limits
    else:
        value = limits.get(resource)
        if value is None and resource in _ALLOCATABLE_DEFAULTS:
            value = allocatable.get(resource)
    amount = _quantity(value)
    divisor = _quantity(ref.get("divisor")) if ref.get("divisor") is not None else Quantity.zero()
    if divisor.value == 0:
        divisor = _quantity("1")
    if resource == "cpu":
        return str(math.ceil(amount.milli_value() / max(divisor.milli_value(), 1)))
    return str(math.ceil(_whole(amount) / max(_whole(divisor), 1)))


# -- a container's whole environment ---------------------------------------------------------------


def container_environment(
    pod: Mapping[str, Any],
    container_name: str,
    services_in_namespace: list[ServiceView],
    kubernetes_service: ServiceView | None,
    lookup: Lookup,
    allocatable: Mapping[str, Any],
) -> tuple[dict[str, str], list[SkippedKeys]]:
    """The environment of one container and the envFrom keys skipped. Raises KeyError for an unknown
    container and ConfigError when the kubelet could not create the container."""
    container = envvars.find_container(pod, container_name)
    if container is None:
        raise KeyError(container_name)
    resolver = Resolver(pod, container, lookup, allocatable)
    env = envvars.container_env(
        pod, container_name, services_in_namespace, kubernetes_service, resolver.value_from, resolver.env_from
    )
    return env, resolver.skipped


# -- what the kubelet makes of a pod whose containers cannot be configured ------------------------


@dataclass(frozen=True)
class Failure:
    container: str
    init: bool
    message: str


def config_failures(pod: Mapping[str, Any], lookup: Lookup) -> list[Failure]:
    """The containers the kubelet could not create for want of a ConfigMap, Secret or key: the first
    init container that fails (the others wait behind it), else every app container that fails."""
    spec = pod.get("spec") or {}
    for init in spec.get("initContainers") or []:
        message = _first_error(pod, init, lookup)
        if message is not None:
            return [Failure(init["name"], True, message)]
    failures = []
    for container in spec.get("containers") or []:
        message = _first_error(pod, container, lookup)
        if message is not None:
            failures.append(Failure(container["name"], False, message))
    return failures


def _first_error(pod: Mapping[str, Any], container: Mapping[str, Any], lookup: Lookup) -> str | None:
    resolver = Resolver(pod, container, lookup)
    try:
        resolver.env_from(container)
        for entry in container.get("env") or []:
            if not entry.get("value") and isinstance(entry.get("valueFrom"), Mapping):
                resolver.value_from(entry["valueFrom"])
    except ConfigError as exc:
        return exc.message
    return None


def skipped_keys(pod: Mapping[str, Any], lookup: Lookup) -> list[SkippedKeys]:
    """Every envFrom key of the pod's containers that is no variable name (missing sources ignored)."""
    spec = pod.get("spec") or {}
    skipped: list[SkippedKeys] = []
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        resolver = Resolver(pod, container, lookup)
        try:
            resolver.env_from(container)
        except ConfigError:
            pass
        skipped += resolver.skipped
    return skipped


def is_held(pod: Mapping[str, Any]) -> bool:
    """Whether a container of the pod waits with CreateContainerConfigError."""
    status = pod.get("status") or {}
    for statuses in (status.get("initContainerStatuses"), status.get("containerStatuses")):
        for entry in statuses or []:
            if ((entry.get("state") or {}).get("waiting") or {}).get("reason") == CONFIG_ERROR:
                return True
    return False


def _condition(conditions: list[dict[str, Any]], kind: str, value: str, now: str, reason: str = "", message: str = "") -> None:
    """Set a pod condition, keeping its lastTransitionTime when its status does not change."""
    for existing in conditions:
        if existing.get("type") == kind:
            if existing.get("status") != value:
                existing["lastTransitionTime"] = now
            existing["status"] = value
            break
    else:
        existing = {"type": kind, "status": value, "lastTransitionTime": now}
        conditions.append(existing)
    for key, text in (("reason", reason), ("message", message)):
        if text:
            existing[key] = text
        else:
            existing.pop(key, None)


def _container_status(container: Mapping[str, Any], state: dict[str, Any], ready: bool) -> dict[str, Any]:
    return {
        "name": container["name"], "image": container.get("image") or "", "imageID": "",
        "ready": ready, "restartCount": 0, "started": "running" in state, "state": state, "lastState": {},
    }


def held_status(pod: Mapping[str, Any], failures: list[Failure], now: str) -> dict[str, Any]:
    """The pod's status while containers cannot be created: Pending, not Ready, the failing containers
    waiting with CreateContainerConfigError and the kubelet's message."""
    spec = pod.get("spec") or {}
    status = copy.deepcopy(pod.get("status") or {})
    failing = {f.container: f.message for f in failures}
    init_failed = any(f.init for f in failures)
    status["phase"] = "Pending"
    containers, inits = spec.get("containers") or [], spec.get("initContainers") or []

    def waiting(reason: str, message: str = "") -> dict[str, Any]:
        return {"waiting": {"reason": reason, **({"message": message} if message else {})}}

    running = {"running": {"startedAt": now}}
    if inits:
        status["initContainerStatuses"] = [
            _container_status(c, waiting(CONFIG_ERROR, failing[c["name"]]) if c["name"] in failing
                              else {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}, False)
            for c in inits
        ]
    status["containerStatuses"] = [
        _container_status(
            c,
            waiting("PodInitializing") if init_failed
            else waiting(CONFIG_ERROR, failing[c["name"]]) if c["name"] in failing else running,
            not init_failed and c["name"] not in failing,
        )
        for c in containers
    ]
    conditions = status.setdefault("conditions", [])
    unready = [c["name"] for c in containers if init_failed or c["name"] in failing]
    not_ready = f"containers with unready status: [{' '.join(unready)}]"
    if init_failed:
        pending = " ".join(f.container for f in failures if f.init)
        _condition(conditions, "Initialized", "False", now, "ContainersNotInitialized", f"containers with incomplete status: [{pending}]")
    else:
        _condition(conditions, "Initialized", "True", now)
    _condition(conditions, "ContainersReady", "False", now, "ContainersNotReady", not_ready)
    _condition(conditions, "Ready", "False", now, "ContainersNotReady", not_ready)
    return status


def started_status(pod: Mapping[str, Any], now: str) -> dict[str, Any]:
    """The pod's status once every container could be created: Running and Ready (the emulator runs no
    container, so a started one is ready at once, as a container without a readiness probe)."""
    spec = pod.get("spec") or {}
    status = copy.deepcopy(pod.get("status") or {})
    status["phase"] = "Running"
    if spec.get("initContainers"):
        status["initContainerStatuses"] = [
            _container_status(c, {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}, False)
            for c in spec["initContainers"]
        ]
    status["containerStatuses"] = [_container_status(c, {"running": {"startedAt": now}}, True) for c in spec.get("containers") or []]
    conditions = status.setdefault("conditions", [])
    for kind in ("Initialized", "ContainersReady", "Ready"):
        _condition(conditions, kind, "True", now)
    return status


