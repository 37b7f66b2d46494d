"""What the API server warns about in a pod or a pod template (its GetWarningsForPod): things that are
accepted but probably not what the author meant, sent back as `Warning` headers that kubectl prints
(`Warning: spec.nodeSelector[beta.kubernetes.io/arch]: deprecated since v1.14; use "kubernetes.io/arch"
instead`). Pure functions of the object; the pod strategy and the workload strategies return them
(`Strategy.warnings`), the registry hands them to the client with the answer."""

from __future__ import annotations

from typing import Any

from emulator.kinds.values import Undecodable, quantity_of

DEPRECATED_NODE_LABELS = {
    "beta.kubernetes.io/arch": 'deprecated since v1.14; use "kubernetes.io/arch" instead',
    "beta.kubernetes.io/os": 'deprecated since v1.14; use "kubernetes.io/os" instead',
    "failure-domain.beta.kubernetes.io/region": 'deprecated since v1.17; use "topology.kubernetes.io/region" instead',
    "failure-domain.beta.kubernetes.io/zone": 'deprecated since v1.17; use "topology.kubernetes.io/zone" instead',
    "beta.kubernetes.io/instance-type": 'deprecated since v1.17; use "node.kubernetes.io/instance-type" instead',
}
DEPRECATED_ANNOTATIONS = {
    "scheduler.alpha.kubernetes.io/critical-pod": 'non-functional in v1.16+; use the "priorityClassName" field instead',
    "security.alpha.kubernetes.io/sysctls": 'non-functional in v1.11+; use the "sysctls" field instead',
    "security.alpha.kubernetes.io/unsafe-sysctls": 'non-functional in v1.11+; use the "sysctls" field instead',
}
DEPRECATED_VOLUMES = {
    "photonPersistentDisk": "deprecated in v1.11, non-functional in v1.16+",
    "gitRepo": "deprecated in v1.11",
    "scaleIO": "deprecated in v1.16, non-functional in v1.22+",
    "flocker": "deprecated in v1.22, non-functional in v1.25+",
    "storageos": "deprecated in v1.22, non-functional in v1.25+",
    "quobyte": "deprecated in v1.22, non-functional in v1.25+",
    "glusterfs": "deprecated in v1.25, non-functional in v1.26+",
    "cephfs": "deprecated in v1.28, non-functional in v1.31+",
    "rbd": "deprecated in v1.28, non-functional in v1.31+",
}
SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"
APPARMOR_PREFIX = "container.apparmor.security.beta.kubernetes.io/"
SECCOMP_MESSAGE = 'non-functional in v1.27+; use the "seccompProfile" field instead'
APPARMOR_MESSAGE = 'deprecated since v1.30; use the "appArmorProfile" field instead'


def template_warnings(template: Any, path: str = "spec.template") -> list[str]:
    """GetWarningsForPodTemplate: a workload's template, its paths under `path`."""
    if not isinstance(template, dict):
        return []
    return pod_warnings(template.get("metadata") or {}, template.get("spec") or {}, f"{path}.")


# what the checks below look at: a pod with none of it (most) is done with at once, every create asks
_SPEC_LOOKED_AT = frozenset(("nodeSelector", "affinity", "topologySpreadConstraints", "volumes", "hostAliases", "imagePullSecrets", "securityContext"))
_CONTAINER_LOOKED_AT = frozenset(("resources", "env", "ports"))
_CONTAINER_GROUPS = ("initContainers", "containers", "ephemeralContainers")


def _nothing_to_say(annotations: dict[str, Any], spec: dict[str, Any]) -> bool:
    """(Empty counts as absent: the API server's defaults give every pod `securityContext: {}` and every
    container `resources: {}`.)"""
    if annotations or any(spec.get(key) for key in spec.keys() & _SPEC_LOOKED_AT):
        return False
    for group in _CONTAINER_GROUPS:
        for container in spec.get(group) or ():
            if not isinstance(container, dict) or any(container.get(key) for key in container.keys() & _CONTAINER_LOOKED_AT):
                return False
    return True


