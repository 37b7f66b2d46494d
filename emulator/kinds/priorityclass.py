"""PriorityClass (scheduling.k8s.io/v1, cluster-scoped): the model, the API server's defaults and
validation (the `system-` prefix reserved, values above one billion for the system classes only, value
and preemption policy that never change, one global default), the two system classes every cluster
has, and the Priority admission plugin's decision for a new pod (`pod_priority`, emulator/kinds/pod.py
asks it): a pod naming a class gets its value in `spec.priority`, a pod naming none the global default's,
a class that does not exist is refused.

Nothing preempts here (there is one node and no scheduler), but pods carry the priority a cluster gives
them, and manifests that ship a PriorityClass (or name `system-cluster-critical`) apply as they do there.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import orjson

from emulator import errors
from emulator.errors import FieldError, invalid
from emulator.kinds.base import Kind, ResourceType
from emulator.kinds.printing import AGE, NAME, Column, Printer, name_age
from emulator.kinds.protobuf_layout import OBJECT_META, Message
from emulator.kinds.protobuf_layout import Field as ProtoField
from emulator.models.base import GoType, Int32
from emulator.models.meta import TypedObject
from emulator.registry.strategy import Strategy

if TYPE_CHECKING:
    from emulator.store.store import Store

PRIORITY_CLASSES = ResourceType("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, "priorityclass", ("pc",))
HIGHEST_USER_DEFINABLE_PRIORITY = 1_000_000_000
SYSTEM_CRITICAL_PRIORITY = 2 * HIGHEST_USER_DEFINABLE_PRIORITY
SYSTEM_PREFIX = "system-"
# the classes the API server creates at start (SystemPriorityClasses)
SYSTEM_CLASSES: dict[str, tuple[int, str]] = {
    "system-node-critical": (SYSTEM_CRITICAL_PRIORITY + 1000, "Used for system critical pods that must not be moved from their current node."),
    "system-cluster-critical": (SYSTEM_CRITICAL_PRIORITY, "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary."),
}
PREEMPTION_POLICIES = ["Never", "PreemptLowerPriority"]


class PriorityClass(TypedObject):
    value: Int32 | None = None
    global_default: bool | None = None
    description: str | None = None
    preemption_policy: Annotated[str, GoType("v1.PreemptionPolicy")] | None = None


def default_class(store: Store) -> dict[str, Any] | None:
    """The class marked globalDefault (the one of least value, should there be several). Asked at every
    pod create: the stored bytes are searched first, and only a class that says so is decoded."""
    marked = [orjson.loads(raw) for raw in store.raws(PRIORITY_CLASSES.key, "") if b'"globalDefault":true' in raw]
    marked = [c for c in marked if c.get("globalDefault") is True]
    return min(marked, key=lambda c: (int(c.get("value") or 0), c["metadata"]["name"])) if marked else None


def pod_priority(store: Store, pod: dict[str, Any]) -> None:
    """The Priority admission plugin on a new pod: `spec.priority` (and the class's preemption policy)
    from the class it names, or from the global default (its name written too), else 0; a class that
    does not exist, or a priority or policy the pod states that differs from its class's, is 403."""
    meta, spec = pod["metadata"], pod["spec"]
    name = spec.get("priorityClassName") or ""
    if name:
        found = store.get(PRIORITY_CLASSES.key, "", name)
        if found is None:
            raise errors.forbidden_request(f'pods "{meta.get("name", "")}" is forbidden: no PriorityClass with name {name} was found')
    else:
        found = default_class(store)
        if found is not None:
            spec["priorityClassName"] = found["metadata"]["name"]
    priority = int(found.get("value") or 0) if found is not None else 0
    policy = (found.get("preemptionPolicy") if found is not None else None) or "PreemptLowerPriority"
    if spec.get("priority") is not None and spec["priority"] != priority:
        raise errors.forbidden_request(
            f'pods "{meta.get("name", "")}" is forbidden: the integer value of priority ({spec["priority"]}) must not be provided '
            f"in pod spec; priority admission controller computed {priority} from the given PriorityClass name")
    if spec.get("preemptionPolicy") is not None and spec["preemptionPolicy"] != policy:
        raise errors.forbidden_request(
            f'pods "{meta.get("name", "")}" is forbidden: the string value of PreemptionPolicy ({spec["preemptionPolicy"]}) must not '
            f"be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name")
    spec["priority"] = priority
    spec["preemptionPolicy"] = policy


class PriorityClassStrategy(Strategy):
    resource = PRIORITY_CLASSES
    model = PriorityClass

    def prepare_create(self, obj: dict[str, Any]) -> None:
        obj.setdefault("preemptionPolicy", "PreemptLowerPriority")
        obj.setdefault("value", 0)  # (an int32 without omitempty: 0 when absent, as protobuf leaves a zero out)
        self._one_default(obj)

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        new.setdefault("preemptionPolicy", old.get("preemptionPolicy") or "PreemptLowerPriority")
        new.setdefault("value", 0)
        if new.get("globalDefault") and not old.get("globalDefault"):
            self._one_default(new)

    def _one_default(self, obj: dict[str, Any]) -> None:
        """The Priority admission plugin: a second global default is refused."""
        if not obj.get("globalDefault"):
            return
        existing = default_class(self.cluster.store)
        if existing is not None and existing["metadata"]["name"] != obj["metadata"]["name"]:
            raise errors.forbidden_request(
                f'priorityclasses.scheduling.k8s.io "{obj["metadata"]["name"]}" is forbidden: PriorityClass '
                f'{existing["metadata"]["name"]} is already marked as default. Only one default can exist')

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        """ValidatePriorityClass: the system names and values are the system classes'; a user's value is
        at most one billion."""
        name, value = obj["metadata"]["name"], int(obj.get("value") or 0)
        problems: list[FieldError] = []
        if name in SYSTEM_CLASSES:
            if value != SYSTEM_CLASSES[name][0]:
                problems.append(errors.forbidden("metadata.name", f"{name}:{value} is not a system priority class"))
        elif name.startswith(SYSTEM_PREFIX):
            problems.append(errors.forbidden("metadata.name", "priority class names with 'system-' prefix are reserved"))
        elif value > HIGHEST_USER_DEFINABLE_PRIORITY:
            problems.append(errors.forbidden("value", f"maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"))
        policy = obj.get("preemptionPolicy")
        if policy not in PREEMPTION_POLICIES:
            problems.append(errors.not_supported("preemptionPolicy", policy or "", PREEMPTION_POLICIES))
        return problems

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        problems: list[FieldError] = []
        for field in ("value", "preemptionPolicy"):
            if new.get(field) != old.get(field):
                shown = new.get(field)
                problems.append(invalid(field, shown if shown is not None else "", "field is immutable"))
        return problems


def _cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    name, created = name_age(obj, now)
    return [name, obj.get("value") or 0, bool(obj.get("globalDefault")), created, obj.get("preemptionPolicy") or ""]


PRINTER = Printer(
    (
        NAME,
        Column("Value", "value represents the integer value of this priority class. This is the actual priority that pods receive when they have the name of this class in their pod spec.", type="integer"),
        Column("Global-Default", "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class. Only one PriorityClass can be marked as `globalDefault`. However, if more than one PriorityClasses exists with their `globalDefault` field set to true, the smallest value of such global default PriorityClasses will be used as the default priority.", type="boolean"),
        AGE,
        Column("PreemptionPolicy", "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, PreemptLowerPriority. Defaults to PreemptLowerPriority if unset.", priority=1),
    ),
    _cells,
)

# `kubectl create priorityclass` sends protobuf (k8s.io/api scheduling/v1 generated.proto)
PRIORITY_CLASS_PROTOBUF: Message = {
    1: ProtoField("metadata", "message", OBJECT_META),
    2: ProtoField("value", "int"),
    3: ProtoField("globalDefault", "bool"),
    4: ProtoField("description", "string"),
    5: ProtoField("preemptionPolicy", "string", optional=True),
}

KIND = Kind(PRIORITY_CLASSES, PriorityClassStrategy, PRINTER, {}, {("scheduling.k8s.io/v1", "PriorityClass"): PRIORITY_CLASS_PROTOBUF})
