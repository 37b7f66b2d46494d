"""The garbage collector (kube-controller-manager's): deletes objects whose owners are gone, and carries out
the Foreground and Orphan propagation policies (emulator/registry/registry.py puts their finalizers on an
owner deleted with them).

- A dependent is an object with `metadata.ownerReferences`. When every owner it names is gone (no object
  of that kind and name, or another one with a different uid) it is deleted, with the propagation its own
  finalizers ask for, else in the background; owners that are gone are dropped from its references while
  another owner remains. A dependent of an owner being deleted in the foreground is deleted in the
  foreground itself when it has dependents of its own.
- An owner marked for deletion with the `foregroundDeletion` finalizer has its dependents deleted and
  loses the finalizer (and so goes) once no dependent that says `blockOwnerDeletion` is left.
- An owner marked for deletion with the `orphan` finalizer has its reference removed from every dependent,
  then loses the finalizer.

The graph is an index fed by store events: owner uid -> dependents, dependent -> owner uids. A new dependent
is verified once per owner (an owner seen alive is remembered until its deletion event), so creating a
thousand pods of one ReplicaSet costs one lookup, not a thousand. Work goes through a work queue
(emulator/controllers/workqueue.py); a sync reads the store, never the index alone.
"""

from __future__ import annotations

import logging
from typing import Any

from emulator import errors
from emulator.controllers.replicaset import copy_json
from emulator.controllers.workqueue import WorkQueue
from emulator.kinds import BY_KEY, RESOURCE_TYPES, ResourceType
from emulator.registry.registry import FOREGROUND_FINALIZER, ORPHAN_FINALIZER, Registry
from emulator.store.events import DELETED, Event

log = logging.getLogger(__name__)

Ref = tuple[str, str, str]  # (resource key, namespace, name)
Item = tuple[str, str, str, str]  # ("dependent" | "owner", resource key, namespace, name)
DEPENDENT, OWNER = "dependent", "owner"
GC_FINALIZERS = (ORPHAN_FINALIZER, FOREGROUND_FINALIZER)
# (group, kind) -> resource type: owner references name a kind in any version of its group
_BY_GROUP_KIND: dict[tuple[str, str], ResourceType] = {(rt.group, rt.kind): rt for rt in RESOURCE_TYPES}


def _owner_type(ref: dict[str, Any]) -> ResourceType | None:
    api_version = ref.get("apiVersion") or ""
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    found = _BY_GROUP_KIND.get((group, ref.get("kind") or ""))
    if found is None:  # a custom resource: served since start (RESOURCE_TYPES changes in place)
        found = next((rt for rt in RESOURCE_TYPES if rt.group == group and rt.kind == ref.get("kind")), None)
    return found


