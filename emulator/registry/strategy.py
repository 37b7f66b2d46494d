"""What differs between kinds on the write path, as one small class per kind (the API server's
"registry strategy"): defaults, validation, address allocation and status handling.

The generic `Registry` calls these hooks in a fixed order — decode, prepare, validate, allocate,
store — so a kind never re-implements the write path, it only says what is special about it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from emulator.errors import FieldError
from emulator.models.meta import TypedObject

if TYPE_CHECKING:
    from emulator.kinds.base import ResourceType
    from emulator.registry.registry import Cluster


@dataclass
class Allocation:
    """What a write took from the address plan, so that a failed write can give it back."""

    undo: list[Any] = field(default_factory=list)  # callables

    def rollback(self) -> None:
        for release in reversed(self.undo):
            release()
        self.undo.clear()


class Strategy:
    resource: ResourceType
    model: type[TypedObject]
    # DNS-1123 subdomain unless a kind says otherwise ("label", "dns1035")
    name_rule: str = "subdomain"
    # kinds with a status subresource ignore status on main-resource writes and vice versa
    has_status: bool = False
    # subresources that write one field of `spec` alone (pods/ephemeralcontainers → ephemeralContainers):
    # through it only that field changes, through the main resource everything but that field
    subresource_fields: dict[str, str] = {}
    # deleted in two steps, like namespaces: marked first (deletionTimestamp), removed by a controller
    deletes_gracefully: bool = False
    # field selectors the kind supports besides metadata.name and metadata.namespace:
    # label -> (path in the object, the value an absent field has: `spec.hostNetwork` is "false")
    field_labels: dict[str, tuple[str, str]] = {}
    # a kind served in several versions (a custom resource) stores this apiVersion; answers carry the
    # version asked for
    storage_api_version: str | None = None
    # strategic merge patch needs Go struct tags: custom resources refuse it (415), as in Kubernetes
    strategic_merge: bool = True

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def to_storage(self, obj: dict[str, Any]) -> dict[str, Any]:
        """A client's object in this kind's version, as the storage version keeps it (a kind served in
        several versions): by default the same fields under the other apiVersion. The write path then
        works on the stored form."""
        return {**obj, "apiVersion": self.storage_api_version} if self.storage_api_version else obj

    def served(self, obj: dict[str, Any]) -> dict[str, Any]:
        """A stored object as this version answers it (`to_storage` undone)."""
        return {**obj, "apiVersion": self.resource.api_version}

    def prepare_create(self, obj: dict[str, Any]) -> None:
        """Defaults and server-set fields on create."""

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        """Carry over server-owned fields from the stored object on update."""

    def decode_fields(self, body: dict[str, Any], obj: dict[str, Any]) -> list[str]:
        """Copy into `obj` the fields of `body` the model does not carry (a custom resource's, pruned
        by its schema); returns the paths of the unknown fields left out."""
        return []

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        return []

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        return []

    def warnings(self, obj: dict[str, Any]) -> list[str]:
        """What the API server warns about in an accepted object (`Warning` headers): nothing, by default."""
        return []

    def check_delete(self, obj: dict[str, Any]) -> None:
        """Raise a StatusError when this object may not be deleted."""

    def prepare_delete(self, obj: dict[str, Any]) -> None:
        """Changes to an object that is marked for deletion but stays for now."""

    def grace_period(self, obj: dict[str, Any], requested: int | None) -> int | None:
        """Seconds this object gets to terminate when deleted (DeleteOptions' `requested`, else the
        kind's default); None deletes it at once (the default: only a running pod terminates)."""
        return None

    def allocate(self, obj: dict[str, Any], old: dict[str, Any] | None, dry_run: bool) -> Allocation:
        """Take addresses/ports the object needs (requested ones checked for range and use)."""
        return Allocation()

    def release(self, obj: dict[str, Any], keep: dict[str, Any] | None = None) -> None:
        """Give back what `obj` holds and `keep` (its successor) does not."""

    def claim(self, obj: dict[str, Any]) -> None:
        """At start: mark what a stored object holds as taken."""

    def scale(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """The object's Scale when the kind says where its replicas are; None: spec.replicas (the default)."""
        return None

    def set_replicas(self, obj: dict[str, Any], replicas: int) -> None:
        obj.setdefault("spec", {})["replicas"] = replicas

    def claim_raw(self, raw: bytes) -> None:
        """`claim` from the stored JSON; kinds stored by the hundred thousand read it without decoding."""
        self.claim(orjson.loads(raw))
