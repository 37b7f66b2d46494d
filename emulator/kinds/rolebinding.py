"""RoleBinding (rbac.authorization.k8s.io/v1, namespaced): grants a Role of its namespace, or a
ClusterRole within its namespace, to users, groups and service accounts. `roleRef` is immutable (delete
and re-create to bind another role); subjects' `apiGroup` defaults as the API server's do. Printed as
NAME, ROLE, AGE (wide: USERS, GROUPS, SERVICEACCOUNTS)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from emulator.errors import FieldError
from emulator.kinds.base import Kind, ResourceType
from emulator.kinds.rbac_common import (
    BINDING_PRINTER,
    BINDING_PROTOBUF,
    RBAC_GROUP,
    RBAC_V1,
    RoleRef,
    Subject,
    check_binding_escalation,
    default_binding,
    validate_binding,
    validate_role_ref_unchanged,
)
from emulator.models.meta import TypedObject
from emulator.registry.strategy import Strategy

ROLE_BINDINGS = ResourceType(RBAC_GROUP, "v1", "rolebindings", "RoleBinding", True, "rolebinding")


class RoleBinding(TypedObject):
    subjects: list[Subject] | None = None
    role_ref: RoleRef = Field(default_factory=RoleRef)


class RoleBindingStrategy(Strategy):
    resource = ROLE_BINDINGS
    model = RoleBinding
    name_rule = "path segment"

    def prepare_create(self, obj: dict[str, Any]) -> None:
        default_binding(obj)

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        default_binding(new)

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        problems = validate_binding(obj, ("Role", "ClusterRole"), namespaced=True)
        if not problems:
            check_binding_escalation(ROLE_BINDINGS.plural, obj)
        return problems

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        return validate_role_ref_unchanged(new, old)


KIND = Kind(ROLE_BINDINGS, RoleBindingStrategy, BINDING_PRINTER, protobuf={(RBAC_V1, "RoleBinding"): BINDING_PROTOBUF})
