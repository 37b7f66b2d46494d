"""kube-scheduler's part for the pods that could not be placed when they were created (emulator/kinds/pod.py
places the others at once): a pod without a node waits, Pending with `PodScheduled` False, until a node
fits (emulator/scheduling.py), then is bound to it (`Registry.bind`, as pods/binding) and runs.

A waiting pod is tried again when any Node changes (uncordoned, labelled, untainted, Ready) and when the
pod itself changes (its scheduling gates removed, a toleration added). Each new reason it cannot be
placed is a Warning event `FailedScheduling` from `default-scheduler` and the condition's message.
Events only mark pods dirty (emulator/controllers/workqueue.py); waiting pods are few.
"""

from __future__ import annotations

import logging
from typing import Any

from emulator import errors
from emulator.controllers.replicaset import EventRecorder
from emulator.controllers.workqueue import WorkQueue
from emulator.kinds import NODES, PODS
from emulator.kinds.node import NODE_NAME
from emulator.registry.registry import Registry
from emulator.scheduling import GATED, default_scheduler, place
from emulator.store.events import DELETED, Event
from emulator.timestamps import now_rfc3339

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, pod name)
_BOUND_MARK = b'"nodeName":'


class SchedulerController:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.store = registry.store
        self.queue: WorkQueue[Key] = WorkQueue("scheduler", self.sync)
        self.events = EventRecorder(registry, "default-scheduler")
        self._waiting: set[Key] = set()
        self._reported: dict[str, str] = {}  # pod uid -> the message of its last FailedScheduling event

    def apply(self, event: Event) -> None:
        if event.resource == PODS.key:
            key = (event.namespace, event.name)
            if event.type == DELETED:
                self._waiting.discard(key)
                self.queue.forget(key)
                self._reported.pop(event.obj["metadata"].get("uid", ""), None)
            elif _BOUND_MARK not in event.raw:  # cheaper than decoding every pod: nearly all have a node
                self._waiting.add(key)
                self.queue.add(key)
            else:
                self._waiting.discard(key)
        elif event.resource == NODES.key:
            for key in self._waiting:
                self.queue.add(key)

    def sync(self, key: Key) -> float | None:
        namespace, name = key
        pod = self.store.get(PODS.key, namespace, name)
        if pod is None or pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp") or not default_scheduler(pod["spec"]):
            self._waiting.discard(key)  # (another scheduler's pod is that scheduler's to bind)
            return None
        node, reason, message = place(pod, self.store.objects(NODES.key), NODE_NAME)
        uid = pod["metadata"].get("uid", "")
        if node is not None:
            try:
                self.registry.bind(namespace, name, node)
            except errors.StatusError as exc:
                if exc.code not in (404, 409):
                    raise
                log.debug("pod %s/%s not bound: %s", namespace, name, exc.message)
            self._reported.pop(uid, None)
            self._waiting.discard(key)
            return None
        condition: dict[str, Any] = next((c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "PodScheduled"), {})
        if (condition.get("reason"), condition.get("message")) != (reason, message):
            self._write_condition(pod, reason, message)
        if reason != GATED[0] and self._reported.get(uid) != message:
            self._reported[uid] = message
            self.events.record(PODS, pod, "Warning", "FailedScheduling", message)
        return None

    def _write_condition(self, pod: dict[str, Any], reason: str, message: str) -> None:
        status = dict(pod.get("status") or {})
        before: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled" and c.get("status") == "False"), {})
        since = before.get("lastTransitionTime") or now_rfc3339()  # it stays False: its transition stays
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append({"type": "PodScheduled", "status": "False", "lastTransitionTime": since, "reason": reason, "message": message})
        status["conditions"] = conditions
        try:
            self.registry.replace_object(PODS, pod, {**pod, "status": status}, subresource="status")
        except errors.StatusError as exc:
            if exc.code != 404:
                raise  # a conflict: the queue retries with the pod as it is now
