"""Namespace (core/v1): the model, the write-path rules (the name label, graceful deletion: Terminating
first, the contents go, then the namespace), its columns, merge keys and protobuf layout."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from emulator import errors
from emulator.kinds.base import Kind, ResourceType, Subresource
from emulator.kinds.printing import AGE, NAME, Column, Printer, name_age, status_of
from emulator.kinds.protobuf_layout import OBJECT_META, Message
from emulator.kinds.protobuf_layout import Field as ProtoField
from emulator.models.base import GoType
from emulator.models.meta import ApiModel, TypedObject
from emulator.registry.patch import ListRule, ListRules
from emulator.registry.strategy import Strategy

NAMESPACES = ResourceType(
    "", "v1", "namespaces", "Namespace", False, "namespace", ("ns",),
    verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    subresources=(Subresource("status"), Subresource("finalize", ("update",))),
)
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")


class NamespaceSpec(ApiModel):
    finalizers: list[str] | None = None


class NamespaceStatus(ApiModel):
    phase: Annotated[Literal["Active", "Terminating"], GoType("v1.NamespacePhase")] | None = None
    conditions: Any = None


class Namespace(TypedObject):
    spec: NamespaceSpec | None = None
    status: NamespaceStatus | None = None


class NamespaceStrategy(Strategy):
    resource = NAMESPACES
    model = Namespace
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


MERGE_RULES: ListRules = {("status", "conditions"): ListRule("type", ("type",))}


def _namespace_cells(ns: dict[str, Any], now: datetime) -> list[Any]:
    name, created = name_age(ns, now)
    return [name, status_of(ns).get("phase", ""), created]


PRINTER = Printer((NAME, Column("Status", "The status of the namespace"), AGE), _namespace_cells)

NAMESPACE_PROTOBUF: Message = {
    1: ProtoField("metadata", "message", OBJECT_META),
    2: ProtoField("spec", "message", {1: ProtoField("finalizers", "string", repeated=True)}),
    3: ProtoField("status", "message", {
        1: ProtoField("phase", "string"),
        2: ProtoField("conditions", "message", {
            1: ProtoField("type", "string", optional=True),
            2: ProtoField("status", "string", optional=True),
            4: ProtoField("lastTransitionTime", "time"),
            5: ProtoField("reason", "string"),
            6: ProtoField("message", "string"),
        }, repeated=True),
    }),
}


KIND = Kind(NAMESPACES, NamespaceStrategy, PRINTER, MERGE_RULES, {("v1", "Namespace"): NAMESPACE_PROTOBUF})
