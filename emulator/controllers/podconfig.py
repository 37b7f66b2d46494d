"""The kubelet's part in a pod's configuration that the emulator needs without a kubelet: containers whose
environment names a ConfigMap, Secret or key that does not exist (and is not optional) are not created.

A pod is born in that state (the pod strategy asks emulator/podenv.py at creation, so it never flickers
Ready): phase Pending, not Ready, the container waiting with `CreateContainerConfigError`. This
controller then does what the kubelet's retries do:

- it records the kubelet's Warning event `Failed` ("Error: configmap "x" not found"), once per
  container and message, from source `kubelet`;
- when a ConfigMap or Secret of the pod's namespace changes, it checks the waiting pods of that
  namespace again: still missing → the status says what is missing now (a new event when it changed);
  nothing missing → the containers start: Running and Ready, with a Normal `Started` event;
- for a new pod whose `envFrom` keys are no valid variable names, it records the kubelet's Warning
  `InvalidEnvironmentVariableNames`.

A running pod is never stopped when its ConfigMap goes away: the kubelet reads the environment only
when it creates a container. Events only mark a pod dirty (emulator/controllers/workqueue.py); waiting
pods are few, so a ConfigMap event marks every waiting pod of its namespace.
"""

from __future__ import annotations

import logging
from typing import Any

from emulator import errors, podenv
from emulator.controllers.replicaset import EventRecorder
from emulator.controllers.workqueue import WorkQueue
from emulator.kinds import CONFIG_MAPS, PODS, SECRETS
from emulator.kinds.pod import RUNNABLE_CONDITION
from emulator.registry.registry import Registry
from emulator.store.events import ADDED, DELETED, Event
from emulator.timestamps import now_rfc3339

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, pod name)
_HELD_MARK = podenv.CONFIG_ERROR.encode()


class PodConfigController:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.store = registry.store
        self.queue: WorkQueue[Key] = WorkQueue("podconfig", self.sync)
        self.events = EventRecorder(registry, "kubelet")
        self._held: dict[str, set[str]] = {}  # namespace -> pods waiting for their configuration
        self._reported: dict[str, dict[str, str]] = {}  # pod uid -> container -> message of its last Failed event
        self._new: set[Key] = set()  # pods created since start whose envFrom names are still to be checked
        self._since = registry.store.rv  # events up to here are replayed state, not new pods

    # -- events ------------------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        if event.resource == PODS.key:
            self._on_pod(event)
        elif event.resource in (CONFIG_MAPS.key, SECRETS.key):
            for name in self._held.get(event.namespace, ()):
                self.queue.add((event.namespace, name))

    def _on_pod(self, event: Event) -> None:
        key: Key = (event.namespace, event.name)
        held = self._held.get(event.namespace)
        if event.type == DELETED:
            self._release(event.namespace, event.name)
            self._new.discard(key)
            self.queue.forget(key)
            uid = event.obj["metadata"].get("uid", "")
            self.events.forget(uid)
            self._reported.pop(uid, None)
            return
        if _HELD_MARK in event.raw:  # cheaper than decoding every pod; sync decides
            self._held.setdefault(event.namespace, set()).add(event.name)
            self.queue.add(key)
        elif held is not None:
            self._release(event.namespace, event.name)
        if event.type == ADDED and event.rv > self._since and b'"envFrom"' in event.raw:
            self._new.add(key)
            self.queue.add(key)

    # -- sync --------------------------------------------------------------------------------------

    def sync(self, key: Key) -> float | None:
        namespace, name = key
        pod = self.store.get(PODS.key, namespace, name)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return None

        def lookup(resource: str, ref: str) -> dict[str, Any] | None:
            return self.store.get(resource, namespace, ref)

        if key in self._new:
            self._new.discard(key)
            for skipped in podenv.skipped_keys(pod, lookup):
                self.events.record(PODS, pod, "Warning", podenv.INVALID_NAMES_EVENT, skipped.message)
        if not podenv.is_held(pod) or _run_by_kubelet(pod):
            return None  # (the kubelet, when it runs the pod, retries and reports this itself)
        uid = pod["metadata"].get("uid", "")
        failures = podenv.config_failures(pod, lookup)
        now = now_rfc3339()
        if failures:
            if {f.container: f.message for f in failures} != _waiting_messages(pod):
                self._write(pod, podenv.held_status(pod, failures, now))
            reported = self._reported.setdefault(uid, {})
            for failure in failures:
                if reported.get(failure.container) != failure.message:
                    reported[failure.container] = failure.message
                    self.events.record(PODS, pod, "Warning", podenv.FAILED_EVENT, f"Error: {failure.message}")
            return None
        self._write(pod, podenv.started_status(pod, now))
        for container in (pod.get("spec") or {}).get("containers") or []:
            self.events.record(PODS, pod, "Normal", "Started", f"Started container {container['name']}")
        self._reported.pop(uid, None)
        return None

    def _release(self, namespace: str, name: str) -> None:
        """The pod waits no more: out of its namespace's set, and the set out of the map once empty."""
        held = self._held.get(namespace)
        if held is not None:
            held.discard(name)
            if not held:
                del self._held[namespace]

    def _write(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        try:
            self.registry.replace_object(PODS, pod, {**pod, "status": status}, subresource="status")
        except errors.StatusError as exc:
            if exc.code != 404:
                raise  # a conflict: the queue retries with the pod as it is now
            log.debug("pod %s/%s went away before its status was written", pod["metadata"]["namespace"], pod["metadata"]["name"])


def _run_by_kubelet(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == RUNNABLE_CONDITION and c.get("status") == "True" for c in (pod.get("status") or {}).get("conditions") or [])


def _waiting_messages(pod: dict[str, Any]) -> dict[str, str]:
    """The containers waiting with CreateContainerConfigError, and their messages, as the status says."""
    status = pod.get("status") or {}
    waiting: dict[str, str] = {}
    for statuses in (status.get("initContainerStatuses"), status.get("containerStatuses")):
        for entry in statuses or []:
            state = (entry.get("state") or {}).get("waiting") or {}
            if state.get("reason") == podenv.CONFIG_ERROR:
                waiting[entry.get("name", "")] = state.get("message", "")
    return waiting
