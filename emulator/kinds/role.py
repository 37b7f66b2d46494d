"""Role (rbac.authorization.k8s.io/v1, namespaced): rules granting access within one namespace,
validated as the API server does (no non-resource URLs in a namespace), printed as NAME, CREATED AT.
What the rules allow is decided in emulator/security/rbac.py."""

from __future__ import annotations

from typing import Any

from emulator.errors import FieldError
from emulator.kinds.base import Kind, ResourceType
from emulator.kinds.rbac_common import (
    RBAC_GROUP,
    RBAC_V1,
    ROLE_PRINTER,
    ROLE_PROTOBUF,
    PolicyRule,
    check_role_escalation,
    validate_rules,
)
from emulator.models.meta import TypedObject
from emulator.registry.strategy import Strategy

ROLES = ResourceType(RBAC_GROUP, "v1", "roles", "Role", True, "role")


class Role(TypedObject):
    rules: list[PolicyRule] | None = None


class RoleStrategy(Strategy):
    resource = ROLES
    model = Role
    name_rule = "path segment"

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        problems = validate_rules(obj, namespaced=True)
        if not problems:
            check_role_escalation(ROLES.plural, obj)
        return problems


KIND = Kind(ROLES, RoleStrategy, ROLE_PRINTER, protobuf={(RBAC_V1, "Role"): ROLE_PROTOBUF})