def pod_warnings(meta: dict[str, Any], spec: dict[str, Any], prefix: str = "") -> list[str]:
    """GetWarningsForPod (for a template, `prefix` is its path and a dot)."""
    found: list[str] = []
    annotations = meta.get("annotations") or {}
    if _nothing_to_say(annotations, spec):
        return found
    for key in spec.get("nodeSelector") or {}:
        if key in DEPRECATED_NODE_LABELS:
            found.append(f"{prefix}spec.nodeSelector[{key}]: {DEPRECATED_NODE_LABELS[key]}")
    found += _affinity_warnings(spec.get("affinity"), prefix)
    for i, constraint in enumerate(_dicts(spec.get("topologySpreadConstraints"))):
        at = f"{prefix}spec.topologySpreadConstraints[{i}]"
        key = constraint.get("topologyKey") or ""
        if key in DEPRECATED_NODE_LABELS:
            found.append(f"{at}.topologyKey: {key} is {DEPRECATED_NODE_LABELS[key]}")
        if constraint.get("labelSelector") is None:
            found.append(f"{at}.labelSelector: a null labelSelector results in matching no pod")
    for key, message in DEPRECATED_ANNOTATIONS.items():
        if key in annotations:
            found.append(f"{prefix}metadata.annotations[{key}]: {message}")
    for i, volume in enumerate(_dicts(spec.get("volumes"))):
        for plugin, message in DEPRECATED_VOLUMES.items():
            if volume.get(plugin) is not None:  # (Go's path spells StorageOS's field as its struct field)
                found.append(f"{prefix}spec.volumes[{i}].{'storageOS' if plugin == 'storageos' else plugin}: {message}")
    if spec.get("hostAliases"):
        found += _duplicates(spec["hostAliases"], "ip", f"{prefix}spec.hostAliases", "duplicate ip")
    if spec.get("imagePullSecrets"):
        found += _duplicates(spec["imagePullSecrets"], "name", f"{prefix}spec.imagePullSecrets", "duplicate name")
        for i, secret in enumerate(_dicts(spec["imagePullSecrets"])):
            if not secret.get("name"):
                found.append(f'{prefix}spec.imagePullSecrets[{i}].name: invalid empty name ""')
    security = spec.get("securityContext") or {}
    if not security.get("seccompProfile") and SECCOMP_POD_ANNOTATION in annotations:
        found.append(f"{prefix}metadata.annotations[{SECCOMP_POD_ANNOTATION}]: {SECCOMP_MESSAGE}")
    ports: dict[tuple[Any, Any], list[tuple[str, dict[str, Any]]]] = {}
    for group in _CONTAINER_GROUPS:
        for i, container in enumerate(_dicts(spec.get(group))):  # (every pod create asks: what is absent costs nothing)
            at = f"{prefix}spec.{group}[{i}]"
            if annotations:
                name = container.get("name") or ""
                own = container.get("securityContext") or {}
                if not own.get("seccompProfile") and SECCOMP_CONTAINER_PREFIX + name in annotations:
                    found.append(f"{prefix}metadata.annotations[{SECCOMP_CONTAINER_PREFIX}{name}]: {SECCOMP_MESSAGE}")
                if not security.get("appArmorProfile") and not own.get("appArmorProfile") and APPARMOR_PREFIX + name in annotations:
                    found.append(f"{prefix}metadata.annotations[{APPARMOR_PREFIX}{name}]: {APPARMOR_MESSAGE}")
            if container.get("resources"):
                found += _fractional_bytes(container["resources"], f"{at}.resources")
            if len(container.get("env") or ()) > 1:
                found += _hidden_env(container["env"], f"{at}.env")
            for j, port in enumerate(_dicts(container.get("ports"))):
                key = (port.get("containerPort"), port.get("protocol") or "TCP")
                here = f"{at}.ports[{j}]"
                for other_path, other in ports.get(key, []):
                    if (port.get("hostIP") or "") == (other.get("hostIP") or "") and (port.get("hostPort") or 0) == (other.get("hostPort") or 0):
                        found.append(f"{here}: duplicate port definition with {other_path}")
                    elif not port.get("hostPort") or not other.get("hostPort"):
                        found.append(f"{here}: overlapping port definition with {other_path}")
                ports.setdefault(key, []).append((here, port))
    return found


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _affinity_warnings(affinity: Any, prefix: str) -> list[str]:
    node = (affinity or {}).get("nodeAffinity") if isinstance(affinity, dict) else None
    if not isinstance(node, dict):
        return []
    found: list[str] = []
    required = node.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    base = f"{prefix}spec.affinity.nodeAffinity"
    for i, term in enumerate(_dicts(required.get("nodeSelectorTerms") if isinstance(required, dict) else None)):
        found += _term_warnings(term, f"{base}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[{i}]")
    for i, preferred in enumerate(_dicts(node.get("preferredDuringSchedulingIgnoredDuringExecution"))):
        found += _term_warnings(preferred.get("preference") or {}, f"{base}.preferredDuringSchedulingIgnoredDuringExecution[{i}].preference")
    return found


def _term_warnings(term: dict[str, Any], path: str) -> list[str]:
    """GetWarningsForNodeSelectorTerm: deprecated labels among the expressions' keys."""
    found = []
    for i, expression in enumerate(_dicts(term.get("matchExpressions"))):
        key = expression.get("key") or ""
        if key in DEPRECATED_NODE_LABELS:
            found.append(f"{path}.matchExpressions[{i}].key: {key} is {DEPRECATED_NODE_LABELS[key]}")
    return found


def _duplicates(items: Any, field: str, path: str, what: str) -> list[str]:
    seen: set[Any] = set()
    found = []
    for i, item in enumerate(_dicts(items)):
        value = item.get(field)
        if value in seen:
            found.append(f'{path}[{i}].{field}: {what} "{value}"')
        seen.add(value)
    return found


def _fractional_bytes(resources: dict[str, Any], path: str) -> list[str]:
    found = []
    for kind in ("limits", "requests"):
        for resource in ("memory", "ephemeral-storage"):
            value = (resources.get(kind) or {}).get(resource)
            if value is None:
                continue
            try:
                parsed = quantity_of(value)
            except Undecodable:
                continue
            if parsed.milli_value() % 1000:
                found.append(f'{path}.{kind}[{resource}]: fractional byte value "{parsed}" is invalid, must be an integer')
    return found


def _hidden_env(env: Any, path: str) -> list[str]:
    """A later variable of the same name that hides an earlier one (apply may drop one of them)."""
    seen: set[str] = set()
    found = []
    for i, variable in enumerate(_dicts(env)):
        name = variable.get("name") or ""
        if name in seen:
            ref, value = f"$({name})", variable.get("value") or ""
            if variable.get("valueFrom") is not None or value == ref or ref not in value:
                found.append(f'{path}[{i}]: hides previous definition of "{name}", which may be dropped when using apply')
        else:
            seen.add(name)
    return found
