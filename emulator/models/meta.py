"""The pydantic models every kind shares: ObjectMeta and the references and selectors inside objects.

Each kind's own model lives in its module (emulator/kinds/). Fields the emulator acts on are typed;
fields it only stores for clients (probes, resources, volumes, security contexts, ...) are declared as
`Any` so that real manifests pass strict field validation unchanged. Defaults are the API server's.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from emulator.models.base import ApiModel, ApiObject, GoType, Int64

__all__ = [
    "ApiModel", "LabelSelector", "LabelSelectorRequirement", "LocalObjectReference", "ObjectMeta", "ObjectReference",
    "OwnerReference", "Protocol", "TypedObject",
]

# in the order the API server lists them when it refuses another value
Protocol = Annotated[Literal["SCTP", "TCP", "UDP"], GoType("v1.Protocol")]


# -- metadata ----------------------------------------------------------------------------------------

class OwnerReference(ApiModel):
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(ApiModel):
    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: Int64 | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: Int64 | None = None
    owner_references: list[OwnerReference] | None = None
    finalizers: list[str] | None = None
    managed_fields: list[Any] | None = None
    self_link: str | None = None


class ObjectReference(ApiModel):
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    uid: str | None = None
    api_version: str | None = None
    resource_version: str | None = None
    field_path: str | None = None


class LabelSelectorRequirement(ApiModel):
    key: str
    operator: str
    values: list[str] | None = None


class LabelSelector(ApiModel):
    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None


class TypedObject(ApiObject):
    api_version: str | None = None
    kind: str | None = None
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)


class LocalObjectReference(ApiModel):
    name: str | None = None
