"""PersistentVolume (core/v1, cluster-scoped): the model, defaults and the API server's validation (access
modes, capacity, exactly one volume source, the immutable source), its phase bookkeeping and the columns
of `kubectl get pv`. Also what claims share with volumes: access and volume modes and their rules.

emulator/controllers/volumes.py binds claims to volumes and provisions the volumes the emulator provides
(a directory on this machine behind a `hostPath` source).
"""

from __future__ import annotations

import posixpath
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from emulator import errors, validation
from emulator.errors import FieldError, invalid
from emulator.kinds.base import Kind, ResourceType, Subresource
from emulator.kinds.printing import AGE, NAME, Column, Printer, meta_of, name_age, spec_of, status_of
from emulator.kinds.values import GoDecodedObject, ResourceList, quantity_of
from emulator.models.base import GoType
from emulator.models.meta import ApiModel, ObjectReference
from emulator.registry.strategy import Strategy
from emulator.timestamps import now_rfc3339

PERSISTENT_VOLUMES = ResourceType(
    "", "v1", "persistentvolumes", "PersistentVolume", False, "persistentvolume", ("pv",),
    subresources=(Subresource("status"),),
)

ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")  # sorted, as listed in errors
ACCESS_MODE_ABBREVIATIONS = (("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP"))
VOLUME_MODES = ("Block", "Filesystem")
RECLAIM_POLICIES = ("Delete", "Recycle", "Retain")
HOST_PATH_TYPES = ("", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket")
STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
UNSET = "<unset>"
# the volume sources a PersistentVolume may name, in the order the API server checks them
VOLUME_SOURCES = (
    "gcePersistentDisk", "hostPath", "glusterfs", "flocker", "nfs", "rbd", "quobyte", "cinder", "cephfs",
    "flexVolume", "iscsi", "fc", "awsElasticBlockStore", "azureFile", "vsphereVolume", "photonPersistentDisk",
    "portworxVolume", "azureDisk", "scaleIO", "local", "storageos", "csi",
)


# -- shared with claims ------------------------------------------------------------------------------


def access_modes_text(modes: list[str] | None) -> str:
    """GetAccessModesAsString: "RWO,ROX", in this fixed order, duplicates once."""
    present = set(modes or [])
    return ",".join(short for mode, short in ACCESS_MODE_ABBREVIATIONS if mode in present)


def validate_access_modes(modes: list[str] | None, path: str, detail: str = "") -> list[FieldError]:
    problems: list[FieldError] = []
    if not modes:
        problems.append(errors.FieldError(path, "FieldValueRequired", f"Required value: {detail}" if detail else "Required value"))
    once_pod = other = False
    for mode in modes or []:
        if mode not in ACCESS_MODES:
            problems.append(errors.not_supported(path, mode, list(ACCESS_MODES)))
        elif mode == "ReadWriteOncePod":
            once_pod = True
        else:
            other = True
    if once_pod and other:
        problems.append(errors.forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return problems


def validate_volume_mode(mode: Any, path: str) -> list[FieldError]:
    if mode is not None and mode not in VOLUME_MODES:
        return [errors.not_supported(path, mode, list(VOLUME_MODES))]
    return []


def validate_class_name(name: Any, path: str) -> list[FieldError]:
    if name:
        return [invalid(path, name, m) for m in validation.dns1123_subdomain_errors(name)]
    return []


def storage_class_of(obj: dict[str, Any]) -> str:
    """The class a volume or claim belongs to: the beta annotation first, then `storageClassName`."""
    annotations = meta_of(obj).get("annotations") or {}
    if STORAGE_CLASS_ANNOTATION in annotations:
        return str(annotations[STORAGE_CLASS_ANNOTATION])
    return str(spec_of(obj).get("storageClassName") or "")


def no_backsteps(value: str, path: str) -> list[FieldError]:
    if ".." in value.replace("\\", "/").split("/"):
        return [invalid(path, value, "must not contain '..'")]
    return []


# -- model -------------------------------------------------------------------------------------------

class HostPathVolumeSource(ApiModel):
    path: str | None = None
    type: Annotated[str, GoType("v1.HostPathType")] | None = None


class PersistentVolumeSpec(ApiModel):
    capacity: ResourceList | None = None
    access_modes: list[Annotated[str, GoType("v1.PersistentVolumeAccessMode")]] | None = None
    claim_ref: ObjectReference | None = None
    persistent_volume_reclaim_policy: Annotated[str, GoType("v1.PersistentVolumeReclaimPolicy")] | None = None
    storage_class_name: str | None = None
    mount_options: list[str] | None = None
    volume_mode: Annotated[str, GoType("v1.PersistentVolumeMode")] | None = None
    node_affinity: Any = None
    volume_attributes_class_name: str | None = None
    host_path: HostPathVolumeSource | None = None
    gce_persistent_disk: Any = Field(default=None, alias="gcePersistentDisk")
    aws_elastic_block_store: Any = None
    glusterfs: Any = None
    nfs: Any = None
    rbd: Any = None
    iscsi: Any = None
    cinder: Any = None
    cephfs: Any = None
    fc: Any = None
    flocker: Any = None
    flex_volume: Any = None
    azure_file: Any = None
    vsphere_volume: Any = None
    quobyte: Any = None
    azure_disk: Any = None
    photon_persistent_disk: Any = None
    portworx_volume: Any = None
    scale_io: Any = Field(default=None, alias="scaleIO")
    local: Any = None
    storageos: Any = None
    csi: Any = None


class PersistentVolumeStatus(ApiModel):
    phase: Annotated[str, GoType("v1.PersistentVolumePhase")] | None = None
    message: str | None = None
    reason: str | None = None
    last_phase_transition_time: str | None = None


class PersistentVolume(GoDecodedObject):
    spec: PersistentVolumeSpec = Field(default_factory=PersistentVolumeSpec)
    status: PersistentVolumeStatus | None = None


# -- write path --------------------------------------------------------------------------------------


def _validate_source(spec: dict[str, Any]) -> list[FieldError]:
    """Exactly one volume source, and the fields of the common ones."""
    problems: list[FieldError] = []
    named = [s for s in VOLUME_SOURCES if spec.get(s) is not None]
    for extra in named[1:]:
        problems.append(errors.forbidden(f"spec.{extra}", "may not specify more than 1 volume type"))
    if not named:
        return [errors.FieldError("spec", "FieldValueRequired", "Required value: must specify a volume type")]
    source, value = named[0], spec[named[0]]
    value = value if isinstance(value, dict) else {}
    path = f"spec.{source}"
    if source in ("hostPath", "local"):
        if not value.get("path"):
            problems.append(errors.required(f"{path}.path"))
        else:
            problems += no_backsteps(value["path"], f"{path}.path")
            kind = value.get("type")
            if source == "hostPath" and kind is not None and kind not in HOST_PATH_TYPES:
                problems.append(errors.not_supported(f"{path}.type", kind, list(HOST_PATH_TYPES)))
        if source == "local" and not spec.get("nodeAffinity"):
            problems.append(errors.FieldError("spec.nodeAffinity", "FieldValueRequired", "Required value: Local volume requires node affinity"))
    elif source == "nfs":
        if not value.get("server"):
            problems.append(errors.required(f"{path}.server"))
        if not value.get("path"):
            problems.append(errors.required(f"{path}.path"))
        if not posixpath.isabs(str(value.get("path") or "")):
            problems.append(invalid(f"{path}.path", value.get("path") or "", "must be an absolute path"))
    elif source == "csi":
        driver = value.get("driver") or ""
        if not driver:
            problems.append(errors.required(f"{path}.driver"))
        else:
            problems += [invalid(f"{path}.driver", driver, m) for m in validation.dns1123_subdomain_errors(driver.lower())]
        if not value.get("volumeHandle"):
            problems.append(errors.required(f"{path}.volumeHandle"))
    host = spec.get("hostPath") or {}
    if host.get("path") and posixpath.normpath(host["path"]) == "/" and spec.get("persistentVolumeReclaimPolicy") == "Recycle":
        problems.append(errors.forbidden("spec.persistentVolumeReclaimPolicy", "may not be 'recycle' for a hostPath mount of '/'"))
    return problems


def _validate_node_affinity(affinity: Any) -> list[FieldError]:
    if affinity is None:
        return []
    required = affinity.get("required") if isinstance(affinity, dict) else None
    if required is None:
        return [errors.FieldError("spec.nodeAffinity.required", "FieldValueRequired", "Required value: must specify required node constraints")]
    if not (required.get("nodeSelectorTerms") if isinstance(required, dict) else None):
        return [errors.FieldError("spec.nodeAffinity.required.nodeSelectorTerms", "FieldValueRequired", "Required value: must have at least one node selector term")]
    return []


class PersistentVolumeStrategy(Strategy):
    resource = PERSISTENT_VOLUMES
    model = PersistentVolume
    has_status = True

    def prepare_create(self, obj: dict[str, Any]) -> None:
        self._defaults(obj["spec"])
        obj["status"] = {"phase": "Pending", "lastPhaseTransitionTime": now_rfc3339()}

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        self._defaults(new["spec"])
        status, old_status = new.get("status") or {}, old.get("status") or {}
        if status.get("phase") != old_status.get("phase") and status.get("lastPhaseTransitionTime") == old_status.get("lastPhaseTransitionTime"):
            status["lastPhaseTransitionTime"] = now_rfc3339()

    @staticmethod
    def _defaults(spec: dict[str, Any]) -> None:
        spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
        spec.setdefault("volumeMode", "Filesystem")
        if isinstance(spec.get("hostPath"), dict):
            spec["hostPath"].setdefault("type", "")

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj["spec"]
        problems = validate_access_modes(spec.get("accessModes"), "spec.accessModes")
        capacity = spec.get("capacity") or {}
        if not capacity:
            problems.append(errors.required("spec.capacity"))
        if "storage" not in capacity or len(capacity) > 1:
            shown = "core.ResourceList{" + ", ".join(f'"{k}":"{v}"' for k, v in capacity.items()) + "}"
            problems.append(errors.FieldError("spec.capacity", "FieldValueNotSupported", f'Unsupported value: {shown}: supported values: "storage"'))
        for name, value in capacity.items():
            if quantity_of(value).value <= 0:
                problems.append(invalid(f"spec.capacity[{name}]", str(quantity_of(value)), "must be greater than zero"))
        problems += validate_class_name(spec.get("storageClassName"), "spec.storageClassName")
        problems += validate_volume_mode(spec.get("volumeMode"), "spec.volumeMode")
        policy = spec.get("persistentVolumeReclaimPolicy")
        if policy is not None and policy not in RECLAIM_POLICIES:
            problems.append(errors.not_supported("spec.persistentVolumeReclaimPolicy", policy, list(RECLAIM_POLICIES)))
        problems += _validate_node_affinity(spec.get("nodeAffinity"))
        return problems + _validate_source(spec)

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        spec, old_spec = new["spec"], old["spec"]
        problems: list[FieldError] = []
        if any(spec.get(s) != old_spec.get(s) for s in VOLUME_SOURCES):
            problems.append(errors.forbidden("spec.persistentvolumesource", "spec.persistentvolumesource is immutable after creation"))
        if spec.get("volumeMode") != old_spec.get("volumeMode"):
            problems.append(invalid("spec.volumeMode", spec.get("volumeMode") or "", "field is immutable"))
        if old_spec.get("nodeAffinity") is not None and spec.get("nodeAffinity") != old_spec["nodeAffinity"]:
            problems.append(errors.forbidden("spec.nodeAffinity", "field is immutable"))
        return problems


def _volume_cells(pv: dict[str, Any], now: datetime) -> list[Any]:
    name, created = name_age(pv, now)
    spec, status = spec_of(pv), status_of(pv)
    claim = spec.get("claimRef")
    phase = "Terminating" if meta_of(pv).get("deletionTimestamp") else status.get("phase") or ""
    return [
        name,
        str(quantity_of((spec.get("capacity") or {}).get("storage"))),
        access_modes_text(spec.get("accessModes")),
        spec.get("persistentVolumeReclaimPolicy") or "",
        phase,
        f"{claim.get('namespace') or ''}/{claim.get('name') or ''}" if claim else "",
        storage_class_of(pv),
        spec.get("volumeAttributesClassName") or UNSET,
        status.get("reason") or "",
        created,
        spec.get("volumeMode") or UNSET,
    ]


PRINTER = Printer(
    (
        NAME,
        Column("Capacity", "capacity is the description of the persistent volume's resources and capacity. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#capacity"),
        Column("Access Modes", "accessModes contains all ways the volume can be mounted. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes"),
        Column("Reclaim Policy", "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim. Valid options are Retain (default for manually created PersistentVolumes), Delete (default for dynamically provisioned PersistentVolumes), and Recycle (deprecated). Recycle must be supported by the volume plugin underlying this PersistentVolume. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#reclaiming"),
        Column("Status", "phase indicates if a volume is available, bound to a claim, or released by a claim. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#phase"),
        Column("Claim", "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim. Expected to be non-nil when bound. claim.VolumeName is the authoritative bind between PV and PVC. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#binding"),
        Column("StorageClass", "StorageClass of the pv"),
        Column("VolumeAttributesClass", "VolumeAttributesClass of the pv"),
        Column("Reason", "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI."),
        AGE,
        Column("VolumeMode", "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state. Value of Filesystem is implied when not included in spec.", priority=1),
    ),
    _volume_cells,
)


KIND = Kind(PERSISTENT_VOLUMES, PersistentVolumeStrategy, PRINTER)
