"""The volume controller: every claim is Bound at once, as with a default StorageClass whose provisioner
never fails.

- A claim that names a volume (`spec.volumeName`) is bound to it when it exists and is free; until then
  it stays Pending.
- Otherwise it is bound to the smallest free volume that fits (same class, volume mode and access modes,
  enough capacity, its selector matching), like the PV controller's static binding — the docs' hostPath
  PV and PVC pair binds as on a cluster.
- Otherwise the emulator provisions one: a PersistentVolume `pvc-<claim uid>` with exactly the requested
  capacity, reclaim policy Delete, backed by a new directory under `<data dir>/volumes/` (a temporary
  directory with --in-memory, removed at exit). A claim with a selector is not provisioned for (as with
  real provisioners) and waits for a matching volume.

Binding writes the volume's `claimRef` and phase Bound, then the claim's `volumeName`, its annotations
and its status (Bound, the volume's access modes and capacity). A new volume nobody claims turns
Available. When a claim goes, its volume is deleted with its directory (reclaim policy Delete) or turns
Released (Retain); when a bound volume goes, its claim turns Lost. Refused writes are logged, never raised
into event delivery.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from emulator import errors
from emulator.kinds import PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES
from emulator.kinds.node import NODE_NAME
from emulator.kinds.persistentvolume import storage_class_of
from emulator.kinds.persistentvolumeclaim import requested_storage
from emulator.kinds.storageclass import EMULATOR_PROVISIONER, STORAGE_CLASSES
from emulator.kinds.values import quantity_of
from emulator.labels import selector_from_label_selector
from emulator.registry.registry import Registry, marked_for_deletion
from emulator.store.events import DELETED, Event

log = logging.getLogger(__name__)

PROVISIONER = EMULATOR_PROVISIONER  # the provisioner of the built-in StorageClass `standard`
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
VOLUMES_DIR = "volumes"


class VolumeController:
    def __init__(self, registry: Registry, data_dir: str | None) -> None:
        """`data_dir` None: keep the volumes' directories in a temporary directory (--in-memory)."""
        self.registry = registry
        self.store = registry.store
        self._data_dir = data_dir
        self._root: Path | None = None

    # -- where provisioned volumes live --------------------------------------------------------------

    @property
    def root(self) -> Path:
        """The directory holding provisioned volumes, made on first use (never at validation time)."""
        if self._root is None:
            if self._data_dir is None:
                made = tempfile.mkdtemp(prefix="emulator-volumes-")
                atexit.register(shutil.rmtree, made, True)
                self._root = Path(made)
            else:
                self._root = Path(self._data_dir) / VOLUMES_DIR
                self._root.mkdir(parents=True, exist_ok=True)
        return self._root

    def _owned_path(self, pv: dict[str, Any]) -> Path | None:
        """A provisioned volume's directory, only when it lies under our root (never delete anything else)."""
        if (pv["metadata"].get("annotations") or {}).get(PROVISIONED_BY) != PROVISIONER:
            return None
        path = ((pv.get("spec") or {}).get("hostPath") or {}).get("path")
        if not path:
            return None
        root = self.root.resolve()
        target = Path(path).resolve()
        return target if target.parent == root else None

    # -- events --------------------------------------------------------------------------------------

    def start(self) -> None:
        """Finish what a previous run left: volumes still Pending, claims not yet bound."""
        for pv in list(self.store.objects(PERSISTENT_VOLUMES.key)):
            self._settle_volume(pv["metadata"]["name"])
        for claim in list(self.store.objects(PERSISTENT_VOLUME_CLAIMS.key)):
            self._bind(claim["metadata"]["namespace"], claim["metadata"]["name"])

    def apply(self, event: Event) -> None:
        try:
            if event.resource == PERSISTENT_VOLUME_CLAIMS.key:
                if event.type == DELETED:
                    self._claim_gone(event.obj)
                else:
                    self._bind(event.namespace, event.name)
            elif event.resource == PERSISTENT_VOLUMES.key:
                if event.type == DELETED:
                    self._volume_gone(event.obj)
                else:
                    self._settle_volume(event.name)
        except errors.StatusError as exc:
            log.warning("volume controller: %s %s/%s: %s", event.resource, event.namespace, event.name, exc)

    # -- binding -------------------------------------------------------------------------------------

    def _bind(self, namespace: str, name: str) -> None:
        claim = self.store.get(PERSISTENT_VOLUME_CLAIMS.key, namespace, name)
        if claim is None or marked_for_deletion(claim):
            return
        if (claim.get("status") or {}).get("phase") in ("Bound", "Lost"):
            return
        spec = claim.get("spec") or {}
        wanted = spec.get("volumeName")
        if wanted:
            pv = self.store.get(PERSISTENT_VOLUMES.key, "", wanted)
            if pv is None or not self._free_for(pv, claim):
                return  # pre-bound to a volume that is not there (yet) or taken: Pending, as on a cluster
            self._complete(claim, pv, chosen=False)
            return
        pv = self._best_match(claim)
        if pv is None:
            if spec.get("selector") is not None:
                return  # provisioners do not serve claims with a selector
            pv = self._provision(claim)
        self._complete(claim, pv, chosen=True)

    def _free_for(self, pv: dict[str, Any], claim: dict[str, Any]) -> bool:
        if marked_for_deletion(pv) or (pv.get("status") or {}).get("phase") in ("Released", "Failed"):
            return False
        ref = (pv.get("spec") or {}).get("claimRef")
        if not ref:
            return True
        meta = claim["metadata"]
        return bool(ref.get("name") == meta["name"] and ref.get("namespace") == meta["namespace"]
                    and ref.get("uid") in (None, "", meta.get("uid")))

    def _best_match(self, claim: dict[str, Any]) -> dict[str, Any] | None:
        spec = claim.get("spec") or {}
        wanted_modes = set(spec.get("accessModes") or [])
        wanted_size = quantity_of(requested_storage(claim)).value
        selector = selector_from_label_selector(spec.get("selector")) if spec.get("selector") is not None else None
        best: tuple[Any, str] | None = None
        found: dict[str, Any] | None = None
        for pv in self.store.objects(PERSISTENT_VOLUMES.key):
            pv_spec = pv.get("spec") or {}
            if not self._free_for(pv, claim) or (pv.get("status") or {}).get("phase") not in ("Available", "Pending"):
                continue
            if storage_class_of(pv) != storage_class_of(claim):
                continue
            if (pv_spec.get("volumeMode") or "Filesystem") != (spec.get("volumeMode") or "Filesystem"):
                continue
            if not wanted_modes <= set(pv_spec.get("accessModes") or []):
                continue
            size = quantity_of((pv_spec.get("capacity") or {}).get("storage")).value
            if size < wanted_size:
                continue
            if selector is not None and not selector.matches(pv["metadata"].get("labels") or {}):
                continue
            key = (size, pv["metadata"]["name"])
            if best is None or key < best:
                best, found = key, pv
        return found

    def _provision(self, claim: dict[str, Any]) -> dict[str, Any]:
        meta, spec = claim["metadata"], claim.get("spec") or {}
        name = f"pvc-{meta['uid']}"
        path = self.root / name
        path.mkdir(exist_ok=True)
        body: dict[str, Any] = {
            "metadata": {"name": name, "annotations": {PROVISIONED_BY: PROVISIONER}},
            "spec": {
                "accessModes": list(spec.get("accessModes") or []),
                "capacity": {"storage": requested_storage(claim)},
                "claimRef": self._claim_ref(claim),
                "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
                "persistentVolumeReclaimPolicy": "Delete",
                "volumeMode": spec.get("volumeMode") or "Filesystem",
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE_NAME]},
                ]}]}},
            },
        }
        if spec.get("storageClassName"):
            body["spec"]["storageClassName"] = spec["storageClassName"]
            # as the class says (a provisioner copies its reclaim policy and mount options to the volume)
            storage_class = self.store.get(STORAGE_CLASSES.key, "", spec["storageClassName"]) or {}
            body["spec"]["persistentVolumeReclaimPolicy"] = storage_class.get("reclaimPolicy") or "Delete"
            if storage_class.get("mountOptions"):
                body["spec"]["mountOptions"] = list(storage_class["mountOptions"])
        try:
            return self.registry.create(PERSISTENT_VOLUMES, "", body).obj
        except errors.StatusError:
            if self.store.get_raw(PERSISTENT_VOLUMES.key, "", name) is None:
                shutil.rmtree(path, ignore_errors=True)
            raise

    @staticmethod
    def _claim_ref(claim: dict[str, Any]) -> dict[str, Any]:
        meta = claim["metadata"]
        return {
            "kind": "PersistentVolumeClaim", "namespace": meta["namespace"], "name": meta["name"],
            "uid": meta.get("uid"), "apiVersion": "v1", "resourceVersion": meta.get("resourceVersion"),
        }

    def _complete(self, claim: dict[str, Any], pv: dict[str, Any], chosen: bool) -> None:
        """Write both halves of the binding: the volume first (claimRef, Bound), then the claim. Each step
        reads the object again: a write may have delivered events that did part of the work already."""
        name = pv["metadata"]["name"]
        meta = claim["metadata"]
        namespace, claim_name, uid = meta["namespace"], meta["name"], meta.get("uid")
        pv = self.store.get(PERSISTENT_VOLUMES.key, "", name) or pv
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        if ref.get("uid") != uid:
            pv["spec"]["claimRef"] = self._claim_ref(claim)
            if not ref:
                pv["metadata"].setdefault("annotations", {})[BOUND_BY_CONTROLLER] = "yes"
            self.registry.update(PERSISTENT_VOLUMES, "", name, pv)
        pv = self.store.get(PERSISTENT_VOLUMES.key, "", name) or pv
        if (pv.get("status") or {}).get("phase") != "Bound":
            pv["status"] = {**(pv.get("status") or {}), "phase": "Bound"}
            self.registry.update(PERSISTENT_VOLUMES, "", name, pv, subresource="status")
        current = self.store.get(PERSISTENT_VOLUME_CLAIMS.key, namespace, claim_name)
        if current is None or current["metadata"].get("uid") != uid:
            return
        annotations = dict(current["metadata"].get("annotations") or {})
        annotations[BIND_COMPLETED] = "yes"
        if chosen:
            annotations[BOUND_BY_CONTROLLER] = "yes"
        if (pv["metadata"].get("annotations") or {}).get(PROVISIONED_BY) == PROVISIONER:
            annotations[STORAGE_PROVISIONER] = PROVISIONER
            annotations[BETA_STORAGE_PROVISIONER] = PROVISIONER
        if current["spec"].get("volumeName") != name or annotations != (current["metadata"].get("annotations") or {}):
            current["spec"]["volumeName"] = name
            current["metadata"]["annotations"] = annotations
            self.registry.update(PERSISTENT_VOLUME_CLAIMS, namespace, claim_name, current)
        current = self.store.get(PERSISTENT_VOLUME_CLAIMS.key, namespace, claim_name)
        if current is None:
            return
        status = {
            **(current.get("status") or {}),
            "phase": "Bound",
            "accessModes": list(pv["spec"].get("accessModes") or []),
            "capacity": dict(pv["spec"].get("capacity") or {}),
        }
        if status != current.get("status"):
            current["status"] = status
            self.registry.update(PERSISTENT_VOLUME_CLAIMS, namespace, claim_name, current, subresource="status")

    # -- volumes on their own ------------------------------------------------------------------------

    def _settle_volume(self, name: str) -> None:
        """A new volume turns Available, or Bound when the claim it names is bound to it; a Released one
        whose claimRef a user removed is Available again."""
        pv = self.store.get(PERSISTENT_VOLUMES.key, "", name)
        if pv is None or marked_for_deletion(pv):
            return
        phase = (pv.get("status") or {}).get("phase")
        ref = (pv.get("spec") or {}).get("claimRef")
        if phase != "Pending" and not (phase == "Released" and not ref):
            return
        if ref:
            claim = self.store.get(PERSISTENT_VOLUME_CLAIMS.key, ref.get("namespace") or "", ref.get("name") or "")
            if claim is not None and self._free_for(pv, claim):
                if (claim.get("status") or {}).get("phase") == "Bound":
                    if (claim.get("spec") or {}).get("volumeName") == name:
                        pv["status"] = {**(pv.get("status") or {}), "phase": "Bound"}
                        self.registry.update(PERSISTENT_VOLUMES, "", name, pv, subresource="status")
                    return
                self._complete(claim, pv, chosen=not (claim.get("spec") or {}).get("volumeName"))
                return
        pv["status"] = {**(pv.get("status") or {}), "phase": "Available"}
        self.registry.update(PERSISTENT_VOLUMES, "", name, pv, subresource="status")
        if not ref:
            # claims waiting for a volume like this one
            for claim in list(self.store.objects(PERSISTENT_VOLUME_CLAIMS.key)):
                if (claim.get("status") or {}).get("phase") == "Pending":
                    self._bind(claim["metadata"]["namespace"], claim["metadata"]["name"])

    def _claim_gone(self, claim: dict[str, Any]) -> None:
        meta = claim["metadata"]
        for pv in list(self.store.objects(PERSISTENT_VOLUMES.key)):
            ref = (pv.get("spec") or {}).get("claimRef") or {}
            if ref.get("uid") != meta.get("uid") or marked_for_deletion(pv):
                continue
            name = pv["metadata"]["name"]
            if pv["spec"].get("persistentVolumeReclaimPolicy") == "Delete":
                path = self._owned_path(pv)
                self.registry.delete(PERSISTENT_VOLUMES, "", name)
                if path is not None:
                    shutil.rmtree(path, ignore_errors=True)
            else:
                pv["status"] = {**(pv.get("status") or {}), "phase": "Released"}
                self.registry.update(PERSISTENT_VOLUMES, "", name, pv, subresource="status")

    def _volume_gone(self, pv: dict[str, Any]) -> None:
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        if not ref:
            return
        claim = self.store.get(PERSISTENT_VOLUME_CLAIMS.key, ref.get("namespace") or "", ref.get("name") or "")
        if claim is None or claim["metadata"].get("uid") != ref.get("uid") or marked_for_deletion(claim):
            return
        if (claim.get("spec") or {}).get("volumeName") == pv["metadata"]["name"]:
            claim["status"] = {**(claim.get("status") or {}), "phase": "Lost"}
            self.registry.update(PERSISTENT_VOLUME_CLAIMS, ref["namespace"], ref["name"], claim, subresource="status")
