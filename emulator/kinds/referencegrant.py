"""ReferenceGrant (gateway.networking.k8s.io/v1beta1, namespaced): served built in from the upstream
definition (emulator/kinds/gatewayapi/). A grant in a namespace lets objects of the `from` kinds in
other namespaces refer to objects of the `to` kinds in its own (emulator/routing/gatewayapi.py reads them).
"""

from __future__ import annotations

from emulator.kinds import gatewayapi
from emulator.kinds.custom import CustomObject

REFERENCE_GRANTS = gatewayapi.resource_type("referencegrants", "v1beta1")


class ReferenceGrant(CustomObject):
    """Every field but metadata is the upstream schema's."""


class ReferenceGrantStrategy(gatewayapi.GatewayApiStrategy):
    resource = REFERENCE_GRANTS
    model = ReferenceGrant
    schema = gatewayapi.schema_of(REFERENCE_GRANTS)
    has_status = gatewayapi.has_status(REFERENCE_GRANTS)


KIND = gatewayapi.kind(ReferenceGrantStrategy)
OTHER_VERSIONS = gatewayapi.other_versions(KIND)
