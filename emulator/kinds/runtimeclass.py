"""RuntimeClass (node.k8s.io/v1, cluster-scoped): the model, the API server's validation (a handler that is
a DNS label and never changes, the overhead's quantities) and the columns of `kubectl get runtimeclass`,
and the RuntimeClass admission plugin's part for a new pod (`pod_runtime_class`, emulator/kinds/pod.py
asks it): a pod naming a class that does not exist is refused, one naming a class gets its overhead and
its scheduling constraints.

The local kubelet runs every pod as a process whatever its class (there is no container runtime to hand
the class to): manifests that ship or name a RuntimeClass (gVisor, Kata) apply as on a cluster.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from emulator import errors, validation
from emulator.errors import FieldError, invalid
from emulator.kinds.base import Kind, ResourceType
from emulator.kinds.printing import AGE, NAME, Column, Printer, name_age
from emulator.models.meta import TypedObject
from emulator.registry.strategy import Strategy

if TYPE_CHECKING:
    from emulator.store.store import Store

RUNTIME_CLASSES = ResourceType("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", False, "runtimeclass")


class RuntimeClass(TypedObject):
    handler: str | None = None
    overhead: Any = None  # checked against 1.32's schema (emulator/schemas.py)
    scheduling: Any = None


def pod_runtime_class(store: Store, pod: dict[str, Any]) -> None:
    """The RuntimeClass admission plugin on a new pod: the class must exist; its overhead becomes the
    pod's (a pod stating another is refused), its nodeSelector and tolerations are added to the pod's."""
    meta, spec = pod["metadata"], pod["spec"]
    name = spec.get("runtimeClassName")
    if not name:
        return
    found = store.get(RUNTIME_CLASSES.key, "", name)
    if found is None:
        raise errors.forbidden_request(f'pods "{meta.get("name", "")}" is forbidden: pod rejected: RuntimeClass "{name}" not found')
    fixed = (found.get("overhead") or {}).get("podFixed")
    if fixed:
        if spec.get("overhead") is not None and spec["overhead"] != fixed:
            raise errors.forbidden_request(f'pods "{meta.get("name", "")}" is forbidden: pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead')
        spec["overhead"] = dict(fixed)
    scheduling = found.get("scheduling") or {}
    selector = scheduling.get("nodeSelector") or {}
    for key, value in selector.items():
        current = (spec.get("nodeSelector") or {}).get(key)
        if current is not None and current != value:
            raise errors.forbidden_request(
                f'pods "{meta.get("name", "")}" is forbidden: pod rejected: conflict: runtimeClass.scheduling.nodeSelector[{key}] = {value}; pod.spec.nodeSelector[{key}] = {current}')
        spec.setdefault("nodeSelector", {})[key] = value
    for toleration in scheduling.get("tolerations") or []:
        tolerations = spec.setdefault("tolerations", [])
        if toleration not in tolerations:
            tolerations.append(dict(toleration))


class RuntimeClassStrategy(Strategy):
    resource = RUNTIME_CLASSES
    model = RuntimeClass

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        """ValidateRuntimeClass: the handler is a DNS label (required)."""
        handler = obj.get("handler") or ""
        if not handler:
            return [errors.required("handler")]
        return [invalid("handler", handler, m) for m in validation.dns1123_label_errors(handler)]

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        if new.get("handler") != old.get("handler"):
            return [invalid("handler", new.get("handler") or "", "field is immutable")]
        return []


def _cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    name, created = name_age(obj, now)
    return [name, obj.get("handler") or "", created]


PRINTER = Printer((NAME, Column("Handler", "Handler specifies the underlying runtime and configuration that the CRI implementation will use to handle pods of this class."), AGE), _cells)

KIND = Kind(RUNTIME_CLASSES, RuntimeClassStrategy, PRINTER)
