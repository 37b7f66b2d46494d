"""ClusterRole (rbac.authorization.k8s.io/v1, cluster-scoped): rules usable in every namespace (through
a RoleBinding) or cluster-wide (through a ClusterRoleBinding), non-resource URLs included. A ClusterRole
with an `aggregationRule` holds the rules of the ClusterRoles its selectors match, written by
emulator/controllers/clusterroleaggregation.py. Printed as NAME, CREATED AT."""

from __future__ import annotations

from typing import Any

from emulator.errors import FieldError
from emulator.kinds.base import Kind, ResourceType
from emulator.kinds.rbac_common import (
    CLUSTER_ROLE_PROTOBUF,
    RBAC_GROUP,
    RBAC_V1,
    ROLE_PRINTER,
    AggregationRule,
    PolicyRule,
    check_role_escalation,
    validate_aggregation,
    validate_rules,
)
from emulator.models.meta import TypedObject
from emulator.registry.strategy import Strategy

CLUSTER_ROLES = ResourceType(RBAC_GROUP, "v1", "clusterroles", "ClusterRole", False, "clusterrole")


class ClusterRole(TypedObject):
    rules: list[PolicyRule] | None = None
    aggregation_rule: AggregationRule | None = None


class ClusterRoleStrategy(Strategy):
    resource = CLUSTER_ROLES
    model = ClusterRole
    name_rule = "path segment"

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        problems = validate_rules(obj, namespaced=False) + validate_aggregation(obj)
        if not problems:
            check_role_escalation(CLUSTER_ROLES.plural, obj)
        return problems


KIND = Kind(CLUSTER_ROLES, ClusterRoleStrategy, ROLE_PRINTER, protobuf={(RBAC_V1, "ClusterRole"): CLUSTER_ROLE_PROTOBUF})
