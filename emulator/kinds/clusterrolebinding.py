"""ClusterRoleBinding (rbac.authorization.k8s.io/v1, cluster-scoped): grants a ClusterRole in every
namespace and at the cluster scope. `roleRef` (kind ClusterRole only) is immutable; a ServiceAccount
subject must name its namespace. Printed as NAME, ROLE, AGE (wide: USERS, GROUPS, SERVICEACCOUNTS)."""

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

CLUSTER_ROLE_BINDINGS = ResourceType(RBAC_GROUP, "v1", "clusterrolebindings", "ClusterRoleBinding", False, "clusterrolebinding")


class ClusterRoleBinding(TypedObject):
    subjects: list[Subject] | None = None
    role_ref: RoleRef = Field(default_factory=RoleRef)


class ClusterRoleBindingStrategy(Strategy):
    resource = CLUSTER_ROLE_BINDINGS
    model = ClusterRoleBinding
    name_rule = "path segment"

    def prepare_create(self, obj: dict[str, Any]) -> None:
        default_binding(obj)

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        default_binding(new)

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        problems = validate_binding(obj, ("ClusterRole",), namespaced=False)
        if not problems:
            check_binding_escalation(CLUSTER_ROLE_BINDINGS.plural, obj)
        return problems

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        return validate_role_ref_unchanged(new, old)


KIND = Kind(
    CLUSTER_ROLE_BINDINGS, ClusterRoleBindingStrategy, BINDING_PRINTER,
    protobuf={(RBAC_V1, "ClusterRoleBinding"): BINDING_PROTOBUF},
)