class GarbageCollector:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.store = registry.store
        self.queue: WorkQueue[Item] = WorkQueue("garbagecollector", self.sync)
        self._dependents: dict[str, set[Ref]] = {}  # owner uid -> dependents
        self._blocking: dict[str, set[Ref]] = {}  # owner uid -> the dependents whose reference blocks its deletion
        self._owners_of: dict[Ref, tuple[tuple[str, bool], ...]] = {}  # dependent -> (owner uid, blocks) it names
        self._alive: dict[str, Ref] = {}  # owner uid -> its key, seen to exist since its last deletion event
        self._alive_uid: dict[Ref, str] = {}
        self._deleting: dict[str, Ref] = {}  # owner uid -> its key, while it waits for the collector
        self._prodded: set[str] = set()  # owners in foreground deletion whose blocking dependents were queued
        self._owner_resources: set[str] = set()  # the kinds that owner references have named

    # -- the graph, from events -----------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        ref: Ref = (event.resource, event.namespace, event.name)
        if event.type == DELETED:
            self._on_deleted(ref, event)
            return
        raw = event.raw
        if b'"ownerReferences"' in raw or ref in self._owners_of:
            self._track(ref, event.obj)
        if b'"deletionTimestamp"' in raw:
            meta = event.obj["metadata"]
            finalizers = meta.get("finalizers") or []
            uid = meta.get("uid", "")
            if meta.get("deletionTimestamp") and any(f in finalizers for f in GC_FINALIZERS):
                first = uid not in self._deleting
                self._deleting[uid] = ref
                self.queue.add((OWNER, *ref))
                if first and FOREGROUND_FINALIZER in finalizers:
                    for dependent in self._dependents.get(uid, ()):
                        self.queue.add((DEPENDENT, *dependent))
            elif uid in self._deleting:  # the collector is done with it (other finalizers may keep it)
                del self._deleting[uid]
                self._prodded.discard(uid)

    def _track(self, ref: Ref, obj: dict[str, Any]) -> None:
        refs = obj["metadata"].get("ownerReferences") or []
        owners = tuple((r.get("uid", ""), bool(r.get("blockOwnerDeletion"))) for r in refs)
        before = self._owners_of.get(ref, ())
        if owners != before:
            for uid, _ in before:
                self._unlink(uid, ref)
            for uid, blocks in owners:
                self._dependents.setdefault(uid, set()).add(ref)
                if blocks:
                    self._blocking.setdefault(uid, set()).add(ref)
            if owners:
                self._owners_of[ref] = owners
            else:
                self._owners_of.pop(ref, None)
            for uid, _ in before:
                if uid in self._deleting and uid not in self._blocking:
                    self.queue.add((OWNER, *self._deleting[uid]))  # it no longer waits for this one
        uids = [uid for uid, _ in owners]
        for r in refs:
            rt = _owner_type(r)
            if rt is not None:
                self._owner_resources.add(rt.key)
        if any(uid not in self._alive for uid in uids):
            self.queue.add((DEPENDENT, *ref))  # an owner never seen alive: verify it

    def _unlink(self, uid: str, ref: Ref) -> None:
        for index in (self._dependents, self._blocking):
            dependents = index.get(uid)
            if dependents is not None:
                dependents.discard(ref)
                if not dependents:
                    del index[uid]

    def _on_deleted(self, ref: Ref, event: Event) -> None:
        for owner_uid, _ in self._owners_of.pop(ref, ()):
            self._unlink(owner_uid, ref)
            owner = self._deleting.get(owner_uid)
            if owner is not None:
                self.queue.add((OWNER, *owner))  # one less dependent to wait for
        uid = self._alive_uid.pop(ref, None)
        if uid is None and event.resource in self._owner_resources:
            uid = event.obj["metadata"].get("uid")
        if not uid:
            return
        self._alive.pop(uid, None)
        self._deleting.pop(uid, None)
        self._prodded.discard(uid)
        for dependent in self._dependents.get(uid, ()):
            self.queue.add((DEPENDENT, *dependent))

    # -- sync ------------------------------------------------------------------------------------------

    def sync(self, item: Item) -> float | None:
        what, resource, namespace, name = item
        if resource not in BY_KEY:
            return None
        if what == DEPENDENT:
            owners = self._owners_of.get((resource, namespace, name), ())
            if owners and all(u in self._alive and u not in self._deleting for u, _ in owners):
                return None  # every owner was verified alive since (a thousand pods of one owner: one check)
        obj = self.store.get(resource, namespace, name)
        if obj is None:
            return None
        rt = BY_KEY[resource].resource
        if what == OWNER:
            self._process_owner(rt, obj)
        else:
            self._attempt_to_delete(rt, obj)
        return None

    def _resolve(self, ref: dict[str, Any], namespace: str) -> str:
        """"solid" (exists), "dangling" (gone) or "waiting" (deleted in the foreground) for one owner reference."""
        rt = _owner_type(ref)
        if rt is None:
            return "solid"  # a kind the emulator does not serve: never collect on its account
        key: Ref = (rt.key, namespace if rt.namespaced else "", ref.get("name") or "")
        owner = self.store.get(*key)
        uid = ref.get("uid") or ""
        if owner is None or owner["metadata"].get("uid") != uid:
            return "dangling"
        self._alive[uid] = key
        self._alive_uid[key] = uid
        meta = owner["metadata"]
        if meta.get("deletionTimestamp") and FOREGROUND_FINALIZER in (meta.get("finalizers") or []):
            return "waiting"
        return "solid"

    def _attempt_to_delete(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        """attemptToDeleteItem: delete a dependent whose owners are all gone or waiting for it."""
        meta = obj["metadata"]
        finalizers = meta.get("finalizers") or []
        if meta.get("deletionTimestamp"):
            if FOREGROUND_FINALIZER in finalizers:
                self._process_owner(rt, obj)
            return
        refs = meta.get("ownerReferences") or []
        if not refs:
            return
        namespace = meta.get("namespace", "")
        states = [(r, self._resolve(r, namespace)) for r in refs]
        solid = [r for r, state in states if state == "solid"]
        if len(solid) == len(refs):
            return
        if solid:
            # other owners remain: only the references to the gone (or going) ones are dropped
            gone = {r.get("uid") for r, state in states if state != "solid"}
            new = copy_json(obj)
            new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") not in gone]
            self._write(rt, obj, new)
            return
        waiting = any(state == "waiting" for _, state in states)
        if waiting and self._dependents.get(meta.get("uid", "")):
            policy = "Foreground"  # its owner waits for it, and it has dependents of its own
        elif ORPHAN_FINALIZER in finalizers:
            policy = "Orphan"
        elif FOREGROUND_FINALIZER in finalizers:
            policy = "Foreground"
        else:
            policy = "Background"
        self._delete(rt, obj, policy)

    def _process_owner(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        finalizers = meta.get("finalizers") or []
        if not meta.get("deletionTimestamp"):
            return
        uid = meta.get("uid", "")
        if ORPHAN_FINALIZER in finalizers:
            for ref in list(self._dependents.get(uid, ())):
                dependent = self.store.get(*ref)
                if dependent is None or ref[0] not in BY_KEY:
                    continue
                refs = dependent["metadata"].get("ownerReferences") or []
                kept = [r for r in refs if r.get("uid") != uid]
                if len(kept) == len(refs):
                    continue
                new = copy_json(dependent)
                if kept:
                    new["metadata"]["ownerReferences"] = kept
                else:
                    new["metadata"].pop("ownerReferences", None)
                self._write(BY_KEY[ref[0]].resource, dependent, new)
            self._remove_finalizer(rt, obj, ORPHAN_FINALIZER)
            return
        if FOREGROUND_FINALIZER not in finalizers:
            return
        # processDeletingDependentsItem: done when no dependent blocks it any more (the graph says which
        # do: an owner waiting for a thousand pods is checked in O(1) each time one goes)
        blocking = self._blocking.get(uid)
        if not blocking:
            self._prodded.discard(uid)
            self._remove_finalizer(rt, obj, FOREGROUND_FINALIZER)
            return
        if uid not in self._prodded:
            self._prodded.add(uid)
            for ref in list(blocking):
                self.queue.add((DEPENDENT, *ref))

    # -- writes --------------------------------------------------------------------------------------

    def _remove_finalizer(self, rt: ResourceType, obj: dict[str, Any], finalizer: str) -> None:
        new = copy_json(obj)
        kept = [f for f in new["metadata"].get("finalizers") or [] if f != finalizer]
        if kept:
            new["metadata"]["finalizers"] = kept
        else:
            new["metadata"].pop("finalizers", None)
        self._write(rt, obj, new)

    def _write(self, rt: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
        try:
            self.registry.replace_object(rt, old, new)
        except errors.StatusError as exc:
            if exc.code not in (404, 409):
                raise
            # changed or gone meanwhile: its event brings it back to the queue

    def _delete(self, rt: ResourceType, obj: dict[str, Any], policy: str) -> None:
        meta = obj["metadata"]
        try:
            self.registry.delete(rt, meta.get("namespace", ""), meta["name"], preconditions={"uid": meta.get("uid")}, propagation=policy)
        except errors.StatusError as exc:
            if exc.code not in (404, 409):
                raise
