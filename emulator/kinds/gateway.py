"""Gateway (gateway.networking.k8s.io/v1, namespaced): served built in from the upstream definition
(emulator/kinds/gatewayapi/), with the CEL rules on its listeners checked by hand (unique names, unique
port/protocol/hostname, TLS only where the protocol has it).

A Gateway of a class whose controllerName is the emulator's is programmed in the emulator's gateway:
listeners on port 80 (HTTP) and 443 (HTTPS) are served on the gateway's own ports, others on their port
(emulator/routing/gatewayapi.py compiles them, emulator/controllers/gatewayapi.py writes the status).
"""

from __future__ import annotations

from typing import Any

from emulator.errors import FieldError
from emulator.kinds import gatewayapi
from emulator.kinds.custom import CustomObject

GATEWAYS = gatewayapi.resource_type("gateways", "v1")
_NO_TLS = ("HTTP", "TCP", "UDP")


class Gateway(CustomObject):
    """Every field but metadata is the upstream schema's."""


def listener_errors(listeners: list[dict[str, Any]]) -> list[FieldError]:
    """The rules on `spec.listeners` (x-kubernetes-validations of the definition), in its order."""
    path = "spec.listeners"
    problems: list[FieldError] = []

    def failed(message: str) -> None:
        problems.append(gatewayapi.rule_failed(path, listeners, message))

    if any(item.get("protocol") in _NO_TLS and "tls" in item for item in listeners):
        failed("tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']")
    if any(item.get("protocol") == "HTTPS" and "tls" in item and (item["tls"] or {}).get("mode", "") not in ("", "Terminate") for item in listeners):
        failed("tls mode must be Terminate for protocol HTTPS")
    if any(item.get("protocol") == "TLS" and not ((item.get("tls") or {}).get("mode")) for item in listeners):
        failed("tls mode must be set for protocol TLS")
    if any(item.get("protocol") in ("TCP", "UDP") and item.get("hostname") for item in listeners):
        failed("hostname must not be specified for protocols ['TCP', 'UDP']")
    names = [item.get("name") for item in listeners]
    if len(set(names)) != len(names):
        failed("Listener name must be unique within the Gateway")
    combos = [(item.get("port"), item.get("protocol"), item.get("hostname")) for item in listeners]
    if len(set(combos)) != len(combos):
        failed("Combination of port, protocol and hostname must be unique for each listener")
    for i, item in enumerate(listeners):
        tls = item.get("tls")
        if isinstance(tls, dict) and tls.get("mode") == "Terminate" and not tls.get("certificateRefs") and not tls.get("options"):
            problems.append(gatewayapi.rule_failed(f"{path}[{i}].tls", tls, "certificateRefs or options must be specified when mode is Terminate"))
    return problems


class GatewayStrategy(gatewayapi.GatewayApiStrategy):
    resource = GATEWAYS
    model = Gateway
    schema = gatewayapi.schema_of(GATEWAYS)
    has_status = gatewayapi.has_status(GATEWAYS)

    def rules(self, obj: dict[str, Any]) -> list[FieldError]:
        return listener_errors((obj.get("spec") or {}).get("listeners") or [])


KIND = gatewayapi.kind(GatewayStrategy)
OTHER_VERSIONS = gatewayapi.other_versions(KIND)
