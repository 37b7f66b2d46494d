"""StorageClass (storage.k8s.io/v1, cluster-scoped): the model, the API server's defaults (reclaimPolicy
Delete, volumeBindingMode Immediate) and validation (a provisioner that is a qualified name, the
supported policies and modes, what never changes), and the columns of `kubectl get storageclass`.

The emulator's own class, `standard` (provisioner `emulator.local/hostpath`), is written at start and
marked as the default, as kind's is: a claim created without `storageClassName` gets it (the
DefaultStorageClass admission plugin, emulator/kinds/persistentvolumeclaim.py), and
emulator/controllers/volumes.py provisions its volume.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

from emulator import errors, validation
from emulator.errors import FieldError, invalid
from emulator.kinds.base import Kind, ResourceType, newest_default
from emulator.kinds.printing import AGE, NAME, Column, Printer, meta_of, name_age
from emulator.models.base import GoType
from emulator.models.meta import TypedObject
from emulator.registry.strategy import Strategy

STORAGE_CLASSES = ResourceType("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, "storageclass", ("sc",))
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
BETA_DEFAULT_CLASS_ANNOTATION = "storageclass.beta.kubernetes.io/is-default-class"
EMULATOR_STORAGE_CLASS = "standard"
EMULATOR_PROVISIONER = "emulator.local/hostpath"  # (what emulator/controllers/volumes.py writes on its volumes)
RECLAIM_POLICIES = ["Delete", "Retain"]
BINDING_MODES = ["Immediate", "WaitForFirstConsumer"]
MAX_PROVISIONER_LENGTH = 255
MAX_PARAMETERS = 512
MAX_PARAMETERS_BYTES = 256 * 1024


class StorageClass(TypedObject):
    provisioner: str | None = None
    parameters: dict[str, str] | None = None
    reclaim_policy: Annotated[str, GoType("v1.PersistentVolumeReclaimPolicy")] | None = None
    mount_options: list[str] | None = None
    allow_volume_expansion: bool | None = None
    volume_binding_mode: Annotated[str, GoType("v1.VolumeBindingMode")] | None = None
    allowed_topologies: Any = None


def is_default_class(obj: dict[str, Any]) -> bool:
    """IsDefaultAnnotation: the annotation (or its beta form) says "true"."""
    annotations = meta_of(obj).get("annotations") or {}
    return annotations.get(DEFAULT_CLASS_ANNOTATION) == "true" or annotations.get(BETA_DEFAULT_CLASS_ANNOTATION) == "true"


def default_class_name(classes: Iterable[dict[str, Any]]) -> str | None:
    """The DefaultStorageClass admission plugin's choice among the classes marked default."""
    return newest_default(classes, is_default_class)


def _validate_provisioner(provisioner: str) -> list[FieldError]:
    if not provisioner:
        return [errors.required("provisioner")]
    problems = [invalid("provisioner", provisioner, m) for m in validation.qualified_name_errors(provisioner)]
    if len(provisioner) > MAX_PROVISIONER_LENGTH:
        problems.append(validation.too_long("provisioner", MAX_PROVISIONER_LENGTH))
    return problems


def _validate_parameters(parameters: dict[str, str]) -> list[FieldError]:
    problems: list[FieldError] = []
    if len(parameters) > MAX_PARAMETERS:
        problems.append(FieldError("parameters", "FieldValueTooMany", f"Too many: {len(parameters)}: must have at most {MAX_PARAMETERS} items"))
    size = sum(len(k) + len(v) for k, v in parameters.items())
    if size > MAX_PARAMETERS_BYTES:
        problems.append(validation.too_long("parameters", MAX_PARAMETERS_BYTES))
    for key in parameters:
        if not key:
            problems.append(invalid("parameters", key, "field can not be empty."))
    return problems


class StorageClassStrategy(Strategy):
    resource = STORAGE_CLASSES
    model = StorageClass

    def prepare_create(self, obj: dict[str, Any]) -> None:
        obj.setdefault("reclaimPolicy", "Delete")
        obj.setdefault("volumeBindingMode", "Immediate")

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        self.prepare_create(new)

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        problems = _validate_provisioner(obj.get("provisioner") or "")
        problems += _validate_parameters(obj.get("parameters") or {})
        if obj.get("reclaimPolicy") not in RECLAIM_POLICIES:
            problems.append(errors.not_supported("reclaimPolicy", obj.get("reclaimPolicy") or "", RECLAIM_POLICIES))
        if obj.get("volumeBindingMode") not in BINDING_MODES:
            problems.append(errors.not_supported("volumeBindingMode", obj.get("volumeBindingMode") or "", BINDING_MODES))
        return problems

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        """ValidateStorageClassUpdate: parameters, provisioner and reclaimPolicy never change; nor does
        the binding mode."""
        problems: list[FieldError] = []
        for field, message in (("parameters", "updates to parameters are forbidden."), ("provisioner", "updates to provisioner are forbidden."),
                               ("reclaimPolicy", "updates to reclaimPolicy are forbidden.")):
            if (new.get(field) or None) != (old.get(field) or None):
                problems.append(errors.forbidden(field, message))
        if new.get("volumeBindingMode") != old.get("volumeBindingMode"):
            problems.append(invalid("volumeBindingMode", new.get("volumeBindingMode") or "", "field is immutable"))
        return problems


def _cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    name, created = name_age(obj, now)
    return [
        f"{name} (default)" if is_default_class(obj) else name,
        obj.get("provisioner") or "",
        obj.get("reclaimPolicy") or "Delete",
        obj.get("volumeBindingMode") or "Immediate",
        bool(obj.get("allowVolumeExpansion")),
        created,
    ]


PRINTER = Printer(
    (
        NAME,
        Column("Provisioner", "provisioner indicates the type of the provisioner."),
        Column("ReclaimPolicy", "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete."),
        Column("VolumeBindingMode", "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.  When unset, VolumeBindingImmediate is used. This field is only honored by servers that enable the VolumeScheduling feature."),
        Column("AllowVolumeExpansion", "allowVolumeExpansion shows whether the storage class allow volume expand.", type="boolean"),
        AGE,
    ),
    _cells,
)

KIND = Kind(STORAGE_CLASSES, StorageClassStrategy, PRINTER)
