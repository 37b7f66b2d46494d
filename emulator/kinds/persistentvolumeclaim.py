"""PersistentVolumeClaim (core/v1): the model, defaults and the API server's validation (access modes, the
storage request, the spec frozen after creation but for a bigger request and the one binding of
`volumeName`), the columns of `kubectl get pvc` and its merge keys.

A claim is Bound at once: emulator/controllers/volumes.py binds it to a matching volume, or provisions
one (`pvc-<claim uid>`, a directory on this machine).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from emulator import errors
from emulator.errors import FieldError, invalid
from emulator.kinds.base import Kind, ResourceType, Subresource
from emulator.kinds.persistentvolume import (
    STORAGE_CLASS_ANNOTATION,
    UNSET,
    access_modes_text,
    storage_class_of,
    validate_access_modes,
    validate_class_name,
    validate_volume_mode,
)
from emulator.kinds.printing import AGE, NAME, Column, Printer, meta_of, name_age, spec_of, status_of
from emulator.kinds.storageclass import STORAGE_CLASSES, default_class_name
from emulator.kinds.values import GoDecodedObject, ResourceList, quantity_of, validate_quantity_value
from emulator.labels import validate_label_selector
from emulator.models.base import GoType
from emulator.models.meta import ApiModel, LabelSelector
from emulator.registry.patch import ListRule, ListRules
from emulator.registry.strategy import Strategy

PERSISTENT_VOLUME_CLAIMS = ResourceType(
    "", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, "persistentvolumeclaim", ("pvc",),
    subresources=(Subresource("status"),),
)
SPEC_IMMUTABLE = "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"


class VolumeResourceRequirements(ApiModel):
    limits: ResourceList | None = None
    requests: ResourceList | None = None


class PersistentVolumeClaimSpec(ApiModel):
    access_modes: list[Annotated[str, GoType("v1.PersistentVolumeAccessMode")]] | None = None
    selector: LabelSelector | None = None
    resources: VolumeResourceRequirements | None = None
    volume_name: str | None = None
    storage_class_name: str | None = None
    volume_mode: Annotated[str, GoType("v1.PersistentVolumeMode")] | None = None
    data_source: Any = None
    data_source_ref: Any = None
    volume_attributes_class_name: str | None = None


class PersistentVolumeClaimStatus(ApiModel):
    phase: Annotated[str, GoType("v1.PersistentVolumeClaimPhase")] | None = None
    access_modes: list[str] | None = None
    capacity: ResourceList | None = None
    conditions: Any = None
    allocated_resources: ResourceList | None = None
    allocated_resource_statuses: Any = None
    current_volume_attributes_class_name: str | None = None
    modify_volume_status: Any = None


class PersistentVolumeClaim(GoDecodedObject):
    spec: PersistentVolumeClaimSpec = Field(default_factory=PersistentVolumeClaimSpec)
    status: PersistentVolumeClaimStatus | None = None


def requested_storage(claim: dict[str, Any]) -> Any:
    """The storage a claim asks for (its stored, canonical text), None when it asks for none."""
    return ((spec_of(claim).get("resources") or {}).get("requests") or {}).get("storage")


class PersistentVolumeClaimStrategy(Strategy):
    resource = PERSISTENT_VOLUME_CLAIMS
    model = PersistentVolumeClaim
    has_status = True

    def prepare_create(self, obj: dict[str, Any]) -> None:
        obj["spec"].setdefault("volumeMode", "Filesystem")
        obj["status"] = {"phase": "Pending"}
        if obj["spec"].get("storageClassName") is None and STORAGE_CLASS_ANNOTATION not in (obj["metadata"].get("annotations") or {}):
            # the DefaultStorageClass admission plugin: a claim that names no class (not even "") gets the default
            default = default_class_name(self.cluster.store.objects(STORAGE_CLASSES.key))
            if default is not None:
                obj["spec"]["storageClassName"] = default

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        new["spec"].setdefault("volumeMode", "Filesystem")

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj["spec"]
        problems = validate_access_modes(spec.get("accessModes"), "spec.accessModes", "at least 1 access mode is required")
        if spec.get("selector") is not None:
            problems += validate_label_selector(spec["selector"], "spec.selector")
        storage = requested_storage(obj)
        path = "spec.resources[storage]"
        if storage is None:
            problems.append(errors.required(path))
        elif quantity_of(storage).value <= 0:
            problems.append(invalid(path, storage, "must be greater than zero"))
        else:
            problems += validate_quantity_value("storage", storage, path)
        problems += validate_class_name(spec.get("storageClassName"), "spec.storageClassName")
        problems += validate_volume_mode(spec.get("volumeMode"), "spec.volumeMode")
        return problems

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        spec, old_spec = dict(new["spec"]), dict(old["spec"])
        problems: list[FieldError] = []
        if not old_spec.get("volumeName"):
            spec.pop("volumeName", None)  # a claim is bound once: its volumeName may be set from empty
            old_spec.pop("volumeName", None)
        for field in ("resources", "volumeAttributesClassName"):
            if field == "resources" and (status_of(new).get("phase") != "Bound"):
                continue  # only a bound claim may ask for more storage
            spec.pop(field, None)
            old_spec.pop(field, None)
        if spec != old_spec:
            problems.append(errors.forbidden("spec", SPEC_IMMUTABLE))
        new_size, old_size = requested_storage(new), requested_storage(old)
        if new_size is not None and old_size is not None and quantity_of(new_size).value < quantity_of(old_size).value:
            problems.append(errors.forbidden("spec.resources.requests.storage", "field can not be less than previous value"))
        return problems


MERGE_RULES: ListRules = {("status", "conditions"): ListRule("type", ("type",))}


def _claim_cells(pvc: dict[str, Any], now: datetime) -> list[Any]:
    name, created = name_age(pvc, now)
    spec, status = spec_of(pvc), status_of(pvc)
    phase = "Terminating" if meta_of(pvc).get("deletionTimestamp") else status.get("phase") or ""
    capacity = access = ""
    if spec.get("volumeName"):
        access = access_modes_text(status.get("accessModes"))
        capacity = str(quantity_of((status.get("capacity") or {}).get("storage")))
    return [
        name, phase, spec.get("volumeName") or "", capacity, access, storage_class_of(pvc),
        spec.get("volumeAttributesClassName") or UNSET, created, spec.get("volumeMode") or UNSET,
    ]


PRINTER = Printer(
    (
        NAME,
        Column("Status", "phase represents the current phase of PersistentVolumeClaim."),
        Column("Volume", "volumeName is the binding reference to the PersistentVolume backing this claim."),
        Column("Capacity", "capacity represents the actual resources of the underlying volume."),
        Column("Access Modes", "accessModes contains the actual access modes the volume backing the PVC has. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1"),
        Column("StorageClass", "StorageClass of the pvc"),
        Column("VolumeAttributesClass", "VolumeAttributesClass of the pvc"),
        AGE,
        Column("VolumeMode", "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec.", priority=1),
    ),
    _claim_cells,
)


KIND = Kind(PERSISTENT_VOLUME_CLAIMS, PersistentVolumeClaimStrategy, PRINTER, MERGE_RULES)
