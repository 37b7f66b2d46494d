"""GatewayClass (gateway.networking.k8s.io/v1, cluster-scoped): served built in from the upstream
definition (emulator/kinds/gatewayapi/), with its CEL rule (controllerName is immutable).

The emulator's own class, `emulator` (controller `emulator.local/gateway`), is written at start
(emulator/controllers/builtins.py); Gateways of a class with that controllerName are served by the
emulator's gateway (emulator/routing/gatewayapi.py).
"""

from __future__ import annotations

from typing import Any

from emulator.errors import FieldError
from emulator.kinds import gatewayapi
from emulator.kinds.custom import CustomObject

GATEWAY_CLASSES = gatewayapi.resource_type("gatewayclasses", "v1")
EMULATOR_GATEWAY_CLASS = "emulator"
GATEWAY_CONTROLLER = "emulator.local/gateway"


class GatewayClass(CustomObject):
    """Every field but metadata is the upstream schema's."""


class GatewayClassStrategy(gatewayapi.GatewayApiStrategy):
    resource = GATEWAY_CLASSES
    model = GatewayClass
    schema = gatewayapi.schema_of(GATEWAY_CLASSES)
    has_status = gatewayapi.has_status(GATEWAY_CLASSES)

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        controller = (new.get("spec") or {}).get("controllerName")
        if controller != (old.get("spec") or {}).get("controllerName"):
            return [gatewayapi.rule_failed("spec.controllerName", controller, "Value is immutable")]
        return []


KIND = gatewayapi.kind(GatewayClassStrategy)
OTHER_VERSIONS = gatewayapi.other_versions(KIND)
